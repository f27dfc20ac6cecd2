"""The wheel installs one import package, ``worldstudio``, and squats on no other name.

Built with pip from this checkout and installed with ``--no-deps`` into a clean virtual
environment; the third-party libraries come from this test environment's site-packages through a
``.pth`` line (the editable install's import hook is not a ``.pth`` that runs there, so
``worldstudio`` can only come from the wheel).
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEEL_SOURCES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "LICENSE",
    "NOTICE",
    "worldstudio",
    "core",
    "studio",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a copy of what the wheel is built from, so setuptools' build/ folder never lands in the repo
    src = tmp_path_factory.mktemp("src")
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(out), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (found,) = out.glob("world_studio-*.whl")
    return found


@pytest.fixture(scope="module")
def clean_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # the dependencies (torch, pydantic, ...) from this environment, after the venv's own packages
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    Path(purelib, "test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return venv


def test_the_wheel_holds_only_the_worldstudio_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"worldstudio"}
    assert "worldstudio/core/project/model.py" in names
    assert "worldstudio/studio/main_window.py" in names
    assert "worldstudio/__main__.py" in names


def test_the_wheel_carries_the_licence_the_icon_and_the_studios_resources(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    (info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    licence = archive.read(f"{info}/licenses/LICENSE").decode()
    assert licence == (REPO / "LICENSE").read_text() and "Apache License" in licence
    assert "Version 2.0, January 2004" in licence
    assert "Copyright" in archive.read(f"{info}/licenses/NOTICE").decode()
    assert "License-Expression: Apache-2.0" in archive.read(f"{info}/METADATA").decode()
    resources = REPO / "studio" / "resources"
    shipped = sorted(str(p.relative_to(resources)) for p in resources.rglob("*") if p.is_file())
    assert "worldstudio.png" in shipped and "worldstudio.svg" in shipped and "style.qss" in shipped
    for name in shipped:
        path = f"worldstudio/studio/resources/{name}"
        assert path in names, f"{path} is not in the wheel"
        assert archive.read(path) == (resources / name).read_bytes()


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=300,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(cwd)},
    )  # fmt: skip


def test_import_core_fails_and_worldstudio_works_in_a_clean_venv(clean_venv, tmp_path):
    python = str(clean_venv / "bin" / "python")
    bare = _run(clean_venv, python, "-c", "import core", cwd=tmp_path)
    assert bare.returncode != 0 and "No module named 'core'" in bare.stderr
    bare = _run(clean_venv, python, "-c", "import studio", cwd=tmp_path)
    assert bare.returncode != 0 and "No module named 'studio'" in bare.stderr
    ok = _run(
        clean_venv, python, "-c",
        "import worldstudio.core.project as p; print(p.__file__)", cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert str(clean_venv) in ok.stdout and str(REPO) not in ok.stdout


def test_the_worldstudio_command_works_in_a_clean_venv(clean_venv, tmp_path):
    python, script = str(clean_venv / "bin" / "python"), str(clean_venv / "bin" / "worldstudio")
    version = _run(
        clean_venv, str(clean_venv / "bin" / "python"), str(script), "--version", cwd=tmp_path
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("worldstudio ")
    made = _run(
        clean_venv, python, "-m", "worldstudio", "new", "--demo",
        str(tmp_path / "demo.wsproj"), "--size", "160x96", cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    info = _run(
        clean_venv,
        str(clean_venv / "bin" / "python"),
        "-m",
        "worldstudio",
        "info",
        str(tmp_path / "demo.wsproj"),
        cwd=tmp_path,
    )
    assert info.returncode == 0, info.stderr
    assert "points" in info.stdout


def test_doctor_new_demo_and_install_desktop_work_in_a_clean_venv(clean_venv, tmp_path):
    script = str(clean_venv / "bin" / "worldstudio")
    doctor = _run(clean_venv, script, "doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stderr
    lines = doctor.stdout.splitlines()
    assert lines[0] == "World Studio 0.1.0, system report"
    row = {line.split("  ")[0]: line for line in lines[1:]}
    assert str(clean_venv / "bin" / "python") in row["Python"]
    assert "HF_HUB_OFFLINE=1: offline" in row["Hub cache"]
    assert f"free in {tmp_path / 'WorldStudio'} (not created yet)" in row["Disk, projects"]
    assert "ffmpeg version" in row["ffmpeg"]
    report = json.loads(_run(clean_venv, script, "doctor", "--json", cwd=tmp_path).stdout)
    assert report["worldstudio"] == "0.1.0" and report["python"]["executable"].startswith(
        str(clean_venv)
    )

    # no folder: the demo goes to ~/WorldStudio (HOME is tmp_path here)
    made = _run(clean_venv, script, "new", "--demo", "--size", "160x96", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    demo = tmp_path / "WorldStudio" / "demo.wsproj"
    assert made.stdout.startswith(f"created {demo} (Demo room: ")
    assert json.loads((demo / "project.json").read_text())["name"] == "Demo room"
    assert (demo / "scene" / "points.ply").is_file() and (demo / "source.png").is_file()

    # the icon comes out of the wheel's package data; the entry starts this venv's command
    installed = _run(clean_venv, script, "install-desktop", cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    share = tmp_path / ".local" / "share"
    entry = (share / "applications" / "worldstudio.desktop").read_text()
    assert f"Exec={script} studio\n" in entry
    icon = share / "icons" / "hicolor" / "256x256" / "apps" / "worldstudio.png"
    assert icon.read_bytes() == (REPO / "studio" / "resources" / "worldstudio.png").read_bytes()
