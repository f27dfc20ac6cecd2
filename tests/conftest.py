"""Test-wide settings (no hub access) and the fixtures shared across the suite.

Models: ``fake_hub`` / ``models_env`` (tiny depth and SAM 2 under their real repo ids).

Generation:
- ``wan_hub`` (session): the shared fake hub cache (tests/tiny_models.py: depth, SAM 2) plus tiny
  ``WanVACEPipeline`` and ``WanImageToVideoPipeline`` installed under the real repo ids
  ``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` and ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``, and the
  1.3B draft preset's step-distillation LoRA (at the tiny shape) under its real repo and file.
- ``wan_folders`` (session): ``{"vace": Path, "i2v": Path}``, the plain saved pipeline folders.
- ``wan_env``: HF_HUB_CACHE -> the fake hub, offline, CPU, a private config folder and a
  session-wide preview cache (the latent-to-RGB fit runs once).
- ``one_thread`` (module): torch on one thread while the module runs (tiny models are faster so,
  and do not stall when the machine is busy).

Training (a tiny Wan VACE under its real repo id, so the trainer's own model lookup and loading
run, a tiny project, and synthetic clips):

- ``tiny_hub`` (session): the fake hub cache holding the tiny ``Wan-AI/Wan2.1-VACE-1.3B-diffusers``.
- ``tiny_vace_folder`` (session): the plain saved pipeline folder.
- ``train_env``: HF_HUB_CACHE -> the fake hub, offline, a private config folder, torch on one
  thread (tiny models run faster so, and do not stall when the machine is busy).
- ``clip_dir`` (session): three 12-frame 40x48 clips at 16 fps of a coloured square moving right
  (red, green, blue), each with a same-name .txt caption.
- ``new_project``: a function making an empty project folder.
"""

from __future__ import annotations

import os

# A hub miss otherwise takes ~24 s to fail; tests never reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The app's thread policy (core.runtime.threads) for the test process too, before torch loads:
# waiting OpenMP threads sleep instead of spinning, so tests do not stall on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import contextlib
from pathlib import Path

import numpy as np
import pytest

from tests import tiny_models, tiny_wan
from tests.tiny_wan import single_thread


@pytest.fixture(autouse=True)
def _crash_logs_in_tmp(tmp_path_factory, monkeypatch):
    """Crash logs of internal errors (core.jobs.crash) go to a temporary folder, never to the
    user's state folder."""
    monkeypatch.setenv("WORLDSTUDIO_CRASH_DIR", str(tmp_path_factory.getbasetemp() / "crashes"))


@pytest.fixture(autouse=True)
def _job_queue_in_tmp(tmp_path, monkeypatch):
    """The job queue (core.jobs.queue) is a file of the test's own, never the user's."""
    monkeypatch.setenv("WORLDSTUDIO_QUEUE", str(tmp_path / "queue" / "queue.json"))


@pytest.fixture(scope="session")
def fake_hub(tmp_path_factory):
    """The tiny depth and SAM 2 models in a fake hub cache under their real repo ids (built once
    per session; tests/tiny_models.py)."""
    return tiny_models.fake_hub_cache(tmp_path_factory)


def use_models_from(hub, monkeypatch, tmp_path):
    """Point the model manager at ``hub``, offline, with a private config folder, on the CPU."""
    from worldstudio.core.models import clear_local_dirs

    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(tmp_path / "models-config"))
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    clear_local_dirs()
    return hub


@pytest.fixture
def models_env(fake_hub, monkeypatch, tmp_path):
    """The fake hub's tiny models, offline, no local-folder overrides."""
    from worldstudio.core.models import clear_local_dirs

    yield use_models_from(fake_hub, monkeypatch, tmp_path)
    clear_local_dirs()


# -- generation: the tiny Wan pipelines in a fake hub cache --------------------
_state: dict[str, Path] = {}


def _build(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    if "hub" not in _state:
        hub = tiny_models.fake_hub_cache(tmp_path_factory)
        root = tmp_path_factory.mktemp("tiny_wan")
        with single_thread():
            vace = tiny_wan.build_tiny_wan_vace(root / "vace")
            i2v = tiny_wan.build_tiny_wan_i2v(root / "i2v")
        tiny_wan.install_in_fake_hub(hub, tiny_wan.WAN_VACE_REPO, vace)
        tiny_wan.install_in_fake_hub(hub, tiny_wan.WAN_I2V_REPO, i2v)
        lora = tiny_wan.build_tiny_distill_lora(root / "distill_lora")
        tiny_wan.install_in_fake_hub(hub, tiny_wan.DISTILL_LORA_REPO, lora)
        _state.update(
            hub=hub,
            vace=vace,
            i2v=i2v,
            cache=tmp_path_factory.mktemp("preview_cache"),
            config=tmp_path_factory.mktemp("wan_config"),
        )
    return _state["hub"], {"vace": _state["vace"], "i2v": _state["i2v"]}


@contextlib.contextmanager
def wan_environment(mp: pytest.MonkeyPatch):
    """Apply the Wan test environment with ``mp`` (a MonkeyPatch)."""
    from worldstudio.core.models import clear_local_dirs

    mp.setenv("HF_HUB_CACHE", str(_state["hub"]))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("WORLDSTUDIO_CONFIG", str(_state["config"]))
    mp.setenv("WORLDSTUDIO_DEVICE", "cpu")
    mp.setenv("WORLDSTUDIO_CACHE", str(_state["cache"]))
    clear_local_dirs()
    yield Path(os.environ["HF_HUB_CACHE"])
    clear_local_dirs()


@pytest.fixture(scope="session")
def wan_hub(tmp_path_factory) -> Path:
    return _build(tmp_path_factory)[0]


@pytest.fixture(scope="session")
def wan_folders(tmp_path_factory) -> dict[str, Path]:
    return _build(tmp_path_factory)[1]


@pytest.fixture
def wan_env(wan_hub, monkeypatch):
    with wan_environment(monkeypatch) as hub:
        yield hub


@pytest.fixture(scope="module")
def one_thread():
    with single_thread():
        yield


def loaded_backend(kind: str, **options):
    """A Wan backend loaded (and its preview map fitted) inside the test environment; the
    environment is restored before the backend is handed out."""
    from worldstudio.core.generation.backends import get_backend

    with pytest.MonkeyPatch.context() as mp, wan_environment(mp):
        backend = get_backend(kind, **options)
        backend.load()
        backend._preview_map()
    return backend


@pytest.fixture(scope="module")
def vace_backend(wan_hub, one_thread):
    backend = loaded_backend("wan-vace")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def i2v_backend(wan_hub, one_thread):
    backend = loaded_backend("wan-i2v")
    yield backend
    backend.close()


# -- training: a tiny Wan VACE, clips and projects ------------------------------
COLOURS = {"red": (230, 40, 40), "green": (40, 220, 60), "blue": (50, 60, 230)}
CLIP_FPS = 16
CLIP_FRAMES = 12

# The tiny training shape: 32x32, 9 frames -> latents (16, 3, 4, 4), 12 tokens.
TINY = {"width": 32, "height": 32, "frames": 9}

_train_state: dict[str, Path] = {}


def square_clip(
    colour, frames: int = CLIP_FRAMES, height: int = 40, width: int = 48, step: int = 2
):
    out = []
    for k in range(frames):
        f = np.full((height, width, 3), 24, np.uint8)
        x = 4 + step * k
        f[12:28, x : x + 14] = colour
        out.append(f)
    return out


def _build_train(tmp_path_factory) -> None:
    if "hub" in _train_state:
        return
    root = tmp_path_factory.mktemp("train_tiny_wan")
    with single_thread():
        folder = tiny_wan.build_tiny_wan_vace(root / "vace")
    hub = root / "hub"
    tiny_wan.install_in_fake_hub(hub, tiny_wan.WAN_VACE_REPO, folder)
    _train_state.update(hub=hub, folder=folder, config=root / "config")


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory) -> Path:
    _build_train(tmp_path_factory)
    return _train_state["hub"]


@pytest.fixture(scope="session")
def tiny_vace_folder(tmp_path_factory) -> Path:
    _build_train(tmp_path_factory)
    return _train_state["folder"]


@pytest.fixture
def train_env(tiny_hub, monkeypatch):
    from worldstudio.core.models import clear_local_dirs

    monkeypatch.setenv("HF_HUB_CACHE", str(tiny_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(_train_state["config"]))
    clear_local_dirs()
    with single_thread():
        yield tiny_hub
    clear_local_dirs()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    from worldstudio.core.media import write_mp4

    folder = tmp_path_factory.mktemp("clips")
    for name, colour in COLOURS.items():
        write_mp4(folder / f"{name}.mp4", square_clip(colour), CLIP_FPS)
        (folder / f"{name}.txt").write_text(f"a {name} square slides to the right\n")
    return folder


@pytest.fixture
def new_project(tmp_path):
    from worldstudio.core.project import Project, save_project

    def make(name: str = "p.wsproj") -> Path:
        path = tmp_path / name
        save_project(Project(name="training test"), path)
        return path

    return make
