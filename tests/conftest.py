"""Test-wide settings: no hub access, deterministic threads, shared fixtures."""

from __future__ import annotations

import os

# A hub miss otherwise takes ~24 s to fail; tests never reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


import pytest  # noqa: E402 - after the environment above is set


@pytest.fixture(scope="session")
def fake_hub(tmp_path_factory):
    """The tiny depth and SAM 2 models in a fake hub cache under their real repo ids (built once
    per session; tests/tiny_models.py)."""
    from tests import tiny_models

    return tiny_models.fake_hub_cache(tmp_path_factory)


def use_models_from(hub, monkeypatch, tmp_path):
    """Point the model manager at ``hub``, offline, with a private config folder, on the CPU."""
    from core.models import clear_local_dirs

    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(tmp_path / "models-config"))
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    clear_local_dirs()
    return hub


@pytest.fixture
def models_env(fake_hub, monkeypatch, tmp_path):
    """The fake hub's tiny models, offline, no local-folder overrides."""
    from core.models import clear_local_dirs

    yield use_models_from(fake_hub, monkeypatch, tmp_path)
    clear_local_dirs()
