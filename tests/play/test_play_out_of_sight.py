"""The out-of-sight property in play (docs/METHOD.md; measured as in
tests/generation/test_out_of_sight.py): a headless play session on the demo with the oracle backend
turns away from the rolling ball for more than four chunks and back. What is checked is the
engine's own 3D state, the ball's points in the observer's conditioning render (round.json's
render centroids), never the oracle's frames.

- Monitors on: when the camera is back, the rendered ball is where its known motion puts it
  (within 0.15 m of the visible ball's centroid, and of its centre estimated from the rendered
  centroid where the whole ball is in view; ball radius 0.35 m), though it travelled more than a
  metre out of sight.
- Monitors off: it is frozen where the observer last saw it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.jobs import JobContext
from worldstudio.core.oracle import OracleScene
from worldstudio.core.play import PlayOptions, play_job
from worldstudio.core.pointcloud.ops import unproject_depth
from worldstudio.core.project.runs import RunFolder

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

TURN_AWAY_AND_BACK = "(SR)" * 5 + "(SN)" * 2 + "(SL)" * 5 + "(SN)" * 2
F = 9  # the oracle's chunk
FPS = 16
TOLERANCE = 0.15
SCENE = OracleScene.demo()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return demo_project(tmp_path_factory, tmp_path_factory.mktemp("play_oos") / "demo.wsproj")


def _play(project, monitors: bool, actions: str = TURN_AWAY_AND_BACK):
    options = PlayOptions(
        actions=actions,
        backend="oracle",
        size=(W, H),
        monitors=monitors,
        depth=False,
        ply_every=0,
    )
    res = play_job(project, options)(JobContext())
    assert len(res.c2w) == res.run.rounds_done * F
    truth = []  # per frame: centroid of the ball's visible surface, or None when not in view
    whole = []  # per frame: the ball is in view and clear of the frame's edges
    for k in range(len(res.c2w)):
        K = intrinsics_from_fov(res.fov[k], H, W)
        fr = SCENE.render(res.c2w[k], K, H, W, k / FPS)
        ok = fr.entity_mask.sum() >= 3
        m = fr.entity_mask
        whole.append(
            bool(ok and not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()))
        )
        truth.append(
            unproject_depth(fr.depth, K, res.c2w[k], mask=fr.entity_mask).xyz.mean(axis=0)
            if ok
            else None
        )
    seen = [t is not None for t in truth]
    last_seen = seen.index(False) - 1
    back = seen.index(True, last_seen + 1)
    # the set-up: seen at the start, out of sight for more than a chunk, then seen to the end
    assert last_seen >= 1 and back - last_seen > F and all(seen[back:]), seen
    return RunFolder(res.run.run_dir), res, truth, whole, last_seen, back


def _rendered_ball(run: RunFolder, k: int) -> np.ndarray | None:
    c = run.read_round(k // F)["entities"]["ent-ball"]["render_centroids"][k % F]
    return None if c is None else np.asarray(c)


def test_in_play_the_ball_comes_back_where_its_motion_puts_it(project):
    run, res, truth, whole, last_seen, back = _play(project, monitors=True)
    frames = list(range(back, (back // F + 2) * F))  # the rest of that chunk and the next one
    assert len(frames) >= F
    errors = []
    for k in frames:
        c = _rendered_ball(run, k)
        assert c is not None, f"frame {k}: the ball is not in the conditioning render"
        assert np.linalg.norm(c - truth[k]) < TOLERANCE, (k, c, truth[k])
        if not whole[k]:
            continue  # a sliver at the edge: its centroid says little about the centre
        d = c - res.c2w[k][:3, 3]
        centre = c + (2.0 * SCENE.entity_radius / 3.0) * d / np.linalg.norm(d)
        errors.append(float(np.linalg.norm(centre - SCENE.entity_position(k / FPS))))
    assert len(errors) >= F and max(errors) < TOLERANCE, errors
    moved = SCENE.entity_position(back / FPS) - SCENE.entity_position(last_seen / FPS)
    assert np.linalg.norm(moved) > 1.0


def test_in_play_without_monitors_the_ball_is_frozen_where_it_was_last_seen(project):
    run, _res, truth, _whole, last_seen, back = _play(project, monitors=False)
    # the rest of the chunk in which the camera comes back (then the observer's own view of the
    # ball becomes its state)
    frames = list(range(back, (back // F + 1) * F))
    assert frames
    for k in frames:
        c = _rendered_ball(run, k)
        assert c is not None, f"frame {k}: the frozen ball should be in the render"
        assert np.linalg.norm(c - truth[k]) > 1.0, k  # not where the ball is
        assert np.linalg.norm(c - truth[last_seen]) < TOLERANCE, k  # but where it was last seen
