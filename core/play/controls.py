"""Play's controls: keys -> steps -> camera keyframes -> one pose per frame.

A play step is a DeepVerse action step (translation S F B L R fL fR rL rR, steering N L R;
:mod:`worldstudio.core.geometry.actions`) with two extras the studio's keys also give: ``rise``
(+1 up, -1 down: Q/E) and ``pitch`` (+1 look up, -1 look down: the up/down arrows or a vertical
drag). A session's steps are an action string (the extras, when used, are recorded beside it).

Keys (:func:`step_from_keys`): W forward, S backward, A left, D right (W+A front-left, ...), Q down,
E up, Left / Right turn, Up / Down look up / down.

Motion (:class:`Motion`): a step moves and turns exactly as ``worldstudio path --actions`` does
(:func:`~worldstudio.core.geometry.actions.apply_step`), then rises ``rise_length`` along the
world's up and pitches ``pitch_degrees`` about the camera's right axis (never past 80 degrees up or
down). One keyframe per step boundary, ``frames_per_action / fps`` seconds apart, baked by the
project's path code (:class:`StepPath`): a session's poses are the poses of
``worldstudio path --actions`` with the same steps, frame for frame.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from worldstudio.core.errors import ActionStringError, WorldStudioError
from worldstudio.core.geometry.actions import ActionStep, apply_step, parse_actions, step_keyframes
from worldstudio.core.geometry.transforms import WORLD_UP, as_pose, rotation_about_axis

MAX_PITCH_DEGREES = 80.0

# (forward, right) of the held keys -> translation code
_TRANSLATION = {
    (0, 0): "S",
    (1, 0): "F",
    (-1, 0): "B",
    (0, -1): "L",
    (0, 1): "R",
    (1, -1): "fL",
    (1, 1): "fR",
    (-1, -1): "rL",
    (-1, 1): "rR",
}
PLAY_KEYS = ("W", "A", "S", "D", "Q", "E", "LEFT", "RIGHT", "UP", "DOWN")
"""The key names play reads (the studio maps Qt keys onto these)."""


@dataclass(frozen=True)
class PlayStep:
    """One step: a DeepVerse action and the extras (rise, pitch: -1, 0 or +1)."""

    translation: str = "S"
    steering: str = "N"
    rise: int = 0
    pitch: int = 0

    def __post_init__(self) -> None:
        ActionStep(self.translation, self.steering)  # checks the codes
        if self.rise not in (-1, 0, 1) or self.pitch not in (-1, 0, 1):
            raise ActionStringError(
                f"rise and pitch must be -1, 0 or 1, got {self.rise} and {self.pitch}"
            )

    @property
    def action(self) -> ActionStep:
        return ActionStep(self.translation, self.steering)

    @property
    def text(self) -> str:
        """The DeepVerse step, e.g. ``(fLN)`` (without the extras)."""
        return self.action.text

    @property
    def extras(self) -> str:
        """The extras as text: ``U``/``D`` (rise), ``^``/``v`` (pitch); "" for none."""
        return {1: "U", -1: "D", 0: ""}[self.rise] + {1: "^", -1: "v", 0: ""}[self.pitch]


def step_from_keys(keys: Iterable[str]) -> PlayStep:
    """The step the held keys ask for (opposite keys cancel out)."""
    k = {str(key).upper() for key in keys}
    f = ("W" in k) - ("S" in k)
    r = ("D" in k) - ("A" in k)
    turn = ("LEFT" in k) - ("RIGHT" in k)
    return PlayStep(
        translation=_TRANSLATION[(f, r)],
        steering={1: "L", -1: "R", 0: "N"}[turn],
        rise=("E" in k) - ("Q" in k),
        pitch=("UP" in k) - ("DOWN" in k),
    )


def steps_from_actions(text: str) -> list[PlayStep]:
    """An action string as play steps (no extras)."""
    return [PlayStep(s.translation, s.steering) for s in parse_actions(text)]


def read_actions_file(path: str) -> list[PlayStep]:
    """Vid2World-style input: one action per frame, one per line (``FN`` or ``(FN)``); blank
    lines and ``#`` comments are skipped. Errors name the line."""
    from pathlib import Path

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WorldStudioError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError:
        raise WorldStudioError(f"{path}: not a text file of actions") from None
    steps: list[PlayStep] = []
    for n, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.startswith("("):
            text = f"({text})"
        try:
            parsed = steps_from_actions(text)
        except ActionStringError as exc:
            raise ActionStringError(f"{path}, line {n}: {exc}") from None
        if len(parsed) != 1:
            raise ActionStringError(f"{path}, line {n}: one action per line, got {len(parsed)}")
        steps += parsed
    if not steps:
        raise ActionStringError(f"{path}: no actions in the file")
    return steps


def format_steps(steps: Iterable[PlayStep]) -> str:
    """The DeepVerse action string of the steps, e.g. ``(FN)(fLN)``."""
    return "".join(s.text for s in steps)


@dataclass(frozen=True)
class Motion:
    """How far a step moves: ``step_length`` world units and ``turn_degrees`` per step (as
    ``path --actions``), ``rise_length`` up or down and ``pitch_degrees`` (default: the step
    length and the turn); one step lasts ``frames_per_action`` frames at ``fps``; the path's
    ``tension`` (the project's)."""

    step_length: float = 0.25
    turn_degrees: float = 15.0
    frames_per_action: int = 8
    fps: int = 16
    rise_length: float | None = None
    pitch_degrees: float | None = None
    tension: float = 0.0

    def __post_init__(self) -> None:
        if self.frames_per_action < 1 or self.fps < 1:
            raise WorldStudioError(
                f"frames per action and fps must be at least 1, got {self.frames_per_action} and {self.fps}"
            )
        for name in ("step_length", "turn_degrees", "rise_length", "pitch_degrees"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise WorldStudioError(f"{name.replace('_', ' ')} must be a finite number")
        if abs(self.turn_degrees) >= 180.0:
            raise WorldStudioError(
                f"the turn angle must be below 180 degrees, got {self.turn_degrees}"
            )

    def apply(self, c2w: np.ndarray, step: PlayStep) -> np.ndarray:
        """The pose after ``step`` from ``c2w``."""
        out = apply_step(c2w, step.action, self.step_length, self.turn_degrees)
        if step.rise:
            rise = self.step_length if self.rise_length is None else self.rise_length
            out[:3, 3] += step.rise * float(rise) * WORLD_UP
        if step.pitch:
            pitch = self.turn_degrees if self.pitch_degrees is None else self.pitch_degrees
            now = _elevation(out)
            target = float(np.clip(now + step.pitch * pitch, -MAX_PITCH_DEGREES, MAX_PITCH_DEGREES))
            if abs(target - now) > 1e-9:
                # rotating about the camera's right axis by +a looks up by a
                out[:3, :3] = rotation_about_axis(out[:3, 0], target - now) @ out[:3, :3]
        return out


def _elevation(c2w: np.ndarray) -> float:
    """Degrees the camera looks above the horizon."""
    forward = c2w[:3, 2]
    return math.degrees(math.asin(float(np.clip(np.dot(forward, WORLD_UP), -1.0, 1.0))))


class StepPath:
    """A growing sequence of steps from a start pose and the camera path they make: one
    keyframe per step boundary, baked by :func:`~worldstudio.core.geometry.path.bake_path`.

    A frame's pose is *final* once the steps after it cannot change it: the path's spline through
    keyframe j .. j+1 depends on keyframes j-1 .. j+2, so with k steps (k + 1 keyframes) the frames
    up to keyframe k - 1 are final (:meth:`final_frames`). A live session adds steps until the
    frames it needs are final, so the poses it plays are exactly the poses of the whole action
    string baked at the end.
    """

    def __init__(self, start_c2w: np.ndarray, fov: float, motion: Motion):
        self.motion = motion
        self.fov = float(fov)
        self.steps: list[PlayStep] = []
        self.poses: list[np.ndarray] = [as_pose(start_c2w).copy()]
        self._baked: tuple[int, np.ndarray, np.ndarray] | None = None

    def add(self, step: PlayStep) -> None:
        self.steps.append(step)
        self.poses.append(self.motion.apply(self.poses[-1], step))

    def extend(self, steps: Iterable[PlayStep]) -> None:
        for s in steps:
            self.add(s)

    @property
    def frames(self) -> int:
        """Frames of the whole path so far (the first and last keyframe included)."""
        return len(self.steps) * self.motion.frames_per_action + 1

    def final_frames(self) -> int:
        """How many leading frames no later step can change."""
        return max(0, len(self.steps) - 1) * self.motion.frames_per_action + 1

    def keyframes(self):
        """The path's keyframes (:class:`~worldstudio.core.project.model.Keyframe`)."""
        m = self.motion
        return step_keyframes(np.stack(self.poses), self.fov, m.frames_per_action / m.fps)

    def camera_path(self):
        from worldstudio.core.project.model import CameraPath, PathSettings

        m = self.motion
        return CameraPath(
            keyframes=self.keyframes(), settings=PathSettings(fps=m.fps, tension=m.tension)
        )

    def bake(self) -> tuple[np.ndarray, np.ndarray]:
        """(c2w (N, 4, 4), fov (N,)) for every frame of the path so far."""
        if self._baked is None or self._baked[0] != len(self.steps):
            from worldstudio.core.geometry.path import bake_path

            baked = bake_path(self.camera_path())
            self._baked = (len(self.steps), baked.c2w, baked.fov)
        return self._baked[1], self._baked[2]

    def step_of_frame(self, k: int) -> PlayStep:
        """The step frame k moves in (the last step for the path's last frame; a frame past the
        path's end stays: ``(SN)``)."""
        n = len(self.steps)
        if n == 0 or k >= self.frames:
            return PlayStep()
        return self.steps[min(k // self.motion.frames_per_action, n - 1)]


class KeyState:
    """The keys a player holds, shared between the studio's GUI thread (:meth:`press`,
    :meth:`release`) and the engine's thread (:meth:`take_step`). A key pressed and released
    between two steps still counts once (a tap is not lost)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._tapped: set[str] = set()
        self.last = PlayStep()

    def press(self, key: str) -> None:
        with self._lock:
            self._held.add(key.upper())
            self._tapped.add(key.upper())

    def release(self, key: str) -> None:
        with self._lock:
            self._held.discard(key.upper())

    def tap(self, key: str) -> None:
        """One step's worth of ``key`` (a mouse drag's turn)."""
        with self._lock:
            self._tapped.add(key.upper())

    def release_all(self) -> None:
        with self._lock:
            self._held.clear()
            self._tapped.clear()

    @property
    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def current(self) -> PlayStep:
        """The step the keys ask for now (held or tapped since the last step), not taken."""
        with self._lock:
            return step_from_keys(self._held | self._tapped)

    def take_step(self) -> PlayStep:
        """The next step: the keys held now and those tapped since the last step."""
        with self._lock:
            step = step_from_keys(self._held | self._tapped)
            self._tapped.clear()
            self.last = step
        return step
