"""Reading photos: crop boxes, EXIF orientation, colour modes, downscaling, bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from worldstudio.core.reconstruct.image_io import (
    ImageError,
    fit_crop,
    prepare_image,
    read_exif,
    read_image_info,
    to_rgb8,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTO = DATA / "coffee.jpg"


# ----------------------------------------------------------------------------- crop boxes
def test_fit_crop_centres_the_largest_box_of_the_aspect():
    assert fit_crop((600, 400), (832, 480)) == (0, 27, 600, 346)
    assert fit_crop((400, 600), (832, 480)) == (0, 184, 400, 231)
    assert fit_crop((832, 480), (832, 480)) == (0, 0, 832, 480)
    x, y, w, h = fit_crop((1000, 1000), (16, 9))
    assert (w, h) == (1000, 562) and x == 0 and y == 219


def test_fit_crop_keeps_a_user_box_and_shrinks_it_to_the_aspect():
    assert fit_crop((600, 400), (832, 480), (100, 50, 416, 240)) == (100, 50, 416, 240)
    # a square box: the widest 832:480 box inside it, centred
    assert fit_crop((600, 400), (832, 480), (0, 0, 300, 300)) == (0, 63, 300, 173)


@pytest.mark.parametrize(
    "box", [(-1, 0, 100, 100), (0, 0, 601, 100), (550, 0, 100, 100), (0, 0, 0, 10)]
)
def test_fit_crop_rejects_boxes_outside_the_image(box):
    with pytest.raises(ImageError, match="crop box"):
        fit_crop((600, 400), (832, 480), box, path="photo.jpg")


# ----------------------------------------------------------------------------- the photo
def test_the_real_photo_is_cropped_never_stretched():
    p = prepare_image(PHOTO, (832, 480))
    assert p.rgb.shape == (480, 832, 3) and p.rgb.dtype == np.uint8
    assert p.original_size == (400, 600) and p.crop == (0, 27, 600, 346)
    ref = (
        Image.open(PHOTO)
        .convert("RGB")
        .crop((0, 27, 600, 373))
        .resize((832, 480), Image.Resampling.LANCZOS)
    )
    assert np.abs(p.rgb.astype(int) - np.asarray(ref).astype(int)).mean() < 1.0


def _marked(w=120, h=80) -> Image.Image:
    """An image whose every orientation differs: a gradient plus a corner block."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
    arr[:10, :20] = (255, 0, 0)
    return Image.fromarray(arr)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_honoured(orientation, tmp_path):
    img = _marked()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    img.save(path, exif=exif)
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    uw, uh = upright.size
    crop = (5, 7, 48, 36)  # in upright pixels, already 4:3
    p = prepare_image(path, (64, 48), crop)
    assert p.original_size == (uh, uw)
    assert p.exif.orientation == orientation
    ref = upright.crop((5, 7, 53, 43)).resize((64, 48), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(p.rgb, np.asarray(ref))


# ----------------------------------------------------------------------------- colour modes
def test_alpha_is_composited_on_white_or_dropped():
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    out = np.asarray(to_rgb8(rgba))
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[3, 3]) == (255, 255, 255)
    assert tuple(np.asarray(to_rgb8(rgba, "drop"))[3, 3]) == (10, 20, 30)
    la = Image.new("LA", (2, 2), (0, 128))
    assert tuple(np.asarray(to_rgb8(la))[0, 0]) in {(127, 127, 127), (128, 128, 128)}
    p = Image.new("P", (2, 2), 0)
    p.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    p.info["transparency"] = 0
    assert tuple(np.asarray(to_rgb8(p))[0, 0]) == (255, 255, 255)


def test_grayscale_16_bit_float_and_bilevel():
    assert tuple(np.asarray(to_rgb8(Image.new("L", (2, 2), 77)))[1, 1]) == (77, 77, 77)
    i16 = Image.fromarray(np.array([[0, 65535], [32896, 257]], dtype=np.uint16))
    out = np.asarray(to_rgb8(i16))
    assert out[..., 0].tolist() == [[0, 255], [128, 1]] and (out[..., 0] == out[..., 2]).all()
    f = Image.fromarray(np.array([[0.0, 1.0], [0.5, np.nan]], dtype=np.float32))
    assert np.asarray(to_rgb8(f))[..., 0].tolist() == [[0, 255], [128, 0]]
    assert np.asarray(to_rgb8(Image.new("1", (2, 2), 1))).max() == 255


def test_16_bit_png_and_cmyk_jpeg_files(tmp_path):
    arr = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    p = prepare_image(tmp_path / "g16.png", (64, 48))
    assert p.rgb[0, 0, 0] == 0 and p.rgb[-1, -1, 0] == 255 and any("16-bit" in n for n in p.notes)

    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # pure red ink
    cmyk.save(tmp_path / "c.jpg", quality=95)
    p = prepare_image(tmp_path / "c.jpg", (64, 48))
    r, g, b = p.rgb[24, 32].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_rgba_png_file(tmp_path):
    rgba = Image.new("RGBA", (64, 48), (0, 0, 255, 0))
    rgba.save(tmp_path / "a.png")
    p = prepare_image(tmp_path / "a.png", (64, 48))
    assert (p.rgb == 255).all() and any("white" in n for n in p.notes)


# ----------------------------------------------------------------------------- big images
def test_huge_jpeg_is_decoded_downscaled(tmp_path):
    big = Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (2400, 3600, 3), dtype=np.uint8)
    )
    big.save(tmp_path / "big.jpg", quality=70)
    big.save(tmp_path / "big.png", compress_level=0)
    p = prepare_image(tmp_path / "big.jpg", (208, 120), max_pixels=1_000_000)
    assert p.rgb.shape == (120, 208, 3) and p.original_size == (2400, 3600)
    assert any("decoded the JPEG at" in n for n in p.notes)
    with pytest.raises(ImageError) as err:  # a PNG cannot be decoded smaller: refused
        prepare_image(tmp_path / "big.png", (208, 120), max_pixels=1_000_000)
    assert "big.png" in str(err.value) and "megapixels" in str(err.value)


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A tiny PNG file that claims w x h pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("w", "h"), [(12000, 10000), (60000, 60000)])
def test_decompression_bomb_is_refused_clearly(tmp_path, w, h):
    path = tmp_path / "bomb.png"
    _png_header_only(path, w, h)
    with pytest.raises(ImageError) as err:
        prepare_image(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and ("megapixels" in msg or "too many pixels" in msg)


# ----------------------------------------------------------------------------- bad files
def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    good = PHOTO.read_bytes()
    (tmp / "empty.jpg").write_bytes(b"")
    (tmp / "noise.jpg").write_bytes(np.random.default_rng(1).bytes(5000))
    (tmp / "notes.png").write_text("this is not an image\n" * 20)
    (tmp / "half.jpg").write_bytes(good[: len(good) // 2])
    (tmp / "folder.jpg").mkdir()
    png = tmp / "ok.png"
    Image.open(PHOTO).save(png)
    data = png.read_bytes()
    (tmp / "cut.png").write_bytes(data[: len(data) // 3])
    return {
        "empty": (tmp / "empty.jpg", "empty"),
        "noise": (tmp / "noise.jpg", "not an image file"),
        "text": (tmp / "notes.png", "not an image file"),
        "truncated jpeg": (tmp / "half.jpg", "truncated or corrupt"),
        "truncated png": (tmp / "cut.png", "truncated or corrupt"),
        "folder": (tmp / "folder.jpg", "is a folder"),
        "missing": (tmp / "missing.jpg", "no such file"),
    }


def test_bad_files_give_a_clear_error_naming_the_file(tmp_path):
    for what, (path, expected) in _bad_files(tmp_path).items():
        with pytest.raises(ImageError) as err:
            prepare_image(path)
        msg = str(err.value)
        assert msg.startswith(str(path)), what
        assert expected in msg, (what, msg)
        assert "\n" not in msg


def test_header_only_helpers():
    (h, w), exif = read_image_info(PHOTO)
    assert (h, w) == (400, 600) and exif.orientation == 1 and exif.focal_mm is None
    assert read_exif(Image.new("RGB", (2, 2))).focal_35mm is None
