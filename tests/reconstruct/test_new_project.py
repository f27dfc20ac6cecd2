"""`worldstudio new --image`: a real photograph through the whole reconstruction, the exact
oracle depth through the unprojection, and bad input that must leave nothing behind."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import tiny_models
from worldstudio.core.cli import main
from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import CancelToken, JobContext
from worldstudio.core.project import SCHEMA_VERSION, ProjectFolder
from worldstudio.core.reconstruct.new_project import (
    depth_to_cloud,
    new_project_from_image,
    new_project_job,
)

pytestmark = pytest.mark.usefixtures("models_env")

PHOTO = Path(__file__).resolve().parents[1] / "data" / "coffee.jpg"


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    """The one ``error: ...`` line (the progress bar shares stderr)."""
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------- the photo
def test_a_real_photo_through_worldstudio_new(tmp_path, capsys):
    out = tmp_path / "coffee.wsproj"
    rc, stdout, err = run(capsys, "new", "--image", PHOTO, "--out", out)
    assert rc == 0, err
    assert f"created {out}" in stdout
    project = ProjectFolder(out).load()
    W, H = 832, 480
    assert project.name == "coffee"
    assert (project.source.width, project.source.height) == (W, H)
    assert project.source.original_name == "coffee.jpg" and project.source.original_size == (
        400,
        600,
    )
    c = project.source.crop
    assert (c.x, c.y, c.width, c.height) == (0, 27, 600, 346)
    assert abs(c.width / c.height - W / H) < 0.01  # cropped to the aspect, not stretched
    with Image.open(out / "source.png") as img:
        assert img.size == (W, H) and img.mode == "RGB"
    depth = np.load(out / "scene" / "depth.npy", allow_pickle=False)
    assert depth.shape == (H, W) and depth.dtype == np.float32 and (depth > 0).all()
    from worldstudio.core.pointcloud.ply import read_ply

    cloud = read_ply(out / "scene" / "points.ply")
    assert len(cloud.xyz) == project.scene.point_count
    assert 0.5 * W * H < len(cloud.xyz) <= W * H
    assert cloud.xyz[:, 2].min() > 0  # everything in front of the source camera
    assert (out / "scene" / "masks").is_dir()
    assert project.scene.depth_model == tiny_models.DA_SMALL and project.scene.metric is False
    # the default camera path: one keyframe at the identity pose with the estimated fov
    (kf,) = project.camera_path.keyframes
    assert kf.position == (0.0, 0.0, 0.0) and kf.orientation == (1.0, 0.0, 0.0, 0.0)
    assert kf.fov == pytest.approx(60.0)  # no EXIF, no estimate, no --fov: the default
    K = np.array(project.intrinsics.K)
    assert K[1, 1] == pytest.approx((H / 2) / math.tan(math.radians(kf.fov) / 2))
    assert K[0, 0] == K[1, 1] and (K[0, 2], K[1, 2]) == (W / 2, H / 2)
    assert len(project.rounds) == 2
    assert (project.generation.width, project.generation.height) == (W, H)
    assert leftovers(tmp_path) == ["coffee.wsproj"]  # no staging folder left
    assert json.loads((out / "project.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_exif_focal_and_orientation_from_the_photo(tmp_path, capsys):
    img = Image.open(PHOTO)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored sideways: turned upright it is portrait
    exif.get_ifd(0x8769)[0xA405] = 35  # FocalLengthIn35mmFilm
    src = tmp_path / "rotated.jpg"
    img.save(src, exif=exif, quality=92)
    out = tmp_path / "r.wsproj"
    rc, stdout, err = run(
        capsys, "new", "--image", src, "--out", out, "--size", "320x192", "--fov", "30"
    )
    assert rc == 0, err
    p = ProjectFolder(out).load()
    assert p.source.original_size == (600, 400)
    assert p.source.crop.width == 400 and p.source.crop.height == 240
    f_orig = 35 * math.hypot(400, 600) / math.hypot(36, 24)
    expected = math.degrees(2 * math.atan(96 / (f_orig * 192 / 240)))
    assert p.camera_path.keyframes[0].fov == pytest.approx(expected)  # EXIF wins over --fov
    logs = stdout + err  # job logs go through the terminal runner
    assert "--fov 30 not used" in logs and "from exif" in logs


def test_user_fov_crop_and_size(tmp_path):
    reports = []
    project = new_project_from_image(
        PHOTO,
        tmp_path / "p",
        fov=45,
        size=(320, 192),
        crop=(100, 50, 400, 300),
        ctx=JobContext(reports.append),
    )
    assert project.camera_path.keyframes[0].fov == pytest.approx(45.0)
    c = project.source.crop
    assert (c.x, c.y, c.width, c.height) == (100, 80, 400, 240)  # shrunk, centred, to 5:3
    ref = (
        Image.open(PHOTO)
        .convert("RGB")
        .crop((100, 80, 500, 320))
        .resize((320, 192), Image.Resampling.LANCZOS)
    )
    got = np.asarray(Image.open(tmp_path / "p" / "source.png"))
    assert np.abs(got.astype(int) - np.asarray(ref).astype(int)).mean() < 1.0
    progress = [r for r in reports if r.kind == "progress"]
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == 5
    assert any(r.kind == "log" and "from user" in r.message for r in reports)


def test_depth_pro_gives_a_metric_scene_and_its_own_fov(tmp_path):
    from worldstudio.core.reconstruct.focal import vertical_from_horizontal

    project = new_project_from_image(
        PHOTO, tmp_path / "p", depth_model="depth-pro", size=(208, 128), fov=20
    )
    assert project.scene.metric and project.scene.depth_model == tiny_models.DEPTH_PRO
    assert project.camera_path.keyframes[0].fov == pytest.approx(
        vertical_from_horizontal(55.0, 128, 208), abs=1e-3
    )


def test_replacing_an_existing_project(tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new_project_from_image(PHOTO, out, size=(64, 48))
    assert not (out / "old.txt").exists() and (out / "project.json").is_file()
    assert leftovers(tmp_path) == ["p"]


def test_local_folder_override_is_used(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    local = tmp_path / "da-local"
    shutil.copytree(tiny_models.tiny_model_folder(tiny_models.DA_OUTDOOR), local)
    cfg = tmp_path / "config"
    cfg.mkdir(exist_ok=True)
    (cfg / "models.json").write_text(
        json.dumps({"local_dirs": {"depth-anything-v2-metric-outdoor-small": str(local)}})
    )
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(cfg))
    rc, _, err = run(
        capsys,
        "new",
        "--image",
        PHOTO,
        "--out",
        tmp_path / "p",
        "--depth-model",
        "depth-anything-v2-metric-outdoor-small",
        "--size",
        "64x48",
    )
    assert rc == 0, err
    assert ProjectFolder(tmp_path / "p").load().scene.metric


def test_job_for_the_studio(tmp_path):
    job = new_project_job(PHOTO, tmp_path / "j", size=(64, 48))
    project = job(JobContext())
    assert project.scene.point_count > 0 and (tmp_path / "j" / "project.json").is_file()


# ----------------------------------------------------------------------------- failures
def test_missing_model_offline_fails_at_once_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    out = tmp_path / "p"
    rc, _, err = run(capsys, "new", "--image", PHOTO, "--out", out)
    assert rc == 2
    line = error_line(err)
    assert "depth-anything-v2-small" in line and "99 MB" in line
    assert "worldstudio models download depth-anything-v2-small" in line
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.jpg", b"", "the file is empty"),
        ("noise.png", bytes(range(256)) * 20, "not an image file"),
        ("readme.jpg", b"hello, I am text\n" * 50, "not an image file"),
        ("half.jpg", "HALF", "truncated or corrupt"),
    ],
)
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, capsys, name, content, expected):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    if content == "HALF":
        data = PHOTO.read_bytes()
        content = data[: len(data) // 2]
    src.write_bytes(content)
    out = tmp_path / "out" / "p.wsproj"
    rc, stdout, err = run(capsys, "new", "--image", src, "--out", out)
    assert rc == 2
    line = error_line(err)
    assert line.startswith(f"error: {src}") and expected in line
    assert not out.exists() and leftovers(tmp_path / "out") == []


def test_huge_and_missing_images(tmp_path, capsys):
    from tests.reconstruct.test_image_io import _png_header_only

    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30000, 20000)
    rc, _, err = run(capsys, "new", "--image", bomb, "--out", tmp_path / "p")
    assert rc == 2 and str(bomb) in err and "megapixels" in err
    rc, _, err = run(capsys, "new", "--image", tmp_path / "nope.jpg", "--out", tmp_path / "p")
    assert rc == 2 and "nope.jpg: no such file" in err
    assert leftovers(tmp_path) == ["bomb.png"]


def test_bad_arguments(tmp_path):
    with pytest.raises(WorldStudioError, match="multiples of 16"):
        new_project_from_image(PHOTO, tmp_path / "p", size=(100, 50))
    with pytest.raises(WorldStudioError, match="fov"):
        new_project_from_image(PHOTO, tmp_path / "p", fov=0)
    with pytest.raises(WorldStudioError, match="crop box .* does not fit"):
        new_project_from_image(PHOTO, tmp_path / "p", crop=(500, 0, 400, 300))
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorldStudioError, match="not a folder"):
        new_project_from_image(PHOTO, tmp_path / "file")
    assert leftovers(tmp_path) == ["file"]


def test_cancel_leaves_nothing(tmp_path):
    token = CancelToken()

    def sink(report):
        if report.kind == "progress" and report.done == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        new_project_from_image(PHOTO, tmp_path / "p", size=(64, 48), ctx=JobContext(sink, token))
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- exact depth
def test_the_oracle_depth_reproduces_the_true_geometry():
    from worldstudio.core.oracle import SURFACE_BOX0, SURFACE_ENTITY, OracleScene, demo_intrinsics

    scene = OracleScene.demo()
    H, W = 120, 208
    K = demo_intrinsics(H, W)
    frame = scene.render(np.eye(4), K, H, W, t=0.0)
    cloud = depth_to_cloud(frame.depth, K, frame.rgb)
    # recover which pixel each point came from (row-major order of the kept pixels)
    from worldstudio.core.pointcloud.ops import remove_depth_edges

    keep = remove_depth_edges(frame.depth, 0.05)
    assert len(cloud.xyz) == keep.sum()
    surf = frame.surface[keep]
    xyz = cloud.xyz.astype(np.float64)
    for code, (axis, value) in scene.room_planes.items():
        sel = surf == code
        if sel.any():
            np.testing.assert_allclose(xyz[sel, axis], value, atol=2e-5 * max(1.0, abs(value)))
    floor = surf == 0
    assert floor.sum() > 1000 and np.allclose(xyz[floor, 1], scene.floor_y, atol=1e-4)
    for i, box in enumerate(scene.boxes):
        sel = surf == SURFACE_BOX0 + i
        if sel.any():
            assert np.all(xyz[sel] >= np.array(box.lo) - 1e-4) and np.all(
                xyz[sel] <= np.array(box.hi) + 1e-4
            )
    ball = surf == SURFACE_ENTITY
    r = np.linalg.norm(xyz[ball] - scene.entity_position(0.0), axis=1)
    assert ball.sum() > 20 and np.allclose(r, scene.entity_radius, atol=1e-4)
    # flying pixels: only depth-edge pixels are dropped (the ball's outline, box silhouettes)
    assert keep.mean() > 0.85
