"""Action strings (docs/FORMATS.md): parsing, errors naming the step, motion, phrases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstudio.core.errors import ActionStringError
from worldstudio.core.geometry.actions import (
    ActionStep,
    actions_to_keyframes,
    format_actions,
    parse_actions,
    step_phrase,
)
from worldstudio.core.geometry.path import bake_path, keyframe_pose
from worldstudio.core.geometry.transforms import look_at, rotation_about_axis
from worldstudio.core.project.model import CameraPath, PathSettings


def test_parse_the_formats_example():
    steps = parse_actions("(FN)(FN)(fLN)(SN)(FR)")
    assert [(s.translation, s.steering) for s in steps] == [
        ("F", "N"), ("F", "N"), ("fL", "N"), ("S", "N"), ("F", "R"),
    ]  # fmt: skip
    assert format_actions(steps) == "(FN)(FN)(fLN)(SN)(FR)"


def test_every_code_and_whitespace_between_steps():
    codes = ["S", "F", "B", "L", "R", "fL", "fR", "rL", "rR"]
    text = " \n".join(f"({t}{s})" for t in codes for s in "NLR")
    steps = parse_actions("  " + text + "\t")
    assert len(steps) == 27
    assert steps[-1] == ActionStep("rR", "R")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(rL)", "step 1 '(rL)': missing steering code (N, L or R)"),
        ("(fR_L)", "step 1 '(fR_L)': expected a steering code (N, L or R) after 'fR', got '_L'"),
        ("(B)", "step 1 '(B)': missing steering code"),
        ("(N)", "step 1 '(N)': missing translation code"),
        ("(FRB)", "step 1 '(FRB)': unexpected 'B' after the steering code 'R'"),
    ],
)
def test_invalid_examples_from_formats(text, message):
    with pytest.raises(ActionStringError) as err:
        parse_actions(text)
    assert message in str(err.value)


def test_error_names_the_index_of_the_bad_step():
    with pytest.raises(ActionStringError, match=r"step 3 '\(rL\)': missing steering code"):
        parse_actions("(FN) (SL) (rL) (FN)")
    with pytest.raises(ActionStringError, match=r"step 2 '\(xN\)': unknown translation code"):
        parse_actions("(FN)(xN)")
    with pytest.raises(ActionStringError, match=r"step 2 '\(FN': missing '\)'"):
        parse_actions("(FN)(FN")
    with pytest.raises(ActionStringError, match="step 2: unexpected 'FN'"):
        parse_actions("(FN)FN")
    with pytest.raises(ActionStringError, match=r"step 1 '\(\)': empty step"):
        parse_actions("()")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_string_is_invalid(text):
    with pytest.raises(ActionStringError, match="empty"):
        parse_actions(text)


def test_two_forward_steps_move_along_z():
    kfs = actions_to_keyframes(parse_actions("(FN)(FN)"), np.eye(4), step_length=0.25)
    assert len(kfs) == 3
    np.testing.assert_allclose(
        [k.position for k in kfs], [[0, 0, 0], [0, 0, 0.25], [0, 0, 0.5]], atol=1e-15
    )
    assert all(k.transition == pytest.approx(0.5) for k in kfs)  # 8 frames at 16 fps
    b = bake_path(CameraPath(keyframes=kfs, settings=PathSettings(fps=16)))
    assert len(b) == 17 and b.keyframe_frames == [0, 8, 16]
    np.testing.assert_allclose(b.c2w[-1][:3, 3], [0, 0, 0.5], atol=1e-12)
    np.testing.assert_allclose(b.c2w[:, :3, :3], np.broadcast_to(np.eye(3), (17, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(b.positions[:, 2], np.arange(17) * 0.5 / 16, atol=1e-12)


def test_turn_left_is_counter_clockwise_seen_from_above():
    kfs = actions_to_keyframes("(SL)", np.eye(4), turn_degrees=15.0)
    end = keyframe_pose(kfs[-1])
    a = math.radians(15.0)
    # forward swings toward the camera's left (-x); y (down) is unchanged
    np.testing.assert_allclose(end[:3, 2], [-math.sin(a), 0.0, math.cos(a)], atol=1e-12)
    np.testing.assert_allclose(end[:3, 1], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(end[:3, 3], 0.0, atol=1e-15)
    # seen from above (looking down +y, with +z ahead and +x to the right) the forward vector
    # rotated counter-clockwise: its cross product with the old forward points up (-y)
    assert np.cross([0.0, 0.0, 1.0], end[:3, 2])[1] < 0
    right = keyframe_pose(actions_to_keyframes("(SR)", np.eye(4))[-1])
    np.testing.assert_allclose(right[:3, 2], [math.sin(a), 0.0, math.cos(a)], atol=1e-12)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("L", [-1, 0, 0]),
        ("R", [1, 0, 0]),
        ("B", [0, 0, -1]),
        ("fL", [-math.sqrt(0.5), 0, math.sqrt(0.5)]),
        ("fR", [math.sqrt(0.5), 0, math.sqrt(0.5)]),
        ("rL", [-math.sqrt(0.5), 0, -math.sqrt(0.5)]),
        ("rR", [math.sqrt(0.5), 0, -math.sqrt(0.5)]),
        ("S", [0, 0, 0]),
    ],
)
def test_translations_in_the_camera_frame(code, expected):
    kfs = actions_to_keyframes(f"({code}N)", np.eye(4), step_length=2.0)
    np.testing.assert_allclose(kfs[-1].position, 2.0 * np.array(expected), atol=1e-12)


def test_translation_stays_on_the_ground_plane_and_follows_the_heading():
    pitched = look_at((0.0, 0.0, 0.0), (0.0, 1.0, 2.0))  # looking down at the floor
    kfs = actions_to_keyframes("(FN)", pitched, step_length=1.0)
    np.testing.assert_allclose(kfs[-1].position, [0, 0, 1], atol=1e-12)
    # after a quarter turn left, forward is the old left
    kfs = actions_to_keyframes("(SL)(FN)", np.eye(4), turn_degrees=90.0, step_length=1.0)
    np.testing.assert_allclose(kfs[-1].position, [-1, 0, 0], atol=1e-12)
    # turning while moving: the translation uses the heading at the start of the step
    kfs = actions_to_keyframes("(FL)(FN)", np.eye(4), turn_degrees=90.0, step_length=1.0)
    np.testing.assert_allclose(kfs[1].position, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(kfs[2].position, [-1, 0, 1], atol=1e-12)
    # looking straight down still has a heading (the image's up)
    down = np.eye(4)
    down[:3, :3] = rotation_about_axis((1.0, 0.0, 0.0), -90.0)
    np.testing.assert_allclose(down[:3, 2], [0, 1, 0], atol=1e-15)
    kfs = actions_to_keyframes("(FN)", down, step_length=1.0)
    np.testing.assert_allclose(kfs[-1].position, [0, 0, 1], atol=1e-12)


def test_step_phrases():
    phrase = {
        t: step_phrase(s)
        for t, s in ((s.text, s) for s in parse_actions("(FN)(FL)(SN)(SR)(BN)(fLN)(rRL)(LN)"))
    }
    assert phrase == {
        "(FN)": "Move forward.",
        "(FL)": "Move forward and turn left.",
        "(SN)": "Stay still.",
        "(SR)": "Turn right.",
        "(BN)": "Move backward.",
        "(fLN)": "Move forward-left.",
        "(rRL)": "Move backward-right and turn left.",
        "(LN)": "Move left.",
    }
