"""The oracle world's API: types, determinism, batches, a static background, textures, errors."""

import dataclasses

import numpy as np
import pytest

from worldstudio.core.oracle import (
    DEMO_FOV_DEG,
    SURFACE_BOX0,
    SURFACE_ENTITY,
    OracleFrame,
    OracleScene,
    demo_intrinsics,
)


@pytest.fixture(scope="module")
def scene():
    return OracleScene.demo()


def test_demo_is_frozen_and_equal_to_defaults(scene):
    assert scene == OracleScene()
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.floor_y = 2.0  # type: ignore[misc]
    assert (scene.floor_y, scene.ceiling_y) == (1.5, -2.5)
    assert (scene.left_x, scene.right_x, scene.back_z, scene.front_z) == (-5, 5, -5, 9)
    assert DEMO_FOV_DEG == 60.0
    names = scene.surface_names
    assert names[SURFACE_ENTITY] == "ball" and names[SURFACE_BOX0] == "crate"
    assert len(names) == 6 + len(scene.boxes) + 1


def test_frame_types_and_shapes(scene):
    f = scene.render(np.eye(4), demo_intrinsics(48, 80), 48, 80, 0.5)
    assert isinstance(f, OracleFrame)
    assert f.rgb.dtype == np.uint8 and f.rgb.shape == (48, 80, 3)
    assert f.depth.dtype == np.float32 and f.depth.shape == (48, 80)
    assert f.entity_mask.dtype == bool and f.entity_mask.shape == (48, 80)
    assert f.surface.dtype == np.int16 and f.t == 0.5


def test_rendering_is_deterministic(scene):
    K = demo_intrinsics(120, 208)
    a = scene.render(np.eye(4), K, 120, 208, 1.25)
    b = OracleScene.demo().render(np.eye(4), K.copy(), 120, 208, 1.25)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.entity_mask, b.entity_mask) and np.array_equal(a.surface, b.surface)


def test_render_batch_matches_single_renders(scene):
    K = demo_intrinsics(60, 104)
    c2ws = np.stack([np.eye(4)] * 3)
    c2ws[1, :3, 3] = (0.5, 0.0, 1.0)
    ts = [0.0, 1.0, 2.0]
    frames = scene.render_batch(c2ws, K, 60, 104, ts)
    assert len(frames) == 3
    for c2w, t, f in zip(c2ws, ts, frames, strict=True):
        g = scene.render(c2w, K, 60, 104, t)
        assert np.array_equal(f.rgb, g.rgb) and np.array_equal(f.depth, g.depth)
    per_frame_K = scene.render_batch(c2ws, np.stack([K] * 3), 60, 104, 2.0)
    assert all(f.t == 2.0 for f in per_frame_K)
    with pytest.raises(ValueError):
        scene.render_batch(c2ws, np.stack([K] * 2), 60, 104, 0.0)


def test_static_world_does_not_change_with_time(scene):
    K = demo_intrinsics(240, 416)
    f0 = scene.render(np.eye(4), K, 240, 416, 0.0)
    f2 = scene.render(np.eye(4), K, 240, 416, 2.0)
    background = ~(f0.entity_mask | f2.entity_mask)
    assert np.array_equal(f0.rgb[background], f2.rgb[background])
    assert np.array_equal(f0.depth[background], f2.depth[background])
    assert not np.array_equal(f0.entity_mask, f2.entity_mask)


def test_textures_are_rich_and_surfaces_distinct(scene):
    K = demo_intrinsics(240, 416)
    f = scene.render(np.eye(4), K, 240, 416, 0.0)
    means = {}
    for code in np.unique(f.surface):
        pix = f.rgb[f.surface == code].astype(float)
        if pix.shape[0] > 300:
            assert pix.std(axis=0).max() > 8, code  # textured, not flat
            means[int(code)] = pix.mean(axis=0)
    assert len(means) >= 7
    codes = sorted(means)
    for i, a in enumerate(codes):
        for b in codes[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 10, (a, b)
    colours = np.unique(f.rgb.reshape(-1, 3), axis=0)
    assert colours.shape[0] > 2000


def test_texture_is_filtered_no_aliasing(scene):
    # a 2x supersampled render, box-downsampled, agrees with the 1x render (the textures are
    # box-filtered over each pixel's footprint); compared inside surfaces (geometric edges are
    # not anti-aliased). Without the filter the 99th percentile is ~48 levels.
    f1 = scene.render(np.eye(4), demo_intrinsics(240, 416), 240, 416, 0.0)
    f2 = scene.render(np.eye(4), demo_intrinsics(480, 832), 480, 832, 0.0)
    down = f2.rgb.astype(float).reshape(240, 2, 416, 2, 3).mean(axis=(1, 3))
    cells = f2.surface.reshape(240, 2, 416, 2)
    uniform = (cells == cells[:, :1, :, :1]).all(axis=(1, 3))
    diff = np.abs(down - f1.rgb).max(axis=-1)[uniform]
    assert diff.mean() < 2.5
    assert np.percentile(diff, 99) < 20


def test_colour_is_view_independent(scene):
    # the same floor point seen from two cameras has the same colour (up to the filter width)
    h, w = 240, 416
    K = demo_intrinsics(h, w)
    fa = scene.render(np.eye(4), K, h, w, 0.0)
    c2w = np.eye(4)
    c2w[:3, 3] = (0.3, -0.4, 0.5)
    fb = scene.render(c2w, K, h, w, 0.0)
    v, u = np.mgrid[0:h, 0:w]
    floor = fa.surface == 0
    z = fa.depth.astype(np.float64)
    p = np.stack([(u + 0.5 - K[0, 2]) * z / K[0, 0], (v + 0.5 - K[1, 2]) * z / K[1, 1], z], -1)
    q = p - c2w[:3, 3]
    ub = K[0, 0] * q[..., 0] / q[..., 2] + K[0, 2]
    vb = K[1, 1] * q[..., 1] / q[..., 2] + K[1, 2]
    # pixels of A whose floor point lands within 0.1 px of one of B's pixel centres
    near = floor & (np.abs(ub % 1 - 0.5) < 0.1) & (np.abs(vb % 1 - 0.5) < 0.1)
    near &= (ub >= 0) & (ub < w) & (vb >= 0) & (vb < h)
    ib, jb = vb[near].astype(int), ub[near].astype(int)
    assert near.sum() > 200
    same = fb.surface[ib, jb] == 0
    diff = np.abs(fa.rgb[near].astype(int) - fb.rgb[ib, jb].astype(int)).max(axis=-1)[same]
    assert np.median(diff) <= 3 and np.percentile(diff, 90) < 15


@pytest.mark.parametrize(
    "c2w, K, hw, match",
    [
        (np.eye(3), np.eye(3), (8, 8), "4x4"),
        (np.diag([2.0, 1.0, 1.0, 1.0]), demo_intrinsics(8, 8), (8, 8), "rotation"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), demo_intrinsics(8, 8), (8, 8), "rotation"),
        (None, demo_intrinsics(8, 8), (0, 8), "positive"),
        (None, np.eye(4), (8, 8), "3x3"),
        (None, np.array([[10.0, 0, 4], [1.0, 10, 4], [0, 0, 1]]), (8, 8), "upper triangular"),
    ],
)
def test_bad_cameras_are_rejected(scene, c2w, K, hw, match):
    with pytest.raises(ValueError, match=match):
        scene.render(np.eye(4) if c2w is None else c2w, K, hw[0], hw[1], 0.0)


def test_camera_outside_the_room_is_rejected(scene):
    c2w = np.eye(4)
    c2w[:3, 3] = (0.0, 0.0, 12.0)
    with pytest.raises(ValueError, match="outside the room"):
        scene.render(c2w, demo_intrinsics(8, 8), 8, 8, 0.0)
