"""The field of view of a photograph, from the best source there is.

Order (issue 4): an EXIF focal length with a known sensor size, then the depth model's own
estimate (Depth Pro), then a field of view the user set, then 60 degrees.

EXIF gives a focal length in pixels of the full original image, tried in this order:

1. ``FocalLengthIn35mmFilm``: the focal length on a 36 x 24 mm frame with the same field of
   view *across the diagonal* (the CIPA/EXIF convention), so f_px = f35 * diag_px / 43.27 mm;
2. ``FocalLength`` (mm) with ``FocalPlaneXResolution`` (sensor pixels per unit), rescaled when
   the image is not the size those tags refer to (``PixelXDimension``);
3. ``FocalLength`` with the sensor width of a known camera (:data:`SENSOR_WIDTHS_MM`, matched on
   EXIF Make + Model), the sensor width spanning the image's long side.

A focal length in original pixels stays the same through a crop and scales with the resize, so
the project's VERTICAL field of view is fov = 2 atan((H / 2) / (f_px * H / crop_h)).

Depth Pro's estimate is a HORIZONTAL field of view of the image it saw (the project image):
converted with tan(v / 2) = tan(h / 2) * H / W. Estimates outside 10-150 degrees are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from worldstudio.core.reconstruct.image_io import CameraExif

DEFAULT_FOV_DEG = 60.0
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm
PLAUSIBLE_FOV = (10.0, 150.0)  # degrees; anything else is a broken tag or a bad estimate

# Sensor width (long side, mm) of some cameras whose photos often lack FocalLengthIn35mmFilm.
# Keys are lower-case substrings of "Make Model"; the first match wins (longest keys first).
SENSOR_WIDTHS_MM: dict[str, float] = {
    "canon eos 5d": 36.0,
    "canon eos 6d": 35.8,
    "canon eos r5": 36.0,
    "canon eos r6": 35.9,
    "canon eos r": 36.0,
    "canon eos 80d": 22.5,
    "canon eos 90d": 22.3,
    "canon eos rebel": 22.3,
    "nikon d850": 35.9,
    "nikon d750": 35.9,
    "nikon z 6": 35.9,
    "nikon z 7": 35.9,
    "nikon d7500": 23.5,
    "nikon d3500": 23.5,
    "sony ilce-7": 35.8,
    "sony ilce-6": 23.5,
    "fujifilm x-t": 23.5,
    "olympus e-m": 17.3,
    "panasonic dc-gh": 17.3,
    "panasonic dmc-gh": 17.3,
    "gopro hero": 6.17,
    "dji fc": 6.3,
}

FovSource = Literal["exif", "model", "user", "default"]


@dataclass(frozen=True)
class FovChoice:
    """The project's VERTICAL field of view (degrees), where it came from, and why."""

    fov_deg: float
    source: FovSource
    detail: str


def sensor_width_mm(exif: CameraExif) -> float | None:
    camera = exif.camera.lower()
    if not camera:
        return None
    for key in sorted(SENSOR_WIDTHS_MM, key=len, reverse=True):
        if key in camera:
            return SENSOR_WIDTHS_MM[key]
    return None


def exif_focal_px(exif: CameraExif, image_size: tuple[int, int]) -> tuple[float, str] | None:
    """(focal length in pixels of the upright original image, how) from EXIF, or None.

    ``image_size`` is (height, width) of the upright original image.
    """
    h, w = image_size
    long_side = max(h, w)
    if exif.focal_35mm:
        f = exif.focal_35mm * math.hypot(w, h) / FULL_FRAME_DIAGONAL_MM
        return f, f"EXIF FocalLengthIn35mmFilm {exif.focal_35mm:g} mm"
    if exif.focal_mm and exif.focal_plane_x_res:
        # The tags describe the sensor in the camera's landscape frame: x is the long side.
        f = exif.focal_mm * exif.focal_plane_x_res
        ref = max(exif.exif_width or 0, exif.exif_height or 0)
        if ref:
            f *= long_side / ref
        return f, (
            f"EXIF FocalLength {exif.focal_mm:g} mm at {exif.focal_plane_x_res:g} px/mm "
            f"(FocalPlaneXResolution)"
        )
    if exif.focal_mm:
        width_mm = sensor_width_mm(exif)
        if width_mm:
            f = exif.focal_mm / width_mm * long_side
            return (
                f,
                f"EXIF FocalLength {exif.focal_mm:g} mm on a {width_mm:g} mm wide sensor ({exif.camera})",
            )
    return None


def vertical_from_horizontal(fov_h_deg: float, height: int, width: int) -> float:
    """The vertical field of view of an image (height x width) with horizontal fov ``fov_h``."""
    t = math.tan(math.radians(fov_h_deg) / 2.0) * height / width
    return math.degrees(2.0 * math.atan(t))


def _plausible(fov: float | None) -> bool:
    return fov is not None and math.isfinite(fov) and PLAUSIBLE_FOV[0] <= fov <= PLAUSIBLE_FOV[1]


def choose_fov(
    *,
    project_size: tuple[int, int],
    crop_height: int,
    exif: CameraExif | None = None,
    original_size: tuple[int, int] | None = None,
    model_fov_h_deg: float | None = None,
    user_fov_deg: float | None = None,
    default_fov_deg: float = DEFAULT_FOV_DEG,
) -> FovChoice:
    """The project's VERTICAL field of view, by the order in the module docstring.

    ``project_size`` is (width, height) of the project image; ``crop_height`` the height of the
    crop box in original pixels; ``original_size`` (height, width) of the upright original.
    """
    w, h = project_size
    notes = []
    if exif is not None and original_size is not None:
        got = exif_focal_px(exif, original_size)
        if got is not None:
            f_orig, how = got
            f = f_orig * h / crop_height
            fov = math.degrees(2.0 * math.atan((h / 2.0) / f))
            if _plausible(fov):
                return FovChoice(fov, "exif", f"{how} -> {f:.1f} px at {w}x{h}")
            notes.append(f"ignored {how} (gives an implausible {fov:.1f} degrees)")
    if model_fov_h_deg is not None:
        if _plausible(model_fov_h_deg):
            fov = vertical_from_horizontal(model_fov_h_deg, h, w)
            return FovChoice(
                fov,
                "model",
                f"the depth model's estimate ({model_fov_h_deg:.1f} degrees horizontal)"
                + (f"; {'; '.join(notes)}" if notes else ""),
            )
        notes.append(
            f"ignored the depth model's implausible estimate ({model_fov_h_deg:.1f} degrees)"
        )
    extra = f"; {'; '.join(notes)}" if notes else ""
    if user_fov_deg is not None:
        return FovChoice(float(user_fov_deg), "user", f"set by the user{extra}")
    return FovChoice(float(default_fov_deg), "default", f"no EXIF focal length or estimate{extra}")
