"""Play mode in the studio: the keys of the play view, the quality presets its strip offers, and a
live session on the demo project (the geometry backend) from the toolbar to its keyframes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import QApplication

from worldstudio.core.generation.acceleration import QUALITIES
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.play import KeyState
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, load_npz
from worldstudio.studio.play import PLAY_KEYS, PlayView
from worldstudio.studio.play.view import DRAG_STEP_PX


@pytest.fixture
def view(qtbot):
    v = PlayView(KeyState())
    qtbot.addWidget(v)
    v.resize(640, 400)
    v.show()
    qtbot.waitExposed(v)
    v.setFocus()
    return v


def test_the_keys_map_onto_deepverse_codes_and_the_extras(view, qtbot):
    keys = view.keys

    def now():
        step = keys.current()
        return step.text + step.extras

    assert sorted(PLAY_KEYS.values()) == sorted(
        ["W", "A", "S", "D", "Q", "E", "LEFT", "RIGHT", "UP", "DOWN"]
    )
    qtbot.keyPress(view, Qt.Key.Key_W)
    assert keys.held == {"W"} and now() == "(FN)"
    qtbot.keyPress(view, Qt.Key.Key_A)
    assert now() == "(fLN)"
    assert "keys (fLN)" in view.overlay_lines()[0]  # the overlay shows the keys held
    qtbot.keyPress(view, Qt.Key.Key_Right)
    assert now() == "(fLR)"
    qtbot.keyRelease(view, Qt.Key.Key_W)
    qtbot.keyRelease(view, Qt.Key.Key_Right)
    assert keys.held == {"A"}
    assert keys.take_step().text == "(fLR)"  # what was pressed since the last step counts once
    assert keys.take_step().text == "(LN)"
    qtbot.keyRelease(view, Qt.Key.Key_A)
    qtbot.keyPress(view, Qt.Key.Key_S)
    qtbot.keyPress(view, Qt.Key.Key_D)
    qtbot.keyPress(view, Qt.Key.Key_E)
    qtbot.keyPress(view, Qt.Key.Key_Up)
    assert now() == "(rRN)U^"
    for key in (Qt.Key.Key_S, Qt.Key.Key_D, Qt.Key.Key_E, Qt.Key.Key_Up):
        qtbot.keyRelease(view, key)
    keys.take_step()
    qtbot.keyPress(view, Qt.Key.Key_Q)
    qtbot.keyPress(view, Qt.Key.Key_Left)
    qtbot.keyPress(view, Qt.Key.Key_Down)
    assert keys.take_step().text == "(SL)" and keys.last.extras == "Dv"
    # the focus goes elsewhere: keys released there must not stay held
    QApplication.sendEvent(view, QFocusEvent(QEvent.Type.FocusOut))
    assert keys.held == set()

    # Space pauses, Esc and P stop
    with qtbot.waitSignal(view.pause_toggled, timeout=1000):
        qtbot.keyPress(view, Qt.Key.Key_Space)
    with qtbot.waitSignal(view.stop_requested, timeout=1000):
        qtbot.keyPress(view, Qt.Key.Key_Escape)
    with qtbot.waitSignal(view.stop_requested, timeout=1000):
        qtbot.keyPress(view, Qt.Key.Key_P)


def test_a_mouse_drag_turns_a_step_every_few_pixels(view, qtbot):
    keys = view.keys
    keys.take_step()
    start = QPoint(300, 200)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(2 * DRAG_STEP_PX + 3, 0))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(2 * DRAG_STEP_PX + 3, 0))
    assert keys.take_step().text == "(SR)"  # taps count once a step
    assert keys.take_step().text == "(SN)"
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(-DRAG_STEP_PX - 1, -DRAG_STEP_PX - 1))
    step = keys.take_step()
    assert step.text == "(SL)" and step.extras == "^"


def test_play_mode_plays_the_world_and_stop_makes_the_path_one_undo_step(
    make_window, demo_folder, qtbot
):
    w = make_window(demo_folder)
    mode = w.play_mode
    old = [k.model_copy() for k in w.doc.project.camera_path.keyframes]
    undo_before = w.doc.undo_stack.count()
    assert w.act_play_world.shortcut().toString() == "P"
    assert w.act_play_world in w.toolbar.actions()
    # the Play action opens the view ready: the strip's settings can be chosen, Enter starts
    w.act_play_world.trigger()
    assert mode.active and not mode.running and mode.view.isVisible()
    assert mode.view.settings_strip.isEnabled() and "Enter starts" in mode.view.overlay_lines()[-1]
    assert w.act_play_world.isChecked()
    mode.view.backend_box.setCurrentText("geometry")
    mode.view.size_box.setCurrentText("project")
    qtbot.keyPress(mode.view, Qt.Key.Key_Return)
    assert mode.active and mode.running and not mode.view.settings_strip.isEnabled()
    # the strip shows the session's quality: the project's, for the geometry backend
    assert mode.session.quality == "full" == mode.view.quality_box.currentText()
    assert w.act_play_world.isChecked()
    paced = []  # (chunk ready, chunk playing when it arrived)
    mode.job.event.connect(
        lambda name, data: (
            paced.append((data["round"], mode._playing_chunk)) if name == "play_chunk" else None
        )
    )
    qtbot.waitUntil(lambda: mode.view.frames_shown >= 3, timeout=60000)
    # Space pauses (the job holds, the screen holds its frame) and resumes
    qtbot.keyPress(mode.view, Qt.Key.Key_Space)
    assert mode.job.pause_requested and not mode._timer.isActive()
    assert "paused" in mode.view.overlay_lines()[-1]
    shown = mode.view.frames_shown
    qtbot.wait(300)
    assert mode.view.frames_shown == shown
    qtbot.keyPress(mode.view, Qt.Key.Key_Space)
    assert not mode.job.pause_requested and mode._timer.isActive()
    # with the view's focus the arrows are the player's, not the playhead's
    playhead = w.doc.playhead
    qtbot.keyPress(mode.view, Qt.Key.Key_W)
    qtbot.keyPress(mode.view, Qt.Key.Key_Right)
    qtbot.keyRelease(mode.view, Qt.Key.Key_Right)
    assert w.doc.playhead == playhead
    qtbot.waitUntil(lambda: mode.view.frames_shown >= 30, timeout=120000)
    lines = mode.view.overlay_lines()
    assert "chunk latency" in lines[1] and "FPS" in lines[1]
    qtbot.keyRelease(mode.view, Qt.Key.Key_W)
    qtbot.keyPress(mode.view, Qt.Key.Key_Escape)  # stop
    qtbot.waitUntil(lambda: not mode.running, timeout=120000)
    qtbot.waitUntil(lambda: not mode.active, timeout=10000)
    assert not w.act_play_world.isChecked()

    result = mode.result
    assert result is not None and result.frames >= 30 and "(FN)" in result.actions
    # the engine never ran more than one chunk ahead of the screen
    assert paced and all(r <= playing + 1 for r, playing in paced[1:]), paced
    # the session is an ordinary, complete run with its poses
    run = RunFolder(result.run.run_dir)
    meta = run.read_meta()
    assert meta["status"] == "complete" and meta["rounds_done"] == result.frames // 9
    assert len(load_npz(run.observer_path_npz)["c2w"]) == result.frames
    # its camera motion is now the path: keyframes fitted to the played poses, one undo step
    assert w.doc.undo_stack.count() == undo_before + 1
    assert w.doc.undo_stack.undoText() == "Play session camera path"
    baked = bake_path(w.doc.project.camera_path)
    assert len(baked) == result.frames
    assert np.abs(baked.positions - result.c2w[:, :3, 3]).max() < 0.011
    w.doc.undo_stack.undo()
    assert [k.position for k in w.doc.project.camera_path.keyframes] == [k.position for k in old]
    assert ProjectFolder(demo_folder).load().camera_path.keyframes  # the saved project is intact


def test_ready_play_closes_with_esc_and_a_failed_start_goes_back_to_ready(
    make_window, demo_folder, qtbot
):
    w = make_window(demo_folder)
    mode = w.play_mode
    w.act_play_world.trigger()
    assert mode.active and not mode.running
    # a backend that cannot start says why in the view and stays ready for another choice
    mode.view.backend_box.addItem("no-such-backend")  # as a project from elsewhere may name
    mode.view.backend_box.setCurrentText("no-such-backend")
    mode.view.start_button.click()
    qtbot.waitUntil(lambda: not mode.running, timeout=30000)
    assert mode.active and mode.view.settings_strip.isEnabled()
    failed, hint = mode.view.overlay_lines()[-2:]
    assert "no-such-backend" in failed and "Enter retries" in hint
    qtbot.keyPress(mode.view, Qt.Key.Key_Escape)
    assert not mode.active and not w.act_play_world.isChecked()


def test_the_play_strip_offers_the_quality_presets(make_window, demo_folder):
    w = make_window(demo_folder)
    mode = w.play_mode
    box = mode.view.quality_box
    assert [box.itemText(i) for i in range(box.count())] == list(QUALITIES)
    draft_tip = box.itemData(QUALITIES.index("draft"), Qt.ItemDataRole.ToolTipRole)
    assert "step-distillation LoRA" in draft_tip
    # a backend chosen: the quality it plays with (wan-vace: draft), which the session gets
    mode.view.backend_box.setCurrentText("wan-vace")
    assert box.currentText() == "draft" and mode.options().quality == "draft"
    mode.view.backend_box.setCurrentText("geometry")
    assert box.currentText() == w.doc.project.generation.quality == "full"
    box.setCurrentText("fast")
    assert mode.options().quality == "fast"
