"""worldstudio.core.fileio: atomic files and staged folders never leave half of anything behind."""

from __future__ import annotations

import os

import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.fileio import atomic_write_bytes, check_output_path, staged_folder


def test_staged_folder_replaces_only_when_done(tmp_path):
    target = tmp_path / "p.wsproj"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(target, replace=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("crash while building")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.wsproj"]  # no staging left over
    assert (target / "old.txt").read_text() == "old"
    with staged_folder(target, replace=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.wsproj"]  # the old copy is gone


def test_staged_folder_refuses_a_non_empty_target_unless_told(tmp_path):
    target = tmp_path / "p"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(WorldStudioError, match="already exists and is not empty"):
        with staged_folder(target) as staging:
            (staging / "a").write_text("a")
    assert (target / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_atomic_write_and_output_checks(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WorldStudioError, match="is not a folder"):
        check_output_path(blocker / "x.ply")
    with pytest.raises(WorldStudioError, match="is a folder"):
        check_output_path(tmp_path)
