"""The project folder beyond project.json: the scene cloud, autosave and recovery, Save As."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.interop.helpers import make_project
from worldstudio.core.errors import ProjectError
from worldstudio.core.oracle.demo_project import create_demo_project
from worldstudio.core.project import ProjectFolder


@pytest.fixture(scope="module")
def demo_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo.wsproj"
    create_demo_project(root, width=64, height=48)
    return root


@pytest.fixture
def demo(tmp_path, demo_src):
    return shutil.copytree(demo_src, tmp_path / "demo.wsproj")


def test_read_cloud(tmp_path, demo):
    folder = ProjectFolder(demo)
    project = folder.load()
    cloud = folder.read_cloud()
    assert len(cloud) == project.scene.point_count == len(folder.read_cloud(project))
    (demo / project.scene.points_file).unlink()
    with pytest.raises(ProjectError, match="point cloud is missing"):
        folder.read_cloud(project)
    assert folder.read_cloud(project, missing_ok=True) is None

    pending = ProjectFolder(tmp_path / "p")
    make_project(pending.root)
    with pytest.raises(ProjectError, match="no reconstructed scene yet"):
        pending.read_cloud()
    assert pending.read_cloud(missing_ok=True) is None


def _age(path, seconds: float) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def test_autosave_is_offered_while_newer_and_different(tmp_path):
    folder = ProjectFolder(tmp_path / "p")
    saved = make_project(folder.root)
    assert folder.recovery(saved) is None  # nothing autosaved
    edited = saved.model_copy(update={"name": "edited"})
    path = folder.autosave(edited)
    assert path == folder.autosave_file and path.name == ".project.autosave.json"
    assert folder.load() == saved  # project.json untouched
    _age(folder.project_file, 10)
    found = folder.recovery(saved)
    assert found is not None and found.project == edited and found.path == path
    assert abs(found.saved_at.timestamp() - path.stat().st_mtime) < 1

    # the same as the saved model: nothing to recover, and the stale autosave goes
    folder.autosave(saved)
    assert folder.recovery(saved) is None and not path.exists()
    # older than project.json (saved since): the same
    folder.autosave(edited)
    _age(path, 100)
    assert folder.recovery(saved) is None and not path.exists()


def test_an_unreadable_autosave_is_an_error_and_stays(tmp_path):
    folder = ProjectFolder(tmp_path / "p")
    saved = make_project(folder.root)
    folder.autosave_file.write_text("{ not json")
    with pytest.raises(ProjectError, match="not valid JSON"):
        folder.recovery(saved)
    assert folder.autosave_file.exists()
    folder.discard_autosave()
    assert not folder.autosave_file.exists()
    folder.discard_autosave()  # nothing there: fine


def test_autosave_into_an_unwritable_place_is_a_project_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ProjectError, match="autosave failed"):
        ProjectFolder(blocker / "p").autosave(make_project(tmp_path / "p"))


def test_save_as_copies_the_project_files_but_not_runs_or_hidden_files(tmp_path, demo):
    folder = ProjectFolder(demo)
    project = folder.load().model_copy(update={"name": "copy"})
    (folder.runs_dir / "r1").mkdir(parents=True)
    folder.autosave(project)
    target = tmp_path / "other.wsproj"
    target.mkdir()
    (target / "source.png").write_bytes(b"kept")
    new = folder.save_as(project, target)
    assert new.root == target and new.load() == project
    assert (target / "source.png").read_bytes() == b"kept"  # files already there are kept
    assert len(new.read_cloud()) == len(folder.read_cloud())
    assert not (new.runs_dir / "r1").exists() and not new.autosave_file.exists()
    assert folder.load().name != "copy"  # the original is untouched

    same = folder.save_as(project, demo)  # Save As onto itself is a plain save
    assert same.load().name == "copy"

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ProjectError):
        folder.save_as(project, blocker / "x.wsproj")
