"""The 3D viewport: camera conventions, point uploads, look-through, picking, drags, fly-record.

The GL tests need a real OpenGL context: pytest-xvfb starts Xvfb (xcb + Mesa llvmpipe). On the
offscreen Qt platform, which has no OpenGL, they are skipped. Clouds stay small (llvmpipe).
"""

from __future__ import annotations

import math
import subprocess
import sys
import types

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QApplication

from worldstudio.core.geometry.camera import intrinsics_from_fov, project_points
from worldstudio.core.geometry.path import keyframe_pose
from worldstudio.core.geometry.transforms import WORLD_UP, look_at, pose_matrix, rotation_angle
from worldstudio.core.project import Entity, Keyframe, Monitor, Pose, Project
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.viewport.camera import PoseCamera
from worldstudio.studio.viewport.overlays import (
    frustum_points,
    round_boundary_frames,
    tick_segments,
)
from worldstudio.studio.viewport.points import display_indices, pack_points

W, H = 400, 300
BG = np.array([28, 29, 33])  # widget.BACKGROUND in 8 bits


# ============================================================================ helpers
def make_cloud(n: int = 20_000, seed: int = 1):
    """A box of random coloured points 3-5 units in front of the source camera."""
    rng = np.random.default_rng(seed)
    xyz = np.stack(
        [rng.uniform(-1.0, 1.0, n), rng.uniform(-0.7, 0.7, n), rng.uniform(3.0, 5.0, n)], axis=1
    ).astype(np.float32)
    rgb = rng.integers(60, 256, (n, 3)).astype(np.uint8)
    try:
        from worldstudio.core.pointcloud import PointCloud  # type: ignore[attr-defined]
    except ImportError:
        return types.SimpleNamespace(xyz=xyz, rgb=rgb, entity_id=None)
    try:
        return PointCloud(xyz=xyz, rgb=rgb)
    except TypeError:  # pragma: no cover - a different constructor: fall back to duck typing
        return types.SimpleNamespace(xyz=xyz, rgb=rgb, entity_id=None)


def make_project() -> Project:
    p = Project(name="viewport test")
    p.camera_path.keyframes = [
        Keyframe(id="kf-a", position=(0.3, 0.1, 2.0), fov=55.0, transition=2.0),
        Keyframe(
            id="kf-b",
            position=(-0.4, -0.2, 1.2),
            orientation=(0.9659258, 0.0, 0.258819, 0.0),
            fov=45.0,
        ),
    ]
    p.entities = [Entity(id="ent-a", name="dog", anchor=(-0.5, 0.3, 3.5))]
    p.monitors = [
        Monitor(
            id="mon-a",
            name="Monitor 1",
            pose=Pose(position=(0.6, -0.3, 1.5), orientation=(0.9914449, 0.1305262, 0.0, 0.0)),
            fov=50.0,
            entity_ids=["ent-a"],
        )
    ]
    return p


def expected_pixel(point, c2w, fov) -> np.ndarray:
    """The pinhole projection of docs/CONVENTIONS.md (independent of the viewport's code)."""
    K = intrinsics_from_fov(fov, H, W)
    uv, _ = project_points(np.asarray([point], dtype=np.float64), K, c2w)
    return uv[0]


def require_gl() -> None:
    if QGuiApplication.platformName() == "offscreen":
        pytest.skip("the offscreen Qt platform has no OpenGL (run under Xvfb)")


def settle(qtbot, ms: int = 30) -> None:
    qtbot.wait(ms)
    QApplication.processEvents()


def grab_rgb(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def mouse(widget, kind, pos, button=Qt.MouseButton.LeftButton, mods=Qt.KeyboardModifier.NoModifier):
    etype = {
        "press": QEvent.Type.MouseButtonPress,
        "move": QEvent.Type.MouseMove,
        "release": QEvent.Type.MouseButtonRelease,
    }[kind]
    local = QPointF(float(pos[0]), float(pos[1]))
    buttons = Qt.MouseButton.NoButton if kind == "release" else button
    ev = QMouseEvent(etype, local, widget.mapToGlobal(local), button, buttons, mods)
    QApplication.sendEvent(widget, ev)


def drag(
    qtbot,
    widget,
    start,
    end,
    steps=6,
    button=Qt.MouseButton.LeftButton,
    mods=Qt.KeyboardModifier.NoModifier,
):
    start, end = np.asarray(start, float), np.asarray(end, float)
    mouse(widget, "press", start, button, mods)
    for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
        qtbot.wait(15)  # vispy drops mouse moves closer than 10 ms apart
        mouse(widget, "move", start + t * (end - start), button, mods)
    qtbot.wait(15)
    mouse(widget, "release", end, button, mods)


def key(widget, kind, qt_key, text=""):
    etype = QEvent.Type.KeyPress if kind == "press" else QEvent.Type.KeyRelease
    QApplication.sendEvent(widget, QKeyEvent(etype, qt_key, Qt.KeyboardModifier.NoModifier, text))


@pytest.fixture
def doc():
    return ProjectDocument(make_project(), cloud=make_cloud())


@pytest.fixture
def viewport(qtbot, doc):
    require_gl()
    from worldstudio.studio.viewport import Viewport

    vp = Viewport(doc)
    qtbot.addWidget(vp)
    vp.resize(W, H)
    vp.show()
    qtbot.waitExposed(vp)
    settle(qtbot)
    assert tuple(vp.view.size) == (W, H)
    return vp


# ============================================================================ no GL needed
def test_pose_camera_projection_matches_the_pinhole_convention():
    cam = PoseCamera()
    c2w = look_at((0.5, -1.0, -2.0), (0.0, 0.0, 3.0))
    cam.set_pose(c2w, 48.0)
    pts = np.array([[0.0, 0.0, 3.0], [1.0, 0.5, 4.0], [-0.7, -0.3, 2.5]])
    uv, z = cam.project(pts, (W, H))
    K = intrinsics_from_fov(48.0, H, W)
    ref, zref = project_points(pts, K, c2w)
    np.testing.assert_allclose(uv, ref, atol=1e-9)
    np.testing.assert_allclose(z, zref, atol=1e-12)
    # The look-at target projects to the image centre.
    np.testing.assert_allclose(uv[0], (W / 2, H / 2), atol=1e-9)


def test_orbit_turns_about_the_world_up_and_keeps_the_target():
    cam = PoseCamera()
    cam.set_pose(np.eye(4), 60.0)
    cam.orbit_distance = 4.0
    target = cam.target.copy()
    cam.orbit(30.0, 0.0)  # positive yaw: the camera swings to its right
    np.testing.assert_allclose(cam.target, target, atol=1e-9)
    assert cam.position[0] > 0.5
    assert abs(cam.position[1]) < 1e-9  # a turntable: height unchanged
    assert math.isclose(float(np.dot(cam.down, WORLD_UP)), -1.0, abs_tol=1e-9)  # no roll
    cam.orbit(0.0, 20.0)  # positive pitch: up over the target (y goes negative)
    np.testing.assert_allclose(cam.target, target, atol=1e-9)
    assert cam.position[1] < -0.5
    # The pole is never crossed, however far we pitch.
    for _ in range(20):
        cam.orbit(0.0, 30.0)
    assert float(np.dot(cam.forward, -WORLD_UP)) < 1.0 - 1e-6
    R = cam.c2w[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-9)


def test_look_and_translate_in_fly_terms():
    cam = PoseCamera()
    cam.set_pose(np.eye(4), 60.0)
    cam.look(10.0, 0.0)  # turn right: forward gains +x
    assert cam.forward[0] > 0.1
    np.testing.assert_allclose(cam.position, 0.0, atol=1e-12)
    cam.set_pose(np.eye(4), 60.0)
    cam.look(0.0, 10.0)  # look up: forward gains -y
    assert cam.forward[1] < -0.1
    cam.set_pose(np.eye(4), 60.0)
    cam.translate(1.0, 2.0, 3.0)
    np.testing.assert_allclose(cam.position, (2.0, -3.0, 1.0), atol=1e-12)


def test_overlay_geometry():
    c2w = pose_matrix((1.0, 2.0, 3.0), (1.0, 0.0, 0.0, 0.0))
    p = frustum_points(c2w, 90.0, 2.0, 1.0)
    np.testing.assert_allclose(p[0], (1, 2, 3))
    np.testing.assert_allclose(p[1], (1 - 2, 2 - 1, 4))  # top-left: -x, -y (up), +z
    assert p[5][1] < p[1][1]  # the 'up' triangle sits above the top edge
    assert round_boundary_frames(130, 65) == [0, 65, 129]
    assert round_boundary_frames(1, 65) == [0]
    assert tick_segments(np.stack([c2w, c2w]), 0.5).shape == (8, 3)


def test_lod_subset_is_deterministic_and_packing_is_exact():
    assert display_indices(100, 200) is None
    a = display_indices(50_000, 1_000)
    b = display_indices(50_000, 1_000)
    assert a is not None and len(a) == 1_000 and np.array_equal(a, b)
    assert np.all(np.diff(a) > 0)
    rgb = np.array([[0, 0, 0], [255, 255, 255], [1, 2, 3], [250, 7, 128]], dtype=np.uint8)
    packed = pack_points(np.zeros((4, 3)), rgb)
    c = packed[:, 3].astype(np.int64)
    np.testing.assert_array_equal(np.stack([c % 256, (c // 256) % 256, c // 65536], 1), rgb)


def test_viewport_import_does_not_import_torch():
    code = (
        "import sys; import worldstudio.studio.viewport; "
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


# ============================================================================ GL
@pytest.mark.gl
def test_shows_the_cloud(viewport):
    img = grab_rgb(viewport)
    assert img.shape == (H, W, 3)
    non_bg = np.abs(img.astype(int) - BG).sum(axis=2) > 40
    # The cloud (x in [-1, 1], y in [-0.7, 0.7], z in [3, 5]) seen from the source camera: its
    # near face spans this box on screen; the box's centre is full of points.
    c2w, fov = viewport.current_view_pose()
    np.testing.assert_allclose(c2w, np.eye(4))
    tl = expected_pixel((-1.0, -0.7, 5.0), c2w, fov)
    br = expected_pixel((1.0, 0.7, 5.0), c2w, fov)
    inner = non_bg[int(tl[1]) + 3 : int(br[1]) - 3, int(tl[0]) + 3 : int(br[0]) - 3]
    assert inner.mean() > 0.5
    # Coloured points, not just lines: the cloud's colours show up.
    cloud_px = img[int(tl[1]) + 3 : int(br[1]) - 3, int(tl[0]) + 3 : int(br[0]) - 3]
    assert cloud_px.reshape(-1, 3).std(axis=0).min() > 20
    # Far left and right of the cloud: background (no overlay lies there in this view).
    assert non_bg[:, :20].mean() < 0.02
    assert viewport.point_uploads == 1
    assert viewport.displayed_points == 20_000


@pytest.mark.gl
def test_vispy_view_matches_the_opencv_camera(viewport, qtbot):
    """vispy's own scene transform puts world points exactly where the pinhole model does."""
    c2w = look_at((1.0, -0.8, -1.0), (0.2, 0.1, 4.0))
    viewport.set_view(c2w, 40.0)
    settle(qtbot)
    pts = np.array([[0.2, 0.1, 4.0], [1.0, 0.5, 3.0], [-0.9, -0.6, 5.0], [0.0, 0.7, 3.2]])
    tr = viewport.view.scene.node_transform(viewport.canvas.scene)
    mapped = tr.map(pts)
    px = mapped[:, :2] / mapped[:, 3:4]
    ref = np.array([expected_pixel(p, c2w, 40.0) for p in pts])
    np.testing.assert_allclose(px, ref, atol=0.05)
    # And in the rendered image: a lone red point lands on its predicted pixel.
    from worldstudio.studio.viewport.points import PointCloudNode, pack_points

    probe = PointCloudNode(parent=viewport.view.scene, point_size=9.0, round_points=False)
    target = np.array([[0.9, -0.5, 3.0]], dtype=np.float32)
    probe.set_data(pack_points(target, np.array([[255, 0, 0]], dtype=np.uint8)))
    probe.order = 100
    probe.set_gl_state("opaque", depth_test=False)
    viewport._points.visible = False
    for n in viewport._overlay_nodes():
        n.visible = False
    img = grab_rgb(viewport).astype(int)
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
    ys, xs = np.nonzero(red)
    assert len(xs) > 20
    u, v = expected_pixel(target[0], c2w, 40.0)
    assert abs(xs.mean() + 0.5 - u) < 1.0 and abs(ys.mean() + 0.5 - v) < 1.0


@pytest.mark.gl
def test_orbiting_never_reuploads_points(viewport, qtbot, doc):
    assert viewport.point_uploads == 1
    for _ in range(50):
        viewport.orbit(3.0, 0.5)
        viewport.canvas.native.repaint()
    # Real mouse drags: orbit, pan, wheel.
    native = viewport.canvas.native
    drag(qtbot, native, (200, 150), (260, 120))
    drag(qtbot, native, (200, 150), (150, 170), button=Qt.MouseButton.RightButton)
    viewport.set_point_size(4.0)
    viewport.zoom(2.0)
    viewport.set_fly_mode(True)
    viewport.fly_move(0.1, 0.0, 0.0)
    viewport.set_fly_mode(False)
    settle(qtbot)
    grab_rgb(viewport)
    assert viewport.point_uploads == 1
    # Overlay edits and selection changes do not touch the cloud either.
    commands.move_keyframe(doc, "kf-a", position=(0.0, 0.0, 1.0))
    doc.set_selection(Selection("keyframe", "kf-a"))
    doc.set_playhead(10)
    assert viewport.point_uploads == 1
    # A scene change re-uploads, once.
    doc.cloud = make_cloud(5_000, seed=2)
    doc.changed.emit("scene")
    assert viewport.point_uploads == 2
    assert viewport.displayed_points == 5_000


@pytest.mark.gl
def test_level_of_detail_cap(viewport):
    from worldstudio.studio.viewport.widget import SOFTWARE_MAX_POINTS

    assert viewport.gl_renderer
    if "llvmpipe" in viewport.gl_renderer.lower():  # a software GL gets a lower default cap
        assert viewport.max_points == SOFTWARE_MAX_POINTS
    viewport.max_points = 8_000
    assert viewport.displayed_points == 8_000
    assert viewport.point_uploads == 2
    viewport.max_points = 8_000  # unchanged: no upload
    assert viewport.point_uploads == 2
    viewport.max_points = 1_000_000
    assert viewport.displayed_points == 20_000


@pytest.mark.gl
def test_look_through_sets_the_exact_pose(viewport, doc, qtbot):
    for kf in doc.project.camera_path.keyframes:
        viewport.look_through_keyframe(kf.id)
        c2w, fov = viewport.current_view_pose()
        np.testing.assert_allclose(c2w, keyframe_pose(kf), atol=1e-6)
        assert abs(fov - kf.fov) < 1e-6
        assert viewport.looking_through == ("keyframe", kf.id)
    m = doc.project.monitors[0]
    viewport.look_through_monitor(m.id)
    c2w, fov = viewport.current_view_pose()
    np.testing.assert_allclose(c2w, pose_matrix(m.pose.position, m.pose.orientation), atol=1e-6)
    assert abs(fov - m.fov) < 1e-6
    doc.set_playhead(20)
    assert viewport.look_through_playhead()
    baked = doc.baked()
    c2w, fov = viewport.current_view_pose()
    np.testing.assert_allclose(c2w, baked.c2w[20], atol=1e-6)
    assert abs(fov - baked.fov[20]) < 1e-6
    # Following the playhead: the view tracks it.
    viewport.set_follow_playhead(True)
    doc.set_playhead(28)
    np.testing.assert_allclose(viewport.current_view_pose()[0], baked.c2w[28], atol=1e-6)
    # Past the path's end the camera holds the last pose.
    doc.set_playhead(len(baked) + 10)
    if doc.playhead >= len(baked):
        np.testing.assert_allclose(viewport.current_view_pose()[0], baked.c2w[-1], atol=1e-6)
    # A user navigation leaves look-through.
    viewport.orbit(5.0, 0.0)
    assert viewport.looking_through is None and not viewport.follow_playhead
    # Seen through keyframe kf-b, the cloud's centre lands where the pinhole model says.
    kf = doc.project.camera_path.keyframe("kf-b")
    viewport.look_through_keyframe("kf-b")
    settle(qtbot)
    p = np.array([0.0, 0.0, 4.0])
    tr = viewport.view.scene.node_transform(viewport.canvas.scene)
    m4 = tr.map(p[None])[0]
    np.testing.assert_allclose(
        m4[:2] / m4[3], expected_pixel(p, keyframe_pose(kf), kf.fov), atol=0.05
    )


@pytest.mark.gl
def test_add_from_current_view_round_trips(viewport, doc):
    c2w = look_at((0.2, -0.5, 0.5), (0.0, 0.0, 4.0))
    viewport.set_view(c2w, 35.0)
    pose, fov = viewport.current_view_pose()
    kf_id = commands.add_keyframe_from_c2w(doc, pose, fov)
    viewport.set_view(np.eye(4), 60.0)
    viewport.look_through_keyframe(kf_id)
    np.testing.assert_allclose(viewport.current_view_pose()[0], c2w, atol=1e-6)


@pytest.mark.gl
def test_click_selects_and_empty_click_clears(viewport, doc, qtbot):
    native = viewport.canvas.native
    c2w, fov = viewport.current_view_pose()
    for kind, ident, pos in [
        ("keyframe", "kf-a", doc.project.camera_path.keyframe("kf-a").position),
        ("monitor", "mon-a", doc.project.monitors[0].pose.position),
        ("entity", "ent-a", doc.project.entities[0].anchor),
    ]:
        uv = expected_pixel(pos, c2w, fov) + (2.0, -2.0)  # a near miss still picks
        mouse(native, "press", uv)
        mouse(native, "release", uv)
        assert doc.selection == Selection(kind, ident)
    mouse(native, "press", (5, 5))
    mouse(native, "release", (5, 5))
    assert doc.selection is None
    # A drag is an orbit, not a click: the selection stays.
    doc.set_selection(Selection("keyframe", "kf-a"))
    before = viewport.current_view_pose()[0]
    drag(qtbot, native, (30, 30), (80, 40))
    assert doc.selection == Selection("keyframe", "kf-a")
    assert not np.allclose(viewport.current_view_pose()[0], before)


@pytest.mark.gl
def test_selection_is_highlighted(viewport, doc, qtbot):
    from worldstudio.studio.viewport.widget import KEYFRAME_COLOR, SELECTED_COLOR

    def colors():
        return viewport._keyframe_lines.color  # per-vertex colours of the keyframe glyphs

    doc.set_selection(Selection("keyframe", "kf-b"))
    c = np.asarray(colors())
    assert np.allclose(c[:20], KEYFRAME_COLOR) and np.allclose(c[20:], SELECTED_COLOR)
    doc.set_selection(None)
    assert np.allclose(np.asarray(colors()), KEYFRAME_COLOR)


@pytest.mark.gl
def test_shift_drag_moves_and_one_undo_restores(viewport, doc, qtbot):
    native = viewport.canvas.native
    c2w, fov = viewport.current_view_pose()
    start = np.array(doc.project.camera_path.keyframe("kf-a").position)
    uv = expected_pixel(start, c2w, fov)
    count = doc.undo_stack.count()
    drag(qtbot, native, uv, uv + (40, 25), steps=8, mods=Qt.KeyboardModifier.ShiftModifier)
    moved = np.array(doc.project.camera_path.keyframe("kf-a").position)
    assert doc.selection == Selection("keyframe", "kf-a")
    # It followed the cursor in the plane facing the camera: same depth, now under the cursor.
    assert abs(moved[2] - start[2]) < 1e-9
    np.testing.assert_allclose(expected_pixel(moved, c2w, fov), uv + (40, 25), atol=1e-6)
    assert doc.undo_stack.count() == count + 1  # the whole drag is one step
    doc.undo_stack.undo()
    np.testing.assert_allclose(doc.project.camera_path.keyframe("kf-a").position, start)
    # The overlays followed the model (drawn from change events).
    seg = np.asarray(viewport._keyframe_lines.pos)
    np.testing.assert_allclose(seg[0], start, atol=1e-5)
    # A second drag is a new undo step, not merged into the first.
    drag(qtbot, native, uv, uv + (10, 0), mods=Qt.KeyboardModifier.ShiftModifier)
    drag(qtbot, native, uv + (10, 0), uv + (20, 0), mods=Qt.KeyboardModifier.ShiftModifier)
    assert doc.undo_stack.count() == count + 2


@pytest.mark.gl
def test_shift_drag_moves_monitors_and_entities(viewport, doc, qtbot):
    native = viewport.canvas.native
    c2w, fov = viewport.current_view_pose()
    for kind in ("monitor", "entity"):
        if kind == "monitor":
            get = lambda: np.array(doc.project.monitors[0].pose.position)  # noqa: E731
        else:
            get = lambda: np.array(doc.project.entities[0].anchor)  # noqa: E731
        start = get()
        uv = expected_pixel(start, c2w, fov)
        drag(qtbot, native, uv, uv + (-30, 20), mods=Qt.KeyboardModifier.ShiftModifier)
        np.testing.assert_allclose(expected_pixel(get(), c2w, fov), uv + (-30, 20), atol=1e-6)
        doc.undo_stack.undo()
        np.testing.assert_allclose(get(), start)


@pytest.mark.gl
def test_ctrl_drag_rotates_and_one_undo_restores(viewport, doc, qtbot):
    native = viewport.canvas.native
    c2w, fov = viewport.current_view_pose()
    kf = doc.project.camera_path.keyframe("kf-a")
    start_pose = keyframe_pose(kf)
    uv = expected_pixel(kf.position, c2w, fov)
    count = doc.undo_stack.count()
    drag(qtbot, native, uv, uv + (50, 0), mods=Qt.KeyboardModifier.ControlModifier)
    after = keyframe_pose(doc.project.camera_path.keyframe("kf-a"))
    np.testing.assert_allclose(after[:3, 3], start_pose[:3, 3])  # rotation only
    assert math.degrees(rotation_angle(start_pose[:3, :3], after[:3, :3])) == pytest.approx(20.0)
    assert after[0, 2] > start_pose[0, 2]  # dragged right: it turned right (+x)
    assert doc.undo_stack.count() == count + 1
    doc.undo_stack.undo()
    np.testing.assert_allclose(keyframe_pose(doc.project.camera_path.keyframe("kf-a")), start_pose)


@pytest.mark.gl
def test_overlays_follow_document_events(viewport, doc):
    assert viewport._keyframe_lines.visible and viewport._monitor_lines.visible
    assert viewport._path_line.visible and viewport._tick_lines.visible
    assert viewport._entity_markers.visible and viewport._playhead_lines.visible
    assert not viewport._look_at_lines.visible
    commands.set_path_settings(doc, look_at=(0.0, 0.0, 4.0))
    assert viewport._look_at_lines.visible
    baked = doc.baked()
    doc.set_playhead(30)
    np.testing.assert_allclose(
        np.asarray(viewport._playhead_lines.pos)[0], baked.c2w[30, :3, 3], atol=1e-5
    )
    path = np.asarray(viewport._path_line.pos)
    assert len(path) == len(baked)
    ticks = np.asarray(viewport._tick_lines.pos)
    assert len(ticks) == 4 * len(
        round_boundary_frames(len(baked), doc.project.generation.frames_per_round)
    )
    commands.add_monitor_from_c2w(doc, np.eye(4), 60.0)
    assert len(np.asarray(viewport._monitor_lines.pos)) == 2 * 20
    doc.undo_stack.undo()
    assert len(np.asarray(viewport._monitor_lines.pos)) == 20
    commands.replace_keyframes(doc, [])
    assert not viewport._keyframe_lines.visible and not viewport._path_line.visible
    assert not viewport._playhead_lines.visible


@pytest.mark.gl
def test_fly_record_makes_keyframes_in_one_undoable_edit(viewport, doc, qtbot):
    native = viewport.canvas.native
    native.setFocus()
    before = [k.model_copy() for k in doc.project.camera_path.keyframes]
    count = doc.undo_stack.count()
    viewport.fly_speed = 1.0
    key(native, "press", Qt.Key.Key_F, "f")
    key(native, "release", Qt.Key.Key_F, "f")
    assert viewport.fly_mode
    start_pose = viewport.current_view_pose()[0]
    key(native, "press", Qt.Key.Key_R, "r")
    key(native, "release", Qt.Key.Key_R, "r")
    assert viewport.recording
    assert viewport._hud.isVisible() and "REC" in viewport._hud.text()
    key(native, "press", Qt.Key.Key_W, "w")
    qtbot.wait(350)
    key(native, "release", Qt.Key.Key_W, "w")
    # Mouse look while flying, then strafe right.
    drag(qtbot, native, (200, 150), (240, 150))
    key(native, "press", Qt.Key.Key_D, "d")
    qtbot.wait(350)
    key(native, "release", Qt.Key.Key_D, "d")
    qtbot.wait(100)
    end_pose = viewport.current_view_pose()[0]
    samples = viewport.recorded_samples
    assert samples >= 5
    key(native, "press", Qt.Key.Key_R, "r")
    key(native, "release", Qt.Key.Key_R, "r")
    assert not viewport.recording and viewport.fly_mode
    assert viewport.point_uploads == 1

    kfs = doc.project.camera_path.keyframes
    assert doc.undo_stack.count() == count + 1
    assert 2 <= len(kfs) < samples
    assert end_pose[2, 3] - start_pose[2, 3] > 0.1  # flew forward
    np.testing.assert_allclose(keyframe_pose(kfs[0]), start_pose, atol=1e-6)
    np.testing.assert_allclose(keyframe_pose(kfs[-1]), end_pose, atol=1e-6)
    fps = doc.project.camera_path.settings.fps
    total = sum(k.transition for k in kfs[:-1])
    assert total == pytest.approx((samples - 1) / fps)
    doc.undo_stack.undo()
    assert doc.project.camera_path.keyframes == before
    key(native, "press", Qt.Key.Key_Escape)
    key(native, "release", Qt.Key.Key_Escape)
    assert not viewport.fly_mode


@pytest.mark.gl
def test_grab_view_renders_a_thumbnail_and_restores_the_view(viewport, doc):
    pose = viewport.current_view_pose()
    kf = doc.project.camera_path.keyframe("kf-a")
    img = viewport.grab_view(160, 90, keyframe_pose(kf), kf.fov)
    assert img.shape == (90, 160, 3) and img.dtype == np.uint8
    assert (np.abs(img.astype(int) - BG).sum(axis=2) > 40).mean() > 0.2  # the cloud is in it
    after = viewport.current_view_pose()
    np.testing.assert_allclose(after[0], pose[0])
    assert after[1] == pose[1]
    assert viewport._keyframe_lines.visible


@pytest.mark.gl
def test_no_cloud_then_a_project_with_one(qtbot):
    require_gl()
    from worldstudio.studio.viewport import Viewport

    doc = ProjectDocument(make_project())
    vp = Viewport(doc)
    qtbot.addWidget(vp)
    vp.resize(W, H)
    vp.show()
    qtbot.waitExposed(vp)
    assert vp.point_uploads == 0 and vp.displayed_points == 0
    assert vp._keyframe_lines.visible  # overlays draw without a cloud
    img = grab_rgb(vp)
    assert img.shape == (H, W, 3)
    vp.orbit(20.0, 5.0)
    doc.reset(make_project(), cloud=make_cloud(10_000))  # File > Open
    assert vp.point_uploads == 1 and vp.displayed_points == 10_000
    np.testing.assert_allclose(vp.current_view_pose()[0], np.eye(4))  # re-framed
    settle(qtbot)
    non_bg = np.abs(grab_rgb(vp).astype(int) - BG).sum(axis=2) > 40
    assert non_bg[H // 2 - 20 : H // 2 + 20, W // 2 - 20 : W // 2 + 20].mean() > 0.5


@pytest.mark.gl
def test_wheel_zooms_and_sets_the_fly_speed(viewport):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent

    native = viewport.canvas.native

    def wheel(notches: int) -> None:
        pos = QPointF(200.0, 150.0)
        ev = QWheelEvent(
            pos,
            native.mapToGlobal(pos),
            QPoint(0, 0),
            QPoint(0, 120 * notches),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(native, ev)

    target = viewport.camera.target
    d0 = viewport.camera.orbit_distance
    wheel(2)
    assert viewport.camera.orbit_distance < d0
    np.testing.assert_allclose(viewport.camera.target, target, atol=1e-9)
    viewport.set_fly_mode(True)
    s0 = viewport.fly_speed
    wheel(1)
    assert viewport.fly_speed == pytest.approx(s0 * 1.2)
    viewport.set_fly_mode(False)
    assert viewport.point_uploads == 1


@pytest.mark.gl
def test_look_through_follows_edits_of_that_camera(viewport, doc):
    viewport.look_through_keyframe("kf-a")
    commands.move_keyframe(doc, "kf-a", position=(0.1, 0.2, 0.3), fov=30.0)
    kf = doc.project.camera_path.keyframe("kf-a")
    c2w, fov = viewport.current_view_pose()
    np.testing.assert_allclose(c2w, keyframe_pose(kf), atol=1e-6)
    assert fov == pytest.approx(30.0)
    commands.delete_keyframe(doc, "kf-a")
    assert viewport.looking_through is None
    np.testing.assert_allclose(viewport.current_view_pose()[0], keyframe_pose(kf), atol=1e-6)


@pytest.mark.gl
def test_home_view_is_the_source_camera(viewport, doc):
    from worldstudio.core.project import Intrinsics

    def mutate(p: Project) -> None:
        p.intrinsics = Intrinsics(
            K=((200.0, 0.0, 160.0), (0.0, 200.0, 120.0), (0.0, 0.0, 1.0)), height=240, width=320
        )

    doc.edit("Set intrinsics", "scene", mutate)
    assert viewport.point_uploads == 1  # same cloud: a metadata edit uploads nothing
    viewport.orbit(30.0, 10.0)
    viewport.frame_scene()
    c2w, fov = viewport.current_view_pose()
    np.testing.assert_allclose(c2w, np.eye(4))
    assert fov == pytest.approx(math.degrees(2 * math.atan(120 / 200)))
    assert viewport.camera.target[2] == pytest.approx(4.0, abs=0.1)  # the cloud's middle


@pytest.mark.gl
def test_double_click_looks_through_and_a_still_ctrl_click_edits_nothing(viewport, doc):
    native = viewport.canvas.native
    c2w, fov = viewport.current_view_pose()
    m = doc.project.monitors[0]
    uv = expected_pixel(m.pose.position, c2w, fov)
    count = doc.undo_stack.count()
    mouse(native, "press", uv, mods=Qt.KeyboardModifier.ControlModifier)
    mouse(native, "release", uv, mods=Qt.KeyboardModifier.ControlModifier)
    assert doc.selection == Selection("monitor", m.id)
    assert doc.undo_stack.count() == count
    local = QPointF(float(uv[0]), float(uv[1]))
    ev = QMouseEvent(
        QEvent.Type.MouseButtonDblClick,
        local,
        native.mapToGlobal(local),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(native, ev)
    mouse(native, "release", uv)
    assert viewport.looking_through == ("monitor", m.id)
    np.testing.assert_allclose(
        viewport.current_view_pose()[0], pose_matrix(m.pose.position, m.pose.orientation), atol=1e-6
    )
