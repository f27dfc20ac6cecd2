"""Fixtures of the LiveWorld tests: a private conversion cache, the golden model loaded through
the app's converter, torch on one thread."""

from __future__ import annotations

import pytest

from tests.tiny_liveworld import TINY_BACKBONE, golden
from tests.tiny_wan import single_thread


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """WORLDSTUDIO_CACHE -> a private folder (conversions land in cache/liveworld)."""
    monkeypatch.setenv("WORLDSTUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "liveworld"


def golden_model(tmp_path):
    """LiveWorld's golden tiny model, its checkpoints written as LiveWorld ships them (pickled
    plain tensor dicts) and loaded through the converter: (LiveWorldTransformer, cases, params)."""
    import torch
    from diffusers import WanTransformer3DModel

    from worldstudio.core.generation.backends.liveworld.model import (
        LiveWorldTransformer,
        StateAdapter,
    )
    from worldstudio.core.generation.backends.liveworld.weights import (
        converted_adapter,
        converted_backbone,
    )

    weights, cases, params = golden()
    torch.save({k: v for k, v in weights.items() if k.startswith("sp_")}, tmp_path / "sp.pt")
    torch.save({k: v for k, v in weights.items() if not k.startswith("sp_")}, tmp_path / "bb.pt")
    backbone = WanTransformer3DModel.from_pretrained(
        converted_backbone(tmp_path / "bb.pt", TINY_BACKBONE)
    )
    adapter = StateAdapter.from_pretrained(converted_adapter(tmp_path / "sp.pt", TINY_BACKBONE))
    return LiveWorldTransformer(backbone.eval(), adapter.eval()), cases, params


@pytest.fixture
def golden_liveworld(tmp_path, cache):
    return golden_model(tmp_path)


# -- the fake hub: tiny depth / SAM 2 (for the model lifter), the tiny Wan T2V, LiveWorld's
# checkpoints and the distilled backbone under their real repo ids --------------------------
_hub: dict = {}


def liveworld_hub(tmp_path_factory):
    from tests import tiny_models
    from tests.tiny_liveworld import install_liveworld_hub

    if "hub" not in _hub:
        hub = tiny_models.fake_hub_cache(tmp_path_factory)
        with single_thread():
            install_liveworld_hub(hub, tmp_path_factory.mktemp("tiny_liveworld"))
        _hub.update(
            hub=hub,
            cache=tmp_path_factory.mktemp("liveworld_cache"),
            config=tmp_path_factory.mktemp("liveworld_config"),
        )
    return _hub


@pytest.fixture
def liveworld_env(tmp_path_factory, monkeypatch):
    """HF_HUB_CACHE -> the fake hub (offline), a session-wide conversion and preview cache, the
    CPU, a private models config."""
    from worldstudio.core.models import clear_local_dirs

    state = liveworld_hub(tmp_path_factory)
    monkeypatch.setenv("HF_HUB_CACHE", str(state["hub"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CACHE", str(state["cache"]))
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(state["config"]))
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    clear_local_dirs()
    yield state
    clear_local_dirs()


def loaded_liveworld(tmp_path_factory, **options):
    """A LiveWorld backend loaded inside the test environment (the environment is restored
    before it is handed out)."""
    from worldstudio.core.generation.backends import get_backend

    state = liveworld_hub(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(state["hub"]))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("WORLDSTUDIO_CACHE", str(state["cache"]))
        mp.setenv("WORLDSTUDIO_CONFIG", str(state["config"]))
        mp.setenv("WORLDSTUDIO_DEVICE", "cpu")
        backend = get_backend("liveworld", **options)
        backend.load()
        backend._preview_map()
    return backend


@pytest.fixture(scope="module")
def liveworld_backend(tmp_path_factory):
    backend = loaded_liveworld(tmp_path_factory)
    yield backend
    backend.close()
