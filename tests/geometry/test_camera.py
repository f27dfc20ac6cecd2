"""Intrinsics and projection, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.camera import (
    crop_intrinsics,
    focal_to_fov,
    fov_from_intrinsics,
    fov_to_focal,
    intrinsics_from_fov,
    point_in_view,
    points_in_view,
    project_points,
    scale_intrinsics,
)
from worldstudio.core.geometry.transforms import look_at


def test_fov_focal_known_values():
    assert fov_to_focal(90.0, 480) == pytest.approx(240.0, abs=1e-12)
    assert fov_to_focal(60.0, 480) == pytest.approx(240.0 * math.sqrt(3.0), abs=1e-9)
    assert focal_to_fov(240.0, 480) == pytest.approx(90.0, abs=1e-12)


@pytest.mark.parametrize("fov", [1.0, 30.0, 60.0, 90.0, 120.0, 179.0])
def test_fov_focal_round_trip(fov):
    assert focal_to_fov(fov_to_focal(fov, 480), 480) == pytest.approx(fov, abs=1e-9)


def test_intrinsics_from_fov_is_vertical_and_centred():
    K = intrinsics_from_fov(90.0, 480, 640)
    np.testing.assert_allclose(K, [[240, 0, 320], [0, 240, 240], [0, 0, 1]], atol=1e-12)
    assert K.dtype == np.float64
    assert fov_from_intrinsics(K, 480) == pytest.approx(90.0, abs=1e-12)


@pytest.mark.parametrize("bad", [0.0, 180.0, -5.0, float("nan")])
def test_bad_fov_is_a_user_error(bad):
    with pytest.raises(WorldStudioError, match="field of view"):
        fov_to_focal(bad, 480)


def test_project_point_hand_computed():
    K = intrinsics_from_fov(90.0, 480, 640)  # f = 240, c = (320, 240)
    uv, z = project_points(np.array([[1.0, 0.5, 2.0]]), K, np.eye(4))
    # u = 240 * 1/2 + 320 = 440, v = 240 * 0.5/2 + 240 = 300
    np.testing.assert_allclose(uv, [[440.0, 300.0]], atol=1e-12)
    np.testing.assert_allclose(z, [2.0])


def test_project_point_from_a_turned_camera():
    K = intrinsics_from_fov(90.0, 480, 640)
    c2w = look_at((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))  # looks along +x; its right is world -z
    uv, z = project_points(np.array([[2.0, 0.0, -1.0]]), K, c2w)
    np.testing.assert_allclose(uv, [[440.0, 240.0]], atol=1e-9)
    np.testing.assert_allclose(z, [2.0], atol=1e-12)
    # translated camera: a point straight ahead lands on the principal point
    c2w = np.eye(4)
    c2w[:3, 3] = (1.0, -2.0, 3.0)
    uv, _ = project_points(np.array([[1.0, -2.0, 10.0]]), K, c2w)
    np.testing.assert_allclose(uv, [[320.0, 240.0]], atol=1e-12)


def test_points_behind_the_camera():
    K = intrinsics_from_fov(90.0, 480, 640)
    uv, z = project_points(np.array([[0.0, 0.0, -1.0]]), K, np.eye(4))
    assert np.all(np.isnan(uv)) and z[0] == -1.0
    assert not point_in_view((0.0, 0.0, -1.0), np.eye(4), K, 480, 640)


def test_point_in_view_pixel_edges():
    # f = 240, c = (240, 240): x/z = +-1 at the edges (written out: tan(45 deg) != 1 in floats)
    K = np.array([[240.0, 0.0, 240.0], [0.0, 240.0, 240.0], [0.0, 0.0, 1.0]])
    I4 = np.eye(4)
    assert point_in_view((-2.0, 0.0, 2.0), I4, K, 480, 480)  # u = 0: first pixel column
    assert not point_in_view((2.0, 0.0, 2.0), I4, K, 480, 480)  # u = 480: just outside
    assert point_in_view((0.0, -2.0, 2.0), I4, K, 480, 480)  # v = 0
    assert not point_in_view((0.0, 2.0, 2.0), I4, K, 480, 480)  # v = 480
    assert point_in_view((0.0, 0.0, 2.0), I4, K, 480, 480, margin=200)
    assert not point_in_view((-2.0, 0.0, 2.0), I4, K, 480, 480, margin=1)
    mask = points_in_view(np.array([[0, 0, 1.0], [5, 0, 1.0], [0, 0, -1.0]]), I4, K, 480, 480)
    assert mask.tolist() == [True, False, False]


def test_scale_intrinsics_pixel_centre_convention():
    K = intrinsics_from_fov(90.0, 480, 640)
    half = scale_intrinsics(K, (480, 640), (240, 320))
    np.testing.assert_allclose(half, [[120, 0, 160], [0, 120, 120], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(half, intrinsics_from_fov(90.0, 240, 320), atol=1e-12)
    squeezed = scale_intrinsics(K, (480, 640), (480, 320))
    np.testing.assert_allclose(squeezed, [[120, 0, 160], [0, 240, 240], [0, 0, 1]], atol=1e-12)
    # a point keeps its relative image position: u/W and v/H are unchanged
    p = np.array([[0.3, -0.2, 1.7]])
    uv0, _ = project_points(p, K, np.eye(4))
    uv1, _ = project_points(p, squeezed, np.eye(4))
    np.testing.assert_allclose(uv1 / [320, 480], uv0 / [640, 480], atol=1e-12)


def test_crop_intrinsics_shifts_the_principal_point():
    K = intrinsics_from_fov(90.0, 480, 640)
    Kc = crop_intrinsics(K, 100, 40)
    np.testing.assert_allclose(Kc[:2, 2], [220.0, 200.0])
    p = np.array([[0.5, 0.25, 2.0]])
    uv, _ = project_points(p, K, np.eye(4))
    uvc, _ = project_points(p, Kc, np.eye(4))
    np.testing.assert_allclose(uvc, uv - [100.0, 40.0], atol=1e-12)
