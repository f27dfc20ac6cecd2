"""Camera-path presets: editable keyframes for common moves.

Every preset returns a ``list[Keyframe]`` whose ``transition`` values make the timing explicit
(bake them with ``PathSettings(fps=...)``; tension 0, not a loop). Directions follow the world's
up = -y: positive angles are counter-clockwise seen from above (to the LEFT), as the steering
code L of action strings.

``PRESETS`` maps a name to a ``Preset``: a callable with the uniform interface
``preset(start_c2w, fov, height, width, fps, **options)`` and documented ``params`` (name, type,
default, help) that the CLI can list and fill from ``name=value`` strings. ``apply_preset`` runs
one by name and returns a ``CameraPath``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.actions import actions_to_keyframes
from worldstudio.core.geometry.camera import fov_from_intrinsics, intrinsics_from_fov, point_in_view
from worldstudio.core.geometry.path import EASINGS, MAX_FRAMES, check_easing, frame_count
from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    as_pose,
    look_at,
    make_sign_continuous,
    matrix_to_quat,
    quat_tuple,
    vec3_tuple,
    yaw_pose,
)
from worldstudio.core.project.model import CameraPath, Keyframe, PathSettings

MAX_KEYFRAMES = 10_000  # as many as the longest action string makes
_MAX_SEARCH_STEPS = 100_000  # truck out and back: steps tried to lose the point from view

Vec3Like = Sequence[float] | np.ndarray


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _segments(amount: float, what: str) -> int:
    """``ceil(amount)`` segments (at least 1); more than :data:`MAX_KEYFRAMES` is an error."""
    if not math.isfinite(amount) or amount > MAX_KEYFRAMES:
        raise WorldStudioError(
            f"{what} needs more than the {MAX_KEYFRAMES} keyframes a preset makes"
        )
    return max(1, math.ceil(amount - 1e-9))


def _positive(value: float, what: str) -> float:
    v = float(value)
    if not (v > 0.0) or not math.isfinite(v):
        raise WorldStudioError(f"{what} must be a positive number, got {value}")
    return v


def _vec3(value: Vec3Like, what: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise WorldStudioError(f"{what} must be 3 finite numbers (x, y, z), got {value!r}")
    return v


def _keyframes(
    poses: Sequence[np.ndarray], fov: float, transitions: Sequence[float], easing: str = "linear"
) -> list[Keyframe]:
    """Keyframes at ``poses`` with sign-continuous quaternions."""
    checked = check_easing(easing)
    stacked = np.stack([as_pose(p) for p in poses])
    quats = make_sign_continuous(matrix_to_quat(stacked[:, :3, :3]))
    return [
        Keyframe(
            position=vec3_tuple(p[:3, 3]),
            orientation=quat_tuple(q),
            fov=float(fov),
            transition=float(t),
            easing=checked,
        )
        for p, q, t in zip(stacked, quats, transitions, strict=True)
    ]


def _camera(fov_or_K: float | np.ndarray, height: int, width: int) -> tuple[np.ndarray, float]:
    """(K, vertical fov) from a fov in degrees or a 3x3 K."""
    if np.ndim(fov_or_K) == 0:
        fov = float(fov_or_K)
        return intrinsics_from_fov(fov, height, width), fov
    K = np.asarray(fov_or_K, dtype=np.float64)
    return K, fov_from_intrinsics(K, height)


def _directions(direction: str, positive: str, negative: str) -> list[float]:
    if direction == "auto":
        return [1.0, -1.0]
    if direction == positive:
        return [1.0]
    if direction == negative:
        return [-1.0]
    raise WorldStudioError(
        f"direction must be 'auto', '{positive}' or '{negative}', got {direction!r}"
    )


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------


def orbit_position(target: Vec3Like, radius: float, height: float, angle_deg: float) -> np.ndarray:
    """Camera position on an orbit: ``height`` above the target (world up = -y), ``radius`` away
    horizontally; angle 0 is on the target's -z side (the camera then looks along +z), and the
    angle grows counter-clockwise seen from above."""
    a = math.radians(angle_deg)
    t = np.asarray(target, dtype=np.float64)
    return t + np.array([radius * math.sin(a), -float(height), -radius * math.cos(a)])


def orbit(
    target: Vec3Like,
    radius: float,
    height: float = 0.0,
    start_angle_deg: float = 0.0,
    degrees: float = 360.0,
    n_keyframes: int = 8,
    seconds: float = 8.0,
    fov: float = 60.0,
) -> list[Keyframe]:
    """Circle ``target`` looking at it (see ``orbit_position`` for the geometry).

    ``n_keyframes`` is the number of keyframes per full turn (at least 3); a partial orbit gets
    keyframes no further apart. ``degrees`` > 0 goes counter-clockwise seen from above. A full
    orbit ends on a keyframe at its start, so the open path closes; quaternions are
    sign-continuous (no flip). Transitions are equal and sum to ``seconds``.
    """
    t = _vec3(target, "orbit target")
    radius = _positive(radius, "orbit radius")
    seconds = _positive(seconds, "orbit seconds")
    if int(n_keyframes) < 3:
        raise WorldStudioError(f"an orbit needs at least 3 keyframes per turn, got {n_keyframes}")
    degrees = float(degrees)
    if degrees == 0.0 or not math.isfinite(degrees):
        raise WorldStudioError(f"orbit degrees must be a non-zero number, got {degrees}")
    nseg = _segments(abs(degrees) * int(n_keyframes) / 360.0, f"an orbit of {degrees:g} degrees")
    poses = []
    for j in range(nseg + 1):
        pos = orbit_position(t, radius, height, start_angle_deg + degrees * j / nseg)
        poses.append(look_at(pos, t))
    return _keyframes(poses, fov, [seconds / nseg] * (nseg + 1))


def dolly(
    start_pose: np.ndarray,
    distance: float,
    seconds: float = 2.0,
    fov: float = 60.0,
    easing: str = "linear",
) -> list[Keyframe]:
    """Move along the camera's +z by ``distance`` (positive = in, negative = out)."""
    m = as_pose(start_pose)
    seconds = _positive(seconds, "dolly seconds")
    end = m.copy()
    end[:3, 3] = m[:3, 3] + float(distance) * m[:3, 2]
    return _keyframes([m, end], fov, [seconds, seconds], easing)


def pan(
    start_pose: np.ndarray,
    degrees: float,
    seconds: float = 3.0,
    fov: float = 60.0,
    easing: str = "linear",
) -> list[Keyframe]:
    """Turn on the spot about the world's up axis; ``degrees`` > 0 pans left (counter-clockwise
    seen from above). Large pans are split into keyframes at most 90 degrees apart, evenly timed,
    so the yaw rate is constant (with linear easing)."""
    m = as_pose(start_pose)
    seconds = _positive(seconds, "pan seconds")
    degrees = float(degrees)
    if not math.isfinite(degrees):
        raise WorldStudioError(f"pan degrees must be a finite number, got {degrees}")
    nseg = _segments(abs(degrees) / 90.0, f"a pan of {degrees:g} degrees")
    poses = [yaw_pose(m, degrees * j / nseg) for j in range(nseg + 1)]
    return _keyframes(poses, fov, [seconds / nseg] * (nseg + 1), easing)


def truck_out_and_back(
    start_pose: np.ndarray,
    point: Vec3Like,
    fov_or_K: float | np.ndarray,
    height: int,
    width: int,
    step: float = 0.05,
    max_distance: float = 10.0,
    seconds: float = 4.0,
    direction: str = "auto",
    beyond: float = 0.25,
    margin: float = 0.0,
) -> list[Keyframe]:
    """Move sideways along the camera's x axis until ``point`` leaves the view, a bit beyond
    (``beyond`` x the exit distance, at least one ``step``; capped at ``max_distance``), then
    come back to the start: three keyframes (start, turn-around, start), ``seconds / 2`` apart.

    ``direction``: 'right' (+x), 'left' (-x) or 'auto' (whichever loses the point sooner).
    Raises WorldStudioError if the point is not in view at the start or does not leave the view
    within ``max_distance``.
    """
    m = as_pose(start_pose)
    p = _vec3(point, "the point to lose from view")
    K, fov = _camera(fov_or_K, height, width)
    step = _positive(step, "truck step")
    max_distance = _positive(max_distance, "truck max distance")
    seconds = _positive(seconds, "truck seconds")
    if not point_in_view(p, m, K, height, width, margin):
        raise WorldStudioError(
            f"truck out and back: the point {p.tolist()} is not in view at the start pose"
        )
    x = m[:3, 0]

    def moved(d: float) -> np.ndarray:
        out = m.copy()
        out[:3, 3] = m[:3, 3] + d * x
        return out

    best: tuple[float, float] | None = None  # (exit distance, sign)
    ratio = max_distance / step
    if not ratio <= _MAX_SEARCH_STEPS:  # also inf
        raise WorldStudioError(
            f"truck out and back: {max_distance:g} units in steps of {step:g} are more than "
            f"{_MAX_SEARCH_STEPS} steps; raise the step"
        )
    n_steps = int(math.ceil(ratio))
    for sign in _directions(direction, "right", "left"):
        for j in range(1, n_steps + 1):
            d = min(j * step, max_distance)
            if not point_in_view(p, moved(sign * d), K, height, width, margin):
                if best is None or d < best[0]:
                    best = (d, sign)
                break
    if best is None:
        raise WorldStudioError(
            f"truck out and back: the point {p.tolist()} stays in view within "
            f"{max_distance} units sideways ({direction}); raise max_distance"
        )
    d_exit, sign = best
    d_turn = min(d_exit + max(float(beyond) * d_exit, step), max_distance)
    turn = moved(sign * d_turn)
    return _keyframes([m, turn, m.copy()], fov, [seconds / 2.0] * 3)


def turn_away_and_back(
    start_pose: np.ndarray,
    point: Vec3Like,
    fov: float,
    height: int,
    width: int,
    fps: int = 16,
    frames_away: int = 65,
    seconds_turn: float = 2.0,
    direction: str = "auto",
    beyond_degrees: float = 5.0,
    easing: str = "linear",
    margin: float = 0.0,
) -> list[Keyframe]:
    """Yaw on the spot until ``point`` is out of view (plus ``beyond_degrees``), hold that view
    for ``frames_away`` frames (e.g. one round), then turn back to the start pose.

    Keyframes: start, turned (a turn of more than 90 degrees gets intermediate keyframes),
    turned again ``frames_away / fps`` s later, start. The turns take ``seconds_turn`` rounded to
    whole frames, so every keyframe lands on a frame. ``direction``: 'left', 'right' or 'auto'
    (the smaller turn). Raises WorldStudioError if the point is not in view at the start or a
    yaw of up to 180 degrees cannot hide it (e.g. straight below a camera looking down).
    """
    m = as_pose(start_pose)
    p = _vec3(point, "the point to turn away from")
    fps = int(fps)
    frames_away = int(frames_away)
    if fps < 1 or frames_away < 1:
        raise WorldStudioError(
            f"fps and frames away must be at least 1, got {fps} and {frames_away}"
        )
    seconds_turn = _positive(seconds_turn, "turn seconds")
    K = intrinsics_from_fov(fov, height, width)
    if not point_in_view(p, m, K, height, width, margin):
        raise WorldStudioError(
            f"turn away and back: the point {p.tolist()} is not in view at the start pose"
        )
    step_deg = 0.25
    best: tuple[float, float] | None = None  # (exit angle, sign)
    for sign in _directions(direction, "left", "right"):
        for j in range(1, int(180.0 / step_deg) + 1):
            a = j * step_deg
            if not point_in_view(p, yaw_pose(m, sign * a), K, height, width, margin):
                if best is None or a < best[0]:
                    best = (a, sign)
                break
    if best is None:
        raise WorldStudioError(
            f"turn away and back: turning ({direction}) by up to 180 degrees does not take the "
            f"point {p.tolist()} out of view"
        )
    a_exit, sign = best
    angle = a_exit + max(float(beyond_degrees), 0.0)
    if not seconds_turn * fps <= MAX_FRAMES:  # also inf
        raise WorldStudioError(
            f"turn away and back: a turn of {seconds_turn:g} s is more than the {MAX_FRAMES} "
            "frames a path may have"
        )
    turn_frames = max(1, int(round(seconds_turn * fps)))
    nseg = _segments(angle / 90.0, f"a turn of {angle:g} degrees")
    # sub-keyframes of a long turn land on whole frames too: split the frames as evenly as we can
    cuts = [round(turn_frames * j / nseg) for j in range(nseg + 1)]
    if len(set(cuts)) != len(cuts):
        raise WorldStudioError(
            f"turn away and back: a {angle:.0f}-degree turn needs at least {nseg} frames; "
            "raise seconds_turn"
        )
    seg_frames = [b - a for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    out_poses = [yaw_pose(m, sign * angle * c / turn_frames) for c in cuts]
    turned = out_poses[-1]
    back_poses = [yaw_pose(m, sign * angle * c / turn_frames) for c in reversed(cuts)]
    poses = out_poses + [turned.copy()] + back_poses[1:]
    frames = seg_frames + [frames_away] + list(reversed(seg_frames))
    transitions = [f / fps for f in frames] + [seg_frames[0] / fps]
    return _keyframes(poses, fov, transitions, easing)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresetParam:
    """One option of a preset: ``kind`` is 'float', 'int', 'str' or 'vec3'."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    def convert(self, value: Any, preset: str) -> Any:
        """``value`` (possibly a CLI string such as '1,2,3') as this option's type."""
        where = f"preset {preset!r} option {self.name!r}"
        if value is None:
            return None
        try:
            if self.kind == "float":
                out: Any = float(value)
                if not math.isfinite(out):
                    raise ValueError
            elif self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                out = int(value)
            elif self.kind == "vec3":
                if isinstance(value, str):
                    parts = value.replace(",", " ").split()
                    out = [float(v) for v in parts]
                else:
                    out = [float(v) for v in value]
                if len(out) != 3 or not all(math.isfinite(v) for v in out):
                    raise ValueError
                out = tuple(out)
            else:
                out = str(value)
        except (TypeError, ValueError):
            raise WorldStudioError(
                f"{where}: expected {'x,y,z' if self.kind == 'vec3' else 'a ' + self.kind}, "
                f"got {str(value)[:40]!r}"
            ) from None
        if self.choices is not None and out not in self.choices:
            raise WorldStudioError(
                f"{where}: must be one of {', '.join(self.choices)}, got {out!r}"
            )
        return out


@dataclass(frozen=True)
class Preset:
    """A named preset with the uniform interface
    ``preset(start_c2w, fov, height, width, fps, **options) -> list[Keyframe]``."""

    name: str
    summary: str
    params: tuple[PresetParam, ...]
    build: Callable[..., list[Keyframe]]

    def param(self, name: str) -> PresetParam:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise WorldStudioError(f"preset {self.name!r} has no option {name!r} (options: {known})")

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, values converted (strings accepted), unknown names rejected."""
        out = {p.name: p.default for p in self.params}
        for name, value in options.items():
            out[name] = self.param(name).convert(value, self.name)
        return out

    def __call__(
        self,
        start_c2w: np.ndarray,
        fov: float,
        height: int,
        width: int,
        fps: int,
        **options: Any,
    ) -> list[Keyframe]:
        return self.build(
            as_pose(start_c2w),
            float(fov),
            int(height),
            int(width),
            int(fps),
            **self.resolve(options),
        )


def _point_ahead(m: np.ndarray, distance: float) -> np.ndarray:
    return m[:3, 3] + _positive(distance, "distance") * m[:3, 2]


def _build_orbit(m, fov, height, width, fps, target, distance, degrees, n_keyframes, seconds):
    t = _point_ahead(m, distance) if target is None else _vec3(target, "orbit target")
    off = m[:3, 3] - t
    h = float(np.dot(off, WORLD_UP))  # height above the target (up = -y)
    r = math.hypot(off[0], off[2])
    if r < 1e-9:
        raise WorldStudioError(
            "orbit: the camera is straight above or below the target; choose another target"
        )
    start = math.degrees(math.atan2(off[0], -off[2]))
    return orbit(t, r, h, start, degrees, n_keyframes, seconds, fov)


def _build_dolly(m, fov, height, width, fps, distance, seconds, easing):
    return dolly(m, distance, seconds, fov, easing)


def _build_pan(m, fov, height, width, fps, degrees, seconds, easing):
    return pan(m, degrees, seconds, fov, easing)


def _build_truck(
    m, fov, height, width, fps, point, depth, step, max_distance, seconds, direction, beyond
):
    p = _point_ahead(m, depth) if point is None else point
    return truck_out_and_back(
        m, p, fov, height, width, step, max_distance, seconds, direction, beyond
    )


def _build_turn(
    m,
    fov,
    height,
    width,
    fps,
    point,
    depth,
    frames_away,
    seconds_turn,
    direction,
    beyond_degrees,
    easing,
):
    p = _point_ahead(m, depth) if point is None else point
    return turn_away_and_back(
        m, p, fov, height, width, fps, frames_away, seconds_turn, direction, beyond_degrees, easing
    )


def _build_actions(m, fov, height, width, fps, text, step_length, turn_degrees, frames_per_step):
    if not text:
        raise WorldStudioError("preset 'actions' needs the option text, e.g. text='(FN)(FL)'")
    return actions_to_keyframes(text, m, fov, step_length, turn_degrees, frames_per_step, fps)


_EASING = PresetParam("easing", "str", "linear", "easing of the move", EASINGS)
_POINT = PresetParam(
    "point", "vec3", None, "world point to lose from view (default: `depth` ahead of the camera)"
)
_DEPTH = PresetParam("depth", "float", 2.0, "distance of the default point ahead of the camera")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "orbit",
            "circle a target, looking at it (starts at the current camera)",
            (
                PresetParam("target", "vec3", None, "point to orbit (default: `distance` ahead)"),
                PresetParam("distance", "float", 2.0, "distance of the default target ahead"),
                PresetParam(
                    "degrees",
                    "float",
                    360.0,
                    "angle to travel; > 0 counter-clockwise seen from above",
                ),
                PresetParam("n_keyframes", "int", 8, "keyframes per full turn (>= 3)"),
                PresetParam("seconds", "float", 8.0, "duration"),
            ),
            _build_orbit,
        ),
        Preset(
            "dolly",
            "move straight along the view direction",
            (
                PresetParam("distance", "float", 1.0, "world units; > 0 in, < 0 out"),
                PresetParam("seconds", "float", 2.0, "duration"),
                _EASING,
            ),
            _build_dolly,
        ),
        Preset(
            "pan",
            "turn on the spot about the world's up axis",
            (
                PresetParam("degrees", "float", 45.0, "> 0 pans left, < 0 right"),
                PresetParam("seconds", "float", 3.0, "duration"),
                _EASING,
            ),
            _build_pan,
        ),
        Preset(
            "truck_out_and_back",
            "move sideways until a point leaves the view, then come back",
            (
                _POINT,
                _DEPTH,
                PresetParam("step", "float", 0.05, "search step, world units"),
                PresetParam("max_distance", "float", 10.0, "give up beyond this distance"),
                PresetParam("seconds", "float", 4.0, "duration out and back"),
                PresetParam(
                    "direction", "str", "auto", "which way to move", ("auto", "left", "right")
                ),
                PresetParam(
                    "beyond",
                    "float",
                    0.25,
                    "extra distance past the exit, as a fraction of the exit distance",
                ),
            ),
            _build_truck,
        ),
        Preset(
            "turn_away_and_back",
            "turn until a point is out of view, hold, turn back",
            (
                _POINT,
                _DEPTH,
                PresetParam("frames_away", "int", 65, "frames to hold the point out of view"),
                PresetParam("seconds_turn", "float", 2.0, "duration of each turn"),
                PresetParam(
                    "direction", "str", "auto", "which way to turn", ("auto", "left", "right")
                ),
                PresetParam("beyond_degrees", "float", 5.0, "extra turn past the exit angle"),
                _EASING,
            ),
            _build_turn,
        ),
        Preset(
            "actions",
            "follow an action string such as (FN)(FN)(SL)",
            (
                PresetParam("text", "str", None, "the action string"),
                PresetParam("step_length", "float", 0.25, "world units per step"),
                PresetParam("turn_degrees", "float", 15.0, "degrees per turn step"),
                PresetParam("frames_per_step", "int", 8, "frames per step"),
            ),
            _build_actions,
        ),
    ]
}


def apply_preset(
    name: str,
    start_c2w: np.ndarray,
    fov: float,
    height: int,
    width: int,
    fps: int,
    **options: Any,
) -> CameraPath:
    """Run the preset ``name`` from the camera ``start_c2w`` and return a CameraPath with its
    keyframes and ``PathSettings(fps=fps)``. Options may be strings (CLI)."""
    preset = PRESETS.get(name)
    if preset is None:
        raise WorldStudioError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    if not (0 < int(fps) <= 240):
        raise WorldStudioError(f"fps must be between 1 and 240, got {fps}")
    try:
        kfs = preset(start_c2w, fov, height, width, fps, **options)
        path = CameraPath(keyframes=kfs, settings=PathSettings(fps=int(fps)))
    except ValidationError as exc:  # an option that makes an impossible keyframe
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "keyframe"
        raise WorldStudioError(
            f"preset {name!r}: the options give an invalid path ({where}: {first['msg']})"
        ) from None
    frame_count(path)  # a path too long to bake is refused here
    return path
