"""Action strings (DeepVerse-style control, docs/FORMATS.md) -> steps -> camera keyframes / phrases.

An action string is a sequence of steps in parentheses, e.g. ``(FN)(FN)(fLN)(SN)(FR)``; each step
is a translation code then a steering code, nothing else. Whitespace may separate steps.

Translation: S stay, F forward, B backward, L left, R right, fL front-left, fR front-right,
rL rear-left, rR rear-right. Steering: N none, L turn left (counter-clockwise seen from above),
R turn right (clockwise).

Motion: each step moves the camera ``step_length`` world units in its current horizontal frame
(forward = camera +z projected onto the ground plane, right = camera +x likewise, left = -right;
diagonals move ``step_length`` along the 45-degree diagonal) and turns it ``turn_degrees`` about
the world's up axis (-y) through its position. The translation uses the heading at the start of
the step. One keyframe per step, ``frames_per_step / fps`` seconds apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from worldstudio.core.errors import ActionStringError, WorldStudioError
from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    as_pose,
    horizontal_frame,
    make_sign_continuous,
    matrix_to_quat,
    quat_tuple,
    rotation_about_axis,
    vec3_tuple,
)
from worldstudio.core.project.model import Keyframe

TRANSLATIONS: dict[str, str] = {
    "S": "stay",
    "F": "forward",
    "B": "backward",
    "L": "left",
    "R": "right",
    "fL": "front-left",
    "fR": "front-right",
    "rL": "rear-left",
    "rR": "rear-right",
}
STEERINGS: dict[str, str] = {"N": "none", "L": "turn left", "R": "turn right"}

# (forward, right) components of each translation, unit length
_DIRECTIONS: dict[str, tuple[float, float]] = {
    "S": (0.0, 0.0),
    "F": (1.0, 0.0),
    "B": (-1.0, 0.0),
    "L": (0.0, -1.0),
    "R": (0.0, 1.0),
    "fL": (math.sqrt(0.5), -math.sqrt(0.5)),
    "fR": (math.sqrt(0.5), math.sqrt(0.5)),
    "rL": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "rR": (-math.sqrt(0.5), math.sqrt(0.5)),
}

_PHRASE_MOVE: dict[str, str] = {
    "F": "Move forward",
    "B": "Move backward",
    "L": "Move left",
    "R": "Move right",
    "fL": "Move forward-left",
    "fR": "Move forward-right",
    "rL": "Move backward-left",
    "rR": "Move backward-right",
}

_TRANSLATION_LIST = "S, F, B, L, R, fL, fR, rL or rR"
_STEERING_LIST = "N, L or R"


@dataclass(frozen=True)
class ActionStep:
    """One step: a translation code (S F B L R fL fR rL rR) and a steering code (N L R)."""

    translation: str
    steering: str

    def __post_init__(self) -> None:
        if self.translation not in TRANSLATIONS:
            raise ActionStringError(
                f"unknown translation code {self.translation!r} (use {_TRANSLATION_LIST})"
            )
        if self.steering not in STEERINGS:
            raise ActionStringError(
                f"unknown steering code {self.steering!r} (use {_STEERING_LIST})"
            )

    @property
    def text(self) -> str:
        """The step as written in an action string, e.g. ``(fLN)``."""
        return f"({self.translation}{self.steering})"

    def __str__(self) -> str:
        return self.text


def _parse_step(body: str, index: int, raw: str) -> ActionStep:
    where = f"step {index} {raw!r}"
    if not body:
        raise ActionStringError(f"{where}: empty step (write e.g. '(FN)')")
    translation = None
    for code in sorted(TRANSLATIONS, key=len, reverse=True):  # two-letter codes first
        if body.startswith(code):
            translation = code
            break
    if translation is None:
        raise ActionStringError(
            f"{where}: missing translation code ({_TRANSLATION_LIST}) before the steering code"
            if body[0] in STEERINGS and len(body) == 1
            else f"{where}: unknown translation code at {body!r} (use {_TRANSLATION_LIST})"
        )
    rest = body[len(translation) :]
    if not rest:
        raise ActionStringError(f"{where}: missing steering code ({_STEERING_LIST})")
    if rest[0] not in STEERINGS:
        raise ActionStringError(
            f"{where}: expected a steering code ({_STEERING_LIST}) after {translation!r}, "
            f"got {rest!r}"
        )
    if len(rest) > 1:
        raise ActionStringError(
            f"{where}: unexpected {rest[1:]!r} after the steering code {rest[0]!r} "
            "(a step is one translation code then one steering code)"
        )
    return ActionStep(translation, rest[0])


def parse_actions(text: str) -> list[ActionStep]:
    """Parse an action string into steps; raises ActionStringError naming the bad step (1-based
    index and text), e.g. ``step 3 '(rL)': missing steering code (N, L or R)``."""
    if not isinstance(text, str):
        raise ActionStringError(f"an action string must be text, got {type(text).__name__}")
    steps: list[ActionStep] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        index = len(steps) + 1
        if c != "(":
            j = text.find("(", i)
            junk = text[i:] if j < 0 else text[i:j]
            raise ActionStringError(
                f"step {index}: unexpected {junk.strip()!r} at character {i + 1} "
                "(steps are written in parentheses, e.g. '(FN)')"
            )
        close = text.find(")", i + 1)
        nested = text.find("(", i + 1)
        if close < 0 or (0 <= nested < close):
            end = n if nested < 0 else nested
            raw = text[i:end].rstrip()
            raise ActionStringError(f"step {index} {raw!r}: missing ')'")
        raw = text[i : close + 1]
        steps.append(_parse_step(text[i + 1 : close].strip(), index, raw))
        i = close + 1
    if not steps:
        raise ActionStringError("the action string is empty (write steps such as '(FN)(FN)')")
    return steps


def format_actions(steps: Iterable[ActionStep]) -> str:
    """Steps back to an action string, e.g. ``(FN)(SL)``."""
    return "".join(s.text for s in steps)


def step_phrase(step: ActionStep) -> str:
    """A prompt phrase for one step: "Move forward.", "Move forward and turn left.",
    "Turn right.", "Stay still."."""
    move = _PHRASE_MOVE.get(step.translation)
    turn = {"N": None, "L": "turn left", "R": "turn right"}[step.steering]
    if move is None:
        return f"{turn[0].upper()}{turn[1:]}." if turn else "Stay still."
    return f"{move} and {turn}." if turn else f"{move}."


def actions_phrase(steps: Iterable[ActionStep]) -> str:
    """The phrases of several steps joined with spaces."""
    return " ".join(step_phrase(s) for s in steps)


def apply_step(
    c2w: np.ndarray, step: ActionStep, step_length: float = 0.25, turn_degrees: float = 15.0
) -> np.ndarray:
    """The pose after one step from ``c2w`` (see the module docstring)."""
    m = as_pose(c2w)
    f, r = horizontal_frame(m)
    a, b = _DIRECTIONS[step.translation]
    out = m.copy()
    out[:3, 3] = m[:3, 3] + float(step_length) * (a * f + b * r)
    yaw = {"N": 0.0, "L": float(turn_degrees), "R": -float(turn_degrees)}[step.steering]
    if yaw:
        out[:3, :3] = rotation_about_axis(WORLD_UP, yaw) @ m[:3, :3]
    return out


def actions_to_poses(
    steps: Iterable[ActionStep],
    start_c2w: np.ndarray,
    step_length: float = 0.25,
    turn_degrees: float = 15.0,
) -> np.ndarray:
    """(len(steps) + 1, 4, 4) poses: the start pose, then the pose after each step."""
    poses = [as_pose(start_c2w).copy()]
    for s in steps:
        poses.append(apply_step(poses[-1], s, step_length, turn_degrees))
    return np.stack(poses)


def actions_to_keyframes(
    steps: Iterable[ActionStep] | str,
    start_c2w: np.ndarray,
    fov: float = 60.0,
    step_length: float = 0.25,
    turn_degrees: float = 15.0,
    frames_per_step: int = 8,
    fps: int = 16,
) -> list[Keyframe]:
    """Keyframes for an action sequence: one at the start pose and one after each step, each
    ``frames_per_step / fps`` seconds after the previous (so every keyframe lands on a frame).
    ``steps`` may also be an action string."""
    if isinstance(steps, str):
        steps = parse_actions(steps)
    steps = list(steps)
    if frames_per_step < 1 or fps < 1:
        raise WorldStudioError(
            f"frames per step and fps must be at least 1, got {frames_per_step} and {fps}"
        )
    if not (math.isfinite(step_length) and math.isfinite(turn_degrees)):
        raise WorldStudioError("step length and turn angle must be finite numbers")
    if abs(turn_degrees) >= 180.0:
        raise WorldStudioError(f"the turn angle must be below 180 degrees, got {turn_degrees}")
    poses = actions_to_poses(steps, start_c2w, step_length, turn_degrees)
    return step_keyframes(poses, fov, frames_per_step / fps)


def step_keyframes(poses: np.ndarray, fov: float, transition: float) -> list[Keyframe]:
    """One keyframe per pose (N, 4, 4), ``transition`` seconds apart, orientations kept
    sign-continuous (the keyframes of an action sequence's poses)."""
    quats = make_sign_continuous(matrix_to_quat(np.asarray(poses)[:, :3, :3]))
    return [
        Keyframe(
            position=vec3_tuple(p[:3, 3]),
            orientation=quat_tuple(q),
            fov=float(fov),
            transition=float(transition),
        )
        for p, q in zip(poses, quats, strict=True)
    ]
