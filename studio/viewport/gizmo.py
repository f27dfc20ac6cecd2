"""The move / rotate gizmo's geometry, picking and drag math (numpy only, world coordinates).

A gizmo sits on the selected keyframe, monitor or entity anchor. It has, per world axis, an
arrow (drag: move along the axis), a square in the plane of the two other axes (drag: move in
that plane) and, for things with an orientation, a ring about the axis (drag: rotate about it);
the small circle at its centre moves in the plane facing the camera. It keeps a constant size on
screen: ``length`` (world units) is recomputed from the camera each time it is drawn.

World axes are those of docs/CONVENTIONS.md: x right, y down (the world's up is -y), z forward.
The same drag math serves Blender-style G / R with axis constraints (studio/viewport/widget.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

AXIS_NAMES = ("X", "Y", "Z")
AXIS_COLORS = np.array(
    [(0.95, 0.32, 0.32, 1.0), (0.45, 0.85, 0.32, 1.0), (0.32, 0.55, 1.0, 1.0)], dtype=np.float32
)
HOVER_COLOR = np.array((1.0, 0.85, 0.2, 1.0), dtype=np.float32)
VIEW_COLOR = np.array((0.92, 0.92, 0.92, 1.0), dtype=np.float32)
PLANE_ALPHA = 0.35
RING_ALPHA = 0.75

# Proportions of the gizmo, in units of its arrow length.
SHAFT_START = 0.22  # the centre belongs to the view-plane handle
HEAD_START, HEAD_RADIUS = 0.78, 0.075
SHAFT_RADIUS, SHAFT_SIDES = 0.022, 6
PLANE_LO, PLANE_HI = 0.3, 0.55
RING_RADIUS = 1.25
VIEW_RADIUS = 0.13
RING_SEGMENTS = 64
CONE_SIDES = 10

PICK_PX = 7.0  # how far from a handle's drawing a press still takes it
EDGE_ON = 0.25  # |cos| between a ring's axis and the view ray below which the ring is edge-on


@dataclass(frozen=True)
class Handle:
    """One part of the gizmo: ``kind`` is "axis" (move along ``axis``), "plane" (move in the
    plane whose normal is ``axis``), "ring" (rotate about ``axis``) or "view" (move in the plane
    facing the camera; ``axis`` is -1)."""

    kind: str
    axis: int = -1


VIEW_HANDLE = Handle("view")


def _perpendicular_pair(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(a, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(a, u)


def circle(center: np.ndarray, axis: np.ndarray, radius: float, n: int) -> np.ndarray:
    """(n + 1, 3) points of a closed circle about ``axis`` (the last point repeats the first)."""
    u, v = _perpendicular_pair(np.asarray(axis, np.float64))
    t = np.linspace(0.0, 2.0 * math.pi, n + 1)
    return center + radius * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)


def _polyline_segments(points: np.ndarray) -> np.ndarray:
    return np.repeat(points, 2, axis=0)[1:-1]


class Gizmo:
    """The gizmo at ``center`` with axes the columns of ``axes`` (3x3), arrows ``length`` world
    units long; ``rotatable`` adds the rings. ``view_axes`` (3x3, the camera's right, down and
    forward as columns) orients the view-plane circle."""

    def __init__(
        self,
        center,
        axes,
        length: float,
        rotatable: bool,
        view_axes,
    ):
        self.center = np.asarray(center, np.float64)
        self.axes = np.asarray(axes, np.float64)
        self.length = float(length)
        self.rotatable = bool(rotatable)
        self.view_axes = np.asarray(view_axes, np.float64)

    # ------------------------------------------------------------------ shapes
    def handles(self) -> list[Handle]:
        out = [VIEW_HANDLE]
        out += [Handle("axis", i) for i in range(3)]
        out += [Handle("plane", i) for i in range(3)]
        if self.rotatable:
            out += [Handle("ring", i) for i in range(3)]
        return out

    def _a(self, i: int) -> np.ndarray:
        return self.axes[:, i]

    def shaft(self, i: int) -> np.ndarray:
        """(2, 3): the arrow's shaft, from near the centre to the base of its head."""
        c, a, L = self.center, self._a(i), self.length
        return np.array([c + a * SHAFT_START * L, c + a * L])

    def plane_square(self, i: int) -> np.ndarray:
        """(4, 3): the corners of the square of the plane with normal axis ``i``."""
        j, k = [x for x in range(3) if x != i]
        c, L = self.center, self.length
        a, b = self._a(j) * L, self._a(k) * L
        return np.array(
            [
                c + a * PLANE_LO + b * PLANE_LO,
                c + a * PLANE_HI + b * PLANE_LO,
                c + a * PLANE_HI + b * PLANE_HI,
                c + a * PLANE_LO + b * PLANE_HI,
            ]
        )

    def ring(self, i: int) -> np.ndarray:
        return circle(self.center, self._a(i), RING_RADIUS * self.length, RING_SEGMENTS)

    def view_circle(self) -> np.ndarray:
        return circle(self.center, self.view_axes[:, 2], VIEW_RADIUS * self.length, 24)

    def shaft_prism(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(vertices, faces) of the arrow's shaft as a thin prism: GL lines are one pixel wide
        on many drivers (Mesa among them), the shafts should read at a glance."""
        a = self._a(i)
        start, end = self.shaft(i)
        r = SHAFT_RADIUS * self.length
        ring0 = circle(start, a, r, SHAFT_SIDES)[:-1]
        ring1 = circle(end, a, r, SHAFT_SIDES)[:-1]
        n = SHAFT_SIDES
        faces = []
        for k in range(n):
            k1 = (k + 1) % n
            faces += [(k, k1, n + k1), (k, n + k1, n + k)]
        return np.vstack([ring0, ring1]), np.array(faces, dtype=np.uint32)

    def cone(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(vertices, faces) of the arrow's head."""
        a = self._a(i)
        base = self.center + a * HEAD_START * self.length
        tip = self.center + a * self.length
        rim = circle(base, a, HEAD_RADIUS * self.length, CONE_SIDES)[:-1]
        verts = np.vstack([rim, tip[None], base[None]])
        n = CONE_SIDES
        faces = [(s, (s + 1) % n, n) for s in range(n)] + [
            ((s + 1) % n, s, n + 1) for s in range(n)
        ]
        return verts, np.array(faces, dtype=np.uint32)

    # ------------------------------------------------------------------ drawing
    def _color(self, handle: Handle, hover: Handle | None) -> np.ndarray:
        if handle == hover:
            return HOVER_COLOR
        if handle.kind == "view":
            return VIEW_COLOR
        color = AXIS_COLORS[handle.axis].copy()
        if handle.kind == "ring":
            color[3] = RING_ALPHA  # the rings stay a little behind the arrows
        return color

    def line_data(self, hover: Handle | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Segment endpoints (2M, 3) and their colours (2M, 4) of everything drawn with lines:
        shafts, square outlines, rings and the view circle."""
        pos, col = [], []

        def add(segments: np.ndarray, color: np.ndarray) -> None:
            pos.append(segments)
            col.append(np.repeat(color[None], len(segments), axis=0))

        add(_polyline_segments(self.view_circle()), self._color(VIEW_HANDLE, hover))
        for i in range(3):
            add(self.shaft(i), self._color(Handle("axis", i), hover))
            sq = self.plane_square(i)
            add(_polyline_segments(np.vstack([sq, sq[:1]])), self._color(Handle("plane", i), hover))
            if self.rotatable:
                add(_polyline_segments(self.ring(i)), self._color(Handle("ring", i), hover))
        return np.vstack(pos).astype(np.float32), np.vstack(col).astype(np.float32)

    def mesh_data(self, hover: Handle | None = None):
        """(vertices (V, 3), faces (F, 3), vertex colours (V, 4)) of the arrows (shafts and
        heads) and the filled plane squares."""
        verts, faces, colors = [], [], []
        offset = 0
        for i in range(3):
            for v, f in (self.shaft_prism(i), self.cone(i)):
                verts.append(v)
                faces.append(f + offset)
                colors.append(
                    np.repeat(self._color(Handle("axis", i), hover)[None], len(v), axis=0)
                )
                offset += len(v)
            sq = self.plane_square(i)
            verts.append(sq)
            faces.append(np.array([(0, 1, 2), (0, 2, 3)], dtype=np.uint32) + offset)
            c = self._color(Handle("plane", i), hover).copy()
            c[3] = PLANE_ALPHA if Handle("plane", i) != hover else 0.6
            colors.append(np.repeat(c[None], 4, axis=0))
            offset += 4
        return (
            np.vstack(verts).astype(np.float32),
            np.vstack(faces).astype(np.uint32),
            np.vstack(colors).astype(np.float32),
        )

    # ------------------------------------------------------------------ picking
    def pick(
        self,
        project: Callable[[np.ndarray], np.ndarray],
        x: float,
        y: float,
        radius: float = PICK_PX,
    ) -> Handle | None:
        """The handle under screen point (x, y), or None. ``project`` maps world points (N, 3) to
        screen pixels (N, 2), NaN for points behind the camera. The centre circle wins within
        its radius, then a square the point is inside, then the nearest arrow or ring."""
        p = np.array([x, y], np.float64)
        c = project(self.center[None])[0]
        if not np.all(np.isfinite(c)):
            return None
        view_r = np.linalg.norm(project(self.view_circle()[:1])[0] - c)
        if np.linalg.norm(p - c) <= max(view_r, radius):
            return VIEW_HANDLE
        for i in range(3):
            sq = project(self.plane_square(i))
            if np.all(np.isfinite(sq)) and _inside(p, sq):
                return Handle("plane", i)
        best: tuple[float, Handle] | None = None
        for handle in self.handles():
            if handle.kind == "axis":
                pts = project(
                    np.vstack(
                        [
                            self.shaft(handle.axis),
                            self.center[None] + self._a(handle.axis) * self.length,
                        ]
                    )
                )
            elif handle.kind == "ring":
                pts = project(self.ring(handle.axis))
            else:
                continue
            d = _polyline_distance(p, pts)
            if d <= radius and (best is None or d < best[0]):
                best = (d, handle)
        return best[1] if best else None


def _inside(p: np.ndarray, poly: np.ndarray) -> bool:
    """Whether point p is inside the (convex or not) polygon (N, 2)."""
    inside = False
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        if (y0 > p[1]) != (y1 > p[1]):
            xc = x0 + (p[1] - y0) * (x1 - x0) / (y1 - y0)
            if p[0] < xc:
                inside = not inside
    return inside


def _polyline_distance(p: np.ndarray, pts: np.ndarray) -> float:
    """Distance from p to the polyline through pts (N, 2); segments with a point behind the
    camera (NaN) are skipped."""
    a, b = pts[:-1], pts[1:]
    ok = np.all(np.isfinite(a), axis=1) & np.all(np.isfinite(b), axis=1)
    if not ok.any():
        return math.inf
    a, b = a[ok], b[ok]
    ab = b - a
    denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((p - a) * ab).sum(axis=1) / denom, 0.0, 1.0)
    d = np.linalg.norm(a + t[:, None] * ab - p, axis=1)
    return float(d.min())


# ------------------------------------------------------------------------------ drag math
def closest_on_line(origin, direction, ray_origin, ray_dir) -> float | None:
    """The parameter t of the point ``origin + t * direction`` nearest to the ray (the mouse);
    None when the line and the ray are (nearly) parallel: the axis points at the viewer."""
    d1 = np.asarray(direction, np.float64)
    d2 = np.asarray(ray_dir, np.float64)
    w = np.asarray(origin, np.float64) - np.asarray(ray_origin, np.float64)
    a, b, c = d1 @ d1, d1 @ d2, d2 @ d2
    d, e = d1 @ w, d2 @ w
    denom = a * c - b * b
    if denom < 1e-9 * a * c:
        return None
    return float((b * e - c * d) / denom)


def ray_plane(origin, normal, ray_origin, ray_dir) -> np.ndarray | None:
    """Where the ray meets the plane through ``origin`` with ``normal``; None when it runs
    along the plane or meets it behind the camera."""
    n = np.asarray(normal, np.float64)
    d = np.asarray(ray_dir, np.float64)
    denom = float(n @ d)
    if abs(denom) < 1e-6 * np.linalg.norm(n) * np.linalg.norm(d):
        return None
    t = float(n @ (np.asarray(origin, np.float64) - np.asarray(ray_origin, np.float64))) / denom
    if t <= 0:
        return None
    return np.asarray(ray_origin, np.float64) + t * d


def plane_angle(center, normal, start, now) -> float | None:
    """Degrees (right-handed about ``normal``) from ``start`` to ``now`` as seen from
    ``center``, both points in the plane through ``center``; None when one is at the centre."""
    n = np.asarray(normal, np.float64)
    n = n / np.linalg.norm(n)
    a = np.asarray(start, np.float64) - center
    b = np.asarray(now, np.float64) - center
    a -= n * (a @ n)
    b -= n * (b @ n)
    if np.linalg.norm(a) < 1e-12 or np.linalg.norm(b) < 1e-12:
        return None
    return math.degrees(math.atan2(float(n @ np.cross(a, b)), float(a @ b)))


def screen_angle(center_px, start_px, now_px) -> float:
    """Degrees the cursor turned about ``center_px`` on screen, from ``start_px`` to ``now_px``
    (positive: clockwise on screen, i.e. from +u toward +v with v pointing down)."""
    s = np.asarray(start_px, np.float64) - np.asarray(center_px, np.float64)
    n = np.asarray(now_px, np.float64) - np.asarray(center_px, np.float64)
    a = math.atan2(n[1], n[0]) - math.atan2(s[1], s[0])
    return math.degrees((a + math.pi) % (2.0 * math.pi) - math.pi)


def rotation_about_screen(axis, camera_forward, degrees: float) -> float:
    """The rotation (degrees, right-handed about ``axis``) that turns a point on screen by
    ``degrees`` clockwise: a right-handed turn about the camera's forward axis (OpenCV: x right,
    y down) moves +x toward +y, clockwise on screen; about an axis pointing at the viewer it is
    the other way round."""
    return degrees if float(np.dot(axis, camera_forward)) >= 0.0 else -degrees
