"""Point-cloud operations in numpy: voxel downsampling, depth unprojection, depth-edge masks,
mask dilation and erosion, statistical outliers of a depth map's points.

Camera conventions (docs/CONVENTIONS.md): OpenCV axes, c2w 4x4 poses, K 3x3 in pixels; pixel
(u, v) covers [u, u + 1) x [v, v + 1) and its centre (u + 0.5, v + 0.5) is the ray that
unprojects; depth is z-depth along the camera's +z axis, 0 where unknown.
"""

from __future__ import annotations

import math

import numpy as np

from worldstudio.core.pointcloud.cloud import PointCloud

__all__ = [
    "dilate_mask",
    "erode_mask",
    "remove_depth_edges",
    "statistical_outliers",
    "unproject_depth",
    "voxel_downsample",
]

_GREY = 128


def voxel_downsample(cloud: PointCloud, voxel_size: float) -> PointCloud:
    """One point per occupied voxel of an axis-aligned grid of ``voxel_size`` cells (cell
    ``floor(xyz / voxel_size)``).

    Each output point is the centroid of its voxel's points, coloured with their mean colour
    (rounded to the nearest integer); its entity id is the most frequent id among them (ties go
    to the smallest id). Output points are sorted by voxel (x cell, then y, then z), so the
    result is deterministic. Points with non-finite coordinates are dropped.
    """
    if not isinstance(cloud, PointCloud):
        raise TypeError(f"voxel_downsample takes a PointCloud, got {type(cloud).__name__}")
    size = float(voxel_size)
    if not (size > 0.0 and math.isfinite(size)):
        raise ValueError(f"voxel size must be a positive number, got {voxel_size}")
    finite = np.isfinite(cloud.xyz).all(axis=1)
    if not finite.all():
        cloud = cloud.select(finite)
    if len(cloud) == 0:
        return PointCloud.empty(with_entity_id=cloud.entity_id is not None)

    xyz = cloud.xyz.astype(np.float64)
    scaled = np.floor(xyz / size)
    if np.abs(scaled).max() >= 2.0**52:
        raise ValueError(f"voxel size {size} is too small for the cloud's extent")
    cells = scaled.astype(np.int64)
    cells -= cells.min(axis=0)
    extent = cells.max(axis=0) + 1
    if float(extent[0]) * float(extent[1]) * float(extent[2]) < 2.0**62:
        key = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
        _, inverse = np.unique(key, return_inverse=True)
    else:
        _, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_vox = int(inverse.max()) + 1
    counts = np.bincount(inverse, minlength=n_vox).astype(np.float64)

    out_xyz = np.empty((n_vox, 3), np.float32)
    out_rgb = np.empty((n_vox, 3), np.uint8)
    for c in range(3):
        out_xyz[:, c] = np.bincount(inverse, weights=xyz[:, c], minlength=n_vox) / counts
        mean = np.bincount(inverse, weights=cloud.rgb[:, c], minlength=n_vox) / counts
        out_rgb[:, c] = np.clip(np.rint(mean), 0, 255)
    out_ids = None
    if cloud.entity_id is not None:
        out_ids = _majority(inverse, cloud.entity_id, n_vox)
    return PointCloud(out_xyz, out_rgb, out_ids)


def _majority(group: np.ndarray, ids: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, its most frequent id; ties go to the smallest id."""
    if ids.min() == ids.max():
        return np.full(n_groups, ids[0], np.int32)
    values, id_index = np.unique(ids, return_inverse=True)
    id_index = id_index.reshape(-1)
    pair = group.astype(np.int64) * len(values) + id_index
    pairs, counts = np.unique(pair, return_counts=True)
    pair_group = pairs // len(values)
    pair_id = pairs % len(values)
    # Sort by group, then count descending, then id ascending; the first of each group wins.
    order = np.lexsort((pair_id, -counts, pair_group))
    first = np.ones(len(order), bool)
    first[1:] = pair_group[order][1:] != pair_group[order][:-1]
    winners = order[first]
    out = np.empty(n_groups, np.int32)
    out[pair_group[winners]] = values[pair_id[winners]]
    return out


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"K must be a finite 3x3 matrix, got shape {K.shape}")
    if not np.array_equal(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"K's last row must be (0, 0, 1), got {K[2]}")
    if K[0, 0] == 0.0 or K[1, 1] == 0.0:
        raise ValueError("K's focal lengths must not be zero")
    return K


def _check_pose(c2w) -> np.ndarray:
    T = np.asarray(c2w, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ValueError(f"c2w must be a finite 4x4 matrix, got shape {T.shape}")
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"c2w's last row must be (0, 0, 0, 1), got {T[3]}")
    return T


def unproject_depth(depth, K, c2w, rgb=None, mask=None, entity_id=None) -> PointCloud:
    """The world points seen by a depth map.

    depth: (H, W) z-depth along the camera's +z axis. K: (3, 3) intrinsics for that (H, W).
    c2w: (4, 4) camera-to-world pose. Pixel (u, v) unprojects through its centre
    (u + 0.5, v + 0.5): ``c2w @ [depth * K^-1 (u + 0.5, v + 0.5, 1), 1]``. Pixels whose depth is
    <= 0 or not finite, or where ``mask`` (H, W) bool is False, are skipped. Points come out in
    row-major pixel order. rgb: (H, W, 3) uint8 colours (grey when None). entity_id: None, one
    int for every point, or an (H, W) integer map.
    """
    d = np.asarray(depth)
    if d.ndim != 2 or not (
        np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)
    ):
        raise ValueError(f"depth must be a real (H, W) array, got {d.dtype} {d.shape}")
    H, W = d.shape
    K = _check_K(K)
    T = _check_pose(c2w)
    d = d.astype(np.float64, copy=False)
    valid = np.isfinite(d) & (d > 0)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (H, W) or m.dtype != np.bool_:
            raise ValueError(
                f"mask must be a bool array of shape ({H}, {W}), got {m.dtype} {m.shape}"
            )
        valid &= m
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (H, W, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"rgb must be a uint8 array of shape ({H}, {W}, 3), got {rgb.dtype} {rgb.shape}"
            )
    ids_map = None
    if entity_id is not None and not np.isscalar(entity_id):
        ids_map = np.asarray(entity_id)
        if ids_map.shape != (H, W) or not np.issubdtype(ids_map.dtype, np.integer):
            raise ValueError(
                f"entity_id must be an int or an integer array of shape ({H}, {W}), "
                f"got {ids_map.dtype} {ids_map.shape}"
            )

    rows, cols = np.nonzero(valid)
    z = d[rows, cols]
    k_inv = np.linalg.inv(K)
    u = cols + 0.5
    v = rows + 0.5
    cam = np.empty((len(z), 3), np.float64)
    for i in range(3):
        cam[:, i] = (k_inv[i, 0] * u + k_inv[i, 1] * v + k_inv[i, 2]) * z
    xyz = cam @ T[:3, :3].T + T[:3, 3]
    colours = rgb[rows, cols] if rgb is not None else np.full((len(z), 3), _GREY, np.uint8)
    if ids_map is not None:
        ids = ids_map[rows, cols]
    elif entity_id is not None:
        ids = np.full(len(z), int(entity_id), np.int64)
    else:
        ids = None
    return PointCloud(xyz.astype(np.float32), colours, ids)


def remove_depth_edges(depth, rel_threshold: float, neighbors: int = 8) -> np.ndarray:
    """(H, W) bool mask of the pixels to KEEP: valid depth and not at a depth discontinuity.

    Two neighbouring pixels (4- or 8-neighbourhood) with valid depths a and b form an edge when
    ``|a - b| > rel_threshold * min(a, b)``; both are dropped, which removes the "flying
    pixels" depth models smear across object boundaries. Pixels with depth <= 0 or not finite
    are never kept and never make their neighbours edges.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be an (H, W) array, got shape {d.shape}")
    thr = float(rel_threshold)
    if not (thr >= 0.0 and math.isfinite(thr)):
        raise ValueError(f"rel_threshold must be a non-negative number, got {rel_threshold}")
    if neighbors not in (4, 8):
        raise ValueError(f"neighbors must be 4 or 8, got {neighbors}")
    valid = np.isfinite(d) & (d > 0)
    d = np.where(valid, d, 0.0)
    edge = np.zeros(d.shape, bool)
    H, W = d.shape
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if neighbors == 8 else [])
    for dy, dx in offsets:
        # Pixel p = (y, x) against q = (y + dy, x + dx), over every pair inside the image.
        ys, yq = slice(0, H - dy), slice(dy, H)
        xs, xq = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
        a, b = d[ys, xs], d[yq, xq]
        jump = valid[ys, xs] & valid[yq, xq] & (np.abs(a - b) > thr * np.minimum(a, b))
        edge[ys, xs] |= jump
        edge[yq, xq] |= jump
    return valid & ~edge


def dilate_mask(mask, pixels: int) -> np.ndarray:
    """(H, W) or (F, H, W) bool mask grown by ``pixels`` (a square neighbourhood)."""
    return _morph(mask, pixels, grow=True)


def erode_mask(mask, pixels: int) -> np.ndarray:
    """(H, W) or (F, H, W) bool mask shrunk by ``pixels`` (a square neighbourhood); pixels at
    the image border count as outside the mask's neighbourhood only through the mask itself."""
    return _morph(mask, pixels, grow=False)


def _morph(mask, pixels: int, grow: bool) -> np.ndarray:
    import cv2

    m = np.asarray(mask, dtype=bool)
    if m.ndim not in (2, 3):
        raise ValueError(f"mask must be (H, W) or (F, H, W), got shape {m.shape}")
    p = int(pixels)
    if p < 0:
        raise ValueError(f"pixels must be >= 0, got {pixels}")
    if p == 0 or not m.size:
        return m.copy()
    kernel = np.ones((2 * p + 1, 2 * p + 1), np.uint8)
    op = cv2.dilate if grow else cv2.erode
    # erosion keeps the border's pixels that the mask itself surrounds (BORDER_REPLICATE)
    frames = m.reshape(-1, *m.shape[-2:]).astype(np.uint8)
    out = np.stack([op(f, kernel, borderType=cv2.BORDER_REPLICATE) > 0 for f in frames])
    return out.reshape(m.shape)


def statistical_outliers(
    depth, K, mask, *, radius: int = 2, std_ratio: float = 2.5, min_neighbours: int = 3
) -> np.ndarray:
    """(H, W) bool: the pixels of ``mask`` whose points lie away from the rest (flying pixels,
    stray depth), found with statistical outlier removal over the image grid.

    Each pixel of ``mask`` with a valid depth is unprojected (camera frame); its score is the
    mean 3D distance to its valid ``mask`` neighbours within a (2 radius + 1)^2 window, divided
    by its own pixel footprint (depth / focal length), so that a surface facing the camera scores
    about 1-2 at any distance. A pixel is an outlier when its score exceeds both
    ``mean + std_ratio * std`` of the scores and twice their median, or when it has fewer than
    ``min_neighbours`` valid neighbours.
    """
    d = np.asarray(depth, np.float64)
    m = np.asarray(mask, bool) & np.isfinite(d) & (d > 0)
    if d.ndim != 2 or m.shape != d.shape:
        raise ValueError(f"depth and mask must be (H, W) arrays of one shape, got {d.shape}")
    K = _check_K(K)
    out = np.zeros(d.shape, bool)
    if not m.any():
        return out
    H, W = d.shape
    rows, cols = np.nonzero(m)
    z = d[rows, cols]
    k_inv = np.linalg.inv(K)
    pix = np.stack([cols + 0.5, rows + 0.5, np.ones(len(z))])
    pts = np.full((H, W, 3), np.nan)
    pts[rows, cols] = (k_inv @ pix).T * z[:, None]
    total = np.zeros(len(z))
    count = np.zeros(len(z), np.int64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            r2, c2 = rows + dy, cols + dx
            inside = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
            q = np.full((len(z), 3), np.nan)
            q[inside] = pts[r2[inside], c2[inside]]
            dist = np.linalg.norm(q - pts[rows, cols], axis=1)
            ok = np.isfinite(dist)
            total[ok] += dist[ok]
            count[ok] += 1
    lonely = count < min_neighbours
    score = np.where(lonely, np.inf, total / np.maximum(count, 1)) / (z / float(K[0, 0]))
    finite = np.isfinite(score)
    if finite.sum() >= 3:
        s = score[finite]
        limit = max(float(s.mean() + std_ratio * s.std()), 2.0 * float(np.median(s)))
        bad = ~finite | (score > limit)
    else:
        bad = np.ones(len(z), bool)  # a handful of isolated pixels: nothing to trust
    out[rows[bad], cols[bad]] = True
    return out
