"""The job protocol: progress, previews, logs and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Report:
    """One thing a job tells its front end."""

    kind: Literal["progress", "preview", "log"]
    done: int = 0
    total: int = 0
    message: str = ""
    payload: Any = None  # a preview image (H, W, 3) uint8, or any job-specific object


class JobContext:
    """What a running job sees. ``sink`` receives every :class:`Report`."""

    def __init__(
        self,
        sink: Callable[[Report], None] | None = None,
        cancel: CancelToken | None = None,
    ):
        self._sink = sink or (lambda report: None)
        self.cancel_token = cancel or CancelToken()

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled

    def check_cancelled(self) -> None:
        if self.cancel_token.cancelled:
            raise Cancelled("cancelled")

    def progress(self, done: int, total: int, message: str = "") -> None:
        self._sink(Report("progress", done=done, total=total, message=message))

    def preview(self, image: Any, message: str = "") -> None:
        self._sink(Report("preview", message=message, payload=image))

    def log(self, message: str) -> None:
        self._sink(Report("log", message=message))


def run_in_terminal(
    job: Callable[[JobContext], T], description: str = "", quiet: bool = False, unit: str = "it"
) -> T:
    """Run ``job`` with a tqdm progress bar on stderr; Ctrl+C cancels it cleanly."""
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
