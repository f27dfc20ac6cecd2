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
