"""Camera paths: editable keyframes -> one pose per output frame ("baking"), and back.

Timing
    Keyframe k sits at t_k = transition_0 + ... + transition_{k-1} seconds (a keyframe's
    ``transition`` is the time from it to the next keyframe). An open path lasts
    T = sum of the transitions of all keyframes but the last, and has round(T * fps) + 1 frames
    at t = i / fps (the first and last keyframe included). A loop also travels from the last
    keyframe back to the first (T includes the last keyframe's transition) and has round(T * fps)
    frames: the final frame, a duplicate of the first, is not emitted.

Positions
    A Kochanek-Bartels (cubic Hermite) spline; ``tension`` 0 is Catmull-Rom. Tangents are
    velocities in world units per second, v_k = (1 - tension) (p_{k+1} - p_{k-1}) /
    (d_{k-1} + d_k) with d the segment durations (Kochanek & Bartels' correction for unequal
    segment lengths), and each segment's Hermite tangents are v * d_segment, so the speed is
    continuous across keyframes with different transitions. An open path's end velocities are
    those of the parabola through its first (last) three keyframes, which keeps an orbit's ends
    round and a there-and-back path monotonic; loops wrap around; a two-keyframe open path is a
    straight line at constant speed.

Easing
    The segment's easing (the easing of the keyframe that starts it) maps its local parameter
    u in [0, 1] before positions, rotations and fov are interpolated: ease_in u^2,
    ease_out 1 - (1 - u)^2, ease_in_out 3u^2 - 2u^3.

Rotations
    Slerp between sign-continuous keyframe quaternions (no flip over a full orbit; two
    consecutive keyframes must differ by less than 180 degrees). With ``settings.look_at``, every
    baked pose is turned to face that point instead (keyframe orientations are then ignored).

Baked poses hit the keyframes exactly wherever a keyframe time lands on a frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import get_args

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.transforms import (
    look_at_rotation,
    make_sign_continuous,
    matrix_to_quat,
    pose_from_matrix,
    quat_normalize,
    quat_to_matrix,
    quat_tuple,
    rotation_angle,
    slerp,
    vec3_tuple,
)
from worldstudio.core.project.model import CameraPath, Easing, Keyframe

_SNAP = 1e-9  # frames: a keyframe time this close to a frame lands on it
_MAX_DROP_PASSES = 4  # fit_keyframes: rounds of dropping keyframes (2 almost always suffice)
MAX_FRAMES = 500_000
"""The most frames a path bakes to (8.7 hours at 16 fps; the poses alone take 64 MB)."""

EASINGS: tuple[Easing, ...] = get_args(Easing)


def check_easing(easing: str) -> Easing:
    """``easing`` as one of :data:`EASINGS`; anything else is an error naming them."""
    for name in EASINGS:
        if easing == name:
            return name
    raise WorldStudioError(f"unknown easing {easing!r}; use one of {', '.join(EASINGS)}")


def ease(easing: str, u: np.ndarray | float) -> np.ndarray:
    """Apply an easing curve to u in [0, 1]; every curve maps 0 -> 0 and 1 -> 1 exactly."""
    u = np.asarray(u, dtype=np.float64)
    if easing == "linear":
        return u
    if easing == "ease_in":
        return u * u
    if easing == "ease_out":
        return 1.0 - (1.0 - u) * (1.0 - u)
    if easing == "ease_in_out":
        return u * u * (3.0 - 2.0 * u)
    raise WorldStudioError(f"unknown easing {easing!r}; use one of {', '.join(EASINGS)}")


@dataclass
class BakedPath:
    """One camera per output frame.

    c2w: (N, 4, 4) float64 poses; fov: (N,) vertical fov in degrees; times: (N,) seconds (i / fps);
    keyframe_frames: the frame index of each keyframe (round(t_k * fps)); after a cut to fewer
    frames it may be >= N for keyframes past the end.
    """

    c2w: np.ndarray
    fov: np.ndarray
    times: np.ndarray
    keyframe_frames: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) camera positions."""
        return self.c2w[:, :3, 3]

    @property
    def quaternions(self) -> np.ndarray:
        """(N, 4) sign-continuous (w, x, y, z) orientations."""
        return make_sign_continuous(matrix_to_quat(self.c2w[:, :3, :3]))


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _require_keyframes(path: CameraPath) -> None:
    if not path.keyframes:
        raise WorldStudioError("the camera path has no keyframes")


def keyframe_times(path: CameraPath) -> list[float]:
    """Seconds at which each keyframe is reached (the first at 0)."""
    _require_keyframes(path)
    out = [0.0]
    for kf in path.keyframes[:-1]:
        out.append(out[-1] + float(kf.transition))
    return out


def path_duration(path: CameraPath) -> float:
    """Seconds from the first frame to the end: the transitions of all keyframes but the last
    (for a loop, including the last keyframe's transition back to the first); 0 for a single
    keyframe."""
    _require_keyframes(path)
    kfs = path.keyframes
    if len(kfs) == 1:
        return 0.0
    used = kfs if path.settings.loop else kfs[:-1]
    return float(sum(float(k.transition) for k in used))


def frame_count(path: CameraPath) -> int:
    """Number of frames ``bake_path(path)`` produces (without ``n_frames``)."""
    _require_keyframes(path)
    return _frame_count(
        path_duration(path), path.settings.fps, path.settings.loop, len(path.keyframes)
    )


def _frame_count(T: float, fps: int, loop: bool, n_keyframes: int) -> int:
    if n_keyframes == 1:
        return 1
    n = max(1, int(round(T * fps))) if loop else int(round(T * fps)) + 1
    if n > MAX_FRAMES:
        raise WorldStudioError(
            f"the camera path lasts {T:.0f} s, {n} frames at {fps} fps: more than the "
            f"{MAX_FRAMES} frames the studio bakes; shorten it or lower its fps"
        )
    return n


# --------------------------------------------------------------------------------------------
# Baking
# --------------------------------------------------------------------------------------------


def _velocities(P: np.ndarray, D: np.ndarray, tension: float, loop: bool) -> np.ndarray:
    """Kochanek-Bartels velocities (K, 3) in units per second (see the module docstring)."""
    K = len(P)
    scale = 1.0 - float(tension)
    if K == 1:
        return np.zeros_like(P)
    if loop:
        prev = np.roll(P, 1, axis=0)
        nxt = np.roll(P, -1, axis=0)
        dprev = np.roll(D, 1)
        return scale * (nxt - prev) / (dprev + D)[:, None]
    if K == 2:
        v = (P[1] - P[0]) / D[0]
        return scale * np.stack([v, v])
    W = np.zeros_like(P)
    W[1:-1] = (P[2:] - P[:-2]) / (D[:-2] + D[1:-1])[:, None]
    # ends: the velocity of the parabola through the first (last) three keyframes at its end
    W[0] = _parabola_end_velocity(P[0], P[1], P[2], D[0], D[1])
    W[-1] = -_parabola_end_velocity(P[-1], P[-2], P[-3], D[-2], D[-3])
    return scale * W


def _parabola_end_velocity(
    p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, d0: float, d1: float
) -> np.ndarray:
    """d/dt at t=0 of the quadratic through (0, p0), (d0, p1), (d0 + d1, p2)."""
    a = (p1 - p0) / d0
    s1 = (p2 - p1) / d1
    w = d0 / (d0 + d1)
    return (1.0 + w) * a - w * s1


def _bake_arrays(
    P: np.ndarray,
    Q: np.ndarray,
    F: np.ndarray,
    D: np.ndarray,
    easings: Sequence[str],
    fps: int,
    tension: float = 0.0,
    loop: bool = False,
    target: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Core of ``bake_path`` on plain arrays: positions (K, 3), quaternions (K, 4), fovs (K,),
    transitions (K,) seconds, easings (K,). Returns (c2w, fov, times, keyframe_frames)."""
    K = len(P)
    Q = make_sign_continuous(quat_normalize(Q))
    if K == 1:
        c2w = np.eye(4)[None].copy()
        c2w[0, :3, :3] = quat_to_matrix(Q[0])
        c2w[0, :3, 3] = P[0]
        fov = np.array([float(F[0])])
        if target is not None:
            c2w[0, :3, :3] = _look_at_checked(P[0], target, 0)
        return c2w, fov, np.zeros(1), [0]

    nseg = K if loop else K - 1
    seg_d = D[:nseg]
    bounds_s = np.concatenate([[0.0], np.cumsum(seg_d)])  # seconds, nseg + 1 entries
    bounds = bounds_s * fps  # in frames
    n = _frame_count(float(bounds_s[-1]), fps, loop, K)
    keyframe_frames = [int(round(b)) for b in bounds[:K]]

    i = np.arange(n, dtype=np.float64)
    k = np.searchsorted(bounds, i + _SNAP, side="right") - 1
    k = np.clip(k, 0, nseg - 1)
    u = (i - bounds[k]) / (bounds[k + 1] - bounds[k])
    u = np.clip(u, 0.0, 1.0)
    u = np.where(u < _SNAP, 0.0, np.where(u > 1.0 - _SNAP, 1.0, u))

    easing_codes: dict[str, int] = {name: j for j, name in enumerate(EASINGS)}
    codes = np.array([easing_codes[e] for e in easings])[k]
    e = u.copy()
    for name, j in easing_codes.items():
        sel = codes == j
        if np.any(sel):
            e[sel] = ease(name, u[sel])

    a = k
    b = (k + 1) % K
    V = _velocities(P, D, tension, loop)
    d = seg_d[k][:, None]
    e2 = e * e
    e3 = e2 * e
    h00 = (2.0 * e3 - 3.0 * e2 + 1.0)[:, None]
    h10 = (e3 - 2.0 * e2 + e)[:, None]
    h01 = (-2.0 * e3 + 3.0 * e2)[:, None]
    h11 = (e3 - e2)[:, None]
    pos = h00 * P[a] + h10 * (V[a] * d) + h01 * P[b] + h11 * (V[b] * d)

    if target is None:
        R = quat_to_matrix(slerp(Q[a], Q[b], e))
    else:
        R = np.stack([_look_at_checked(pos[j], target, j) for j in range(n)])
    fov = (1.0 - e) * F[a] + e * F[b]

    c2w = np.zeros((n, 4, 4))
    c2w[:, :3, :3] = R
    c2w[:, :3, 3] = pos
    c2w[:, 3, 3] = 1.0
    if not (np.all(np.isfinite(c2w)) and np.all(np.isfinite(fov))):
        raise WorldStudioError(
            "the camera path's coordinates are too large to interpolate (the spline leaves the "
            "range of numbers); move its keyframes closer to the scene"
        )
    return c2w, fov, i / fps, keyframe_frames


def _look_at_checked(position: np.ndarray, target: np.ndarray, frame: int) -> np.ndarray:
    v = target - position
    if np.linalg.norm(v) < 1e-12:
        raise WorldStudioError(
            f"the camera path reaches its look-at point {target.tolist()} at frame {frame}; "
            "move the look-at point off the path"
        )
    return look_at_rotation(v)


def bake_path(path: CameraPath, n_frames: int | None = None) -> BakedPath:
    """One pose per frame for ``path`` (timing, spline, easing: see the module docstring).

    With ``n_frames``, the path is sampled at its own timing and then held on its last pose (or
    cut) to exactly ``n_frames`` frames; times keep advancing at 1 / fps.
    """
    _require_keyframes(path)
    s = path.settings
    kfs = path.keyframes
    P = np.array([k.position for k in kfs], dtype=np.float64)
    Q = np.array([k.orientation for k in kfs], dtype=np.float64)
    F = np.array([k.fov for k in kfs], dtype=np.float64)
    D = np.array([k.transition for k in kfs], dtype=np.float64)
    target = None if s.look_at is None else np.asarray(s.look_at, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # huge coordinates: checked in there
        c2w, fov, times, kf_frames = _bake_arrays(
            P, Q, F, D, [k.easing for k in kfs], s.fps, s.tension, s.loop, target
        )
    if n_frames is not None:
        n_frames = int(n_frames)
        if n_frames < 1:
            raise WorldStudioError(f"the number of frames must be at least 1, got {n_frames}")
        have = len(c2w)
        if n_frames <= have:
            c2w, fov = c2w[:n_frames], fov[:n_frames]
        else:
            extra = n_frames - have
            c2w = np.concatenate([c2w, np.repeat(c2w[-1:], extra, axis=0)])
            fov = np.concatenate([fov, np.repeat(fov[-1:], extra)])
        times = np.arange(n_frames, dtype=np.float64) / s.fps
    return BakedPath(c2w=c2w, fov=fov, times=times, keyframe_frames=kf_frames)


# --------------------------------------------------------------------------------------------
# Keyframes from poses
# --------------------------------------------------------------------------------------------


def keyframe_from_pose(
    c2w: np.ndarray, fov: float = 60.0, transition: float = 1.0, easing: str = "linear"
) -> Keyframe:
    """A Keyframe (new id) at the pose ``c2w``."""
    p, q = pose_from_matrix(c2w)
    return Keyframe(
        position=vec3_tuple(p),
        orientation=quat_tuple(q),
        fov=float(fov),
        transition=float(transition),
        easing=check_easing(easing),
    )


def keyframe_pose(kf: Keyframe) -> np.ndarray:
    """The c2w 4x4 of a keyframe."""
    out = np.eye(4)
    out[:3, :3] = quat_to_matrix(np.asarray(kf.orientation, dtype=np.float64))
    out[:3, 3] = kf.position
    return out


def fit_keyframes(
    c2w: np.ndarray,
    fov: np.ndarray | float,
    fps: int,
    tolerance_pos: float = 0.01,
    tolerance_deg: float = 0.5,
    tension: float = 0.0,
    max_keyframes: int | None = None,
) -> list[Keyframe]:
    """Few keyframes whose baked path reproduces every input frame (greedy simplification).

    Keeps the first and last frame, then repeatedly adds the frame with the largest error (or,
    in a second run, the middle of the segment holding it, which finds evenly spaced keyframes)
    until the path baked with ``PathSettings(fps=fps, tension=tension, loop=False)`` (linear easing)
    is within ``tolerance_pos`` world units of every input position and within
    ``tolerance_deg`` degrees of every input orientation and fov, then drops every keyframe the
    path can do without; the run with fewer keyframes wins. Keyframes land on input frames,
    so the bake has exactly N frames. The last keyframe's transition repeats the one before it
    (it only matters if the path is later made a loop).

    Each added keyframe costs one bake of the N frames; with ``max_keyframes`` a fit that needs
    more keyframes stops early with a WorldStudioError, which bounds the time spent on poses
    that are no spline (noise, float32 rounding) to a few dozen bakes.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) == 0:
        raise WorldStudioError(f"poses must have shape (N, 4, 4) with N >= 1, got {c2w.shape}")
    N = len(c2w)
    F = np.broadcast_to(np.asarray(fov, dtype=np.float64), (N,)).copy()
    fps = int(fps)
    if not (0 < fps <= 240):
        raise WorldStudioError(f"fps must be between 1 and 240, got {fps}")
    if not (-1.0 <= tension <= 1.0):
        raise WorldStudioError(f"tension must be between -1 and 1, got {tension}")
    if not (np.all(F > 0.0) and np.all(F < 180.0)):
        raise WorldStudioError("every fov must be between 0 and 180 degrees")
    if not (tolerance_pos > 0 and tolerance_deg > 0):
        raise WorldStudioError("fit tolerances must be positive")

    P = c2w[:, :3, 3].copy()
    Q = np.stack([pose_from_matrix(m)[1] for m in c2w])
    Q = make_sign_continuous(Q)
    r_in = quat_to_matrix(Q)

    def errors(selected: list[int]) -> np.ndarray:
        idx = np.array(selected)
        D = np.diff(idx) / fps
        D = np.concatenate([D, D[-1:]])
        bc2w, bfov, _, _ = _bake_arrays(
            P[idx], Q[idx], F[idx], D, ["linear"] * len(idx), fps, tension, False
        )
        err_pos = np.linalg.norm(bc2w[:, :3, 3] - P, axis=1) / tolerance_pos
        err_rot = np.degrees(rotation_angle(bc2w[:, :3, :3], r_in)) / tolerance_deg
        err_fov = np.abs(bfov - F) / tolerance_deg
        err = np.maximum(np.maximum(err_pos, err_rot), err_fov)
        err[idx] = 0.0
        return err

    max_gap = max(1, int(math.floor(3600.0 * fps)))  # a Keyframe's transition is <= 3600 s
    required = set(range(0, N - 1, max_gap)) | {0, N - 1}

    def refine(midpoints: bool) -> list[int]:
        # add a frame where the error is largest (that frame, or the middle of its segment)
        # until every frame is within tolerance; then drop keyframes the path does not need
        selected = sorted(required)
        while len(selected) > 1:
            err = errors(selected)
            worst = int(np.argmax(err))
            if err[worst] <= 1.0:
                break
            if midpoints:
                j = int(np.searchsorted(selected, worst))
                worst = (selected[j - 1] + selected[j]) // 2
            selected = sorted(set(selected) | {worst})
            if max_keyframes is not None and len(selected) > max_keyframes:
                raise WorldStudioError(
                    f"the poses need more than {max_keyframes} keyframes to be reproduced"
                )
        changed = len(selected) > 2
        passes = 0
        while changed and passes < _MAX_DROP_PASSES:
            passes += 1
            changed = False
            for f in list(selected):
                if f in required:
                    continue
                trial = [g for g in selected if g != f]
                if float(np.max(errors(trial))) <= 1.0:
                    selected = trial
                    changed = True
        return selected

    selected = min(refine(False), refine(True), key=len)

    out: list[Keyframe] = []
    for j, f in enumerate(selected):
        nxt = selected[j + 1] if j + 1 < len(selected) else None
        if nxt is not None:
            trans = (nxt - f) / fps
        elif len(selected) > 1:
            trans = (selected[-1] - selected[-2]) / fps
        else:
            trans = 1.0
        out.append(
            Keyframe(
                position=vec3_tuple(P[f]),
                orientation=quat_tuple(Q[f]),
                fov=float(F[f]),
                transition=float(trans),
            )
        )
    return out
