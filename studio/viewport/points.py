"""The point-cloud visual: one vertex buffer, uploaded once per scene, drawn as GL points.

Each point is four float32s: x, y, z and its colour packed as ``r + 256 g + 65536 b`` (exact in a
float32, decoded in the vertex shader), so a 2M-point cloud is 32 MB on the GPU in ONE buffer.
Camera moves change only the view transform (a uniform); the point size is a uniform too. The
only call that sends points to the GPU is :meth:`PointCloudVisual.set_data`.
"""

from __future__ import annotations

import numpy as np
from vispy import gloo
from vispy.scene.visuals import create_visual_node
from vispy.visuals import Visual

DEFAULT_MAX_POINTS = 2_000_000

_VERT = """
uniform float u_size;
uniform float u_px_scale;
attribute vec4 a_point;
varying vec3 v_color;

void main() {
    gl_Position = $transform(vec4(a_point.xyz, 1.0));
    float c = a_point.w;
    float b = floor(c / 65536.0);
    float g = floor((c - b * 65536.0) / 256.0);
    float r = c - b * 65536.0 - g * 256.0;
    v_color = vec3(r, g, b) / 255.0;
    gl_PointSize = u_size * u_px_scale;
}
"""

_FRAG = """
uniform float u_round;
varying vec3 v_color;

void main() {
    if (u_round > 0.5) {
        vec2 d = gl_PointCoord - vec2(0.5);
        if (dot(d, d) > 0.25) discard;
    }
    gl_FragColor = vec4(v_color, 1.0);
}
"""


def pack_points(xyz: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
    """(N, 4) float32: xyz and the colour packed into one exact float (r + 256 g + 65536 b)."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    out = np.empty((len(xyz), 4), dtype=np.float32)
    out[:, :3] = xyz
    if rgb is None:
        out[:, 3] = 200.0 + 256.0 * 200.0 + 65536.0 * 200.0
    else:
        c = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3).astype(np.float64)
        out[:, 3] = c[:, 0] + 256.0 * c[:, 1] + 65536.0 * c[:, 2]
    return out


def display_indices(n: int, max_points: int) -> np.ndarray | None:
    """Which of ``n`` points to draw under a level-of-detail cap: None (all of them) when
    ``n <= max_points``, else a deterministic (seeded) uniform random subset in index order."""
    if max_points <= 0:
        raise ValueError(f"max_points must be positive, got {max_points}")
    if n <= max_points:
        return None
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n, size=max_points, replace=False))


class PointCloudVisual(Visual):
    """Coloured points of a fixed pixel size (optionally round)."""

    def __init__(self, point_size: float = 2.0, round_points: bool = True):
        super().__init__(vcode=_VERT, fcode=_FRAG)
        self._vbo = gloo.VertexBuffer(np.zeros((1, 4), dtype=np.float32))
        self._count = 0
        self.shared_program["a_point"] = self._vbo
        self.shared_program["u_size"] = float(point_size)
        self.shared_program["u_round"] = 1.0 if round_points else 0.0
        self._point_size = float(point_size)
        self._bounds: np.ndarray | None = None
        self._draw_mode = "points"
        self.set_gl_state("opaque", depth_test=True, blend=False)
        self.freeze()

    # ------------------------------------------------------------------ data
    @property
    def count(self) -> int:
        return self._count

    def set_data(self, packed: np.ndarray) -> None:
        """Upload (N, 4) float32 points from :func:`pack_points` (the ONLY upload path)."""
        packed = np.ascontiguousarray(packed, dtype=np.float32).reshape(-1, 4)
        self._count = len(packed)
        if self._count:
            self._vbo.set_data(packed)
            xyz = packed[:, :3]
            self._bounds = np.stack([xyz.min(axis=0), xyz.max(axis=0)], axis=1)
        else:
            self._bounds = None
        self.update()

    @property
    def point_size(self) -> float:
        return self._point_size

    @point_size.setter
    def point_size(self, value: float) -> None:
        self._point_size = float(value)
        self.shared_program["u_size"] = self._point_size
        self.update()

    # ------------------------------------------------------------------ vispy hooks
    def _prepare_transforms(self, view) -> None:
        view.view_program.vert["transform"] = view.get_transform()

    def _prepare_draw(self, view) -> bool:
        if self._count == 0:
            return False
        view.view_program["u_px_scale"] = view.transforms.pixel_scale
        return True

    def _compute_bounds(self, axis: int, view):
        if self._bounds is None:
            return None
        return tuple(self._bounds[axis])


PointCloudNode = create_visual_node(PointCloudVisual)
