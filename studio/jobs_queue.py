"""The studio's side of the job queue (:mod:`worldstudio.core.jobs.queue`): it runs the queue's
waiting jobs on the window's :class:`~studio.worker.JobRunner` whenever their lane is free.

Every queued job is a ``worldstudio`` command line (the Generate button queues
``generate PROJECT --profile ... --strict``), run in a worker thread by
:func:`worldstudio.core.cli.queue_cmds.tracked_job`, which writes its progress, run and outcome
to the queue file. The driver reads the file again every second (``changed`` tells the Jobs
panel), so jobs queued by ``worldstudio queue add`` show up, and a ``queue cancel`` from a
terminal reaches the job. The gpu lane of the queue runs on the runner's GPU lane (one at a
time with the studio's other GPU work), the light lane (previews, exports) beside it.

The studio's other jobs (a preview render, an export, a download, a play session) run on the runner
directly; the driver follows them too (:meth:`QueueDriver.live_jobs`) so the Jobs panel shows
every job that runs.

Jobs left waiting from an earlier session (or queued from a terminal) wait until the user
presses Run queue (:attr:`QueueDriver.auto` is off at start when the queue holds any); what the
studio queues itself runs as soon as its lane is free.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.jobs.progress import Eta
from worldstudio.core.jobs.queue import GPU_LANE, WAITING, JobQueue, QueueEntry
from worldstudio.studio.worker import GPU, JobHandle, JobRunner

LIGHT = "light"  # the runner's lane for the queue's light jobs
RUNNER_LANE = {GPU_LANE: GPU, "light": LIGHT}


class LiveJob:
    """A job the studio runs outside the queue (a preview render, an export, a model
    download): shown in the Jobs panel while it runs, with its progress and time left."""

    def __init__(self, handle: JobHandle):
        self.handle = handle
        self.done = 0
        self.total = 0
        self.message = ""
        self.eta = Eta()
        self.left: tuple[float, float] | None = None  # (seconds left, monotonic time said)
        handle.progress.connect(self._on_progress)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.done, self.total, self.message = done, total, message
        left = self.eta.update(done, total)
        self.left = None if left is None else (left, time.monotonic())

    def seconds_left(self) -> float | None:
        if self.left is None or self.handle.ended:
            return None
        seconds, said = self.left
        return max(0.0, seconds - (time.monotonic() - said))


class QueueDriver(QObject):
    """Starts the queue's jobs on ``runner``; ``changed()`` after any change (or every
    ``poll_ms``); ``entry_started(entry_id, handle)`` when this studio starts one."""

    changed = Signal()
    entry_started = Signal(str, object)
    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(
        self,
        runner: JobRunner,
        queue: JobQueue | None = None,
        poll_ms: int = 1000,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.runner = runner
        self.queue = queue or JobQueue()
        self.handles: dict[str, JobHandle] = {}  # entry id -> the handle of a job started here
        self.entries: list[QueueEntry] = []
        self.live: list[LiveJob] = []  # the studio's running jobs that are not queue entries
        try:
            waiting = any(e.state in WAITING for e in self.queue.entries())
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
            waiting = False
        # a queue left from before waits for Run queue; an empty one runs what is added
        self.auto = not waiting
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        runner.started.connect(self._on_started)
        runner.jobs_changed.connect(self.pump)
        self.refresh()

    def _on_started(self, handle: JobHandle) -> None:
        """A job of the runner: a queue entry's (known by its handle, added after this) or one
        the studio started itself, followed until it ends."""
        live = LiveJob(handle)
        self.live.append(live)
        handle.state_changed.connect(lambda _s, live=live: self._live_state(live))
        self.changed.emit()

    def _live_state(self, live: LiveJob) -> None:
        if live.handle.ended and live in self.live:
            self.live.remove(live)
            self.changed.emit()

    def live_jobs(self) -> list[LiveJob]:
        """The running jobs that are not queue entries, oldest first."""
        queued = set(map(id, self.handles.values()))
        return [j for j in self.live if id(j.handle) not in queued and not j.handle.ended]

    # ------------------------------------------------------------------ reading
    def refresh(self) -> None:
        """Read the file again, start what may start, tell the panel."""
        try:
            self.entries = self.queue.entries()
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
            return
        if self.auto:
            self._pump_once()
        self.changed.emit()

    def entry(self, entry_id: str) -> QueueEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    # ------------------------------------------------------------------ changes
    def submit(
        self, command: str, project, args: list[str], title: str = "", on_added=None
    ) -> QueueEntry:
        """Queue a command and start it at once when its lane is free (the queue runs from
        now on). ``on_added(entry)`` is called before it can start (to follow its start)."""
        entry = self.queue.add(command, project, args, title)
        if on_added is not None:
            on_added(entry)
        self.auto = True
        self.refresh()
        return entry

    def run_queue(self, run: bool = True) -> None:
        """Run queue (True) or hold it: running jobs go on, no new one starts."""
        self.auto = run
        self.refresh()

    def cancel(self, entry_id: str) -> None:
        handle = self.handles.get(entry_id)
        if handle is not None and not handle.ended:
            handle.cancel()  # at once, not at the next poll of the file
        self._change(self.queue.cancel, entry_id)

    def remove(self, entry_id: str) -> None:
        self._change(self.queue.remove, entry_id)

    def move(self, entry_id: str, to: int) -> None:
        self._change(self.queue.move, entry_id, to)

    def retry(self, entry_id: str) -> None:
        self._change(self.queue.retry, entry_id)

    def clear_ended(self) -> None:
        self._change(self.queue.clear_ended)

    def _change(self, fn, *args) -> None:
        try:
            fn(*args)
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
        self.refresh()

    # ------------------------------------------------------------------ running
    def pump(self) -> None:
        if self.auto:
            self._pump_once()
            self.changed.emit()

    def _pump_once(self) -> None:
        from worldstudio.core.cli.queue_cmds import tracked_job

        for lane, runner_lane in RUNNER_LANE.items():
            if not self.runner.can_start(runner_lane):
                continue
            try:
                entry = self.queue.claim((lane,))
            except WorldStudioError as exc:
                self.message.emit(str(exc), True)
                return
            if entry is None:
                continue
            try:
                job = tracked_job(self.queue, entry)
            except WorldStudioError as exc:  # a command that no longer parses: failed
                self.message.emit(f"{entry.title}: {exc}", True)
                continue
            handle = self.runner.start(job, entry.title, runner_lane)
            if handle is None:  # cannot happen after can_start; keep the entry waiting
                self.queue.finish(entry.id, "interrupted")
                continue
            self.handles[entry.id] = handle
            handle.state_changed.connect(lambda _s: self.refresh())
            self.entries = self.queue.entries()
            self.entry_started.emit(entry.id, handle)
