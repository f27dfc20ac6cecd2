"""Fixtures for the generation tests: the tiny Wan pipelines in a fake hub cache.

- ``wan_hub`` (session): the shared fake hub cache (tests/tiny_models.py: depth, SAM 2) plus tiny
  ``WanVACEPipeline`` and ``WanImageToVideoPipeline`` installed under the real repo ids
  ``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` and ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``.
- ``wan_folders`` (session): ``{"vace": Path, "i2v": Path}``, the plain saved pipeline folders.
- ``wan_env``: HF_HUB_CACHE -> the fake hub, offline, CPU, a private config folder and a
  session-wide preview cache (the latent-to-RGB fit runs once).
- ``one_thread`` (module): torch on one thread while the module runs (tiny models are faster so,
  and do not stall when the machine is busy).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests import tiny_models, tiny_wan
from tests.tiny_wan import single_thread

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
        _state.update(hub=hub, vace=vace, i2v=i2v, cache=tmp_path_factory.mktemp("preview_cache"),
                      config=tmp_path_factory.mktemp("wan_config"))
    return _state["hub"], {"vace": _state["vace"], "i2v": _state["i2v"]}


@contextlib.contextmanager
def wan_environment(mp: pytest.MonkeyPatch):
    """Apply the Wan test environment with ``mp`` (a MonkeyPatch)."""
    from core.models import clear_local_dirs

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
    from core.generation.backends import get_backend

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
