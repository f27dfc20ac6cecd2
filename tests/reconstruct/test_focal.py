"""The field of view: EXIF focal length, the model's estimate, the user's, the default."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from worldstudio.core.reconstruct.focal import (
    FULL_FRAME_DIAGONAL_MM,
    choose_fov,
    exif_focal_px,
    sensor_width_mm,
    vertical_from_horizontal,
)
from worldstudio.core.reconstruct.image_io import CameraExif, prepare_image

PHOTO = Path(__file__).resolve().parents[1] / "data" / "coffee.jpg"


def vfov(f_px: float, h: int) -> float:
    return math.degrees(2 * math.atan(h / 2 / f_px))


def test_35mm_equivalent_uses_the_diagonal():
    exif = CameraExif(focal_35mm=26.0)
    f, how = exif_focal_px(exif, (3000, 4000))
    assert f == pytest.approx(26.0 * 5000 / FULL_FRAME_DIAGONAL_MM)
    assert "FocalLengthIn35mmFilm 26 mm" in how
    # on a 3:2 frame the 35 mm equivalent is exactly the full-frame focal length
    f, _ = exif_focal_px(CameraExif(focal_35mm=50.0), (2400, 3600))
    assert f == pytest.approx(50.0 / 36.0 * 3600)


def test_focal_plane_resolution_is_rescaled_to_the_image():
    # 5 mm lens, 1000 px/mm on the sensor, tags written for a 4000 px wide image; ours is 2000
    exif = CameraExif(focal_mm=5.0, focal_plane_x_res=1000.0, exif_width=4000, exif_height=3000)
    f, how = exif_focal_px(exif, (1500, 2000))
    assert f == pytest.approx(5.0 * 1000.0 * 2000 / 4000) and "FocalPlaneXResolution" in how


def test_sensor_table():
    exif = CameraExif(make="Canon", model="Canon EOS 5D Mark IV", focal_mm=50.0)
    assert sensor_width_mm(exif) == 36.0
    f, how = exif_focal_px(exif, (400, 600))
    assert f == pytest.approx(50.0 / 36.0 * 600) and "36 mm wide sensor" in how
    assert exif_focal_px(CameraExif(make="Nobody", model="X1", focal_mm=50.0), (400, 600)) is None
    assert exif_focal_px(CameraExif(), (400, 600)) is None


def test_horizontal_to_vertical():
    assert vertical_from_horizontal(90.0, 100, 100) == pytest.approx(90.0)
    v = vertical_from_horizontal(73.74, 480, 832)
    assert math.tan(math.radians(v) / 2) == pytest.approx(
        math.tan(math.radians(73.74) / 2) * 480 / 832
    )


def test_the_order_exif_model_user_default():
    exif = CameraExif(focal_35mm=26.0)
    kw = dict(project_size=(832, 480), crop_height=346, exif=exif, original_size=(400, 600))
    c = choose_fov(**kw, model_fov_h_deg=70.0, user_fov_deg=40.0)
    f_orig = 26.0 * math.hypot(600, 400) / FULL_FRAME_DIAGONAL_MM
    assert c.source == "exif" and c.fov_deg == pytest.approx(vfov(f_orig * 480 / 346, 480))
    c = choose_fov(
        project_size=(832, 480), crop_height=346, model_fov_h_deg=70.0, user_fov_deg=40.0
    )
    assert c.source == "model" and c.fov_deg == pytest.approx(
        vertical_from_horizontal(70.0, 480, 832)
    )
    c = choose_fov(project_size=(832, 480), crop_height=346, user_fov_deg=40.0)
    assert (c.source, c.fov_deg) == ("user", 40.0)
    c = choose_fov(project_size=(832, 480), crop_height=346)
    assert (c.source, c.fov_deg) == ("default", 60.0)


def test_implausible_values_are_ignored():
    c = choose_fov(
        project_size=(832, 480), crop_height=346, model_fov_h_deg=-2.2, user_fov_deg=45.0
    )
    assert c.source == "user" and "implausible" in c.detail
    c = choose_fov(
        project_size=(832, 480),
        crop_height=346,
        exif=CameraExif(focal_35mm=1.0),
        original_size=(400, 600),
    )
    assert c.source == "default" and "ignored" in c.detail


def _with_exif(tmp_path: Path, name: str, **tags) -> Path:
    img = Image.open(PHOTO)
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    for tag, value in tags.items():
        code = {"orientation": 0x0112, "make": 0x010F, "model": 0x0110}.get(tag)
        if code is not None:
            exif[code] = value
        else:
            ifd[{"focal35": 0xA405, "focal": 0x920A}[tag]] = value
    out = tmp_path / name
    img.save(out, exif=exif, quality=90)
    return out


def test_exif_written_with_pil_is_read_back(tmp_path):
    path = _with_exif(
        tmp_path, "p.jpg", focal35=28, make="Canon", model="Canon EOS 5D", focal=35.0, orientation=6
    )
    p = prepare_image(path, (832, 480))
    assert p.exif.focal_35mm == 28 and p.exif.focal_mm == 35.0 and p.exif.orientation == 6
    assert p.exif.camera == "Canon Canon EOS 5D"
    assert p.original_size == (600, 400)  # turned upright: portrait
