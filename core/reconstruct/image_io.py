"""Reading a photograph for a project: checks, EXIF, orientation, colour modes, crop, downscale.

:func:`prepare_image` turns any image file PIL can read into the project's source image:

1. open (header only) and check it: missing, empty, folder, not an image, too many pixels;
2. read the EXIF tags the focal-length estimate needs (:class:`CameraExif`);
3. for JPEG, let the decoder downscale by 1/2, 1/4 or 1/8 while decoding (``Image.draft``) so a
   huge photo never exists at full size in memory; other formats are refused above
   :data:`MAX_PIXELS` decoded pixels (decompression-bomb guard, with a clear message);
4. crop to the project's aspect (the user's box, else the largest centred box; never stretch),
   cropping the raw pixels before turning them upright so only the crop is transposed;
5. convert to 8-bit RGB: alpha composited on white (or dropped), grayscale and palette images
   expanded, 16-bit and float images scaled, CMYK converted (through its ICC profile when it has
   one, as are RGB images with an embedded non-sRGB profile);
6. turn upright by the EXIF orientation and resize to the project size (Lanczos).

Every problem a user can cause raises :class:`ImageError` naming the file and what is wrong.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from worldstudio.core.errors import WorldStudioError

# Most pixels decoded from one image (after JPEG draft downscaling): 100 MP is ~400 MB as RGBA.
MAX_PIXELS = 100_000_000

AlphaMode = Literal["white", "drop"]


class ImageError(WorldStudioError):
    """An input image that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CameraExif:
    """The EXIF facts the focal-length estimate uses (None when the tag is absent)."""

    make: str | None = None
    model: str | None = None
    focal_mm: float | None = None  # FocalLength
    focal_35mm: float | None = None  # FocalLengthIn35mmFilm
    focal_plane_x_res: float | None = None  # FocalPlaneXResolution, pixels per mm on the sensor
    focal_plane_y_res: float | None = None
    exif_width: int | None = None  # PixelXDimension: the width the focal-plane resolution refers to
    exif_height: int | None = None
    orientation: int = 1

    @property
    def camera(self) -> str:
        return " ".join(v for v in (self.make, self.model) if v).strip()


@dataclass
class PreparedImage:
    """The project's source image and where it came from."""

    rgb: np.ndarray  # (H, W, 3) uint8 at the project size
    path: Path
    original_size: tuple[int, int]  # (height, width) of the upright original image
    crop: tuple[int, int, int, int]  # (x, y, width, height) in upright original pixels
    exif: CameraExif
    notes: list[str] = field(default_factory=list)  # what was done to the pixels, for the log

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``rgb``."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


# ----------------------------------------------------------------------------- crop boxes
def fit_crop(
    image_size: tuple[int, int],
    target_size: tuple[int, int],
    crop: tuple[int, int, int, int] | None = None,
    *,
    path: str | os.PathLike = "image",
) -> tuple[int, int, int, int]:
    """The largest box of the target's aspect, centred inside ``crop`` (or the whole image).

    ``image_size`` and ``target_size`` are (width, height); ``crop`` and the result are
    (x, y, width, height) in image pixels. A box that leaves the image is an error.
    """
    iw, ih = image_size
    tw, th = target_size
    if crop is None:
        bx, by, bw, bh = 0, 0, iw, ih
    else:
        if len(crop) != 4:
            raise ImageError(f"{path}: crop box must be x,y,width,height, got {crop!r}")
        bx, by, bw, bh = (int(v) for v in crop)
        if bw <= 0 or bh <= 0:
            raise ImageError(
                f"{path}: crop box {bx},{by},{bw},{bh} must have a positive width and height"
            )
        if bx < 0 or by < 0 or bx + bw > iw or by + bh > ih:
            raise ImageError(
                f"{path}: crop box {bx},{by},{bw},{bh} (x,y,width,height) does not fit inside the "
                f"{iw}x{ih} image"
            )
    aspect = tw / th
    if bw / bh > aspect:
        h = bh
        w = max(1, min(bw, round(bh * aspect)))
    else:
        w = bw
        h = max(1, min(bh, round(bw / aspect)))
    return bx + (bw - w) // 2, by + (bh - h) // 2, w, h


# EXIF orientation -> PIL transpose applied to the raw pixels to turn them upright.
def _orientation_method(orientation: int):
    from PIL import Image

    T = Image.Transpose
    return {
        2: T.FLIP_LEFT_RIGHT,
        3: T.ROTATE_180,
        4: T.FLIP_TOP_BOTTOM,
        5: T.TRANSPOSE,
        6: T.ROTATE_270,
        7: T.TRANSVERSE,
        8: T.ROTATE_90,
    }.get(orientation)


def _upright_to_raw(pt: tuple[float, float], orientation: int, raw_w: float, raw_h: float):
    """A point in upright coordinates -> the same point in raw (stored) coordinates."""
    x, y = pt
    if orientation == 2:
        return raw_w - x, y
    if orientation == 3:
        return raw_w - x, raw_h - y
    if orientation == 4:
        return x, raw_h - y
    if orientation == 5:
        return y, x
    if orientation == 6:  # raw (x, y) -> upright (raw_h - y, x)
        return y, raw_h - x
    if orientation == 7:  # raw (x, y) -> upright (raw_h - y, raw_w - x)
        return raw_w - y, raw_h - x
    if orientation == 8:  # raw (x, y) -> upright (y, raw_w - x)
        return raw_w - y, x
    return x, y


def _box_upright_to_raw(
    box, orientation: int, raw_w: int, raw_h: int
) -> tuple[float, float, float, float]:
    x, y, w, h = box
    corners = [_upright_to_raw(p, orientation, raw_w, raw_h) for p in ((x, y), (x + w, y + h))]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)  # left, top, right, bottom


# ----------------------------------------------------------------------------- EXIF
def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("latin-1", "replace")
    s = str(v).strip("\x00 ").strip()
    return s or None


_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # FocalPlaneResolutionUnit -> mm per unit


def read_exif(img) -> CameraExif:
    """The focal-length facts from an opened PIL image; missing or broken tags become None."""
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a reason to refuse a photo
        return CameraExif()
    try:
        sub = exif.get_ifd(0x8769)
    except Exception:  # noqa: BLE001
        sub = {}

    def tag(t):
        return sub.get(t, exif.get(t))

    orientation = exif.get(0x0112, 1)
    try:
        orientation = int(orientation)
    except (TypeError, ValueError):
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    unit = tag(0xA210)
    try:
        mm_per_unit = _UNIT_MM.get(int(unit) if unit is not None else 2)
    except (TypeError, ValueError):
        mm_per_unit = None
    xres = _float(tag(0xA20E))
    yres = _float(tag(0xA20F))
    px_per_mm_x = xres / mm_per_unit if xres and mm_per_unit else None
    px_per_mm_y = yres / mm_per_unit if yres and mm_per_unit else None

    def as_int(v):
        f = _float(v)
        return int(f) if f else None

    return CameraExif(
        make=_text(exif.get(0x010F)),
        model=_text(exif.get(0x0110)),
        focal_mm=_float(tag(0x920A)),
        focal_35mm=_float(tag(0xA405)),
        focal_plane_x_res=px_per_mm_x,
        focal_plane_y_res=px_per_mm_y,
        exif_width=as_int(tag(0xA002)),
        exif_height=as_int(tag(0xA003)),
        orientation=orientation,
    )


# ----------------------------------------------------------------------------- colour modes
def _icc_to_srgb(img, notes: list[str]):
    """Convert through the embedded ICC profile to sRGB; None when there is none or it fails."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        import io

        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(src) or "").strip()
        if img.mode == "RGB" and "srgb" in desc.lower():
            return None  # already sRGB
        out = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # noqa: BLE001 - a broken profile: fall back to the plain conversion
        return None
    notes.append(f"converted {img.mode} to sRGB through its ICC profile ({desc or 'unnamed'})")
    return out


def to_rgb8(img, alpha: AlphaMode = "white", notes: list[str] | None = None):
    """Any PIL image -> an 8-bit RGB PIL image (see the module docstring)."""
    from PIL import Image

    notes = notes if notes is not None else []
    mode = img.mode
    if mode == "RGB":
        return _icc_to_srgb(img, notes) or img
    if mode == "CMYK":
        out = _icc_to_srgb(img, notes)
        if out is None:
            notes.append("converted CMYK to RGB")
            out = img.convert("RGB")
        return out
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            top = 1.0 if arr.size and float(arr.max()) <= 1.0 else 255.0
            arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
            notes.append("scaled a floating-point image to 8 bits")
        else:
            arr = arr.astype(np.int64)
            sixteen = mode.startswith("I;16") or (arr.size and int(arr.max()) > 255)
            if sixteen:
                arr8 = np.clip((arr + 128) // 257, 0, 255).astype(np.uint8)
                notes.append("scaled a 16-bit image to 8 bits")
            else:
                arr8 = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    has_alpha = (
        mode in ("RGBA", "LA", "La", "RGBa", "PA")
        or (mode == "P" and "transparency" in img.info)
        or (mode in ("L", "RGB") and "transparency" in img.info)
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        if alpha == "drop":
            notes.append("dropped the alpha channel")
            return rgba.convert("RGB")
        notes.append("composited the transparent parts on white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"colour mode {mode} cannot be converted to RGB ({exc})") from exc


# ----------------------------------------------------------------------------- reading
def _open(path: Path):
    """Open the header of ``path``; every failure becomes an ImageError naming it."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        amount = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise ImageError(
            f"{path}: the image has {amount}, more than World Studio decodes (a decompression bomb, "
            f"or an image far larger than a project needs); downscale it first"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{path}: not an image file World Studio can read (unknown or unsupported format, "
            f"or the file is corrupt)"
        ) from exc
    except PermissionError as exc:
        raise ImageError(f"{path}: cannot be read (permission denied)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: the image header is corrupt ({exc})") from exc
    if img.width <= 0 or img.height <= 0:
        img.close()
        raise ImageError(f"{path}: the image has no pixels ({img.width}x{img.height})")
    return img


def _too_big(path: Path, w: int, h: int, limit: int) -> ImageError:
    return ImageError(
        f"{path}: the image is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels), more than the "
        f"{limit / 1e6:.0f} megapixels World Studio decodes (a decompression bomb, or an image "
        f"far larger than a project needs); downscale it first"
    )


def read_image_info(path: str | os.PathLike) -> tuple[tuple[int, int], CameraExif]:
    """((height, width) of the upright image, EXIF) without decoding the pixels."""
    path = Path(path)
    img = _open(path)
    try:
        exif = read_exif(img)
        w, h = img.size
    finally:
        img.close()
    if exif.orientation in (5, 6, 7, 8):
        w, h = h, w
    return (h, w), exif


def prepare_image(
    path: str | os.PathLike,
    size: tuple[int, int] = (832, 480),
    crop: tuple[int, int, int, int] | None = None,
    *,
    alpha: AlphaMode = "white",
    max_pixels: int = MAX_PIXELS,
) -> PreparedImage:
    """Read ``path`` and return it cropped to ``size`` = (width, height) (see the module docs).

    ``crop`` is (x, y, width, height) in the pixels of the upright original image; it is shrunk
    (centred) to the project's aspect when its aspect differs.
    """
    from PIL import Image

    path = Path(path)
    tw, th = int(size[0]), int(size[1])
    if tw <= 0 or th <= 0:
        raise ImageError(f"{path}: the project size must be positive, got {tw}x{th}")
    notes: list[str] = []
    img = _open(path)
    try:
        exif = read_exif(img)
        raw_w, raw_h = img.size
        orientation = exif.orientation
        up_w, up_h = (raw_h, raw_w) if orientation in (5, 6, 7, 8) else (raw_w, raw_h)
        box = fit_crop((up_w, up_h), (tw, th), crop, path=path)
        if crop is not None and tuple(box) != tuple(int(v) for v in crop):
            notes.append(
                f"crop box {tuple(crop)} shrunk to {box} to match the project's {tw}x{th} aspect"
            )
        # JPEG: decode at 1/2, 1/4 or 1/8 scale when the crop still covers the project size.
        scale_needed = max(tw / box[2], th / box[3])
        if img.format == "JPEG" and scale_needed < 0.5:
            want = (
                max(1, math.ceil(raw_w * scale_needed)),
                max(1, math.ceil(raw_h * scale_needed)),
            )
            try:
                img.draft(None, want)
            except Exception:  # noqa: BLE001 - draft is an optimisation only
                pass
            if img.size != (raw_w, raw_h):
                notes.append(
                    f"decoded the JPEG at {img.size[0]}x{img.size[1]} (of {raw_w}x{raw_h})"
                )
        dec_w, dec_h = img.size
        if dec_w * dec_h > max_pixels:
            raise _too_big(path, raw_w, raw_h, max_pixels)
        s = dec_w / raw_w
        left, top, right, bottom = _box_upright_to_raw(box, orientation, raw_w, raw_h)
        dbox = (
            max(0, min(dec_w - 1, round(left * s))),
            max(0, min(dec_h - 1, round(top * s))),
            max(1, min(dec_w, round(right * s))),
            max(1, min(dec_h, round(bottom * s))),
        )
        if dbox[2] <= dbox[0] or dbox[3] <= dbox[1]:
            raise ImageError(f"{path}: the crop box {box} is too small to use")
        try:
            img.seek(0)
        except EOFError:
            pass
        try:
            img.load()
            piece = img.crop(dbox)
            piece.load()
        except Image.DecompressionBombError as exc:
            raise _too_big(path, raw_w, raw_h, max_pixels) from exc
        except MemoryError as exc:
            raise ImageError(f"{path}: not enough memory to decode the image") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{path}: the image data is truncated or corrupt ({exc})") from exc
        try:
            piece = to_rgb8(piece, alpha, notes)
        except ImageError as exc:
            raise ImageError(f"{path}: {exc}") from exc
        method = _orientation_method(orientation)
        if method is not None:
            piece = piece.transpose(method)
            notes.append(f"turned upright by its EXIF orientation ({orientation})")
        if piece.size != (tw, th):
            piece = piece.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
        rgb = np.ascontiguousarray(np.asarray(piece, dtype=np.uint8)[..., :3])
    finally:
        img.close()
    if rgb.shape != (th, tw, 3):  # pragma: no cover - a PIL mode we did not foresee
        raise ImageError(f"{path}: could not be converted to an RGB image (got shape {rgb.shape})")
    return PreparedImage(
        rgb=rgb,
        path=path,
        original_size=(up_h, up_w),
        crop=box,
        exif=exif,
        notes=notes,
    )
