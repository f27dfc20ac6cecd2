"""Reference images for a generation call (docs/METHOD.md, "References"):

- **scene references**: the source image and, for revisits, earlier generated frames, with every
  entity blacked out (an evolved entity must not be pulled back to how it looked there);
- **instance references**: one image per visible entity, its pixels on black, fitted into the
  frame (VACE ``reference_images`` take whole frames);
- **pose-based retrieval** (LiveWorld's): for a few target poses sampled evenly from the round,
  the earliest earlier frame whose static points cover that pose well. A frame's "static points"
  are a subsample of the scene projection it was generated from, unprojected; coverage is the
  fraction of the cells of a coarse grid over the target image that they land in.

numpy and OpenCV; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 8
"""Side in pixels of the cells coverage is counted in (and the stride points are sampled at)."""
RELATIVE_COVERAGE = 0.5
"""A candidate frame covers a target pose when it reaches this fraction of the best candidate's
coverage (LiveWorld takes any coverage above 0, which nearly always picks the run's first frame,
even when it sees only a sliver of the target view)."""
BLACKOUT_DILATION = 3
"""Pixels an entity's mask grows by before it is blacked out of a scene reference."""


def blackout(image: np.ndarray, mask: np.ndarray, dilation: int = BLACKOUT_DILATION) -> np.ndarray:
    """``image`` (H, W, 3) with the pixels of ``mask`` (H, W), dilated, set to black."""
    import cv2

    out = np.array(image, np.uint8, copy=True)
    m = np.asarray(mask, bool)
    if dilation > 0 and m.any():
        kernel = np.ones((2 * dilation + 1, 2 * dilation + 1), np.uint8)
        m = cv2.dilate(m.astype(np.uint8), kernel) > 0
    out[m] = 0
    return out


def instance_reference(
    image: np.ndarray, mask: np.ndarray, height: int, width: int, min_fraction: float = 1e-3
) -> np.ndarray | None:
    """The entity of ``mask`` cut out of ``image``: its pixels on black, scaled to fit
    (height, width) and centred; None when the mask holds less than ``min_fraction`` of the
    image."""
    import cv2

    m = np.asarray(mask, bool)
    ys, xs = np.nonzero(m)
    if ys.size < max(1.0, min_fraction * m.size):
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.where(m[y0:y1, x0:x1, None], image[y0:y1, x0:x1], 0).astype(np.uint8)
    ch, cw = crop.shape[:2]
    scale = min(width / cw, height / ch)
    nw, nh = max(1, round(cw * scale)), max(1, round(ch * scale))
    cmask = cv2.resize(m[y0:y1, x0:x1].astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    scaled = np.asarray(cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA), np.uint8)
    scaled[cmask == 0] = 0
    out = np.zeros((height, width, 3), np.uint8)
    oy, ox = (height - nh) // 2, (width - nw) // 2
    out[oy : oy + nh, ox : ox + nw] = scaled
    return out


@dataclass
class HistoryView:
    """An earlier observer frame that may serve as a scene reference: its global frame index,
    camera, a subsample of the static points it showed (xyz (N, 3) float32), where it showed
    entities (mask (H, W) bool) and the frame with them blacked out (image (H, W, 3) uint8)."""

    index: int
    c2w: np.ndarray
    K: np.ndarray
    points: np.ndarray
    mask: np.ndarray
    image: np.ndarray


def history_view(index: int, frame, c2w, K, scene_depth, entity_mask) -> HistoryView:
    """The view of observer frame ``index``: the static points its scene projection showed
    (where no entity was), subsampled, and the frame with its entities blacked out."""
    mask = np.asarray(entity_mask, bool)
    depth = np.where(mask, np.float32(0.0), scene_depth).astype(np.float32)
    points = visible_points(depth, c2w, K)
    return HistoryView(
        int(index),
        np.asarray(c2w, np.float64),
        np.asarray(K, np.float64),
        points,
        mask,
        blackout(frame, mask),
    )


def pack_views(views: list[HistoryView]) -> dict[str, np.ndarray]:
    """Views as flat arrays (the frames themselves are the round's observer.npy)."""
    counts = np.array([len(v.points) for v in views], np.int64)
    offsets = np.zeros(len(views) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    shape = views[0].mask.shape if views else (0, 0)
    return {
        "index": np.array([v.index for v in views], np.int64),
        "c2w": np.array([v.c2w for v in views], np.float64).reshape(-1, 4, 4),
        "K": np.array([v.K for v in views], np.float64).reshape(-1, 3, 3),
        "offsets": offsets,
        "points": (np.concatenate([v.points for v in views]) if views else np.zeros((0, 3))).astype(
            np.float32
        ),
        "masks": np.packbits(np.array([v.mask for v in views], bool).reshape(-1, *shape), axis=-1),
        "shape": np.array(shape, np.int64),
    }


def unpack_views(arrays: dict[str, np.ndarray], frames: np.ndarray, first_index: int):
    """The inverse of :func:`pack_views`; ``frames`` are the round's observer frames, whose
    frame 0 is global frame ``first_index``."""
    h, w = (int(v) for v in arrays["shape"])
    masks = np.unpackbits(arrays["masks"], axis=-1, count=w).astype(bool)
    off = arrays["offsets"]
    out = []
    for k, index in enumerate(arrays["index"]):
        mask = masks[k].reshape(h, w)
        out.append(
            HistoryView(
                int(index),
                arrays["c2w"][k],
                arrays["K"][k],
                arrays["points"][off[k] : off[k + 1]],
                mask,
                blackout(frames[int(index) - first_index], mask),
            )
        )
    return out


def visible_points(depth: np.ndarray, c2w: np.ndarray, K: np.ndarray, stride: int = GRID):
    """A subsample (every ``stride``-th pixel in both directions, centred) of the world points a
    depth map (H, W) shows, xyz (N, 3) float32."""
    from worldstudio.core.pointcloud.ops import unproject_depth

    sub = np.zeros(depth.shape, bool)
    sub[stride // 2 :: stride, stride // 2 :: stride] = True
    return unproject_depth(depth, K, c2w, mask=sub).xyz


def coverage(points: np.ndarray, c2w: np.ndarray, K: np.ndarray, height: int, width: int) -> float:
    """The fraction of the ``GRID`` x ``GRID`` cells of a (height, width) image that ``points``
    project into from camera ``c2w``, ``K``."""
    if not len(points):
        return 0.0
    w2c = np.linalg.inv(np.asarray(c2w, np.float64))
    cam = points.astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    ok = z > 1e-3
    if not ok.any():
        return 0.0
    uv = cam[ok] @ np.asarray(K, np.float64).T
    u = np.floor(uv[:, 0] / uv[:, 2]).astype(np.int64)
    v = np.floor(uv[:, 1] / uv[:, 2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    gw, gh = -(-width // GRID), -(-height // GRID)
    cells = np.unique((v[inside] // GRID) * gw + u[inside] // GRID)
    return cells.size / float(gw * gh)


def retrieve(
    history: list[HistoryView],
    c2w: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    count: int,
    targets: int = 4,
) -> list[HistoryView]:
    """Up to ``count`` history views for a round seen from cameras c2w (F, 4, 4), K (F, 3, 3):
    for each of ``targets`` poses sampled evenly from the round, the earliest view not taken yet
    whose coverage of that pose reaches ``RELATIVE_COVERAGE`` of the best one's (and is > 0)."""
    if not history or count <= 0:
        return []
    F = len(c2w)
    n = min(targets, F)
    picks = [round(i * (F - 1) / max(1, n - 1)) for i in range(n)] if n > 1 else [0]
    ordered = sorted(history, key=lambda h: h.index)
    chosen: list[HistoryView] = []
    for t in picks:
        cov = [coverage(h.points, c2w[t], K[t], height, width) for h in ordered]
        best = max(cov)
        if best <= 0:
            continue
        for h, c in zip(ordered, cov, strict=True):
            if c >= RELATIVE_COVERAGE * best and all(h is not x for x in chosen):
                chosen.append(h)
                break
        if len(chosen) >= count:
            break
    return chosen
