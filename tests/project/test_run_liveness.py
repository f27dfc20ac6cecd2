"""run.json names the process writing the run: a run left "running" by a process that is gone is
interrupted (listed so by `worldstudio runs` and `info`) and resumes after its last finished round;
a run whose writer still runs is never resumed beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.generation.engine_support import F, H, W, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.jobs.process import ProcessStamp, is_alive, this_process
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, list_runs, run_status

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)
ARGS = ["--backend", "oracle", "--frames-per-round", str(F), "--size", f"{W}x{H}", "--quiet"]


def _dead_stamp() -> dict:
    """The stamp of a process that has ended (a child that ran and exited)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    me = this_process()
    return ProcessStamp(child.pid, me.host, me.boot, None).to_json()


def test_stamps_tell_a_live_process_from_a_gone_one():
    me = this_process()
    assert is_alive(me) is True
    assert ProcessStamp.from_json(me.to_json()) == me
    assert is_alive(ProcessStamp.from_json(_dead_stamp())) is False
    if me.start is not None:  # Linux: a pid now used by another process has another start time
        assert is_alive(ProcessStamp(me.pid, me.host, me.boot, me.start + 12345)) is False
    assert is_alive(ProcessStamp(me.pid, "some-other-host", None, None)) is None
    assert ProcessStamp.from_json({"pid": "12", "host": "x"}) is None


@pytest.fixture
def half_run(tmp_path_factory, tmp_path):
    """The demo project with a 2-round run whose round 1 is finished and whose run.json says
    "running", as a studio or `generate` killed in round 2 leaves it; the writer is replaced by
    ``writer`` of the returned function."""
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    assert main(["generate", str(project), *ARGS, "--rounds", "1"]) == 0
    (run,) = list_runs(ProjectFolder(project))

    def leave_running(writer: dict) -> RunFolder:
        meta = json.loads(run.run_file.read_text())
        meta.update(status="running", rounds_total=2, writer=writer)
        meta["settings"]["rounds"] = 2
        run.run_file.write_text(json.dumps(meta))
        return run

    return project, leave_running


def test_a_run_whose_writer_is_gone_is_interrupted_and_resumes(half_run, capsys):
    project, leave_running = half_run
    run = leave_running(_dead_stamp())
    assert run.status() == "interrupted"
    assert run_status({"status": "running"}) == "running"  # no writer recorded: no telling

    assert main(["runs", str(project)]) == 0
    out = capsys.readouterr().out
    assert f"{run.id}" in out and "1/2 rounds" in out and "interrupted" in out
    assert f"worldstudio generate {project} --resume {run.id}" in out
    assert main(["info", str(project)]) == 0
    out = capsys.readouterr().out
    assert "runs        1" in out and "interrupted" in out and f"--resume {run.id}" in out

    assert main(["generate", str(project), "--resume", run.id, "--quiet"]) == 0
    meta = json.loads(run.run_file.read_text())
    assert meta["status"] == "complete" and meta["rounds_done"] == 2
    assert ProcessStamp.from_json(meta["writer"]) == this_process()
    assert run.status() == "complete"


def test_a_run_being_written_is_not_resumed_beside_its_writer(half_run, capsys):
    project, leave_running = half_run
    # the writer: a live process (this test's parent process stands in for it)
    me = this_process()
    writer = ProcessStamp(os.getppid(), me.host, me.boot, None)
    run = leave_running(writer.to_json())
    assert run.status() == "running"
    before = run.run_file.read_bytes()
    assert main(["generate", str(project), "--resume", run.id, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"run {run.id} is being written by process {os.getppid()}" in err
    assert run.run_file.read_bytes() == before
