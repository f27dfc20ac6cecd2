"""`worldstudio generate --backend liveworld`: 2 rounds of the demo project with its monitor, the
tiny LiveWorld model loaded from the fake hub by the app's own code, the model lifter on the tiny
depth and SAM 2 models of the same cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.generation.engine_support import H, W, demo_project
from worldstudio.core.cli import main
from worldstudio.core.media import probe_video
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

F = 5


@pytest.mark.parametrize("model", ["liveworld", "liveworld-4step"])
def test_generate_two_rounds_with_monitors_from_the_cli(
    tmp_path_factory, tmp_path, liveworld_env, model, capsys
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    args = [
        "generate",
        str(project),
        "--backend",
        "liveworld",
        "--model",
        model,
        "--steps",
        "2",
        "--frames-per-round",
        str(F),
        "--size",
        f"{W}x{H}",
        "--profile",
        "gpu",
        "--quiet",
    ]
    assert main(args) == 0
    assert "backend liveworld" in capsys.readouterr().out
    (run,) = list_runs(ProjectFolder(project))
    meta = json.loads(run.run_file.read_text())
    assert meta["status"] == "complete" and meta["backend"] == "liveworld"
    assert meta["lifter"] == "model" and meta["model_id"] == model
    assert [m["id"] for m in meta["cameras"]["monitors"]] == ["mon-ball"]
    for r in range(2):
        rd = run.round_dir(r)
        for name in ("observer.mp4", "renders.mp4", "monitors/mon-ball.mp4"):
            info = probe_video(rd / name)
            assert (info.codec, info.frames, info.width, info.height) == ("h264", F, W, H)
        obs = np.load(rd / "observer.npy")
        assert obs.shape == (F, H, W, 3) and obs.std() > 0
    info = probe_video(run.final_mp4)
    assert (info.frames, info.width) == (2 * F, W)


def test_a_run_that_cannot_fit_is_refused_before_it_starts(
    tmp_path_factory, tmp_path, liveworld_env, monkeypatch, capsys
):
    from worldstudio.core.generation import memory

    monkeypatch.setattr(memory, "host_memory", lambda: 1024)  # 1 kB of RAM
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    code = main(["generate", str(project), "--backend", "liveworld", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "liveworld cannot run" in err and "RAM" in err
    assert list_runs(ProjectFolder(project)) == []


def test_resume_after_a_cancel_and_a_branch_match_the_full_run(
    tmp_path_factory, tmp_path, liveworld_env, liveworld_backend
):
    """One loaded model for the jobs (the engine does not close a backend it was given): a run
    cancelled in round 2 and resumed, and a branch from round 1, equal the uninterrupted run."""
    from tests.generation.engine_support import cancel_at_round
    from worldstudio.core.errors import Cancelled
    from worldstudio.core.generation.engine import RunOptions, generate_job
    from worldstudio.core.jobs import CancelToken, JobContext
    from worldstudio.core.project.runs import RunFolder

    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    opts = dict(backend=liveworld_backend, steps=2, frames_per_round=F, size=(W, H), seed=5)
    full = RunFolder(generate_job(project, RunOptions(**opts))(JobContext()).run_dir)
    token = CancelToken()
    with pytest.raises(Cancelled):
        generate_job(project, RunOptions(**opts))(
            JobContext(cancel_at_round(token, 2), cancel=token)
        )
    cut = list_runs(ProjectFolder(project))[1]
    assert cut.completed_rounds() == 1
    generate_job(project, RunOptions(resume=cut.id, backend=liveworld_backend))(JobContext())
    branch = RunFolder(
        generate_job(project, RunOptions(resume=full.id, from_round=1, backend=liveworld_backend))(
            JobContext()
        ).run_dir
    )
    for r in range(2):
        for name in ("observer.npy", "monitors/mon-ball.npy"):
            expected = np.load(full.round_dir(r) / name)
            assert np.array_equal(expected, np.load(cut.round_dir(r) / name)), (r, name)
            assert np.array_equal(expected, np.load(branch.round_dir(r) / name)), (r, name)
