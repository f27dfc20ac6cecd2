"""The bridge between core jobs and Qt: run a job callable in a QThread, reports become signals.

A core job is ``fn(ctx: JobContext) -> result`` (core.jobs). :class:`JobRunner` runs one job at a
time in a worker thread. The job's reports arrive in the GUI thread as signals (Qt queues them
across threads): ``progress(done, total, message)``, ``preview(image, message)``, ``log(text)``,
then exactly one of ``finished(result)``, ``failed(message)`` or ``cancelled()``.

Progress and preview reports are coalesced (at most one per ``min_interval`` seconds, the last one
always delivered) so a chatty job cannot flood the event loop.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import CancelToken, JobContext, Report


class _JobThread(QThread):
    progress = Signal(int, int, str)
    preview = Signal(object, str)
    log = Signal(str)
    done = Signal(object)
    failed = Signal(str, str)  # message, traceback text ("" for errors a user caused)
    cancelled = Signal()

    def __init__(self, job: Callable[[JobContext], Any], cancel: CancelToken, min_interval: float):
        super().__init__()
        self.job = job
        self.cancel = cancel
        self.min_interval = min_interval
        self._last: dict[str, float] = {}
        self._pending: dict[str, Report] = {}
        self._lock = threading.Lock()

    def _sink(self, report: Report) -> None:
        if report.kind == "log":
            self.log.emit(report.message)
            return
        now = time.monotonic()
        final = report.kind == "progress" and report.total and report.done >= report.total
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
        for report in list(self._pending.values()):
            self._emit(report)
        self._pending.clear()

    def run(self) -> None:  # runs in the worker thread
        ctx = JobContext(self._sink, self.cancel)
        try:
            result = self.job(ctx)
        except Cancelled:
            self._pending.clear()
            self.cancelled.emit()
            return
        except WorldStudioError as exc:
            self._flush()
            self.failed.emit(str(exc), "")
            return
        except Exception as exc:  # noqa: BLE001 - a bug in a job must not kill the studio
            self._flush()
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
            return
        self._flush()
        if self.cancel.cancelled:
            self.cancelled.emit()
        else:
            self.done.emit(result)


class JobRunner(QObject):
    """Runs core jobs in a worker thread, one at a time, and re-emits their reports."""

    started = Signal(str)  # description
    progress = Signal(int, int, str)
    preview = Signal(object, str)
    log = Signal(str)
    finished = Signal(object)  # the job's return value
    failed = Signal(str)  # one line for the user
    cancelled = Signal()
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, min_interval: float = 0.03):
        super().__init__(parent)
        self.min_interval = min_interval
        self._thread: _JobThread | None = None
        self._cancel: CancelToken | None = None
        self.description = ""
        self.last_traceback = ""

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, job: Callable[[JobContext], Any], description: str = "") -> bool:
        """Start ``job``; False (and nothing happens) while another job runs."""
        if self._thread is not None:
            return False
        self.description = description
        self.last_traceback = ""
        self._cancel = CancelToken()
        thread = _JobThread(job, self._cancel, self.min_interval)
        thread.progress.connect(self.progress)
        thread.preview.connect(self.preview)
        thread.log.connect(self.log)
        thread.done.connect(self._on_done)
        thread.failed.connect(self._on_failed)
        thread.cancelled.connect(self._on_cancelled)
        self._thread = thread
        thread.start()
        self.started.emit(description)
        self.busy_changed.emit(True)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next check (no-op when idle)."""
        if self._cancel is not None:
            self._cancel.cancel()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the worker thread ends (used at shutdown)."""
        thread = self._thread
        return thread.wait(msecs) if thread is not None else True

    def _finish(self) -> None:
        thread, self._thread, self._cancel = self._thread, None, None
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        self.busy_changed.emit(False)

    def _on_done(self, result: object) -> None:
        self._finish()
        self.finished.emit(result)

    def _on_failed(self, message: str, tb: str) -> None:
        self.last_traceback = tb
        if tb:
            self.log.emit(tb)
        self._finish()
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._finish()
        self.cancelled.emit()
