"""The oracle world: a procedural dynamic scene with exact ground truth.

A closed, textured room (floor, ceiling, four walls), a few axis-aligned boxes standing on the
floor and ONE moving entity, a ball rolling without slipping on a circle on the floor. Any camera
at any time renders, by analytic ray casting in float64 (pure numpy, vectorised over all pixels),
an RGB image, an exact z-depth map and the entity's mask. It is the demo scene and the ground
truth that tests of the world engine check against (see docs/METHOD.md, "the oracle world").

Conventions (docs/CONVENTIONS.md): OpenCV camera axes (x right, y down, z forward), c2w 4x4
float64 poses, K 3x3 in pixels for an explicit (height, width), world "up" is -y. Pixel (u, v)
covers [u, u+1) x [v, v+1); each pixel is rendered by the single ray through its centre
(u + 0.5, v + 0.5). Depth is the z-depth along the camera's +z axis (not the ray length), so
``c2w @ [depth * K^-1 (u + 0.5, v + 0.5, 1), 1]`` is exactly the surface point hit.

The static world is truly static: no light depends on time and the ball casts no shadow, so only
the ball's pixels change with t. Shading is view-independent (ambient + Lambert with a fixed
light), so a surface point has the same colour from every camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEMO_FOV_DEG",
    "DEMO_HEIGHT",
    "DEMO_WIDTH",
    "ENTITY_ID",
    "ENTITY_NAME",
    "SURFACE_BACK_WALL",
    "SURFACE_BOX0",
    "SURFACE_CEILING",
    "SURFACE_ENTITY",
    "SURFACE_FLOOR",
    "SURFACE_FRONT_WALL",
    "SURFACE_LEFT_WALL",
    "SURFACE_RIGHT_WALL",
    "OracleBox",
    "OracleFrame",
    "OracleScene",
    "demo_intrinsics",
]

# The demo camera: vertical field of view (degrees) at the project's default 832x480.
DEMO_FOV_DEG = 60.0
DEMO_HEIGHT = 480
DEMO_WIDTH = 832

ENTITY_NAME = "ball"
ENTITY_ID = 1

# Surface codes in OracleFrame.surface (int16). Box i has code SURFACE_BOX0 + i.
SURFACE_FLOOR = 0  # y = floor_y (the largest y: "up" is -y)
SURFACE_CEILING = 1  # y = ceiling_y
SURFACE_LEFT_WALL = 2  # x = left_x
SURFACE_RIGHT_WALL = 3  # x = right_x
SURFACE_FRONT_WALL = 4  # z = front_z, the wall the origin camera faces
SURFACE_BACK_WALL = 5  # z = back_z, behind the origin camera
SURFACE_BOX0 = 10
SURFACE_ENTITY = 100

_EPS = 1e-9
# Direction TOWARDS the light, world frame (light comes from above: up is -y). Unit length.
_LIGHT = np.array([0.3, -1.0, -0.5]) / math.sqrt(0.3**2 + 1.0 + 0.5**2)
_AMBIENT = 0.62
_DIFFUSE = 0.38


def demo_intrinsics(
    height: int = DEMO_HEIGHT, width: int = DEMO_WIDTH, fov_deg: float = DEMO_FOV_DEG
) -> np.ndarray:
    """A centred pinhole K (float64 3x3) with VERTICAL field of view `fov_deg` and square pixels.

    fy = (H/2) / tan(fov/2), fx = fy, cx = W/2, cy = H/2 (docs/CONVENTIONS.md).
    """
    fy = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array(
        [[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64
    )


@dataclass(frozen=True)
class OracleBox:
    """An axis-aligned box, world coordinates. `lo`/`hi` are its min/max corners."""

    name: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[float, float, float]  # base RGB in [0, 1]


@dataclass(frozen=True)
class OracleFrame:
    """One ground-truth frame.

    rgb: uint8 (H, W, 3). depth: float32 (H, W), z-depth along the camera's +z for the ray
    through each pixel centre, > 0 and finite everywhere (the room is closed). entity_mask: bool
    (H, W), True where the ball is the nearest hit. surface: int16 (H, W), the code of the surface
    hit (SURFACE_* constants; box i is SURFACE_BOX0 + i). t: the scene time in seconds.
    """

    rgb: np.ndarray
    depth: np.ndarray
    entity_mask: np.ndarray
    surface: np.ndarray
    t: float

    @property
    def entity_ids(self) -> np.ndarray:
        """int32 (H, W): ENTITY_ID on the ball's pixels, -1 ("static world") elsewhere."""
        return np.where(self.entity_mask, np.int32(ENTITY_ID), np.int32(-1)).astype(np.int32)


def _demo_boxes() -> tuple[OracleBox, ...]:
    return (
        # front-left, in view of the origin camera
        OracleBox("crate", (-3.4, 0.3, 5.0), (-2.2, 1.5, 6.2), (0.15, 0.58, 0.62)),
        # front-right, tall, in view of the origin camera
        OracleBox("tower", (2.4, -0.5, 6.4), (3.6, 1.5, 7.6), (0.72, 0.22, 0.46)),
        # a pillar in the far left corner, in view of the origin camera
        OracleBox("pillar", (-4.6, -1.5, 7.8), (-3.8, 1.5, 8.6), (0.88, 0.88, 0.86)),
        # behind the origin camera
        OracleBox("chest", (-0.5, 0.6, -3.6), (1.3, 1.5, -2.4), (0.36, 0.38, 0.82)),
    )


@dataclass(frozen=True)
class OracleScene:
    """A frozen description of the oracle world. The defaults are the demo scene.

    The room is the box [left_x, right_x] x [ceiling_y, floor_y] x [back_z, front_z]; cameras
    must be inside it. The ball (radius `entity_radius`) rolls without slipping on the floor:
    its centre runs counter-clockwise seen from above (from +x towards +z) on the circle of
    radius `path_radius` about (path_center_x, floor_y - entity_radius, path_center_z) at
    constant speed `entity_speed` (m/s), starting at angle `path_phase0` (radians, measured from
    +x towards +z):

        phi(t) = path_phase0 + (entity_speed / path_radius) * t
        centre(t) = (cx + R cos phi(t), floor_y - r, cz + R sin phi(t))
    """

    floor_y: float = 1.5
    ceiling_y: float = -2.5
    left_x: float = -5.0
    right_x: float = 5.0
    front_z: float = 9.0
    back_z: float = -5.0
    boxes: tuple[OracleBox, ...] = field(default_factory=_demo_boxes)
    entity_radius: float = 0.35
    path_center_x: float = 0.0
    path_center_z: float = 4.5
    path_radius: float = 1.5
    entity_speed: float = 1.0
    path_phase0: float = -math.pi / 2.0  # t=0: straight ahead of the origin camera, z = 3
    entity_name: str = ENTITY_NAME
    entity_id: int = ENTITY_ID

    def __post_init__(self) -> None:
        if not (self.ceiling_y < self.floor_y and self.left_x < self.right_x):
            raise ValueError("OracleScene: the room's bounds are not ordered")
        if not self.back_z < self.front_z:
            raise ValueError("OracleScene: the room's bounds are not ordered")
        if self.entity_radius <= 0 or self.path_radius <= 0:
            raise ValueError("OracleScene: entity_radius and path_radius must be > 0")
        r, big_r = self.entity_radius, self.path_radius
        if (
            self.path_center_x - big_r - r < self.left_x
            or self.path_center_x + big_r + r > self.right_x
            or self.path_center_z - big_r - r < self.back_z
            or self.path_center_z + big_r + r > self.front_z
            or self.floor_y - 2 * r < self.ceiling_y
        ):
            raise ValueError("OracleScene: the ball's path leaves the room")
        for box in self.boxes:
            if not all(a < b for a, b in zip(box.lo, box.hi, strict=True)):
                raise ValueError(f"OracleScene: box {box.name!r} has lo >= hi")
        # The ball must never touch a box (checked densely along one loop of the path).
        ts = np.linspace(0.0, self.period, 2048, endpoint=False)
        centres = self.entity_positions(ts)
        for box in self.boxes:
            lo, hi = np.asarray(box.lo), np.asarray(box.hi)
            gap = np.linalg.norm(np.maximum(np.maximum(lo - centres, centres - hi), 0.0), axis=1)
            if gap.min() <= r:
                raise ValueError(f"OracleScene: the ball's path runs into box {box.name!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def demo(cls) -> OracleScene:
        """The demo scene (the defaults)."""
        return cls()

    # ------------------------------------------------------------------ the entity
    @property
    def angular_speed(self) -> float:
        """Rate (rad/s) at which the ball goes round its path: entity_speed / path_radius."""
        return self.entity_speed / self.path_radius

    @property
    def period(self) -> float:
        """Seconds for one loop of the path."""
        return 2.0 * math.pi / self.angular_speed

    def entity_position(self, t: float) -> np.ndarray:
        """The ball's centre at time t (seconds), float64 (3,)."""
        return self.entity_positions(np.asarray([t], dtype=np.float64))[0]

    def entity_positions(self, ts) -> np.ndarray:
        """The ball's centre at each time of `ts` (T,), float64 (T, 3)."""
        ts = np.asarray(ts, dtype=np.float64).reshape(-1)
        phi = self.path_phase0 + self.angular_speed * ts
        out = np.empty((ts.shape[0], 3), dtype=np.float64)
        out[:, 0] = self.path_center_x + self.path_radius * np.cos(phi)
        out[:, 1] = self.floor_y - self.entity_radius
        out[:, 2] = self.path_center_z + self.path_radius * np.sin(phi)
        return out

    def entity_velocity(self, t: float) -> np.ndarray:
        """d/dt of entity_position, float64 (3,); its norm is entity_speed."""
        phi = self.path_phase0 + self.angular_speed * t
        v = self.entity_speed
        return np.array([-v * math.sin(phi), 0.0, v * math.cos(phi)])

    def entity_rotation(self, t: float) -> np.ndarray:
        """The ball's orientation (body-to-world rotation, float64 3x3) at time t; identity at 0.

        Rolling without slipping: the angular velocity is w(t) = (n x v(t)) / r with n = (0,-1,0)
        the floor's normal (up). w(t) turns about n at the path's rate W, so in closed form
        R(t) = Rot(n, W t) @ Rot(w(0) - W n, t) (a rotation written as axis * angle).
        """
        n = np.array([0.0, -1.0, 0.0])
        w0 = np.cross(n, self.entity_velocity(0.0)) / self.entity_radius
        big_w = self.angular_speed
        return _rotvec_to_matrix(n * (big_w * t)) @ _rotvec_to_matrix((w0 - big_w * n) * t)

    # ------------------------------------------------------------------ surfaces
    @property
    def surface_names(self) -> dict[int, str]:
        """Code -> name of every surface that can appear in OracleFrame.surface."""
        names = {
            SURFACE_FLOOR: "floor",
            SURFACE_CEILING: "ceiling",
            SURFACE_LEFT_WALL: "left_wall",
            SURFACE_RIGHT_WALL: "right_wall",
            SURFACE_FRONT_WALL: "front_wall",
            SURFACE_BACK_WALL: "back_wall",
        }
        for i, box in enumerate(self.boxes):
            names[SURFACE_BOX0 + i] = box.name
        names[SURFACE_ENTITY] = self.entity_name
        return names

    @property
    def room_planes(self) -> dict[int, tuple[int, float]]:
        """Room surface code -> (world axis 0/1/2, coordinate of the plane on that axis)."""
        return {
            SURFACE_FLOOR: (1, self.floor_y),
            SURFACE_CEILING: (1, self.ceiling_y),
            SURFACE_LEFT_WALL: (0, self.left_x),
            SURFACE_RIGHT_WALL: (0, self.right_x),
            SURFACE_FRONT_WALL: (2, self.front_z),
            SURFACE_BACK_WALL: (2, self.back_z),
        }

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        c2w: np.ndarray,
        K: np.ndarray,
        height: int,
        width: int,
        t: float = 0.0,
        entity: bool = True,
    ) -> OracleFrame:
        """Ray-cast the scene from camera `c2w` (4x4) with intrinsics `K` (3x3) at time t (s).

        ``entity=False`` renders the static world alone (the room and the boxes, as if the ball
        were not there): what a model that knows the world but not the ball's state would draw.

        One ray per pixel, through its centre (u + 0.5, v + 0.5). The camera must be strictly
        inside the room (ValueError otherwise) and should be outside the boxes and the ball (a
        camera inside a box sees through it). K must be upper triangular with K[2, 2] == 1
        (skew allowed); c2w's rotation block must be a proper rotation.
        """
        height, width = int(height), int(width)
        if height <= 0 or width <= 0:
            raise ValueError(f"render: image size must be positive, got {height}x{width}")
        c2w = _check_c2w(c2w)
        K = _check_K(K)
        origin = c2w[:3, 3].copy()
        lo = np.array([self.left_x, self.ceiling_y, self.back_z])
        hi = np.array([self.right_x, self.floor_y, self.front_z])
        if not (np.all(origin > lo) and np.all(origin < hi)):
            raise ValueError(f"render: the camera position {origin.tolist()} is outside the room")

        # Rays through pixel centres, camera frame with z = 1, so the hit parameter is z-depth.
        fx, s_k, cx = K[0]
        fy, cy = K[1, 1], K[1, 2]
        v = np.arange(height, dtype=np.float64) + 0.5
        u = np.arange(width, dtype=np.float64) + 0.5
        yc = (v - cy) / fy
        xc = (u[None, :] - cx - s_k * yc[:, None]) / fx
        rot = c2w[:3, :3]
        n_pix = height * width
        dt = np.empty((3, n_pix), dtype=np.float64)  # world ray directions, one row per axis
        xcf = xc.reshape(-1)
        ycf = np.broadcast_to(yc[:, None], (height, width)).reshape(-1)
        for i in range(3):
            dt[i] = rot[i, 0] * xcf + rot[i, 1] * ycf + rot[i, 2]
        d = dt.T

        s, surf, axis, sign = self._room_hit(origin, d)
        for i, box in enumerate(self.boxes):
            s_b, ax_b, sg_b = _box_hit(origin, dt, np.asarray(box.lo), np.asarray(box.hi))
            closer = s_b < s
            s = np.where(closer, s_b, s)
            surf[closer] = SURFACE_BOX0 + i
            axis[closer] = ax_b[closer]
            sign[closer] = sg_b[closer]
        centre = self.entity_position(t)
        if entity:
            s_e = _sphere_hit(origin, d, centre, self.entity_radius)
        else:
            s_e = np.full_like(s, np.inf)
        ball = s_e < s
        s = np.where(ball, s_e, s)
        surf[ball] = SURFACE_ENTITY

        points = origin + s[:, None] * d
        normals = np.zeros_like(points)
        flat = ~ball
        normals[flat, axis[flat]] = sign[flat]
        normals[ball] = (points[ball] - centre) / self.entity_radius
        # Pixel footprint on the surface (m): ray length / focal / cos(incidence), for filtering.
        d_len = np.sqrt(np.einsum("ij,ij->i", d, d))
        cos_i = np.abs(np.einsum("ij,ij->i", d, normals)) / d_len
        focal = 0.5 * (fx + fy)
        footprint = s * d_len / (focal * np.maximum(cos_i, 0.02))

        color = self._shade(points, normals, surf, footprint, t)
        rgb = np.clip(np.rint(color * 255.0), 0, 255).astype(np.uint8).reshape(height, width, 3)
        return OracleFrame(
            rgb=rgb,
            depth=s.astype(np.float32).reshape(height, width),
            entity_mask=ball.reshape(height, width),
            surface=surf.astype(np.int16).reshape(height, width),
            t=float(t),
        )

    def render_batch(self, c2ws, Ks, height: int, width: int, ts=0.0) -> list[OracleFrame]:
        """Render N frames: c2ws (N,4,4); Ks (3,3) or (N,3,3); ts scalar or (N,)."""
        c2ws = np.asarray(c2ws, dtype=np.float64)
        if c2ws.ndim != 3 or c2ws.shape[1:] != (4, 4):
            raise ValueError(f"render_batch: c2ws must be (N, 4, 4), got {c2ws.shape}")
        n = c2ws.shape[0]
        Ks = np.asarray(Ks, dtype=np.float64)
        if Ks.shape == (3, 3):
            Ks = np.broadcast_to(Ks, (n, 3, 3))
        if Ks.shape != (n, 3, 3):
            raise ValueError(f"render_batch: Ks must be (3, 3) or ({n}, 3, 3), got {Ks.shape}")
        ts = np.broadcast_to(np.asarray(ts, dtype=np.float64), (n,))
        return [self.render(c2ws[i], Ks[i], height, width, float(ts[i])) for i in range(n)]

    # ------------------------------------------------------------------ internals
    def _room_hit(self, o: np.ndarray, d: np.ndarray):
        """Exit point of the rays from the room (the camera is inside): s, surface, axis, sign."""
        n = d.shape[0]
        s = np.full(n, np.inf)
        surf = np.zeros(n, dtype=np.int32)
        axis = np.zeros(n, dtype=np.int64)
        sign = np.zeros(n, dtype=np.float64)
        walls = (
            (0, self.left_x, self.right_x, SURFACE_LEFT_WALL, SURFACE_RIGHT_WALL),
            (1, self.ceiling_y, self.floor_y, SURFACE_CEILING, SURFACE_FLOOR),
            (2, self.back_z, self.front_z, SURFACE_BACK_WALL, SURFACE_FRONT_WALL),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            for ax, lo, hi, code_lo, code_hi in walls:
                da = d[:, ax]
                pos = da > 0
                plane = np.where(pos, hi, lo)
                s_a = (plane - o[ax]) / da  # +inf where da == 0 (o is strictly inside)
                s_a = np.where(da == 0, np.inf, s_a)
                closer = s_a < s
                s = np.where(closer, s_a, s)
                surf[closer] = np.where(pos[closer], code_hi, code_lo)
                axis[closer] = ax
                sign[closer] = np.where(pos[closer], -1.0, 1.0)  # normals point into the room
        return s, surf, axis, sign

    def _shade(self, p, normals, surf, footprint, t) -> np.ndarray:
        color = np.zeros_like(p)
        x, y, z = p[:, 0], p[:, 1], p[:, 2]

        def sel(code):
            return np.nonzero(surf == code)[0]

        # floor: 1 m wooden checkerboard, per-tile tint
        i = sel(SURFACE_FLOOR)
        if i.size:
            color[i] = _checker_tex(
                x[i], z[i], footprint[i], 1.0, (0.80, 0.67, 0.50), (0.46, 0.33, 0.24), seed=1
            )
        # ceiling: 1.25 m off-white panels with grey seams
        i = sel(SURFACE_CEILING)
        if i.size:
            color[i] = _tile_tex(
                x[i],
                z[i],
                footprint[i],
                1.25,
                1.25,
                0.05,
                (0.86, 0.86, 0.82),
                (0.50, 0.50, 0.52),
                0.06,
                offset_rows=False,
                seed=2,
            )
        # left wall: brick (0.8 x 0.3 m, offset rows), coordinates (z, y)
        i = sel(SURFACE_LEFT_WALL)
        if i.size:
            color[i] = _tile_tex(
                z[i],
                y[i],
                footprint[i],
                0.8,
                0.3,
                0.06,
                (0.64, 0.28, 0.20),
                (0.80, 0.77, 0.72),
                0.25,
                offset_rows=True,
                seed=3,
            )
        # right wall: green diagonal stripes
        i = sel(SURFACE_RIGHT_WALL)
        if i.size:
            color[i] = _stripe_tex(
                (z[i] + y[i]) / math.sqrt(2.0),
                footprint[i],
                0.7,
                (0.24, 0.50, 0.34),
                (0.58, 0.76, 0.52),
                seed=4,
            )
        # front wall (faced by the origin camera): blue vertical stripes and a dado rail
        i = sel(SURFACE_FRONT_WALL)
        if i.size:
            c = _stripe_tex(x[i], footprint[i], 0.8, (0.20, 0.34, 0.66), (0.64, 0.73, 0.89), seed=5)
            rail = _pulse(y[i] - 0.2, footprint[i], 100.0, 0.002, 0.0)  # the band 0.2 <= y < 0.4
            c = c * (1.0 - rail[:, None]) + np.array([0.93, 0.90, 0.80]) * rail[:, None]
            color[i] = c
        # back wall (behind the origin camera): lavender 0.5 m tiles
        i = sel(SURFACE_BACK_WALL)
        if i.size:
            color[i] = _tile_tex(
                x[i],
                y[i],
                footprint[i],
                0.5,
                0.5,
                0.06,
                (0.60, 0.48, 0.74),
                (0.92, 0.92, 0.95),
                0.3,
                offset_rows=False,
                seed=6,
            )
        # boxes: base colour with a 0.25 m checker on each face
        other = np.array([[2, 1], [0, 2], [0, 1]])  # face axis -> the two in-face axes
        for b, box in enumerate(self.boxes):
            i = sel(SURFACE_BOX0 + b)
            if not i.size:
                continue
            ax = np.argmax(np.abs(normals[i]), axis=1)
            a = p[i, other[ax, 0]]
            c = p[i, other[ax, 1]]
            base = np.asarray(box.color)
            color[i] = _checker_tex(
                a, c, footprint[i], 0.25, tuple(base), tuple(0.72 * base), 10 + b
            )
        # the ball: bright two-colour octant pattern fixed to its body, so rotation is visible
        i = sel(SURFACE_ENTITY)
        if i.size:
            rot = self.entity_rotation(t)
            q = normals[i] @ rot  # body coordinates of the unit normal: rot.T @ n
            w = np.maximum(footprint[i] / self.entity_radius, 1e-3)[:, None]
            soft = np.clip(q / w + 0.5, 0.0, 1.0)
            m = _xor(_xor(soft[:, 0], soft[:, 1]), soft[:, 2])[:, None]
            color[i] = np.array([1.0, 0.36, 0.08]) * m + np.array([1.0, 0.88, 0.18]) * (1.0 - m)

        lambert = np.maximum(normals @ _LIGHT, 0.0)
        smooth = np.ones(p.shape[0])
        static = surf != SURFACE_ENTITY
        # a gentle low-frequency brightness variation on the static world (breaks periodicity)
        smooth[static] = 1.0 + 0.07 * np.sin(0.61 * x[static] + 0.37 * z[static] + 0.5) * np.cos(
            0.43 * y[static] - 0.29 * z[static] + 0.2 * x[static] + 1.1
        )
        return color * ((_AMBIENT + _DIFFUSE * lambert) * smooth)[:, None]


# ---------------------------------------------------------------------- geometry helpers
def _check_c2w(c2w) -> np.ndarray:
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise ValueError(f"render: c2w must be a finite 4x4 matrix, got shape {c2w.shape}")
    if not np.allclose(c2w[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError("render: c2w's last row must be [0, 0, 0, 1]")
    rot = c2w[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
        raise ValueError("render: c2w's rotation block is not a proper rotation")
    return c2w


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise ValueError(f"render: K must be a finite 3x3 matrix, got shape {K.shape}")
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise ValueError("render: K must be upper triangular with K[2, 2] == 1")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError("render: K's focal lengths must be positive")
    return K


def _box_hit(o: np.ndarray, dt: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Slab method on ray directions `dt` (3, N). Returns s (inf on a miss), the entry face's
    axis (int8) and its outward normal's sign."""
    with np.errstate(divide="ignore", invalid="ignore"):
        slabs = []
        for k in range(3):
            t1 = (lo[k] - o[k]) / dt[k]  # +-inf where d == 0; nan when also on the slab's boundary
            t2 = (hi[k] - o[k]) / dt[k]
            # nan propagates: a ray lying in a face's plane misses
            slabs.append((np.minimum(t1, t2), np.maximum(t1, t2)))
        tnear, tfar = slabs[0]
        ax = np.zeros(tnear.shape[0], dtype=np.int8)
        d_ax = dt[0].copy()
        for k in (1, 2):
            tmin, tmax = slabs[k]
            later = tmin > tnear
            ax[later] = k
            d_ax[later] = dt[k][later]
            tnear = np.maximum(tnear, tmin)
            tfar = np.minimum(tfar, tmax)
    hit = (tnear <= tfar) & (tnear > _EPS)  # cameras are outside boxes
    s = np.where(hit, tnear, np.inf)
    sign = np.where(d_ax > 0, -1.0, 1.0)
    return s, ax, sign


def _sphere_hit(o: np.ndarray, d: np.ndarray, c: np.ndarray, r: float) -> np.ndarray:
    oc = o - c
    a = np.einsum("ij,ij->i", d, d)
    hb = d @ oc
    cc = float(oc @ oc) - r * r
    disc = hb * hb - a * cc
    hit = disc >= 0
    root = np.sqrt(np.where(hit, disc, 0.0))
    s = (-hb - root) / a
    return np.where(hit & (s > _EPS), s, np.inf)


def _rotvec_to_matrix(rv: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rv))
    if angle < 1e-15:
        return np.eye(3)
    k = rv / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


# ---------------------------------------------------------------------- texture helpers
def _pulse(s: np.ndarray, w: np.ndarray, period: float, duty: float, phase: float) -> np.ndarray:
    """Box-filtered pulse wave: 1 on [0, duty*period) of each period, 0 elsewhere, averaged
    over a window of width w (the pixel footprint) centred on s. Exact, so no aliasing."""
    wn = np.maximum(w / period, 1e-6)
    x = s / period - phase

    def integral(xx):
        return np.floor(xx) * duty + np.minimum(xx - np.floor(xx), duty)

    return np.clip((integral(x + 0.5 * wn) - integral(x - 0.5 * wn)) / wn, 0.0, 1.0)


def _xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """XOR of two (filtered) indicator values in [0, 1]."""
    return a + b - 2.0 * a * b


def _hash01(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic, platform-independent hash of integer cells to [0, 1)."""
    h = i.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B1)
    h ^= j.astype(np.int64).astype(np.uint64) * np.uint64(0x85EBCA77)
    h ^= np.uint64(seed * 0xC2B2AE3D + 0x27D4EB2F)
    h ^= h >> np.uint64(15)
    h *= np.uint64(0x2C1B3C6D)
    h ^= h >> np.uint64(12)
    h *= np.uint64(0x297A2D39)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFFFF)).astype(np.float64) / float(1 << 24)


def _tint(i: np.ndarray, j: np.ndarray, seed: int, amount: float) -> np.ndarray:
    """Per-cell colour variation: (N, 3) multipliers around 1."""
    out = np.empty((i.shape[0], 3))
    for k in range(3):
        out[:, k] = 1.0 + amount * (2.0 * _hash01(i, j, seed * 7 + k) - 1.0)
    return out


def _checker_tex(a, b, w, size, c0, c1, seed) -> np.ndarray:
    ia, ib = np.floor(a / size), np.floor(b / size)
    m = _xor(_pulse(a, w, 2 * size, 0.5, 0.0), _pulse(b, w, 2 * size, 0.5, 0.0))[:, None]
    col = np.asarray(c0) * m + np.asarray(c1) * (1.0 - m)
    tint = _tint(ia, ib, seed, 0.10)
    return col * tint


def _stripe_tex(s, w, period, c0, c1, seed) -> np.ndarray:
    m = _pulse(s, w, period, 0.5, 0.0)[:, None]
    col = np.asarray(c0) * m + np.asarray(c1) * (1.0 - m)
    idx = np.floor(s / (period / 2.0))
    return col * _tint(idx, np.zeros_like(idx), seed, 0.08)


def _tile_tex(a, b, w, size_a, size_b, grout, c_tile, c_grout, var, offset_rows, seed):
    """Rectangular tiles (size_a x size_b) separated by grout lines (width `grout`, metres)."""
    row = np.floor(b / size_b)
    shift = np.where(offset_rows & (np.mod(row, 2) == 1), 0.5 * size_a, 0.0)
    a2 = a + shift
    col_idx = np.floor(a2 / size_a)
    g_a = _pulse(a2, w, size_a, grout / size_a, 0.0)
    g_b = _pulse(b, w, size_b, grout / size_b, 0.0)
    g = (g_a + g_b - g_a * g_b)[:, None]  # grout where either line is
    tile = np.asarray(c_tile) * _tint(col_idx, row, seed, var)
    return tile * (1.0 - g) + np.asarray(c_grout) * g
