"""Baking camera paths: timing, spline, easing, rotations, fitting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.path import (
    bake_path,
    fit_keyframes,
    frame_count,
    keyframe_from_pose,
    keyframe_pose,
    keyframe_times,
    path_duration,
)
from worldstudio.core.geometry.presets import orbit
from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    look_at,
    matrix_to_quat,
    rotation_about_axis,
    rotation_angle,
    yaw_pose,
)
from worldstudio.core.project.model import CameraPath, Keyframe, PathSettings


def kf(pos, yaw=0.0, fov=60.0, transition=1.0, easing="linear"):
    R = rotation_about_axis(WORLD_UP, yaw)
    q = matrix_to_quat(R)
    return Keyframe(
        position=tuple(float(v) for v in pos),
        orientation=tuple(float(v) for v in q),
        fov=fov,
        transition=transition,
        easing=easing,
    )


def make_path(kfs, **settings):
    return CameraPath(keyframes=kfs, settings=PathSettings(**settings))


def three_keyframes(loop=False):
    return make_path(
        [
            kf((0, 0, 0), 0, 50, 1.0),
            kf((1, -0.5, 2), 40, 60, 2.0, "ease_in_out"),
            kf((3, 0, 1), 100, 70, 0.5),
        ],
        fps=16,
        loop=loop,
    )


def test_keyframe_times_and_duration():
    p = three_keyframes()
    assert keyframe_times(p) == [0.0, 1.0, 3.0]
    assert path_duration(p) == 3.0
    assert path_duration(three_keyframes(loop=True)) == 3.5


def test_open_path_frame_count_and_keyframe_frames():
    b = bake_path(three_keyframes())
    assert len(b) == frame_count(three_keyframes()) == 3 * 16 + 1
    assert b.keyframe_frames == [0, 16, 48]
    assert b.c2w.shape == (49, 4, 4) and b.c2w.dtype == np.float64
    np.testing.assert_allclose(b.times, np.arange(49) / 16)


def test_loop_frame_count_skips_the_duplicate_frame():
    p = three_keyframes(loop=True)
    b = bake_path(p)
    assert len(b) == 56  # 3.5 s * 16 fps; frame 56 would repeat frame 0
    assert b.keyframe_frames == [0, 16, 48]
    first = keyframe_pose(p.keyframes[0])
    assert not np.allclose(b.c2w[-1], first)
    # the closing segment carries on smoothly toward the first keyframe
    steps = np.linalg.norm(np.diff(b.positions, axis=0), axis=1)
    closing = np.linalg.norm(first[:3, 3] - b.positions[-1])
    assert closing < 2.0 * steps[-1] + 1e-9


@pytest.mark.parametrize("loop", [False, True])
def test_bake_passes_exactly_through_keyframes(loop):
    p = three_keyframes(loop=loop)
    b = bake_path(p)
    for k, f in zip(p.keyframes, b.keyframe_frames, strict=True):
        np.testing.assert_allclose(b.c2w[f], keyframe_pose(k), atol=1e-9, rtol=0)
        assert b.fov[f] == pytest.approx(k.fov, abs=1e-9)


def test_keyframe_times_that_fall_between_frames():
    p = make_path([kf((0, 0, 0), transition=0.3), kf((1, 0, 0), transition=0.3), kf((2, 0, 0))])
    b = bake_path(p)
    assert len(b) == round(0.6 * 16) + 1 == 11
    assert b.keyframe_frames == [0, 5, 10]  # 4.8 -> 5, 9.6 -> 10
    # frame 10 lies past the last keyframe (t = 0.625 > 0.6): held on the last pose
    np.testing.assert_allclose(b.positions[-1], [2, 0, 0], atol=1e-12)


def test_per_segment_durations_give_continuous_speed():
    # collinear keyframes 1 unit and 2 units apart, 1 s and 2 s apart: 1 unit/s throughout,
    # so with duration-aware tangents the camera moves at exactly constant speed
    p = make_path(
        [kf((0, 0, 0), transition=1.0), kf((1, 0, 0), transition=2.0), kf((3, 0, 0))], fps=4
    )
    b = bake_path(p)
    assert b.keyframe_frames == [0, 4, 12]
    np.testing.assert_allclose(b.positions[:, 0], b.times, atol=1e-12)
    np.testing.assert_allclose(b.positions[:, 1:], 0.0, atol=1e-15)


def test_catmull_rom_midpoint_hand_computed():
    pts = [(0, 0, 0), (1, 0, 0), (2, 1, 0), (3, 3, 0)]
    p = make_path([kf(x) for x in pts], fps=2, tension=0.0)
    b = bake_path(p)
    # uniform Catmull-Rom midpoint of the middle segment: (-p0 + 9 p1 + 9 p2 - p3) / 16
    np.testing.assert_allclose(b.positions[3], [1.5, 0.375, 0.0], atol=1e-12)
    # full tension: zero tangents, the midpoint is the chord's midpoint
    b1 = bake_path(make_path([kf(x) for x in pts], fps=2, tension=1.0))
    np.testing.assert_allclose(b1.positions[3], [1.5, 0.5, 0.0], atol=1e-12)


def test_easing_changes_timing_not_endpoints():
    lin = bake_path(make_path([kf((0, 0, 0), 0, 40), kf((4, 0, 0), 60, 80)], fps=4))
    eased = bake_path(
        make_path([kf((0, 0, 0), 0, 40, easing="ease_in"), kf((4, 0, 0), 60, 80)], fps=4)
    )
    assert len(lin) == len(eased) == 5
    np.testing.assert_allclose(lin.positions[:, 0], [0, 1, 2, 3, 4], atol=1e-12)
    np.testing.assert_allclose(eased.positions[:, 0], [0, 0.25, 1, 2.25, 4], atol=1e-12)
    np.testing.assert_allclose(lin.fov, [40, 50, 60, 70, 80], atol=1e-12)
    np.testing.assert_allclose(eased.fov, [40, 42.5, 50, 62.5, 80], atol=1e-12)
    for i in (0, -1):
        np.testing.assert_allclose(lin.c2w[i], eased.c2w[i], atol=1e-12)
    # rotations follow the eased parameter too: yaw 0 -> 60 degrees
    yaw = np.degrees(rotation_angle(np.eye(3), eased.c2w[:, :3, :3]))
    np.testing.assert_allclose(yaw, [0, 3.75, 15, 33.75, 60], atol=1e-9)
    ease_io = bake_path(make_path([kf((0, 0, 0), easing="ease_in_out"), kf((4, 0, 0))], fps=4))
    np.testing.assert_allclose(ease_io.positions[:, 0], [0, 0.625, 2, 3.375, 4], atol=1e-12)


def test_n_frames_hold_and_cut():
    p = three_keyframes()
    full = bake_path(p)
    held = bake_path(p, n_frames=60)
    assert len(held) == 60
    np.testing.assert_array_equal(held.c2w[:49], full.c2w)
    for i in range(49, 60):
        np.testing.assert_array_equal(held.c2w[i], full.c2w[-1])
    np.testing.assert_allclose(held.times, np.arange(60) / 16)
    cut = bake_path(p, n_frames=10)
    assert len(cut) == 10
    np.testing.assert_array_equal(cut.c2w, full.c2w[:10])
    with pytest.raises(WorldStudioError, match="at least 1"):
        bake_path(p, n_frames=0)


def test_no_keyframes_and_single_keyframe():
    with pytest.raises(WorldStudioError, match="the camera path has no keyframes"):
        bake_path(CameraPath())
    with pytest.raises(WorldStudioError, match="no keyframes"):
        path_duration(CameraPath())
    single = make_path([kf((1, 2, 3), 30, 45)])
    b = bake_path(single)
    assert len(b) == 1 and b.keyframe_frames == [0]
    np.testing.assert_allclose(b.c2w[0], keyframe_pose(single.keyframes[0]), atol=1e-12)
    held = bake_path(single, n_frames=5)
    assert len(held) == 5
    assert np.all(held.c2w == held.c2w[0]) and np.all(held.fov == 45)


def test_full_orbit_has_no_quaternion_flip():
    kfs = orbit((0, 0, 3), radius=3, height=1, degrees=360, n_keyframes=8, seconds=8)
    b = bake_path(make_path(kfs, fps=16))
    assert len(b) == 129
    step = np.degrees(rotation_angle(b.c2w[:-1, :3, :3], b.c2w[1:, :3, :3]))
    assert step.max() < 2 * 360 / 128  # about 2.8 degrees per frame, never a jump
    q = b.quaternions
    assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0.99)
    # the camera comes all the way round
    np.testing.assert_allclose(b.c2w[-1], b.c2w[0], atol=1e-9)


def test_look_at_setting_turns_every_pose_to_the_point():
    target = np.array([0.5, 0.2, 4.0])
    p = make_path([kf((0, 0, 0)), kf((2, -1, 1)), kf((-1, 0, 2))], fps=8, look_at=tuple(target))
    b = bake_path(p)
    for m in b.c2w:
        d = target - m[:3, 3]
        np.testing.assert_allclose(m[:3, 2], d / np.linalg.norm(d), atol=1e-12)
        assert abs(m[:3, 0] @ WORLD_UP) < 1e-12  # no roll


def test_rotation_is_slerped_between_keyframes():
    b = bake_path(make_path([kf((0, 0, 0), 0), kf((0, 0, 0), 90)], fps=4))
    expected = [yaw_pose(np.eye(4), a)[:3, :3] for a in (0, 22.5, 45, 67.5, 90)]
    np.testing.assert_allclose(b.c2w[:, :3, :3], np.stack(expected), atol=1e-12)


def test_fit_keyframes_reproduces_an_orbit_with_few_keyframes():
    kfs = orbit((0, 0, 3), radius=3, height=1, degrees=360, n_keyframes=8, seconds=8)
    b = bake_path(make_path(kfs, fps=16))
    fitted = fit_keyframes(b.c2w, b.fov, fps=16, tolerance_pos=0.01, tolerance_deg=0.5)
    assert len(fitted) <= 12  # from 129 frames
    rb = bake_path(make_path(fitted, fps=16))
    assert len(rb) == len(b)
    assert np.max(np.linalg.norm(rb.positions - b.positions, axis=1)) <= 0.01
    assert np.degrees(np.max(rotation_angle(rb.c2w[:, :3, :3], b.c2w[:, :3, :3]))) <= 0.5


def test_fit_keyframes_on_an_exact_circle_and_a_static_camera():
    angles = np.linspace(0.0, 2 * np.pi, 161)
    poses = np.stack(
        [look_at((2 * math.sin(a), -0.5, 3 - 2 * math.cos(a)), (0, 0, 3)) for a in angles]
    )
    fov = np.linspace(50, 60, len(poses))
    fitted = fit_keyframes(poses, fov, fps=16, tolerance_pos=0.02, tolerance_deg=1.0)
    assert len(fitted) < 30
    rb = bake_path(make_path(fitted, fps=16))
    assert np.max(np.linalg.norm(rb.positions - poses[:, :3, 3], axis=1)) <= 0.02
    assert np.max(np.abs(rb.fov - fov)) <= 1.0
    static = fit_keyframes(np.repeat(np.eye(4)[None], 30, axis=0), 60.0, fps=16)
    assert len(static) == 2
    assert static[0].transition == pytest.approx(29 / 16)


def test_keyframe_from_pose_round_trip():
    m = look_at((1.0, -1.0, 0.0), (0.0, 0.0, 4.0))
    k = keyframe_from_pose(m, fov=55.0, transition=2.0)
    np.testing.assert_allclose(keyframe_pose(k), m, atol=1e-12)
    assert k.fov == 55.0 and k.transition == 2.0
