"""Fixtures for the training tests: a tiny Wan VACE pipeline in a fake hub cache (under the real
repo id, so the trainer's own model lookup and loading run), a tiny project, and synthetic clips.

- ``tiny_hub`` (session): the fake hub cache holding the tiny ``Wan-AI/Wan2.1-VACE-1.3B-diffusers``.
- ``tiny_vace_folder`` (session): the plain saved pipeline folder.
- ``train_env``: HF_HUB_CACHE -> the fake hub, offline, a private config folder, torch on one
  thread (tiny models run faster so, and do not stall when the machine is busy).
- ``clip_dir`` (session): three 12-frame 40x48 clips at 16 fps of a coloured square moving right
  (red, green, blue), each with a same-name .txt caption.
- ``new_project``: a function making an empty project folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import tiny_wan
from tests.tiny_wan import single_thread

COLOURS = {"red": (230, 40, 40), "green": (40, 220, 60), "blue": (50, 60, 230)}
CLIP_FPS = 16
CLIP_FRAMES = 12

# The tiny training shape: 32x32, 9 frames -> latents (16, 3, 4, 4), 12 tokens.
TINY = {"width": 32, "height": 32, "frames": 9}

_state: dict[str, Path] = {}


def square_clip(colour, frames: int = CLIP_FRAMES, height: int = 40, width: int = 48, step: int = 2):
    out = []
    for k in range(frames):
        f = np.full((height, width, 3), 24, np.uint8)
        x = 4 + step * k
        f[12:28, x : x + 14] = colour
        out.append(f)
    return out


def _build(tmp_path_factory) -> None:
    if "hub" in _state:
        return
    root = tmp_path_factory.mktemp("train_tiny_wan")
    with single_thread():
        folder = tiny_wan.build_tiny_wan_vace(root / "vace")
    hub = root / "hub"
    tiny_wan.install_in_fake_hub(hub, tiny_wan.WAN_VACE_REPO, folder)
    _state.update(hub=hub, folder=folder, config=root / "config")


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory) -> Path:
    _build(tmp_path_factory)
    return _state["hub"]


@pytest.fixture(scope="session")
def tiny_vace_folder(tmp_path_factory) -> Path:
    _build(tmp_path_factory)
    return _state["folder"]


@pytest.fixture
def train_env(tiny_hub, monkeypatch):
    from core.models import clear_local_dirs

    monkeypatch.setenv("HF_HUB_CACHE", str(tiny_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(_state["config"]))
    clear_local_dirs()
    with single_thread():
        yield tiny_hub
    clear_local_dirs()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    from core.interop.video import write_mp4

    folder = tmp_path_factory.mktemp("clips")
    for name, colour in COLOURS.items():
        write_mp4(folder / f"{name}.mp4", square_clip(colour), CLIP_FPS)
        (folder / f"{name}.txt").write_text(f"a {name} square slides to the right\n")
    return folder


@pytest.fixture
def new_project(tmp_path):
    from core.project import Project, save_project

    def make(name: str = "p.wsproj") -> Path:
        path = tmp_path / name
        save_project(Project(name="training test"), path)
        return path

    return make
