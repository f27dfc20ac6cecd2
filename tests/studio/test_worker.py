"""The worker bridge: core jobs in a QThread, reports as signals, cancel, errors, no stalls."""

from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QElapsedTimer, QTimer

from worldstudio.core.errors import WorldStudioError
from worldstudio.studio.worker import JobRunner


def test_reports_arrive_as_signals_in_order(qtbot):
    runner = JobRunner(min_interval=0.0)
    progress, previews, logs = [], [], []
    runner.progress.connect(lambda d, t, m: progress.append((d, t, m)))
    runner.preview.connect(lambda img, m: previews.append((img.shape, m)))
    runner.log.connect(logs.append)
    seen_thread = []

    def job(ctx):
        seen_thread.append(threading.current_thread())
        for i in range(1, 4):
            ctx.check_cancelled()
            ctx.progress(i, 3, f"step {i}")
        ctx.preview(np.zeros((4, 6, 3), np.uint8), "look")
        ctx.log("hello")
        return 42

    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        assert runner.start(job, "demo job")
        assert runner.busy
        assert not runner.start(job, "second"), "one job at a time"
    assert blocker.args == [42]
    assert seen_thread[0] is not threading.main_thread()
    assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert previews == [((4, 6, 3), "look")]
    assert logs == ["hello"]
    qtbot.waitUntil(lambda: not runner.busy)


def test_chatty_progress_is_coalesced_but_the_last_report_arrives(qtbot):
    runner = JobRunner(min_interval=0.05)
    progress = []
    runner.progress.connect(lambda d, t, m: progress.append(d))

    def job(ctx):
        for i in range(1, 20001):
            ctx.progress(i, 20000)

    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(job)
    assert progress[-1] == 20000
    assert len(progress) < 200


def test_user_errors_and_bugs_become_failed(qtbot):
    runner = JobRunner()

    def bad(ctx):
        raise WorldStudioError("scene/points.ply: missing")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(bad)
    assert blocker.args == ["scene/points.ply: missing"]
    assert runner.last_traceback == ""
    qtbot.waitUntil(lambda: not runner.busy)

    def bug(ctx):
        return 1 / 0

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(bug)
    assert blocker.args[0].startswith("ZeroDivisionError")
    assert "Traceback" in runner.last_traceback


def test_cancel_stops_the_job(qtbot):
    runner = JobRunner()
    started = threading.Event()

    def slow(ctx):
        started.set()
        while True:
            ctx.check_cancelled()
            time.sleep(0.005)

    with qtbot.waitSignal(runner.cancelled, timeout=5000):
        runner.start(slow)
        assert started.wait(5)
        runner.cancel()
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
    with qtbot.waitSignal(runner.finished, timeout=60000) as blocker:
        runner.start(job, "stall test")
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
