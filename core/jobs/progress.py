"""Elapsed time and time left from a job's progress reports, for every front end (the CLI's queue
listing, the studio's job headers and Jobs panel)."""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_ETA_SECONDS = 2.0  # say nothing about the time left before the job has run this long


class Eta:
    """The time left from progress reports: the rate since the current total was first seen
    (a job that changes phase, e.g. encoding then training, starts a new estimate)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self._total = -1
        self._t0 = 0.0
        self._done0 = 0

    def update(self, done: int, total: int) -> float | None:
        """Seconds left, or None while there is no telling."""
        now = self.clock()
        if total != self._total or done < self._done0:
            self._total, self._t0, self._done0 = total, now, done
            return None
        elapsed = now - self._t0
        if total <= 0 or done <= self._done0 or elapsed < MIN_ETA_SECONDS:
            return None
        rate = (done - self._done0) / elapsed
        return max(0.0, (total - done) / rate)


def format_seconds_left(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"~{max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min left"
    return f"~{seconds / 3600:.1f} h left"


def format_elapsed(seconds: float | None) -> str:
    """``"42 s"``, ``"3:07"`` or ``"1:02:09"``; "" for None."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
