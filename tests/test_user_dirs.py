"""The user's XDG folders: set absolute paths win, unset, empty or relative ones are ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldstudio.core import user_dirs


@pytest.mark.parametrize(
    ("kind", "variable", "default"),
    [
        ("cache", "XDG_CACHE_HOME", ".cache"),
        ("data", "XDG_DATA_HOME", ".local/share"),
        ("state", "XDG_STATE_HOME", ".local/state"),
    ],
)
def test_each_base_folder_follows_its_variable(tmp_path, monkeypatch, kind, variable, default):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unused in ("", "relative/dir"):
        monkeypatch.setenv(variable, unused)
        assert user_dirs.base_dir(kind) == tmp_path / "home" / Path(default)
    monkeypatch.setenv(variable, str(tmp_path / "moved"))
    assert user_dirs.base_dir(kind) == tmp_path / "moved"
    assert user_dirs.app_dir(kind) == tmp_path / "moved" / "worldstudio"


def test_worldstudio_cache_replaces_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("WORLDSTUDIO_CACHE", raising=False)
    assert user_dirs.cache_dir() == tmp_path / "xdg" / "worldstudio"
    monkeypatch.setenv("WORLDSTUDIO_CACHE", str(tmp_path / "mine"))
    assert user_dirs.cache_dir() == tmp_path / "mine"
