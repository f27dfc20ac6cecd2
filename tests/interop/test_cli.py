"""``worldstudio import ...`` and the interop flags of ``worldstudio export``, end to end."""

from __future__ import annotations

import argparse
import json
import zipfile

import numpy as np
import pytest
import yaml

from worldstudio.core.cli import build_parser, main
from worldstudio.core.cli.export_cmd import cmd_export
from worldstudio.core.errors import WorldStudioError
from worldstudio.core.oracle.demo_project import create_demo_project
from worldstudio.core.project import ProjectFolder

from .helpers import make_project, tree


@pytest.fixture(scope="module")
def demo_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo.wsproj"
    create_demo_project(root, width=160, height=96)
    return root


@pytest.fixture
def demo(tmp_path, demo_src):
    import shutil

    shutil.copytree(demo_src, tmp_path / "demo.wsproj")
    return tmp_path / "demo.wsproj"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


# ---------------------------------------------------------------------------------------- import


def test_import_bundle(tmp_path, demo, capsys):
    from worldstudio.core.interop.bundle import export_bundle

    zpath, _ = export_bundle(demo, tmp_path / "b.zip")
    assert main(["import", "bundle", str(zpath), "--out", str(tmp_path / "copy")]) == 0
    assert "created" in capsys.readouterr().out
    assert ProjectFolder(tmp_path / "copy").load() == ProjectFolder(demo).load()


def test_import_bundle_refuses_traversal_in_one_line(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("project.json", "{}")
        zf.writestr("../../escape.txt", "x")
    before = tree(tmp_path)
    assert main(["import", "bundle", str(tmp_path / "evil.zip"), "--out", str(tmp_path / "p")]) == 2
    line = one_error_line(capsys)
    assert "evil.zip" in line and "'..'" in line
    assert tree(tmp_path) == before


def test_import_bundle_size_cap_flag(tmp_path, demo, capsys):
    from worldstudio.core.interop.bundle import export_bundle

    zpath, _ = export_bundle(demo, tmp_path / "b.zip")
    assert (
        main(["import", "bundle", str(zpath), "--out", str(tmp_path / "c"), "--max-size", "10K"])
        == 2
    )
    assert "size cap" in one_error_line(capsys)
    assert (
        main(["import", "bundle", str(zpath), "--out", str(tmp_path / "c"), "--max-size", "lots"])
        == 2
    )
    assert "--max-size" in one_error_line(capsys)
    assert not (tmp_path / "c").exists()


def _lw_sample(tmp_path, demo):
    from worldstudio.core.interop.liveworld import export_liveworld

    return export_liveworld(demo, tmp_path / "lw").yaml_path


def test_import_liveworld_pending(tmp_path, demo, capsys):
    yaml_path = _lw_sample(tmp_path, demo)
    code = main(
        ["import", "liveworld", str(yaml_path), "--out", str(tmp_path / "q"), "--no-reconstruct"]
    )
    assert code == 0
    out = capsys.readouterr()
    assert "reconstruction pending" in out.out and "2 rounds" in out.out
    assert "warning:" in out.err  # the 160x96 demo is cropped to 832x480
    assert ProjectFolder(tmp_path / "q").load().scene.pending


def test_import_liveworld_bad_keys_in_one_line(tmp_path, demo, capsys):
    yaml_path = _lw_sample(tmp_path, demo)
    data = yaml.safe_load(yaml_path.read_text())
    data["iter_input"] = {0: data["iter_input"]["0"]}
    yaml_path.write_text(yaml.safe_dump(data))
    assert (
        main(
            [
                "import",
                "liveworld",
                str(yaml_path),
                "--out",
                str(tmp_path / "q"),
                "--no-reconstruct",
            ]
        )
        == 2
    )
    line = one_error_line(capsys)
    assert "sample.yaml" in line and "iter_input" in line and "string" in line
    assert not (tmp_path / "q").exists()


def test_import_nerfstudio(tmp_path, demo, capsys):
    from worldstudio.core.interop.nerfstudio import export_nerfstudio

    export_nerfstudio(demo, tmp_path / "cp.json")
    make_project(tmp_path / "other")
    assert (
        main(["import", "nerfstudio", str(tmp_path / "cp.json"), "--into", str(tmp_path / "other")])
        == 0
    )
    assert "4 keyframes" in capsys.readouterr().out
    got = ProjectFolder(tmp_path / "other").load().camera_path
    want = ProjectFolder(demo).load().camera_path
    assert got.settings == want.settings
    for a, b in zip(got.keyframes, want.keyframes, strict=True):
        assert (a.id, a.easing, a.fov, a.transition) == (b.id, b.easing, b.fov, b.transition)
        assert np.allclose(a.position, b.position, atol=1e-9) and np.allclose(
            a.orientation, b.orientation, atol=1e-9
        )


def test_import_nerfstudio_into_a_missing_project(tmp_path, capsys):
    (tmp_path / "cp.json").write_text(json.dumps({"fps": 16, "keyframes": []}))
    assert (
        main(["import", "nerfstudio", str(tmp_path / "cp.json"), "--into", str(tmp_path / "nope")])
        == 2
    )
    assert "nope" in one_error_line(capsys)


# ---------------------------------------------------------------------------------------- export


def _export_args(argv: list[str]) -> argparse.Namespace:
    """``worldstudio export ARGV`` as the command line parses it."""
    return build_parser().parse_args(["export", *argv])


def test_export_writes_everything_asked(tmp_path, demo, capsys):
    args = _export_args(
        [
            str(demo),
            "--bundle",
            str(tmp_path / "b.zip"),
            "--liveworld",
            str(tmp_path / "lw"),
            "--nerfstudio",
            str(tmp_path / "cp.json"),
            "--path-json",
            str(tmp_path / "p.json"),
            "--path-csv",
            str(tmp_path / "p.csv"),
            "--ply",
            str(tmp_path / "s.ply"),
            "--with-path",
        ]
    )
    assert cmd_export(args) == 0
    out = capsys.readouterr()
    assert out.out.count("wrote ") == 6
    for name in (
        "b.zip",
        "lw/sample.yaml",
        "lw/geometry.npz",
        "cp.json",
        "p.json",
        "p.csv",
        "s.ply",
    ):
        assert (tmp_path / name).is_file(), name
    assert "warning: " in out.err  # easing in nerfstudio, size in LiveWorld


@pytest.mark.parametrize(
    "flags, match",
    [
        ([], "say what to export"),
        (["--mp4", "x.mp4"], "needs --run"),
        (["--layout", "combined", "--bundle", "b.zip"], "--layout goes with --mp4"),
        (["--with-path", "--bundle", "b.zip"], "--with-path goes with --ply"),
        (["--round", "1", "--ply", "x.ply"], "--round goes with"),
    ],
)
def test_export_rejects_bad_combinations(tmp_path, demo, flags, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _export_args([str(demo), *flags])
    with pytest.raises(WorldStudioError, match=match):
        cmd_export(args)
    assert [p.name for p in tmp_path.iterdir()] == ["demo.wsproj"]


def test_the_export_command_takes_ply_with_path():
    assert _export_args(["p", "--ply", "x.ply", "--with-path"]).with_path


def test_cli_export_bundle_and_back(tmp_path, demo, capsys):
    assert main(["export", str(demo), "--bundle", str(tmp_path / "b.zip")]) == 0
    assert main(["import", "bundle", str(tmp_path / "b.zip"), "--out", str(tmp_path / "c")]) == 0
    assert ProjectFolder(tmp_path / "c").load() == ProjectFolder(demo).load()


def test_cli_export_liveworld_round_trip(tmp_path, demo, capsys):
    assert main(["export", str(demo), "--liveworld", str(tmp_path / "lw")]) == 0
    assert (
        main(
            [
                "import",
                "liveworld",
                str(tmp_path / "lw" / "sample.yaml"),
                "--out",
                str(tmp_path / "q"),
                "--no-reconstruct",
            ]
        )
        == 0
    )
    assert main(["export", str(tmp_path / "q"), "--liveworld", str(tmp_path / "lw2")]) == 0
    a = np.load(tmp_path / "lw" / "geometry.npz")["poses_c2w"]
    b = np.load(tmp_path / "lw2" / "geometry.npz")["poses_c2w"]
    assert np.max(np.abs(a - b)) < 1e-5
    ya, yb = (yaml.safe_load((tmp_path / d / "sample.yaml").read_text()) for d in ("lw", "lw2"))
    assert ya["iter_input"] == yb["iter_input"]


def test_cli_export_nerfstudio_and_paths(tmp_path, demo, capsys):
    assert (
        main(
            [
                "export",
                str(demo),
                "--nerfstudio",
                str(tmp_path / "cp.json"),
                "--path-csv",
                str(tmp_path / "p.csv"),
                "--path-frames",
                "path",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "cp.json").read_text())["camera_type"] == "perspective"
    assert "p.csv" in capsys.readouterr().out


def test_cli_export_mp4_errors_in_one_line(tmp_path, demo, capsys):
    assert main(["export", str(demo), "--mp4", str(tmp_path / "x.mp4"), "--run", "missing"]) == 2
    assert "no such run" in one_error_line(capsys)
    assert main(["export", str(demo), "--mp4", str(tmp_path / "x.mp4")]) == 2
    assert "--run" in one_error_line(capsys)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_export_ply_with_path(tmp_path, demo, capsys):
    assert main(["export", str(demo), "--ply", str(tmp_path / "s.ply"), "--with-path"]) == 0
    assert "points" in capsys.readouterr().out
