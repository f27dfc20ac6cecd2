"""Each preset's geometric claim, checked on the baked path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.camera import intrinsics_from_fov, point_in_view
from worldstudio.core.geometry.path import bake_path, keyframe_pose
from worldstudio.core.geometry.presets import (
    PRESETS,
    apply_preset,
    dolly,
    orbit,
    pan,
    truck_out_and_back,
    turn_away_and_back,
)
from worldstudio.core.geometry.transforms import look_at, rotation_angle, yaw_pose
from worldstudio.core.project.model import CameraPath, PathSettings

H, W, FPS = 480, 832, 16


def bake(kfs, fps=FPS, **kw):
    return bake_path(CameraPath(keyframes=kfs, settings=PathSettings(fps=fps)), **kw)


def test_orbit_keeps_its_distance_and_looks_at_the_target():
    target = np.array([0.5, 0.3, 3.0])
    kfs = orbit(target, radius=2.0, height=0.5, start_angle_deg=0.0, seconds=8.0, fov=50.0)
    assert len(kfs) == 9 and all(k.transition == 1.0 for k in kfs)
    assert all(k.fov == 50.0 for k in kfs)
    for k in kfs:
        m = keyframe_pose(k)
        off = m[:3, 3] - target
        assert math.hypot(off[0], off[2]) == pytest.approx(2.0, abs=1e-12)
        assert off[1] == pytest.approx(-0.5, abs=1e-12)  # 0.5 above (up is -y)
        d = -off / np.linalg.norm(off)
        np.testing.assert_allclose(m[:3, 2], d, atol=1e-12)
    # angle 0: on the target's -z side, looking along +z (horizontally)
    np.testing.assert_allclose(kfs[0].position, target + [0.0, -0.5, -2.0], atol=1e-12)
    # counter-clockwise seen from above: a quarter turn later the camera is on the +x side
    np.testing.assert_allclose(kfs[2].position, target + [2.0, -0.5, 0.0], atol=1e-12)
    b = bake(kfs)
    off = b.positions - target
    radius = np.hypot(off[:, 0], off[:, 2])
    assert np.all(np.abs(radius - 2.0) < 0.03 * 2.0)  # the spline hugs the circle
    np.testing.assert_allclose(off[:, 1], -0.5, atol=1e-12)


def test_full_orbit_closes_without_flipping():
    kfs = orbit((0, 0, 0), radius=1.0, height=0.0, start_angle_deg=30.0, n_keyframes=6)
    np.testing.assert_allclose(kfs[-1].position, kfs[0].position, atol=1e-12)
    q = np.array([k.orientation for k in kfs])
    assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0.0)
    b = bake(kfs)
    step = np.degrees(rotation_angle(b.c2w[:-1, :3, :3], b.c2w[1:, :3, :3]))
    assert step.max() < 5.0


def test_partial_orbit_keyframe_spacing():
    kfs = orbit((0, 0, 0), radius=1.0, degrees=-90.0, n_keyframes=8, seconds=2.0)
    assert len(kfs) == 3  # 45 degrees apart at most
    assert kfs[0].transition == pytest.approx(1.0)


def test_dolly_moves_along_the_view_axis():
    start = look_at((1.0, -1.0, 0.0), (2.0, 0.0, 3.0))
    kfs = dolly(start, -1.5, seconds=3.0, fov=40.0)
    end = keyframe_pose(kfs[-1])
    np.testing.assert_allclose(end[:3, 3], start[:3, 3] - 1.5 * start[:3, 2], atol=1e-12)
    np.testing.assert_allclose(end[:3, :3], start[:3, :3], atol=1e-12)
    b = bake(kfs)
    assert len(b) == 49
    # straight line: every position is on the view axis
    rel = b.positions - start[:3, 3]
    np.testing.assert_allclose(np.cross(rel, start[:3, 2]), 0.0, atol=1e-12)


def test_pan_turns_about_world_up():
    kfs = pan(np.eye(4), 90.0, seconds=2.0)
    end = keyframe_pose(kfs[-1])
    np.testing.assert_allclose(end[:3, 2], [-1.0, 0.0, 0.0], atol=1e-12)  # panned left
    big = pan(np.eye(4), -270.0, seconds=3.0)
    assert len(big) == 4  # three 90-degree segments, so slerp never takes the short way
    b = bake(big)
    np.testing.assert_allclose(b.c2w[-1], yaw_pose(np.eye(4), -270.0), atol=1e-12)
    step = np.degrees(rotation_angle(b.c2w[:-1, :3, :3], b.c2w[1:, :3, :3]))
    np.testing.assert_allclose(step, 270.0 / 48, atol=1e-9)  # constant yaw rate
    np.testing.assert_allclose(b.positions, 0.0, atol=1e-15)


def test_truck_out_and_back():
    point = np.array([0.2, 0.1, 3.0])
    K = intrinsics_from_fov(60.0, H, W)
    kfs = truck_out_and_back(np.eye(4), point, 60.0, H, W, step=0.05, seconds=4.0)
    assert len(kfs) == 3
    b = bake(kfs)
    assert b.keyframe_frames == [0, 32, 64]
    start, turn, end = (b.c2w[f] for f in b.keyframe_frames)
    assert point_in_view(point, start, K, H, W)
    assert not point_in_view(point, turn, K, H, W)
    assert point_in_view(point, end, K, H, W)
    np.testing.assert_allclose(end, np.eye(4), atol=1e-12)
    # sideways only, along the camera's x axis; the point is right of centre, so 'auto' moves
    # left (the point exits through the right edge sooner)
    np.testing.assert_allclose(b.positions[:, 1:], 0.0, atol=1e-15)
    assert turn[0, 3] < 0
    # the motion is monotonic out and back (no overshoot past the turn-around point)
    x = b.positions[:, 0]
    assert np.all(np.diff(x[:33]) <= 1e-12) and np.all(np.diff(x[32:]) >= -1e-12)
    # also accepts K
    kfs_k = truck_out_and_back(np.eye(4), point, K, H, W, direction="right")
    assert kfs_k[1].position[0] > 0 and kfs_k[0].fov == pytest.approx(60.0)


def test_truck_errors_name_the_problem():
    with pytest.raises(WorldStudioError, match="not in view at the start"):
        truck_out_and_back(np.eye(4), (0.0, 0.0, -1.0), 60.0, H, W)
    with pytest.raises(WorldStudioError, match="stays in view"):
        truck_out_and_back(np.eye(4), (0.0, 0.0, 100.0), 60.0, H, W, max_distance=1.0)


@pytest.mark.parametrize("direction", ["auto", "left", "right"])
def test_turn_away_and_back(direction):
    point = np.array([-0.3, 0.0, 2.0])
    start = look_at((0.0, -0.2, 0.0), (0.0, 0.0, 3.0))
    K = intrinsics_from_fov(60.0, H, W)
    kfs = turn_away_and_back(
        start, point, 60.0, H, W, fps=FPS, frames_away=65, seconds_turn=1.5, direction=direction
    )
    b = bake(kfs)
    inside = np.array([point_in_view(point, m, K, H, W) for m in b.c2w])
    assert inside[0] and inside[-1]
    out = ~inside
    assert out.sum() >= 65
    # one contiguous stretch out of view, then back
    first, last = np.flatnonzero(out)[[0, -1]]
    assert np.all(out[first : last + 1])
    assert b.keyframe_frames[0] == 0 and b.keyframe_frames[-1] == len(b) - 1
    np.testing.assert_allclose(b.c2w[-1], start, atol=1e-9)
    np.testing.assert_allclose(b.positions - start[:3, 3], 0.0, atol=1e-12)  # on the spot
    assert len(b) == 24 + 65 + 24 + 1
    if direction == "auto":  # the point is left of centre: turning right loses it sooner
        turned = b.c2w[b.keyframe_frames[1]]
        assert turned[0, 2] > start[0, 2]


def test_turn_away_wide_turn_gets_intermediate_keyframes():
    point = np.array([-1.5, 0.0, 1.0])  # near the left edge of a 120-degree camera
    kfs = turn_away_and_back(
        np.eye(4),
        point,
        120.0,
        H,
        W,
        fps=8,
        frames_away=9,
        seconds_turn=2.0,
        direction="left",
        beyond_degrees=10.0,
    )
    b = bake(kfs, fps=8)
    step = np.degrees(rotation_angle(b.c2w[:-1, :3, :3], b.c2w[1:, :3, :3]))
    assert step.max() < 20.0
    K = intrinsics_from_fov(120.0, H, W)
    inside = np.array([point_in_view(point, m, K, H, W) for m in b.c2w])
    assert inside[0] and inside[-1] and (~inside).sum() >= 9
    np.testing.assert_allclose(b.c2w[-1], np.eye(4), atol=1e-9)


def test_turn_away_errors():
    looking_down = look_at((0.0, -2.0, 0.0), (0.0, 0.0, 0.0))
    with pytest.raises(WorldStudioError, match="does not take"):
        turn_away_and_back(looking_down, (0.0, 0.0, 0.0), 60.0, H, W)
    with pytest.raises(WorldStudioError, match="not in view"):
        turn_away_and_back(np.eye(4), (0.0, 0.0, -2.0), 60.0, H, W)


def test_registry_runs_every_preset_with_defaults():
    assert set(PRESETS) >= {"orbit", "dolly", "pan", "truck_out_and_back", "turn_away_and_back"}
    for name, preset in PRESETS.items():
        assert preset.summary and all(p.help for p in preset.params)
        opts = {"text": "(FN)(SL)"} if name == "actions" else {}
        path = apply_preset(name, np.eye(4), 60.0, H, W, FPS, **opts)
        assert isinstance(path, CameraPath) and len(path.keyframes) >= 2
        assert path.settings.fps == FPS
        b = bake_path(path)
        np.testing.assert_allclose(b.c2w[0][:3, 3], 0.0, atol=1e-9)  # starts at the camera


def test_apply_preset_converts_cli_strings_and_rejects_unknowns():
    path = apply_preset(
        "orbit",
        np.eye(4),
        60.0,
        H,
        W,
        FPS,
        target="0,0,2",
        degrees="180",
        n_keyframes="4",
        seconds="4",
    )
    assert len(path.keyframes) == 3
    np.testing.assert_allclose(path.keyframes[0].position, [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(path.keyframes[-1].position, [0, 0, 4], atol=1e-12)
    with pytest.raises(WorldStudioError, match="has no option 'radius'"):
        apply_preset("orbit", np.eye(4), 60.0, H, W, FPS, radius=2)
    with pytest.raises(WorldStudioError, match="unknown preset 'spin'"):
        apply_preset("spin", np.eye(4), 60.0, H, W, FPS)
    with pytest.raises(WorldStudioError, match="option 'target'"):
        apply_preset("orbit", np.eye(4), 60.0, H, W, FPS, target="1,2")
    with pytest.raises(WorldStudioError, match="option 'easing'"):
        apply_preset("pan", np.eye(4), 60.0, H, W, FPS, easing="bounce")
