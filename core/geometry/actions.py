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
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from worldstudio.core.errors import ActionStringError, WorldStudioError
from worldstudio.core.geometry.path import MAX_FRAMES
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


MAX_TRANSITION = 3600.0  # seconds: a keyframe's longest transition (the project model's limit)
MAX_STEP_LENGTH = 1e6  # world units
MAX_STEPS = 10_000
"""The most steps an action string may have: 10,000 steps of the default 8 frames at 16 fps
are 83 minutes of video; a longer string is refused with a message, not worked through."""
_SPACE = re.compile(r"\s*")


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_actions(text: str, max_steps: int = MAX_STEPS) -> list[ActionStep]:
    """Parse an action string into steps; raises ActionStringError naming the bad step (1-based
    index and text), e.g. ``step 3 '(rL)': missing steering code (N, L or R)``. Linear in the
    length of the text; more than ``max_steps`` steps is an error."""
    if not isinstance(text, str):
        raise ActionStringError(f"an action string must be text, got {type(text).__name__}")
    steps: list[ActionStep] = []
    n = len(text)
    i = _SPACE.match(text, 0).end()  # type: ignore[union-attr]  # \s* always matches
    while i < n:
        index = len(steps) + 1
        if index > max_steps:
            raise ActionStringError(
                f"the action string has more than {max_steps} steps; split it into several paths"
            )
        if text[i] != "(":
            j = text.find("(", i)
            junk = text[i:] if j < 0 else text[i:j]
            raise ActionStringError(
                f"step {index}: unexpected {_shown(junk.strip())} at character {i + 1} "
                "(steps are written in parentheses, e.g. '(FN)')"
            )
        close = text.find(")", i + 1)
        nested = text.find("(", i + 1, close if close >= 0 else n)
        if close < 0 or nested >= 0:
            end = n if nested < 0 else nested
            raise ActionStringError(f"step {index} {_shown(text[i:end].rstrip())}: missing ')'")
        raw = text[i : close + 1]
        if len(raw) > 40:
            raise ActionStringError(
                f"step {index} {_shown(raw)}: a step is one translation code then one steering "
                "code, e.g. '(FN)'"
            )
        steps.append(_parse_step(text[i + 1 : close].strip(), index, raw))
        i = _SPACE.match(text, close + 1).end()  # type: ignore[union-attr]
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


def _yaw_matrices(degrees: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by ``degrees`` about ``WORLD_UP`` (positive: turn left)."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    out = np.zeros((len(t), 3, 3))
    out[:, 0, 0] = c
    out[:, 0, 2] = -s
    out[:, 1, 1] = 1.0
    out[:, 2, 0] = s
    out[:, 2, 2] = c
    return out


def actions_to_poses(
    steps: Iterable[ActionStep],
    start_c2w: np.ndarray,
    step_length: float = 0.25,
    turn_degrees: float = 15.0,
) -> np.ndarray:
    """(len(steps) + 1, 4, 4) poses: the start pose, then the pose after each step (what
    :func:`apply_step` gives step by step, computed for all steps at once: every turn is about
    the vertical, so the heading before step k is the start heading turned by the sum of the
    earlier turns)."""
    m = as_pose(start_c2w)
    steps = list(steps)
    n = len(steps)
    f0, r0 = horizontal_frame(m)
    ab = np.array([_DIRECTIONS[s.translation] for s in steps], dtype=np.float64).reshape(n, 2)
    turn = {"N": 0.0, "L": float(turn_degrees), "R": -float(turn_degrees)}
    yaw = np.array([turn[s.steering] for s in steps], dtype=np.float64)
    yaw_after = np.concatenate([[0.0], np.cumsum(yaw)])
    heading = _yaw_matrices(yaw_after[:-1])  # the turn before each step
    moves = float(step_length) * (ab[:, :1] * (heading @ f0) + ab[:, 1:] * (heading @ r0))
    out = np.repeat(m[None], n + 1, axis=0)
    out[1:, :3, 3] = m[:3, 3] + np.cumsum(moves, axis=0)
    out[:, :3, :3] = _yaw_matrices(yaw_after) @ m[:3, :3]
    return out


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
    transition = frames_per_step / fps
    if len(steps) * frames_per_step + 1 > MAX_FRAMES:
        raise WorldStudioError(
            f"{len(steps)} steps of {frames_per_step} frames make a path of more than the "
            f"{MAX_FRAMES} frames the studio bakes; use fewer steps or frames per step"
        )
    if transition > MAX_TRANSITION:
        raise WorldStudioError(
            f"frames per step: {frames_per_step} frames at {fps} fps are {transition:g} s per "
            f"step, more than the {MAX_TRANSITION:g} s a keyframe may last"
        )
    if not (math.isfinite(step_length) and math.isfinite(turn_degrees)):
        raise WorldStudioError("step length and turn angle must be finite numbers")
    if abs(step_length) > MAX_STEP_LENGTH:
        raise WorldStudioError(
            f"the step length must be at most {MAX_STEP_LENGTH:g} world units, got {step_length:g}"
        )
    if abs(turn_degrees) >= 180.0:
        raise WorldStudioError(f"the turn angle must be below 180 degrees, got {turn_degrees}")
    if not 0.0 < fov < 180.0:
        raise WorldStudioError(f"the field of view must be between 0 and 180 degrees, got {fov}")
    poses = actions_to_poses(steps, start_c2w, step_length, turn_degrees)
    if not np.all(np.isfinite(poses)):
        raise WorldStudioError("the path leaves the range of numbers the studio can represent")
    return step_keyframes(poses, fov, transition)


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
