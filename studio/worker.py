"""The bridge between core jobs and Qt: each job runs in its own worker thread and answers to its
own :class:`JobHandle`.

A core job is ``fn(ctx: JobContext) -> result`` (core.jobs). ``runner.start(job, description)``
starts it and returns its handle (or None when the runner says no, see below). The handle is all
a panel needs to follow its job, like napari's worker objects:

- signals, delivered in the GUI thread: ``progress(done, total, message)``,
  ``preview(image, message)``, ``log(text)``, ``event(name, data)`` (the job's typed events,
  core.jobs.EVENTS), then exactly one of ``finished(result)``, ``failed(message)`` or
  ``cancelled()``; a failure on a bug (not a :class:`WorldStudioError`) writes a crash log
  (:mod:`worldstudio.core.jobs.crash`): the message names it, :attr:`JobHandle.traceback` holds
  its text and :attr:`JobHandle.crash_log` its path; ``state_changed(state)`` whenever :attr:`JobHandle.state` changes;
- controls: ``cancel()`` (the job stops at its next step boundary: ``ctx.checkpoint()`` or
  ``ctx.check_cancelled()``), ``pause()`` / ``resume()`` (the job holds at its next
  ``ctx.checkpoint()``), ``wait()``;
- ``state``: "running", "paused" (the job holds at a checkpoint), then "finished", "failed" or
  "cancelled".

The runner decides what may run together: jobs that name the same *lane* run one at a time
(``GPU``, the default, for the work that needs the accelerator or a big model; the model
downloads have their own lane); jobs started with ``lane=None`` (a mask preview) run beside
anything. It tells the window about each job it starts (``started(handle)``) and when its set of
running jobs changes (``jobs_changed()``), so Start buttons can follow.

Progress and preview reports are coalesced per job (at most one per ``min_interval`` seconds, the
last one always delivered) so a chatty job cannot flood the event loop; logs and events are
never dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import CancelToken, JobContext, PauseToken, Report
from worldstudio.core.jobs.crash import report_crash

GPU = "gpu"  # the default lane: one accelerator-heavy job at a time
DOWNLOADS = "downloads"

ENDED = ("finished", "failed", "cancelled")


class _JobThread(QThread):
    """Runs one job; its reports leave the worker thread as queued signals."""

    progress = Signal(int, int, str)
    preview = Signal(object, str)
    log = Signal(str)
    event = Signal(str, object)
    done = Signal(object)
    # message, details (the crash log's text: traceback and versions) and the crash log's
    # path; details and path are "" for errors a user caused
    failed = Signal(str, str, str)
    cancelled = Signal()

    def __init__(
        self,
        job: Callable[[JobContext], Any],
        cancel: CancelToken,
        pause: PauseToken,
        min_interval: float,
        description: str = "",
    ):
        super().__init__()
        self.job = job
        self.description = description
        self.cancel = cancel
        self.pause = pause
        self.min_interval = min_interval
        self.error: BaseException | None = None  # what the job raised, when it failed
        self._last: dict[str, float] = {}
        self._pending: dict[str, Report] = {}
        self._lock = threading.Lock()  # a job may report from its own helper threads

    def _sink(self, report: Report) -> None:
        if report.kind == "log":
            self.log.emit(report.message)
            return
        if report.kind == "event":
            self.event.emit(report.message, dict(report.data))
            return
        now = time.monotonic()
        final = report.kind == "progress" and report.total and report.done >= report.total
        with self._lock:
            if not final and now - self._last.get(report.kind, 0.0) < self.min_interval:
                self._pending[report.kind] = report  # delivered later or at the end
                return
            self._last[report.kind] = now
            self._pending.pop(report.kind, None)
        self._emit(report)

    def _emit(self, report: Report) -> None:
        if report.kind == "progress":
            self.progress.emit(int(report.done), int(report.total), report.message)
        elif report.kind == "preview":
            self.preview.emit(report.payload, report.message)

    def _flush(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for report in pending:
            self._emit(report)

    def run(self) -> None:  # runs in the worker thread
        ctx = JobContext(self._sink, self.cancel, self.pause)
        try:
            result = self.job(ctx)
        except Cancelled:
            with self._lock:
                self._pending.clear()
            self.cancelled.emit()
            return
        except WorldStudioError as exc:
            self.error = exc
            self._flush()
            self.failed.emit(str(exc), "", "")
            return
        except Exception as exc:  # noqa: BLE001 - a bug in a job must not kill the studio
            self.error = exc
            self._flush()
            report = report_crash(exc, f"the job '{self.description or 'unnamed'}'")
            self.failed.emit(report.message, report.details, str(report.log or ""))
            return
        self._flush()
        if self.cancel.cancelled:
            self.cancelled.emit()
        else:
            self.done.emit(result)


class JobHandle(QObject):
    """One running (or ended) job: its reports as signals, its controls and its state."""

    progress = Signal(int, int, str)
    preview = Signal(object, str)
    log = Signal(str)
    event = Signal(str, object)  # name, data (dict)
    finished = Signal(object)  # the job's return value
    failed = Signal(str)  # one line for the user
    cancelled = Signal()
    state_changed = Signal(str)

    def __init__(
        self,
        job: Callable[[JobContext], Any],
        description: str = "",
        lane: str | None = GPU,
        min_interval: float = 0.03,
    ):
        super().__init__()
        self.description = description
        self.lane = lane
        self.state = "running"
        self.result: Any = None
        self.error = ""  # the failure's message
        # for bugs (not for errors a user caused): the crash log's text (traceback, versions)
        # and where it was written
        self.traceback = ""
        self.crash_log = ""
        # what the job raised when it failed (a PreflightError carries its list of problems)
        self.exception: BaseException | None = None
        self.started_at: float | None = None  # time.monotonic() when it started
        self.ended_at: float | None = None
        self._cancel = CancelToken()
        self._pause = PauseToken()
        self._thread: _JobThread | None = _JobThread(
            job, self._cancel, self._pause, min_interval, description
        )
        t = self._thread
        t.progress.connect(self.progress)
        t.preview.connect(self.preview)
        t.log.connect(self.log)
        t.event.connect(self._on_event)
        t.done.connect(self._on_done)
        t.failed.connect(self._on_failed)
        t.cancelled.connect(self._on_cancelled)

    def __repr__(self) -> str:
        return f"<JobHandle {self.description!r} {self.state}>"

    # ------------------------------------------------------------------ controls
    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def pause_requested(self) -> bool:
        """pause() was called and resume() not yet (the job may still be on its way to the
        checkpoint where it holds; :attr:`state` says "paused" once it does)."""
        return self._pause.paused and not self.ended

    def cancel(self) -> None:
        """Ask the job to stop at its next step boundary (also while it is paused)."""
        if not self.ended:
            self._cancel.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.cancelled

    def pause(self) -> None:
        """Ask the job to hold at its next ``ctx.checkpoint()``."""
        if not self.ended:
            self._pause.pause()

    def resume(self) -> None:
        self._pause.resume()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the worker thread has ended (True) or ``msecs`` passed (False). The outcome
        signal is delivered on the event loop's next turn."""
        thread = self._thread
        return thread.wait(msecs) if thread is not None else True

    # ------------------------------------------------------------------ the thread's reports
    def elapsed(self) -> float | None:
        """Seconds the job has run (until it ended)."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.monotonic()) - self.started_at

    def _start(self) -> None:
        assert self._thread is not None
        self.started_at = time.monotonic()
        self._thread.start()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _on_event(self, name: str, data: dict) -> None:
        if name == "paused" and not self.ended:
            self._set_state("paused")
        elif name == "resumed" and not self.ended:
            self._set_state("running")
        self.event.emit(name, data)

    def _end(self, state: str) -> None:
        thread, self._thread = self._thread, None
        self.ended_at = time.monotonic()
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        self._pause.resume()
        self._set_state(state)  # the runner lets the next job in before the outcome is told

    def _on_done(self, result: object) -> None:
        self.result = result
        self._end("finished")
        self.finished.emit(result)

    @property
    def internal_error(self) -> bool:
        """Whether the job failed on a bug (a crash log was made), not on a user's error."""
        return bool(self.traceback)

    def _on_failed(self, message: str, details: str, crash_log: str) -> None:
        self.error, self.traceback, self.crash_log = message, details, crash_log
        if self._thread is not None:
            self.exception = self._thread.error
        if details:
            self.log.emit(details)
        self._end("failed")
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._end("cancelled")
        self.cancelled.emit()


class JobRunner(QObject):
    """Starts core jobs, each in its own worker thread, and decides which may run together."""

    started = Signal(object)  # the JobHandle of a job that just started
    jobs_changed = Signal()  # a job started or ended

    def __init__(self, parent: QObject | None = None, min_interval: float = 0.03):
        super().__init__(parent)
        self.min_interval = min_interval
        self._running: list[JobHandle] = []

    @property
    def jobs(self) -> list[JobHandle]:
        """The running jobs, oldest first."""
        return list(self._running)

    @property
    def busy(self) -> bool:
        """Whether any job runs."""
        return bool(self._running)

    def holder(self, lane: str | None = GPU) -> JobHandle | None:
        """The running job in ``lane`` (None for the lane-free jobs)."""
        if lane is None:
            return None
        return next((h for h in self._running if h.lane == lane), None)

    def can_start(self, lane: str | None = GPU) -> bool:
        return self.holder(lane) is None

    def start(
        self, job: Callable[[JobContext], Any], description: str = "", lane: str | None = GPU
    ) -> JobHandle | None:
        """Start ``job`` and return its handle; None (and nothing happens) while another job
        runs in the same lane."""
        if not self.can_start(lane):
            return None
        handle = JobHandle(job, description, lane, self.min_interval)
        handle.state_changed.connect(self._on_state)
        self._running.append(handle)
        handle._start()
        self.started.emit(handle)
        self.jobs_changed.emit()
        return handle

    def cancel_all(self) -> None:
        for handle in self._running:
            handle.cancel()

    def wait_all(self, msecs: int = 30000) -> bool:
        """Block until every worker thread has ended (at shutdown)."""
        deadline = time.monotonic() + msecs / 1000
        ok = True
        for handle in list(self._running):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            ok = handle.wait(left) and ok
        return ok

    def _on_state(self, state: str) -> None:
        handle = self.sender()
        if state in ENDED and handle in self._running:
            self._running.remove(handle)
            self.jobs_changed.emit()
