"""The app around the commands: `worldstudio` without a display, `doctor` (text and JSON, a
broken part reported in its row), `install-desktop` into a temporary XDG_DATA_HOME and
`new --demo` without a folder. Starting the studio itself is tested in
tests/studio/test_app_launch.py (it needs the studio's fixtures)."""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from worldstudio.core.cli import main
from worldstudio.core.models import list_status
from worldstudio.core.project import load_project
from worldstudio.core.system import format_report, system_report
from worldstudio.core.system.report import _NVRM
from worldstudio.studio import desktop


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- no display
@pytest.mark.parametrize("argv", [(), ("studio",), ("studio", "some.wsproj", "--no-viewport")])
def test_without_a_display_the_studio_says_so_in_one_line(argv, capsys, monkeypatch):
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        pytest.skip("only Linux and the BSDs need DISPLAY or WAYLAND_DISPLAY")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: no display to open the studio on") and "xvfb-run" in err


def test_the_studio_refuses_a_folder_that_is_not_a_project_before_opening(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "studio", tmp_path / "empty")
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path / 'empty'}: not a project (no project.json inside)\n"
    code, _, err = run(capsys, "studio", tmp_path / "missing.wsproj")
    assert code == 2 and err == f"error: {tmp_path / 'missing.wsproj'}: no such project folder\n"


def test_the_help_lists_the_app_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("studio", "doctor", "install-desktop", "new"):
        assert f"    {command}" in out


# --------------------------------------------------------------------------- doctor
@pytest.fixture
def places(tmp_path, monkeypatch):
    """The projects folder in tmp (not made yet)."""
    projects = tmp_path / "projects"
    monkeypatch.setenv("WORLDSTUDIO_PROJECTS_DIR", str(projects))
    return projects


def test_doctor_prints_one_block_with_every_part(models_env, places, capsys):
    import torch

    code, out, err = run(capsys, "doctor")
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert lines[0].startswith("World Studio ") and lines[0].endswith(", system report")
    labels = [line.split("  ")[0] for line in lines[1:] if not line.startswith(" ")]
    assert labels == [
        "OS",
        "Python",
        "torch",
        "GPUs" if not torch.cuda.is_available() else "GPU 0",
        *(f"GPU {i}" for i in range(1, torch.cuda.device_count())),
        "NVIDIA driver",
        "Attention",
        "RAM",
        "Disk, projects",
        "Disk, hub cache",
        "Hub cache",
        "Models",
        "ffmpeg",
        "OpenGL",
        "Libraries",
    ]
    row = {line.split("  ")[0]: line for line in lines}
    assert torch.__version__ in row["torch"]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    assert build in row["torch"]
    assert sys.executable in row["Python"]
    assert "native" in row["Attention"]  # PyTorch SDPA runs everywhere
    assert f"free in {places} (not created yet)" in row["Disk, projects"]
    assert not places.exists()  # the report creates nothing
    assert f"free in {models_env}" in row["Disk, hub cache"]
    assert f"{models_env} (HF_HUB_OFFLINE=1: offline)" in row["Hub cache"]
    present = [s.info.name for s in list_status() if s.present]
    assert present  # the fake hub holds the tiny depth and SAM 2 models
    assert row["Models"].endswith(f"present: {', '.join(present)}")
    assert "ffmpeg version" in row["ffmpeg"] and "imageio-ffmpeg" in row["ffmpeg"]
    assert "diffusers" in row["Libraries"]


def test_doctor_json_is_the_same_report(models_env, places, capsys):
    import torch

    code, out, err = run(capsys, "doctor", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["cuda_build"] == torch.version.cuda
    assert len(report["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert report["hub"]["cache"] == str(models_env) and report["hub"]["offline"] is True
    assert report["hub"]["HF_HUB_OFFLINE"] == "1"
    assert [m["name"] for m in report["hub"]["present"]] == [
        s.info.name for s in list_status() if s.present
    ]
    assert report["disk"]["projects"]["path"] == str(places)
    assert report["disk"]["projects"]["free_bytes"] > 0
    assert report["memory"]["total_bytes"] >= report["memory"]["available_bytes"] > 0
    assert "native" in report["attention"]["usable"]
    # the text is made from this data
    assert (
        format_report(report).splitlines()[0]
        == f"World Studio {report['worldstudio']}, system report"
    )


def test_a_broken_part_is_reported_in_its_row_and_the_rest_still_runs(
    models_env, places, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-such-ffmpeg"))
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    (ffmpeg,) = [line for line in out.splitlines() if line.startswith("ffmpeg")]
    assert "error:" in ffmpeg
    assert any(line.startswith("Models") for line in out.splitlines())
    assert any(line.startswith("OpenGL") for line in out.splitlines())


def test_an_attention_package_that_fails_to_import_says_why(places, tmp_path, monkeypatch):
    # what a kernel package built against another torch does when imported
    package = tmp_path / "site" / "sageattention"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise ImportError("undefined symbol: _ZN3c1017SymbolicShapeMeta")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    report = system_report()
    state = report["attention"]["packages"]["sageattention"]
    assert (
        state
        == "installed, fails to import: ImportError: undefined symbol: _ZN3c1017SymbolicShapeMeta"
    )
    assert "sage" not in report["attention"]["usable"]
    text = format_report(report)
    assert "sageattention installed, fails to import: ImportError" in text


def test_each_gpu_gets_a_row_with_its_free_memory(models_env, places):
    report = system_report()
    report["gpus"] = [
        {"index": 0, "name": "GPU A", "capability": "9.0", "total_bytes": 80 * 1024**3,
         "free_bytes": 79 * 1024**3},
        {"index": 1, "name": "GPU B", "capability": "8.9", "total_bytes": 24 * 1024**3,
         "free_bytes": 3 * 1024**3},
    ]  # fmt: skip
    report["gpu_error"] = None
    lines = format_report(report).splitlines()
    assert any(
        line.startswith("GPU 0") and line.endswith("GPU A, compute 9.0, 80.0 GiB, 79.0 GiB free")
        for line in lines
    )
    assert any(line.endswith("GPU B, compute 8.9, 24.0 GiB, 3.0 GiB free") for line in lines)
    assert not any(line.startswith("GPUs") for line in lines)


@pytest.mark.parametrize(
    "text",
    [
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build",
    ],
)
def test_the_driver_version_is_read_from_the_kernel_modules_line(text):
    assert _NVRM.search(text).group(1) == "550.54.15"


# --------------------------------------------------------------------------- install-desktop
@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


@pytest.mark.skipif(sys.platform != "linux", reason="freedesktop.org desktops")
def test_install_desktop_writes_the_entry_and_icons_under_xdg_data_home(data_home, capsys):
    code, out, err = run(capsys, "install-desktop")
    assert code == 0, err
    entry_file = data_home / "applications" / "worldstudio.desktop"
    png = data_home / "icons" / "hicolor" / "256x256" / "apps" / "worldstudio.png"
    svg = data_home / "icons" / "hicolor" / "scalable" / "apps" / "worldstudio.svg"
    for path in (entry_file, png, svg):
        assert f"installed {path}" in out
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    entry = _entry(entry_file)
    assert entry["Type"] == "Application" and entry["Name"] == "World Studio"
    assert entry["Icon"] == "worldstudio" and entry["Terminal"] == "false"
    command = entry["Exec"].split()
    assert command[-1] == "studio"
    assert Path(command[0]).parent == Path(sys.executable).parent  # this environment's
    assert os.access(command[0], os.X_OK)
    with Image.open(png) as im:
        assert im.size == (256, 256)
    assert svg.read_bytes() == desktop.ICON_SVG.read_bytes()

    code, out, _ = run(capsys, "install-desktop", "--uninstall")
    assert code == 0
    assert not entry_file.exists() and not png.exists() and not svg.exists()
    assert out.count("removed ") == 3
    code, out, _ = run(capsys, "install-desktop", "--uninstall")
    assert code == 0 and out.startswith("nothing to remove")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_relative_xdg_data_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert desktop.installed_paths()["entry"].is_relative_to(tmp_path / ".local" / "share")


def test_exec_quotes_paths_with_spaces_and_dollars():
    line = next(
        ln for ln in desktop.desktop_entry(["/opt/my apps/bin/worldstudio", "studio"]).splitlines()
        if ln.startswith("Exec=")
    )  # fmt: skip
    assert line == 'Exec="/opt/my apps/bin/worldstudio" studio'
    line = next(
        ln for ln in desktop.desktop_entry(["/a$b/worldstudio", "studio"]).splitlines()
        if ln.startswith("Exec=")
    )  # fmt: skip
    # inside quotes "$" is escaped by a backslash, which the value's own escaping doubles
    assert line == 'Exec="/a\\\\$b/worldstudio" studio'


# --------------------------------------------------------------------------- new --demo
def test_new_demo_without_a_folder_goes_to_the_projects_folder(places, capsys):
    code, out, err = run(capsys, "new", "--demo", "--size", "160x96")
    assert code == 0, err
    first = places / "demo.wsproj"
    assert out.startswith(f"created {first} ")
    assert load_project(first).source.width == 160
    code, out, err = run(capsys, "new", "--demo", "--size", "160x96")
    assert code == 0, err
    assert out.startswith(f"created {places / 'demo-2.wsproj'} ")
    assert (first / "project.json").is_file()  # the first one is kept


def test_new_demo_refuses_a_too_small_size(tmp_path, capsys):
    code, out, err = run(capsys, "new", "--demo", tmp_path / "d.wsproj", "--size", "8x8")
    assert code == 2 and err == "error: --size: the demo needs at least 16x16, got 8x8\n"
    assert not (tmp_path / "d.wsproj").exists()
