"""Geometry of the oracle world: exact z-depth, points on the right planes, multi-view agreement."""

import math

import numpy as np
import pytest

from worldstudio.core.oracle import (
    SURFACE_BACK_WALL,
    SURFACE_BOX0,
    SURFACE_CEILING,
    SURFACE_ENTITY,
    SURFACE_FLOOR,
    SURFACE_FRONT_WALL,
    SURFACE_LEFT_WALL,
    OracleScene,
    demo_intrinsics,
)

H, W = 480, 832
FY = 240.0 / math.tan(math.radians(30.0))  # 60 deg vertical fov at 480 rows = 240 * sqrt(3)


def pose(yaw_deg=0.0, pitch_deg=0.0, t=(0.0, 0.0, 0.0)):
    """c2w: rotate about world y by yaw (towards +x), then about camera x by pitch, at t."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    c2w = np.eye(4)
    c2w[:3, :3] = ry @ rx
    c2w[:3, 3] = t
    return c2w


def unproject(depth, K, c2w):
    """World points (H, W, 3) of the pixel-centre rays at z-depth `depth` (written independently
    of the renderer: K^-1 (u + 0.5, v + 0.5, 1) * depth, then c2w)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = np.stack([u + 0.5, v + 0.5, np.ones_like(u)], axis=-1)
    cam = pix @ np.linalg.inv(K).T * depth[..., None].astype(np.float64)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


@pytest.fixture(scope="module")
def scene():
    return OracleScene.demo()


@pytest.fixture(scope="module")
def origin_frame(scene):
    return scene.render(np.eye(4), demo_intrinsics(H, W), H, W, 0.0)


def test_demo_intrinsics_is_the_conventions_formula():
    K = demo_intrinsics(480, 832, 60.0)
    np.testing.assert_allclose(K, [[FY, 0, 416], [0, FY, 240], [0, 0, 1]], rtol=1e-12)


def test_centre_pixel_sees_the_front_wall_at_z_9(origin_frame):
    # pixel (415, 239): its centre ray is (-0.5/fy, -0.5/fy, 1), nothing between it and z = 9
    assert origin_frame.surface[239, 415] == SURFACE_FRONT_WALL
    assert origin_frame.depth[239, 415] == np.float32(9.0)
    # the whole central patch of the image is the front wall at exactly z = 9
    patch = origin_frame.depth[200:280, 380:450]
    assert np.all(patch == np.float32(9.0))


def test_floor_pixel_depth_is_floor_y_over_ray_y(origin_frame):
    # pixel (u=100, v=470): ray (x, y, 1) with y = (470.5 - 240) / fy hits the floor y = 1.5 at
    # x = -2.05, z = 2.71: no box, no ball in the way
    assert origin_frame.surface[470, 100] == SURFACE_FLOOR
    expected = 1.5 / ((470.5 - 240.0) / FY)
    assert origin_frame.depth[470, 100] == pytest.approx(expected, rel=1e-7)
    assert expected == pytest.approx(2.70516, abs=1e-5)


def test_wall_ceiling_and_box_pixels_by_hand(origin_frame):
    f = origin_frame
    # left wall x = -5 through pixel (u=5, v=200): x-ray slope (5.5 - 416)/fy, above the crate
    assert f.surface[200, 5] == SURFACE_LEFT_WALL
    assert f.depth[200, 5] == pytest.approx(5.0 / ((416.0 - 5.5) / FY), rel=1e-7)
    # ceiling y = -2.5 through pixel (u=416, v=10)
    assert f.surface[10, 416] == SURFACE_CEILING
    assert f.depth[10, 416] == pytest.approx(2.5 / ((240.0 - 10.5) / FY), rel=1e-7)
    # the crate's front face z = 5 through pixel (u=200, v=300): x = -2.59, y = 0.73 on it
    assert f.surface[300, 200] == SURFACE_BOX0  # box 0 is the crate
    assert f.depth[300, 200] == np.float32(5.0)


def test_depth_positive_finite_float32_everywhere(scene):
    K = demo_intrinsics(120, 208)
    poses = [
        np.eye(4),
        pose(180.0),
        pose(90.0, 30.0, (1.0, -0.5, 2.0)),
        pose(-120.0, -50.0, (-3.0, 0.8, -1.0)),
        pose(45.0, 80.0, (4.0, -2.0, 8.0)),
    ]
    for c2w in poses:
        f = scene.render(c2w, K, 120, 208, 1.7)
        assert f.depth.dtype == np.float32 and f.depth.shape == (120, 208)
        assert np.all(np.isfinite(f.depth)) and np.all(f.depth > 0)


def _check_points_on_surfaces(scene, f, K, c2w, t):
    pts = unproject(f.depth, K, c2w)
    checked = 0
    for code, (axis, value) in scene.room_planes.items():
        sel = f.surface == code
        if sel.any():
            np.testing.assert_allclose(pts[sel][:, axis], value, atol=1e-4, rtol=0)
            checked += int(sel.sum())
    for i, box in enumerate(scene.boxes):
        sel = f.surface == SURFACE_BOX0 + i
        if not sel.any():
            continue
        p = pts[sel]
        lo, hi = np.asarray(box.lo), np.asarray(box.hi)
        assert np.all(p >= lo - 1e-4) and np.all(p <= hi + 1e-4)
        face_dist = np.minimum(np.abs(p - lo), np.abs(p - hi)).min(axis=1)
        assert face_dist.max() < 1e-4
        checked += int(sel.sum())
    sel = f.surface == SURFACE_ENTITY
    np.testing.assert_array_equal(sel, f.entity_mask)
    if sel.any():
        r = np.linalg.norm(pts[sel] - scene.entity_position(t), axis=1)
        np.testing.assert_allclose(r, scene.entity_radius, atol=1e-4, rtol=0)
        checked += int(sel.sum())
    assert checked == f.depth.size  # every pixel is on some known surface


def test_unprojected_points_lie_on_their_surfaces(scene, origin_frame):
    K = demo_intrinsics(H, W)
    _check_points_on_surfaces(scene, origin_frame, K, np.eye(4), 0.0)
    floor = origin_frame.surface == SURFACE_FLOOR
    assert floor.sum() > 50_000
    y = unproject(origin_frame.depth, K, np.eye(4))[floor][:, 1]
    assert np.abs(y - 1.5).max() < 1e-4


def test_points_on_surfaces_for_general_cameras(scene):
    # a non-square, off-centre K with fx != fy, and poses looking everywhere, at other times
    K = np.array([[150.0, 0.0, 90.0], [0.0, 140.0, 55.0], [0.0, 0.0, 1.0]])
    for c2w, t in [
        (pose(180.0), 0.0),
        (pose(30.0, 20.0, (-1.0, 0.3, 1.0)), 2.5),
        (pose(-70.0, -10.0, (2.0, -1.0, 0.0)), 5.0),
        (pose(0.0, 60.0, (0.0, -1.0, 3.0)), 1.0),
    ]:
        f = scene.render(c2w, K, 120, 200, t)
        _check_points_on_surfaces(scene, f, K, c2w, t)
    # the camera looking back sees the back wall z = -5 and the chest, not the ball
    f = scene.render(pose(180.0), K, 120, 200, 0.0)
    codes = set(np.unique(f.surface).tolist())
    assert SURFACE_BACK_WALL in codes and SURFACE_BOX0 + 3 in codes
    assert SURFACE_FRONT_WALL not in codes


def test_two_poses_see_consistent_geometry(scene):
    h, w = 240, 416
    K = demo_intrinsics(h, w)
    a, b = np.eye(4), pose(15.0, 5.0, (0.4, -0.2, 0.6))
    fa = scene.render(a, K, h, w, 1.0)
    fb = scene.render(b, K, h, w, 1.0)
    # project pose A's points into pose B
    pts = unproject(fa.depth, K, a)
    pb = (pts - b[:3, 3]) @ b[:3, :3]
    z = pb[..., 2]
    x = K[0, 0] * pb[..., 0] / z + K[0, 2] - 0.5  # continuous pixel-centre coordinates in B
    y = K[1, 1] * pb[..., 1] / z + K[1, 2] - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    inside = (z > 0) & (x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1)
    assert inside.mean() > 0.5
    x0, y0 = np.clip(x0, 0, w - 2), np.clip(y0, 0, h - 2)
    fx, fy = x - x0, y - y0
    # inverse depth is affine in the image over a plane: interpolate it bilinearly in B
    inv = 1.0 / fb.depth.astype(np.float64)
    zi = 1.0 / (
        (1 - fx) * (1 - fy) * inv[y0, x0]
        + fx * (1 - fy) * inv[y0, x0 + 1]
        + (1 - fx) * fy * inv[y0 + 1, x0]
        + fx * fy * inv[y0 + 1, x0 + 1]
    )
    rel = np.abs(z - zi) / zi
    s = fb.surface
    same = np.ones_like(inside)
    for dy, dx in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        same &= s[y0 + dy, x0 + dx] == fa.surface
    # on the room's planes, with B's 4 neighbours on the same plane, agreement is exact
    room = inside & same & (fa.surface <= SURFACE_BACK_WALL)
    assert room.sum() > 40_000
    assert rel[room].max() < 1e-5
    # everywhere: points not occluded in B (not behind B's surface) nearly all agree
    not_occluded = inside & (z <= zi * (1 + 1e-3))
    assert not_occluded.sum() / inside.sum() > 0.95
    assert (rel[not_occluded] < 1e-3).mean() > 0.99
