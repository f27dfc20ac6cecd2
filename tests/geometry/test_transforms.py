"""Quaternions and SE(3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    invert_pose,
    look_at,
    make_sign_continuous,
    matrix_to_quat,
    opencv_to_opengl,
    opengl_to_opencv,
    pose_from_matrix,
    pose_matrix,
    quat_angle,
    quat_conjugate,
    quat_from_axis_angle,
    quat_multiply,
    quat_to_matrix,
    rotate_about_axis,
    rotation_about_axis,
    slerp,
    yaw_pose,
)

finite = st.floats(-1.0, 1.0, allow_nan=False)
quats = st.tuples(finite, finite, finite, finite).filter(
    lambda q: math.sqrt(sum(v * v for v in q)) > 1e-3
)


def _unit(q):
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q)


@settings(max_examples=300, deadline=None)
@given(quats)
def test_quaternion_matrix_round_trip(q):
    q = _unit(q)
    R = quat_to_matrix(q)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    q2 = matrix_to_quat(R)
    assert q2[0] >= 0.0
    sign = 1.0 if np.dot(q, q2) >= 0 else -1.0
    np.testing.assert_allclose(sign * q2, q, atol=1e-10)


@settings(max_examples=100, deadline=None)
@given(quats, quats)
def test_quaternion_product_is_matrix_product(a, b):
    a, b = _unit(a), _unit(b)
    np.testing.assert_allclose(
        quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-12
    )
    np.testing.assert_allclose(
        quat_multiply(a, quat_conjugate(a)), [1.0, 0.0, 0.0, 0.0], atol=1e-12
    )


@pytest.mark.parametrize("axis", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, -2, 3)])
def test_shepperd_is_accurate_near_180_degrees(axis):
    for angle in (math.pi, math.pi - 1e-7, 1e-8):
        q = quat_from_axis_angle(axis, angle)
        q2 = matrix_to_quat(quat_to_matrix(q))
        assert quat_angle(q, q2) < 1e-7


def test_axis_angle_hand_values():
    q = quat_from_axis_angle((0, 0, 1), math.pi / 2)
    np.testing.assert_allclose(q, [math.sqrt(0.5), 0, 0, math.sqrt(0.5)], atol=1e-15)
    np.testing.assert_allclose(quat_to_matrix(q) @ [1, 0, 0], [0, 1, 0], atol=1e-15)


def test_slerp_endpoints_midpoint_and_shortest_arc():
    q0 = np.array([1.0, 0.0, 0.0, 0.0])
    q1 = quat_from_axis_angle((0, 0, 1), math.radians(90))
    assert np.array_equal(slerp(q0, q1, 0.0), q0)
    assert np.array_equal(slerp(q0, q1, 1.0), q1)
    mid = slerp(q0, q1, 0.5)
    np.testing.assert_allclose(mid, quat_from_axis_angle((0, 0, 1), math.radians(45)), atol=1e-15)
    # -q1 is the same rotation: slerp must take the same (short) arc
    mid_neg = slerp(q0, -q1, 0.5)
    assert quat_angle(mid_neg, mid) < 1e-12
    # vectorised over t
    ts = np.linspace(0.0, 1.0, 5)
    out = slerp(q0, q1, ts)
    assert out.shape == (5, 4)
    angles = [quat_angle(q0, q) for q in out]
    np.testing.assert_allclose(angles, np.radians([0, 22.5, 45, 67.5, 90]), atol=1e-12)


def test_make_sign_continuous():
    qs = np.array([quat_from_axis_angle((0, 1, 0), math.radians(a)) for a in range(0, 721, 30)])
    qs[1::2] *= -1.0
    fixed = make_sign_continuous(qs)
    assert np.all(np.sum(fixed[1:] * fixed[:-1], axis=1) >= 0.0)
    for a, b in zip(qs, fixed, strict=True):
        assert np.allclose(a, b) or np.allclose(a, -b)


def test_pose_round_trip_and_inverse():
    q = _unit([0.3, -0.2, 0.9, 0.1])
    c2w = pose_matrix((1.0, 2.0, -3.0), q)
    p, q2 = pose_from_matrix(c2w)
    np.testing.assert_allclose(p, [1.0, 2.0, -3.0])
    assert quat_angle(q, q2) < 1e-12
    np.testing.assert_allclose(invert_pose(c2w) @ c2w, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(invert_pose(c2w), np.linalg.inv(c2w), atol=1e-12)


def test_pose_from_matrix_rejects_reflections():
    with pytest.raises(WorldStudioError, match="not a rotation"):
        pose_from_matrix(np.diag([1.0, 1.0, -1.0, 1.0]))


def test_look_at_axes():
    np.testing.assert_allclose(look_at((0, 0, 0), (0, 0, 5)), np.eye(4), atol=1e-15)
    m = look_at((0, 0, 0), (1, 0, 0))
    np.testing.assert_allclose(m[:3, 0], [0, 0, -1], atol=1e-15)  # right
    np.testing.assert_allclose(m[:3, 1], [0, 1, 0], atol=1e-15)  # down
    np.testing.assert_allclose(m[:3, 2], [1, 0, 0], atol=1e-15)  # forward
    # from above and behind: looks down at the target, no roll, image-down leans to world-down
    m = look_at((0.0, -1.0, -1.0), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(m[:3, 2], [0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-15)
    np.testing.assert_allclose(m[:3, 0], [1, 0, 0], atol=1e-15)
    assert m[1, 1] > 0.0
    np.testing.assert_allclose(m[:3, 3], [0, -1, -1])
    assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)


def test_look_at_degenerate_cases():
    m = look_at((0.0, -2.0, 0.0), (0.0, 0.0, 0.0))  # straight down: deterministic fallback
    np.testing.assert_allclose(m[:3, 2], [0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
    with pytest.raises(WorldStudioError, match="look-at target"):
        look_at((1.0, 2.0, 3.0), (1.0, 2.0, 3.0))


def test_left_turn_is_positive_about_world_up():
    R = rotation_about_axis(WORLD_UP, 90.0)
    np.testing.assert_allclose(R @ [0, 0, 1], [-1, 0, 0], atol=1e-15)  # forward -> old left
    turned = yaw_pose(np.eye(4), 30.0)
    np.testing.assert_allclose(
        turned[:3, 2], [-math.sin(math.radians(30)), 0, math.cos(math.radians(30))], atol=1e-15
    )
    # orbiting a camera about a pivot
    c2w = np.eye(4)
    c2w[:3, 3] = (0.0, 0.0, -2.0)
    out = rotate_about_axis(c2w, WORLD_UP, 90.0, pivot=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(out[:3, 3], [2.0, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(out[:3, 2], [-1.0, 0.0, 0.0], atol=1e-15)  # still faces the pivot


def test_opencv_opengl_conversion():
    gl = opencv_to_opengl(np.eye(4))
    np.testing.assert_allclose(gl, np.diag([1.0, -1.0, -1.0, 1.0]))
    c2w = look_at((1.0, -2.0, 3.0), (0.0, 0.0, 0.0))
    gl = opencv_to_opengl(c2w)
    np.testing.assert_allclose(-gl[:3, 2], c2w[:3, 2])  # OpenGL looks along its -z
    np.testing.assert_allclose(gl[:3, 1], -c2w[:3, 1])  # and its y is up
    np.testing.assert_allclose(gl[:3, 3], c2w[:3, 3])
    np.testing.assert_allclose(opengl_to_opencv(gl), c2w)
    batch = np.stack([c2w, np.eye(4)])
    np.testing.assert_allclose(opengl_to_opencv(opencv_to_opengl(batch)), batch)
