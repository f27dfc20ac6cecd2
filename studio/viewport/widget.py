"""The 3D viewport: a vispy SceneCanvas inside a QWidget, bound to a ProjectDocument.

What it draws
    The point cloud (one GPU buffer, uploaded on a "scene" change only; a level-of-detail cap),
    keyframes as camera frustums (the selected one highlighted), the baked path as a polyline with
    a tick at every round boundary, monitors as frustums of another colour, entity anchors as
    labelled markers, the path's look-at target and the playhead camera. Overlays are rebuilt from
    the document's ``changed`` / ``selection_changed`` / ``playhead_changed`` signals only.

How it is driven (orbit mode)
    Left drag orbits about the target (the world's up is -y), right or middle drag (or Shift-drag
    on empty space) pans, the wheel dollies. A click selects the keyframe, monitor or entity
    nearest the cursor (within a few pixels) or clears the selection. Shift-drag on an object
    moves it in the plane facing the camera, Ctrl-drag rotates a keyframe or monitor (left/right
    turns about the world's up, up/down tilts); a whole drag is one undo step. Double-clicking a
    keyframe or monitor looks through it; Home returns to the source camera.

The gizmo (:mod:`worldstudio.studio.viewport.gizmo`)
    The selection carries a move / rotate gizmo: drag an arrow to move along a world axis, a
    square to move in its plane, a ring to rotate about an axis (keyframes and monitors), the
    centre circle to move in the plane facing the camera. A press on the gizmo never orbits or
    pans; each drag is one undo step. Blender's G (move) and R (rotate) work the same way with
    the mouse, no button held: X / Y / Z constrain to a world axis (again: the object's own
    axis, a third time: free), Shift+X / Y / Z to the plane of the two other axes, a typed
    number sets the distance (world units) or the angle (degrees); Enter or a left click
    confirms, Esc or a right click puts everything back.

Picking a point (:meth:`Viewport.begin_point_pick`)
    The next click returns the nearest cloud point under the cursor (the studio adds an entity
    there); Esc or a right click cancels.

Fly mode (F)
    WASD moves, Q/E go down/up, dragging looks around, the wheel changes the speed, Esc or F leaves.
    R records: the camera is sampled at the project's fps and, when recording stops, the flight is
    thinned to keyframes (``worldstudio.core.geometry.path.fit_keyframes``) and pushed as ONE undoable edit.

Conventions: everything public is in the project's convention (OpenCV camera axes, c2w 4x4,
vertical fov in degrees); the conversion to vispy lives in :mod:`worldstudio.studio.viewport.camera` only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget
from vispy import scene
from vispy.util import keys

from worldstudio.core.geometry.path import keyframe_pose
from worldstudio.core.geometry.transforms import (
    WORLD_UP,
    pose_from_matrix,
    pose_matrix,
    rotate_about_axis,
)
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.viewport.camera import MAX_FOV, PoseCamera
from worldstudio.studio.viewport.gizmo import (
    AXIS_COLORS,
    AXIS_NAMES,
    EDGE_ON,
    Gizmo,
    Handle,
    closest_on_line,
    plane_angle,
    ray_plane,
    rotation_about_screen,
    screen_angle,
)
from worldstudio.studio.viewport.overlays import (
    SEGMENTS_PER_FRUSTUM,
    cross_segments,
    frustums,
    round_boundary_frames,
    tick_segments,
)
from worldstudio.studio.viewport.points import (
    DEFAULT_MAX_POINTS,
    PointCloudNode,
    display_indices,
    pack_points,
)

BACKGROUND = (0.11, 0.115, 0.13, 1.0)
KEYFRAME_COLOR = (0.35, 0.75, 1.0, 1.0)
MONITOR_COLOR = (0.35, 0.95, 0.45, 1.0)
MONITOR_DISABLED_COLOR = (0.25, 0.45, 0.3, 1.0)
ENTITY_COLOR = (1.0, 0.45, 0.9, 1.0)
SELECTED_COLOR = (1.0, 0.72, 0.15, 1.0)
PATH_COLOR = (0.92, 0.92, 0.92, 0.85)
TICK_COLOR = (1.0, 0.45, 0.35, 1.0)
PLAYHEAD_COLOR = (1.0, 0.25, 0.25, 1.0)
LOOK_AT_COLOR = (1.0, 0.95, 0.3, 1.0)

PICK_RADIUS_PX = 8.0
CLICK_SLOP_PX = 3.0
ORBIT_DEG_PER_PX = 0.3
LOOK_DEG_PER_PX = 0.2
ROTATE_DEG_PER_PX = 0.4
FLY_TICK_MS = 16
SOFTWARE_MAX_POINTS = 300_000  # the cap on a software GL (Mesa llvmpipe) unless one is set
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "software", "swrast")

GIZMO_PX = 96.0  # the gizmo's arrows on screen, in pixels
POINT_PICK_PX = 5.0

_FLY_KEYS = ("W", "A", "S", "D", "Q", "E")
_KIND_ORDER = {"keyframe": 0, "monitor": 1, "entity": 2}
_NUMBER_CHARS = "0123456789."


def _turn(R: np.ndarray, axis, degrees: float) -> np.ndarray:
    """The rotation ``R`` (3x3) turned by ``degrees`` about the world ``axis``."""
    c2w = np.eye(4)
    c2w[:3, :3] = R
    return rotate_about_axis(c2w, axis, degrees)[:3, :3]


class _Drag:
    """One mouse gesture: what it does and where it started."""

    def __init__(self, mode: str, pos: np.ndarray, button: int):
        self.mode = mode  # click, orbit, pan, look, move, rotate
        self.start = pos.copy()
        self.last = pos.copy()
        self.button = button
        self.target: Selection | None = None
        self.start_position: np.ndarray | None = None
        self.start_rotation: np.ndarray | None = None
        self.depth = 1.0
        self.merge_key = ""
        self.moved = False
        self.handle: Handle | None = None  # a gizmo drag: the handle taken
        self.gizmo: Gizmo | None = None  # ... and the gizmo as it was at the press


class _Transform:
    """A G (move) or R (rotate) in progress: the mouse drives it with no button held."""

    def __init__(self, mode: str, target: Selection, position, rotation, start_px, depth):
        self.mode = mode  # "move" or "rotate"
        self.target = target
        self.start_position = position
        self.start_rotation = rotation  # 3x3, None for an entity anchor
        self.start_px = np.asarray(start_px, dtype=np.float64)
        self.now_px = self.start_px.copy()
        self.depth = depth
        self.axis: int | None = None  # the constraint: an axis (or a plane's normal)
        self.local = False  # the object's own axis instead of the world's
        self.plane = False  # Shift+axis: the plane of the two other axes
        self.typed = ""  # a number typed while transforming
        self.merge_key = f"transform-{mode}:{target.kind}:{target.id}"

    def axis_vector(self) -> np.ndarray | None:
        if self.axis is None:
            return None
        if self.local and self.start_rotation is not None:
            return np.asarray(self.start_rotation[:, self.axis], dtype=np.float64)
        return np.eye(3)[self.axis]

    def value(self) -> float | None:
        text = self.typed
        try:
            return float(text) if text not in ("", "-", ".", "-.") else None
        except ValueError:
            return None

    def describe(self) -> str:
        what = "Move" if self.mode == "move" else "Rotate"
        if self.axis is None:
            where = "free" if self.mode == "move" else "about the view axis"
        else:
            space = "local" if self.local else "global"
            name = AXIS_NAMES[self.axis]
            if self.plane:
                others = "".join(AXIS_NAMES[i] for i in range(3) if i != self.axis)
                where = f"in the {others} plane ({space})"
            else:
                where = f"{'along' if self.mode == 'move' else 'about'} {name} ({space})"
        unit = "" if self.mode == "move" else "°"
        typed = f"  ·  {self.typed}{unit}" if self.typed else ""
        return f"{what} {where}{typed}"


class _KeyClaim(QObject):
    """Keeps the keys the viewport needs from the window's shortcuts: every key while G / R or a
    point pick is under way, the fly keys (R records) in fly mode."""

    def __init__(self, viewport: Viewport):
        super().__init__(viewport)
        self.viewport = viewport

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ShortcutOverride and self.viewport._claims(event):
            event.accept()
            return True
        return False


class Viewport(QWidget):
    """The studio's 3D view of a :class:`~studio.document.ProjectDocument`."""

    fly_mode_changed = Signal(bool)
    recording_changed = Signal(bool)
    view_changed = Signal()  # the viewport camera moved
    recorded = Signal(int)  # a recorded flight became this many keyframes
    follow_playhead_changed = Signal(bool)
    transform_changed = Signal(str)  # what a G / R is doing ("" when it ended)

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.point_uploads = 0
        self._max_points = DEFAULT_MAX_POINTS
        self._max_points_set = False  # True once someone chose a cap
        self._gl_renderer = ""
        self._gl_ready = False  # the canvas has a GL context (points upload from then on)
        self._upload_pending = False
        self._uploaded_cloud: object | None = None
        self._uploaded_key: tuple[int, int] = (0, 0)
        self._displayed_points = 0
        self._scene_center = np.zeros(3)
        self._scene_scale = 1.0
        self._frustum_size: float | None = None  # None: follow the scene's scale
        self._through: tuple[str, str] | None = None  # the camera we look through (hidden)
        self._follow_playhead = False
        self._drag: _Drag | None = None
        self._gizmo: Gizmo | None = None
        self._hover: Handle | None = None
        self._transform: _Transform | None = None
        self._point_pick: Callable[[np.ndarray | None], None] | None = None
        self._mouse: np.ndarray | None = None  # the last mouse position over the canvas

        self._fly = False
        self._fly_speed: float | None = None  # world units per second; None: from the scene
        self._held: set[str] = set()
        self._fly_last = time.perf_counter()
        self._fly_timer = QTimer(self)
        self._fly_timer.setInterval(FLY_TICK_MS)
        self._fly_timer.timeout.connect(self._fly_tick)

        self._recording = False
        self._samples: list[tuple[np.ndarray, float]] = []
        self._record_fps = 16
        self._record_timer = QTimer(self)
        self._record_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._record_timer.timeout.connect(self._record_sample)
        self.record_mode = "replace"  # or "append"
        self.record_tolerance_pos: float | None = None  # None: 0.5% of the scene's size
        self.record_tolerance_deg = 1.0

        self.canvas = scene.SceneCanvas(
            app="pyside6", keys=None, bgcolor=BACKGROUND, parent=self, show=False
        )
        self.canvas.native.setMinimumSize(64, 64)
        self.canvas.native.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.canvas.native.setMouseTracking(True)  # hover on the gizmo, G / R follow the mouse
        self.canvas.native.installEventFilter(_KeyClaim(self))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas.native)

        self.view = self.canvas.central_widget.add_view()
        self.view.border_color = None
        self.camera = PoseCamera(fov=60.0)
        self.view.camera = self.camera

        self._build_visuals()
        self._build_hud()
        ev = self.canvas.events
        ev.initialize.connect(self._on_gl_initialize)
        ev.mouse_press.connect(self._on_mouse_press)
        ev.mouse_move.connect(self._on_mouse_move)
        ev.mouse_release.connect(self._on_mouse_release)
        ev.mouse_double_click.connect(self._on_mouse_double_click)
        ev.mouse_wheel.connect(self._on_mouse_wheel)
        ev.key_press.connect(self._on_key_press)
        ev.key_release.connect(self._on_key_release)
        ev.resize.connect(lambda _e: self._draw_gizmo())
        self.view_changed.connect(self._draw_gizmo)

        document.changed.connect(self._on_changed)
        document.selection_changed.connect(self._on_selection_changed)
        document.playhead_changed.connect(self._on_playhead_changed)

        self._upload_cloud()
        self.frame_scene()
        self._redraw_all_overlays()

    # ================================================================== visuals
    def _line(self, connect: str, width: float) -> scene.visuals.Line:
        line = scene.visuals.Line(
            pos=np.zeros((2, 3), dtype=np.float32),
            connect=connect,
            method="gl",
            width=width,
            antialias=False,
            parent=self.view.scene,
        )
        line.set_gl_state("translucent", depth_test=False)
        line.order = 10
        line.visible = False
        return line

    def _build_visuals(self) -> None:
        self._points = PointCloudNode(parent=self.view.scene)
        self._points.order = 0
        self._path_line = self._line("strip", 1.5)
        self._tick_lines = self._line("segments", 2.0)
        self._keyframe_lines = self._line("segments", 1.5)
        self._monitor_lines = self._line("segments", 1.5)
        self._playhead_lines = self._line("segments", 2.0)
        self._playhead_lines.order = 9  # under the keyframes: a selected keyframe stays visible
        self._look_at_lines = self._line("segments", 2.0)
        self._entity_markers = scene.visuals.Markers(parent=self.view.scene)
        self._entity_markers.set_gl_state("translucent", depth_test=False)
        self._entity_markers.order = 11
        self._entity_markers.visible = False
        self._entity_labels = scene.visuals.Text(
            text="",
            color="white",
            font_size=10,
            bold=True,
            anchor_x="left",
            anchor_y="bottom",
            parent=self.view.scene,
        )
        self._entity_labels.order = 12
        self._entity_labels.visible = False
        # The gizmo: a few lines and a small mesh, redrawn on camera moves (never the points).
        self._gizmo_lines = self._line("segments", 2.5)
        self._gizmo_lines.order = 21
        self._gizmo_mesh = scene.visuals.Mesh(parent=self.view.scene)
        self._gizmo_mesh.set_gl_state("translucent", depth_test=False, cull_face=False)
        self._gizmo_mesh.order = 20
        self._gizmo_mesh.visible = False

    def _build_hud(self) -> None:
        # A Qt label over the GL view (vispy text would rasterise its glyphs on the first frame
        # of fly mode: a visible stall on a software GL).
        self._hud = QLabel(self)
        self._hud.setObjectName("viewportHud")
        self._hud.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._hud.move(8, 8)
        self._hud.hide()

    def _update_hud(self) -> None:
        color = "#f0f0f0"
        if self._transform is not None:
            text = (
                self._transform.describe()
                + "   —   X/Y/Z axis (twice: local) · Shift+X/Y/Z plane · type a value · "
                "Enter or click: done · Esc or right-click: cancel"
            )
            color = "#ffd24a"
        elif self._point_pick is not None:
            text = (
                "Click the entity in the 3D view (drag still orbits) · Esc or right-click: cancel"
            )
            color = "#ffd24a"
        elif self._fly:
            text = (
                "FLY   WASD move · Q/E down/up · drag to look · wheel speed · R record · Esc exit"
            )
            if self._recording:
                text = "● REC   " + text
                color = "#ff5a4d"
        else:
            self._hud.hide()
            return
        self._hud.setText(text)
        self._hud.setStyleSheet(
            f"QLabel#viewportHud {{ color: {color}; background: rgba(0, 0, 0, 110);"
            " padding: 3px 6px; border-radius: 3px; }"
        )
        self._hud.adjustSize()
        self._hud.raise_()
        self._hud.show()

    def _overlay_nodes(self) -> list:
        return [
            self._path_line,
            self._tick_lines,
            self._keyframe_lines,
            self._monitor_lines,
            self._playhead_lines,
            self._look_at_lines,
            self._entity_markers,
            self._entity_labels,
            self._gizmo_lines,
            self._gizmo_mesh,
        ]

    @staticmethod
    def _set_lines(line, pos: np.ndarray, color) -> None:
        if len(pos) < 2:
            line.visible = False
            return
        line.set_data(pos=np.asarray(pos, dtype=np.float32), color=color)
        line.visible = True

    # ================================================================== point cloud
    @property
    def max_points(self) -> int:
        """The level-of-detail cap: at most this many points are drawn (a deterministic subset)."""
        return self._max_points

    @max_points.setter
    def max_points(self, value: int) -> None:
        value = int(value)
        if value <= 0:
            raise ValueError(f"max_points must be positive, got {value}")
        self._max_points_set = True
        self._set_cap(value)

    def _set_cap(self, value: int) -> None:
        old, self._max_points = self._max_points, value
        n = self._cloud_size()
        if n and min(n, old) != min(n, value):  # the displayed subset changes
            self._upload_pending = True
            if self._gl_ready:
                self._upload_points()

    def _cloud_size(self) -> int:
        cloud = self.document.cloud
        return 0 if cloud is None else len(cloud.xyz)

    @property
    def gl_renderer(self) -> str:
        """The OpenGL renderer's name once the canvas is initialised ("" before)."""
        return self._gl_renderer

    def _on_gl_initialize(self, _event=None) -> None:
        from vispy.gloo import gl

        try:
            self._gl_renderer = str(gl.glGetParameter(gl.GL_RENDERER))
        except Exception:  # noqa: BLE001 - no renderer string: keep the default cap
            self._gl_renderer = ""
        finally:
            self._gl_ready = True
        name = self._gl_renderer.lower()
        if not self._max_points_set and any(s in name for s in _SOFTWARE_RENDERERS):
            # CPU rasterisers draw ~1M points a second: keep the view interactive.
            self._max_points = min(self._max_points, SOFTWARE_MAX_POINTS)
        if self._upload_pending:
            self._upload_points()

    def set_max_points(self, value: int) -> None:
        self.max_points = value

    @property
    def displayed_points(self) -> int:
        """How many points are drawn (after the level-of-detail cap); before the GL context
        exists, how many will be."""
        if self._upload_pending:
            return min(self._cloud_size(), self._max_points)
        return self._displayed_points

    @property
    def point_size(self) -> float:
        return self._points.point_size

    def set_point_size(self, pixels: float) -> None:
        """Point size in screen pixels (a shader uniform: nothing is re-uploaded)."""
        pixels = float(pixels)
        if not (0.0 < pixels <= 64.0):
            raise ValueError(f"point size must be between 0 and 64 pixels, got {pixels}")
        self._points.point_size = pixels

    def _upload_cloud(self) -> None:
        """The document's cloud (or the cap) changed: measure the scene now and send the points
        to the GPU as soon as there is a GL context (at once when there already is one)."""
        cloud = self.document.cloud
        self._uploaded_cloud = cloud
        self._uploaded_key = self._cloud_key()
        xyz = None if cloud is None else np.asarray(cloud.xyz)
        if xyz is None or len(xyz) == 0:
            self._upload_pending = False
            self._points.set_data(np.zeros((0, 4), dtype=np.float32))  # uploads nothing
            self._displayed_points = 0
            self._measure_project()
            return
        self._measure_scene(xyz)
        self.camera.set_clip(self._scene_scale * 1e-3, self._scene_scale * 100.0)
        self._upload_pending = True
        if self._gl_ready:
            self._upload_points()

    def _upload_points(self) -> None:
        """The ONLY place that sends points to the GPU (counted in ``point_uploads``)."""
        self._upload_pending = False
        cloud = self.document.cloud
        if cloud is None or len(cloud.xyz) == 0:
            return
        xyz = np.asarray(cloud.xyz)
        rgb = getattr(cloud, "rgb", None)
        idx = display_indices(len(xyz), self._max_points)
        if idx is not None:
            xyz = xyz[idx]
            rgb = None if rgb is None else np.asarray(rgb)[idx]
        packed = pack_points(xyz, rgb)
        self._points.set_data(packed)
        self.point_uploads += 1
        self._displayed_points = len(packed)

    def _measure_scene(self, xyz: np.ndarray) -> None:
        sample = np.asarray(xyz[:: max(1, len(xyz) // 100_000)], dtype=np.float64)
        lo = np.percentile(sample, 2, axis=0)
        hi = np.percentile(sample, 98, axis=0)
        self._scene_center = np.median(sample, axis=0)
        self._scene_scale = float(max(np.linalg.norm(hi - lo), 1e-3))

    def _measure_project(self) -> None:
        """Without a cloud, size the scene from the cameras and anchors (at least 1 unit)."""
        p = self.document.project
        pts = [k.position for k in p.camera_path.keyframes]
        pts += [m.pose.position for m in p.monitors]
        pts += [e.anchor for e in p.entities if e.anchor is not None]
        if len(pts) >= 2:
            a = np.asarray(pts, dtype=np.float64)
            self._scene_center = a.mean(axis=0)
            self._scene_scale = float(max(np.linalg.norm(a.max(axis=0) - a.min(axis=0)), 1.0))
        else:
            self._scene_center = np.zeros(3)
            self._scene_scale = 1.0
        self.camera.set_clip(self._scene_scale * 1e-3, self._scene_scale * 100.0)

    @property
    def scene_scale(self) -> float:
        """A robust size of the scene (the diagonal of its 2-98% box), in world units."""
        return self._scene_scale

    # ================================================================== document events
    def _cloud_key(self) -> tuple[int, int]:
        cloud = self.document.cloud
        return id(cloud), id(getattr(cloud, "xyz", None))

    def reload_cloud(self) -> None:
        """Upload the document's cloud again (after changing its arrays in place)."""
        self._upload_cloud()

    def _on_changed(self, aspect: str) -> None:
        new_cloud = self.document.cloud is not self._uploaded_cloud
        # Only a scene change can bring new points; a "scene" edit of the metadata alone (same
        # cloud, same arrays) uploads nothing.
        if aspect in ("scene", "all") and self._cloud_key() != self._uploaded_key:
            self._upload_cloud()
            if new_cloud and not self._fly:
                self.frame_scene()  # another scene: a new reconstruction or another project
        if self._through is not None:
            if self._through_alive():
                self._refresh_through()  # the camera we look through may have been edited
            else:
                self._through = None
        self._redraw_all_overlays()

    def _refresh_through(self) -> None:
        kind, ident = self._through  # type: ignore[misc]
        if kind == "keyframe":
            self.look_through_keyframe(ident)
        elif kind == "monitor":
            self.look_through_monitor(ident)
        elif not self.look_through_playhead():
            self._through = None

    def _on_selection_changed(self, _sel) -> None:
        if self._transform is not None and self._transform.target != _sel:
            self.cancel_transform()
        self._hover = None
        self._draw_keyframes()
        self._draw_monitors()
        self._draw_entities()
        self._draw_gizmo()

    def _on_playhead_changed(self, _frame: int) -> None:
        if self._follow_playhead:
            self.look_through_playhead()
        self._draw_playhead()

    def _through_alive(self) -> bool:
        kind, ident = self._through  # type: ignore[misc]
        p = self.document.project
        if kind == "keyframe":
            return any(k.id == ident for k in p.camera_path.keyframes)
        if kind == "monitor":
            return any(m.id == ident for m in p.monitors)
        return True

    # ================================================================== overlays
    @property
    def frustum_size(self) -> float:
        """Depth of the camera glyphs in world units (follows the scene's size unless set)."""
        if self._frustum_size is not None:
            return self._frustum_size
        return 0.06 * self._scene_scale

    def set_frustum_size(self, size: float | None) -> None:
        self._frustum_size = None if size is None else float(size)
        self._redraw_all_overlays()

    def _aspect(self) -> float:
        g = self.document.project.generation
        return g.width / g.height

    def _selected(self, kind: str, ident: str) -> bool:
        sel = self.document.selection
        return sel is not None and sel.kind == kind and sel.id == ident

    def _baked(self):
        if not self.document.project.camera_path.keyframes:
            return None
        try:
            baked = self.document.baked()
        except Exception:  # noqa: BLE001 - a path the baker refuses is simply not drawn
            return None
        return baked if len(baked) else None

    def _redraw_all_overlays(self) -> None:
        self._draw_keyframes()
        self._draw_path()
        self._draw_monitors()
        self._draw_entities()
        self._draw_look_at()
        self._draw_playhead()
        self._draw_gizmo()

    def _draw_keyframes(self) -> None:
        kfs = [
            k
            for k in self.document.project.camera_path.keyframes
            if self._through != ("keyframe", k.id)
        ]
        poses = [keyframe_pose(k) for k in kfs]
        segs = frustums(poses, [k.fov for k in kfs], self._aspect(), self.frustum_size)
        colors = np.repeat(
            np.array(
                [
                    SELECTED_COLOR if self._selected("keyframe", k.id) else KEYFRAME_COLOR
                    for k in kfs
                ]
            ).reshape(-1, 4),
            SEGMENTS_PER_FRUSTUM,
            axis=0,
        )
        self._set_lines(self._keyframe_lines, segs, colors)

    def _draw_monitors(self) -> None:
        mons = [m for m in self.document.project.monitors if self._through != ("monitor", m.id)]
        poses = [pose_matrix(m.pose.position, m.pose.orientation) for m in mons]
        segs = frustums(poses, [m.fov for m in mons], self._aspect(), self.frustum_size)
        colors = []
        for m in mons:
            if self._selected("monitor", m.id):
                colors.append(SELECTED_COLOR)
            else:
                colors.append(MONITOR_COLOR if m.enabled else MONITOR_DISABLED_COLOR)
        colors_v = np.repeat(np.array(colors).reshape(-1, 4), SEGMENTS_PER_FRUSTUM, axis=0)
        self._set_lines(self._monitor_lines, segs, colors_v)

    def _draw_path(self) -> None:
        baked = self._baked()
        if baked is None:
            self._path_line.visible = False
            self._tick_lines.visible = False
            return
        self._set_lines(self._path_line, baked.positions, PATH_COLOR)
        frames = round_boundary_frames(
            len(baked), self.document.project.generation.frames_per_round
        )
        ticks = tick_segments(baked.c2w[frames], self.frustum_size * 0.6)
        self._set_lines(self._tick_lines, ticks, TICK_COLOR)

    def _draw_entities(self) -> None:
        ents = [e for e in self.document.project.entities if e.anchor is not None]
        if not ents:
            self._entity_markers.visible = False
            self._entity_labels.visible = False
            return
        pos = np.array([e.anchor for e in ents], dtype=np.float32)
        colors = np.array(
            [SELECTED_COLOR if self._selected("entity", e.id) else ENTITY_COLOR for e in ents],
            dtype=np.float32,
        )
        self._entity_markers.set_data(
            pos, face_color=colors, edge_color="white", edge_width=1.0, size=11, symbol="disc"
        )
        self._entity_markers.visible = True
        self._entity_labels.text = [f"  {e.name}" for e in ents]
        self._entity_labels.pos = pos
        self._entity_labels.visible = True

    def _draw_look_at(self) -> None:
        target = self.document.project.camera_path.settings.look_at
        if target is None:
            self._look_at_lines.visible = False
            return
        segs = cross_segments(np.array([target]), self.frustum_size)
        self._set_lines(self._look_at_lines, segs, LOOK_AT_COLOR)

    def _draw_playhead(self) -> None:
        baked = self._baked()
        if baked is None or self._through == ("playhead", ""):
            self._playhead_lines.visible = False
            return
        i = int(min(max(self.document.playhead, 0), len(baked) - 1))
        # Drawn a little smaller than a keyframe glyph, so both show when the playhead is on one.
        size = 0.8 * self.frustum_size
        segs = frustums([baked.c2w[i]], [float(baked.fov[i])], self._aspect(), size)
        self._set_lines(self._playhead_lines, segs, PLAYHEAD_COLOR)

    # ------------------------------------------------------------------ the gizmo
    def _gizmo_for_selection(self) -> Gizmo | None:
        sel = self.document.selection
        if sel is None or sel.kind not in _KIND_ORDER or self._fly:
            return None
        if self._through == (sel.kind, sel.id):
            return None
        try:
            position, rotation = self._target_pose(sel)
        except KeyError:
            return None
        size = self._view_size()
        _, z = self.camera.project(position, size)
        if not z[0] > self.camera.clip[0]:
            return None
        length = GIZMO_PX * float(z[0]) / self.camera.focal_px(size[1])
        return Gizmo(position, np.eye(3), length, rotation is not None, self.camera.c2w[:3, :3])

    @property
    def gizmo(self) -> Gizmo | None:
        """The gizmo on the selection as drawn now (None: no keyframe, monitor or entity
        selected, or it is behind the camera)."""
        return self._gizmo

    def _draw_gizmo(self) -> None:
        if self._transform is not None:
            self._gizmo = None
            self._draw_constraint()
            return
        g = self._gizmo_for_selection()
        self._gizmo = g
        if g is None:
            self._gizmo_lines.visible = False
            self._gizmo_mesh.visible = False
            return
        pos, colors = g.line_data(self._hover)
        self._set_lines(self._gizmo_lines, pos, colors)
        verts, faces, vertex_colors = g.mesh_data(self._hover)
        self._gizmo_mesh.set_data(vertices=verts, faces=faces, vertex_colors=vertex_colors)
        self._gizmo_mesh.visible = True

    def _draw_constraint(self) -> None:
        """While G / R runs: the constraint's axis (or the plane's two axes) as long lines
        through where the object started; nothing when it is free."""
        t = self._transform
        self._gizmo_mesh.visible = False
        if t is None or t.axis is None:
            self._gizmo_lines.visible = False
            return
        basis = t.start_rotation if (t.local and t.start_rotation is not None) else np.eye(3)
        shown = [i for i in range(3) if i != t.axis] if t.plane else [t.axis]
        half = 2.0 * self._scene_scale
        c = np.asarray(t.start_position, dtype=np.float64)
        pos = np.concatenate([[c - basis[:, i] * half, c + basis[:, i] * half] for i in shown])
        colors = np.repeat(AXIS_COLORS[shown], 2, axis=0)
        self._set_lines(self._gizmo_lines, pos, colors)

    def _project_px(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> canvas pixels (N, 2), NaN behind the camera."""
        uv, _ = self.camera.project(np.asarray(points, dtype=np.float64), self._view_size())
        ox, oy = self.view.pos
        return uv + np.array([ox, oy])

    def _ray(self, px) -> tuple[np.ndarray, np.ndarray]:
        """The world ray (origin, direction) through canvas pixel ``px``."""
        ox, oy = self.view.pos
        return self.camera.ray(float(px[0]) - ox, float(px[1]) - oy, self._view_size())

    def gizmo_handle_at(self, x: float, y: float) -> Handle | None:
        """The gizmo handle under canvas pixel (x, y), if any."""
        return None if self._gizmo is None else self._gizmo.pick(self._project_px, x, y)

    def _update_hover(self, pos: np.ndarray) -> None:
        handle = self.gizmo_handle_at(*pos) if self._gizmo is not None else None
        if handle != self._hover:
            self._hover = handle
            self._draw_gizmo()

    # ================================================================== camera: public API
    def current_view_pose(self) -> tuple[np.ndarray, float]:
        """(c2w 4x4 float64, OpenCV axes; vertical fov in degrees) of the viewport camera."""
        return self.camera.c2w, float(self.camera.fov)

    def set_view(self, c2w: np.ndarray, fov: float | None = None) -> None:
        """Put the viewport camera at ``c2w`` (OpenCV axes) with vertical ``fov`` (degrees)."""
        self.camera.set_pose(c2w, fov)
        self._camera_moved()

    def look_through_keyframe(self, kf_id: str) -> None:
        kf = self.document.project.camera_path.keyframe(kf_id)
        self._look_through(keyframe_pose(kf), kf.fov, ("keyframe", kf_id))

    def look_through_monitor(self, monitor_id: str) -> None:
        m = self.document.project.monitor(monitor_id)
        c2w = pose_matrix(m.pose.position, m.pose.orientation)
        self._look_through(c2w, m.fov, ("monitor", monitor_id))

    def look_through_playhead(self) -> bool:
        """Look through the baked path's camera at the playhead; False when there is no path."""
        baked = self._baked()
        if baked is None:
            return False
        i = int(min(max(self.document.playhead, 0), len(baked) - 1))
        self._look_through(baked.c2w[i], float(baked.fov[i]), ("playhead", ""))
        return True

    @property
    def looking_through(self) -> tuple[str, str] | None:
        """("keyframe" | "monitor", id) or ("playhead", "") while looking through a camera."""
        return self._through

    @property
    def follow_playhead(self) -> bool:
        return self._follow_playhead

    def set_follow_playhead(self, on: bool) -> None:
        """While on, the view looks through the playhead camera whenever the playhead moves (a
        user navigation turns it off; ``follow_playhead_changed`` tells)."""
        on = bool(on)
        changed = on != self._follow_playhead
        self._follow_playhead = on
        if on:
            self.look_through_playhead()
        if changed:
            self.follow_playhead_changed.emit(on)

    def _look_through(self, c2w: np.ndarray, fov: float, what: tuple[str, str]) -> None:
        self.camera.set_pose(c2w, fov)
        self.view_changed.emit()
        previous, self._through = self._through, what
        if previous != what:
            self._redraw_all_overlays()

    def _camera_moved(self) -> None:
        """A user navigation: leave look-through (the hidden glyph comes back)."""
        self.view_changed.emit()
        if self._through is not None:
            self._through = None
            self._redraw_all_overlays()
        if self._follow_playhead:
            self._follow_playhead = False
            self.follow_playhead_changed.emit(False)

    def orbit(self, yaw_deg: float, pitch_deg: float) -> None:
        """Orbit about the target (see :meth:`PoseCamera.orbit` for the signs)."""
        self.camera.orbit(yaw_deg, pitch_deg)
        self._camera_moved()

    def pan(self, du: float, dv: float) -> None:
        """Drag the scene by (du, dv) pixels."""
        self.camera.pan(du, dv, self._view_size()[1])
        self._camera_moved()

    def zoom(self, steps: float) -> None:
        """Dolly toward the target (positive) or away (negative), 10% a step."""
        self.camera.dolly(steps, min_distance=self._scene_scale * 1e-3)
        self._camera_moved()

    def frame_scene(self) -> None:
        """Back to the source image's camera (identity pose, the source fov), orbiting the
        scene's centre: the view the reconstruction was made from (Home)."""
        c2w = np.eye(4)
        if self._cloud_size():
            dist = float(self._scene_center[2])
            if dist <= 1e-6:
                dist = float(np.linalg.norm(self._scene_center)) or self._scene_scale * 0.5
        else:
            dist = self._scene_scale
        self.camera.orbit_distance = dist
        self.camera.set_pose(c2w, self.source_fov())
        self._camera_moved()

    def overview(self) -> None:
        """The view the studio opens a project with: from behind and above the source camera, looking at
        the scene's middle, so the source camera, the path and the monitors are all in sight."""
        self.frame_scene()
        if not self._cloud_size():
            return
        from worldstudio.core.geometry.transforms import look_at

        center = np.asarray(self._scene_center, dtype=np.float64)
        d = max(float(center[2]), self._scene_scale * 0.25)
        eye = np.array([0.35 * d, -0.35 * d, -0.5 * d])  # right, up (-y) and behind (-z)
        self.set_view(look_at(eye, center), self.source_fov())

    def source_fov(self) -> float:
        """The source image's vertical fov (from the project's intrinsics; 60 without them)."""
        intr = self.document.project.intrinsics
        if intr is None:
            return 60.0
        from worldstudio.core.geometry.camera import fov_from_intrinsics

        try:
            return float(fov_from_intrinsics(np.array(intr.K), intr.height))
        except Exception:  # noqa: BLE001 - odd intrinsics: a plain default view
            return 60.0

    def _view_size(self) -> tuple[float, float]:
        w, h = self.view.size
        return float(max(w, 1.0)), float(max(h, 1.0))

    # ================================================================== picking
    def _pickables(self) -> list[tuple[str, str, tuple[float, float, float]]]:
        p = self.document.project
        out = [("keyframe", k.id, k.position) for k in p.camera_path.keyframes]
        out += [("monitor", m.id, m.pose.position) for m in p.monitors]
        out += [("entity", e.id, e.anchor) for e in p.entities if e.anchor is not None]
        return [o for o in out if self._through != (o[0], o[1])]

    def screen_position(self, point) -> tuple[float, float] | None:
        """Where a world point appears in the viewport (widget pixels), None when behind."""
        uv, _ = self.camera.project(np.asarray(point, dtype=np.float64), self._view_size())
        if not np.all(np.isfinite(uv[0])):
            return None
        ox, oy = self.view.pos
        return float(uv[0, 0] + ox), float(uv[0, 1] + oy)

    def pick(self, x: float, y: float, radius: float = PICK_RADIUS_PX) -> Selection | None:
        """The keyframe, monitor or entity whose position projects nearest to widget pixel (x, y),
        within ``radius`` pixels (nearer to the camera wins a tie); None when there is none."""
        items = self._pickables()
        if not items:
            return None
        ox, oy = self.view.pos
        uv, z = self.camera.project(np.array([it[2] for it in items]), self._view_size())
        d = np.hypot(uv[:, 0] + ox - x, uv[:, 1] + oy - y)
        d[~np.isfinite(d)] = np.inf
        best = None
        for i in np.argsort(d, kind="stable"):
            if d[i] > radius:
                break
            key = (round(float(d[i]), 3), float(z[i]), _KIND_ORDER[items[i][0]])
            if best is None or key < best[0]:
                best = (key, i)
        if best is None:
            return None
        kind, ident, _ = items[best[1]]
        return Selection(kind, ident)

    # ================================================================== mouse
    def _on_mouse_press(self, ev) -> None:
        pos = np.asarray(ev.pos, dtype=np.float64)
        mods = ev.modifiers or ()
        self.canvas.native.setFocus(Qt.FocusReason.MouseFocusReason)
        ev.handled = True
        self._mouse = pos
        if self._transform is not None:  # G / R: a left click confirms, a right one cancels
            if ev.button == 1:
                self.confirm_transform()
            elif ev.button == 2:
                self.cancel_transform()
            return
        if self._fly:
            self._drag = _Drag("look", pos, ev.button)
            return
        if self._point_pick is not None and ev.button == 2:
            self._end_point_pick(None)
            return
        picking = self._point_pick is not None
        if ev.button == 1 and (keys.SHIFT in mods or keys.CONTROL in mods) and not picking:
            hit = self.pick(pos[0], pos[1])
            if hit is not None and hit.kind in _KIND_ORDER:
                self.document.set_selection(hit)
                rotate = keys.CONTROL in mods and hit.kind in ("keyframe", "monitor")
                self._begin_edit_drag("rotate" if rotate else "move", hit, pos, ev.button)
                return
            handle = self.gizmo_handle_at(*pos)
            if handle is not None:
                self._begin_gizmo_drag(handle, pos, ev.button)
                return
            self._drag = _Drag("pan" if keys.SHIFT in mods else "orbit", pos, ev.button)
            return
        if ev.button == 1:
            handle = None if picking else self.gizmo_handle_at(*pos)
            if handle is not None:  # the gizmo takes the press: no orbit, no pan
                self._begin_gizmo_drag(handle, pos, ev.button)
                return
            self._drag = _Drag("click", pos, ev.button)
        elif ev.button in (2, 3):
            self._drag = _Drag("pan", pos, ev.button)

    def _on_mouse_move(self, ev) -> None:
        pos = np.asarray(ev.pos, dtype=np.float64)
        self._mouse = pos
        if self._transform is not None:
            ev.handled = True
            self._transform.now_px = pos
            self._update_transform()
            return
        drag = self._drag
        if drag is None:
            self._update_hover(pos)
            return
        ev.handled = True
        d = pos - drag.last
        if drag.mode == "gizmo":
            if drag.moved or np.hypot(*(pos - drag.start)) > CLICK_SLOP_PX:
                drag.moved = True
                self._apply_gizmo_drag(drag, pos)
            return
        if drag.mode == "click":
            if np.hypot(*(pos - drag.start)) <= CLICK_SLOP_PX:
                return
            drag.mode = "orbit"
            d = pos - drag.start
        drag.last = pos
        if drag.mode == "orbit":
            self.orbit(-d[0] * ORBIT_DEG_PER_PX, d[1] * ORBIT_DEG_PER_PX)
        elif drag.mode == "pan":
            self.pan(d[0], d[1])
        elif drag.mode == "look":
            self.camera.look(d[0] * LOOK_DEG_PER_PX, -d[1] * LOOK_DEG_PER_PX)
            self._camera_moved()
        elif drag.mode in ("move", "rotate"):
            drag.moved = True
            self._apply_edit_drag(drag, pos)

    def _on_mouse_release(self, ev) -> None:
        drag = self._drag
        if drag is None or ev.button != drag.button:
            return
        ev.handled = True
        pos = np.asarray(ev.pos, dtype=np.float64)
        self._drag = None
        if drag.mode == "click":
            if self._point_pick is not None:
                self._end_point_pick(self.pick_point(pos[0], pos[1]))
            else:
                self.document.set_selection(self.pick(pos[0], pos[1]))
        elif drag.mode in ("move", "rotate"):
            if np.any(pos != drag.start) or drag.moved:
                self._apply_edit_drag(drag, pos)
            self.document.seal()
        elif drag.mode == "gizmo":
            if drag.moved:
                self._apply_gizmo_drag(drag, pos)
            else:  # a click on the gizmo: it may be meant for an object under it
                hit = self.pick(pos[0], pos[1])
                if hit is not None:
                    self.document.set_selection(hit)
            self.document.seal()

    def _on_mouse_double_click(self, ev) -> None:
        """Double-click a keyframe or a monitor: look through it."""
        if self._fly or ev.button != 1:
            return
        hit = self.pick(*np.asarray(ev.pos, dtype=np.float64))
        if hit is None:
            return
        ev.handled = True
        self._drag = None
        if hit.kind == "keyframe":
            self.look_through_keyframe(hit.id)
        elif hit.kind == "monitor":
            self.look_through_monitor(hit.id)

    def _on_mouse_wheel(self, ev) -> None:
        ev.handled = True
        steps = float(ev.delta[1])
        if steps == 0.0:
            return
        if self._fly:
            self.fly_speed = self.fly_speed * 1.2**steps
        else:
            self.zoom(steps)

    # ------------------------------------------------------------------ edit drags
    def _target_pose(self, sel: Selection) -> tuple[np.ndarray, np.ndarray | None]:
        p = self.document.project
        if sel.kind == "keyframe":
            k = p.camera_path.keyframe(sel.id)
            return np.array(k.position, dtype=np.float64), keyframe_pose(k)[:3, :3]
        if sel.kind == "monitor":
            m = p.monitor(sel.id)
            c2w = pose_matrix(m.pose.position, m.pose.orientation)
            return np.array(m.pose.position, dtype=np.float64), c2w[:3, :3]
        e = p.entity(sel.id)
        return np.array(e.anchor, dtype=np.float64), None

    def _begin_edit_drag(self, mode: str, sel: Selection, pos: np.ndarray, button: int) -> None:
        position, rotation = self._target_pose(sel)
        drag = _Drag(mode, pos, button)
        drag.target = sel
        drag.start_position = position
        drag.start_rotation = rotation
        _, z = self.camera.project(position, self._view_size())
        drag.depth = float(z[0]) if z[0] > 0 else self.camera.orbit_distance
        drag.merge_key = f"viewport-{mode}:{sel.kind}:{sel.id}"
        self.document.seal()
        self._drag = drag

    def _apply_edit_drag(self, drag: _Drag, pos: np.ndarray) -> None:
        sel = drag.target
        assert sel is not None and drag.start_position is not None
        du, dv = pos - drag.start
        try:
            if drag.mode == "move":
                delta = self.camera.pixel_to_world_delta(du, dv, drag.depth, self._view_size()[1])
                self._apply_pose(sel, drag.merge_key, position=drag.start_position + delta)
            else:
                assert drag.start_rotation is not None
                c2w = np.eye(4)
                c2w[:3, :3] = drag.start_rotation
                c2w[:3, 3] = drag.start_position
                # Left/right turns about the world's up (drag right = turn right), up/down tilts
                # about the object's own x axis (drag up = look up).
                c2w = rotate_about_axis(c2w, WORLD_UP, -du * ROTATE_DEG_PER_PX)
                c2w = rotate_about_axis(c2w, c2w[:3, 0], -dv * ROTATE_DEG_PER_PX)
                self._apply_pose(sel, drag.merge_key, rotation=c2w[:3, :3])
        except KeyError:  # the object went away under the drag (an undo, a delete)
            self._drag = None

    def _apply_pose(
        self,
        sel: Selection,
        merge_key: str,
        position: np.ndarray | None = None,
        rotation: np.ndarray | None = None,
    ) -> None:
        """Set the selected object's position and/or rotation (3x3) as a mergeable edit."""
        doc = self.document
        pos = None if position is None else tuple(float(v) for v in position)
        quat = None
        if rotation is not None:
            c2w = np.eye(4)
            c2w[:3, :3] = rotation
            quat = tuple(float(v) for v in pose_from_matrix(c2w)[1])
        if sel.kind == "keyframe":
            commands.move_keyframe(doc, sel.id, pos, quat, merge_key=merge_key)
        elif sel.kind == "monitor":
            commands.move_monitor(doc, sel.id, pos, quat, merge_key=merge_key)
        elif pos is not None:
            commands.move_entity_anchor(doc, sel.id, pos, merge_key=merge_key)

    # ------------------------------------------------------------------ gizmo drags
    def _begin_gizmo_drag(self, handle: Handle, pos: np.ndarray, button: int) -> None:
        sel = self.document.selection
        assert sel is not None and self._gizmo is not None
        if handle.kind == "view":  # the centre: like Shift-drag, in the plane facing the camera
            self._begin_edit_drag("move", sel, pos, button)
            return
        position, rotation = self._target_pose(sel)
        drag = _Drag("gizmo", pos, button)
        drag.handle = handle
        drag.gizmo = self._gizmo
        drag.target = sel
        drag.start_position = position
        drag.start_rotation = rotation
        drag.merge_key = f"gizmo:{sel.kind}:{sel.id}"
        self.document.seal()
        self._drag = drag

    def _apply_gizmo_drag(self, drag: _Drag, pos: np.ndarray) -> None:
        handle, g, sel = drag.handle, drag.gizmo, drag.target
        assert handle is not None and g is not None and sel is not None
        p0 = drag.start_position
        axis = g.axes[:, handle.axis]
        try:
            if handle.kind == "axis":
                new = self._move_along(p0, axis, drag.start, pos)
                self._apply_pose(sel, drag.merge_key, position=new)
            elif handle.kind == "plane":
                new = self._move_in_plane(p0, axis, drag.start, pos)
                if new is not None:
                    self._apply_pose(sel, drag.merge_key, position=new)
            elif handle.kind == "ring" and drag.start_rotation is not None:
                ring = g.ring(handle.axis)  # the grabbed point: the ring's nearest to the press
                grab = ring[
                    np.nanargmin(np.linalg.norm(self._project_px(ring) - drag.start, axis=1))
                ]
                turned = self._rotate_about(p0, drag.start_rotation, axis, drag.start, pos, grab)
                self._apply_pose(sel, drag.merge_key, rotation=turned)
        except KeyError:  # the object went away under the drag
            self._drag = None

    def _move_along(self, p0, axis, start_px, now_px) -> np.ndarray:
        """``p0`` moved along ``axis`` so that the point under the cursor at ``start_px`` follows
        the cursor (the nearest point of the axis to the mouse ray)."""
        o0, d0 = self._ray(start_px)
        o1, d1 = self._ray(now_px)
        t0 = closest_on_line(p0, axis, o0, d0)
        t1 = closest_on_line(p0, axis, o1, d1)
        if t0 is None or t1 is None:  # the axis points at the viewer: mouse up moves along it
            _, z = self.camera.project(np.asarray(p0)[None], self._view_size())
            depth = float(z[0]) if z[0] > 0 else self.camera.orbit_distance
            f = self.camera.focal_px(self._view_size()[1])
            return np.asarray(p0) - np.asarray(axis) * (now_px[1] - start_px[1]) * depth / f
        limit = 10.0 * self._scene_scale  # a ray grazing the axis would throw the object away
        return np.asarray(p0) + np.asarray(axis) * float(np.clip(t1 - t0, -limit, limit))

    def _move_in_plane(self, p0, normal, start_px, now_px) -> np.ndarray | None:
        """``p0`` moved in the plane through it with ``normal``, following the cursor."""
        h0 = ray_plane(p0, normal, *self._ray(start_px))
        h1 = ray_plane(p0, normal, *self._ray(now_px))
        if h0 is None or h1 is None:
            return None
        n = np.asarray(normal, dtype=np.float64)
        delta = h1 - h0
        delta -= n * float(delta @ n)
        if np.linalg.norm(delta) > 10.0 * self._scene_scale:
            return None
        return np.asarray(p0) + delta

    def _rotate_about(self, p0, R0, axis, start_px, now_px, grab=None) -> np.ndarray:
        """``R0`` turned about ``axis`` (through the object at ``p0``).

        Seen well, by the angle between the points of the rotation plane under the cursor at
        ``start_px`` and ``now_px``: the grabbed point of a ring follows the cursor. Seen
        edge-on (the ring is a line on screen), a ring grabbed at ``grab`` (a world point on
        it) turns with the cursor's motion along the ring's tangent there; else by the angle
        the cursor turned around the object on screen (R)."""
        p0 = np.asarray(p0, dtype=np.float64)
        n = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
        o0, d0 = self._ray(start_px)
        if abs(float(n @ d0)) > EDGE_ON:
            h0 = ray_plane(p0, n, o0, d0)
            h1 = ray_plane(p0, n, *self._ray(now_px))
            if h0 is not None and h1 is not None:
                degrees = plane_angle(p0, n, h0, h1)
                if degrees is not None:
                    return _turn(R0, n, degrees)
        if grab is not None:
            grab = np.asarray(grab, dtype=np.float64)
            radius = float(np.linalg.norm(grab - p0))
            tangent = np.cross(n, grab - p0) / max(radius, 1e-12)
            a, b = self._project_px(np.array([grab, grab + tangent * radius * 0.05]))
            along = (b - a) / 0.05  # the tangent on screen, one radius long
            length = float(np.linalg.norm(along))
            if np.all(np.isfinite(along)) and length > 3.0:
                moved = float(np.dot(np.asarray(now_px) - np.asarray(start_px), along)) / length
                return _turn(R0, n, math.degrees(moved / max(length, 20.0)))
        center = self._project_px(p0[None])[0]
        turned = screen_angle(center, start_px, now_px)
        return _turn(R0, n, rotation_about_screen(n, self.camera.forward, turned))

    # ================================================================== G and R
    @property
    def transforming(self) -> str:
        """ "move" or "rotate" while a G / R runs, else ""."""
        return "" if self._transform is None else self._transform.mode

    def begin_transform(self, mode: str) -> str | None:
        """Start G ("move") or R ("rotate") on the selection; None when it started, else why
        not (for the status bar)."""
        if mode not in ("move", "rotate"):
            raise ValueError(f"mode must be 'move' or 'rotate', got {mode!r}")
        sel = self.document.selection
        if sel is None or sel.kind not in _KIND_ORDER:
            return "Select a keyframe, monitor or entity first"
        if self._fly:
            return "Leave fly mode first (F)"
        position, rotation = self._target_pose(sel)
        if mode == "rotate" and rotation is None:
            return "An entity's anchor is a point: it has no orientation to rotate"
        if self._transform is not None:
            self.cancel_transform()
        self._drag = None
        _, z = self.camera.project(position, self._view_size())
        depth = float(z[0]) if z[0] > 0 else self.camera.orbit_distance
        self.document.seal()
        self._transform = _Transform(mode, sel, position, rotation, self._mouse_now(), depth)
        self.canvas.native.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self._hover = None
        self._draw_gizmo()
        self._transform_changed()
        return None

    def _mouse_now(self) -> np.ndarray:
        """Where the cursor is over the canvas: its last move there (the canvas tracks the mouse),
        else the cursor if it is over the canvas, else the canvas's centre."""
        if self._mouse is not None:
            return self._mouse.copy()
        native = self.canvas.native
        p = native.mapFromGlobal(QCursor.pos())
        if native.rect().contains(p):
            return np.array([p.x(), p.y()], dtype=np.float64)
        return np.array([native.width() / 2.0, native.height() / 2.0])

    def move_cursor_for_transform(self, x: float, y: float) -> None:
        """The cursor moved to canvas pixel (x, y) while G / R runs (what a mouse move does)."""
        if self._transform is not None:
            self._transform.now_px = np.array([x, y], dtype=np.float64)
            self._update_transform()

    def _update_transform(self) -> None:
        t = self._transform
        if t is None:
            return
        value = t.value()
        axis = t.axis_vector()
        p0 = np.asarray(t.start_position, dtype=np.float64)
        try:
            if t.mode == "move":
                if value is not None:  # typed: along the axis (X without a constraint)
                    a = np.eye(3)[0] if axis is None else axis
                    if t.plane and axis is not None:
                        basis = t.start_rotation if t.local else np.eye(3)
                        a = basis[:, [i for i in range(3) if i != t.axis][0]]
                    new = p0 + a * value
                elif axis is None:
                    du, dv = t.now_px - t.start_px
                    h = self._view_size()[1]
                    new = p0 + self.camera.pixel_to_world_delta(du, dv, t.depth, h)
                elif t.plane:
                    new = self._move_in_plane(p0, axis, t.start_px, t.now_px)
                    if new is None:
                        return
                else:
                    new = self._move_along(p0, axis, t.start_px, t.now_px)
                self._apply_pose(t.target, t.merge_key, position=new)
            else:
                a = self.camera.forward if axis is None else axis
                if value is not None:
                    turned = _turn(t.start_rotation, a, value)
                else:
                    turned = self._rotate_about(p0, t.start_rotation, a, t.start_px, t.now_px)
                self._apply_pose(t.target, t.merge_key, rotation=turned)
        except KeyError:  # the object went away (an undo elsewhere)
            self._end_transform()
            return
        self._transform_changed()

    def confirm_transform(self) -> None:
        """Keep what G / R did (one undo step)."""
        if self._transform is None:
            return
        self._update_transform()
        self._end_transform()

    def cancel_transform(self) -> None:
        """Put the object back where it was; nothing is left on the undo stack."""
        t = self._transform
        if t is None:
            return
        self.document.revert(t.merge_key)
        self._end_transform()

    def _end_transform(self) -> None:
        self._transform = None
        self.document.seal()
        self._draw_gizmo()
        self._transform_changed()

    def _transform_changed(self) -> None:
        self._update_hud()
        self.transform_changed.emit("" if self._transform is None else self._transform.describe())

    def _transform_key(self, name: str, text: str, shift: bool) -> None:
        t = self._transform
        assert t is not None
        if name == "ESCAPE":
            self.cancel_transform()
            return
        if name in ("ENTER", "RETURN"):
            self.confirm_transform()
            return
        if name in AXIS_NAMES:
            i = AXIS_NAMES.index(name)
            if t.axis == i and t.plane == shift:
                if not t.local and t.start_rotation is not None:
                    t.local = True  # the second press: the object's own axis
                else:
                    t.axis, t.local, t.plane = None, False, False  # the third: free again
            else:
                t.axis, t.local, t.plane = i, False, shift
        elif name == "BACKSPACE":
            t.typed = t.typed[:-1]
        elif text == "-":
            t.typed = t.typed[1:] if t.typed.startswith("-") else "-" + t.typed
        elif text and text in _NUMBER_CHARS and not (text == "." and "." in t.typed):
            t.typed += text
        else:
            return
        self._draw_gizmo()
        self._update_transform()

    def _claims(self, event) -> bool:
        """Whether a key press is the viewport's, not a window shortcut's (see _KeyClaim)."""
        if self._transform is not None or self._point_pick is not None:
            return True
        if self._fly:
            return event.key() in (
                Qt.Key.Key_R,
                Qt.Key.Key_F,
                Qt.Key.Key_Escape,
                Qt.Key.Key_W,
                Qt.Key.Key_A,
                Qt.Key.Key_S,
                Qt.Key.Key_D,
                Qt.Key.Key_Q,
                Qt.Key.Key_E,
            )
        return False

    # ================================================================== picking a cloud point
    def begin_point_pick(self, on_pick: Callable[[np.ndarray | None], None]) -> None:
        """The next click calls ``on_pick`` with the cloud point under the cursor (None when it
        hit no point, or when Esc / a right click cancelled)."""
        self.cancel_transform()
        self._point_pick = on_pick
        self.canvas.native.setCursor(Qt.CursorShape.CrossCursor)
        self.canvas.native.setFocus(Qt.FocusReason.OtherFocusReason)
        self._update_hud()

    @property
    def picking_point(self) -> bool:
        return self._point_pick is not None

    def _end_point_pick(self, point: np.ndarray | None) -> None:
        callback, self._point_pick = self._point_pick, None
        self.canvas.native.unsetCursor()
        self._update_hud()
        if callback is not None:
            callback(point)

    def pick_point(self, x: float, y: float, radius: float = POINT_PICK_PX) -> np.ndarray | None:
        """The drawn cloud point nearest to the camera among those within ``radius`` pixels of
        canvas pixel (x, y); None where there is none."""
        cloud = self.document.cloud
        if cloud is None or len(cloud.xyz) == 0:
            return None
        xyz = np.asarray(cloud.xyz)
        idx = display_indices(len(xyz), self._max_points)
        if idx is not None:
            xyz = xyz[idx]
        uv = self._project_px(xyz)
        d = np.hypot(uv[:, 0] - x, uv[:, 1] - y)
        near = np.flatnonzero(d <= radius)  # NaN (behind the camera) compares False
        if len(near) == 0:
            return None
        _, z = self.camera.project(xyz[near], self._view_size())
        return np.asarray(xyz[near[int(np.argmin(z))]], dtype=np.float64)

    # ================================================================== keys
    @staticmethod
    def _key_name(ev) -> str | None:
        key = ev.key
        if key is None:
            return None
        return str(key.name).upper()

    def _on_key_press(self, ev) -> None:
        native = getattr(ev, "native", None)
        repeat = native is not None and hasattr(native, "isAutoRepeat") and native.isAutoRepeat()
        name = self._key_name(ev)
        if name is None:
            return
        if self._transform is not None:
            ev.handled = True
            shift = keys.SHIFT in (ev.modifiers or ())
            self._transform_key(name, getattr(ev, "text", "") or "", shift)
            return
        if self._point_pick is not None:
            ev.handled = True
            if name == "ESCAPE":
                self._end_point_pick(None)
            return
        if name == "F" and not repeat:
            self.set_fly_mode(not self._fly)
            ev.handled = True
        elif self._fly and name == "ESCAPE":
            self.set_fly_mode(False)
            ev.handled = True
        elif self._fly and name == "R" and not repeat:
            self.set_recording(not self._recording)
            ev.handled = True
        elif self._fly and name in _FLY_KEYS:
            ev.handled = True
            if name not in self._held:
                self._held.add(name)
                self._fly_last = time.perf_counter()
        elif not self._fly and name == "HOME":
            self.frame_scene()
            ev.handled = True

    def _on_key_release(self, ev) -> None:
        native = getattr(ev, "native", None)
        if native is not None and hasattr(native, "isAutoRepeat") and native.isAutoRepeat():
            return
        name = self._key_name(ev)
        if name in self._held:
            self._held.discard(name)
            ev.handled = True

    # ================================================================== fly mode
    @property
    def fly_mode(self) -> bool:
        return self._fly

    def set_fly_mode(self, on: bool) -> None:
        on = bool(on)
        if on == self._fly:
            return
        if not on and self._recording:
            self.set_recording(False)
        if on:
            self.cancel_transform()
        self._fly = on
        self._held.clear()
        self._drag = None
        if on:
            self._fly_last = time.perf_counter()
            self._fly_timer.start()
        else:
            self._fly_timer.stop()
            self.camera.orbit_distance = max(self.camera.orbit_distance, self._scene_scale * 0.05)
        self._update_hud()
        self._draw_gizmo()
        self.fly_mode_changed.emit(on)

    @property
    def fly_speed(self) -> float:
        """Fly speed in world units per second (a fifth of the scene per second unless set)."""
        if self._fly_speed is None:
            return 0.2 * self._scene_scale
        return self._fly_speed

    @fly_speed.setter
    def fly_speed(self, value: float) -> None:
        value = float(value)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"fly speed must be positive, got {value}")
        self._fly_speed = value

    def fly_move(self, forward: float, right: float, up: float) -> None:
        """Move the camera in world units along its view direction, its right and world up."""
        self.camera.translate(forward, right, up)
        self._camera_moved()

    def _fly_tick(self) -> None:
        now = time.perf_counter()
        dt = min(now - self._fly_last, 0.1)
        self._fly_last = now
        if not self._held:
            return
        h = self._held
        f = ("W" in h) - ("S" in h)
        r = ("D" in h) - ("A" in h)
        u = ("E" in h) - ("Q" in h)
        if f or r or u:
            step = self.fly_speed * dt
            self.fly_move(f * step, r * step, u * step)

    # ================================================================== recording
    @property
    def recording(self) -> bool:
        return self._recording

    def set_recording(self, on: bool) -> list[str]:
        """Start (entering fly mode) or stop recording. Stopping fits keyframes to the flight and
        pushes them as one undoable edit; returns the new keyframes' ids (empty when starting or
        when fewer than two frames were captured)."""
        on = bool(on)
        if on == self._recording:
            return []
        if on:
            if not self._fly:
                self.set_fly_mode(True)
            self._recording = True
            self._samples = []
            self._record_fps = int(self.document.project.camera_path.settings.fps)
            self._record_sample()
            self._record_timer.start(max(1, round(1000 / self._record_fps)))
            self._update_hud()
            self.recording_changed.emit(True)
            return []
        self._record_timer.stop()
        self._recording = False
        self._update_hud()
        self.recording_changed.emit(False)
        return self._commit_recording()

    def start_recording(self) -> None:
        self.set_recording(True)

    def stop_recording(self) -> list[str]:
        return self.set_recording(False)

    @property
    def recorded_samples(self) -> int:
        """Frames captured so far in the current (or last) recording."""
        return len(self._samples)

    def _record_sample(self) -> None:
        self._samples.append((self.camera.c2w, float(self.camera.fov)))

    def _commit_recording(self) -> list[str]:
        samples, self._samples = self._samples, []
        if len(samples) < 2:
            return []
        from worldstudio.core.geometry.path import fit_keyframes

        c2w = np.stack([s[0] for s in samples])
        fov = np.array([s[1] for s in samples])
        settings = self.document.project.camera_path.settings
        tol_pos = self.record_tolerance_pos or 0.005 * self._scene_scale
        kfs = fit_keyframes(
            c2w,
            fov,
            self._record_fps,
            tolerance_pos=tol_pos,
            tolerance_deg=self.record_tolerance_deg,
            tension=settings.tension,
        )
        if self.record_mode == "append" and self.document.project.camera_path.keyframes:
            new = [k.model_copy(deep=True) for k in kfs]

            def mutate(p) -> None:
                p.camera_path.keyframes.extend(new)

            self.document.edit("Record camera flight", "path", mutate)
        else:
            commands.replace_keyframes(self.document, kfs, text="Record camera flight")
        self.recorded.emit(len(kfs))
        return [k.id for k in kfs]

    # ================================================================== thumbnails
    def grab_view(
        self,
        width: int,
        height: int,
        c2w: np.ndarray | None = None,
        fov: float | None = None,
        overlays: bool = False,
    ) -> np.ndarray:
        """Render (height, width, 3) uint8 RGB of the scene from ``c2w`` / ``fov`` (default: the
        current view) with the vertical fov exact and the aspect of width x height. Needs the
        widget to be shown (a live GL context). Overlays are hidden unless ``overlays``."""
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"thumbnail size must be positive, got {width}x{height}")
        cw, ch = self._view_size()
        aspect = width / height
        if cw / ch > aspect:
            rh = int(ch)
            rw = max(1, int(round(ch * aspect)))
        else:
            rw = int(cw)
            rh = max(1, int(round(cw / aspect)))
        x0, y0 = int((cw - rw) // 2), int((ch - rh) // 2)
        saved_pose, saved_fov = self.camera.c2w, float(self.camera.fov)
        want = saved_fov if fov is None else float(fov)
        # The crop is rh of the view's ch pixels tall: widen the view's fov so the crop shows
        # exactly ``want`` vertically.
        full = 2.0 * math.degrees(math.atan(math.tan(math.radians(want) / 2.0) * ch / rh))
        hidden = []
        if not overlays:
            hidden = [n for n in self._overlay_nodes() if n.visible]
            for n in hidden:
                n.visible = False
        try:
            self.camera.set_pose(saved_pose if c2w is None else c2w, min(full, MAX_FOV))
            img = self.canvas.render(region=(x0, y0, rw, rh), size=(width, height), alpha=False)
        finally:
            for n in hidden:
                n.visible = True
            self.camera.set_pose(saved_pose, saved_fov)
        return np.ascontiguousarray(img[..., :3])

    # ================================================================== Qt
    def closeEvent(self, event) -> None:
        self._fly_timer.stop()
        self._record_timer.stop()
        super().closeEvent(event)
