"""The real main window, driven like a user: keys, menus, clicks on the timeline, the inspector."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.store import AUTOSAVE_FILE
from worldstudio.studio.document import Selection

from .conftest import gl_available


def kf_ids(w) -> list[str]:
    return [k.id for k in w.doc.project.camera_path.keyframes]


def press(qtbot, w, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key press as the user makes it: to the focused widget of the active window."""
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=3000)
    target = QApplication.focusWidget() or w
    qtbot.keyClick(target, key, modifier)


def view_point(w, x: float, y: float) -> QPoint:
    """Timeline view coordinates (frame, row) -> pixel in the plot's viewport."""
    tl = w.timeline
    return tl.plot.mapFromScene(tl.vb.mapViewToScene(QPointF(x, y)))


def test_opens_the_demo_project(make_window, demo_folder):
    w = make_window(demo_folder)
    p = w.doc.project
    assert w.windowTitle().startswith(f"{p.name} — ") and "*" not in w.windowTitle()
    assert w.doc.cloud is not None and len(w.doc.cloud.xyz) > 1000
    assert len(p.camera_path.keyframes) >= 2 and len(p.rounds) == 2
    # The timeline shows every track: rounds, camera, each entity, each monitor.
    assert w.timeline.rows == (
        [("rounds", None), ("camera", None)]
        + [("entity", e.id) for e in p.entities]
        + [("monitor", m.id) for m in p.monitors]
    )
    assert w.rounds_panel.table.rowCount() == 2
    assert w.entities_panel.entities.count() == len(p.entities)
    assert w.act_render.isEnabled()
    for dock in (w.inspector_dock, w.camera_dock, w.timeline_dock):
        assert dock.isVisible()


def test_add_move_delete_keyframes_through_actions_and_undo(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    before = kf_ids(w)
    original = w.doc.project.model_copy(deep=True)

    # Add: I at a frame between keyframes, from the current view (the playhead camera here).
    w.doc.set_playhead(10)
    press(qtbot, w, Qt.Key.Key_I)
    ids = kf_ids(w)
    assert len(ids) == len(before) + 1
    new = (set(ids) - set(before)).pop()
    assert w.doc.selection == Selection("keyframe", new)
    assert w.doc.keyframe_frames()[ids.index(new)] == 10
    assert "*" in w.windowTitle()

    # Move: the inspector's position field, as typed by the user.
    spin = w.inspector.k_pose.pos[0]
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "0.75")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert w.doc.project.camera_path.keyframe(new).position[0] == pytest.approx(0.75)

    # Delete: Alt+I removes the selected keyframe.
    w.timeline.setFocus()
    press(qtbot, w, Qt.Key.Key_I, Qt.KeyboardModifier.AltModifier)
    assert kf_ids(w) == before

    # Undo all three steps, then redo them.
    stack = w.doc.undo_stack
    assert stack.count() == 3
    w.act_undo.trigger()
    assert new in kf_ids(w)
    assert w.doc.project.camera_path.keyframe(new).position[0] == pytest.approx(0.75)
    w.act_undo.trigger()
    assert w.doc.project.camera_path.keyframe(new).position[0] != pytest.approx(0.75)
    w.act_undo.trigger()
    assert w.doc.project == original
    assert "*" not in w.windowTitle()
    w.act_redo.trigger()
    w.act_redo.trigger()
    w.act_redo.trigger()
    assert kf_ids(w) == before


def test_ctrl_z_and_ctrl_shift_z(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    n = len(kf_ids(w))
    w.doc.set_playhead(5)
    w.act_add_kf.trigger()
    assert len(kf_ids(w)) == n + 1
    w.timeline.setFocus()
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(kf_ids(w)) == n
    press(
        qtbot,
        w,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert len(kf_ids(w)) == n + 1


def test_drag_a_keyframe_on_the_timeline_retimes_it_in_one_undo_step(
    make_window, demo_folder, qtbot
):
    w = make_window(demo_folder)
    tl = w.timeline
    kfs = w.doc.project.camera_path.keyframes
    frames = w.doc.keyframe_frames()
    kf = kfs[1]
    start, target = frames[1], frames[1] + 12
    vp = tl.plot.viewport()
    p0, p1 = view_point(w, start, 1.5), view_point(w, target, 1.5)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=p0)
    for i in range(1, 9):
        qtbot.mouseMove(vp, p0 + (p1 - p0) * (i / 8))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=p1)
    new_frames = w.doc.keyframe_frames()
    assert new_frames[1] == pytest.approx(target, abs=1)
    assert new_frames[0] == frames[0] and new_frames[2:] == frames[2:], (
        "the others keep their frames"
    )
    assert w.doc.selection == Selection("keyframe", kf.id)
    assert w.doc.undo_stack.count() == 1
    w.doc.undo_stack.undo()
    assert w.doc.keyframe_frames() == frames


def test_edit_a_prompt_and_a_scene_text_on_the_timeline(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    tl = w.timeline
    ent = w.doc.project.entities[0]
    row = tl.row_index("entity", ent.id)
    # Click the entity's round-2 block, type, Enter.
    centre = tl.block_rect(row, 1).center().toPoint()
    qtbot.mouseClick(tl.plot.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    editor = tl.editor
    assert editor is not None and editor.isVisible()
    assert editor.text() == ent.prompts[1]
    editor.selectAll()
    qtbot.keyClicks(editor, "the ball stops under the table")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert w.doc.project.entity(ent.id).prompts[1] == "the ball stops under the table"
    assert w.doc.selection == Selection("entity", ent.id)
    # The rounds table follows the model.
    col = 1 + [e.id for e in w.doc.project.entities].index(ent.id)
    assert w.rounds_panel.table.item(1, col).text() == "the ball stops under the table"

    # Scene text of round 1; Escape cancels, Enter commits.
    centre = tl.block_rect(tl.row_index("rounds"), 0).center().toPoint()
    qtbot.mouseClick(tl.plot.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    old = w.doc.project.rounds[0].scene_text
    qtbot.keyClicks(tl.editor, "ignored")
    qtbot.keyClick(tl.editor, Qt.Key.Key_Escape)
    assert w.doc.project.rounds[0].scene_text == old
    qtbot.mouseClick(tl.plot.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    tl.editor.selectAll()
    qtbot.keyClicks(tl.editor, "a storm outside")
    qtbot.keyClick(tl.editor, Qt.Key.Key_Return)
    assert w.doc.project.rounds[0].scene_text == "a storm outside"
    assert w.doc.selection == Selection("round", "0")
    assert w.inspector.r_scene.toPlainText() == "a storm outside"

    w.act_undo.trigger()
    assert w.doc.project.rounds[0].scene_text == old
    w.act_undo.trigger()
    assert w.doc.project.entity(ent.id).prompts[1] == ent.prompts[1]


def test_space_plays_the_path_and_arrows_step(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    assert w.doc.playhead == 0
    w.timeline.setFocus()
    press(qtbot, w, Qt.Key.Key_Space)
    assert w.playback.playing and w.act_play.text() == "Pause"
    fps = w.doc.project.camera_path.settings.fps
    qtbot.waitUntil(lambda: w.doc.playhead >= 4, timeout=3000)
    # Real time: ~fps frames a second, not as fast as the timer fires.
    assert w.doc.playhead <= fps
    press(qtbot, w, Qt.Key.Key_Space)
    assert not w.playback.playing and w.act_play.text() == "Play / pause"
    f = w.doc.playhead
    press(qtbot, w, Qt.Key.Key_Right)
    assert w.doc.playhead == f + 1
    press(qtbot, w, Qt.Key.Key_Left)
    press(qtbot, w, Qt.Key.Key_Left)
    assert w.doc.playhead == f - 1
    frames = w.doc.keyframe_frames()
    press(qtbot, w, Qt.Key.Key_Up)
    assert w.doc.playhead == min(x for x in frames if x > f - 1)
    assert w.doc.selection.kind == "keyframe"
    press(qtbot, w, Qt.Key.Key_Down)
    assert w.doc.playhead == max(x for x in frames if x < min(x for x in frames if x > f - 1))


def test_playback_stops_at_the_end(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    last = w.doc.frame_count() - 1
    w.doc.set_playhead(last - 3)
    w.playback.play()
    qtbot.waitUntil(lambda: not w.playback.playing, timeout=3000)
    assert w.doc.playhead == last


def test_render_preview_through_the_worker_and_play_it(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    progress = []
    with qtbot.waitSignal(w.preview_ready, timeout=60000) as blocker:
        handle = w.render_preview(width=96, height=64)
        assert handle is not None and w.shown_job is handle
        handle.progress.connect(lambda d, t, m: progress.append((d, t)))
        assert w.progress.isVisible() and w.cancel_button.isVisible()
        assert not w.act_render.isEnabled(), "one render at a time"
    path = blocker.args[0]
    assert path.startswith(str(ProjectFolder(demo_folder).runs_dir))
    assert progress and progress[-1][0] == progress[-1][1]
    qtbot.waitUntil(lambda: w.player.complete, timeout=10000)
    assert len(w.player.frames) == w.doc.path_frames()
    assert w.player.frames[0].shape == (64, 96, 3)
    assert not w.progress.isVisible()
    assert "Preview written" in w.status_label.text()


def test_failed_job_shows_in_the_status_bar(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    from worldstudio.core.errors import WorldStudioError

    def broken(ctx):
        raise WorldStudioError("scene/points.ply: the scene's point cloud is missing")

    handle = w.run_job(broken, "Render preview")
    with qtbot.waitSignal(handle.failed, timeout=5000):
        pass
    assert "point cloud is missing" in w.status_label.text()
    assert "point cloud is missing" in w.log_view.toPlainText()


def test_save_and_reopen_gives_the_same_model(make_window, demo_folder, qtbot, tmp_path):
    w = make_window(demo_folder)
    from worldstudio.studio import commands

    commands.set_scene_text(w.doc, 1, "night falls")
    commands.set_entity_prompt(w.doc, w.doc.project.entities[0].id, 0, "bounces")
    w.doc.set_playhead(20)
    w.add_keyframe_from_view()
    assert "*" in w.windowTitle()
    press(qtbot, w, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert "*" not in w.windowTitle()
    saved = w.doc.project.model_dump()
    w2 = make_window(demo_folder)
    assert w2.doc.project.model_dump() == saved
    # Save As copies the scene files, so the new folder is a whole project.
    other = tmp_path / "copy.wsproj"
    assert w._save_to(other)
    w3 = make_window(other)
    assert w3.doc.project.model_dump() == saved
    assert w3.doc.cloud is not None and len(w3.doc.cloud.xyz) == len(w.doc.cloud.xyz)


def test_close_with_unsaved_changes_asks(make_window, demo_folder):
    w = make_window(demo_folder)
    from worldstudio.studio import commands

    commands.rename_project(w.doc, "Renamed")
    assert w.windowTitle().startswith("Renamed*")
    asked = []
    w.ask_unsaved = lambda: asked.append(1) or "cancel"
    w.close()
    assert asked and w.isVisible(), "cancel keeps the window open"
    w.ask_unsaved = lambda: "save"
    w.close()
    assert not w.isVisible()
    assert ProjectFolder(demo_folder).load().name == "Renamed"


def test_autosave_and_recovery(make_window, demo_folder):
    w = make_window(demo_folder)
    from worldstudio.studio import commands

    assert w.autosave() is None, "nothing to autosave while unmodified"
    commands.set_scene_text(w.doc, 0, "unsaved words")
    path = w.autosave()
    assert path == demo_folder / AUTOSAVE_FILE and path.is_file()
    assert ProjectFolder(demo_folder).load().rounds[0].scene_text != "unsaved words"
    # A crash: the next window offers the autosave and recovers it as an undoable edit.
    offered = []
    w2 = make_window()
    w2.ask_recover = lambda when: offered.append(when) or True
    w2.open_project(demo_folder)
    assert offered
    assert w2.doc.project.rounds[0].scene_text == "unsaved words"
    assert w2.doc.is_modified
    w2.save()
    assert not path.exists(), "saving removes the autosave"
    # Declining removes it too.
    commands.set_scene_text(w2.doc, 0, "more words")
    w2.autosave()
    w3 = make_window()
    w3.ask_recover = lambda when: False
    w3.open_project(demo_folder)
    assert w3.doc.project.rounds[0].scene_text == "unsaved words"
    assert not path.exists()


def test_presets_dialog_replaces_the_path_in_one_undo_step(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    before = w.doc.project.camera_path.model_copy(deep=True)
    dlg = w.path_dialog(preset="orbit")
    dlg.start.setCurrentText("first keyframe")
    dlg.set_option("n_keyframes", "6")
    dlg.set_option("degrees", "90")
    assert dlg.keyframes and dlg.buttons.buttons()[0].isEnabled()
    dlg._accept()
    assert w.doc.project.camera_path.keyframes == dlg.keyframes
    assert w.doc.undo_stack.count() == 1
    w.act_undo.trigger()
    assert w.doc.project.camera_path == before
    # An action string, and a wrong one with its reason.
    dlg = w.path_dialog(preset="actions")
    dlg.set_option("text", "(FN)(FRB)")
    assert not dlg.keyframes and "FRB" in dlg.result.text()
    dlg.set_option("text", "(FN)(FN)(SL)")
    assert len(dlg.keyframes) >= 3
    dlg._accept()
    assert w.doc.undo_stack.count() == 1  # the undone orbit was replaced by this step


def test_inspector_follows_the_selection(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    p = w.doc.project
    kf = p.camera_path.keyframes[1]
    w.doc.set_selection(Selection("keyframe", kf.id))
    assert w.inspector.stack.currentWidget() is w.inspector.pages["keyframe"]
    assert [s.value() for s in w.inspector.k_pose.pos] == pytest.approx(list(kf.position), abs=1e-4)
    assert w.inspector.k_pose.fov.value() == pytest.approx(kf.fov)
    m = p.monitors[0]
    w.doc.set_selection(Selection("monitor", m.id))
    assert w.inspector.m_name.text() == m.name
    e = p.entities[0]
    w.doc.set_selection(Selection("entity", e.id))
    assert [ed.text() for ed in w.inspector.e_prompt_edits] == [
        e.prompt(r) for r in range(len(p.rounds))
    ]
    w.doc.set_selection(None)
    assert w.inspector.stack.currentWidget() is w.inspector.pages["project"]


def test_a_monitor_has_its_own_scene_text_in_the_inspector(make_window, demo_folder):
    w = make_window(demo_folder)
    p = w.doc.project
    m = p.monitors[0]
    w.doc.set_selection(Selection("monitor", m.id))
    ins = w.inspector
    assert ins.m_scene.toPlainText() == "" and "round's scene text" in ins.m_scene.placeholderText()
    assert ins.m_prompt.text().startswith(f"scene: {p.rounds[0].scene_text}; foreground: ")
    ins.m_scene.setPlainText("a room seen from its doorway")
    ins.m_scene.committed.emit(ins.m_scene.toPlainText())
    assert w.doc.project.monitors[0].scene_text == "a room seen from its doorway"
    assert ins.m_prompt.text().startswith("scene: a room seen from its doorway; foreground: ")
    ins.m_scene.setPlainText("  ")  # blank: back to the round's text
    ins.m_scene.committed.emit(ins.m_scene.toPlainText())
    assert w.doc.project.monitors[0].scene_text is None
    w.doc.undo_stack.undo()
    assert w.doc.project.monitors[0].scene_text == "a room seen from its doorway"
    assert ins.m_scene.toPlainText() == "a room seen from its doorway"


def test_keyframe_thumbnail_and_playhead_pane_render_in_the_background(
    make_window, demo_folder, qtbot
):
    w = make_window(demo_folder)
    with qtbot.waitSignal(w.camera_view.frame_shown, timeout=30000):
        w.start_renders()
    assert w.camera_view.image is not None and w.camera_view.image.mean() > 10
    with qtbot.waitSignal(w.frame_renderer.rendered, timeout=30000):
        w.doc.set_selection(Selection("keyframe", w.doc.project.camera_path.keyframes[0].id))
    qtbot.waitUntil(
        lambda: (
            w.inspector.k_thumb.pixmap() is not None and not w.inspector.k_thumb.pixmap().isNull()
        ),
        timeout=5000,
    )


def test_opening_the_window_imports_no_heavy_libraries(demo_folder, tmp_path):
    """Run in a fresh interpreter, so sys.modules starts clean. The real viewport is included
    where there is OpenGL (Xvfb)."""
    script = textwrap.dedent(f"""
        import sys
        from worldstudio.studio.app import make_app
        app = make_app()
        from worldstudio.studio.main_window import MainWindow
        w = MainWindow(viewport={gl_available()!r})
        w.show()
        assert w.open_project({str(demo_folder)!r})
        for _ in range(20):
            app.processEvents()
        heavy = sorted(m for m in ("torch", "diffusers", "transformers", "peft") if m in sys.modules)
        print("HEAVY:", ",".join(heavy))
        print("VIEWPORT:", w.viewport is not None)
        w.ask_unsaved = lambda: "discard"
        w.close()
    """)
    env = dict(os.environ, WORLDSTUDIO_CONFIG_DIR=str(tmp_path / "cfg"))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY: \n" in proc.stdout, proc.stdout
    assert f"VIEWPORT: {gl_available()}" in proc.stdout


@pytest.mark.gl
def test_add_keyframe_from_the_3d_view(make_window, demo_folder, qtbot):
    if not gl_available():
        pytest.skip("needs OpenGL: the offscreen Qt platform has none (run under Xvfb)")
    w = make_window(demo_folder, viewport=True)
    assert w.viewport is not None
    w.viewport.orbit(25.0, -10.0)
    c2w, fov = w.viewport.current_view_pose()
    w.doc.set_playhead(7)
    kf_id = w.add_keyframe_from_view()
    from worldstudio.core.geometry.path import keyframe_pose

    kf = w.doc.project.camera_path.keyframe(kf_id)
    assert np.allclose(keyframe_pose(kf), c2w, atol=1e-6)
    assert kf.fov == pytest.approx(fov)
    # Look through it: the viewport camera takes exactly the keyframe's pose.
    w.doc.set_selection(Selection("keyframe", kf_id))
    w.look_through_selection()
    assert np.allclose(w.viewport.current_view_pose()[0], keyframe_pose(kf), atol=1e-9)


def test_entity_from_a_click_on_the_source_image(make_window, demo_folder, qtbot):
    """The anchor comes from the depth under the clicked pixel: clicking the ball's centre in the
    source image lands on the ball's surface, near its known anchor."""
    from PIL import Image

    from worldstudio.studio.panels.entities import SourcePickDialog

    w = make_window(demo_folder)
    ball = w.doc.project.entities[0]
    mask = np.array(Image.open(demo_folder / ball.mask_file)) > 0
    vs, us = np.nonzero(mask)
    dlg = SourcePickDialog(w.doc, w.runner, w)
    qtbot.addWidget(dlg)
    dlg.name.setText("second ball")
    qtbot.mouseClick(
        dlg.image,
        Qt.MouseButton.LeftButton,
        pos=QPoint(int(us.mean() * dlg.scale), int(vs.mean() * dlg.scale)),
    )
    assert dlg.anchor is not None
    radius = 0.5 * (us.max() - us.min()) / w.doc.project.intrinsics.K[0][0] * ball.anchor[2]
    assert np.linalg.norm(np.subtract(dlg.anchor, ball.anchor)) < 2.5 * radius
    eid = dlg.create()
    e = w.doc.project.entity(eid)
    assert (
        e.name == "second ball"
        and e.defined_from is not None
        and e.defined_fov == pytest.approx(60.0)
    )
    assert ("entity", eid) in w.timeline.rows
    assert w.entities_panel.entities.count() == 2


def test_monitors_from_view_and_for_an_entity_and_assignment(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    p = w.doc.project
    w.doc.set_playhead(30)
    n = len(p.monitors)
    w.act_add_monitor.trigger()  # from the current view (here: the playhead camera)
    mon = w.doc.project.monitors[-1]
    c2w, fov = w.doc.pose_at(30)
    assert len(w.doc.project.monitors) == n + 1
    assert np.allclose(mon.pose.position, c2w[:3, 3]) and mon.fov == pytest.approx(fov)
    assert w.doc.selection == Selection("monitor", mon.id)
    # Assign the ball through the inspector's checklist.
    item = w.inspector.m_entities.item(0)
    assert item.checkState() == Qt.CheckState.Unchecked
    item.setCheckState(Qt.CheckState.Checked)
    assert w.doc.project.monitor(mon.id).entity_ids == [p.entities[0].id]
    assert "watches ball" in w.entities_panel.monitors.item(n).text()
    # "Where the camera was when the entity was defined".
    w.doc.set_selection(Selection("entity", p.entities[0].id))
    w.entities_panel._monitor_entity()
    last = w.doc.project.monitors[-1]
    assert last.pose == p.entities[0].defined_from and last.entity_ids == [p.entities[0].id]
    # Remove with the Delete key on the selection; undo brings it back.
    w.doc.set_selection(Selection("monitor", last.id))
    w.timeline.setFocus()
    press(qtbot, w, Qt.Key.Key_Delete)
    assert all(m.id != last.id for m in w.doc.project.monitors)
    w.act_undo.trigger()
    assert w.doc.project.monitors[-1].id == last.id


@pytest.mark.gl
def test_a_project_opens_on_an_overview_that_shows_the_source_camera(
    make_window, demo_folder, qtbot
):
    if not gl_available():
        pytest.skip("needs OpenGL: the offscreen Qt platform has none (run under Xvfb)")
    w = make_window(demo_folder, viewport=True)
    c2w, _ = w.viewport.current_view_pose()
    # behind (-z) and above (-y) the source camera at the origin, so its frustum is in view
    assert c2w[2, 3] < -0.5 and c2w[1, 3] < -0.5
    uv = w.viewport.screen_position(np.zeros(3))
    assert uv is not None
    width, height = w.viewport.view.size
    assert 0 <= uv[0] < width and 0 <= uv[1] < height
    # Home still goes back to the source camera
    w.viewport.frame_scene()
    np.testing.assert_allclose(w.viewport.current_view_pose()[0], np.eye(4), atol=1e-9)
