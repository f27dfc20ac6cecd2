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


def test_the_engine_feeds_liveworld_as_liveworld_does(
    tmp_path_factory, tmp_path, liveworld_env, liveworld_backend, monkeypatch
):
    """The project's defaults reach the model's inputs: observer strength 1.0 with its
    foreground projection, monitors 0.4 without one; 10 preceding frames (the backend's
    context) with the projections their calls got, built as the targets were; the scene
    references (the source image with the ball blacked out, then frames retrieved by pose) and
    the instance references the engine gives."""
    from worldstudio.core.generation.backends.liveworld.conditioning import letterbox
    from worldstudio.core.generation.engine import RunOptions, generate_job
    from worldstudio.core.generation.world import load_mask_png
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.project.runs import RunFolder

    frames = 13  # more than LiveWorld's 10 preceding frames
    seen: dict[int, tuple] = {}  # request id -> (request, the model's inputs), first call each
    build = liveworld_backend._inputs

    def spy(request):
        inputs = build(request)
        seen.setdefault(id(request), (request, inputs))
        return inputs

    monkeypatch.setattr(liveworld_backend, "_inputs", spy)
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    result = generate_job(
        project,
        RunOptions(backend=liveworld_backend, steps=1, frames_per_round=frames, size=(W, H)),
    )(JobContext())
    run = RunFolder(result.run_dir)
    settings = run.read_meta()["settings"]
    assert (settings["observer_strength"], settings["monitor_strength"]) == (1.0, 0.4)
    assert (settings["context_frames"], settings["flow_shift"]) == (10, 5.0)
    calls = {(q.round_index, q.role): (q, inputs) for q, inputs in seen.values()}
    assert sorted(calls) == [(0, "monitor"), (0, "observer"), (1, "monitor"), (1, "observer")]

    for r in (0, 1):
        q, inputs = calls[(r, "observer")]
        assert q.strength == inputs.strength == 1.0
        assert inputs.target_foreground is not None and inputs.target_foreground.any()
        assert len(q.instance_references) == len(inputs.instance_references) >= 1
        for given, fed in zip(q.instance_references, inputs.instance_references, strict=True):
            assert np.array_equal(letterbox(given, H, W), fed)
        q, inputs = calls[(r, "monitor")]
        assert q.strength == inputs.strength == 0.4
        assert q.foreground_labels is not None and (q.foreground_labels >= 0).any()
        assert inputs.target_foreground is None  # a monitor generates its entities from text
        assert np.array_equal(inputs.target_scene, q.control_rgb)  # nothing composited

    # round 1 continues from round 0's last 10 frames and the projections they were made from
    ball = load_mask_png(project / "scene" / "masks" / "ball.png")
    for role, clip in (("observer", "observer.npy"), ("monitor", "monitors/mon-ball.npy")):
        (_, first), (q, later) = calls[(0, role)], calls[(1, role)]
        assert len(q.previous_frames) == len(later.preceding) == 10
        assert np.array_equal(later.preceding, np.load(run.round_dir(0) / clip)[-10:])
        assert np.array_equal(later.preceding_scene, first.target_scene[-10:])
        if role == "observer":
            assert np.array_equal(later.preceding_foreground, first.target_foreground[-10:])
        else:  # a monitor's past foreground: its entities' pixels in the projection it got
            past = np.where(
                (calls[(0, role)][0].foreground_labels >= 0)[..., None],
                calls[(0, role)][0].foreground_rgb,
                0,
            )
            assert np.array_equal(later.preceding_foreground, past[-10:])
    # scene references: round 0's source image starts the observer's clip (LiveWorld's first
    # round has one preceding frame and no references); round 1 gets it, ball blacked out, first
    q, first = calls[(0, "observer")]
    assert first.preceding.shape == (1, H, W, 3) and first.scene_references == []
    assert np.array_equal(first.preceding[0], q.reference_images[0])
    q, later = calls[(1, "observer")]
    assert len(later.scene_references) == len(q.reference_images) >= 2
    assert later.scene_references[0][ball].max() == 0 and later.scene_references[0].any()
    for given, fed in zip(q.reference_images, later.scene_references, strict=True):
        assert np.array_equal(letterbox(given, H, W), fed)
    q, monitor = calls[(1, "monitor")]  # LiveWorld's event cameras: one scene reference
    assert len(monitor.scene_references) == 1
    assert np.array_equal(monitor.scene_references[0], letterbox(q.reference_images[0], H, W))
