"""Point clouds: the PointCloud type, PLY read/write, voxel downsampling, depth unprojection.

Everything here is numpy only. The torch splatting renderer lives in
``worldstudio.core.pointcloud.render`` and must be imported explicitly, so that importing this package never
imports torch.
"""

from worldstudio.core.pointcloud.cloud import STATIC_ENTITY, PointCloud, PointCloudError
from worldstudio.core.pointcloud.ops import remove_depth_edges, unproject_depth, voxel_downsample
from worldstudio.core.pointcloud.ply import read_ply, read_ply_with_normals, write_ply

__all__ = [
    "STATIC_ENTITY",
    "PointCloud",
    "PointCloudError",
    "read_ply",
    "read_ply_with_normals",
    "remove_depth_edges",
    "unproject_depth",
    "voxel_downsample",
    "write_ply",
]
