"""The worker bridge: core jobs in QThreads, each followed through its own handle: reports as
signals, events, cancel and pause, errors, lanes, no stalls."""

from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QElapsedTimer, QTimer

from worldstudio.core.errors import WorldStudioError
from worldstudio.studio.worker import JobHandle, JobRunner


def test_reports_arrive_as_signals_in_order(qtbot):
    runner = JobRunner(min_interval=0.0)
    progress, previews, logs = [], [], []
    seen_thread = []

    def job(ctx):
        seen_thread.append(threading.current_thread())
        for i in range(1, 4):
            ctx.check_cancelled()
            ctx.progress(i, 3, f"step {i}")
        ctx.preview(np.zeros((4, 6, 3), np.uint8), "look")
        ctx.log("hello")
        return 42

    handle = runner.start(job, "demo job")
    assert isinstance(handle, JobHandle) and handle.state == "running"
    handle.progress.connect(lambda d, t, m: progress.append((d, t, m)))
    handle.preview.connect(lambda img, m: previews.append((img.shape, m)))
    handle.log.connect(logs.append)
    with qtbot.waitSignal(handle.finished, timeout=5000) as blocker:
        assert runner.busy
        assert runner.start(job, "second") is None, "one job at a time in a lane"
    assert blocker.args == [42] and handle.result == 42 and handle.state == "finished"
    assert seen_thread[0] is not threading.main_thread()
    assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert previews == [((4, 6, 3), "look")]
    assert logs == ["hello"]
    qtbot.waitUntil(lambda: not runner.busy)


def test_chatty_progress_is_coalesced_but_the_last_report_arrives(qtbot):
    runner = JobRunner(min_interval=0.05)
    progress = []

    def job(ctx):
        for i in range(1, 20001):
            ctx.progress(i, 20000)

    handle = runner.start(job)
    handle.progress.connect(lambda d, t, m: progress.append(d))
    with qtbot.waitSignal(handle.finished, timeout=5000):
        pass
    assert progress[-1] == 20000
    assert len(progress) < 200


def test_user_errors_and_bugs_become_failed(qtbot):
    runner = JobRunner()

    def bad(ctx):
        raise WorldStudioError("scene/points.ply: missing")

    handle = runner.start(bad)
    with qtbot.waitSignal(handle.failed, timeout=5000) as blocker:
        pass
    assert blocker.args == ["scene/points.ply: missing"]
    assert handle.traceback == "" and handle.state == "failed"
    qtbot.waitUntil(lambda: not runner.busy)

    def bug(ctx):
        return 1 / 0

    handle = runner.start(bug)
    with qtbot.waitSignal(handle.failed, timeout=5000) as blocker:
        pass
    assert blocker.args[0].startswith("ZeroDivisionError")
    assert "Traceback" in handle.traceback


def test_cancel_stops_the_job(qtbot):
    runner = JobRunner()
    started = threading.Event()

    def slow(ctx):
        started.set()
        while True:
            ctx.check_cancelled()
            time.sleep(0.005)

    handle = runner.start(slow)
    with qtbot.waitSignal(handle.cancelled, timeout=5000):
        assert started.wait(5)
        handle.cancel()
    assert handle.state == "cancelled"
    qtbot.waitUntil(lambda: not runner.busy)


def _max_stall_while(qtbot, runner: JobRunner, job) -> tuple[float, object]:
    """Run ``job`` in ``runner`` with a ~10 ms heartbeat; the longest gap between beats (ms)."""
    clock = QElapsedTimer()
    gaps = []
    last = [0]

    def beat():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(beat)
    clock.start()
    timer.start()
    handle = runner.start(job, "stall test")
    with qtbot.waitSignal(handle.finished, timeout=60000) as blocker:
        pass
    timer.stop()
    assert len(gaps) >= 5, "the job was too short to measure anything"
    return max(gaps), blocker.args[0]


def test_event_loop_keeps_beating_while_a_python_job_runs(qtbot):
    """A pure-Python job holds the GIL between switches: the GUI must still beat."""

    def busy(ctx):
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 0.6:
            n += sum(i * i for i in range(2000))
            ctx.progress(int((time.monotonic() - t0) * 1000), 600)
        return n

    stall, _ = _max_stall_while(qtbot, JobRunner(), busy)
    assert stall < 100, f"event loop stalled for {stall} ms"


def test_event_loop_keeps_beating_while_the_preview_renders(qtbot, demo_folder, tmp_path):
    """The real job: the geometry preview of the demo project. torch is imported first, because
    a first import stalls any thread once and is not the job's work."""
    import torch  # noqa: F401

    import worldstudio.core.pointcloud.render  # noqa: F401
    from worldstudio.core.generation.preview import render_preview_job
    from worldstudio.core.media import probe_video

    out = tmp_path / "preview.mp4"
    stall, result = _max_stall_while(qtbot, JobRunner(), render_preview_job(demo_folder, out))
    assert stall < 100, f"event loop stalled for {stall} ms"
    assert probe_video(result).frames > 10


def _stepper(steps_done: list, started: threading.Event | None = None, n: int = 10_000):
    """A job of short steps with a checkpoint before each (as the trainer does)."""

    def job(ctx):
        for step in range(n):
            ctx.checkpoint(step)
            if started is not None:
                started.set()
            steps_done.append(step)
            ctx.progress(step + 1, n)
            time.sleep(0.002)
        return len(steps_done)

    return job


def test_two_jobs_are_followed_through_their_own_handles(qtbot):
    """A lane-free job runs beside a job in the GPU lane; each handle reports only its own job."""
    runner = JobRunner(min_interval=0.0)
    a_steps, b_steps = [], []
    a = runner.start(_stepper(a_steps, n=30), "a")
    b = runner.start(_stepper(b_steps, n=20), "b", lane=None)
    assert a is not None and b is not None and runner.jobs == [a, b]
    assert not runner.can_start() and runner.holder() is a
    a_totals, b_totals = set(), set()
    a.progress.connect(lambda d, t, m: a_totals.add(t))
    b.progress.connect(lambda d, t, m: b_totals.add(t))
    with qtbot.waitSignals([a.finished, b.finished], timeout=10000):
        pass
    assert (a.result, b.result) == (30, 20)
    assert a_totals == {30} and b_totals == {20}
    assert runner.jobs == [] and runner.can_start()


def test_pause_holds_at_the_next_checkpoint_and_cancel_ends_a_paused_job(qtbot):
    runner = JobRunner(min_interval=0.0)
    steps, events, states = [], [], []
    started = threading.Event()
    handle = runner.start(_stepper(steps, started))
    handle.event.connect(lambda name, data: events.append((name, data)))
    handle.state_changed.connect(states.append)
    assert started.wait(5)
    handle.pause()
    assert handle.pause_requested
    qtbot.waitUntil(lambda: handle.state == "paused", timeout=5000)
    held_at = len(steps)
    time.sleep(0.2)
    qtbot.wait(20)
    assert len(steps) == held_at, "a paused job takes no step"
    assert events[-1] == ("paused", {"step": held_at})
    handle.resume()
    qtbot.waitUntil(lambda: len(steps) > held_at + 3, timeout=5000)
    assert handle.state == "running" and ("resumed", {"step": held_at}) in events
    # Pause again, then cancel while it holds: it ends at that checkpoint, as cancelled.
    handle.pause()
    qtbot.waitUntil(lambda: handle.state == "paused", timeout=5000)
    held_at = len(steps)
    with qtbot.waitSignal(handle.cancelled, timeout=5000):
        handle.cancel()
    assert len(steps) == held_at and handle.state == "cancelled" and not handle.pause_requested
    assert states == ["paused", "running", "paused", "cancelled"]
    assert not runner.busy


def test_cancel_takes_effect_at_the_next_step_boundary(qtbot):
    runner = JobRunner(min_interval=0.0)
    in_step, leave_step = threading.Event(), threading.Event()
    steps = []

    def job(ctx):
        for step in range(100):
            ctx.checkpoint(step)
            if step == 3:
                in_step.set()
                leave_step.wait(5)  # a long step: the cancel arrives in the middle of it
            steps.append(step)

    handle = runner.start(job)
    assert in_step.wait(5)
    handle.cancel()
    assert handle.state == "running"  # nothing stops a step half-way
    with qtbot.waitSignal(handle.cancelled, timeout=5000):
        leave_step.set()
    assert steps == [0, 1, 2, 3]  # step 3 finished, step 4 never began


def test_events_are_delivered_in_the_gui_thread_and_never_coalesced(qtbot):
    runner = JobRunner(min_interval=10.0)  # progress would be throttled hard
    events, threads = [], set()

    def job(ctx):
        for i in range(50):
            ctx.event("metrics", step=i, loss=1.0 / (i + 1))

    handle = runner.start(job)
    handle.event.connect(
        lambda name, data: (events.append(data["step"]), threads.add(threading.get_ident()))
    )
    with qtbot.waitSignal(handle.finished, timeout=5000):
        pass
    assert events == list(range(50)) and threads == {threading.get_ident()}


def test_the_runner_announces_jobs_and_lanes(qtbot):
    runner = JobRunner()
    started, changes = [], []
    runner.started.connect(started.append)
    runner.jobs_changed.connect(lambda: changes.append(len(runner.jobs)))
    release = threading.Event()
    first = runner.start(lambda ctx: release.wait(5), "first")
    assert started == [first] and changes == [1]
    assert runner.start(lambda ctx: 1, "second") is None and started == [first]
    download = runner.start(lambda ctx: 2, "download", lane="downloads")
    assert download is not None and runner.holder("downloads") is download
    with qtbot.waitSignal(download.finished, timeout=5000):
        pass
    with qtbot.waitSignal(first.finished, timeout=5000):
        release.set()
    assert changes == [1, 2, 1, 0] and not runner.busy
    assert first.wait(1000) and runner.wait_all(1000)
