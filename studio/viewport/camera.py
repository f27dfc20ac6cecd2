"""The viewport's camera: a vispy camera driven by an OpenCV camera-to-world pose.

The project's convention (docs/CONVENTIONS.md) is OpenCV camera axes (x right, y down, z forward),
c2w 4x4 poses and a vertical fov in degrees. vispy, like OpenGL, looks down the camera's -z with
+y up. This module is the ONE place where the two meet: :class:`PoseCamera` stores the pose in the
project's convention and hands vispy ``c2w @ diag(1, -1, -1, 1)`` (transposed, because vispy's
matrices act on row vectors), so what you see is exactly what a keyframe with the same pose and fov
would see: :meth:`PoseCamera.project` (the pinhole model of core.geometry.camera) and vispy's own
scene transform agree to the pixel (tested).

Navigation happens here too, as plain pose arithmetic: orbit (turntable about the world's up, -y,
through the orbit target), pan, dolly, and the fly camera's translate and look.
"""

from __future__ import annotations

import math

import numpy as np
from vispy.scene.cameras.perspective import PerspectiveCamera

from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    opencv_to_opengl,
    orthonormalize_pose,
    rotate_about_axis,
)

MIN_FOV, MAX_FOV = 1.0, 170.0
# Keep the view direction at least this many degrees away from straight up / straight down while
# orbiting or looking around, so the turntable never flips over the pole.
_POLE_MARGIN_DEG = 2.0


def vispy_camera_matrix(c2w: np.ndarray) -> np.ndarray:
    """The vispy camera node's transform matrix (row-vector convention) for an OpenCV c2w."""
    return opencv_to_opengl(np.asarray(c2w, dtype=np.float64)).T


class PoseCamera(PerspectiveCamera):
    """A perspective camera whose state is an OpenCV c2w pose, a vertical fov and an orbit distance.

    It takes no mouse or key input itself: the :class:`~studio.viewport.Viewport` routes events
    (so picking, dragging and navigation share one place) and calls the navigation methods here.
    """

    _state_props = ("fov",)

    def __init__(self, fov: float = 60.0, near: float = 0.01, far: float = 1000.0):
        super().__init__(fov=fov, scale_factor=1.0, interactive=False)
        self._c2w = np.eye(4)
        self.orbit_distance = 1.0
        self._near = float(near)
        self._far = float(far)
        # Mark the range as set: vispy would otherwise compute the bounds of every visual (a full
        # pass over the point cloud) the first time the camera is attached to the view.
        self._xlim = self._ylim = self._zlim = (0.0, 1.0)

    # ------------------------------------------------------------------ vispy hooks
    def set_range(self, *args, **kwargs) -> None:
        """Unused: the viewport frames the scene itself (:meth:`Viewport.frame_scene`)."""

    def viewbox_mouse_event(self, event) -> None:
        """Unused: the viewport routes mouse events."""

    def viewbox_key_event(self, event) -> None:
        """Unused (vispy's default resets the view on Backspace)."""

    def _update_projection_transform(self, fx: float, fy: float) -> None:
        # fx / fy is the viewbox's aspect ratio; the fov is vertical (as in the project).
        fov = min(max(self._fov, MIN_FOV), MAX_FOV)
        self._projection.set_perspective(fov, fx / fy, self._near, self._far)
        with self.events.transform_change.blocker(self._update_transform):
            self.transform.matrix = vispy_camera_matrix(self._c2w)

    # ------------------------------------------------------------------ state
    @property
    def c2w(self) -> np.ndarray:
        """The camera-to-world pose, OpenCV axes (a copy)."""
        return self._c2w.copy()

    @c2w.setter
    def c2w(self, value: np.ndarray) -> None:
        m = np.asarray(value, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ValueError(f"a camera pose must be a finite 4x4 matrix, got shape {m.shape}")
        self._c2w = m.copy()
        self.view_changed()

    def set_pose(self, c2w: np.ndarray, fov: float | None = None) -> None:
        """Set the pose (and the vertical fov in degrees) in one update."""
        m = np.asarray(c2w, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ValueError(f"a camera pose must be a finite 4x4 matrix, got shape {m.shape}")
        self._c2w = m.copy()
        if fov is not None:
            self._fov = float(min(max(fov, MIN_FOV), MAX_FOV))
        self.view_changed()

    @property
    def position(self) -> np.ndarray:
        return self._c2w[:3, 3].copy()

    @property
    def right(self) -> np.ndarray:
        return self._c2w[:3, 0].copy()

    @property
    def down(self) -> np.ndarray:
        return self._c2w[:3, 1].copy()

    @property
    def forward(self) -> np.ndarray:
        return self._c2w[:3, 2].copy()

    @property
    def target(self) -> np.ndarray:
        """The orbit centre: ``orbit_distance`` ahead of the camera."""
        return self.position + self.forward * self.orbit_distance

    def set_clip(self, near: float, far: float) -> None:
        self._near = float(max(near, 1e-6))
        self._far = float(max(far, self._near * 10.0))
        self.view_changed()

    @property
    def clip(self) -> tuple[float, float]:
        return self._near, self._far

    # ------------------------------------------------------------------ projection (pinhole)
    def focal_px(self, height_px: float) -> float:
        """fy = fx in pixels for a viewport ``height_px`` tall (vertical fov, square pixels)."""
        return (height_px / 2.0) / math.tan(math.radians(self._fov) / 2.0)

    def project(
        self, points: np.ndarray, size: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> (pixel coordinates (N, 2) in a ``size`` = (width, height)
        viewport, depth along the view direction (N,)). Points at or behind the camera get NaN."""
        w, h = float(size[0]), float(size[1])
        P = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        Xc = (P - self._c2w[:3, 3]) @ self._c2w[:3, :3]
        z = Xc[:, 2]
        f = self.focal_px(h)
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([f * Xc[:, 0] / z + w / 2.0, f * Xc[:, 1] / z + h / 2.0], axis=1)
        uv[~(z > 0.0)] = np.nan
        return uv, z

    def ray(self, u: float, v: float, size: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """The ray through pixel (u, v) of a ``size`` = (width, height) viewport: (origin, unit
        direction) in world coordinates (the inverse of :meth:`project`)."""
        w, h = float(size[0]), float(size[1])
        f = self.focal_px(h)
        d = self._c2w[:3, :3] @ np.array([(u - w / 2.0) / f, (v - h / 2.0) / f, 1.0])
        return self._c2w[:3, 3].copy(), d / np.linalg.norm(d)

    def pixel_to_world_delta(
        self, du: float, dv: float, depth: float, height_px: float
    ) -> np.ndarray:
        """The world-space motion, in the plane facing the camera at ``depth``, that moves a point
        by (du, dv) pixels on screen."""
        f = self.focal_px(height_px)
        return self._c2w[:3, 0] * (du * depth / f) + self._c2w[:3, 1] * (dv * depth / f)

    # ------------------------------------------------------------------ navigation
    def _clamped_pitch(self, forward: np.ndarray, degrees: float) -> float:
        """Limit a pitch (positive = look up) so the view stays off the poles."""
        up = WORLD_UP
        elev = math.degrees(math.asin(float(np.clip(np.dot(forward, up), -1.0, 1.0))))
        lo = -90.0 + _POLE_MARGIN_DEG - elev
        hi = 90.0 - _POLE_MARGIN_DEG - elev
        return float(min(max(degrees, lo), hi))

    def _pitch(self, c2w: np.ndarray, degrees: float, pivot: np.ndarray) -> np.ndarray:
        """Rotate about the camera's right axis through ``pivot``; positive tilts the view up."""
        # A right-handed rotation about +x turns +z (forward) toward -y (up).
        return rotate_about_axis(c2w, c2w[:3, 0], degrees, pivot=pivot)

    def orbit(self, yaw_deg: float, pitch_deg: float) -> None:
        """Turntable orbit about the target. Positive ``yaw_deg`` moves the camera to its right
        around the target (the scene turns left); positive ``pitch_deg`` moves it up over the
        target (looking down more)."""
        target = self.target
        # Turning the rig left (+ about the world's up) swings the camera to its right.
        m = rotate_about_axis(self._c2w, WORLD_UP, yaw_deg, pivot=target)
        # Moving up over the target = the view tilting down = a negative pitch about camera x.
        pitch = self._clamped_pitch(m[:3, 2], -pitch_deg)
        m = self._pitch(m, pitch, target)
        self._c2w = orthonormalize_pose(m)
        self.view_changed()

    def look(self, yaw_deg: float, pitch_deg: float) -> None:
        """Turn on the spot (fly mode): positive yaw turns right, positive pitch looks up."""
        m = rotate_about_axis(self._c2w, WORLD_UP, -yaw_deg)
        pitch = self._clamped_pitch(m[:3, 2], pitch_deg)
        m = self._pitch(m, pitch, m[:3, 3])
        self._c2w = orthonormalize_pose(m)
        self.view_changed()

    def pan(self, du: float, dv: float, height_px: float) -> None:
        """Drag the scene by (du, dv) pixels (at the orbit target's depth): the camera and its
        target move the opposite way in the camera plane."""
        delta = self.pixel_to_world_delta(du, dv, self.orbit_distance, height_px)
        self._c2w[:3, 3] -= delta
        self.view_changed()

    def dolly(self, steps: float, min_distance: float = 1e-4) -> None:
        """Move toward (positive steps) or away from the target; each step is 10%."""
        target = self.target
        d = max(self.orbit_distance * 1.1 ** (-steps), min_distance)
        self.orbit_distance = d
        self._c2w[:3, 3] = target - self.forward * d
        self.view_changed()

    def translate(self, forward: float, right: float, up: float) -> None:
        """Fly: move along the view direction, the camera's right and the world's up."""
        self._c2w[:3, 3] += self.forward * forward + self.right * right + WORLD_UP * up
        self.view_changed()
