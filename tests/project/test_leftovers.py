"""What a killed writer leaves behind is cleaned at the next write to that folder, a replaced
folder whose swap was cut short is put back, and a staging folder is never a project."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from worldstudio.core.errors import ProjectError
from worldstudio.core.fileio import (
    atomic_write_bytes,
    clean_leftovers,
    is_leftover,
    staged_folder,
    temp_prefix,
)
from worldstudio.core.project import Project, ProjectFolder


def dead_pid() -> int:
    """The id of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_our_names_say_whose_they_are(tmp_path):
    assert temp_prefix("project.json") == f".project.json.{os.getpid()}."
    for name in (
        ".project.json.123.abcd_f01.tmp",
        ".demo.wsproj.99.k2j3h4g5.partial",
        ".demo.wsproj.old-4242",
        ".project.json.abcdefgh.tmp",  # older versions: no process id
    ):
        assert is_leftover(name), name
    for name in (".project.autosave.json", "project.json", ".hidden", "x.tmp", ".a.b.tmp"):
        assert not is_leftover(name), name


def test_a_killed_writers_temp_files_go_at_the_next_write(tmp_path):
    pid = dead_pid()
    stale_file = tmp_path / f".project.json.{pid}.abcdefgh.tmp"
    stale_file.write_text("half a project")
    stale_dir = tmp_path / f".demo.wsproj.{pid}.k2j3h4g5.partial"
    (stale_dir / "scene").mkdir(parents=True)
    live = tmp_path / f".project.json.{os.getpid()}.zzzzzzzz.tmp"  # ours: being written
    live.write_text("in progress")
    atomic_write_bytes(tmp_path / "other.txt", b"x")
    assert not stale_file.exists() and not stale_dir.exists()
    assert live.exists() and (tmp_path / "other.txt").read_bytes() == b"x"


def test_old_names_without_a_pid_go_once_they_are_an_hour_old(tmp_path):
    old = tmp_path / ".project.json.abcdefgh.tmp"
    new = tmp_path / ".project.json.hgfedcba.tmp"
    old.write_text("x")
    new.write_text("x")
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    clean_leftovers(tmp_path)
    assert not old.exists() and new.exists()


def test_an_interrupted_swap_is_put_back_or_finished(tmp_path):
    pid = dead_pid()
    # killed between "move the old folder aside" and "move the new one in": the old comes back
    aside = tmp_path / f".demo.wsproj.old-{pid}"
    aside.mkdir()
    ProjectFolder(aside).save(Project(name="kept"))
    done = clean_leftovers(tmp_path)
    assert ProjectFolder(tmp_path / "demo.wsproj").load().name == "kept"
    assert not aside.exists() and any("restored" in d for d in done)
    # killed after the new folder arrived: the old one is only deleted
    aside.mkdir()
    (aside / "project.json").write_text("{}")
    clean_leftovers(tmp_path)
    assert not aside.exists()
    assert ProjectFolder(tmp_path / "demo.wsproj").load().name == "kept"


def test_a_running_processes_folder_aside_is_left_alone(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as proc:
        try:
            aside = tmp_path / f".demo.wsproj.old-{proc.pid}"
            aside.mkdir()
            clean_leftovers(tmp_path)
            assert aside.exists()
        finally:
            proc.kill()


def test_a_staging_folder_is_never_a_project(tmp_path):
    pid = dead_pid()
    box = tmp_path / f".demo.wsproj.{pid}.k2j3h4g5.partial"
    ProjectFolder(box / "project").save(Project())  # a killed bundle import's staging folder
    ProjectFolder(box).save(Project())  # and a killed new-project staging folder
    for root in (box, box / "project", tmp_path / f".demo.wsproj.old-{pid}"):
        ProjectFolder(root).save(Project())
        with pytest.raises(ProjectError, match="unfinished copy"):
            ProjectFolder(root).load()


def test_our_own_staging_folder_loads_while_we_build_it(tmp_path):
    with staged_folder(tmp_path / "new.wsproj") as staging:
        ProjectFolder(staging).save(Project(name="in the making"))
        assert ProjectFolder(staging).load().name == "in the making"
    assert ProjectFolder(tmp_path / "new.wsproj").load().name == "in the making"


def test_opening_a_project_cleans_its_whole_tree(tmp_path):
    pid = dead_pid()
    root = tmp_path / "p.wsproj"
    ProjectFolder(root).save(Project())
    leftovers = [
        root / f".project.json.{pid}.abcdefgh.tmp",
        root / "scene" / f".points.ply.{pid}.abcdefgh.tmp",
        root / "runs" / "r1" / f".run.json.{pid}.abcdefgh.tmp",
        tmp_path / f".p.wsproj.{pid}.abcdefgh.partial",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    done = ProjectFolder(root).clean_leftovers()
    assert len(done) == 4 and not any(p.exists() for p in leftovers)
