"""Lifting generated frames to 3D: depth alignment in the model's own space, and the cleaning
that keeps unreliable depth from becoming points (issue 12, section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.generation.lift import (
    FAR_FACTOR,
    align_prediction,
    alignment_pixels,
    clean_lifted_depth,
    fit_disparity,
    fit_scale_shift,
)
from worldstudio.core.geometry.transforms import look_at
from worldstudio.core.oracle import OracleScene
from worldstudio.core.oracle.scene import demo_intrinsics
from worldstudio.core.reconstruct.depth import DepthPrediction, disparity_to_depth

H, W = 96, 160
K = demo_intrinsics(H, W)
SCENE = OracleScene.demo()

# (camera position, target, time): the ball near, mid-distance and seen from the side
VIEWS = [
    ((0.0, 0.0, 0.0), (0.0, 0.3, 6.0), 0.0),
    ((0.5, -0.3, 1.0), (0.0, 1.0, 4.5), 1.0),
    ((-1.0, -0.2, 0.5), (1.0, 1.0, 5.5), 2.5),
]
# unknown affine maps disparity = alpha / depth + beta, and noise (fraction of the range)
MAPS = [(2.0, 0.3, 0.005), (0.7, -0.05, 0.01), (5.0, 1.0, 0.01)]


def _view(k: int):
    eye, target, t = VIEWS[k]
    c2w = look_at(np.array(eye, float), np.array(target, float))
    frame = SCENE.render(c2w, K, H, W, t)
    assert frame.entity_mask.sum() > 40  # the ball is in view
    return frame


def _disparity(depth: np.ndarray, alpha: float, beta: float, noise: float, seed: int):
    d = alpha / depth.astype(np.float64) + beta
    rng = np.random.default_rng(seed)
    return (d + rng.normal(0.0, noise * (d.max() - d.min()), d.shape)).astype(np.float32)


def _errors(depth: np.ndarray, truth: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.abs(depth[where] - truth[where]) / truth[where]


def test_disparity_aligned_in_its_own_space_is_within_2_percent_on_the_entity():
    """The rendered static depth is the reference (the ball's pixels are not in it); the
    disparity comes from the exact depth through an unknown affine map plus noise. Today's
    method (a percentile stretch onto 1-10, then a scale and shift in depth) is measured on the
    same input: it is far off where the entities are."""
    report = []
    for k in range(len(VIEWS)):
        frame = _view(k)
        ball = frame.entity_mask
        ref = np.where(ball, 0.0, frame.depth).astype(np.float32)
        nearest = frame.depth <= np.percentile(frame.depth, 20)
        for m, (alpha, beta, noise) in enumerate(MAPS):
            disp = _disparity(frame.depth, alpha, beta, noise, seed=10 * k + m)
            depth = align_prediction(disp, "disparity", ref, alignment_pixels(ref, ball))
            assert depth is not None and (depth[ref > 0] > 0).all()
            new = _errors(depth, frame.depth, ball)
            stretched = disparity_to_depth(disp)
            s, b, _ = fit_scale_shift(stretched, ref, ref > 0)
            old = _errors(s * stretched + b, frame.depth, ball)
            old_near = _errors(s * stretched + b, frame.depth, nearest)
            report.append((k, m, new.mean(), old.mean(), old_near.mean()))
            assert new.mean() < 0.02, (k, m, new.mean())
            assert np.percentile(new, 95) < 0.04, (k, m)
    print("\nview map | new: entity error | old: entity error, nearest-20% error")
    for k, m, new, old, near in report:
        print(f"{k} {m} | {new:.2%} | {old:.2%}, {near:.2%}")
    # the old method fails the same bar on these inputs
    assert max(r[3] for r in report) > 0.10 and min(r[4] for r in report) > 0.10


def test_sky_and_far_background_never_get_a_finite_depth():
    frame = _view(0)
    ref = np.where(frame.entity_mask, 0.0, frame.depth).astype(np.float32)
    sky = np.zeros((H, W), bool)
    sky[:20] = True  # nothing rendered there: the model drew an open sky
    ref[sky] = 0.0
    depth = frame.depth.astype(np.float64).copy()
    depth[sky] = np.inf  # disparity = beta there
    disp = _disparity(depth, 2.0, 0.3, 0.002, seed=1)
    out = align_prediction(disp, "disparity", ref, alignment_pixels(ref, frame.entity_mask))
    assert not out[sky].any()
    assert (out[~sky & (ref > 0)] > 0).all()
    # metric models: fitted in depth, nothing beyond FAR_FACTOR x the farthest background
    metric = 1.3 * depth + 0.2
    out = align_prediction(metric.astype(np.float32), "depth", ref, ref > 0)
    assert not out[sky].any()
    bg = ref > 0
    assert np.allclose(out[bg], ref[bg], rtol=1e-4)
    assert out.max() <= FAR_FACTOR * ref.max()


def test_a_prediction_exposes_its_native_quantity():
    disp = np.array([[1.0, np.nan], [2.0, 4.0]], np.float32)
    rel = DepthPrediction("relative", disp)
    assert rel.space == "disparity"
    np.testing.assert_array_equal(rel.native(), disp)  # no stretch, NaN kept
    met = DepthPrediction("metric", np.array([[2.0, np.inf]], np.float32))
    assert met.space == "depth" and met.native().tolist() == [[2.0, 0.0]]


def test_disparity_fit_refuses_a_disparity_that_grows_with_depth():
    frame = _view(0)
    ref = frame.depth
    assert fit_disparity(frame.depth, ref, np.ones((H, W), bool)) is None
    a, b, n = fit_disparity(3.0 / frame.depth - 0.1, ref, np.ones((H, W), bool))
    assert a == pytest.approx(1 / 3, rel=1e-5) and b == pytest.approx(0.1 / 3, rel=1e-5)
    assert n > 0.9 * H * W


def test_cleaning_leaves_flying_pixels_outlines_and_stray_points_unknown():
    frame = _view(0)
    ball = frame.entity_mask
    depth = frame.depth.astype(np.float32).copy()
    # a flying pixel between the ball and the wall behind it, and a stray spike on the ball
    ys, xs = np.nonzero(ball)
    inner = (ys[len(ys) // 2], xs[len(xs) // 2])
    depth[inner] *= 1.6
    clean = clean_lifted_depth(depth, K, {"ball": ball})
    assert clean[inner] == 0.0  # the spike
    # the outline on both sides of the ball is unknown, the ball's inside and the room are not
    from worldstudio.core.pointcloud.ops import dilate_mask, erode_mask

    ring = dilate_mask(ball, 2) & ~erode_mask(ball, 2)
    assert not clean[ring].any()
    core = erode_mask(ball, 3)
    assert (clean[core] > 0).mean() > 0.9
    room = ~dilate_mask(ball, 3)
    assert (clean[room] > 0).mean() > 0.9
