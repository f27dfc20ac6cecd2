"""The ideal backend and lifter on single requests: it keeps what it is told to keep, draws the
static world elsewhere, the observer's hints where they are, and the ball only in monitor calls
and only where the mask lets it; the lifter returns what was drawn."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.backends import BackendError, GenerationRequest, get_backend
from worldstudio.core.generation.backends.ideal import IdealBackend
from worldstudio.core.generation.lift import LiftInput, make_lifter
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.jobs import JobContext
from worldstudio.core.oracle import OracleScene

H, W, F = 48, 64, 2
SCENE = OracleScene.demo()
K = intrinsics_from_fov(60.0, H, W)


def _request(role: str, mask: np.ndarray, **kw) -> GenerationRequest:
    control = np.full((F, H, W, 3), 40, np.uint8)
    fields = dict(
        prompt="scene: a room; foreground: a ball",
        num_frames=F,
        height=H,
        width=W,
        steps=1,
        guidance=5.0,
        seed=0,
        control_rgb=control,
        control_depth=np.full((F, H, W), 7.0, np.float32),
        control_mask=mask,
        previous_frames=None,
        reference_images=[],
        foreground_ids=["ball"],
        role=role,
        camera_c2w=np.repeat(np.eye(4)[None], F, axis=0),
        camera_K=np.stack([K] * F),
        times=np.array([0.0, 0.5]),
        camera_id="observer" if role == "observer" else "mon",
    )
    fields.update(kw)
    return GenerationRequest(**fields)


def test_keep_is_kept_and_generate_is_the_static_world():
    b = IdealBackend(scene=SCENE, ball_ids=["ball"])
    mask = np.zeros((F, H, W), bool)
    mask[:, :, W // 2 :] = True
    out = b.generate(_request("observer", mask), JobContext())
    static = SCENE.render(np.eye(4), K, H, W, 0.5, entity=False)
    assert (out[:, :, : W // 2] == 40).all()  # kept from the control video
    assert np.array_equal(out[1][:, W // 2 :], static.rgb[:, W // 2 :])
    record = b.take_record("observer", out)
    assert record is not None and b.take_record("observer", out) is None  # lifted once
    assert (record.depth[:, :, : W // 2] == 7.0).all()
    assert np.allclose(record.depth[1][:, W // 2 :], static.depth[:, W // 2 :])
    assert not record.masks["ball"].any()  # the observer never draws the true ball


def test_the_observer_draws_its_hint_and_the_monitor_the_true_ball_inside_its_mask():
    b = IdealBackend(scene=SCENE, ball_ids=["ball"])
    labels = np.full((F, H, W), -1, np.int16)
    labels[:, 2:6, 2:6] = 0
    hint = dict(
        foreground_rgb=np.repeat(np.where(labels[..., None] >= 0, 200, 0), 3, -1).astype(np.uint8),
        foreground_labels=labels,
        foreground_depth=np.where(labels >= 0, 2.0, 0).astype(np.float32),
    )
    everything = np.ones((F, H, W), bool)
    obs = b.generate(_request("observer", everything, **hint), JobContext())
    assert (obs[:, 2:6, 2:6] == 200).all()
    rec = b.take_record("observer", obs)
    assert (rec.masks["ball"] == (labels >= 0)).all() and (rec.depth[labels >= 0] == 2.0).all()

    truth = SCENE.render(np.eye(4), K, H, W, 0.5)
    assert truth.entity_mask.sum() > 20
    cy = int(np.nonzero(truth.entity_mask)[0].mean())
    half = np.zeros((F, H, W), bool)
    half[:, cy:] = True  # the ball may only be drawn below its centre row
    mon = b.generate(_request("monitor", half, **hint), JobContext())
    rec = b.take_record("mon", mon)
    drawn = rec.masks["ball"][1]
    assert drawn.any() and (drawn == (truth.entity_mask & half[1])).all()
    assert drawn.sum() < truth.entity_mask.sum()  # cut by the mask
    assert np.array_equal(mon[1][drawn], truth.rgb[drawn])
    assert not (mon[:, 2:6, 2:6] == 200).all()  # a monitor draws no hint
    # a monitor that does not watch the ball draws none
    other = b.generate(_request("monitor", half, foreground_ids=["cat"]), JobContext())
    assert not b.take_record("mon", other).masks["cat"].any()


def test_the_ideal_lifter_lifts_what_was_drawn_and_nothing_else():
    b = get_backend("ideal")
    b.ball_ids = ["ball"]
    lifter = make_lifter("ideal", backend=b)
    out = b.generate(_request("monitor", np.ones((F, H, W), bool)), JobContext())

    def data(frames):
        z = np.zeros((F, H, W), np.float32)
        return LiftInput(frames, None, None, None, z, {}, ["ball"], "monitor", "mon")

    lifted = lifter.lift(data(out), JobContext())
    assert lifted.masks["ball"].any() and (lifted.depth > 0).all()
    with pytest.raises(WorldStudioError, match="drew no such frames"):
        lifter.lift(data(out), JobContext())  # its record was taken
    with pytest.raises(WorldStudioError, match="only the ideal backend"):
        make_lifter("ideal", backend=get_backend("oracle"))


def test_the_ideal_backend_refuses_other_projects(tmp_path_factory, tmp_path):
    from tests.generation.engine_support import demo_project
    from worldstudio.core.project import ProjectFolder

    folder = ProjectFolder(demo_project(tmp_path_factory, tmp_path / "p"))
    p = folder.load()
    assert get_backend("ideal", project=p, project_folder=folder).ball_ids == ["ent-ball"]
    p.scene.depth_model = "some depth model"
    with pytest.raises(BackendError, match="not the demo"):
        get_backend("ideal", project=p, project_folder=folder)
