"""`worldstudio queue add / list / run / cancel / move / remove`: the same on-disk queue as the
studio's, run headless; an interrupted generation continues from its last finished round."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.generation.engine_support import F, H, W, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.jobs.process import ProcessStamp, this_process
from worldstudio.core.jobs.queue import JobQueue
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)
ARGS = ["--backend", "oracle", "--frames-per-round", str(F), "--size", f"{W}x{H}"]


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


def _dead_stamp() -> dict:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    me = this_process()
    return ProcessStamp(child.pid, me.host, me.boot, None).to_json()


def test_add_list_and_run(project, tmp_path, capsys):
    out_ply = tmp_path / "cloud.ply"
    assert main(["queue", "add", str(project), "--", "generate", *ARGS, "--rounds", "1"]) == 0
    assert (
        main(
            [
                "queue",
                "add",
                str(project),
                "--title",
                "the cloud",
                "--",
                "export",
                "--ply",
                str(out_ply),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("queued ") == 2 and "(number 2 in " in out
    assert main(["queue", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(" queued " in line for line in lines)
    assert "generate demo.wsproj" in lines[0] and "the cloud" in lines[1]

    assert main(["queue", "run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "2 done"
    (run,) = list_runs(ProjectFolder(project))
    assert run.completed_rounds() == 1 and run.status() == "complete"
    assert out_ply.is_file()
    entries = JobQueue().entries()
    assert [e.state for e in entries] == ["done", "done"]
    assert entries[0].run == str(run.path) and entries[0].total > 0
    assert entries[0].done == entries[0].total
    assert main(["queue", "list"]) == 0
    assert "done" in capsys.readouterr().out
    assert main(["queue", "run"]) == 0
    assert "nothing to run" in capsys.readouterr().out


def test_bad_commands_are_refused_when_added(project, capsys):
    assert main(["queue", "add", str(project), "--", "play"]) == 2
    assert "the queue takes generate, train, preview, export jobs, not 'play'" in (
        capsys.readouterr().err
    )
    assert main(["queue", "add", str(project), "--", "generate", "--bogus"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "error: generate: unrecognized arguments: --bogus"
    assert main(["queue", "add", str(project), "--rounds", "2", "--", "generate"]) == 2
    assert "put the command and its options after --" in capsys.readouterr().err
    assert main(["queue", "add", str(project / "nope"), "--", "generate"]) == 2
    assert "not a project folder" in capsys.readouterr().err
    assert JobQueue().entries() == []


def test_cancel_move_and_remove(project, capsys):
    for rounds in ("1", "2", "3"):
        main(["queue", "add", str(project), "--", "generate", *ARGS, "--rounds", rounds])
    a, b, c = (e.id for e in JobQueue().entries())
    assert main(["queue", "move", c.rsplit("-", 1)[1], "1"]) == 0  # its last part will do
    assert [e.id for e in JobQueue().entries()] == [c, a, b]
    assert main(["queue", "cancel", a]) == 0
    assert main(["queue", "remove", b]) == 0
    assert main(["queue", "remove", "nope"]) == 2
    assert "no job 'nope' in the queue" in capsys.readouterr().err
    assert [(e.id, e.state) for e in JobQueue().entries()] == [(c, "queued"), (a, "cancelled")]


def test_a_failed_job_is_recorded_and_the_queue_goes_on(project, tmp_path, capsys):
    folder = ProjectFolder(project)
    p = folder.load()
    for k in p.camera_path.keyframes:  # a path far out of the scene: the pre-flight refuses it
        k.position = (0.0, 0.0, -500.0)
    folder.save(p)
    main(["queue", "add", str(project), "--", "generate", *ARGS, "--rounds", "1"])
    main(["queue", "add", str(project), "--", "export", "--ply", str(tmp_path / "c.ply")])
    capsys.readouterr()
    assert main(["queue", "run", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "failed " in out and "leaves the reconstructed scene" in out
    failed, done = JobQueue().entries()
    assert failed.state == "failed" and "move those keyframes" in failed.error
    assert done.state == "done" and list_runs(folder) == []


def test_an_interrupted_generation_continues_from_its_last_finished_round(project, capsys):
    # a queued generation whose process died in round 2: run.json says "running" by a gone
    # writer, the queue entry says running by the same gone process
    assert main(["generate", str(project), *ARGS, "--rounds", "1", "--quiet"]) == 0
    (run,) = list_runs(ProjectFolder(project))
    dead = _dead_stamp()
    meta = json.loads(run.run_file.read_text())
    meta.update(status="running", rounds_total=2, writer=dead)
    meta["settings"]["rounds"] = 2
    run.run_file.write_text(json.dumps(meta))
    first = run.observer_npy(0).read_bytes()
    first_mtime = run.observer_npy(0).stat().st_mtime_ns

    queue = JobQueue()
    e = queue.add("generate", project, [*ARGS, "--rounds", "2"])
    queue.claim()
    queue.update(e.id, owner=dead, run=str(run.path))
    capsys.readouterr()
    assert main(["queue", "list"]) == 0
    assert "interrupted" in capsys.readouterr().out  # a new process sees the gone one

    assert main(["queue", "run", "--quiet"]) == 0
    assert [r.path for r in list_runs(ProjectFolder(project))] == [run.path]  # no new run
    assert run.completed_rounds() == 2 and run.status() == "complete"
    assert run.observer_npy(0).read_bytes() == first
    assert run.observer_npy(0).stat().st_mtime_ns == first_mtime  # round 1 was not redone
    assert JobQueue().get(e.id).state == "done"


def test_queue_cancel_from_another_command_stops_a_running_generation(project, monkeypatch):
    from worldstudio.core.cli.queue_cmds import run_queue
    from worldstudio.core.generation.backends.oracle import OracleBackend
    from worldstudio.core.jobs import CancelToken

    started = threading.Event()
    original = OracleBackend.generate

    def slow(self, request, ctx):  # round 2 steps slowly until cancelled
        if request.round_index >= 1:
            started.set()
            for _ in range(400):
                ctx.check_cancelled()
                time.sleep(0.25)
        return original(self, request, ctx)

    monkeypatch.setattr(OracleBackend, "generate", slow)
    e = JobQueue().add("generate", project, [*ARGS, "--rounds", "2"])
    lines: list[str] = []
    runner = threading.Thread(target=run_queue, args=(JobQueue(), CancelToken(), lines.append))
    runner.start()
    assert started.wait(60)
    asked = time.monotonic()
    assert main(["queue", "cancel", e.id]) == 0  # as from another terminal: through the file
    runner.join(30)
    took = time.monotonic() - asked
    assert not runner.is_alive() and took < 5, f"the cancel took {took:.1f} s"
    assert JobQueue().get(e.id).state == "cancelled"
    (run,) = list_runs(ProjectFolder(project))
    assert run.read_meta()["status"] == "cancelled" and run.completed_rounds() == 1
    assert any(line.startswith(f"cancelled {e.id}") for line in lines)


def test_a_training_s_settings_become_a_command_line_and_back(tmp_path):
    from worldstudio.core.cli.queue_cmds import parse_command
    from worldstudio.core.cli.train_cmds import args_from_settings, config_from_args
    from worldstudio.core.training import TrainConfig, TrainingError

    settings = dict(
        clips=str(tmp_path),
        name="squares",
        steps=6,
        rank=4,
        lr=1e-3,
        width=64,
        height=48,
        frames=9,
        sample_every=6,
        eval_every=3,
        warmup_steps=0,
        checkpoint_every=0,
        target_modules=("to_q", "to_k"),
        sample_prompts=("a red square",),
        overwrite=True,
        gradient_checkpointing=False,
    )
    args = parse_command(["train", str(tmp_path), *args_from_settings(settings)])
    assert config_from_args(args) == TrainConfig(**settings)
    with pytest.raises(TrainingError, match="'bogus' has no command-line option"):
        args_from_settings({"clips": "x", "bogus": 1})


def test_an_interrupted_generation_resumes_on_as_many_gpus_as_it_was_queued_with(tmp_path):
    from worldstudio.core.cli.queue_cmds import _argv
    from worldstudio.core.jobs.queue import QueueEntry

    e = QueueEntry("x", "generate", "/p", ["--rounds", "8", "--gpus", "2", "--parallel=ring"])
    assert _argv(e) == e.argv  # not started yet: as queued
    e.run = "/p/runs/r1"
    assert _argv(e) == [
        "generate",
        "/p",
        "--resume",
        "/p/runs/r1",
        "--gpus",
        "2",
        "--parallel=ring",
    ]
