"""Play's controls without the engine: keys -> steps, the motion of a step, the step path whose
final frames never change, the actions file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldstudio.core.errors import ActionStringError, WorldStudioError
from worldstudio.core.geometry.actions import actions_to_keyframes, parse_actions
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.geometry.transforms import WORLD_UP, look_at
from worldstudio.core.play import (
    KeyState,
    Motion,
    PlayStep,
    StepPath,
    format_steps,
    read_actions_file,
    step_from_keys,
    steps_from_actions,
)
from worldstudio.core.project import CameraPath, PathSettings


@pytest.mark.parametrize(
    ("keys", "code"),
    [
        ((), "(SN)"),
        (("W",), "(FN)"),
        (("S",), "(BN)"),
        (("A",), "(LN)"),
        (("D",), "(RN)"),
        (("W", "A"), "(fLN)"),
        (("W", "D"), "(fRN)"),
        (("S", "A"), "(rLN)"),
        (("S", "D"), "(rRN)"),
        (("W", "S"), "(SN)"),  # opposite keys cancel
        (("LEFT",), "(SL)"),
        (("RIGHT",), "(SR)"),
        (("LEFT", "RIGHT"), "(SN)"),
        (("W", "A", "RIGHT"), "(fLR)"),
        (("w", "left"), "(FL)"),  # names in any case
    ],
)
def test_keys_map_onto_deepverse_codes(keys, code):
    assert step_from_keys(keys).text == code


def test_q_e_and_the_up_down_arrows_are_the_extras():
    assert step_from_keys(["E"]) == PlayStep(rise=1)
    assert step_from_keys(["Q"]) == PlayStep(rise=-1)
    assert step_from_keys(["UP", "W"]) == PlayStep("F", "N", pitch=1)
    assert step_from_keys(["DOWN"]).extras == "v"
    assert step_from_keys(["E", "UP"]).extras == "U^"
    assert step_from_keys(["Q", "E"]) == PlayStep()


def test_a_tap_between_two_steps_still_counts_once():
    keys = KeyState()
    keys.press("W")
    keys.release("W")  # pressed and released before the engine asked
    assert keys.take_step().text == "(FN)"
    assert keys.take_step().text == "(SN)"
    keys.press("D")
    assert keys.take_step().text == "(RN)"
    assert keys.take_step().text == "(RN)"  # still held
    keys.tap("LEFT")  # a mouse drag's turn
    assert keys.take_step().text == "(RL)"
    keys.release_all()
    assert keys.take_step() == PlayStep()


def test_a_step_moves_as_path_actions_does_and_the_extras_rise_and_pitch():
    start = look_at(np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.3, 6.0]))
    m = Motion(step_length=0.5, turn_degrees=20.0, frames_per_action=4)
    plain = steps_from_actions("(fLN)(SR)")
    path = StepPath(start, 55.0, m)
    path.extend(plain)
    kfs = actions_to_keyframes(parse_actions("(fLN)(SR)"), start, 55.0, 0.5, 20.0, 4, 16)
    # the same moves; equal to rounding (BLAS may sum in another order on another machine)
    assert np.allclose([k.position for k in path.keyframes()], [k.position for k in kfs])
    assert np.allclose([k.orientation for k in path.keyframes()], [k.orientation for k in kfs])

    up = m.apply(start, PlayStep(rise=1))
    assert np.allclose(up[:3, 3] - start[:3, 3], 0.5 * WORLD_UP)
    assert np.allclose(up[:3, :3], start[:3, :3])
    look_up = m.apply(start, PlayStep(pitch=1))
    assert np.allclose(look_up[:3, 3], start[:3, 3])

    def elevation(c2w):
        return math.degrees(math.asin(float(np.dot(c2w[:3, 2], WORLD_UP))))

    assert elevation(look_up) == pytest.approx(elevation(start) + 20.0, abs=1e-9)
    pose = start
    for _ in range(10):  # never past 80 degrees
        pose = m.apply(pose, PlayStep(pitch=1))
    assert elevation(pose) == pytest.approx(80.0, abs=1e-9)
    assert np.allclose(pose[:3, 0] @ WORLD_UP, 0.0, atol=1e-12)  # no roll


def test_the_final_frames_of_a_growing_path_never_change():
    rng = np.random.default_rng(3)
    codes = ["S", "F", "B", "L", "R", "fL", "fR", "rL", "rR"]
    steps = [
        PlayStep(codes[rng.integers(9)], "NLR"[rng.integers(3)], int(rng.integers(-1, 2)))
        for _ in range(12)
    ]
    m = Motion(frames_per_action=5, tension=0.2)
    whole = StepPath(np.eye(4), 60.0, m)
    whole.extend(steps)
    c2w_all, fov_all = whole.bake()
    assert len(c2w_all) == 12 * 5 + 1
    growing = StepPath(np.eye(4), 60.0, m)
    for s in steps:
        growing.add(s)
        n = growing.final_frames()
        c2w, fov = growing.bake()
        np.testing.assert_allclose(c2w[:n], c2w_all[:n], atol=1e-12)
        np.testing.assert_allclose(fov[:n], fov_all[:n])
    # and the whole path is the path's own bake of its keyframes
    path = CameraPath(keyframes=whole.keyframes(), settings=PathSettings(fps=16, tension=0.2))
    np.testing.assert_allclose(bake_path(path).c2w, c2w_all, atol=1e-12)
    # a frame's step: frame k moves in step k // 5; the last frame belongs to the last step;
    # past the end the camera stays
    assert whole.step_of_frame(0) == steps[0] and whole.step_of_frame(7) == steps[1]
    assert whole.step_of_frame(60) == steps[-1] and whole.step_of_frame(61) == PlayStep()


def test_an_actions_file_has_one_action_a_line(tmp_path):
    f = tmp_path / "actions.txt"
    f.write_text("# Vid2World-style: one action per frame\nFN\n(fLN)\n\n  SR  # turn\n")
    assert format_steps(read_actions_file(str(f))) == "(FN)(fLN)(SR)"
    f.write_text("FN\nFX\n")
    with pytest.raises(ActionStringError, match=r"line 2: .*steering code"):
        read_actions_file(str(f))
    f.write_text("(FN)(FN)\n")
    with pytest.raises(ActionStringError, match="line 1: one action per line"):
        read_actions_file(str(f))
    f.write_text("# nothing\n")
    with pytest.raises(ActionStringError, match="no actions"):
        read_actions_file(str(f))
    with pytest.raises(WorldStudioError, match="cannot be read"):
        read_actions_file(str(tmp_path / "absent.txt"))


def test_bad_motion_settings_fail_with_one_line():
    with pytest.raises(WorldStudioError, match="frames per action"):
        Motion(frames_per_action=0)
    with pytest.raises(WorldStudioError, match="turn angle"):
        Motion(turn_degrees=180.0)
    with pytest.raises(ActionStringError):
        PlayStep("X", "N")
