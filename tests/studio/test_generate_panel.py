"""The Generate panel in the real window, driven like a user: settings through undoable edits, a
run of the world engine through the worker with the live preview, the result in the player and on
the timeline's Run row, cancel / resume / branch, a failing backend, the VRAM estimate, LoRAs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QToolButton

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.backends.oracle import OracleBackend
from worldstudio.core.generation.engine import RunOptions
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder

TIMEOUT = 60000


def small_panel(w, backend: str = "oracle"):
    """The panel set to a small, fast run through its widgets: 2 rounds of F=9 at 64x48."""
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData(backend))
    gp.form.width_spin.setValue(64)
    gp.form.height_spin.setValue(48)
    gp.form.frames_spin.setValue(9)
    gp.form.steps_spin.setValue(3)
    return gp


def wait_done(qtbot, gp) -> None:
    qtbot.waitUntil(lambda: not gp.running and not gp.runner.busy, timeout=TIMEOUT)


def click_run_row(qtbot, w, frame: float) -> None:
    rt = w.run_track
    pos = rt.plot.mapFromScene(rt.vb.mapViewToScene(QPointF(frame, 0.5)))
    qtbot.mouseClick(rt.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_settings_are_undoable_project_edits(make_window, demo_folder):
    w = make_window(demo_folder)
    gp = w.generate_panel
    before = w.doc.project.generation
    steps0 = w.doc.undo_stack.count()
    small_panel(w)
    g = w.doc.project.generation
    assert (g.backend, g.width, g.height, g.frames_per_round, g.steps) == ("oracle", 64, 48, 9, 3)
    assert w.doc.is_modified and w.doc.undo_stack.count() == steps0 + 5
    # A size that is not a multiple of 16 snaps; frames per round snap to 4k+1.
    gp.form.width_spin.setValue(70)
    gp.form.frames_spin.setValue(11)
    assert (w.doc.project.generation.width, w.doc.project.generation.frames_per_round) == (64, 9)
    assert gp.form.width_spin.value() == 64 and gp.form.frames_spin.value() == 9
    while w.doc.undo_stack.canUndo():
        w.doc.undo_stack.undo()
    assert w.doc.project.generation == before
    # The widgets follow the model.
    assert (
        gp.form.backend.currentData() == before.backend
        and gp.form.width_spin.value() == before.width
    )
    assert "2 rounds × 65 frames" in gp.form.video_info.text()


def test_generate_shows_the_preview_plays_the_result_and_fills_the_run_row(
    make_window, demo_folder, qtbot
):
    w = make_window(demo_folder)
    gp = small_panel(w)
    previews, stages = [], []
    qtbot.mouseClick(gp.header.start_button, Qt.MouseButton.LeftButton)
    assert gp.running and not gp.header.start_button.isEnabled()
    assert gp.header.cancel_button.isEnabled()
    gp.job.preview.connect(lambda image, msg: previews.append(np.asarray(image).shape))
    gp.job.progress.connect(lambda d, t, msg: stages.append(msg))
    assert not w.doc.is_modified  # saved first: the engine reads project.json
    wait_done(qtbot, gp)

    result = gp.last_result
    assert result is not None and result.rounds_done == 2, gp.last_error
    # The live preview got the backend's images; the text follows the round and camera.
    assert previews and gp.screen.image is not None and not gp.screen.pixmap().isNull()
    assert any("round 2/2 observer" in s for s in stages)
    assert "2/2 rounds" in gp.header.status.text()
    # The result opens in the player.
    assert w.player.path == result.final_mp4
    qtbot.waitUntil(lambda: w.player.complete, timeout=10000)
    assert len(w.player.frames) == 18
    # The timeline's Run row shows the finished rounds; a click plays that round.
    assert w.run_track.run == result.run_dir and w.run_track.rounds_done == 2
    click_run_row(qtbot, w, 9 + 4)
    assert w.player.path == result.run_dir / "round_001" / "observer.mp4"
    # The run is listed; a finished run is not resumable, but can be branched and played.
    assert gp.runs.selected_run() == result.run_dir
    assert not gp.runs.resume_button.isEnabled() and gp.runs.branch_button.isEnabled()
    assert gp.runs.play_combined.isEnabled()
    qtbot.mouseClick(gp.runs.play_combined, Qt.MouseButton.LeftButton)
    assert w.player.path == result.final_combined_mp4
    # What each model call was told: the control and mask videos of a round, in the player.
    runs = gp.runs
    assert runs.cond_round.maximum() == 2 and runs.cond_round.value() == 2
    cameras = [runs.cond_camera.itemData(i) for i in range(runs.cond_camera.count())]
    assert cameras == ["observer", "monitor-mon-ball"]
    runs.cond_round.setValue(1)
    runs.cond_camera.setCurrentIndex(1)
    qtbot.mouseClick(runs.play_mask, Qt.MouseButton.LeftButton)
    folder = RunFolder(result.run_dir)
    assert w.player.path == folder.conditioning_mp4(0, "monitor-mon-ball", "mask")
    qtbot.waitUntil(lambda: w.player.complete, timeout=10000)
    assert len(w.player.frames) == 9 and (w.player.frames[0] > 200).all()  # all to generate
    runs.cond_camera.setCurrentIndex(0)
    qtbot.mouseClick(runs.play_control, Qt.MouseButton.LeftButton)
    assert w.player.path == folder.conditioning_mp4(0, "observer", "control")
    qtbot.waitUntil(lambda: w.player.complete, timeout=10000)
    assert len(w.player.frames) == 9

    # Branch from round 2: a new run that copies round 1 and regenerates round 2.
    gp.runs.branch_spin.setValue(2)
    qtbot.mouseClick(gp.runs.branch_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, gp)
    branch = gp.last_result
    assert branch.run_id != result.run_id, gp.last_error
    meta = RunFolder(branch.run_dir).read_meta()
    assert meta["parent"] == {"run": result.run_id, "from_round": 1}
    assert RunFolder(branch.run_dir).completed_rounds() == 2
    assert w.run_track.run == branch.run_dir


def test_cancel_keeps_finished_rounds_and_resume_completes_the_run(
    make_window, demo_folder, qtbot, monkeypatch
):
    hang = {"on": True}
    original = OracleBackend.generate

    def slow_second_round(self, request, ctx):
        while hang["on"] and request.round_index >= 1:  # wait for the user's Cancel
            ctx.progress(1, request.num_frames, "waiting")
            ctx.check_cancelled()
            time.sleep(0.02)
        return original(self, request, ctx)

    monkeypatch.setattr(OracleBackend, "generate", slow_second_round)
    w = make_window(demo_folder)
    gp = small_panel(w)
    assert gp.generate()
    qtbot.waitUntil(
        lambda: gp.current_run is not None and RunFolder(gp.current_run).completed_rounds() == 1,
        timeout=TIMEOUT,
    )
    qtbot.waitUntil(lambda: w.run_track.rounds_done == 1, timeout=5000)  # shown while running
    qtbot.mouseClick(gp.header.cancel_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, gp)

    run = RunFolder(gp.current_run)
    assert run.completed_rounds() == 1 and run.read_meta()["status"] == "cancelled"
    assert "cancelled" in gp.header.status.text() and gp.last_result is None
    assert w.run_track.rounds_done == 1 and w.run_track.rounds_total == 2
    assert gp.runs.selected_run() == run.path and gp.runs.resume_button.isEnabled()

    hang["on"] = False
    qtbot.mouseClick(gp.runs.resume_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.run_id == run.id, gp.last_error
    assert run.completed_rounds() == 2 and run.read_meta()["status"] == "complete"
    assert w.player.path == run.final_mp4 and w.run_track.rounds_done == 2


def test_a_failing_backend_shows_the_error_and_the_studio_goes_on(
    make_window, demo_folder, qtbot, monkeypatch
):
    fail = {"on": True}
    original = OracleBackend.generate

    def broken(self, request, ctx):
        if fail["on"] and request.round_index == 1 and request.role == "observer":
            raise RuntimeError("the GPU caught fire")
        return original(self, request, ctx)

    monkeypatch.setattr(OracleBackend, "generate", broken)
    w = make_window(demo_folder)
    gp = small_panel(w)
    assert gp.generate()
    wait_done(qtbot, gp)
    assert "the GPU caught fire" in gp.last_error and "round 2" in gp.last_error
    assert "the GPU caught fire" in w.status_label.text()
    assert "failed" in gp.header.status.text()
    run = RunFolder(gp.current_run)
    assert run.completed_rounds() == 1 and run.read_meta()["status"] == "failed"
    assert w.run_track.rounds_done == 1
    assert (
        w.isVisible() and gp.header.start_button.isEnabled() and gp.runs.resume_button.isEnabled()
    )

    # Still usable: edits, and a run that now works.
    gp.form.steps_spin.setValue(2)
    assert w.doc.project.generation.steps == 2
    fail["on"] = False
    assert gp.generate()
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.rounds_done == 2


def test_conditioning_settings_are_project_edits_that_reach_the_run(
    make_window, demo_folder, qtbot
):
    from worldstudio.core.project.model import WAN_NEGATIVE_PROMPT

    w = make_window(demo_folder)
    gp = small_panel(w, backend="wan-vace")
    form = gp.form
    g = w.doc.project.generation
    assert form.monitor_strength.value() == 0.4 and form.observer_strength.value() == 1.0
    assert form.context_spin.text() == "auto" and form.flow_shift.text() == "auto"
    assert form.negative.toPlainText() == WAN_NEGATIVE_PROMPT
    assert "auto context: 4 frames" in form.conditioning_info.text()
    assert "auto flow shift at 64×48: 3" in form.conditioning_info.text()
    before = w.doc.undo_stack.count()
    form.monitor_strength.setValue(0.3)
    form.observer_strength.setValue(0.8)
    form.context_spin.setValue(6)
    form.flow_shift.setValue(5.0)
    form.prompt_entities.setCurrentIndex(form.prompt_entities.findData("all"))
    form.negative.setPlainText("blurry, static")
    form.negative.committed.emit(form.negative.toPlainText())
    g = w.doc.project.generation
    assert (g.monitor_strength, g.observer_strength, g.context_frames) == (0.3, 0.8, 6)
    assert (g.flow_shift, g.prompt_entities, g.negative_prompt) == (5.0, "all", "blurry, static")
    assert w.doc.undo_stack.count() == before + 6
    form.context_spin.setValue(-1)  # back to auto
    form.flow_shift.setValue(0.0)
    assert w.doc.project.generation.context_frames is None
    assert w.doc.project.generation.flow_shift is None
    w.doc.undo_stack.undo()
    assert w.doc.project.generation.flow_shift == 5.0 and form.flow_shift.value() == 5.0
    # the reset button brings Wan's negative prompt back
    reset = [b for b in form.findChildren(QToolButton) if b.text() == "Wan's"][0]
    qtbot.mouseClick(reset, Qt.MouseButton.LeftButton)
    assert w.doc.project.generation.negative_prompt == WAN_NEGATIVE_PROMPT
    # a model-free backend records them but uses no flow shift or negative prompt
    small_panel(w, backend="geometry")
    assert not form.flow_shift.isEnabled() and not form.negative.isEnabled()
    assert form.monitor_strength.isEnabled()
    # a run takes them from the project
    qtbot.mouseClick(gp.header.start_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, gp)
    s = RunFolder(gp.last_result.run_dir).read_meta()["settings"]
    assert (s["monitor_strength"], s["observer_strength"], s["prompt_entities"]) == (
        0.3,
        0.8,
        "all",
    )


def test_vram_estimate_follows_the_settings(make_window, demo_folder):
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("geometry"))
    assert gp.form.vram.text() == "no GPU memory needed"
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("wan-vace"))
    gp.form.model.setCurrentIndex(gp.form.model.findData("Wan-AI/Wan2.1-VACE-1.3B-diffusers"))
    gp.form.set_profile("gpu")
    small = gp.form.vram.text()
    assert small.startswith("~") and small.endswith("GiB (gpu)")
    gp.form.width_spin.setValue(832)
    gp.form.height_spin.setValue(480)
    big = gp.form.vram.text()
    assert big != small and float(small[1:].split()[0]) < float(big[1:].split()[0])
    gp.form.set_profile("low-vram")
    assert gp.form.vram.text().endswith("(low-vram)") and gp.form.vram.text() != big
    gp.form.set_profile("auto")
    assert "all on the GPU" in gp.form.vram.text() and "low-vram" in gp.form.vram.text()
    # Undo goes back through the edits; the estimate follows the model.
    w.doc.undo_stack.undo()
    w.doc.undo_stack.undo()
    assert gp.form.width_spin.value() == w.doc.project.generation.width == 160
    w.doc.undo_stack.undo()  # the model
    w.doc.undo_stack.undo()  # the backend
    assert gp.form.vram.text() == "no GPU memory needed"


def test_chosen_loras_reach_the_engine(make_window, demo_folder, qtbot, monkeypatch):
    loras = demo_folder / "loras"
    loras.mkdir(exist_ok=True)
    (loras / "squares.safetensors").write_bytes(b"\0")
    (loras / "squares.json").write_text(
        json.dumps({"name": "squares", "rank": 4, "base_model": "x"})
    )
    w = make_window(demo_folder)
    gp = small_panel(w, "wan-vace")
    assert gp.loras.table.rowCount() == 1 and gp.loras.table.item(0, 0).text() == "squares"
    assert gp.loras.selected() == []
    gp.loras.set_lora("squares", strength=0.5)
    assert gp.loras.selected() == [(str(loras / "squares.safetensors"), 0.5)]
    gp.form.set_profile("low-vram")
    gp.form.monitors.setChecked(False)

    calls = []

    def fake_generate_job(folder, options):
        calls.append(options)

        def job(ctx):
            raise WorldStudioError("no model here")

        return job

    monkeypatch.setattr("worldstudio.core.generation.engine.generate_job", fake_generate_job)
    assert gp.generate()
    wait_done(qtbot, gp)
    assert calls == [
        RunOptions(
            profile="low-vram",
            monitors=False,
            loras=[(str(loras / "squares.safetensors"), 0.5)],
            # the run is a queued `generate` command line: it writes preview.png, and the
            # checks before it stop on warnings too (the studio asks about them)
            write_preview=True,
            stop_on_warnings=True,
        )
    ]
    assert gp.last_error == "no model here" and "no model here" in w.status_label.text()


def test_generate_saves_the_changed_settings_without_asking(make_window, demo_folder, qtbot):
    """Changed settings (and any other unsaved edit) are saved when a run starts: no question
    box, the run and project.json both have them, and Undo still goes back."""
    w = make_window(demo_folder)
    gp = small_panel(w)
    w.ask_unsaved = lambda: pytest.fail("generating must not ask about unsaved changes")
    gp.form.steps_spin.setValue(2)
    assert w.doc.is_modified
    assert w.generate() is gp.job  # Render > Generate video / Ctrl+G / the toolbar button
    assert not w.doc.is_modified and "for this run" in w.status_label.text()
    saved = ProjectFolder(demo_folder).load().generation
    assert (saved.frames_per_round, saved.width, saved.steps) == (9, 64, 2)
    wait_done(qtbot, gp)
    meta = json.loads((gp.current_run / "run.json").read_text())
    assert meta["settings"]["frames_per_round"] == 9
    w.act_undo.trigger()  # the edits stay undoable after the save
    assert w.doc.project.generation.steps != 2 and w.doc.is_modified
    w.ask_unsaved = lambda: "discard"
