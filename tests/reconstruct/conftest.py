"""Fixtures for the reconstruction tests: the shared fake hub cache and an isolated model environment.

Modules that load or look up models say ``pytestmark = pytest.mark.usefixtures("models_env")``.
"""

from __future__ import annotations

import pytest

from tests import tiny_models


@pytest.fixture(scope="session")
def fake_hub(tmp_path_factory):
    """The tiny models in a fake hub cache under their real repo ids (built once per session)."""
    return tiny_models.fake_hub_cache(tmp_path_factory)


@pytest.fixture
def models_env(fake_hub, monkeypatch, tmp_path):
    """HF_HUB_CACHE -> the fake hub, offline, a private config folder, CPU, no overrides."""
    from core.models import clear_local_dirs

    monkeypatch.setenv("HF_HUB_CACHE", str(fake_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    clear_local_dirs()
    yield fake_hub
    clear_local_dirs()
