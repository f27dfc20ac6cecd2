"""The oracle world's moving entity: the ball's path, its rolling, its mask."""

import math

import numpy as np
import pytest

from worldstudio.core.oracle import (
    ENTITY_ID,
    SURFACE_BOX0,
    SURFACE_ENTITY,
    OracleBox,
    OracleScene,
    demo_intrinsics,
)

H, W = 480, 832
FY = 240.0 * math.sqrt(3.0)


@pytest.fixture(scope="module")
def scene():
    return OracleScene.demo()


def project(K, c2w, p):
    q = c2w[:3, :3].T @ (p - c2w[:3, 3])
    return K[0, 0] * q[0] / q[2] + K[0, 2], K[1, 1] * q[1] / q[2] + K[1, 2], q[2]


def test_identity(scene):
    assert scene.entity_name == "ball" and scene.entity_id == ENTITY_ID == 1
    assert scene.entity_radius == 0.35


def test_path_by_hand(scene):
    # circle of radius 1.5 about (0, 4.5) on the floor, 1 m/s, starting straight ahead at z = 3
    np.testing.assert_allclose(scene.entity_position(0.0), [0.0, 1.15, 3.0], atol=1e-12)
    phi = -math.pi / 2 + 2.0 / 1.5
    np.testing.assert_allclose(
        scene.entity_position(2.0), [1.5 * math.cos(phi), 1.15, 4.5 + 1.5 * math.sin(phi)]
    )
    # the chord after 2 s at 1 m/s on a circle of radius 1.5: 2 R sin(s / 2R)
    d = np.linalg.norm(scene.entity_position(2.0) - scene.entity_position(0.0))
    assert d == pytest.approx(3.0 * math.sin(2.0 / 3.0), rel=1e-12)
    assert d == pytest.approx(1.8551, abs=1e-4)
    assert scene.period == pytest.approx(3.0 * math.pi)
    np.testing.assert_allclose(
        scene.entity_position(0.7 + scene.period), scene.entity_position(0.7), atol=1e-12
    )


def test_positions_vectorised_speed_and_floor_contact(scene):
    ts = np.linspace(0.0, 10.0, 1001)
    ps = scene.entity_positions(ts)
    assert ps.shape == (1001, 3) and ps.dtype == np.float64
    np.testing.assert_allclose(ps[357], scene.entity_position(ts[357]), atol=1e-12)
    # rests on the floor: centre at floor_y - r
    np.testing.assert_allclose(ps[:, 1], scene.floor_y - scene.entity_radius)
    # 1 m/s: arc length over 10 s is 10 m
    steps = np.linalg.norm(np.diff(ps, axis=0), axis=1)
    assert steps.sum() == pytest.approx(10.0, rel=1e-4)
    np.testing.assert_allclose(steps / 0.01, 1.0, rtol=1e-4)
    # entity_velocity is the derivative of the path
    for t in (0.0, 1.3, 4.0):
        fd = (scene.entity_position(t + 1e-6) - scene.entity_position(t - 1e-6)) / 2e-6
        np.testing.assert_allclose(scene.entity_velocity(t), fd, atol=1e-6)


def test_rolls_without_slipping(scene):
    np.testing.assert_allclose(scene.entity_rotation(0.0), np.eye(3), atol=1e-15)
    r = scene.entity_radius
    for t in (0.4, 2.0, 7.5):
        rot = scene.entity_rotation(t)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        h = 1e-6
        drot = (scene.entity_rotation(t + h) - scene.entity_rotation(t - h)) / (2 * h)
        wx = drot @ rot.T  # skew matrix of the angular velocity
        omega = np.array([wx[2, 1], wx[0, 2], wx[1, 0]])
        np.testing.assert_allclose(wx, -wx.T, atol=1e-6)
        # the contact point (r below the centre: +y) does not move
        contact_velocity = scene.entity_velocity(t) + np.cross(omega, [0.0, r, 0.0])
        np.testing.assert_allclose(contact_velocity, 0.0, atol=1e-6)
        assert np.linalg.norm(omega) == pytest.approx(1.0 / r, rel=1e-6)  # v / r


def test_mask_at_t0_by_hand(scene):
    K = demo_intrinsics(H, W)
    f = scene.render(np.eye(4), K, H, W, 0.0)
    m = f.entity_mask
    assert m.dtype == bool and m.shape == (H, W)
    # the centre (0, 1.15, 3) projects to (416, 240 + fy * 1.15 / 3) = (416, 399.35)
    assert m[399, 416] and m[399, 415]
    assert f.surface[399, 416] == SURFACE_ENTITY
    # the silhouette's vertical extent: rays at angle asin(r / |c|) around the centre's direction
    dist, theta = math.hypot(1.15, 3.0), math.atan2(1.15, 3.0)
    alpha = math.asin(0.35 / dist)
    v_top, v_bottom = 240 + FY * math.tan(theta - alpha), 240 + FY * math.tan(theta + alpha)
    rows = np.nonzero(m.any(axis=1))[0]
    assert rows.min() == math.ceil(v_top - 0.5) == 349
    assert rows.max() == math.floor(v_bottom - 0.5) == 453
    # symmetric about the column boundary u = 416 (the centre has x = 0)
    assert np.count_nonzero(m[:, :416] != m[:, 416:][:, ::-1]) <= 2
    assert f.entity_ids[399, 416] == 1 and f.entity_ids[10, 10] == -1
    assert f.entity_ids.dtype == np.int32


def test_mask_follows_the_ball(scene):
    K = demo_intrinsics(H, W)
    centroids = []
    for t in (0.0, 2.0, 4.0):
        f = scene.render(np.eye(4), K, H, W, t)
        vs, us = np.nonzero(f.entity_mask)
        assert us.size > 1000
        u, v, _ = project(K, np.eye(4), scene.entity_position(t))
        assert f.entity_mask[int(v), int(u)]
        cu, cv = us.mean() + 0.5, vs.mean() + 0.5
        assert abs(cu - u) < 4 and abs(cv - v) < 4  # perspective shifts the centroid a little
        centroids.append((cu, cv))
    # by hand: at t = 2 the ball is at (1.458, 1.15, 4.147): u = 416 + fy * 1.458 / 4.147 = 562
    assert centroids[1][0] - centroids[0][0] == pytest.approx(146.1, abs=4)
    assert centroids[1][1] < centroids[0][1] - 30  # further away: higher in the image


def test_mask_empty_when_looking_away(scene):
    K = demo_intrinsics(240, 416)
    c2w = np.eye(4)
    c2w[:3, :3] = np.diag([-1.0, 1.0, -1.0])  # 180 degrees about y: looking along -z
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        f = scene.render(c2w, K, 240, 416, t)
        assert not f.entity_mask.any()
        assert not (f.surface == SURFACE_ENTITY).any()


def test_boxes_occlude_the_ball():
    # a low box between the origin camera and the ball at t=0 hides the ball's lower half
    blocker = OracleBox("blocker", (-0.5, 0.5, 1.0), (0.5, 1.5, 1.5), (0.5, 0.5, 0.5))
    demo = OracleScene.demo()
    occluded = OracleScene(boxes=demo.boxes + (blocker,))
    K = demo_intrinsics(H, W)
    m_demo = demo.render(np.eye(4), K, H, W, 0.0).entity_mask
    f = occluded.render(np.eye(4), K, H, W, 0.0)
    assert f.entity_mask.any()
    assert not (f.entity_mask & ~m_demo).any()
    hidden = m_demo & ~f.entity_mask
    assert hidden.sum() > 1000
    assert np.all(f.surface[hidden] == SURFACE_BOX0 + 4)
    # the box's top edge y = 0.5 at z = 1.5 is the ray y/z = 1/3: the hidden rows start there
    rows = np.nonzero(hidden.any(axis=1))[0]
    assert rows.min() == math.ceil(240 + FY / 3.0 - 0.5)


def test_ball_pattern_shows_rotation(scene):
    # after one loop the ball is back at the same place, but rolled: same mask, other pixels
    K = demo_intrinsics(240, 416)
    f0 = scene.render(np.eye(4), K, 240, 416, 0.0)
    f1 = scene.render(np.eye(4), K, 240, 416, scene.period)
    assert np.count_nonzero(f0.entity_mask != f1.entity_mask) <= 2
    both = f0.entity_mask & f1.entity_mask
    diff = np.abs(f0.rgb[both].astype(int) - f1.rgb[both].astype(int)).max(axis=1)
    assert (diff > 40).mean() > 0.2
    # and its colours are its own: bright, saturated (red high, blue low)
    ball = f0.rgb[f0.entity_mask].astype(int)
    assert np.median(ball[:, 0]) > 200 and np.median(ball[:, 2]) < 60


def test_path_into_a_box_is_rejected():
    with pytest.raises(ValueError, match="runs into box"):
        OracleScene(boxes=(OracleBox("in_the_way", (1.0, 1.0, 4.0), (2.0, 1.5, 5.0), (1, 1, 1)),))
    with pytest.raises(ValueError, match="leaves the room"):
        OracleScene(path_radius=6.0)
