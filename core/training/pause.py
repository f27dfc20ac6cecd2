"""Pausing a training run between steps (the studio's Pause button)."""

from __future__ import annotations

import threading


class PauseToken:
    """Set from any thread. The trainer calls :meth:`wait` between optimizer steps: while paused
    it blocks there (checking the job's cancel token every ``poll`` seconds, so Cancel still
    works while paused) and continues when :meth:`resume` is called."""

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

    def wait(self, cancel=None, poll: float = 0.1) -> bool:
        """Block while paused; returns True if it had to wait. Returns early (still paused) when
        ``cancel`` (a :class:`worldstudio.core.jobs.CancelToken`) is cancelled."""
        waited = False
        while not self._running.wait(poll):
            waited = True
            if cancel is not None and cancel.cancelled:
                break
        return waited
