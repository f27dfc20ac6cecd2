"""The wheel installs one import package, ``worldstudio``, and squats on no other name.

Built with pip from this checkout and installed with ``--no-deps`` into a clean virtual
environment; the third-party libraries come from this test environment's site-packages through a
``.pth`` line (the editable install's import hook is not a ``.pth`` that runs there, so
``worldstudio`` can only come from the wheel).
"""

from __future__ import annotations

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
