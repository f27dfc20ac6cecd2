"""The job protocol: progress, previews, logs, typed events, pause and cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from worldstudio.core.errors import Cancelled

T = TypeVar("T")


class CancelToken:
    """Set from any thread; the job notices at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class PauseToken:
    """Set from any thread. A job calls :meth:`JobContext.checkpoint` between steps: while paused it
    blocks there (still noticing a cancel every ``poll`` seconds) and goes on after
    :meth:`resume`."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait(self, cancel: CancelToken | None = None, poll: float = 0.1) -> bool:
        """Block while paused; True if it had to wait. Returns early (still paused) when
        ``cancel`` is cancelled."""
        waited = False
        while not self._running.wait(poll):
            waited = True
            if cancel is not None and cancel.cancelled:
                break
        return waited


@dataclass(frozen=True)
class Report:
    """One thing a job tells its front end.

    ``event`` reports carry a name in ``message`` and their data in ``payload`` (a dict); the
    names a front end may rely on are listed in :data:`EVENTS`."""

    kind: Literal["progress", "preview", "log", "event"]
    done: int = 0
    total: int = 0
    message: str = ""
    payload: Any = None  # a preview image (H, W, 3) uint8, or an event's data
    data: dict[str, Any] = field(default_factory=dict)


EVENTS = {
    "run_started": "a generation run has its folder: run_id, run_dir, rounds_total, start_round",
    "round_finished": "a round is complete on disk: run_id, run_dir, round, rounds_total",
    "metrics": "training numbers: step, and any of loss, lr, epoch, eval_loss",
    "checkpoint": "a training checkpoint or the final adapter was written: step, path",
    "sample": "a training sample clip was written: step, path",
    "paused": "the job is holding between steps: step (when it has one)",
    "resumed": "the job goes on after a pause: step (when it has one)",
    "output": "a file the job wrote that a front end may open: path, what",
    "play_chunk": "a play session's chunk is ready: round, first_frame, frames (F, H, W, 3) uint8, "
    "steps (one action per frame), latency (seconds), fps (sustained, or None)",
}
"""The event names jobs emit, and what their data holds."""


class JobContext:
    """What a running job sees. ``sink`` receives every :class:`Report`."""

    def __init__(
        self,
        sink: Callable[[Report], None] | None = None,
        cancel: CancelToken | None = None,
        pause: PauseToken | None = None,
    ):
        self._sink = sink or (lambda report: None)
        self.cancel_token = cancel or CancelToken()
        self.pause_token = pause or PauseToken()

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled

    def check_cancelled(self) -> None:
        if self.cancel_token.cancelled:
            raise Cancelled("cancelled")

    def checkpoint(self, step: int | None = None) -> None:
        """Between two steps: hold here while paused (reporting ``paused`` / ``resumed``), then
        raise :class:`Cancelled` if the job was cancelled."""
        if self.pause_token.paused and not self.cancelled:
            data = {} if step is None else {"step": step}
            self.event("paused", **data)
            self.pause_token.wait(self.cancel_token)
            if not self.cancelled:
                self.event("resumed", **data)
        self.check_cancelled()

    def send(self, report: Report) -> None:
        """Pass on a report as it is (a context that wraps another forwards through this)."""
        self._sink(report)

    def progress(self, done: int, total: int, message: str = "") -> None:
        self._sink(Report("progress", done=done, total=total, message=message))

    def preview(self, image: Any, message: str = "") -> None:
        self._sink(Report("preview", message=message, payload=image))

    def log(self, message: str) -> None:
        self._sink(Report("log", message=message))

    def event(self, name: str, **data: Any) -> None:
        """A typed event (:data:`EVENTS`): the front end follows the job's state through these
        instead of polling files."""
        self._sink(Report("event", message=name, data=data))

    def child(self, sink: Callable[[Report], None]) -> JobContext:
        """A context for a sub-step that reports through ``sink`` and shares this job's cancel
        and pause tokens."""
        return JobContext(sink, cancel=self.cancel_token, pause=self.pause_token)


_host = threading.local()


@contextmanager
def hosted_by(ctx: JobContext) -> Iterator[list[Any]]:
    """Inside the block, :func:`run_in_terminal` in this thread runs its job with ``ctx`` instead
    of a progress bar: a CLI command run by the job queue reports to the queue's runner and
    honours its cancel. The block gets the list of what those jobs returned."""
    outer = getattr(_host, "ctx", None), getattr(_host, "results", None)
    _host.ctx, _host.results = ctx, []
    try:
        yield _host.results
    finally:
        _host.ctx, _host.results = outer


def run_in_terminal(
    job: Callable[[JobContext], T], description: str = "", quiet: bool = False, unit: str = "it"
) -> T:
    """Run ``job`` with a tqdm progress bar on stderr; Ctrl+C cancels it cleanly. Inside
    :func:`hosted_by`, with the host's context."""
    host = getattr(_host, "ctx", None)
    if host is not None:
        result = job(host)
        _host.results.append(result)
        return result
    from tqdm import tqdm

    bar: tqdm | None = None

    def sink(report: Report) -> None:
        nonlocal bar
        if quiet:
            return
        if report.kind == "progress":
            if bar is None or bar.total != report.total:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=report.total, desc=description or None, unit=unit, leave=True)
            bar.n = report.done
            if report.message:
                bar.set_postfix_str(report.message, refresh=False)
            bar.refresh()
        elif report.kind == "log":
            (tqdm.write if bar is not None else print)(report.message)

    ctx = JobContext(sink)
    try:
        return job(ctx)
    finally:
        if bar is not None:
            bar.close()
