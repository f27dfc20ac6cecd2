"""Working in 3D in the real window: G / R through the window's keys, fly mode keeping its R,
and adding an entity by clicking it in the 3D view (SAM 2 on the source image at the clicked
point's projection), with the warning for a mask over much of the image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from worldstudio.studio.document import Selection
from worldstudio.studio.panels.entities import mask_points, source_pixel

from .conftest import gl_available
from .test_main_window import press
from .test_viewport import mouse

pytestmark = pytest.mark.gl


def gl_window(make_window, folder):
    if not gl_available():
        pytest.skip("needs OpenGL: the offscreen Qt platform has none (run under Xvfb)")
    w = make_window(folder, viewport=True)
    assert w.viewport is not None
    return w


def click(widget, pos, button=Qt.MouseButton.LeftButton) -> None:
    mouse(widget, "press", pos, button)
    mouse(widget, "release", pos, button)


def test_g_x_and_a_typed_distance_through_the_window_keys(make_window, demo_folder, qtbot):
    w = gl_window(make_window, demo_folder)
    kf = w.doc.project.camera_path.keyframes[1]
    w.doc.set_selection(Selection("keyframe", kf.id))
    start = np.array(kf.position)
    count = w.doc.undo_stack.count()
    w.timeline.setFocus()  # G works wherever the focus is in the window
    press(qtbot, w, Qt.Key.Key_G)
    assert w.viewport.transforming == "move"
    assert QApplication.focusWidget() is w.viewport.canvas.native
    for k in (Qt.Key.Key_X, Qt.Key.Key_1, Qt.Key.Key_Period, Qt.Key.Key_5):
        press(qtbot, w, k)
    # "I" would add a keyframe and Space would play: while G runs they are the viewport's.
    press(qtbot, w, Qt.Key.Key_Space)
    assert not w.playback.playing
    press(qtbot, w, Qt.Key.Key_Return)
    assert w.viewport.transforming == ""
    moved = np.array(w.doc.project.camera_path.keyframe(kf.id).position)
    np.testing.assert_allclose(moved, start + (1.5, 0.0, 0.0), atol=1e-12)
    assert w.doc.undo_stack.count() == count + 1
    # R with X twice (the camera's own x axis: a tilt) and a typed angle; Esc puts it back.
    press(qtbot, w, Qt.Key.Key_R)
    assert w.viewport.transforming == "rotate"
    for k in (Qt.Key.Key_X, Qt.Key.Key_X, Qt.Key.Key_3, Qt.Key.Key_0):
        press(qtbot, w, k)
    assert w.doc.project.camera_path.keyframe(kf.id).orientation != kf.orientation
    press(qtbot, w, Qt.Key.Key_Escape)
    assert w.doc.project.camera_path.keyframe(kf.id).orientation == pytest.approx(kf.orientation)
    assert w.doc.undo_stack.count() == count + 1
    # Nothing selected: G says so.
    w.doc.set_selection(None)
    press(qtbot, w, Qt.Key.Key_G)
    assert w.viewport.transforming == "" and "Select a keyframe" in w.status_label.text()


def test_fly_mode_keeps_r_for_recording(make_window, demo_folder, qtbot):
    w = gl_window(make_window, demo_folder)
    w.doc.set_selection(Selection("keyframe", w.doc.project.camera_path.keyframes[0].id))
    w.viewport.set_fly_mode(True)
    w.viewport.canvas.native.setFocus()
    press(qtbot, w, Qt.Key.Key_R)
    assert w.viewport.recording and w.viewport.transforming == ""
    press(qtbot, w, Qt.Key.Key_R)
    assert not w.viewport.recording
    w.viewport.set_fly_mode(False)


def ball_pixel(w, demo_folder):
    """Where a point of the ball shows in the 3D view, and the ball's mask."""
    ball = w.doc.project.entities[0]
    mask = np.array(Image.open(demo_folder / ball.mask_file)) > 0
    uv = w.viewport.screen_position(ball.anchor)
    assert uv is not None
    return np.array(uv), mask


def test_add_an_entity_by_clicking_it_in_the_3d_view(make_window, demo_folder, models_env, qtbot):
    w = gl_window(make_window, demo_folder)
    uv, mask = ball_pixel(w, demo_folder)
    n = len(w.doc.project.entities)
    assert w.act_add_entity_3d.isEnabled()
    w.act_add_entity_3d.trigger()
    assert w.viewport.picking_point and "Click the entity" in w.viewport._hud.text()
    click(w.viewport.canvas.native, uv)
    assert not w.viewport.picking_point
    dlg = w.entity_dialog
    qtbot.waitUntil(dlg.isVisible, timeout=3000)
    assert dlg.uses_masks
    # One click on the entity, at the picked point's pixel in the source image: on the ball.
    assert [lab for _x, _y, lab in dlg.image.points] == [1]
    x, y, _ = dlg.image.points[0]
    assert mask[int(y), int(x)], "the 3D click landed on the ball in the source image"
    assert dlg.wait() and dlg.mask is not None
    dlg.name.setText("ball again")
    # A mask over most of the image is questioned, with its pixel and point counts.
    asked = []
    dlg.mask = np.ones_like(mask)
    dlg.ask_large_mask = lambda text: asked.append(text) or False
    dlg._accept()
    assert len(asked) == 1 and f"{mask.size:,} pixels" in asked[0] and "100%" in asked[0]
    total = len(w.doc.cloud.xyz)
    assert f"{total:,} of the scene's {total:,} points" in asked[0]
    assert dlg.isVisible() and len(w.doc.project.entities) == n  # not used
    # A mask of the ball itself is not questioned: OK adds the entity (one undoable edit).
    dlg.mask = mask
    dlg.ask_large_mask = lambda text: pytest.fail("a small mask must not be questioned")
    dlg._accept()
    qtbot.waitUntil(lambda: len(w.doc.project.entities) == n + 1, timeout=3000)
    e = w.doc.project.entities[-1]
    assert e.name == "ball again" and e.mask_file and w.doc.selection == Selection("entity", e.id)
    w.act_undo.trigger()
    assert len(w.doc.project.entities) == n


def test_without_sam2_the_3d_click_gives_the_anchor(make_window, demo_folder, no_models_env, qtbot):
    w = gl_window(make_window, demo_folder)
    uv, mask = ball_pixel(w, demo_folder)
    w.act_add_entity_3d.trigger()
    click(w.viewport.canvas.native, uv)
    dlg = w.entity_dialog
    assert not dlg.uses_masks and dlg.image.mark is not None
    ball = w.doc.project.entities[0]
    assert dlg.anchor is not None
    assert np.linalg.norm(np.subtract(dlg.anchor, ball.anchor)) < 0.5 * ball.anchor[2]
    dlg.reject()


def test_a_right_click_or_empty_space_cancels_the_3d_pick(make_window, demo_folder, qtbot):
    w = gl_window(make_window, demo_folder)
    w.act_add_entity_3d.trigger()
    click(w.viewport.canvas.native, (5, 5), Qt.MouseButton.RightButton)
    assert not w.viewport.picking_point and getattr(w, "entity_dialog", None) is None
    w.act_add_entity_3d.trigger()
    click(w.viewport.canvas.native, (2, 2))  # the background: no point there
    assert not w.viewport.picking_point and getattr(w, "entity_dialog", None) is None


def test_source_pixel_and_mask_points(demo_folder):
    from worldstudio.core.project import ProjectFolder

    pf = ProjectFolder(demo_folder)
    p = pf.load()
    cloud = pf.read_cloud(p)
    ball = p.entities[0]
    mask = np.array(Image.open(demo_folder / ball.mask_file)) > 0
    # The demo cloud has one point per source pixel: the ball's mask holds as many points.
    assert mask_points(p, cloud, mask) == pytest.approx(int(mask.sum()), rel=0.02)
    assert mask_points(p, cloud, np.ones_like(mask)) == pytest.approx(len(cloud.xyz), rel=0.02)
    u, v = source_pixel(p, ball.anchor)
    assert mask[int(v), int(u)]
    assert source_pixel(p, (0.0, 0.0, -1.0)) is None  # behind the source camera
    assert source_pixel(p, (100.0, 0.0, 1.0)) is None  # outside the image
