"""The basics of the window, driven like a user: the wheel over fields, Ctrl+Z with a field in
focus, the camera view during playback, the layout, a project switch, the runs box's branch
round, the toolbar."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QDockWidget

from worldstudio.studio.document import Selection

from .test_main_window import press


def wheel(widget, notches: int = -1) -> QWheelEvent:
    """A wheel turn over the middle of ``widget``; returns the event (accepted or not)."""
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, ev)
    return ev


def focus(qtbot, w, widget) -> None:
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=3000)
    widget.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(widget.hasFocus, timeout=3000)


# ============================================================================ the wheel
def test_the_wheel_over_an_unfocused_field_changes_nothing(make_window, demo_folder, qtbot):
    """Scrolling the Generate panel over "Frames / round" once turned 65 into 5 and redid the
    rounds: now the field ignores the wheel (the panel underneath scrolls) unless it has the
    focus, and no field takes the focus from the wheel."""
    w = make_window(demo_folder)
    form = w.generate_panel.form
    frames, backend = form.frames_spin, form.backend
    before = (w.doc.project.generation.frames_per_round, backend.currentIndex())
    count = w.doc.undo_stack.count()
    for field in (frames, backend, w.inspector.p_frames, w.inspector.p_fps):
        ev = wheel(field)
        assert not ev.isAccepted(), (
            f"{type(field).__name__} kept the wheel: the panel would not scroll"
        )
    assert (w.doc.project.generation.frames_per_round, backend.currentIndex()) == before
    assert w.doc.undo_stack.count() == count and not w.doc.is_modified
    # Every spin box and combo box of the window takes the focus by click or Tab only (the play
    # view's boxes never take it: the keys stay the view's).
    fields = w.findChildren(QAbstractSpinBox) + w.findChildren(QComboBox)
    never = Qt.FocusPolicy.NoFocus
    assert fields and all(f.focusPolicy() in (Qt.FocusPolicy.StrongFocus, never) for f in fields)
    # With the focus (clicked into), the wheel does change the field: one undoable edit.
    focus(qtbot, w, frames)
    wheel(frames, 1)
    assert w.doc.project.generation.frames_per_round == before[0] + 4
    assert w.doc.undo_stack.count() == count + 1


# ============================================================================ Ctrl+Z
def test_ctrl_z_undoes_the_project_while_a_field_has_the_focus(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    insp = w.inspector
    fps0 = w.doc.project.camera_path.settings.fps
    w.doc.set_selection(None)
    # A committed edit in a spin box, the spin box keeps the focus: Ctrl+Z undoes the project.
    focus(qtbot, w, insp.p_fps)
    insp.p_fps.selectAll()
    qtbot.keyClicks(insp.p_fps, str(fps0 * 10))
    press(qtbot, w, Qt.Key.Key_Return)
    assert w.doc.project.camera_path.settings.fps == fps0 * 10
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.doc.project.camera_path.settings.fps == fps0
    assert insp.p_fps.value() == fps0, "the focused field shows the undone value at once"
    press(
        qtbot,
        w,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert w.doc.project.camera_path.settings.fps == fps0 * 10
    # Text being typed and not committed: Ctrl+Z undoes the typing, inside the field only.
    name0 = w.doc.project.name
    focus(qtbot, w, insp.p_name)
    insp.p_name.end(False)
    qtbot.keyClicks(insp.p_name, " two")
    count = w.doc.undo_stack.count()
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert insp.p_name.text() != name0 + " two"  # the field's own undo took it
    assert w.doc.undo_stack.count() == count and w.doc.project.camera_path.settings.fps == fps0 * 10
    # Committed with Enter: the next Ctrl+Z is the project's again (the rename).
    insp.p_name.selectAll()
    qtbot.keyClicks(insp.p_name, "Renamed")
    press(qtbot, w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.doc.project.name == "Renamed", timeout=2000)
    qtbot.wait(20)
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.doc.project.name == name0 and insp.p_name.text() == name0
    assert insp.p_name.hasFocus()


# ============================================================================ playback
def test_the_camera_view_follows_the_playhead_during_playback(make_window, demo_folder, qtbot):
    """The playhead render was re-scheduled on every tick (a debounce), so it showed frame 0
    until playback stopped; it is throttled now and shows frames while playing."""
    w = make_window(demo_folder)
    with qtbot.waitSignal(w.camera_view.frame_shown, timeout=30000):
        w.start_renders()
    shown: list[int] = []
    w.camera_view.frame_shown.connect(lambda f: shown.append(f) if w.playback.playing else None)
    w.playback.play()
    assert w.playback.playing
    qtbot.waitUntil(lambda: len({f for f in shown if f > 0}) >= 2, timeout=20000)
    assert w.playback.playing, "the frames came while playing, not after"
    w.playback.stop()
    assert max(shown) <= w.doc.playhead


# ============================================================================ layout
def test_generate_and_training_have_their_own_column_and_the_layout_is_kept(
    make_window, demo_folder, qtbot
):
    w = make_window(demo_folder)
    qtbot.wait(100)  # the default dock sizes apply once the window is shown
    # the first window fits the screen (it had grown past 1600 px with every dock's size hint)
    free = w.screen().availableGeometry()
    assert (w.width(), w.height()) == (min(1560, free.width()), min(960, free.height()))
    assert w.minimumSize().width() <= 1280  # it fits a small laptop's screen too
    R = Qt.DockWidgetArea.RightDockWidgetArea
    assert w.dockWidgetArea(w.generate_dock) == R and w.dockWidgetArea(w.training_dock) == R
    assert w.generate_dock.isVisible() and not w.generate_dock.visibleRegion().isEmpty()
    assert w.inspector_dock.isVisible() and not w.inspector_dock.visibleRegion().isEmpty()
    assert w.generate_dock not in w.tabifiedDockWidgets(w.inspector_dock)
    # The viewport (the central widget) gets the largest share of the window.
    central = w.centralWidget().width() * w.centralWidget().height()
    for dock in w.findChildren(QDockWidget):
        if dock.isVisible():
            assert central > dock.width() * dock.height(), dock.objectName()
    # Generate is a toolbar button and a menu command with a free shortcut.
    assert w.act_generate.shortcut().toString() == "Ctrl+G"
    assert w.toolbar.widgetForAction(w.act_generate) is not None
    others = [a for a in w.actions() if a is not w.act_generate]
    assert all(a.shortcut() != w.act_generate.shortcut() for a in others)
    # Move Training next to the inspector and hide the log: kept after a restart.
    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, w.training_dock)
    w.log_dock.hide()
    w.close()
    w2 = make_window(demo_folder)
    assert w2.dockWidgetArea(w2.training_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert not w2.log_dock.isVisible()
    # Window > Reset layout brings the first one back.
    w2.act_reset_layout.trigger()
    assert w2.dockWidgetArea(w2.training_dock) == R
    assert w2.training_dock in w2.tabifiedDockWidgets(w2.generate_dock)
    menus = {a.text().replace("&", ""): a.menu() for a in w2.menuBar().actions()}
    assert w2.act_reset_layout in menus["Window"].actions()


def test_toolbar_buttons_keep_their_place_when_labels_change(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    tb = w.toolbar
    buttons = [tb.widgetForAction(a) for a in tb.actions() if not a.isSeparator()]
    buttons = [b for b in buttons if b is not None]
    before = [b.geometry() for b in buttons]
    w.doc.set_selection(Selection("keyframe", w.doc.project.camera_path.keyframes[0].id))
    w.act_add_kf.trigger()  # "Undo Add keyframe" in the Edit menu
    w.playback.play()  # Play -> Pause
    QApplication.processEvents()
    assert w.act_undo.text().startswith("Undo ") and len(w.act_undo.text()) > 4
    assert [b.geometry() for b in buttons] == before
    assert "keyframe" in w.tb_undo.toolTip() and w.tb_undo.isEnabled()
    w.playback.stop()


# ============================================================================ projects
def test_switching_projects_clears_the_previous_preview_player_and_messages(
    make_window, demo_folder, demo_template, qtbot, tmp_path
):
    import shutil

    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("oracle"))
    gp.form.width_spin.setValue(64)
    gp.form.height_spin.setValue(48)
    gp.form.frames_spin.setValue(9)
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running and bool(w.player.frames), timeout=60000)
    assert gp.screen.image is not None and "rounds in" in gp.header.status.text()
    w.inspector.set_thumbnail(w.inspector.k_thumb.grab())
    other = tmp_path / "other.wsproj"
    shutil.copytree(demo_template, other)
    assert w.open_project(other)
    assert w.player.path is None and not w.player.frames
    assert gp.screen.image is None and gp.header.status.text() == ""
    assert w.last_preview is None and w.camera_view.image is None
    assert w.inspector.k_thumb.pixmap().isNull()
    assert w.run_track.run is None  # the other project has no run
    assert w.status_label.text() == f"Opened {other}"


def test_branch_from_round_defaults_to_a_round_that_exists(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("oracle"))
    gp.form.width_spin.setValue(64)
    gp.form.height_spin.setValue(48)
    gp.form.frames_spin.setValue(9)
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running, timeout=60000)
    n = len(w.doc.project.rounds)
    box = gp.runs
    assert box.run_meta[str(box.selected_run())]["rounds_done"] == n  # complete
    # Round n+1 does not exist: the spin box offers rounds 1..n and shows the last.
    assert (box.branch_spin.minimum(), box.branch_spin.maximum()) == (1, n)
    assert box.branch_spin.value() == n
    assert gp.branch()  # with the default: a run that regenerates the last round
    qtbot.waitUntil(lambda: not gp.running, timeout=60000)
    assert gp.last_error == "" and gp.last_result.rounds_done == n
    w.ask_unsaved = lambda: "discard"


@pytest.mark.parametrize("field", ["frames", "backend"])
def test_generate_fields_refuse_the_wheel_inside_the_scrolling_panel(
    make_window, demo_folder, field
):
    w = make_window(demo_folder)
    form = w.generate_panel.form
    widget = form.frames_spin if field == "frames" else form.backend
    value = widget.value() if field == "frames" else widget.currentIndex()
    for notches in (-3, 3):
        wheel(widget, notches)
    assert (widget.value() if field == "frames" else widget.currentIndex()) == value
    assert np.isfinite(value)


# ============================================================================ panels
def test_the_path_dialog_explains_action_strings(make_window, demo_folder):
    from PySide6.QtWidgets import QLabel

    from worldstudio.core.geometry.actions import STEERINGS, TRANSLATIONS

    w = make_window(demo_folder)
    dlg = w.path_dialog(preset="actions")
    legend = dlg.findChild(QLabel, "actionLegend")
    assert legend is not None and legend.isVisible()
    text = legend.text()
    for code, what in list(TRANSLATIONS.items()) + list(STEERINGS.items()):
        assert f"<b>{code}</b> {what}" in text
    assert "Example: <code>(FN)(FN)(fLN)(SR)</code>" in text
    # The typed steps are said in words under the field.
    dlg.set_option("text", "(FN)(fLR)")
    assert "Move forward. Move forward-left and turn right." in dlg.result.text()
    dlg.reject()
    # Other presets have no legend.
    dlg = w.path_dialog(preset="orbit")
    legend = dlg.findChild(QLabel, "actionLegend")
    assert legend is None or not legend.isVisible()
    dlg.reject()


def test_training_counts_clips_and_captions_and_remembers_its_settings(
    make_window, demo_folder, qtbot, tmp_path, clip_dir
):
    import shutil

    w = make_window(demo_folder)
    tp = w.training_panel
    tp.clips.setText(str(clip_dir))
    qtbot.waitUntil(lambda: "clip" in tp.clips_found.text(), timeout=3000)
    n = len(list(clip_dir.glob("*.mp4")))
    assert tp.clips_found.text().startswith(f"{n} clips, all with a caption")
    # A clip without its caption is named before Start.
    folder = tmp_path / "clips"
    shutil.copytree(clip_dir, folder)
    lonely = sorted(folder.glob("*.mp4"))[0]
    lonely.with_suffix(".txt").unlink()
    tp.clips.setText(str(folder))
    qtbot.waitUntil(lambda: "without" in tp.clips_found.text(), timeout=3000)
    assert f"{n - 1} with a caption; 1 without: {lonely.name}" in tp.clips_found.text()
    tp.clips.setText(str(tmp_path / "nothing-here"))
    qtbot.waitUntil(lambda: "not a folder" in tp.clips_found.text(), timeout=3000)
    # The settings are remembered for the next session.
    tp.clips.setText(str(clip_dir))
    tp.steps.setValue(1234)
    tp.rank.setValue(8)
    tp.lr.setText("3e-5")
    tp.width_spin.setValue(320)
    tp.name.setText("my-style")
    tp.save_settings()
    w.close()
    w2 = make_window(demo_folder)
    tp2 = w2.training_panel
    assert (tp2.clips.text(), tp2.steps.value(), tp2.rank.value()) == (str(clip_dir), 1234, 8)
    assert (tp2.lr.text(), tp2.width_spin.value(), tp2.name.text()) == ("3e-5", 320, "my-style")
    assert tp2.clips_found.text().startswith(f"{n} clips")


def test_the_loss_plot_has_whole_steps_and_its_legend_beside_the_curves(make_window, demo_folder):
    w = make_window(demo_folder)
    tp = w.training_panel
    axis = tp.plot.getPlotItem().getAxis("bottom")
    for lo, hi in ((0.0, 3.0), (0.0, 7.0), (10.0, 13.0), (0.0, 2000.0)):
        levels = axis.tickValues(lo, hi, 400)
        ticks = [v for _spacing, values in levels for v in values]
        assert ticks and all(float(v).is_integer() for v in ticks), (lo, hi, ticks)
    assert tp.plot.getPlotItem().legend is None  # no legend item over the plot
    for words in ("train loss (average)", "train loss per step", "eval loss"):
        assert words in tp.legend.text()


def test_the_timeline_agrees_with_the_run_it_shows(make_window, demo_folder, qtbot):
    from worldstudio.studio import commands

    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("oracle"))
    gp.form.width_spin.setValue(64)
    gp.form.height_spin.setValue(48)
    gp.form.frames_spin.setValue(9)
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running, timeout=60000)
    first = gp.current_run
    tl, rt = w.timeline, w.run_track
    assert rt.run == first and tl.run_shape == (9, 2) and not tl.run_differs()
    assert rt.axis.name == "Run" and "run:" not in tl.readout.text()
    # The project's rounds change (the wheel accident of the issue: 9 -> 13 frames a round).
    commands.set_generation(w.doc, frames_per_round=13)
    assert tl.run_differs() and rt.axis.name == "Run ≠"
    assert "made with 2 rounds × 9 frames" in rt.toolTip() and "2 × 13" in rt.toolTip()
    w.doc.set_playhead(10)
    text = tl.readout.text()
    assert "round 1 of 2" in text and "run: round 2 of 2 (2 × 9 frames)" in text
    # Back as it was: they agree again.
    w.act_undo.trigger()
    assert not tl.run_differs() and rt.axis.name == "Run" and "run:" not in tl.readout.text()
    # A run made with more rounds than the project has: the timeline covers all of it.
    commands.add_round(w.doc)
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running, timeout=60000)
    w.act_undo.trigger()  # back to 2 rounds; the run has 3
    assert tl.run_shape == (9, 3) and tl.run_differs()
    assert tl.extent() == max(w.doc.frame_count(), 27)
    assert "run: round 2 of 3 (3 × 9 frames)" in tl.readout.text()
    # Choosing the first run in the runs box shows it on the Run row.
    gp.runs.select_run(first)
    assert rt.run == first and tl.run_shape == (9, 2)
    w.ask_unsaved = lambda: "discard"
