"""Pinhole intrinsics and projection (docs/CONVENTIONS.md).

K is a 3x3 float64 matrix in pixels tied to an explicit (height, width). ``fov`` is always the
VERTICAL field of view in degrees: fy = fx = (H / 2) / tan(fov / 2), cx = W / 2, cy = H / 2.
Pixel-centre convention: pixel (u, v) covers [u, u + 1) x [v, v + 1), so a point is inside an
H x W image when 0 <= u < W and 0 <= v < H, and it lands on pixel (floor(u), floor(v)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.transforms import as_pose

ArrayLike = np.ndarray | Sequence[float]


def _check_fov(fov_deg: float) -> float:
    fov = float(fov_deg)
    if not (0.0 < fov < 180.0) or not math.isfinite(fov):
        raise WorldStudioError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    return fov


def _check_size(size_px: float, what: str = "image size") -> float:
    s = float(size_px)
    if not (s > 0.0) or not math.isfinite(s):
        raise WorldStudioError(f"{what} must be a positive number of pixels, got {size_px}")
    return s


def fov_to_focal(fov_deg: float, size_px: float) -> float:
    """Focal length in pixels for a field of view (degrees) across ``size_px`` pixels."""
    fov = _check_fov(fov_deg)
    size = _check_size(size_px)
    return (size / 2.0) / math.tan(math.radians(fov) / 2.0)


def focal_to_fov(f: float, size_px: float) -> float:
    """Field of view in degrees across ``size_px`` pixels for a focal length in pixels."""
    f = float(f)
    if not (f > 0.0) or not math.isfinite(f):
        raise WorldStudioError(f"focal length must be a positive number of pixels, got {f}")
    size = _check_size(size_px)
    return math.degrees(2.0 * math.atan((size / 2.0) / f))


def intrinsics_from_fov(fov_deg: float, height: int, width: int) -> np.ndarray:
    """K (3x3 float64) of a centred square-pixel camera with VERTICAL fov ``fov_deg``."""
    f = fov_to_focal(fov_deg, _check_size(height, "image height"))
    w = _check_size(width, "image width")
    return np.array(
        [[f, 0.0, w / 2.0], [0.0, f, float(height) / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64
    )


def _as_K(K: ArrayLike) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise WorldStudioError(f"intrinsics K must be a 3x3 matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise WorldStudioError("intrinsics K must be finite with positive focal lengths")
    return K


def fov_from_intrinsics(K: ArrayLike, height: int) -> float:
    """VERTICAL fov in degrees of K for images ``height`` pixels high."""
    return focal_to_fov(_as_K(K)[1, 1], _check_size(height, "image height"))


def scale_intrinsics(
    K: ArrayLike, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """K for the same camera when its (h0, w0) image is resized to (h1, w1).

    With the pixel-centre convention (cx = W / 2 for a centred camera), resizing is a pure scale
    of the image plane: fx, skew, cx scale by w1 / w0 and fy, cy by h1 / h0.
    """
    K = _as_K(K)
    h0, w0 = (_check_size(v, "image size") for v in from_size)
    h1, w1 = (_check_size(v, "image size") for v in to_size)
    S = np.diag([w1 / w0, h1 / h0, 1.0])
    return S @ K


def crop_intrinsics(K: ArrayLike, x0: float, y0: float) -> np.ndarray:
    """K for the crop of the image whose top-left corner is at pixel (x0, y0)."""
    K = _as_K(K).copy()
    K[0, 2] -= float(x0)
    K[1, 2] -= float(y0)
    return K


def world_to_camera(points_world: ArrayLike, c2w: ArrayLike) -> np.ndarray:
    """Points (N, 3) in world coordinates -> camera coordinates (OpenCV axes)."""
    P = np.asarray(points_world, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3:
        raise WorldStudioError(f"points must have shape (N, 3), got {P.shape}")
    m = as_pose(c2w)
    return (P - m[:3, 3]) @ m[:3, :3]  # R^T (p - t) for each row


def project_points(
    points_world: ArrayLike, K: ArrayLike, c2w: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (N, 3) into a camera: (uv (N, 2) pixels, z (N,) depth along +z).

    uv is NaN for points at or behind the camera (z <= 0).
    """
    K = _as_K(K)
    Xc = world_to_camera(points_world, c2w)
    z = Xc[:, 2]
    front = z > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = Xc[:, 0] / z
        y = Xc[:, 1] / z
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    uv = np.stack([u, v], axis=1)
    uv[~front] = np.nan
    return uv, z


def points_in_view(
    points_world: ArrayLike,
    c2w: ArrayLike,
    K: ArrayLike,
    height: int,
    width: int,
    margin: float = 0,
) -> np.ndarray:
    """Bool mask (N,): in front of the camera and margin <= u < W - margin, margin <= v < H - margin."""
    uv, z = project_points(points_world, K, c2w)
    with np.errstate(invalid="ignore"):
        inside = (
            (z > 1e-9)
            & (uv[:, 0] >= margin)
            & (uv[:, 0] < width - margin)
            & (uv[:, 1] >= margin)
            & (uv[:, 1] < height - margin)
        )
    return inside


def point_in_view(
    point: ArrayLike, c2w: ArrayLike, K: ArrayLike, height: int, width: int, margin: float = 0
) -> bool:
    """True when the world point projects inside the H x W image (``margin`` pixels inside the
    border; a negative margin accepts points that far outside) and lies in front of the camera."""
    p = np.asarray(point, dtype=np.float64).reshape(1, 3)
    return bool(points_in_view(p, c2w, K, height, width, margin)[0])


def point_at_pixel(
    depth: np.ndarray,
    K: ArrayLike,
    height: int,
    width: int,
    u: float,
    v: float,
    image_size: tuple[int, int] | None = None,
) -> tuple[float, float, float] | None:
    """The camera-frame 3D point seen at pixel (u, v), or None where the depth is unknown (outside
    the map, not finite, or not positive).

    ``K`` is tied to ``height`` x ``width``; (u, v) are pixels of an image of ``image_size`` =
    (height, width) that shows the same view (default: ``K``'s own grid), e.g. the source photo at
    another resolution. ``depth`` (h, w) may have any resolution over that view: the sample is the
    nearest one below and left of the point."""
    depth = np.asarray(depth)
    img_h, img_w = image_size if image_size is not None else (height, width)
    # pixel (u, v) of the image -> pixel of the intrinsics' grid -> cell of the depth map
    uk, vk = u * width / img_w, v * height / img_h
    dh, dw = depth.shape[:2]
    iu, iv = int(uk * dw / width), int(vk * dh / height)
    if not (0 <= iu < dw and 0 <= iv < dh) or uk < 0 or vk < 0:
        return None
    z = float(depth[iv, iu])
    if not math.isfinite(z) or z <= 0:
        return None
    ray = np.linalg.solve(_as_K(K), np.array([uk, vk, 1.0]))
    return tuple(float(c) for c in ray * z)  # type: ignore[return-value]
