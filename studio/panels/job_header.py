"""The header of a panel that runs a job (Generate, Training): a status line, the progress bar with
the time left, the panel's Start button and Pause / Cancel for the job it follows.

The header follows one :class:`~studio.worker.JobHandle` at a time (:meth:`JobHeader.follow`):
the bar and the time left come from the handle's progress, Cancel and Pause go to the handle,
and the buttons follow the handle's state. What the status line says is the panel's business.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.jobs.progress import Eta, format_elapsed, format_seconds_left
from worldstudio.studio.worker import JobHandle

__all__ = ["Eta", "JobHeader", "format_elapsed", "format_seconds_left"]


class JobHeader(QWidget):
    """Status line, progress with the time left, and Start / Pause / Cancel.

    ``pausable``: show Pause (for jobs that hold at ``ctx.checkpoint()``)."""

    def __init__(
        self,
        start_text: str,
        start_tip: str,
        cancel_tip: str,
        pausable: bool = False,
        pause_tip: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.handle: JobHandle | None = None
        self.eta = Eta()
        self._left: tuple[float, float] | None = None  # (seconds left, monotonic time said)
        self.clock = QTimer(self)  # elapsed and time left tick every second while it runs
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self._show_times)
        self.status = QLabel("")
        self.status.setObjectName("mono")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.time_left = QLabel("")
        self.time_left.setObjectName("hint")
        self.start_button = QPushButton(start_text)
        self.start_button.setToolTip(start_tip)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip(pause_tip)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.pause_button.setVisible(pausable)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(cancel_tip)
        self.cancel_button.clicked.connect(self.cancel)

        progress = QHBoxLayout()
        progress.addWidget(self.bar, 1)
        progress.addWidget(self.time_left)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 2)
        buttons.addWidget(self.pause_button, 1)
        buttons.addWidget(self.cancel_button, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status)
        layout.addLayout(progress)
        layout.addLayout(buttons)
        self.set_can_start(True)

    @property
    def running(self) -> bool:
        """Whether the followed job is still running (or paused)."""
        return self.handle is not None and not self.handle.ended

    def follow(self, handle: JobHandle) -> None:
        """Show ``handle``'s job from now on."""
        self.handle = handle
        self.eta.reset()
        self._left = None
        self.bar.setRange(0, 0)  # busy until the first progress report
        self._show_times()
        self.clock.start()
        handle.progress.connect(self._on_progress)
        handle.state_changed.connect(self._on_state)
        self._update_buttons()

    def set_can_start(self, can: bool) -> None:
        """Whether Start may be pressed when the followed job is not running (the runner's lane
        is free)."""
        self._can_start = can
        self._update_buttons()

    def cancel(self) -> None:
        """Ask the job to stop; it says so until the job reaches its next step and ends."""
        if self.running:
            self.handle.cancel()
            self.status.setText("cancelling after the current step…")
            self._update_buttons()

    def toggle_pause(self) -> None:
        if not self.running:
            return
        if self.handle.pause_requested:
            self.handle.resume()
        else:
            self.handle.pause()
            self.status.setText("pausing after this step…")
        self._update_buttons()

    def show_outcome(self, text: str, complete: bool) -> None:
        """The job ended: a full bar when it completed, an empty one otherwise."""
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if complete else 0)
        self.clock.stop()
        self._left = None
        self._show_times()
        self.status.setText(text)

    def reset(self, text: str = "") -> None:
        """Back to how it started, saying ``text`` (when the job it follows has ended)."""
        if self.running:
            return
        self.handle = None
        self.clock.stop()
        self._left = None
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.time_left.setText("")
        self.status.setText(text)
        self._update_buttons()

    def _on_progress(self, done: int, total: int, _message: str) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        left = self.eta.update(done, total)
        self._left = None if left is None else (left, time.monotonic())
        self._show_times()

    def _show_times(self) -> None:
        """How long the job has run (its total once ended) and, while it runs, the time left."""
        if self.handle is None:
            self.time_left.setText("")
            return
        parts = [format_elapsed(self.handle.elapsed())]
        if self._left is not None and self.running:
            seconds, said = self._left
            parts.append(format_seconds_left(max(0.0, seconds - (time.monotonic() - said))))
        self.time_left.setText(" · ".join(p for p in parts if p))

    def _on_state(self, state: str) -> None:
        if state == "paused":  # the time left starts again from the rate after the pause
            self.eta.reset()
            self._left = None
            self._show_times()
        if self.handle is not None and self.handle.ended:
            self.clock.stop()
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.running
        self.start_button.setEnabled(self._can_start and not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running and not self.handle.cancel_requested)
        paused = running and self.handle.pause_requested
        self.pause_button.setText("Resume" if paused else "Pause")
