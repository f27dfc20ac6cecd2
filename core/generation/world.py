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
VOXEL_FOOTPRINTS = 1.0
"""Voxel edges in pixel footprints (depth / focal length): the base voxel is this many
footprints at the initial cloud's median depth (source camera, video resolution), and a
candidate point is looked up at the coarsest level no larger than this many of its own
footprints. One point per voxel keeps a grown surface about as dense as the pixels it came
from, and no denser."""

ENTITY_MARGIN = 2
"""Pixels around an entity (tracked, or drawn in the render) that never grow the static world:
the entity's outline blends into its background in generated frames."""

PINHOLE_NEIGHBOURS = 5
"""An uncovered render pixel with at least this many of its 8 neighbours covered is a pinhole
between the world's points, not a hole in the world."""

CHECK_FRAMES = 8
"""At most this many other frames of the round check each candidate static point."""
DEPTH_TOLERANCE = 0.06
"""Relative depth difference within which a frame's depth confirms a candidate point."""
COLOUR_TOLERANCE = 30.0
"""Mean absolute RGB difference (0-255) within which a frame's colour confirms a candidate."""
MIN_AGREEMENT = 0.6
"""A candidate grows when at least this fraction of the frames that could see it confirm it."""

LEVELS = tuple(range(-4, 7))
"""Levels of the voxel pyramid: edges from 1/16 to 64 times the base voxel."""

_CELL_BITS = 21
_CELL_HALF = 1 << (_CELL_BITS - 1)


@dataclass
class VoxelGrid:
    """Which voxels hold a static point, in a pyramid of regular grids: level L has edge
    ``size * 2**L`` (cells ``floor(xyz / edge)``), L from :data:`LEVELS`.

    A candidate point is looked up at the level that matches its pixel footprint in the frame
    it comes from (:meth:`level_of`): a surface seen from afar grows coarse, seen from close
    grows fine, and a voxel holding any point (of any level) takes no other. Each level's keys
    are built when first asked for, from the points taken in (:meth:`take`); a point outside a
    grid's range (2^20 cells either side of the origin) or not finite has key -1 and counts as
    occupied (it never grows)."""

    size: float
    points: int = 0  # how many points of the static cloud the grid has taken in
    _xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32), repr=False)
    _keys: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not (self.size > 0 and np.isfinite(self.size)):
            raise ValueError(f"voxel size must be a positive number, got {self.size}")

    def edge(self, level: int) -> float:
        return self.size * 2.0 ** int(level)

    def level_of(self, depth: np.ndarray, focal_px: float) -> np.ndarray:
        """(N,) int level for points at z-depth ``depth`` in a camera of focal length
        ``focal_px``: the coarsest edge no larger than :data:`VOXEL_FOOTPRINTS` footprints."""
        footprint = VOXEL_FOOTPRINTS * np.asarray(depth, np.float64) / float(focal_px)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.floor(np.log2(footprint / self.size))
        level = np.where(np.isfinite(level), level, LEVELS[0])
        return np.clip(level, LEVELS[0], LEVELS[-1]).astype(np.int64)

    def cell_keys(self, xyz: np.ndarray, level: int) -> np.ndarray:
        """(N,) int64 key of each point's voxel at ``level`` (-1 outside the grid)."""
        edge = self.edge(level)
        cells = np.floor(np.asarray(xyz, np.float32).astype(np.float64) / edge)
        inside = np.isfinite(cells) & (np.abs(cells) < _CELL_HALF - 1)
        ok = np.asarray(inside.all(axis=1), bool)
        c = np.where(ok[:, None], cells, 0).astype(np.int64) + _CELL_HALF
        keys = (c[:, 0] << (2 * _CELL_BITS)) | (c[:, 1] << _CELL_BITS) | c[:, 2]
        return np.where(ok, keys, np.int64(-1))

    def keys(self, level: int) -> np.ndarray:
        """The sorted occupied keys of ``level``."""
        level = int(level)
        if level not in self._keys:
            self._keys[level] = _unique_keys(self.cell_keys(self._xyz, level))
        return self._keys[level]

    def occupied(self, keys: np.ndarray, level: int) -> np.ndarray:
        return _contains(self.keys(level), keys) | (np.asarray(keys) < 0)

    def take(self, static: PointCloud) -> None:
        """Take in the static cloud's points added since the last call (the cloud only grows at
        its end: existing points never change)."""
        if len(static) < self.points:
            raise ValueError("the static cloud lost points: the voxel grid no longer matches it")
        new = static.xyz[self.points :]
        if len(new):
            for level, keys in self._keys.items():
                self._keys[level] = _unique_keys(self.cell_keys(new, level), keys)
        self._xyz = static.xyz
        self.points = len(static)


def _unique_keys(keys: np.ndarray, sorted_keys: np.ndarray | None = None) -> np.ndarray:
    """The sorted unique valid (>= 0) ``keys``, merged with ``sorted_keys`` if given (a radix
    sort: much faster than np.unique's hashing on millions of int64 keys)."""
    k = keys[keys >= 0]
    if sorted_keys is not None:
        k = np.concatenate([sorted_keys, k])
    k = np.sort(k, kind="stable")
    if len(k) < 2:
        return k
    keep = np.empty(len(k), bool)
    keep[0] = True
    np.not_equal(k[1:], k[:-1], out=keep[1:])
    return k[keep]


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, np.int64)
    if not len(sorted_keys):
        return np.zeros(keys.shape, bool)
    at = np.searchsorted(sorted_keys, keys).clip(0, len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def world_holes(covered: np.ndarray) -> np.ndarray:
    """(..., H, W) bool: the uncovered pixels of a render that are holes in the world, not
    pinholes between its points: a pinhole is an uncovered pixel with at least
    :data:`PINHOLE_NEIGHBOURS` of its 8 neighbours covered (the conditioning fills it from
    them), and the world grows no point there."""
    c = np.asarray(covered, bool)
    H, W = c.shape[-2:]
    pad = np.pad(c, [(0, 0)] * (c.ndim - 2) + [(1, 1), (1, 1)]).astype(np.int8)
    count = np.zeros(c.shape, np.int8)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                count += pad[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
    return ~c & (count < PINHOLE_NEIGHBOURS)


def voxel_size_for(static: PointCloud, focal_px: float, footprints: float = VOXEL_FOOTPRINTS):
    """The static world's voxel edge: ``footprints`` pixel footprints (depth / ``focal_px``) at
    the median depth of the initial cloud seen from the source camera (the identity pose, as
    the reconstruction puts it). 1 cm x ``footprints`` when there is no point in front of it."""
    z = static.xyz[:, 2].astype(np.float64)
    z = z[np.isfinite(z) & (z > 0)]
    depth = float(np.median(z)) if len(z) else 0.01 * float(focal_px)
    return footprints * depth / float(focal_px)


def grow_static(
    frames: np.ndarray,
    depth: np.ndarray,
    c2w: np.ndarray,
    K: np.ndarray,
    holes: np.ndarray,
    exclude: np.ndarray,
    grid: VoxelGrid,
    *,
    check: bool = True,
) -> PointCloud:
    """New static points from a round's frames (F, H, W, 3) and their lifted depth (F, H, W).

    A pixel is a candidate where the render had a hole (``holes``), ``exclude`` (entities and
    their margin) is False and the depth is known. Its point is kept only when its voxel is free
    in ``grid`` and not yet taken by an earlier candidate of the call (frames in order, pixels in
    row-major order: the first wins), and, with ``check``, when the other frames of the round
    agree that a static surface is there (:func:`consistent_points`): a thing that moves
    without being tracked is seen elsewhere in the other frames and does not freeze into the
    world. ``grid`` is not changed (take the result in with :meth:`VoxelGrid.take`).
    """
    from worldstudio.core.pointcloud.ops import unproject_depth

    F = holes.shape[0]
    added: list[PointCloud] = []
    taken: dict[int, np.ndarray] = {}  # level -> keys of this call's points
    for i in range(F):
        d = depth[i]
        grow = holes[i] & ~exclude[i] & np.isfinite(d) & (d > 0)
        if not grow.any():
            continue
        pc = unproject_depth(d, K[i], c2w[i], rgb=frames[i], mask=grow)
        levels = grid.level_of(d[grow], float(K[i][1, 1]))
        pick_parts = []
        for level in np.unique(levels):
            at = np.flatnonzero(levels == level)
            keys = grid.cell_keys(pc.xyz[at], int(level))
            if int(level) not in taken:
                taken[int(level)] = _unique_keys(grid.cell_keys(_points_of(added), int(level)))
            free = ~grid.occupied(keys, int(level)) & ~_contains(taken[int(level)], keys)
            # one candidate per voxel: the first pixel in row-major order
            pick_parts.append(at[np.flatnonzero(free)[_first_of_each(keys[free])]])
        pick = np.sort(np.concatenate(pick_parts))
        if check and len(pick):
            ok = consistent_points(pc.xyz[pick], pc.rgb[pick], i, frames, depth, c2w, K)
            pick = pick[ok]
        if not len(pick):
            continue
        new = pc.select(pick)
        added.append(new)
        for level in taken:
            taken[level] = _unique_keys(grid.cell_keys(new.xyz, level), taken[level])
    if not added:
        return PointCloud.empty()
    return PointCloud.concat(added)


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct key, in key order."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    first = np.ones(len(k), bool)
    first[1:] = k[1:] != k[:-1]
    return order[first]


def _points_of(clouds: list[PointCloud]) -> np.ndarray:
    if not clouds:
        return np.zeros((0, 3), np.float32)
    return np.concatenate([c.xyz for c in clouds])


def consistent_points(
    xyz: np.ndarray,
    rgb: np.ndarray,
    frame: int,
    frames: np.ndarray,
    depth: np.ndarray,
    c2w: np.ndarray,
    K: np.ndarray,
) -> np.ndarray:
    """(N,) bool: which candidate points from frame ``frame`` the round's other frames confirm.

    Each point is projected into up to :data:`CHECK_FRAMES` other frames, spread over the round.
    A frame *confirms* it when, in the 3x3 pixels around its projection, one has a depth within
    :data:`DEPTH_TOLERANCE` and a colour within :data:`COLOUR_TOLERANCE` of the point's; it
    *contradicts* it when none does and the frame sees through the point (its depth there is
    larger) or sees something else at the same depth; it says nothing when the point falls
    outside the frame, behind its camera, behind something nearer, or on unknown depth. A point
    is kept when confirmations are at least :data:`MIN_AGREEMENT` of the frames that said
    something, and the one of them farthest in time from ``frame`` confirms it (a thing that
    moves is still near where it was in the next frames, not at the other end of the round).
    """
    F, H, W = depth.shape
    n = len(xyz)
    others = [j for j in range(F) if j != frame]
    if len(others) > CHECK_FRAMES:
        at = np.linspace(0, len(others) - 1, CHECK_FRAMES).round().astype(int)
        others = [others[k] for k in np.unique(at)]
    confirm = np.zeros(n, np.int64)
    contradict = np.zeros(n, np.int64)
    # per point, the farthest frame in time that said something, and what it said
    farthest = np.full(n, -1, np.int64)
    farthest_confirms = np.zeros(n, bool)
    X = np.asarray(xyz, np.float64)
    colour = np.asarray(rgb, np.int16)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for j in others:
        P = K[j] @ np.linalg.inv(c2w[j])[:3]
        cam = X @ P[:, :3].T + P[:, 3]
        z = cam[:, 2]
        idx = np.flatnonzero(z > 1e-4)
        u = np.floor(cam[idx, 0] / z[idx])
        v = np.floor(cam[idx, 1] / z[idx])
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
        idx, us, vs = idx[inside], u[inside].astype(np.int64), v[inside].astype(np.int64)
        if not len(idx):
            continue
        zs = z[idx].astype(np.float32)
        flat_depth = depth[j].reshape(-1)
        flat_rgb = frames[j].reshape(-1, 3)
        match = np.zeros(len(idx), bool)
        for dy, dx in offsets:
            pix = np.clip(vs + dy, 0, H - 1) * W + np.clip(us + dx, 0, W - 1)
            dj = flat_depth[pix]
            near = np.flatnonzero(~match & (np.abs(dj - zs) <= DEPTH_TOLERANCE * zs))
            if not len(near):
                continue
            diff = np.abs(flat_rgb[pix[near]].astype(np.int16) - colour[idx[near]]).sum(axis=1)
            match[near[diff <= 3 * COLOUR_TOLERANCE]] = True
        centre = flat_depth[vs * W + us]
        known = np.isfinite(centre) & (centre > 0)
        occluded = centre < (1.0 - DEPTH_TOLERANCE) * zs
        confirm[idx[match]] += 1
        against = ~match & known & ~occluded
        contradict[idx[against]] += 1
        said = idx[match | against]
        later = abs(j - frame) >= farthest[said]
        farthest[said[later]] = abs(j - frame)
        farthest_confirms[said[later]] = match[match | against][later]
    said = confirm + contradict
    return (confirm >= 1) & (confirm >= MIN_AGREEMENT * said) & farthest_confirms


def add_static(static: PointCloud, new: PointCloud) -> PointCloud:
    """The static cloud with ``new`` points appended (existing points never change)."""
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
