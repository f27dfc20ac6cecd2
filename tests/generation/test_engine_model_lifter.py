"""The model lifter (depth model aligned to the rendered static depth + SAM 2 tracking) with
tiny random-weight models from the fake hub cache: the plumbing, not the models' quality."""

from __future__ import annotations

import numpy as np
import pytest

from tests import tiny_models
from tests.generation.engine_support import H, W, demo_project
from worldstudio.core.generation.engine import RunOptions, generate_job
from worldstudio.core.generation.lift import LiftInput, ModelLifter
from worldstudio.core.jobs import JobContext
from worldstudio.core.oracle import OracleScene
from worldstudio.core.oracle.scene import demo_intrinsics
from worldstudio.core.project.runs import RunFolder
from worldstudio.core.reconstruct.depth import DepthPrediction


@pytest.fixture(scope="module", autouse=True)
def _torch_on_one_thread():
    """Tiny models run faster on one thread, and do not stall when the machine is busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_models_env(tmp_path_factory, monkeypatch, tmp_path):
    from worldstudio.core.models import clear_local_dirs

    hub = tiny_models.fake_hub_cache(tmp_path_factory)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    clear_local_dirs()
    yield hub
    clear_local_dirs()


def test_model_lifter_aligns_depth_and_tracks_from_the_rendered_entity(tiny_models_env):
    scene = OracleScene.demo()
    K = demo_intrinsics(H, W)
    frames = [scene.render(np.eye(4), K, H, W, t) for t in (0.0, 0.1, 0.2)]
    seed = np.zeros((3, H, W), bool)
    seed[1] = frames[1].entity_mask  # the entity's points reach the render from frame 1 on
    static = np.stack([np.where(f.entity_mask, 0.0, f.depth) for f in frames]).astype(np.float32)
    data = LiftInput(
        frames=np.stack([f.rgb for f in frames]),
        c2w=np.repeat(np.eye(4)[None], 3, axis=0),
        K=np.repeat(K[None], 3, axis=0),
        times=np.array([0.0, 0.1, 0.2]),
        render_depth=static,
        render_entities={"ent-ball": seed, "ghost": np.zeros((3, H, W), bool)},
        entity_ids=["ent-ball", "ghost"],
        role="monitor",
    )
    lifter = ModelLifter()
    lifter.prepare(JobContext())
    out = lifter.lift(data, JobContext())
    assert out.depth.shape == (3, H, W) and out.depth.dtype == np.float32 and (out.depth >= 0).all()
    assert not out.masks["ent-ball"][0].any()  # tracking starts where the seed is
    assert np.array_equal(out.masks["ent-ball"][1], seed[1])
    assert not out.masks["ghost"].any()

    # A random-weight model's disparity is noise, which alignment refuses rather than turn into
    # a made-up depth; so the same lifter, with its model's answer replaced by a disparity that
    # is an unknown affine map of the true inverse depth, shows the alignment (at 160x96: at
    # 64x48 the floor's depth jumps by more than 5 % from row to row, a depth edge).
    h, w = 96, 160
    k = demo_intrinsics(h, w)
    views = [scene.render(np.eye(4), k, h, w, t) for t in (0.0, 0.1)]
    est = lifter._depth_estimator(JobContext())
    answers = iter(
        DepthPrediction("relative", (2.0 / f.depth + 0.3).astype(np.float32)) for f in views
    )
    est.predict = lambda rgb: next(answers)
    static = np.stack([np.where(f.entity_mask, 0.0, f.depth) for f in views]).astype(np.float32)
    out = lifter.lift(
        LiftInput(
            frames=np.stack([f.rgb for f in views]),
            c2w=np.repeat(np.eye(4)[None], 2, axis=0),
            K=np.repeat(k[None], 2, axis=0),
            times=np.array([0.0, 0.1]),
            render_depth=static,
            render_entities={},
            entity_ids=[],
        ),
        JobContext(),
    )
    # aligned to the rendered static depth: the same median on the background
    bg = static > 0
    assert np.median(out.depth[bg]) == pytest.approx(np.median(static[bg]), rel=0.5)
    known = bg & (out.depth > 0)
    assert known.sum() > 0.9 * bg.sum()  # depth edges are left out
    assert np.allclose(out.depth[known], static[known], rtol=1e-3)


def test_the_engine_runs_with_the_model_lifter(tiny_models_env, tmp_path_factory, tmp_path):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    res = generate_job(
        project,
        RunOptions(backend="geometry", lifter="model", rounds=1, frames_per_round=5, size=(W, H)),
    )(JobContext())
    run = RunFolder(res.run_dir)
    assert run.read_meta()["lifter"] == "model" and run.completed_rounds() == 1
    assert res.final_mp4.is_file()
