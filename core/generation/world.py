"""The world the engine keeps: a static point cloud plus each entity's points, and how it is
rendered into a camera (z-buffer, nearest point wins) and grown from new frames.

Conventions (docs/CONVENTIONS.md): OpenCV camera axes, c2w 4x4 poses, K 3x3 in pixels for an
explicit (height, width); depth is z-depth, 0 where unknown. The static cloud never carries entity
ids (its ``entity_id`` is None); entities are kept apart, one :class:`EntityCloud` per entity per
frame, keyed by the project's entity ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from worldstudio.core.errors import ProjectError
from worldstudio.core.pointcloud.cloud import PointCloud

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.project import Project, ProjectFolder

MIN_ENTITY_PIXELS = 3
"""An entity with fewer pixels than this in a frame counts as not seen there."""


@dataclass(eq=False)
class EntityCloud:
    """One entity's points at one time: xyz (N, 3) float32, rgb (N, 3) uint8."""

    xyz: np.ndarray
    rgb: np.ndarray

    def __post_init__(self) -> None:
        self.xyz = np.ascontiguousarray(self.xyz, dtype=np.float32).reshape(-1, 3)
        self.rgb = np.ascontiguousarray(self.rgb, dtype=np.uint8).reshape(-1, 3)
        if len(self.xyz) != len(self.rgb):
            raise ValueError(f"entity cloud: {len(self.xyz)} points but {len(self.rgb)} colours")

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @classmethod
    def empty(cls) -> EntityCloud:
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))

    @property
    def centroid(self) -> np.ndarray | None:
        return None if len(self) == 0 else self.xyz.astype(np.float64).mean(axis=0)


# ---------------------------------------------------------------------------------- rendering
@dataclass
class WorldRender:
    """Renders of the world into B cameras (numpy).

    rgb (B, H, W, 3) uint8 (black where nothing was drawn); depth (B, H, W) float32 (0 where
    nothing); covered (B, H, W) bool; entity (B, H, W) int16: the index in ``entity_ids`` of the
    entity whose point won the pixel, -1 for static or empty pixels. ``pixels[eid]`` (B,) counts
    each entity's pixels and ``centroids[eid]`` (B, 3) is the mean world position of its drawn
    points (NaN where it drew none). ``scene_rgb`` / ``scene_depth`` are the static world alone
    (the scene projection, before the entities were drawn over it).
    """

    rgb: np.ndarray
    depth: np.ndarray
    covered: np.ndarray
    entity: np.ndarray
    entity_ids: list[str]
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    centroids: dict[str, np.ndarray] = field(default_factory=dict)
    scene_rgb: np.ndarray | None = None
    scene_depth: np.ndarray | None = None

    def entity_mask(self, eid: str) -> np.ndarray:
        """(B, H, W) bool: where entity ``eid`` won the z-buffer."""
        if eid not in self.entity_ids:
            return np.zeros(self.covered.shape, bool)
        return self.entity == self.entity_ids.index(eid)

    @property
    def any_entity(self) -> np.ndarray:
        return self.entity >= 0

    @property
    def static_depth(self) -> np.ndarray:
        """Depth where the static world won (0 elsewhere): the reference for depth alignment."""
        return np.where(self.entity >= 0, np.float32(0.0), self.depth).astype(np.float32)


def render_world(
    static: PointCloud,
    entity_frames: list[dict[str, EntityCloud]],
    c2w: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    entity_ids: list[str],
    radius: int = 0,
) -> WorldRender:
    """Splat the static cloud and, for camera i, the entity clouds ``entity_frames[i]`` into
    camera i (c2w (B, 4, 4), K (B, 3, 3)); the nearest point wins every pixel.

    The static cloud is rendered once for all B cameras; each camera's entity points are rendered
    separately (they differ per frame) and merged by depth (ties go to the static world).
    """
    from worldstudio.core.pointcloud.render import render_points

    c2w = np.asarray(c2w, np.float64)
    K = np.asarray(K, np.float64)
    B = c2w.shape[0]
    if len(entity_frames) != B:
        raise ValueError(f"render_world: {len(entity_frames)} entity frames for {B} cameras")
    H, W = int(height), int(width)
    if len(static):
        st = render_points(static.xyz, static.rgb, c2w, K, H, W, radius=radius)
        rgb = st.rgb.numpy()
        depth = st.depth.numpy()
        covered = st.mask.numpy()
    else:
        rgb = np.zeros((B, H, W, 3), np.uint8)
        depth = np.zeros((B, H, W), np.float32)
        covered = np.zeros((B, H, W), bool)
    scene_rgb, scene_depth = rgb.copy(), depth.copy()
    label = np.full((B, H, W), -1, np.int16)
    pixels = {eid: np.zeros(B, np.int64) for eid in entity_ids}
    centroids = {eid: np.full((B, 3), np.nan) for eid in entity_ids}
    index_of = {eid: k for k, eid in enumerate(entity_ids)}
    for i in range(B):
        parts = [
            (index_of[eid], c) for eid, c in entity_frames[i].items() if eid in index_of and len(c)
        ]
        if not parts:
            continue
        xyz = np.concatenate([c.xyz for _, c in parts])
        cols = np.concatenate([c.rgb for _, c in parts])
        labels = np.concatenate([np.full(len(c), k, np.int16) for k, c in parts])
        pix, z, winners = splat_small(xyz, c2w[i], K[i], H, W, radius)
        flat_depth = depth[i].reshape(-1)
        flat_cov = covered[i].reshape(-1)
        win = ~flat_cov[pix] | (z < flat_depth[pix])
        if not win.any():
            continue
        pix, z, winners = pix[win], z[win], winners[win]
        rgb[i].reshape(-1, 3)[pix] = cols[winners]
        flat_depth[pix] = z
        flat_cov[pix] = True
        win_labels = labels[winners]
        label[i].reshape(-1)[pix] = win_labels
        for k, _ in parts:
            eid = entity_ids[k]
            sel = winners[win_labels == k]
            pixels[eid][i] = sel.size
            if sel.size:
                centroids[eid][i] = xyz[sel].astype(np.float64).mean(axis=0)
    return WorldRender(
        rgb, depth, covered, label, list(entity_ids), pixels, centroids, scene_rgb, scene_depth
    )


def splat_small(
    xyz: np.ndarray,
    c2w: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    radius: int = 0,
    near: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A numpy z-buffer for small clouds (an entity in one frame), with the renderer's
    conventions (core.pointcloud.render: pixel floor(u), floor(v); z > near; nearest point wins,
    ties to the lowest index; radius r splats the (2r + 1)^2 square). Cheaper than a torch call
    for a few thousand points. Returns, per covered pixel: its flat index (v * W + u), the depth
    and the index of the winning point."""
    P = K @ np.linalg.inv(np.asarray(c2w, np.float64))[:3]
    X = np.asarray(xyz, np.float64)
    cam = X @ P[:, :3].T + P[:, 3]
    z = cam[:, 2]
    ok = np.isfinite(cam).all(axis=1) & (z > near)
    idx = np.flatnonzero(ok)
    z = z[ok]
    u = np.floor(cam[ok, 0] / z).astype(np.int64)
    v = np.floor(cam[ok, 1] / z).astype(np.int64)
    if radius > 0:
        offsets = [
            (dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
        ]
        u = np.concatenate([u + dx for _, dx in offsets])
        v = np.concatenate([v + dy for dy, _ in offsets])
        z = np.tile(z, len(offsets))
        idx = np.tile(idx, len(offsets))
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z, idx = u[inside], v[inside], z[inside], idx[inside]
    pix = v * width + u
    zf = z.astype(np.float32)
    order = np.lexsort((idx, zf, pix))
    pix, zf, idx = pix[order], zf[order], idx[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    return pix[first], zf[first], idx[first]


# ---------------------------------------------------------------------------------- growing
def grow_static(
    frames: np.ndarray,
    depth: np.ndarray,
    c2w: np.ndarray,
    K: np.ndarray,
    holes: np.ndarray,
    exclude: np.ndarray,
    radius: int = 0,
) -> PointCloud:
    """New static points from frames: pixels where the render had a hole (``holes`` (F, H, W)),
    no entity is masked (``exclude``) and the depth is known.

    Frames are taken in order; a frame adds nothing where points added by earlier frames of the
    same call already reach (so a hole seen by many frames is filled once).
    """
    from worldstudio.core.pointcloud.ops import unproject_depth

    F, H, W = holes.shape
    added: list[PointCloud] = []
    acc_xyz = np.zeros((0, 3), np.float32)
    for i in range(F):
        d = depth[i]
        grow = holes[i] & ~exclude[i] & np.isfinite(d) & (d > 0)
        if not grow.any():
            continue
        if len(acc_xyz):
            reached = np.zeros(H * W, bool)
            reached[splat_small(acc_xyz, c2w[i], K[i], H, W, radius)[0]] = True
            grow &= ~reached.reshape(H, W)
            if not grow.any():
                continue
        pc = unproject_depth(d, K[i], c2w[i], rgb=frames[i], mask=grow)
        added.append(pc)
        acc_xyz = np.concatenate([acc_xyz, pc.xyz])
    if not added:
        return PointCloud.empty()
    return PointCloud.concat(added)


def add_static(static: PointCloud, new: PointCloud) -> PointCloud:
    if not len(new):
        return static
    return PointCloud(np.concatenate([static.xyz, new.xyz]), np.concatenate([static.rgb, new.rgb]))


# ---------------------------------------------------------------------------------- start
def load_mask_png(path: str | os.PathLike) -> np.ndarray:
    """A mask PNG (any mode) -> (H, W) bool (nonzero = in the mask)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L")) > 127
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ProjectError(f"{path}: not a readable mask image ({exc})") from exc


def initial_world(
    folder: ProjectFolder, project: Project
) -> tuple[PointCloud, dict[str, EntityCloud]]:
    """The world before round 0, from the project's scene cloud: each entity's points are those
    of the cloud that win the z-buffer inside its mask (seen from where it was defined, with the
    source image's intrinsics); the static cloud is everything else (points the reconstruction
    tagged with an entity id are never static)."""
    from worldstudio.core.geometry.transforms import pose_matrix
    from worldstudio.core.pointcloud.render import render_points

    cloud = folder.read_cloud(project)
    n = len(cloud)
    taken = np.zeros(n, bool) if cloud.entity_id is None else cloud.entity_id != -1
    states: dict[str, EntityCloud] = {}
    intr = project.intrinsics
    for e in project.entities:
        sel = np.zeros(n, bool)
        if e.mask_file and intr is not None and n:
            path = folder.path(e.mask_file)
            if not path.is_file():
                raise ProjectError(f"{path}: the mask of entity {e.name!r} is missing")
            mask = load_mask_png(path)
            if mask.shape != (intr.height, intr.width):
                raise ProjectError(
                    f"{path}: the mask of entity {e.name!r} is {mask.shape[1]}x{mask.shape[0]}, "
                    f"the source image is {intr.width}x{intr.height}"
                )
            pose = np.eye(4)
            if e.defined_from is not None:
                pose = pose_matrix(e.defined_from.position, e.defined_from.orientation)
            r = render_points(
                cloud.xyz, None, pose, np.asarray(intr.K, np.float64), intr.height, intr.width
            )
            index = r.index[0].numpy()
            winners = index[mask & (index >= 0)]
            sel[winners] = True
        states[e.id] = EntityCloud(cloud.xyz[sel], cloud.rgb[sel])
        taken |= sel
    keep = ~taken
    static = PointCloud(cloud.xyz[keep], cloud.rgb[keep])
    return static, states
