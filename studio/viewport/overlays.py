"""Line geometry for the viewport's overlays (pure numpy, world coordinates, OpenCV convention).

Every builder returns segment endpoints (2M, 3) for a vispy ``Line(connect="segments")``.
"""

from __future__ import annotations

import math

import numpy as np

# The edges of a frustum: apex (0) to the corners (1-4), the image rectangle, and a small
# triangle on the image's top edge (5) that tells up from down.
_FRUSTUM_EDGES = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1), (1, 5), (5, 2)]


def frustum_points(c2w: np.ndarray, fov_deg: float, aspect: float, size: float) -> np.ndarray:
    """The 6 points of a camera glyph: apex, image corners at depth ``size`` (top-left, top-right,
    bottom-right, bottom-left) and the tip of the 'up' triangle above the top edge."""
    ty = math.tan(math.radians(fov_deg) / 2.0) * size
    tx = ty * aspect
    local = np.array(
        [
            [0.0, 0.0, 0.0],
            [-tx, -ty, size],
            [tx, -ty, size],
            [tx, ty, size],
            [-tx, ty, size],
            [0.0, -ty * 1.6, size],
        ]
    )
    c2w = np.asarray(c2w, dtype=np.float64)
    return local @ c2w[:3, :3].T + c2w[:3, 3]


def frustum_segments(c2w: np.ndarray, fov_deg: float, aspect: float, size: float) -> np.ndarray:
    """(20, 3) segment endpoints of one camera glyph."""
    p = frustum_points(c2w, fov_deg, aspect, size)
    return np.array([p[i] for edge in _FRUSTUM_EDGES for i in edge])


SEGMENTS_PER_FRUSTUM = 2 * len(_FRUSTUM_EDGES)


def frustums(poses: list[np.ndarray], fovs: list[float], aspect: float, size: float) -> np.ndarray:
    """Segments of several camera glyphs, glyph i at rows [20 i, 20 i + 20)."""
    if not poses:
        return np.zeros((0, 3))
    return np.concatenate(
        [frustum_segments(m, f, aspect, size) for m, f in zip(poses, fovs, strict=True)]
    )


def cross_segments(centers: np.ndarray, size: float) -> np.ndarray:
    """(6 N, 3): a small 3-axis cross at each centre."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    if len(centers) == 0:
        return np.zeros((0, 3))
    h = size / 2.0
    offsets = np.array([[-h, 0, 0], [h, 0, 0], [0, -h, 0], [0, h, 0], [0, 0, -h], [0, 0, h]])
    return (centers[:, None, :] + offsets[None, :, :]).reshape(-1, 3)


def tick_segments(c2w: np.ndarray, size: float) -> np.ndarray:
    """(4 N, 3): a tick across the path at each pose: a short bar along the camera's x and y."""
    c2w = np.asarray(c2w, dtype=np.float64).reshape(-1, 4, 4)
    if len(c2w) == 0:
        return np.zeros((0, 3))
    h = size / 2.0
    p = c2w[:, :3, 3]
    x = c2w[:, :3, 0] * h
    y = c2w[:, :3, 1] * h
    return np.stack([p - x, p + x, p - y, p + y], axis=1).reshape(-1, 3)


def round_boundary_frames(n_frames: int, frames_per_round: int) -> list[int]:
    """The first frame of every round (0, F, 2F, ...) below ``n_frames``, plus the last frame."""
    if n_frames <= 0:
        return []
    out = list(range(0, n_frames, max(int(frames_per_round), 1)))
    if out[-1] != n_frames - 1:
        out.append(n_frames - 1)
    return out
