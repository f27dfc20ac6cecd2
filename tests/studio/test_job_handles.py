"""Panels follow their own jobs through handles: two jobs at once, each panel showing only its
own; the job header's Pause / Resume / Cancel act on its handle; the Generate panel learns its
run from the engine's events, with no timer reading the runs folder."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt, QTimer

from worldstudio.core import models
from worldstudio.core.generation.backends.oracle import OracleBackend
from worldstudio.core.project import ProjectFolder
from worldstudio.studio.panels.job_header import Eta, JobHeader, format_seconds_left
from worldstudio.studio.worker import JobRunner

TIMEOUT = 60000


def small_panel(w):
    """The Generate panel set to 2 rounds of F=9 at 64x48 with the oracle backend."""
    gp = w.generate_panel
    form = gp.form
    form.backend.setCurrentIndex(form.backend.findData("oracle"))
    form.width_spin.setValue(64)
    form.height_spin.setValue(48)
    form.frames_spin.setValue(9)
    return gp


@pytest.fixture
def hold_second_round(monkeypatch):
    """The oracle waits in round 2 until the test sets the returned event (or the job is
    cancelled)."""
    release = threading.Event()
    original = OracleBackend.generate

    def held(self, request, ctx):
        while request.round_index >= 1 and not release.wait(0.01):
            ctx.progress(1, request.num_frames, "waiting")
            ctx.check_cancelled()
        return original(self, request, ctx)

    monkeypatch.setattr(OracleBackend, "generate", held)
    return release


def test_two_panels_follow_their_own_jobs(
    make_window, demo_folder, models_env, qtbot, monkeypatch, hold_second_round
):
    """A generation (GPU lane) and a model download (downloads lane) run together; each panel
    shows its own job only; cancelling the download leaves the generation running."""
    download_started = threading.Event()

    def fake_download_job(name, force=False):
        def job(ctx):
            download_started.set()
            while True:
                ctx.check_cancelled()
                ctx.progress(39_000_000, 156_000_000, name)
                time.sleep(0.01)

        return job

    monkeypatch.setattr(models, "download_job", fake_download_job)
    w = make_window(demo_folder)
    gp, tp = small_panel(w), w.training_panel
    assert tp.header.start_button.isEnabled()
    assert gp.generate()
    # one job in the GPU lane: Training's Start now queues behind it instead of running beside
    assert not w.runner.can_start("gpu") and [j.lane for j in w.runner.jobs] == ["gpu"]
    assert tp.header.start_button.isEnabled()
    assert not tp.start() and not tp.running  # (no clips chosen: nothing is queued either)
    assert [e.command for e in w.queue_driver.queue.entries()] == ["generate"]
    qtbot.waitUntil(lambda: "round 2/2" in gp.header.status.text(), timeout=TIMEOUT)

    dlg = w.show_models()
    assert dlg.download("sam2.1-small")
    assert download_started.wait(5)
    qtbot.waitUntil(lambda: dlg.progress.format() == "39 MB of 156 MB", timeout=5000)
    assert [job.description for job in w.runner.jobs] == ["Generate", "Download sam2.1-small"]
    assert w.shown_job is dlg.job and "(+1 more)" in w.job_label.text()
    # each panel shows its own job: no byte counts in the Generate panel, no rounds in the dialog
    assert "round 2/2" in gp.header.status.text() and "MB" not in gp.header.status.text()
    assert gp.header.bar.maximum() != 156_000_000 and dlg.progress.maximum() == 1000
    assert not dlg.download_buttons["wan2.1-vace-14b"].isEnabled()  # one download at a time

    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.job.ended, timeout=5000)
    assert dlg.job.state == "cancelled" and "cancelled" in dlg.message.text()
    assert gp.running and gp.job.state == "running" and gp.last_error == ""
    assert w.shown_job is gp.job and w.job_label.text() == "Generate"

    hold_second_round.set()
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    assert gp.job.state == "finished" and gp.last_result.rounds_done == 2, gp.last_error
    assert tp.header.start_button.isEnabled() and not w.runner.busy
    assert w.shown_job is None and not w.progress.isVisible()


def test_the_generate_panel_learns_its_run_from_events_not_by_polling(
    make_window, demo_folder, qtbot, monkeypatch, hold_second_round
):
    from worldstudio.core.project import runs as runs_module

    listings = []
    list_runs = runs_module.list_runs
    monkeypatch.setattr(runs_module, "list_runs", lambda pf: listings.append(1) or list_runs(pf))
    w = make_window(demo_folder)
    gp = small_panel(w)
    # nothing polls (the header's clock only ticks its elapsed time and time left)
    assert [t for t in gp.findChildren(QTimer) if t is not gp.header.clock] == []
    changed = []
    gp.run_changed.connect(changed.append)
    assert gp.generate()
    listed_at_start = len(listings)
    # run_started names the run, round_finished says round 1 is on disk
    qtbot.waitUntil(lambda: len(changed) == 2, timeout=TIMEOUT)
    run = gp.current_run
    assert run is not None and run.parent == ProjectFolder(demo_folder).runs_dir
    assert changed == [run, run]
    assert w.run_track.run == run and w.run_track.rounds_done == 1
    qtbot.wait(1600)  # more than two periods of the old 700 ms poll
    assert len(listings) == listed_at_start, "the runs folder was read while the job ran"
    assert len(changed) == 2

    hold_second_round.set()
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    assert changed == [run] * 4  # round 2 finished, then the run ended
    assert gp.runs.selected_run() == run and w.run_track.rounds_done == 2


def test_the_job_header_pauses_resumes_and_cancels_its_handle(qtbot):
    runner = JobRunner(min_interval=0.0)
    header = JobHeader("Start", "start it", "stop it", pausable=True, pause_tip="hold it")
    qtbot.addWidget(header)
    header.show()
    steps = []

    def job(ctx):
        for step in range(100_000):
            ctx.checkpoint(step)
            steps.append(step)
            ctx.progress(step + 1, 100_000)
            time.sleep(0.002)

    assert header.start_button.isEnabled() and not header.cancel_button.isEnabled()
    handle = runner.start(job, "steps")
    header.follow(handle)
    assert header.running and not header.start_button.isEnabled()
    assert header.pause_button.isEnabled() and header.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: header.bar.maximum() == 100_000, timeout=5000)

    qtbot.mouseClick(header.pause_button, Qt.MouseButton.LeftButton)
    assert header.pause_button.text() == "Resume" and "pausing" in header.status.text()
    qtbot.waitUntil(lambda: handle.state == "paused", timeout=5000)
    held = len(steps)
    qtbot.wait(200)
    assert len(steps) == held and "left" not in header.time_left.text()  # none while it holds
    qtbot.mouseClick(header.pause_button, Qt.MouseButton.LeftButton)
    assert header.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: len(steps) > held + 5, timeout=5000)

    qtbot.mouseClick(header.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: handle.state == "cancelled", timeout=5000)
    assert not header.running and header.start_button.isEnabled()
    assert not header.pause_button.isEnabled() and not header.cancel_button.isEnabled()
    header.set_can_start(False)  # another job holds the lane
    assert not header.start_button.isEnabled()


def test_the_time_left_follows_the_rate_of_the_current_phase():
    now = [0.0]
    eta = Eta(clock=lambda: now[0])
    assert eta.update(0, 100) is None  # first report: no rate yet
    now[0] = 1.0
    assert eta.update(10, 100) is None  # too early to tell
    now[0] = 4.0
    assert eta.update(40, 100) == pytest.approx(6.0)  # 10 per second, 60 to go
    now[0] = 5.0
    assert eta.update(3, 7) is None  # a new phase (another total) starts a new estimate
    now[0] = 8.0
    assert eta.update(6, 7) == pytest.approx(1.0)
    assert format_seconds_left(None) == "" and format_seconds_left(0.2) == "~1 s left"
    assert format_seconds_left(95) == "~2 min left" and format_seconds_left(5400) == "~1.5 h left"
