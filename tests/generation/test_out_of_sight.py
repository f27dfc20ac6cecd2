"""THE OUT-OF-SIGHT PROOF (docs/METHOD.md, issue 5 section 5). Stays in the suite.

The oracle backend; the observer starts looking at the rolling ball, turns away from it for more
than a round (it cannot see the ball at all) and comes back. What is checked is the engine's own
3D state: the ball's points in the observer's CONDITIONING RENDER (the render the backend is
conditioned on), never the oracle's output frames.

- Monitors on: when the camera comes back, the rendered ball is where its known motion puts it
  at that time. Tolerance: 0.15 m (ball radius 0.35 m), for both measures below.
- Monitors off: the rendered ball is frozen where the observer last saw it (within 0.15 m of
  that), more than 1 m from where the ball really is.

Measures, per frame: ``c`` = centroid of the ball's points that won the render's z-buffer. The
same centroid of the ground truth's visible ball pixels (oracle depth, same camera, same time)
is compared with it directly; and, as the visible points lie on the near side of the ball (their
mean is about 2r/3 closer to the camera than the centre), ``c + (2r/3) * unit(c - camera)`` is
compared with the ball's centre ``entity_position(t)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from worldstudio.core.generation.engine import RunOptions, generate_job
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.geometry.presets import turn_away_and_back
from worldstudio.core.geometry.transforms import look_at, pose_from_matrix
from worldstudio.core.jobs import JobContext
from worldstudio.core.oracle import OracleScene
from worldstudio.core.pointcloud.ops import unproject_depth
from worldstudio.core.project import CameraPath, PathSettings, Pose, ProjectFolder
from worldstudio.core.project.runs import RunFolder

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

F = 17
ROUNDS = 3
FPS = 16
TOLERANCE = 0.15  # metres
SCENE = OracleScene.demo()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The demo project with a turn-away-and-back path over 3 rounds, plus the ground truth."""
    root = demo_project(tmp_path_factory, tmp_path_factory.mktemp("oos") / "demo.wsproj")
    folder = ProjectFolder(root)
    p = folder.load()
    keyframes = turn_away_and_back(
        np.eye(4),
        SCENE.entity_position(0.0),
        60.0,
        H,
        W,
        fps=FPS,
        frames_away=F,
        seconds_turn=0.5,
        direction="left",
        beyond_degrees=60.0,
    )
    p.camera_path = CameraPath(keyframes=keyframes, settings=PathSettings(fps=FPS))
    p.rounds = [*p.rounds, p.rounds[-1].model_copy()]
    folder.save(p)
    baked = bake_path(p.camera_path, n_frames=ROUNDS * F)
    truth = []  # per frame: centroid of the ball's visible surface, or None when not in view
    for k in range(ROUNDS * F):
        K = intrinsics_from_fov(baked.fov[k], H, W)
        fr = SCENE.render(baked.c2w[k], K, H, W, k / FPS)
        if fr.entity_mask.sum() >= 3:
            truth.append(
                unproject_depth(fr.depth, K, baked.c2w[k], mask=fr.entity_mask).xyz.mean(axis=0)
            )
        else:
            truth.append(None)
    seen = [t is not None for t in truth]
    # the set-up the proof needs: seen at the start, then out of sight for more than a round
    last_seen = seen.index(False) - 1
    back = seen.index(True, last_seen + 1)
    assert last_seen >= 1 and back - last_seen > F, seen
    assert all(seen[back:]), seen
    return {"root": root, "baked": baked, "truth": truth, "last_seen": last_seen, "back": back}


def _run(world, monitors: bool) -> RunFolder:
    res = generate_job(
        world["root"],
        RunOptions(backend="oracle", monitors=monitors, frames_per_round=F, size=(W, H)),
    )(JobContext())
    return RunFolder(res.run_dir)


def _rendered_ball(run: RunFolder, k: int) -> np.ndarray | None:
    info = run.read_round(k // F)["entities"]["ent-ball"]
    c = info["render_centroids"][k % F]
    return None if c is None else np.asarray(c)


def _centre_estimate(c: np.ndarray, camera: np.ndarray) -> np.ndarray:
    d = c - camera
    return c + (2.0 * SCENE.entity_radius / 3.0) * d / np.linalg.norm(d)


def _return_frames(world) -> list[int]:
    """The frames after the camera comes back: the rest of that round and the next round."""
    back = world["back"]
    return list(range(back, min(ROUNDS * F, (back // F + 2) * F)))


def _check_render_stats_are_the_render(run: RunFolder, world, k: int) -> None:
    """Recompute frame k's render from the persisted state: the centroid in round.json is that
    of the ball's points in the conditioning render."""
    from worldstudio.core.generation.world import EntityCloud, render_world

    r, i = divmod(k, F)
    static = run.read_static(r - 1)
    z = np.load(run.round_dir(r) / "entities" / "ent-ball.npz", allow_pickle=False)
    ball = EntityCloud(
        z["xyz"][z["offsets"][i] : z["offsets"][i + 1]],
        z["rgb"][z["offsets"][i] : z["offsets"][i + 1]],
    )
    c2w = world["baked"].c2w[k][None]
    K = intrinsics_from_fov(world["baked"].fov[k], H, W)[None]
    again = render_world(static, [{"ent-ball": ball}], c2w, K, H, W, ["ent-ball"])
    assert np.allclose(again.centroids["ent-ball"][0], _rendered_ball(run, k), atol=1e-5)
    cov = np.load(run.round_dir(r) / "coverage.npy", allow_pickle=False)
    assert np.array_equal(again.covered[0], cov[i])


def _assert_follows_the_motion(run: RunFolder, world) -> list[float]:
    errors = []
    for k in _return_frames(world):
        c = _rendered_ball(run, k)
        assert c is not None, f"frame {k}: the ball is not in the conditioning render"
        gt = world["truth"][k]
        assert np.linalg.norm(c - gt) < TOLERANCE, (k, c, gt)
        centre = _centre_estimate(c, world["baked"].c2w[k][:3, 3])
        err = float(np.linalg.norm(centre - SCENE.entity_position(k / FPS)))
        assert err < TOLERANCE, (k, err)
        errors.append(err)
    return errors


def test_with_monitors_the_ball_is_where_its_motion_puts_it(world):
    run = _run(world, monitors=True)
    errors = _assert_follows_the_motion(run, world)
    assert len(errors) >= F
    _check_render_stats_are_the_render(run, world, world["back"])
    # while out of sight the ball travelled far: a frozen ball would have failed
    moved = np.linalg.norm(
        SCENE.entity_position(world["back"] / FPS) - SCENE.entity_position(world["last_seen"] / FPS)
    )
    assert moved > 1.0


def test_with_a_monitor_elsewhere_too(world):
    folder = ProjectFolder(world["root"])
    p = folder.load()
    original = p.monitors[0].model_copy()
    position, quat = pose_from_matrix(
        look_at(np.array([-1.2, -0.4, 0.6]), np.array([0.0, 1.15, 4.5]))
    )
    p.monitors[0].pose = Pose(
        position=tuple(map(float, position)), orientation=tuple(map(float, quat))
    )
    p.monitors[0].fov = 75.0
    folder.save(p)
    try:
        run = _run(world, monitors=True)
    finally:
        p.monitors[0] = original
        folder.save(p)
    _assert_follows_the_motion(run, world)
    assert all(
        run.read_round(r)["entities"]["ent-ball"]["monitor_frames_seen"] == F for r in range(ROUNDS)
    )


def test_without_monitors_the_ball_is_frozen_where_it_was_last_seen(world):
    run = _run(world, monitors=False)
    back = world["back"]
    last = world["truth"][world["last_seen"]]
    # the rest of the round in which the camera comes back: the world still holds the old ball
    frames = list(range(back, (back // F + 1) * F))
    assert frames
    for k in frames:
        c = _rendered_ball(run, k)
        assert c is not None, f"frame {k}: the frozen ball should be in the render"
        assert np.linalg.norm(c - world["truth"][k]) > 1.0, k  # not where the ball is
        assert np.linalg.norm(c - last) < TOLERANCE, k  # but where it was last seen
    info = run.read_round(back // F)["entities"]["ent-ball"]
    assert info["source"] in ("frozen", "observer") and info["monitor_frames_seen"] == 0
    _check_render_stats_are_the_render(run, world, back)
