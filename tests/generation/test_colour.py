"""Colour matching between rounds: the transfer itself, and the engine on the oracle with drift
induced by a wrapper that shifts each round's colours, as video models do over long videos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.generation.engine_support import F, demo_project, torch_one_thread
from worldstudio.core.generation.backends.oracle import OracleBackend
from worldstudio.core.generation.colour import DEAD_BAND_MEAN, lab_stats, match_colours
from worldstudio.core.generation.engine import RunOptions, generate_job
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

ROUNDS = 4


def _scene(frames: int = 8, seed: int = 0) -> np.ndarray:
    """A smooth, textured, slowly panning clip."""
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 220, (40, 60, 3)).astype(np.float32)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1) + np.roll(base, 2, 1)) / 4
    return np.stack([np.roll(base, k, 1) for k in range(frames)]).astype(np.uint8)


def _drift(frames: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return np.clip(frames.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def test_frames_without_drift_are_left_byte_for_byte():
    clip = _scene(12)
    out, done = match_colours(clip[4:], clip[:4])
    assert out is clip[4:] or np.array_equal(out, clip[4:])
    assert not done.applied and done.as_dict()["shift"] == [0.0, 0.0, 0.0]


def test_a_drifted_clip_gets_the_colours_of_the_frames_it_continues():
    clip = _scene(12)
    drifted = _drift(clip[4:], 1.1, 14.0)
    out, done = match_colours(drifted, clip[:4])
    assert done.applied and done.shift[0] < -DEAD_BAND_MEAN  # it was too bright
    before = np.abs(drifted.astype(float) - clip[4:]).mean()
    after = np.abs(out.astype(float) - clip[4:]).mean()
    assert after < before / 4
    mu_ref, _ = lab_stats(clip[:4])
    mu_out, _ = lab_stats(out[:4])
    assert np.abs(mu_out - mu_ref).max() < 1.0


def test_a_clip_of_another_view_is_corrected_at_most_so_far():
    dark = np.full((4, 20, 30, 3), 20, np.uint8)
    bright = np.full((8, 20, 30, 3), 235, np.uint8)
    out, done = match_colours(bright, dark)
    assert done.applied and abs(done.shift[0]) == pytest.approx(20.0)  # clamped
    assert out.mean() > 150  # still a bright view


def test_no_reference_no_change():
    clip = _scene(4)
    for reference in (np.zeros((0, 40, 60, 3), np.uint8), np.zeros((2, 10, 10, 3), np.uint8)):
        out, done = match_colours(clip, reference)
        assert out is clip and not done.applied


# ------------------------------------------------------------------------------- the engine
class DriftingOracle(OracleBackend):
    """The oracle (ground truth), each round's frames brighter and warmer than the last: the drift
    a model adds round after round."""

    name = "drifting-oracle"
    context_frames = 4  # it continues from the previous round's frames, as a model does

    def generate(self, request, ctx):
        frames = super().generate(request, ctx)
        r = request.round_index
        out = frames.astype(np.float32) * (1.0 + 0.04 * r) + 8.0 * r
        out[..., 0] += 6.0 * r
        return np.clip(out, 0, 255).astype(np.uint8)


def _observer(project, run_id) -> np.ndarray:
    (run,) = [r for r in list_runs(ProjectFolder(project)) if r.id == run_id]
    return np.concatenate([np.load(run.observer_npy(r)) for r in range(ROUNDS)])


def _run(project, backend, colour_match: bool):
    options = RunOptions(
        backend=backend,
        rounds=ROUNDS,
        frames_per_round=F,
        colour_match=colour_match,
        monitors=False,
        context_frames=4,  # the oracle itself continues from none; matching needs them
    )
    result = generate_job(project, options)(JobContext())
    return result.run_id


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


def test_colour_matching_removes_most_of_the_drift_on_the_oracle(project):
    def backend():
        return DriftingOracle(project=ProjectFolder(project).load())

    clean = _observer(project, _run(project, "oracle", colour_match=True))
    drifting = _observer(project, _run(project, backend(), colour_match=False))
    matched_id = _run(project, backend(), colour_match=True)
    matched = _observer(project, matched_id)

    def drift(frames, r):  # mean absolute error against the ground truth, round r
        sl = slice(r * F, (r + 1) * F)
        return float(np.abs(frames[sl].astype(float) - clean[sl]).mean())

    raw = [drift(drifting, r) for r in range(ROUNDS)]
    fixed = [drift(matched, r) for r in range(ROUNDS)]
    assert raw[0] == fixed[0] == 0.0  # round 1 continues nothing: nothing to match
    assert raw[-1] > 30  # the drift grows round after round
    for r in range(1, ROUNDS):
        assert fixed[r] < raw[r] / 4, (raw, fixed)
    # and round.json says what was done
    (run,) = [r for r in list_runs(ProjectFolder(project)) if r.id == matched_id]
    inputs = run.read_round(2)["inputs"]["observer"]
    assert inputs["colour_match"]["applied"] is True
    assert json.loads(run.run_file.read_text())["settings"]["colour_match"] is True


def test_an_oracle_run_is_the_same_with_and_without_colour_matching(project):
    """Without drift every correction falls in the dead band: the frames stay as generated."""
    on_id = _run(project, "oracle", colour_match=True)
    on = _observer(project, on_id)
    off = _observer(project, _run(project, "oracle", colour_match=False))
    assert np.array_equal(on, off)
    (run,) = [r for r in list_runs(ProjectFolder(project)) if r.id == on_id]
    for r in range(1, ROUNDS):
        assert run.read_round(r)["inputs"]["observer"]["colour_match"]["applied"] is False
