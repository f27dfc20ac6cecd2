"""Every project command end to end on the demo project, through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from worldstudio.core.cli import main
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.media import probe_video
from worldstudio.core.pointcloud.ply import read_ply
from worldstudio.core.project import load_project

W, H = 160, 96


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.wsproj"
    from worldstudio.core.oracle.demo_project import create_demo_project

    create_demo_project(out, width=W, height=H)
    return out


@pytest.fixture
def demo(demo_template, tmp_path):
    import shutil

    target = tmp_path / "demo.wsproj"
    shutil.copytree(demo_template, target)
    return target


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_new_demo_creates_a_complete_project(tmp_path, capsys):
    code, out, _ = run(capsys, "new", "--demo", tmp_path / "d.wsproj")
    assert code == 0 and "created" in out
    project = load_project(tmp_path / "d.wsproj")
    assert project.scene.point_count == 832 * 480  # every pixel of exact depth
    assert len(read_ply(tmp_path / "d.wsproj" / "scene" / "points.ply")) == 832 * 480
    assert (tmp_path / "d.wsproj" / "source.png").is_file()
    assert len(bake_path(project.camera_path)) == project.total_frames
    # refuses to overwrite unless told to
    code, _, err = run(capsys, "new", "--demo", tmp_path / "d.wsproj")
    assert code == 2 and "already exists" in err


def test_info_summarises(demo, capsys):
    code, out, _ = run(capsys, "info", demo)
    assert code == 0
    assert f"image       {W}x{H}" in out
    assert f"points      {W * H} points" in out
    assert "keyframes   4" in out
    assert "rounds      2 x 65 frames" in out
    assert "entities    1" in out and "ball" in out
    assert "monitors    1" in out


def test_path_preset_replaces_the_path(demo, capsys):
    code, out, _ = run(
        capsys, "path", demo, "--preset", "orbit", "--set", "seconds=4", "--set", "n_keyframes=4"
    )
    assert code == 0, out
    project = load_project(demo)
    assert len(project.camera_path.keyframes) == 5  # a full turn returns to the start
    assert len(bake_path(project.camera_path)) == 4 * 16 + 1


def test_path_actions(demo, capsys):
    code, out, _ = run(capsys, "path", demo, "--actions", "(FN)(FN)(fLN)", "--step-length", "0.5")
    assert code == 0, out
    kfs = load_project(demo).camera_path.keyframes
    assert len(kfs) == 4
    np.testing.assert_allclose(kfs[2].position, [0, 0, 1.0], atol=1e-9)  # two steps forward


def test_path_list_names_the_presets(capsys):
    code, out, _ = run(capsys, "path", "--list")
    assert code == 0
    for name in ("orbit", "dolly", "pan", "truck_out_and_back", "turn_away_and_back"):
        assert name in out


def test_preview_writes_h264_with_one_frame_per_baked_pose(demo, tmp_path, capsys):
    out_file = tmp_path / "preview.mp4"
    run(capsys, "path", demo, "--actions", "(FN)(SL)", "--frames-per-step", "4")
    code, out, _ = run(capsys, "preview", demo, "--out", out_file, "--size", "96x64")
    assert code == 0, out
    info = probe_video(out_file)
    baked = bake_path(load_project(demo).camera_path)
    assert (info.codec, info.pix_fmt, info.faststart) == ("h264", "yuv420p", True)
    assert (info.width, info.height) == (96, 64)
    assert info.frames == len(baked) == 9


def test_export_ply(demo, tmp_path, capsys):
    code, out, _ = run(capsys, "export", demo, "--ply", tmp_path / "scene.ply")
    assert code == 0
    a = read_ply(tmp_path / "scene.ply")
    b = read_ply(demo / "scene" / "points.ply")
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.rgb, b.rgb)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "{missing}"], "no such project folder"),
        (["info", "{broken}"], "not valid JSON"),
        (["path", "{demo}", "--actions", "(FN)(rL)"], "step 2 '(rL)'"),
        (["path", "{demo}", "--preset", "spiral"], "unknown preset 'spiral'"),
        (["path", "{demo}", "--preset", "orbit", "--set", "seconds=soon"], "seconds"),
        (["preview", "{demo}", "--out", "{unwritable}/x.mp4"], "cannot write here"),
        (["export", "{demo}", "--ply", "{unwritable}/x.ply"], "x.ply"),
        (["preview", "{demo}", "--out", "{tmp}/x.mp4", "--size", "big"], "--size"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(demo, tmp_path, capsys, argv, message):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "project.json").write_text("{oops")
    unwritable = tmp_path / "a_file"
    unwritable.write_text("")
    names = {
        "missing": tmp_path / "nope",
        "broken": broken,
        "demo": demo,
        "unwritable": unwritable,
        "tmp": tmp_path,
    }
    before = (demo / "project.json").read_bytes()
    code, _, err = run(capsys, *[a.format(**names) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert (demo / "project.json").read_bytes() == before  # nothing changed on failure


def test_console_script_runs_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "worldstudio", "info", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_info_does_not_import_torch(demo):
    code = (
        "import sys; from worldstudio.core.cli import main; main(['info', sys.argv[1]]); "
        "print(json.dumps(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", "import json; " + code, str(demo)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
