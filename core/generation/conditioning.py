"""What each generation call is conditioned on, built from the world's renders (docs/METHOD.md).

A render of the world into a camera has two layers (LiveWorld's State Adapter keeps them apart):
the **scene projection** (the static cloud) and the **foreground projection** (the entities'
points, z-tested against the static world). Splatting one point per source pixel leaves holes
wherever the camera comes closer than the source view, so before anything is shown to a model:

1. **Pinholes are filled.** An empty pixel with at least 5 of its 8 neighbours covered takes the
   colour and depth of the covered neighbour whose depth is nearest the neighbours' median; a
   pixel that shows a far surface through such a gap ("see-through": deeper than ``1 + tau``
   times at least 5 of its neighbours) is refilled the same way from the nearer ones. Two passes
   at 5 of 8, then two at 3 of 8 restricted to thin gaps (empty pixels in no 5x5 empty square),
   close the 1-3 pixel gaps a dolly-in opens without eating into real holes. The foreground
   layer is filled the same way where its gaps show the static world behind the entity.
2. **The observer's mask** ("generate") is: holes left after filling, sparse regions (fewer than
   half of a 9x9 window's pixels were reached by a point), depth discontinuities (deeper than
   ``1 + tau`` times the nearest depth in a 5x5 window: background seen through gaps and the
   band behind every silhouette) and entity regions (the foreground projection dilated by 2
   pixels: the foreground is the hint there, not a pixel to keep).
3. **The mask is cleaned** so that it looks like the masks the model was trained on: a 3x3
   closing, components smaller than ``min_region`` pixels dropped (unless they hold an entity:
   those pixels become "keep", coloured from the nearest covered pixel) and a final dilation.

Monitors get the scene projection (pinholes filled) and the whole frame to generate: the render
is a soft hint whose weight is the monitor's conditioning strength.

numpy and OpenCV only (no torch): the studio's previews may call it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAU = 0.1
"""Relative depth jump that counts as a discontinuity (and as a see-through pinhole)."""
WINDOW = 5
"""Side of the window of the sparse-region and discontinuity tests."""
MIN_COVERED = 0.5
"""A window where fewer than this fraction of pixels were reached by a point is sparse."""
ENTITY_DILATION = 2
"""Pixels an entity's region grows by before it becomes "generate"."""
FINAL_DILATION = 1
"""Pixels the cleaned mask grows by."""

_OFFSETS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def default_min_region(height: int, width: int) -> int:
    """Generate regions smaller than this (pixels) are dropped: ~40 at 832x480, 4 at least."""
    return max(4, (int(height) * int(width)) // 10_000)


# ------------------------------------------------------------------------------ layers
@dataclass
class Layers:
    """One camera's conditioning for F frames.

    scene_rgb (F, H, W, 3) uint8 and scene_depth (F, H, W) float32: the static world, pinholes
    filled, black / 0 in holes; fg_rgb, fg_depth and fg_labels (F, H, W) int16 (index into
    ``entity_ids``, -1 none): the entities; filled (F, H, W) bool: scene pixels the filling
    gave a colour (no point of theirs won there); covered (F, H, W) bool: scene pixels a static
    point reached, before filling.
    """

    scene_rgb: np.ndarray
    scene_depth: np.ndarray
    fg_rgb: np.ndarray
    fg_depth: np.ndarray
    fg_labels: np.ndarray
    filled: np.ndarray
    covered: np.ndarray
    entity_ids: list[str]

    @property
    def composite(self) -> np.ndarray:
        """The foreground over the scene: what a single control video shows."""
        return compose(self.scene_rgb, self.fg_rgb, self.fg_labels)

    @property
    def composite_depth(self) -> np.ndarray:
        return np.where(self.fg_labels >= 0, self.fg_depth, self.scene_depth).astype(np.float32)


def repeat_layers(layers: Layers, n: int) -> Layers:
    """One frame's layers repeated for ``n`` frames (a monitor's fixed view)."""

    def rep(a: np.ndarray) -> np.ndarray:
        return np.repeat(a[:1], n, axis=0)

    return Layers(
        rep(layers.scene_rgb),
        rep(layers.scene_depth),
        rep(layers.fg_rgb),
        rep(layers.fg_depth),
        rep(layers.fg_labels),
        rep(layers.filled),
        rep(layers.covered),
        list(layers.entity_ids),
    )


def select_entities(layers: Layers, entity_ids: list[str]) -> Layers:
    """``layers`` whose foreground keeps only ``entity_ids`` (labels index into them)."""
    old = layers.entity_ids
    remap = np.array([entity_ids.index(e) if e in entity_ids else -1 for e in old] + [-1], np.int16)
    labels = remap[layers.fg_labels]  # -1 indexes the appended -1
    gone = labels < 0
    fg_rgb = np.where(gone[..., None], 0, layers.fg_rgb).astype(np.uint8)
    fg_depth = np.where(gone, 0, layers.fg_depth).astype(np.float32)
    return Layers(
        layers.scene_rgb,
        layers.scene_depth,
        fg_rgb,
        fg_depth,
        labels,
        layers.filled,
        layers.covered,
        list(entity_ids),
    )


def compose(scene: np.ndarray, fg: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray:
    """The foreground layer over the scene layer (where ``labels`` >= 0)."""
    out = np.array(scene, np.uint8, copy=True)
    if fg is not None and labels is not None:
        on = labels >= 0
        out[on] = fg[on]
    return out


def layers_from_render(render, *, fill: bool = True) -> Layers:
    """Split a :class:`~worldstudio.core.generation.world.WorldRender` (which keeps its scene
    layer) into the two projections, pinholes filled (``fill=False``: as rendered)."""
    scene_rgb = np.array(render.scene_rgb, np.uint8, copy=True)
    scene_depth = np.array(render.scene_depth, np.float32, copy=True)
    covered = scene_depth > 0
    labels = np.array(render.entity, np.int16, copy=True)
    on = labels >= 0
    fg_rgb = np.where(on[..., None], render.rgb, 0).astype(np.uint8)
    fg_depth = np.where(on, render.depth, 0).astype(np.float32)
    filled = np.zeros(covered.shape, bool)
    if fill:
        for i in range(scene_rgb.shape[0]):
            filled[i] = fill_pinholes(scene_rgb[i], scene_depth[i])
            fill_foreground(fg_rgb[i], fg_depth[i], labels[i], scene_depth[i])
    return Layers(
        scene_rgb,
        scene_depth,
        fg_rgb,
        fg_depth,
        labels,
        filled,
        covered,
        list(render.entity_ids),
    )


# ------------------------------------------------------------------------------ pinholes
# Off the image, a pixel's neighbours are mirrored (the image's own pixels across its border),
# so that border pixels are filled like the others.
def _neighbours(a: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(8, N): the 8 neighbours of pixels (ys, xs) of ``a`` (mirrored at the border)."""
    p = np.pad(a, 1, mode="reflect")
    return np.stack([p[ys + 1 + dy, xs + 1 + dx] for dy, dx in _OFFSETS])


def _neighbour_source(ys, xs, pick, shape) -> tuple[np.ndarray, np.ndarray]:
    """The image pixel of neighbour ``pick`` of (ys, xs), mirrored at the border."""
    h, w = shape
    sy, sx = ys + _OFFSETS[pick, 0], xs + _OFFSETS[pick, 1]
    sy = np.where(sy < 0, -sy, np.where(sy >= h, 2 * h - 2 - sy, sy))
    sx = np.where(sx < 0, -sx, np.where(sx >= w, 2 * w - 2 - sx, sx))
    return sy, sx


def _neighbour_count(cov: np.ndarray, mirrored: bool = True) -> np.ndarray:
    p = (np.pad(cov, 1, mode="reflect") if mirrored else np.pad(cov, 1)).astype(np.uint8)
    H, W = cov.shape
    count = np.zeros((H, W), np.uint8)
    for dy, dx in _OFFSETS:
        count += p[1 + dy : H + 1 + dy, 1 + dx : W + 1 + dx]
    return count


def _pick(depths: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``depths`` (8, N): the median of its valid entries and the index of the
    valid entry nearest that median."""
    d = np.where(valid, depths, np.inf)
    srt = np.sort(d, axis=0)
    k = valid.sum(axis=0)
    lo = np.take_along_axis(srt, ((k - 1) // 2)[None], axis=0)[0]
    hi = np.take_along_axis(srt, (k // 2)[None], axis=0)[0]
    median = 0.5 * (lo + hi)
    return median, np.argmin(np.abs(d - median), axis=0)


def thin_holes(depth: np.ndarray, thick: int = 5) -> np.ndarray:
    """Empty pixels (depth 0) that lie in no ``thick`` x ``thick`` square of empty pixels: gaps
    between splatted points, not regions the world has nothing for."""
    import cv2

    holes = (depth <= 0).astype(np.uint8)
    kernel = np.ones((thick, thick), np.uint8)
    big = cv2.morphologyEx(
        holes, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return (holes > 0) & (big == 0)


def fill_pinholes(
    rgb: np.ndarray,
    depth: np.ndarray,
    *,
    neighbours: tuple[int, ...] = (5, 5, 3, 3),
    thick: int = 5,
    tau: float = TAU,
) -> np.ndarray:
    """Fill one frame's pinholes in place (rgb (H, W, 3), depth (H, W), 0 = empty); returns the
    (H, W) bool mask of the pixels it filled.

    One pass per entry of ``neighbours``: an empty pixel with at least that many covered
    neighbours, or a covered pixel deeper than ``1 + tau`` times at least that many of its
    neighbours (a far surface seen through a gap), takes the colour and depth of the (nearer)
    covered neighbour whose depth is nearest their median. The design's rule is two passes at 5
    of 8; the passes at 3 close the 2-3 pixel gaps in front of a camera that came closer, and
    only fill the gaps of :func:`thin_holes`, never a region the world has nothing for.
    """
    fillable = thin_holes(depth, thick)
    filled = np.zeros(depth.shape, bool)
    H, W = depth.shape
    for need in neighbours:
        # the 8 neighbours of every pixel as views of one mirrored copy (no per-pixel gathers)
        padded = np.pad(depth, 1, mode="reflect")
        shifts = [padded[1 + dy : H + 1 + dy, 1 + dx : W + 1 + dx] for dy, dx in _OFFSETS]
        cov = depth > 0
        count = np.zeros(depth.shape, np.uint8)
        nearer = np.zeros(depth.shape, np.uint8)
        far = depth / (1.0 + tau)
        for n in shifts:
            count += n > 0
            nearer += (n > 0) & (n < far)
        # empty pixels among enough covered neighbours, and covered pixels that show a far
        # surface through a gap of nearer ones
        cand = (~cov & (count >= need) & (fillable | (need >= 5))) | (
            cov & (nearer >= max(need, 5))
        )
        ys, xs = np.nonzero(cand)
        if not ys.size:
            continue
        nd = np.stack([n[ys, xs] for n in shifts])
        valid = nd > 0
        d0 = depth[ys, xs]
        # a see-through pixel is refilled from its nearer neighbours only
        valid &= (d0 == 0) | (nd * (1.0 + tau) < d0)
        ok = valid.sum(axis=0) >= need
        ys, xs, nd, valid = ys[ok], xs[ok], nd[:, ok], valid[:, ok]
        if not ys.size:
            continue
        _, pick = _pick(nd, valid)
        sy, sx = _neighbour_source(ys, xs, pick, depth.shape)
        rgb[ys, xs] = rgb[sy, sx]
        depth[ys, xs] = depth[sy, sx]
        filled[ys, xs] = True
    return filled


def fill_foreground(
    rgb: np.ndarray,
    depth: np.ndarray,
    labels: np.ndarray,
    scene_depth: np.ndarray,
    *,
    passes: int = 2,
    min_neighbours: int = 5,
    tau: float = TAU,
) -> np.ndarray:
    """Fill one frame's foreground pinholes in place: a pixel with no entity, at least
    ``min_neighbours`` entity neighbours and nothing of the static world in front of them takes
    the colour, depth and label of the entity neighbour nearest their median depth."""
    filled = np.zeros(labels.shape, bool)
    for _ in range(max(1, passes)):
        on = labels >= 0
        ys, xs = np.nonzero(~on & (_neighbour_count(on) >= min_neighbours))
        if not ys.size:
            break
        nd = _neighbours(np.where(on, depth, 0.0), ys, xs)
        valid = nd > 0
        median, pick = _pick(nd, valid)
        behind = scene_depth[ys, xs]
        ok = (behind <= 0) | (behind > (1.0 + tau) * median)
        ys, xs, pick = ys[ok], xs[ok], pick[ok]
        if not ys.size:
            break
        sy, sx = _neighbour_source(ys, xs, pick, depth.shape)
        rgb[ys, xs] = rgb[sy, sx]
        depth[ys, xs] = depth[sy, sx]
        labels[ys, xs] = labels[sy, sx]
        filled[ys, xs] = True
    return filled


def fill_nearest(rgb: np.ndarray, depth: np.ndarray, todo: np.ndarray) -> None:
    """Give every ``todo`` pixel (H, W) the colour and depth of the nearest pixel with depth > 0
    and not in ``todo`` (in place; nothing when there is none)."""
    import cv2

    source = (depth > 0) & ~todo
    if not todo.any() or not source.any():
        return
    # distance to the nearest zero pixel of src, and that pixel's label
    src = np.where(source, 0, 255).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    where = np.zeros(int(labels.max()) + 1, np.int64)
    flat_sources = np.flatnonzero(source)
    where[labels.reshape(-1)[flat_sources]] = flat_sources
    ys, xs = np.nonzero(todo)
    nearest = where[labels[ys, xs]]
    rgb.reshape(-1, 3)[ys * rgb.shape[1] + xs] = rgb.reshape(-1, 3)[nearest]
    depth.reshape(-1)[ys * depth.shape[1] + xs] = depth.reshape(-1)[nearest]


# ------------------------------------------------------------------------------ masks
def _box_fraction(a: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.blur(a.astype(np.float32), (size, size), borderType=cv2.BORDER_REFLECT)


def _window_min(depth: np.ndarray, size: int) -> np.ndarray:
    import cv2

    d = np.where(depth > 0, depth, np.float32(np.inf)).astype(np.float32)
    kernel = np.ones((size, size), np.uint8)
    return cv2.erode(d, kernel, borderType=cv2.BORDER_REPLICATE)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    if px <= 0:
        return mask
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


@dataclass
class MaskParts:
    """The parts of one frame's observer mask, before cleaning (each (H, W) bool)."""

    holes: np.ndarray
    sparse: np.ndarray
    discontinuity: np.ndarray
    entity: np.ndarray

    @property
    def union(self) -> np.ndarray:
        return self.holes | self.sparse | self.discontinuity | self.entity


def mask_parts(
    covered: np.ndarray,
    depth: np.ndarray,
    labels: np.ndarray,
    *,
    tau: float = TAU,
    window: int = WINDOW,
    min_covered: float = MIN_COVERED,
    entity_dilation: int = ENTITY_DILATION,
) -> MaskParts:
    """One frame's generate regions: covered (H, W): pixels a static point reached, before
    filling; depth (H, W): the filled scene depth with the foreground over it (0 in holes);
    labels (H, W) int16: the foreground's entity per pixel (-1 none)."""
    holes = depth <= 0
    # a wider window for density: over 5x5 the fraction of covered pixels beats with the grid of
    # gaps a dolly-in leaves, and the sparse regions come out as a lattice of thin lines
    sparse = _box_fraction(covered, 2 * window - 1) < min_covered
    near = _window_min(depth, window)
    discontinuity = (depth > 0) & (depth > (1.0 + tau) * near)
    entity = _dilate(labels >= 0, entity_dilation)
    return MaskParts(holes, sparse, discontinuity, entity)


def clean_mask(
    mask: np.ndarray,
    keep_whole: np.ndarray,
    *,
    min_region: int,
    dilation: int = FINAL_DILATION,
) -> np.ndarray:
    """A 3x3 closing, then every 8-connected component smaller than ``min_region`` pixels that
    holds no ``keep_whole`` pixel is dropped, then a dilation by ``dilation`` pixels."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
    closed |= mask  # closing never removes, but the border handling may: keep what was asked
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed.astype(np.uint8), connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= min_region
    touches = np.bincount(labels[keep_whole & closed], minlength=n) > 0
    keep = big | touches
    keep[0] = False  # the background label
    out = keep[labels]
    return _dilate(out, dilation)


@dataclass
class ObserverMask:
    """The observer's mask for F frames (True: generate) and its parts, for statistics."""

    mask: np.ndarray  # (F, H, W) bool
    holes: float  # fractions of all pixels, before cleaning
    sparse: float
    discontinuity: float
    entity: float


def observer_mask(layers: Layers, *, min_region: int | None = None) -> ObserverMask:
    """The observer's generate mask for ``layers`` (see the module docstring). Pixels a cleaning
    turns into "keep" that had no colour get the nearest covered pixel's colour and depth, in
    ``layers.scene_rgb`` / ``layers.scene_depth`` (and count as ``filled``)."""
    F, H, W = layers.fg_labels.shape
    if min_region is None:
        min_region = default_min_region(H, W)
    out = np.zeros((F, H, W), bool)
    totals = np.zeros(4)
    for i in range(F):
        depth = np.where(layers.fg_labels[i] >= 0, layers.fg_depth[i], layers.scene_depth[i])
        parts = mask_parts(layers.covered[i], depth, layers.fg_labels[i])
        totals += [
            parts.holes.mean(),
            parts.sparse.mean(),
            parts.discontinuity.mean(),
            parts.entity.mean(),
        ]
        out[i] = clean_mask(parts.union, parts.entity, min_region=min_region)
        todo = ~out[i] & (layers.scene_depth[i] <= 0) & (layers.fg_labels[i] < 0)
        if todo.any():
            fill_nearest(layers.scene_rgb[i], layers.scene_depth[i], todo)
            layers.filled[i] |= todo & (layers.scene_depth[i] > 0)
    h, s, d, e = (float(v) / max(F, 1) for v in totals)
    return ObserverMask(out, h, s, d, e)


def isolated_fraction(mask: np.ndarray, size: int = 3, small: int = 16) -> float:
    """The fraction of pixels that are "generate" spots a model never saw in training: True
    pixels that lie in no ``size`` x ``size`` square of True pixels (single pixels and lines one
    or two pixels wide: what a ``size`` x ``size`` opening removes) or in an 8-connected
    component of fewer than ``small`` pixels (a dilated single pixel). mask (..., H, W) bool.

    Counting only pixels whose 8 neighbours are all False (:func:`single_pixel_fraction`) would
    miss the salt-and-pepper of a dolly-in: its 1-pixel gaps join into lines along the rows and
    columns the splat skipped."""
    import cv2

    m = np.asarray(mask, bool)
    flat = m.reshape(-1, *m.shape[-2:])
    kernel = np.ones((size, size), np.uint8)
    spots = 0
    for f in flat:
        u8 = f.astype(np.uint8)
        opened = cv2.morphologyEx(u8, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(u8, connectivity=8)
        tiny = (stats[:, cv2.CC_STAT_AREA] < small)[labels]
        spots += int((f & ((opened == 0) | tiny)).sum())
    return spots / max(1, flat.size)


def single_pixel_fraction(mask: np.ndarray) -> float:
    """The fraction of pixels that are True with all 8 neighbours False (off the image:
    False)."""
    m = np.asarray(mask, bool)
    flat = m.reshape(-1, *m.shape[-2:])
    count = sum(int((f & (_neighbour_count(f, mirrored=False) == 0)).sum()) for f in flat)
    return count / max(1, flat.size)
