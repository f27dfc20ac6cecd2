"""The world engine's runs: resume after a cancel, branches, seeds, monitors switched off."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.generation.engine_support import (
    F,
    H,
    NoisyBackend,
    W,
    cancel_at_round,
    demo_project,
    torch_one_thread,
)
from worldstudio.core.errors import Cancelled
from worldstudio.core.generation import backends
from worldstudio.core.generation.engine import (
    GenerationError,
    RunOptions,
    compose_prompt,
    derive_seed,
    entity_prompt,
    generate_job,
)
from worldstudio.core.jobs import CancelToken, JobContext
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

SMALL = dict(size=(W, H), frames_per_round=F)


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


@pytest.fixture
def made(monkeypatch) -> list[NoisyBackend]:
    """The "noisy" backend, recording every instance the engine makes (and so its requests)."""
    instances: list[NoisyBackend] = []

    def factory(**options):
        b = NoisyBackend(**options)
        instances.append(b)
        return b

    monkeypatch.setattr("tests.generation.engine_support.NoisyBackend", factory, raising=True)
    monkeypatch.setitem(backends._REGISTRY, "noisy", "tests.generation.engine_support:NoisyBackend")
    return instances


@pytest.fixture
def noisy(monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "noisy", "tests.generation.engine_support:NoisyBackend")


def _round_arrays(run: RunFolder, r: int) -> dict[str, np.ndarray]:
    rd = run.round_dir(r)
    out = {
        "observer": np.load(rd / "observer.npy"),
        "coverage": np.load(rd / "coverage.npy"),
        "monitor": np.load(rd / "monitors" / "mon-ball.npy"),
        "static": run.read_static(r).xyz,
    }
    ent = np.load(rd / "entities" / "ent-ball.npz")
    out.update({f"ent_{k}": ent[k] for k in ent.files})
    return out


def _assert_same_rounds(a: RunFolder, b: RunFolder, rounds: int) -> None:
    for r in range(rounds):
        ra, rb = _round_arrays(a, r), _round_arrays(b, r)
        assert ra.keys() == rb.keys()
        for k in ra:
            assert np.array_equal(ra[k], rb[k]), f"round {r}: {k} differs"
        ja, jb = a.read_round(r), b.read_round(r)
        assert ja["seeds"] == jb["seeds"] and ja["prompts"] == jb["prompts"]


@pytest.mark.parametrize("backend", ["oracle", "noisy"])
def test_resume_after_a_cancel_gives_the_frames_of_an_uninterrupted_run(project, backend, noisy):
    full = generate_job(project, RunOptions(backend=backend, seed=7, steps=3, **SMALL))(
        JobContext()
    )
    token = CancelToken()
    ctx = JobContext(cancel_at_round(token, 2), cancel=token)
    with pytest.raises(Cancelled):
        generate_job(project, RunOptions(backend=backend, seed=7, steps=3, **SMALL))(ctx)
    runs = list_runs(ProjectFolder(project))
    assert len(runs) == 2
    cut = runs[1]
    meta = cut.read_meta()
    assert meta["status"] == "cancelled" and meta["rounds_done"] == 1
    assert cut.round_complete(0) and not cut.round_complete(1)
    assert not cut.final_mp4.exists()

    result = generate_job(project, RunOptions(resume=cut.id))(JobContext())
    assert result.run_id == cut.id and result.rounds_done == 2
    assert cut.read_meta()["status"] == "complete"
    _assert_same_rounds(RunFolder(full.run_dir), cut, 2)


def test_cancel_from_inside_a_backend_keeps_round_zero(project, monkeypatch):
    monkeypatch.setitem(
        backends._REGISTRY, "cancelling", "tests.generation.engine_support:CancellingBackend"
    )
    with pytest.raises(Cancelled):
        generate_job(project, RunOptions(backend="cancelling", **SMALL))(JobContext())
    (run,) = list_runs(ProjectFolder(project))
    assert run.round_complete(0) and not run.round_complete(1)
    assert run.read_meta()["status"] == "cancelled"


def test_resume_keeps_the_run_settings(project):
    job = generate_job(project, RunOptions(backend="geometry", rounds=1, **SMALL))
    run = job(JobContext())
    with pytest.raises(GenerationError, match="--steps: the run was made with steps"):
        generate_job(project, RunOptions(resume=run.run_id, steps=99))(JobContext())
    # more rounds may be added to a run
    more = generate_job(project, RunOptions(resume=run.run_id, rounds=2))(JobContext())
    assert more.rounds_done == 2 and RunFolder(more.run_dir).completed_rounds() == 2


def test_seeds_differ_per_call_and_are_reproducible(project, made):
    a = generate_job(project, RunOptions(backend="noisy", seed=11, steps=2, **SMALL))(JobContext())
    b = generate_job(project, RunOptions(backend="noisy", seed=11, steps=2, **SMALL))(JobContext())
    c = generate_job(project, RunOptions(backend="noisy", seed=12, steps=2, **SMALL))(JobContext())
    seeds = [[(q.round_index, q.role, q.seed) for q in m.requests] for m in made]
    assert seeds[0] == seeds[1] != seeds[2]
    calls = [s for _, _, s in seeds[0]]
    assert (
        len(calls) == 4 and len(set(calls)) == 4
    )  # 2 rounds x (monitor + observer), all different
    assert seeds[0][0] == (0, "monitor", derive_seed(11, 0, "monitor:mon-ball"))
    assert seeds[0][1] == (0, "observer", derive_seed(11, 0, "observer"))
    info = RunFolder(a.run_dir).read_round(1)
    assert info["seeds"] == {
        "monitor:mon-ball": derive_seed(11, 1, "monitor:mon-ball"),
        "observer": derive_seed(11, 1, "observer"),
    }
    assert RunFolder(a.run_dir).read_meta()["seeds"]["rounds"][1] == info["seeds"]
    obs = [np.load(RunFolder(x.run_dir).round_dir(1) / "observer.npy") for x in (a, b, c)]
    assert np.array_equal(obs[0], obs[1]) and not np.array_equal(obs[0], obs[2])


def test_derive_seed():
    assert derive_seed(0, 0, "observer") == derive_seed(0, 0, "observer")
    values = {
        derive_seed(s, r, cam)
        for s in (0, 1)
        for r in range(4)
        for cam in ("observer", "monitor:a", "monitor:b")
    }
    assert len(values) == 24
    assert all(0 <= v < 2**31 for v in values)


def test_requests_carry_the_conditioning(project, monkeypatch):
    made: list[NoisyBackend] = []

    def factory(**options):
        made.append(NoisyBackend(**options))
        return made[-1]

    monkeypatch.setattr("tests.generation.engine_support.NoisyBackend", factory, raising=True)
    monkeypatch.setitem(backends._REGISTRY, "noisy", "tests.generation.engine_support:NoisyBackend")
    generate_job(project, RunOptions(backend="noisy", steps=1, **SMALL))(JobContext())
    mon0, obs0, mon1, obs1 = made[0].requests
    p = ProjectFolder(project).load()
    assert obs0.previous_frames is None and mon0.previous_frames is None
    assert obs1.previous_frames.shape == (5, H, W, 3) and mon1.previous_frames.shape == (5, H, W, 3)
    run = list_runs(ProjectFolder(project))[0]
    assert np.array_equal(obs1.previous_frames, np.load(run.round_dir(0) / "observer.npy")[-5:])
    assert run.read_meta()["settings"]["context_frames"] == 5  # what the calls got
    from worldstudio.core.generation.world import load_mask_png

    ball = load_mask_png(project / "scene" / "masks" / "ball.png")
    for q in (mon0, obs0, mon1, obs1):
        assert q.control_rgb.shape == (F, H, W, 3) and q.control_mask.shape == (F, H, W)
        assert q.control_depth.shape == (F, H, W) and q.foreground_labels.shape == (F, H, W)
        assert q.camera_c2w.shape == (F, 4, 4) and q.camera_K.shape == (F, 3, 3)
        assert q.reference_images[0].shape == (H, W, 3)
        assert q.reference_images[0][ball].max() == 0  # the source image, the ball blacked out
        assert q.reference_images[0][~ball].max() > 0
        assert q.source_image.shape == (H, W, 3) and q.source_image[ball].max() > 0
        assert q.num_frames == F and (q.height, q.width) == (H, W)
        assert q.negative_prompt == p.generation.negative_prompt != ""
        assert q.foreground_ids == ["ent-ball"]
    assert len(mon0.reference_images) == len(obs0.reference_images) == 1
    assert 1 <= len(obs1.reference_images) <= 3  # + earlier frames retrieved by pose
    # observer frame i of round r is world time (r * F + i) / fps, for the monitors too
    fps = p.generation.fps
    assert np.allclose(obs1.times, (F + np.arange(F)) / fps) and np.allclose(mon1.times, obs1.times)
    assert obs1.prompt == compose_prompt(p.rounds[1].scene_text, [p.entities[0].prompts[1]])
    assert mon0.role == "monitor" and obs0.role == "observer"
    # the monitor (at the source camera) generates the whole frame, the render a soft hint;
    # its foreground is the ball's last state (for the geometry backend and the tracker)
    assert mon0.control_mask.all() and mon0.strength == p.generation.monitor_strength == 0.4
    assert (mon0.foreground_labels[0][ball] == 0).mean() > 0.9
    assert mon0.prompt == compose_prompt(p.rounds[0].scene_text, [p.entities[0].prompts[0]])
    # the observer generates where the ball is, with the ball's points as the hint there
    core = ball.copy()
    for _ in range(3):  # erode: the observer's first pose looks slightly down
        core[1:] &= core[:-1].copy()
        core[:-1] &= core[1:].copy()
        core[:, 1:] &= core[:, :-1].copy()
        core[:, :-1] &= core[:, 1:].copy()
    assert core.any() and obs0.control_mask[0][core].all()
    assert (obs0.foreground_labels[0][core] == 0).all()  # the ball's points are rendered there
    assert obs0.strength == 1.0 and len(obs0.instance_references) == 1
    # every hole the filling left is generated; the coverage file is the render's own
    cov = np.load(run.round_dir(0) / "coverage.npy")
    left = (obs0.control_depth == 0) & (obs0.foreground_labels < 0)
    assert left.any() and obs0.control_mask[left].all()
    assert (left <= ~cov).all()
    # and round.json says what each call was given
    inputs = run.read_round(0)["inputs"]
    assert set(inputs) == {"observer", "monitor-mon-ball"}
    assert inputs["monitor-mon-ball"]["generate"] == 1.0
    assert inputs["observer"]["visible_entities"] == ["ent-ball"]
    assert inputs["observer"]["generate"] == pytest.approx(obs0.control_mask.mean(), abs=1e-6)


def test_branch_regenerates_from_round_k_with_the_current_prompts(project):
    parent = generate_job(project, RunOptions(backend="oracle", seed=3, **SMALL))(JobContext())
    folder = ProjectFolder(project)
    p = folder.load()
    p.entities[0].prompts[1] = "the ball stops and spins"
    folder.save(p)
    child = generate_job(project, RunOptions(resume=parent.run_id, from_round=1))(JobContext())
    assert child.run_id != parent.run_id
    cm = RunFolder(child.run_dir).read_meta()
    assert cm["parent"] == {"run": parent.run_id, "from_round": 1}
    assert cm["settings"]["seed"] == 3 and cm["settings"]["width"] == W
    _assert_same_rounds(RunFolder(parent.run_dir), RunFolder(child.run_dir), 1)
    info = RunFolder(child.run_dir).read_round(1)
    assert info["prompts"]["observer"].endswith("foreground: the ball stops and spins")
    assert (
        RunFolder(parent.run_dir).read_round(1)["prompts"]["observer"]
        != info["prompts"]["observer"]
    )


def test_branch_cannot_change_the_video_size(project):
    parent = generate_job(project, RunOptions(backend="geometry", **SMALL))(JobContext())
    with pytest.raises(GenerationError, match="--size"):
        generate_job(project, RunOptions(resume=parent.run_id, from_round=1, size=(96, 64)))(
            JobContext()
        )


def test_monitors_off_freeze_entities_and_a_disabled_monitor_is_skipped(project):
    folder = ProjectFolder(project)
    p = folder.load()
    p.monitors[0].enabled = False
    folder.save(p)
    res = generate_job(project, RunOptions(backend="oracle", **SMALL))(JobContext())
    run = RunFolder(res.run_dir)
    assert run.read_meta()["cameras"]["monitors"] == []
    info = run.read_round(0)
    assert info["monitors"] == [] and list(info["seeds"]) == ["observer"]
    assert info["entities"]["ent-ball"]["source"] in ("frozen", "observer")
    z = np.load(run.round_dir(0) / "entities" / "ent-ball.npz")
    frames = [z["xyz"][z["offsets"][i] : z["offsets"][i + 1]] for i in range(F)]
    assert all(np.array_equal(frames[0], f) for f in frames)  # not evolved within the round


def test_prompts():
    class E:
        prompts = ["walks", "", "runs"]

    assert [entity_prompt(E, r) for r in range(5)] == ["walks", "walks", "runs", "runs", "runs"]
    assert (
        compose_prompt(" a room ", ["a ball rolls", "", "a cat sits"])
        == "scene: a room; foreground: a ball rolls, a cat sits"
    )


def test_progress_and_previews_reach_the_context(project):
    reports = []
    generate_job(project, RunOptions(backend="oracle", **SMALL))(JobContext(reports.append))
    progress = [r for r in reports if r.kind == "progress"]
    assert progress[-1].done == progress[-1].total
    assert all(
        b.done >= a.done for a, b in zip(progress, progress[1:], strict=False) if a.total == b.total
    )
    assert any(r.kind == "preview" and r.payload.shape == (H, W, 3) for r in reports)
    assert (
        json.loads((list_runs(ProjectFolder(project))[0].run_file).read_text())["status"]
        == "complete"
    )


def test_events_tell_the_run_folder_and_each_finished_round(project):
    reports = []
    result = generate_job(project, RunOptions(backend="oracle", rounds=2, **SMALL))(
        JobContext(reports.append)
    )
    events = [(r.message, r.data) for r in reports if r.kind == "event"]
    names = [name for name, _ in events]
    assert names == ["run_started", "round_finished", "round_finished"]
    started = events[0][1]
    assert started["run_id"] == result.run_id and started["run_dir"] == str(result.run_dir)
    assert (started["rounds_total"], started["start_round"]) == (2, 0)
    assert [data["round"] for _, data in events[1:]] == [0, 1]
    # a round is announced once it is complete on disk
    run = RunFolder(result.run_dir)
    assert all(run.read_round(data["round"])["complete"] for _, data in events[1:])


def test_loras_are_recorded_and_a_resume_applies_the_same_ones(project, made):
    lora = str(ProjectFolder(project).loras_dir / "style.safetensors")
    first = generate_job(
        project, RunOptions(backend="noisy", rounds=1, steps=2, loras=[(lora, 0.7)], **SMALL)
    )(JobContext())
    assert RunFolder(first.run_dir).read_meta()["settings"]["loras"] == [[lora, 0.7]]
    # resuming without naming LoRAs applies the run's own; naming other ones is refused
    generate_job(project, RunOptions(resume=first.run_id, rounds=2))(JobContext())
    assert {tuple(q.loras[0]) for m in made for q in m.requests} == {(lora, 0.7)}
    assert all(len(q.loras) == 1 for m in made for q in m.requests)
    with pytest.raises(GenerationError, match="--loras: the run was made with loras"):
        generate_job(project, RunOptions(resume=first.run_id, rounds=3, loras=[(lora, 1.0)]))(
            JobContext()
        )


def test_a_resume_retrieves_the_same_scene_references(project, made):
    """Earlier frames kept as references (views.npz) come back on a resume: the resumed round
    is conditioned on the same retrieved frames as in the run that was not interrupted."""
    opts = dict(backend="noisy", seed=2, steps=1, rounds=3, **SMALL)
    full = generate_job(project, RunOptions(**opts))(JobContext())
    full_obs = [q for q in made[0].requests if q.role == "observer"]
    token = CancelToken()
    with pytest.raises(Cancelled):
        generate_job(project, RunOptions(**opts))(
            JobContext(cancel_at_round(token, 3), cancel=token)
        )
    cut = list_runs(ProjectFolder(project))[1]
    assert cut.completed_rounds() == 2 and cut.views_npz(1).is_file()
    generate_job(project, RunOptions(resume=cut.id))(JobContext())
    resumed = [q for q in made[2].requests if q.role == "observer"]
    assert [q.round_index for q in resumed] == [2]
    a, b = full_obs[2].reference_images, resumed[0].reference_images
    assert len(a) == len(b) >= 2  # the source image and at least one earlier frame
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert RunFolder(full.run_dir).read_round(2)["inputs"]["observer"]["retrieved_frames"]
    _assert_same_rounds(RunFolder(full.run_dir), cut, 3)


def _previous_projections(q):
    return (q.previous_control_rgb, q.previous_foreground_rgb, q.previous_foreground_labels)


def test_previous_frames_come_with_the_projections_their_call_got(project, made):
    """Each call after the first round gets, frame for frame with its previous frames, the scene
    and foreground projections (and labels) its camera's call of the previous round got."""
    run = generate_job(project, RunOptions(backend="noisy", steps=1, **SMALL))(JobContext())
    mon0, obs0, mon1, obs1 = made[0].requests
    for first in (mon0, obs0):
        assert _previous_projections(first) == (None, None, None)
    for before, after in ((mon0, mon1), (obs0, obs1)):
        scene, fg, labels = _previous_projections(after)
        assert scene.shape == fg.shape == (5, H, W, 3) and labels.shape == (5, H, W)
        assert len(after.previous_frames) == 5
        assert np.array_equal(scene, before.control_rgb[-5:])
        assert np.array_equal(fg, before.foreground_rgb[-5:])
        assert np.array_equal(labels, before.foreground_labels[-5:])
    assert (labels >= 0).any() and fg[labels >= 0].any()  # the ball is in them
    info = RunFolder(run.run_dir).read_round
    assert [info(r)["inputs"]["observer"]["context_projections"] for r in (0, 1)] == [False, True]
    assert info(1)["inputs"]["monitor-mon-ball"]["context_projections"]


def test_resume_and_branch_give_the_same_previous_projections(project, made):
    """The projections of the previous frames are kept with each round (context/<camera>.npz):
    a resumed run and a branch give round 2 exactly what the uninterrupted run gave it."""
    opts = dict(backend="noisy", seed=3, steps=1, **SMALL)
    full = generate_job(project, RunOptions(**opts))(JobContext())
    token = CancelToken()
    with pytest.raises(Cancelled):
        generate_job(project, RunOptions(**opts))(
            JobContext(cancel_at_round(token, 2), cancel=token)
        )
    cut = list_runs(ProjectFolder(project))[1]
    assert cut.context_npz(0, "observer").is_file()
    assert cut.context_npz(0, "monitor-mon-ball").is_file()
    generate_job(project, RunOptions(resume=cut.id))(JobContext())
    generate_job(project, RunOptions(resume=full.run_id, from_round=1))(JobContext())
    expected = [q for q in made[0].requests if q.round_index == 1]
    for instance in (made[2], made[3]):  # the resume, the branch
        got = instance.requests
        assert [(q.round_index, q.role) for q in got] == [(1, "monitor"), (1, "observer")]
        for a, b in zip(expected, got, strict=True):
            assert np.array_equal(a.previous_frames, b.previous_frames)
            for x, y in zip(_previous_projections(a), _previous_projections(b), strict=True):
                assert x is not None and x.dtype == y.dtype and np.array_equal(x, y)


def test_a_paused_run_holds_between_steps_and_goes_on(project):
    """The engine calls ctx.checkpoint() between steps: paused at round 2, it holds there (no
    progress while paused) and finishes once resumed."""
    import threading

    from worldstudio.core.jobs import PauseToken

    pause = PauseToken()
    seen: list[str] = []
    held_progress: list[str] = []

    def sink(report):
        if report.kind == "event":
            seen.append(report.message)
            if report.message == "paused":
                threading.Timer(0.3, pause.resume).start()
        elif report.kind == "progress":
            if pause.paused and "paused" in seen:
                held_progress.append(report.message)
            if report.message.startswith("round 2/") and "paused" not in seen:
                pause.pause()

    result = generate_job(project, RunOptions(backend="oracle", **SMALL))(
        JobContext(sink, pause=pause)
    )
    assert result.rounds_done == 2
    assert "paused" in seen and "resumed" in seen
    assert seen.index("paused") < seen.index("resumed")
    assert held_progress == []  # nothing ran while it was paused
