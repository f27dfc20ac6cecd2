"""Geometry that used to live in the studio: the inspector's yaw / pitch / roll, re-orthonormalising
a drifting pose, and the 3D point seen at a pixel of a depth map."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worldstudio.core.geometry.camera import intrinsics_from_fov, point_at_pixel
from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    orthonormalize_pose,
    quat_to_matrix,
    quat_to_ypr,
    yaw_pose,
    ypr_to_quat,
)


def _axes(yaw, pitch, roll):
    R = quat_to_matrix(np.array(ypr_to_quat(yaw, pitch, roll)))
    return R[:, 0], R[:, 1], R[:, 2]  # the camera's right, down and forward in world axes


def test_zero_angles_are_the_identity():
    assert ypr_to_quat(0.0, 0.0, 0.0) == pytest.approx((1.0, 0.0, 0.0, 0.0))
    assert quat_to_ypr((1.0, 0.0, 0.0, 0.0)) == pytest.approx((0.0, 0.0, 0.0))


def test_each_angle_turns_the_way_the_inspector_says():
    # yaw +90: the camera turns left, forward +z becomes -x (OpenCV x points right)
    _x, _y, forward = _axes(90.0, 0.0, 0.0)
    assert forward == pytest.approx([-1.0, 0.0, 0.0], abs=1e-12)
    R = quat_to_matrix(np.array(ypr_to_quat(35.0, 0.0, 0.0)))
    np.testing.assert_allclose(R, yaw_pose(np.eye(4), 35.0)[:3, :3], atol=1e-12)
    # pitch +30: looks up (the world's up is -y)
    _x, _y, forward = _axes(0.0, 30.0, 0.0)
    assert forward == pytest.approx([0.0, -0.5, np.sqrt(3) / 2], abs=1e-12)
    assert float(forward @ WORLD_UP) > 0
    # roll +90: the camera's right points down (+y), so the image turns clockwise
    right, _y, forward = _axes(0.0, 0.0, 90.0)
    assert right == pytest.approx([0.0, 1.0, 0.0], abs=1e-12)
    assert forward == pytest.approx([0.0, 0.0, 1.0], abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-179.0, 179.0),
    st.floats(-89.0, 89.0),
    st.floats(-179.0, 179.0),
)
def test_ypr_round_trip(yaw, pitch, roll):
    q = ypr_to_quat(yaw, pitch, roll)
    assert np.linalg.norm(q) == pytest.approx(1.0)
    assert quat_to_ypr(q) == pytest.approx((yaw, pitch, roll), abs=1e-7)


def test_orthonormalize_pose_removes_drift_and_keeps_the_position():
    rng = np.random.default_rng(3)
    c2w = yaw_pose(np.eye(4), 20.0)
    c2w[:3, 3] = (1.0, -2.0, 3.0)
    drifted = c2w.copy()
    drifted[:3, :3] += rng.normal(scale=1e-3, size=(3, 3))
    drifted[3] = (1e-4, 0.0, 0.0, 1.0)
    fixed = orthonormalize_pose(drifted)
    R = fixed[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R, c2w[:3, :3], atol=5e-3)  # the nearest rotation
    np.testing.assert_array_equal(fixed[:3, 3], c2w[:3, 3])
    np.testing.assert_array_equal(fixed[3], (0.0, 0.0, 0.0, 1.0))
    # a reflection becomes the nearest proper rotation
    mirror = np.diag([1.0, 1.0, -1.0, 1.0])
    assert np.linalg.det(orthonormalize_pose(mirror)[:3, :3]) == pytest.approx(1.0)


# ------------------------------------------------------------------------------- point at pixel
K = intrinsics_from_fov(60.0, 40, 60)  # f = 34.64, centre (30, 20)


def test_the_principal_point_sees_straight_ahead():
    depth = np.full((40, 60), 2.5, np.float32)
    assert point_at_pixel(depth, K, 40, 60, 30.0, 20.0) == pytest.approx((0.0, 0.0, 2.5))


def test_a_pixel_unprojects_through_k():
    depth = np.full((40, 60), 3.0, np.float32)
    x, y, z = point_at_pixel(depth, K, 40, 60, 45.0, 8.0)
    f = K[0, 0]
    assert (x, y, z) == pytest.approx(((45.0 - 30.0) / f * 3.0, (8.0 - 20.0) / f * 3.0, 3.0))


def test_image_and_depth_at_other_resolutions():
    """A click on a photo twice K's size, a depth map half K's size: the ray goes through K's pixel
    (u/2, v/2) and the depth comes from the cell under it."""
    depth = np.ones((20, 30), np.float32)
    depth[10, 3] = 4.0  # covers K pixels (6..7, 20..21)
    x, y, z = point_at_pixel(depth, K, 40, 60, 13.0, 41.0, image_size=(80, 120))
    f = K[0, 0]
    assert z == 4.0
    assert (x, y) == pytest.approx(((6.5 - 30.0) / f * 4.0, (20.5 - 20.0) / f * 4.0))


@pytest.mark.parametrize(
    ("u", "v", "value"),
    [(-1.0, 5.0, 1.0), (60.0, 5.0, 1.0), (5.0, 40.0, 1.0), (5.0, 5.0, 0.0), (5.0, 5.0, np.nan)],
)
def test_no_point_where_the_depth_is_unknown(u, v, value):
    depth = np.ones((40, 60), np.float32)
    depth[5, 5] = value
    assert point_at_pixel(depth, K, 40, 60, u, v) is None


def test_it_agrees_with_the_point_cloud_unprojection():
    from worldstudio.core.pointcloud.ops import unproject_depth

    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 5.0, (40, 60)).astype(np.float32)
    cloud = unproject_depth(depth, K, np.eye(4))
    xyz = cloud.xyz.reshape(40, 60, 3)
    for iu, iv in ((0, 0), (17, 33), (59, 39)):
        # unproject_depth samples pixel centres
        got = point_at_pixel(depth, K, 40, 60, iu + 0.5, iv + 0.5)
        np.testing.assert_allclose(got, xyz[iv, iu], rtol=1e-5)
