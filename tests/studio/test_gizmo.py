"""The move / rotate gizmo and Blender's G / R in the 3D viewport: drags on its arrows, squares
and rings are undoable edits (one step per drag) that never move the view; G / R follow the
mouse with axis constraints and typed values; Esc puts everything back."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from worldstudio.core.geometry.path import keyframe_pose
from worldstudio.core.geometry.transforms import look_at, rotation_about_axis, rotation_angle
from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.viewport.camera import PoseCamera
from worldstudio.studio.viewport.gizmo import (
    RING_RADIUS,
    Gizmo,
    Handle,
    closest_on_line,
    ray_plane,
    rotation_about_screen,
    screen_angle,
)

from . import test_viewport as tv
from .test_viewport import H, W, drag, key, mouse, settle

X, Y, Z = np.eye(3)


# ============================================================================ no GL needed
def camera_at(eye=(1.5, -1.2, -2.0), target=(0.0, 0.0, 2.0), fov=50.0) -> PoseCamera:
    cam = PoseCamera()
    cam.set_pose(look_at(eye, target), fov)
    return cam


def test_camera_ray_inverts_the_projection():
    cam = camera_at()
    for point in ([0.2, -0.1, 2.5], [-0.8, 0.4, 3.0]):
        uv, z = cam.project(np.array(point), (W, H))
        origin, d = cam.ray(uv[0, 0], uv[0, 1], (W, H))
        np.testing.assert_allclose(origin + d * np.linalg.norm(np.subtract(point, origin)), point)


def test_drag_math():
    # The axis x through (0, 0, 5); a ray from the origin toward (1, 0.3, 5) passes nearest x=1.
    t = closest_on_line((0, 0, 5), X, (0, 0, 0), np.array([1.0, 0.3, 5.0]) / 5.0)
    assert t == pytest.approx(1.0 - 0.3 * 0.3 * 0.0, abs=0.07)
    assert closest_on_line((0, 0, 5), Z, (0, 0, 0), Z) is None  # the axis points at the viewer
    hit = ray_plane((0, 1, 0), Y, (0, 0, 0), np.array([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(hit, (0.5, 1.0, 2.0))
    assert ray_plane((0, 1, 0), Y, (0, 0, 0), np.array([1.0, 0.0, 0.0])) is None  # parallel
    assert ray_plane((0, -1, 0), Y, (0, 0, 0), np.array([0.0, 1.0, 0.0])) is None  # behind
    assert screen_angle((0, 0), (10, 0), (0, 10)) == pytest.approx(90.0)  # clockwise (v down)


def test_screen_angle_sign_matches_a_real_rotation():
    """Turning a point about an axis by +a moves it on screen by +a about the centre when the
    axis points away from the viewer, by -a when it points at the viewer."""
    cam = camera_at()
    center = np.array([0.0, 0.0, 2.0])
    for axis in (Y, -Y, cam.forward, -cam.forward, X):
        if abs(float(axis @ cam.forward)) < 0.8:
            continue  # seen obliquely the angle on screen is not the 3D one
        u = np.cross(axis, X if abs(axis[0]) < 0.9 else Y)
        u /= np.linalg.norm(u)
        p0 = center + 0.5 * u
        p1 = center + rotation_about_axis(axis, 20.0) @ (0.5 * u)
        c, a, b = cam.project(np.array([center, p0, p1]), (W, H))[0]
        assert 15.0 < rotation_about_screen(axis, cam.forward, screen_angle(c, a, b)) < 25.0


def test_gizmo_handles_are_picked_where_they_are_drawn():
    cam = camera_at()
    center = np.array([0.1, 0.2, 2.0])

    def project(pts):
        return cam.project(np.asarray(pts), (W, H))[0]

    g = Gizmo(center, np.eye(3), 1.0, True, cam.c2w[:3, :3])
    assert g.pick(project, *project(center[None])[0]) == Handle("view")
    for i in range(3):
        mid = project(g.shaft(i).mean(axis=0)[None])[0]
        assert g.pick(project, *mid) == Handle("axis", i)
        inside = project(g.plane_square(i).mean(axis=0)[None])[0]
        assert g.pick(project, *inside) == Handle("plane", i)
    # A ring point that no other handle is near.
    for i in range(3):
        ring = project(g.ring(i))
        others = [project(g.ring(j)) for j in range(3) if j != i]
        for k in range(0, len(ring), 4):
            if all(np.min(np.linalg.norm(o - ring[k], axis=1)) > 10 for o in others):
                assert g.pick(project, *ring[k]) == Handle("ring", i)
                break
        else:
            pytest.fail(f"ring {i} is everywhere close to another ring")
    far = project(center[None])[0] + (RING_RADIUS * 400, 0)
    assert g.pick(project, *far) is None
    # An entity's gizmo has no rings.
    assert not any(
        h.kind == "ring" for h in Gizmo(center, np.eye(3), 0.4, False, cam.c2w[:3, :3]).handles()
    )


# ============================================================================ GL
@pytest.fixture
def doc():
    return ProjectDocument(tv.make_project(), cloud=tv.make_cloud())


@pytest.fixture
def viewport(qtbot, doc):
    tv.require_gl()
    from worldstudio.studio.viewport import Viewport

    vp = Viewport(doc)
    qtbot.addWidget(vp)
    vp.resize(W, H)
    vp.show()
    qtbot.waitExposed(vp)
    settle(qtbot)
    return vp


def px(viewport, point) -> np.ndarray:
    return viewport._project_px(np.asarray(point, dtype=np.float64)[None])[0]


def select(viewport, doc, qtbot, kind="keyframe", ident="kf-a"):
    doc.set_selection(Selection(kind, ident))
    settle(qtbot)
    assert viewport.gizmo is not None
    return viewport.gizmo


def kf_position(doc, ident="kf-a") -> np.ndarray:
    return np.array(doc.project.camera_path.keyframe(ident).position)


@pytest.mark.gl
def test_arrow_drag_moves_along_its_axis_in_one_undo_step_and_never_the_view(viewport, doc, qtbot):
    native = viewport.canvas.native
    g = select(viewport, doc, qtbot)
    view = viewport.current_view_pose()[0]
    start = kf_position(doc)
    count = doc.undo_stack.count()
    grab = g.shaft(0).mean(axis=0)  # the middle of the X arrow
    a = px(viewport, grab)
    direction = px(viewport, grab + X * 0.1) - a
    end = a + 60 * direction / np.linalg.norm(direction) + (0, 12)  # a bit off the axis too
    drag(qtbot, native, a, end, steps=8)
    moved = kf_position(doc)
    np.testing.assert_allclose(moved[1:], start[1:], atol=1e-12)  # only x changed
    assert moved[0] > start[0] + 1e-3
    # The grabbed point of the arrow followed the cursor along the arrow's screen line.
    follow = px(viewport, grab + (moved - start))
    foot = a + np.dot(end - a, direction) / np.dot(direction, direction) * direction
    assert np.linalg.norm(follow - foot) < 1.5
    np.testing.assert_allclose(viewport.current_view_pose()[0], view)  # no orbit, no pan
    assert doc.undo_stack.count() == count + 1
    doc.undo_stack.undo()
    np.testing.assert_allclose(kf_position(doc), start)
    # The gizmo follows the model.
    np.testing.assert_allclose(viewport.gizmo.center, start)
    # Shift held (which pans on empty space): a press on the arrow still takes the arrow.
    drag(qtbot, native, a, end, steps=6, mods=Qt.KeyboardModifier.ShiftModifier)
    assert kf_position(doc)[0] > start[0] + 1e-3
    np.testing.assert_allclose(kf_position(doc)[1:], start[1:], atol=1e-12)
    np.testing.assert_allclose(viewport.current_view_pose()[0], view)
    assert viewport.point_uploads == 1  # the gizmo redraws a few lines, never the points


@pytest.mark.gl
def test_square_drag_moves_in_its_plane_under_the_cursor(viewport, doc, qtbot):
    native = viewport.canvas.native
    g = select(viewport, doc, qtbot, "monitor", "mon-a")
    view = viewport.current_view_pose()[0]
    start = np.array(doc.project.monitors[0].pose.position)
    a = np.round(px(viewport, g.plane_square(1).mean(axis=0)))  # the XZ square (normal Y)
    end = a + (35, -20)
    grab = ray_plane(start, Y, *viewport._ray(a))  # the point of the plane under the press
    count = doc.undo_stack.count()
    drag(qtbot, native, a, end, steps=6)
    moved = np.array(doc.project.monitors[0].pose.position)
    assert moved[1] == pytest.approx(start[1], abs=1e-12) and not np.allclose(moved, start)
    # The grabbed point of the square is under the cursor where the drag ended.
    np.testing.assert_allclose(px(viewport, grab + (moved - start)), end, atol=1e-6)
    np.testing.assert_allclose(viewport.current_view_pose()[0], view)
    assert doc.undo_stack.count() == count + 1
    doc.undo_stack.undo()
    np.testing.assert_allclose(doc.project.monitors[0].pose.position, start)


def ring_grip(viewport, ring, axis):
    """An index of a ring point well inside the view where a press takes that ring."""
    for k in range(0, len(ring) - 1):
        a = np.round(px(viewport, ring[k]))
        if 30 < a[0] < W - 30 and 30 < a[1] < H - 30:
            if viewport.gizmo_handle_at(*a) == Handle("ring", axis):
                return k
    return None


@pytest.mark.gl
@pytest.mark.parametrize("seen", ["well", "edge-on"])
def test_ring_drag_rotates_about_its_axis_only(viewport, doc, qtbot, seen):
    """Seen well, the grabbed point of the ring follows the cursor; seen edge-on (the Y ring
    from the source camera is a line on screen) the ring turns with the drag along it."""
    native = viewport.canvas.native
    if seen == "well":
        viewport.orbit(15.0, 40.0)  # from above: the Y ring is an ellipse
    g = select(viewport, doc, qtbot)
    view = viewport.current_view_pose()[0]
    before = keyframe_pose(doc.project.camera_path.keyframe("kf-a"))
    p0 = before[:3, 3]
    ring = g.ring(1)  # about Y
    k = ring_grip(viewport, ring, 1)
    assert k is not None
    n = len(ring) - 1
    a = np.round(px(viewport, ring[k]))
    target = ring[(k + 5) % n]  # along the ring, ~28 degrees
    b = np.round(px(viewport, target))
    if np.linalg.norm(b - a) < 8:
        target = ring[(k - 5) % n]
        b = np.round(px(viewport, target))
    count = doc.undo_stack.count()
    drag(qtbot, native, a, b, steps=8)
    after = keyframe_pose(doc.project.camera_path.keyframe("kf-a"))
    np.testing.assert_allclose(after[:3, 3], p0)  # rotation only
    turn = after[:3, :3] @ before[:3, :3].T
    angle = math.degrees(rotation_angle(np.eye(3), turn))
    assert 5.0 < angle < 80.0
    axis = np.array([turn[2, 1] - turn[1, 2], turn[0, 2] - turn[2, 0], turn[1, 0] - turn[0, 1]])
    assert abs(axis[1]) / np.linalg.norm(axis) == pytest.approx(1.0, abs=1e-6)  # about Y
    # The grabbed ring point moved the way the cursor did.
    moved = px(viewport, p0 + turn @ (ring[k] - p0))
    if seen == "well":
        assert np.linalg.norm(moved - b) < 1.5
    else:
        assert np.dot(moved - a, b - a) > 0
    np.testing.assert_allclose(viewport.current_view_pose()[0], view)
    assert doc.undo_stack.count() == count + 1
    doc.undo_stack.undo()
    np.testing.assert_allclose(keyframe_pose(doc.project.camera_path.keyframe("kf-a")), before)


@pytest.mark.gl
def test_a_still_click_on_the_gizmo_edits_nothing(viewport, doc, qtbot):
    native = viewport.canvas.native
    g = select(viewport, doc, qtbot)
    count = doc.undo_stack.count()
    a = px(viewport, g.shaft(2).mean(axis=0))
    mouse(native, "press", a)
    mouse(native, "release", a)
    assert doc.undo_stack.count() == count and doc.selection == Selection("keyframe", "kf-a")


def typed(viewport, text: str) -> None:
    native = viewport.canvas.native
    for ch in text:
        qt_key = {"-": Qt.Key.Key_Minus, ".": Qt.Key.Key_Period}.get(ch) or getattr(
            Qt.Key, f"Key_{ch.upper()}"
        )
        key(native, "press", qt_key, ch)
        key(native, "release", qt_key, ch)


@pytest.mark.gl
def test_g_with_an_axis_and_a_typed_distance(viewport, doc, qtbot):
    g = select(viewport, doc, qtbot)
    start = kf_position(doc)
    count = doc.undo_stack.count()
    assert viewport.begin_transform("move") is None
    assert viewport.transforming == "move" and viewport.gizmo is None  # hidden meanwhile
    native = viewport.canvas.native
    qtbot.wait(15)
    mouse(native, "move", px(viewport, g.center) + (30, 10), Qt.MouseButton.NoButton)
    assert not np.allclose(kf_position(doc), start)  # the mouse moves it, no button held
    typed(viewport, "x")
    typed(viewport, "0.5")
    assert "along X (global)" in viewport._hud.text() and "0.5" in viewport._hud.text()
    np.testing.assert_allclose(kf_position(doc), start + (0.5, 0.0, 0.0), atol=1e-12)
    key(native, "press", Qt.Key.Key_Return)
    assert viewport.transforming == "" and viewport.gizmo is not None
    np.testing.assert_allclose(kf_position(doc), start + (0.5, 0.0, 0.0), atol=1e-12)
    assert doc.undo_stack.count() == count + 1
    doc.undo_stack.undo()
    np.testing.assert_allclose(kf_position(doc), start)
    # X twice: the keyframe's own x axis; a negative number goes the other way.
    R = keyframe_pose(doc.project.camera_path.keyframe("kf-a"))[:3, :3]
    viewport.begin_transform("move")
    typed(viewport, "xx")
    typed(viewport, "-2")
    assert "along X (local)" in viewport._hud.text()
    np.testing.assert_allclose(kf_position(doc), start - 2.0 * R[:, 0], atol=1e-12)
    viewport.confirm_transform()
    doc.undo_stack.undo()


@pytest.mark.gl
def test_g_along_an_axis_follows_the_mouse_and_esc_restores(viewport, doc, qtbot):
    native = viewport.canvas.native
    g = select(viewport, doc, qtbot, "entity", "ent-a")
    start = np.array(doc.project.entities[0].anchor)
    clean = doc.undo_stack.index()
    doc.undo_stack.setClean()
    mouse(native, "move", px(viewport, g.center), Qt.MouseButton.NoButton)
    assert viewport.begin_transform("move") is None
    typed(viewport, "z")
    qtbot.wait(15)  # vispy drops mouse moves closer than 10 ms apart
    mouse(native, "move", px(viewport, g.center) + (0, -40), Qt.MouseButton.NoButton)
    moved = np.array(doc.project.entities[0].anchor)
    np.testing.assert_allclose(moved[:2], start[:2], atol=1e-12)
    assert moved[2] != pytest.approx(start[2])
    # Shift+Z: the XY plane; Z again (without Shift): along Z again.
    native_shift = Qt.KeyboardModifier.ShiftModifier
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(
        native, QKeyEvent(QKeyEvent.Type.KeyPress, Qt.Key.Key_Z, native_shift, "Z")
    )
    assert "in the XY plane" in viewport._hud.text()
    key(native, "press", Qt.Key.Key_Escape)
    np.testing.assert_allclose(doc.project.entities[0].anchor, start)
    assert doc.undo_stack.index() == clean and doc.undo_stack.isClean()  # nothing left behind
    assert viewport.transforming == ""
    assert viewport.begin_transform("rotate") is not None  # an anchor has no orientation


@pytest.mark.gl
def test_r_about_an_axis_with_a_typed_angle_and_right_click_cancels(viewport, doc, qtbot):
    select(viewport, doc, qtbot, "monitor", "mon-a")
    m = doc.project.monitors[0]
    from worldstudio.core.geometry.transforms import pose_matrix

    before = pose_matrix(m.pose.position, m.pose.orientation)
    assert viewport.begin_transform("rotate") is None
    typed(viewport, "z90")
    after = pose_matrix(
        doc.project.monitors[0].pose.position, doc.project.monitors[0].pose.orientation
    )
    np.testing.assert_allclose(
        after[:3, :3], rotation_about_axis(Z, 90.0) @ before[:3, :3], atol=1e-9
    )
    np.testing.assert_allclose(after[:3, 3], before[:3, 3])
    count = doc.undo_stack.count()
    viewport.confirm_transform()
    assert doc.undo_stack.count() == count
    # Free R turns about the view axis with the mouse; a right click puts it back.
    native = viewport.canvas.native
    c = px(viewport, after[:3, 3])
    qtbot.wait(15)
    mouse(native, "move", c + (40, 0), Qt.MouseButton.NoButton)
    viewport.begin_transform("rotate")
    qtbot.wait(15)
    mouse(native, "move", c + (0, 40), Qt.MouseButton.NoButton)
    turned = doc.project.monitors[0].pose.orientation
    assert rotation_angle(pose_matrix((0, 0, 0), turned)[:3, :3], after[:3, :3]) > 0.1
    mouse(native, "press", c + (0, 40), Qt.MouseButton.RightButton)
    mouse(native, "release", c + (0, 40), Qt.MouseButton.RightButton)
    final = pose_matrix(
        doc.project.monitors[0].pose.position, doc.project.monitors[0].pose.orientation
    )
    np.testing.assert_allclose(final, after, atol=1e-9)
    assert doc.undo_stack.count() == count
