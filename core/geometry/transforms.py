"""Quaternions and SE(3) poses in the project's camera convention (docs/CONVENTIONS.md).

- Quaternions are (w, x, y, z) numpy float64 arrays; every function accepts batches (..., 4).
- Rotations are 3x3 matrices (batches (..., 3, 3)); a camera pose is a camera-to-world (c2w) 4x4
  float64 matrix whose rotation columns are the camera's x (right), y (down) and z (forward) axes
  in world coordinates and whose last column is the camera's position.
- The world's up is -y (``WORLD_UP``). A positive rotation about ``WORLD_UP`` is counter-clockwise
  seen from above, i.e. a turn to the LEFT.
- Angles: ``*_rad`` functions take radians; the pose-level helpers take degrees (like fov).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from worldstudio.core.errors import WorldStudioError

WORLD_UP = np.array([0.0, -1.0, 0.0])
"""The world's up direction (OpenCV axes: the floor is at positive y)."""

_EPS = 1e-12

ArrayLike = np.ndarray | Sequence[float]


# --------------------------------------------------------------------------------------------
# Plain float tuples, as the project model stores vectors, quaternions and matrices
# --------------------------------------------------------------------------------------------


def vec3_tuple(v: ArrayLike) -> tuple[float, float, float]:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    return float(a[0]), float(a[1]), float(a[2])


def quat_tuple(q: ArrayLike) -> tuple[float, float, float, float]:
    a = np.asarray(q, dtype=np.float64).reshape(4)
    return float(a[0]), float(a[1]), float(a[2]), float(a[3])


def mat3_tuple(
    m: np.ndarray,
) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]:
    a = np.asarray(m, dtype=np.float64).reshape(3, 3)
    return vec3_tuple(a[0]), vec3_tuple(a[1]), vec3_tuple(a[2])


# --------------------------------------------------------------------------------------------
# Quaternions
# --------------------------------------------------------------------------------------------


def quat_normalize(q: ArrayLike) -> np.ndarray:
    """Unit quaternion(s) (..., 4). Raises WorldStudioError for a zero quaternion."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise WorldStudioError(f"a quaternion needs 4 numbers (w, x, y, z), got shape {q.shape}")
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < _EPS) or not np.all(np.isfinite(n)):
        raise WorldStudioError("a quaternion (w, x, y, z) must be finite and not zero")
    return q / n


def quat_multiply(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Hamilton product a * b (rotation b first, then a), batched (..., 4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conjugate(q: ArrayLike) -> np.ndarray:
    """(w, -x, -y, -z): the inverse of a unit quaternion."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_to_matrix(q: ArrayLike) -> np.ndarray:
    """Rotation matrix (..., 3, 3) of quaternion(s) (..., 4) (normalised first).

    q and -q give bit-identical matrices.
    """
    q = quat_normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.stack(
        [
            1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy),
            2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx),
            2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy),
        ],
        axis=-1,
    )  # fmt: skip
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R: ArrayLike) -> np.ndarray:
    """Quaternion(s) (..., 4) with w >= 0 of rotation matrix/matrices (..., 3, 3).

    Shepperd's method: the largest of (w, x, y, z) is computed from the diagonal and the others
    from off-diagonal sums/differences, so the result is accurate for every rotation (also near
    180 degrees). A slightly non-orthonormal matrix gives the quaternion of a nearby rotation.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise WorldStudioError(f"a rotation matrix must be 3x3, got shape {R.shape}")
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    tr = r00 + r11 + r22
    choice = np.argmax(np.stack([tr, r00, r11, r22], axis=-1), axis=-1)

    with np.errstate(divide="ignore", invalid="ignore"):
        # case 0: w largest
        s0 = 2.0 * np.sqrt(np.maximum(1.0 + tr, 0.0))
        q0 = np.stack([0.25 * s0, (r21 - r12) / s0, (r02 - r20) / s0, (r10 - r01) / s0], -1)
        # case 1: x largest
        s1 = 2.0 * np.sqrt(np.maximum(1.0 + r00 - r11 - r22, 0.0))
        q1 = np.stack([(r21 - r12) / s1, 0.25 * s1, (r01 + r10) / s1, (r02 + r20) / s1], -1)
        # case 2: y largest
        s2 = 2.0 * np.sqrt(np.maximum(1.0 - r00 + r11 - r22, 0.0))
        q2 = np.stack([(r02 - r20) / s2, (r01 + r10) / s2, 0.25 * s2, (r12 + r21) / s2], -1)
        # case 3: z largest
        s3 = 2.0 * np.sqrt(np.maximum(1.0 - r00 - r11 + r22, 0.0))
        q3 = np.stack([(r10 - r01) / s3, (r02 + r20) / s3, (r12 + r21) / s3, 0.25 * s3], -1)

    c = choice[..., None]
    q = np.where(c == 0, q0, np.where(c == 1, q1, np.where(c == 2, q2, q3)))
    if not np.all(np.isfinite(q)):
        raise WorldStudioError("the rotation matrix has non-finite entries")
    q = quat_normalize(q)
    return np.where(q[..., :1] < 0.0, -q, q)


def quat_from_axis_angle(axis: ArrayLike, angle_rad: float) -> np.ndarray:
    """Unit quaternion of a right-handed rotation by ``angle_rad`` radians about ``axis``."""
    vector = np.asarray(axis, dtype=np.float64)
    n = np.linalg.norm(vector)
    if n < _EPS or not np.isfinite(n):
        raise WorldStudioError(
            f"a rotation axis must be a finite non-zero vector, got {vector.tolist()}"
        )
    half = 0.5 * float(angle_rad)
    return np.concatenate([[math.cos(half)], math.sin(half) * vector / n])


def quat_to_axis_angle(q: ArrayLike) -> tuple[np.ndarray, float]:
    """(unit axis, angle in radians in [0, pi]) of a single quaternion."""
    q = quat_normalize(q)
    if q[0] < 0:
        q = -q
    s = float(np.linalg.norm(q[1:]))
    angle = 2.0 * math.atan2(s, float(q[0]))
    if s < _EPS:
        return np.array([1.0, 0.0, 0.0]), 0.0
    return q[1:] / s, angle


def quat_angle(a: ArrayLike, b: ArrayLike) -> np.ndarray | float:
    """Angle in radians (in [0, pi]) of the rotation taking a to b; sign-agnostic, batched."""
    a = quat_normalize(a)
    b = quat_normalize(b)
    d = np.abs(np.sum(a * b, axis=-1))
    # 2*atan2(|a x b|-ish) is more accurate near 0 than arccos: use the relative quaternion.
    rel = quat_multiply(quat_conjugate(a), b)
    s = np.linalg.norm(rel[..., 1:], axis=-1)
    out = 2.0 * np.arctan2(s, d)
    return float(out) if np.ndim(out) == 0 else out


def rotation_angle(R0: ArrayLike, R1: ArrayLike) -> np.ndarray | float:
    """Angle in radians of the rotation taking R0 to R1 (3x3 or batches)."""
    R0 = np.asarray(R0, dtype=np.float64)
    R1 = np.asarray(R1, dtype=np.float64)
    rel = np.swapaxes(R0, -1, -2) @ R1
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    # arccos is inaccurate near 0; combine with the skew part's norm.
    skew = np.stack(
        [
            rel[..., 2, 1] - rel[..., 1, 2],
            rel[..., 0, 2] - rel[..., 2, 0],
            rel[..., 1, 0] - rel[..., 0, 1],
        ],
        axis=-1,
    )
    sin = np.linalg.norm(skew, axis=-1) / 2.0
    out = np.arctan2(sin, cos)
    return float(out) if np.ndim(out) == 0 else out


def slerp(q0: ArrayLike, q1: ArrayLike, t: float | ArrayLike) -> np.ndarray:
    """Spherical linear interpolation along the shortest arc.

    q0, q1: (..., 4); t: scalar or array broadcast against their batch shape. t=0 gives exactly
    q0 and t=1 gives exactly q1 (or -q1 when the shortest arc needs the sign flipped: the same
    rotation). Nearly equal quaternions fall back to a normalised lerp.
    """
    q0 = quat_normalize(q0)
    q1 = quat_normalize(q1)
    t = np.asarray(t, dtype=np.float64)
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where((dot < 0.0)[..., None], -q1, q1)
    dot = np.abs(dot)
    tt = t[..., None]
    theta = np.arccos(np.clip(dot, -1.0, 1.0))[..., None]
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-9
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - tt, np.sin((1.0 - tt) * theta) / safe)
    w1 = np.where(small, tt, np.sin(tt * theta) / safe)
    out = w0 * q0 + w1 * q1
    out = out / np.linalg.norm(out, axis=-1, keepdims=True)
    shape = out.shape
    out = np.where(tt == 0.0, np.broadcast_to(q0, shape), out)
    out = np.where(tt == 1.0, np.broadcast_to(q1, shape), out)
    return out


def make_sign_continuous(quats: ArrayLike) -> np.ndarray:
    """Copy of quaternions (N, 4) with signs flipped so each one's dot with the previous is >= 0.

    q and -q are the same rotation; interpolating between sign-continuous quaternions never takes
    the long way round (no flip over a full orbit).
    """
    q = np.array(quats, dtype=np.float64, copy=True)
    if q.ndim != 2 or q.shape[1] != 4:
        raise WorldStudioError(f"expected quaternions of shape (N, 4), got {q.shape}")
    for i in range(1, len(q)):
        if float(np.dot(q[i - 1], q[i])) < 0.0:
            q[i] = -q[i]
    return q


# --------------------------------------------------------------------------------------------
# Rotations about axes
# --------------------------------------------------------------------------------------------


def rotation_about_axis(axis: ArrayLike, degrees: float) -> np.ndarray:
    """3x3 right-handed rotation by ``degrees`` about ``axis`` (through the origin).

    ``rotation_about_axis(WORLD_UP, +a)`` turns to the left (counter-clockwise seen from above).
    """
    return quat_to_matrix(quat_from_axis_angle(axis, math.radians(degrees)))


def rotate_about_axis(
    c2w: ArrayLike, axis: ArrayLike, degrees: float, pivot: ArrayLike | None = None
) -> np.ndarray:
    """The pose ``c2w`` rotated by ``degrees`` about the world-space ``axis`` through ``pivot``.

    ``pivot`` defaults to the camera's own position (the camera turns on the spot).
    ``rotate_about_axis(c2w, WORLD_UP, +a)`` yaws the camera left; with ``pivot`` set to a target
    it orbits the camera counter-clockwise (seen from above) around the target.
    """
    c2w = as_pose(c2w)
    Rm = rotation_about_axis(axis, degrees)
    p = c2w[:3, 3] if pivot is None else np.asarray(pivot, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = Rm @ c2w[:3, :3]
    out[:3, 3] = Rm @ (c2w[:3, 3] - p) + p
    return out


def yaw_pose(c2w: ArrayLike, degrees: float) -> np.ndarray:
    """The camera turned on the spot about the world's up axis; positive = to the left."""
    return rotate_about_axis(c2w, WORLD_UP, degrees)


# --------------------------------------------------------------------------------------------
# Yaw, pitch and roll (the inspector's angles)
# --------------------------------------------------------------------------------------------
# Degrees, in the project's axes: c2w rotation = R_up(yaw) @ R_x(pitch) @ R_z(roll). Positive yaw
# turns left, positive pitch looks up, positive roll turns the image clockwise.


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def quat_to_ypr(quat: ArrayLike) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of an orientation quaternion (see above)."""
    R = quat_to_matrix(np.asarray(quat, dtype=np.float64))
    pitch = math.asin(max(-1.0, min(1.0, -R[1, 2])))
    a = math.atan2(R[0, 2], R[2, 2])
    roll = math.atan2(R[1, 0], R[1, 1])
    return -math.degrees(a), math.degrees(pitch), math.degrees(roll)


def ypr_to_quat(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    """The orientation quaternion (w, x, y, z) of (yaw, pitch, roll) in degrees (see above)."""
    R = _rot_y(-math.radians(yaw)) @ _rot_x(math.radians(pitch)) @ _rot_z(math.radians(roll))
    q = matrix_to_quat(R)
    return tuple(float(v) for v in q)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# SE(3)
# --------------------------------------------------------------------------------------------


def as_pose(c2w: ArrayLike) -> np.ndarray:
    """``c2w`` as a float64 (4, 4) array; WorldStudioError for another shape."""
    m = np.asarray(c2w, dtype=np.float64)
    if m.shape != (4, 4):
        raise WorldStudioError(f"a camera pose must be a 4x4 matrix, got shape {m.shape}")
    return m


def orthonormalize_pose(c2w: ArrayLike) -> np.ndarray:
    """``c2w`` with its rotation block projected back onto SO(3) (repeated small rotations
    drift) and its last row (0, 0, 0, 1)."""
    out = np.array(c2w, dtype=np.float64)
    U, _, Vt = np.linalg.svd(out[:3, :3])
    R = U @ Vt
    if np.linalg.det(R) < 0:  # the nearest rotation of a reflection
        U[:, -1] *= -1
        R = U @ Vt
    out[:3, :3] = R
    out[3] = (0.0, 0.0, 0.0, 1.0)
    return out


def pose_matrix(position: ArrayLike, quat: ArrayLike) -> np.ndarray:
    """c2w 4x4 float64 from a camera position (3,) and a (w, x, y, z) orientation quaternion."""
    p = np.asarray(position, dtype=np.float64)
    if p.shape != (3,):
        raise WorldStudioError(f"a position needs 3 numbers, got shape {p.shape}")
    out = np.eye(4)
    out[:3, :3] = quat_to_matrix(quat)
    out[:3, 3] = p
    return out


def pose_from_matrix(c2w: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), quaternion (4,) with w >= 0) of a c2w 4x4 matrix.

    Raises WorldStudioError when the matrix is not a finite rigid transform (a reflection or a
    degenerate rotation block); a slightly non-orthonormal rotation block is projected onto the
    nearest rotation first.
    """
    m = as_pose(c2w)
    if not np.all(np.isfinite(m)):
        raise WorldStudioError("the camera pose matrix has non-finite entries")
    R = m[:3, :3]
    det = float(np.linalg.det(R))
    if det <= 1e-6:
        raise WorldStudioError(
            f"the camera pose's 3x3 block is not a rotation (determinant {det:.4g})"
        )
    if np.max(np.abs(R.T @ R - np.eye(3))) > 1e-9:
        U, _, Vt = np.linalg.svd(R)
        R = U @ Vt
    return m[:3, 3].copy(), matrix_to_quat(R)


def invert_pose(c2w: ArrayLike) -> np.ndarray:
    """Inverse of a rigid transform (c2w -> w2c and back); batched (..., 4, 4)."""
    m = np.asarray(c2w, dtype=np.float64)
    R = m[..., :3, :3]
    t = m[..., :3, 3]
    Rt = np.swapaxes(R, -1, -2)
    out = np.zeros_like(m)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def look_at_rotation(forward: ArrayLike, up: ArrayLike = WORLD_UP) -> np.ndarray:
    """3x3 c2w rotation whose camera +z is ``forward`` and camera -y leans toward ``up``.

    If ``forward`` is parallel to ``up`` (looking straight up or down) the roll is undefined; the
    camera's x axis is then the world axis most perpendicular to ``forward`` (made orthogonal), a
    deterministic fallback.
    """
    z = np.asarray(forward, dtype=np.float64)
    n = np.linalg.norm(z)
    if n < _EPS or not np.isfinite(n):
        raise WorldStudioError("look-at: the view direction is zero (the eye is at the target)")
    z = z / n
    down = -np.asarray(up, dtype=np.float64)
    nu = np.linalg.norm(down)
    if nu < _EPS:
        raise WorldStudioError("look-at: the up vector must not be zero")
    down = down / nu
    x = np.cross(down, z)
    nx = np.linalg.norm(x)
    if nx < 1e-9:
        ref = np.eye(3)[int(np.argmin(np.abs(z)))]
        x = ref - np.dot(ref, z) * z
        nx = np.linalg.norm(x)
    x = x / nx
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def look_at(eye: ArrayLike, target: ArrayLike, up: ArrayLike = (0.0, -1.0, 0.0)) -> np.ndarray:
    """c2w 4x4 of a camera at ``eye`` looking at ``target`` (camera +z toward the target, camera
    -y roughly along ``up``, no roll). Raises WorldStudioError when eye == target; see
    ``look_at_rotation`` for the straight-up/down fallback."""
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if eye.shape != (3,) or target.shape != (3,):
        raise WorldStudioError("look-at: eye and target need 3 numbers each")
    if np.linalg.norm(target - eye) < 1e-12:
        raise WorldStudioError(
            f"look-at: the camera position {eye.tolist()} is the look-at target itself"
        )
    out = np.eye(4)
    out[:3, :3] = look_at_rotation(target - eye, up)
    out[:3, 3] = eye
    return out


_GL_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def opencv_to_opengl(c2w: ArrayLike) -> np.ndarray:
    """c2w with OpenCV camera axes (x right, y down, z forward) -> OpenGL/nerfstudio camera axes
    (x right, y up, z back): flips the camera's y and z axes, ``c2w @ diag(1, -1, -1, 1)``.
    Batched (..., 4, 4)."""
    return np.asarray(c2w, dtype=np.float64) @ _GL_FLIP


def opengl_to_opencv(c2w: ArrayLike) -> np.ndarray:
    """Inverse of ``opencv_to_opengl`` (the same flip; it is its own inverse)."""
    return np.asarray(c2w, dtype=np.float64) @ _GL_FLIP


def horizontal_frame(c2w: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(forward, right) unit vectors of the camera's heading on the ground plane.

    forward is the camera's +z with its vertical component removed; when the camera looks
    straight up or down, the camera's -y (up in the image) resp. +y is used instead. right =
    down x forward, so (right, down, forward) is right-handed like the camera's axes.
    """
    m = as_pose(c2w)
    down = -WORLD_UP
    z = m[:3, 2]
    f = z - np.dot(z, down) * down
    if np.linalg.norm(f) < 1e-6:
        y = m[:3, 1]
        # looking down (z along +y): the image's up (-y) points ahead; looking up: +y does.
        cand = -y if np.dot(z, down) > 0 else y
        f = cand - np.dot(cand, down) * down
    f = f / np.linalg.norm(f)
    r = np.cross(down, f)
    return f, r / np.linalg.norm(r)
