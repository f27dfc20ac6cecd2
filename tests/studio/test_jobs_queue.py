"""Jobs you can trust, in the real window: Generate goes through the on-disk queue, the Jobs panel
shows and changes it and survives a restart, Cancel ends a slow job within seconds of its next
step, quitting during a job records the run as cancelled, the pre-flight dialog lists what would
make a run fail before any run folder exists, and the status bar never keeps a stale
"cancelled"."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt

from tests.studio.test_generate_panel import TIMEOUT, small_panel, wait_done
from worldstudio.core.generation import preflight as pf
from worldstudio.core.generation.backends.oracle import OracleBackend
from worldstudio.core.jobs.queue import JobQueue
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, list_runs

STEP_SECONDS = 0.25  # a slow backend's denoising step


@pytest.fixture
def slow_steps(monkeypatch):
    """The oracle backend made slow: round 2's calls take many steps of STEP_SECONDS each, with a
    cancel check between steps (as the Wan backends check between denoising steps) and none
    inside a step. Returns the event set when round 2 has started."""
    started = threading.Event()
    started.slow = True  # False: the backend is fast again
    original = OracleBackend.generate

    def slow(self, request, ctx):
        if request.round_index >= 1 and started.slow:
            started.set()
            for step in range(400):
                ctx.check_cancelled()
                ctx.progress(step, 400, f"step {step + 1}/400")
                time.sleep(STEP_SECONDS)  # a step the job cannot leave
        return original(self, request, ctx)

    monkeypatch.setattr(OracleBackend, "generate", slow)
    return started


def _runs(folder) -> list[RunFolder]:
    return list_runs(ProjectFolder(folder))


def test_generate_goes_through_the_queue_and_the_panel_shows_it(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)
    gp = small_panel(w)
    assert w.jobs_panel.table.rowCount() == 0
    assert w.generate() is not None  # the GPU is free: it starts at once
    (entry,) = JobQueue().entries()
    assert entry.command == "generate" and entry.project == str(demo_folder)
    assert "--strict" in entry.args and entry.state == "running"
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.rounds_done == 2, gp.last_error
    qtbot.waitUntil(lambda: JobQueue().get(entry.id).state == "done", timeout=5000)
    w.queue_driver.refresh()
    table = w.jobs_panel.table
    assert table.rowCount() == 1 and table.item(0, 1).text() == "done"
    assert table.item(0, 0).text() == "Generate"
    assert str(demo_folder) in table.item(0, 0).toolTip()
    assert table.item(0, 3).text().endswith("s")  # elapsed
    assert table.cellWidget(0, 2).value() == table.cellWidget(0, 2).maximum()
    # the status bar says it ended well
    assert "Generate: done in" in w.status_label.text()
    # the header showed the elapsed time (the job's total, once it ended)
    assert gp.header.time_left.text().endswith("s")


def test_the_queue_survives_a_restart_and_its_panel_reorders_cancels_and_removes(
    make_window, demo_folder, qtbot
):
    queue = JobQueue()
    a = queue.add("generate", demo_folder, ["--rounds", "1"], "first")
    b = queue.add("export", demo_folder, ["--ply", str(demo_folder / "x.ply")], "second")
    c = queue.add("generate", demo_folder, ["--rounds", "3"], "third")
    w = make_window(demo_folder)
    panel = w.jobs_panel
    # jobs left from before wait for Run queue: nothing starts by itself
    assert not w.queue_driver.auto and not panel.run_button.isChecked()
    assert [panel.table.item(r, 0).text() for r in range(3)] == ["first", "second", "third"]
    assert "3 waiting: press Run queue" in panel.note.text()
    assert not w.runner.busy

    panel.select(c.id)
    qtbot.mouseClick(panel.up_button, Qt.MouseButton.LeftButton)
    assert [e.id for e in JobQueue().entries()] == [a.id, c.id, b.id]
    assert panel.selected_id() == c.id  # the selection follows the moved job
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert JobQueue().get(c.id).state == "cancelled"
    assert panel.table.item(1, 1).text() == "cancelled" and panel.retry_button.isEnabled()
    panel.select(a.id)
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert [e.id for e in JobQueue().entries()] == [c.id, b.id]

    # a restart: a new window (a new driver on the same file) shows the same queue
    w.close()
    w2 = make_window(demo_folder)
    assert [w2.jobs_panel.table.item(r, 0).text() for r in range(2)] == ["third", "second"]
    assert w2.jobs_panel.table.item(0, 1).text() == "cancelled"
    # Run queue runs what waits: the export (a light job)
    qtbot.mouseClick(w2.jobs_panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: JobQueue().get(b.id).state == "done", timeout=TIMEOUT)
    assert (demo_folder / "x.ply").is_file()
    qtbot.mouseClick(w2.jobs_panel.clear_button, Qt.MouseButton.LeftButton)
    assert JobQueue().entries() == []


def test_a_generate_while_the_gpu_is_busy_waits_its_turn(
    make_window, demo_folder, qtbot, slow_steps
):
    w = make_window(demo_folder)
    gp = small_panel(w)
    release = threading.Event()

    def gpu_job(ctx):
        while not release.wait(0.05):
            ctx.check_cancelled()

    other = w.runner.start(gpu_job, "Training")  # something else holds the GPU
    assert gp.header.start_button.isEnabled()  # Generate still queues
    assert gp.generate() and gp.job is None and gp.queued is not None
    assert "queued" in gp.header.status.text()
    assert not gp.header.start_button.isEnabled()  # one queued run per panel
    (entry,) = JobQueue().entries()
    assert entry.state == "queued"
    release.set()
    qtbot.waitUntil(lambda: gp.job is not None, timeout=10000)  # it starts once the GPU is free
    assert other.ended and gp.running
    qtbot.waitUntil(slow_steps.is_set, timeout=TIMEOUT)
    gp.header.cancel()
    wait_done(qtbot, gp)
    assert JobQueue().get(entry.id).state == "cancelled"


def test_cancel_ends_a_slow_job_within_seconds_of_its_next_step(
    make_window, demo_folder, qtbot, slow_steps
):
    w = make_window(demo_folder)
    gp = small_panel(w)
    assert gp.generate()
    qtbot.waitUntil(slow_steps.is_set, timeout=TIMEOUT)
    qtbot.wait(300)
    asked = time.monotonic()
    qtbot.mouseClick(gp.header.cancel_button, Qt.MouseButton.LeftButton)
    assert "cancelling" in gp.header.status.text() and not gp.header.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: gp.job.ended, timeout=10000)
    took = time.monotonic() - asked
    assert gp.job.state == "cancelled"
    assert took < STEP_SECONDS + 3.0, f"cancel took {took:.1f} s"
    (run,) = _runs(demo_folder)
    assert run.read_meta()["status"] == "cancelled" and run.completed_rounds() == 1
    assert "cancelled" in w.status_label.text()

    # a success afterwards leaves no stale "cancelled" in the status bar
    slow_steps.slow = False
    assert gp.resume(run.path)
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.rounds_done == 2, gp.last_error
    assert "cancelled" not in w.status_label.text() and "done in" in w.status_label.text()


def test_quitting_during_a_job_cancels_it_and_records_the_run_as_cancelled(
    make_window, demo_folder, qtbot, slow_steps
):
    w = make_window(demo_folder)
    gp = small_panel(w)
    assert gp.generate()
    qtbot.waitUntil(slow_steps.is_set, timeout=TIMEOUT)
    (entry,) = JobQueue().entries()
    asked = time.monotonic()
    assert w.close()
    took = time.monotonic() - asked
    assert took < STEP_SECONDS + 3.0, f"quitting took {took:.1f} s"
    (run,) = _runs(demo_folder)
    assert run.read_meta()["status"] == "cancelled" and run.completed_rounds() == 1
    assert JobQueue().get(entry.id).state == "cancelled"
    assert not w.runner.busy or all(h.cancel_requested for h in w.runner.jobs)


# ------------------------------------------------------------------------------------ pre-flight
def test_a_camera_path_outside_the_scene_is_refused_before_a_run_folder_exists(
    make_window, demo_folder, qtbot
):
    folder = ProjectFolder(demo_folder)
    project = folder.load()
    for k in project.camera_path.keyframes:  # a path far out of the reconstructed room
        k.position = (0.0, 0.0, -500.0)
    folder.save(project)
    w = make_window(demo_folder)
    gp = small_panel(w)
    opened = []
    w.path_dialog = lambda *a, **k: opened.append(1)
    gp.on_camera = w.path_dialog
    assert gp.generate()
    wait_done(qtbot, gp)
    qtbot.waitUntil(lambda: gp.preflight_dialog is not None, timeout=5000)
    dlg = gp.preflight_dialog
    assert dlg.isVisible() and _runs(demo_folder) == []  # nothing was written
    (problem,) = dlg.preflight.problems
    assert problem.check == "camera" and problem.severity == "error"
    assert dlg.run_anyway_button is None  # an error cannot be run anyway
    (button,) = dlg.fix_buttons
    assert button.text() == "Edit the path…"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert opened == [1]
    assert "not started" in gp.header.status.text()
    dlg.close()


def test_warnings_are_asked_about_and_run_anyway_starts_the_run(
    make_window, demo_folder, qtbot, monkeypatch
):
    monkeypatch.setattr(
        pf, "_free_bytes", lambda path: pf.DISK_RESERVE
    )  # under 1 GiB would be left
    w = make_window(demo_folder)
    gp = small_panel(w)
    assert gp.generate()
    wait_done(qtbot, gp)
    qtbot.waitUntil(lambda: gp.preflight_dialog is not None, timeout=5000)
    dlg = gp.preflight_dialog
    assert [p.check for p in dlg.preflight.warnings] == ["disk"] and not dlg.preflight.errors
    assert _runs(demo_folder) == []
    qtbot.mouseClick(dlg.run_anyway_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gp.job is not None and gp.job.ended, timeout=TIMEOUT)
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.rounds_done == 2, gp.last_error
    assert len(_runs(demo_folder)) == 1


def test_the_dialog_offers_a_profile_that_fits_and_a_download(qtbot, monkeypatch):
    from worldstudio.studio.dialogs.preflight import PreflightDialog

    report = pf.Preflight(
        [
            pf.Problem(
                "memory", "error", "not enough memory", "choose low-vram", profile="low-vram"
            ),
            pf.Problem("models", "warning", "a model is missing", "download it", models=("vace",)),
            pf.Problem("disk", "error", "the disk is full", "free disk space"),
        ]
    )
    chosen, fetched = [], []
    dlg = PreflightDialog(report, on_models=fetched.append, on_profile=chosen.append)
    qtbot.addWidget(dlg)
    dlg.show()
    assert [b.text() for b in dlg.fix_buttons] == ["Use profile low-vram", "Download"]
    for b in dlg.fix_buttons:
        qtbot.mouseClick(b, Qt.MouseButton.LeftButton)
    assert chosen == ["low-vram"] and fetched == [("vace",)]
    assert dlg.run_anyway_button is None  # errors: fix them first


def test_the_panel_shows_elapsed_and_time_left_and_the_studios_other_jobs(
    make_window, demo_folder, qtbot, slow_steps
):
    w = make_window(demo_folder)
    gp = small_panel(w)
    panel = w.jobs_panel
    assert gp.generate()
    qtbot.waitUntil(slow_steps.is_set, timeout=TIMEOUT)
    # the queued generation's row: elapsed and time left, from the queue file
    qtbot.waitUntil(lambda: "left" in panel.table.item(0, 4).text(), timeout=15000)
    assert panel.table.item(0, 1).text() == "running"
    assert panel.table.item(0, 3).text().endswith(" s")
    assert 0 < panel.table.cellWidget(0, 2).value()

    # a preview render is a light job: it runs beside the generation, and shows below the queue
    handle = w.render_preview(width=96, height=64)
    assert handle is not None and handle.lane == "light"
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=5000)
    assert panel.table.item(1, 0).text() == "Render preview"
    qtbot.waitUntil(lambda: handle.ended, timeout=TIMEOUT)
    assert handle.state == "finished"
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5000)  # gone once it ended

    # a job the studio started outside the queue is cancelled from the panel
    release = threading.Event()

    def light_job(ctx):
        while not release.wait(0.05):
            ctx.check_cancelled()

    other = w.runner.start(light_job, "Export the scene", "light")
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=5000)
    panel.table.selectRow(1)
    assert panel.cancel_button.isEnabled() and not panel.remove_button.isEnabled()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: other.ended, timeout=5000)
    assert other.state == "cancelled" and gp.running  # the generation goes on
    gp.header.cancel()
    wait_done(qtbot, gp)


def test_a_queued_generation_from_a_terminal_shows_in_the_generate_panel(
    make_window, demo_folder, qtbot
):
    from tests.studio.test_generate_panel import small_panel as _small

    w = make_window(demo_folder)
    gp = _small(w)
    w.save()
    entry = JobQueue().add(
        "generate", demo_folder, ["--backend", "oracle", "--rounds", "1", "--size", "64x48"]
    )
    # the queue was empty when the studio opened, so it runs what comes: the next poll starts it
    assert w.queue_driver.auto and w.jobs_panel.run_button.text() == "Hold queue"
    qtbot.waitUntil(lambda: gp.job is not None, timeout=10000)
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.rounds_done == 1, gp.last_error
    assert JobQueue().get(entry.id).state == "done"
    assert w.run_track.run == gp.last_result.run_dir


def test_a_run_left_running_by_a_gone_process_shows_interrupted_and_resumes(
    make_window, demo_folder, qtbot
):
    import json
    import subprocess
    import sys

    from worldstudio.core.cli import main
    from worldstudio.core.jobs.process import ProcessStamp, this_process

    args = ["--backend", "oracle", "--frames-per-round", "9", "--size", "64x48", "--quiet"]
    assert main(["generate", str(demo_folder), *args, "--rounds", "1"]) == 0
    (run,) = _runs(demo_folder)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    me = this_process()
    meta = json.loads(run.run_file.read_text())
    meta.update(status="running", rounds_total=2)  # as a studio killed in round 2 leaves it
    meta["writer"] = ProcessStamp(child.pid, me.host, me.boot, None).to_json()
    meta["settings"]["rounds"] = 2
    run.run_file.write_text(json.dumps(meta))

    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.runs.select_run(run.path)
    assert gp.runs.runs_combo.currentText().endswith("· 1/2 · interrupted")
    assert gp.runs.resume_button.isEnabled()
    qtbot.mouseClick(gp.runs.resume_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, gp)
    assert gp.last_result is not None and gp.last_result.run_id == run.id, gp.last_error
    assert run.completed_rounds() == 2 and run.read_meta()["status"] == "complete"

    # a run a live process writes is not offered for resume
    meta = json.loads(run.run_file.read_text())
    meta.update(status="running", rounds_total=3, writer=this_process().to_json())
    run.run_file.write_text(json.dumps(meta))
    gp.runs.refresh_runs(select=run.path)
    assert gp.runs.runs_combo.currentText().endswith("· running")
    assert not gp.runs.resume_button.isEnabled()


def test_download_in_the_dialog_fetches_every_missing_model_in_turn(
    make_window, demo_folder, qtbot, models_env, monkeypatch
):
    from worldstudio.core import models

    fetched = []

    def fake_download_job(name, force=False):
        def job(ctx):
            fetched.append(name)
            return name

        return job

    monkeypatch.setattr(models, "download_job", fake_download_job)
    monkeypatch.setattr(  # online: Download downloads
        "worldstudio.core.models.manager.offline_reason", lambda: None, raising=True
    )
    w = make_window(demo_folder)
    report = pf.Preflight(
        [
            pf.Problem(
                "models",
                "warning",
                "two missing",
                "download",
                models=("sam2.1-small", "sam2.1-tiny"),
            )
        ]
    )
    dlg = w.generate_panel.show_preflight(report)
    (button,) = dlg.fix_buttons
    assert button.text() == "Download"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: fetched == ["sam2.1-small", "sam2.1-tiny"] and not w.runner.busy, timeout=10000
    )
