"""The Jobs dock: the job queue (generations, trainings, previews, exports) with each job's state,
progress, elapsed time and time left, and Run queue, Up / Down, Cancel, Remove, Retry and Clear
finished. It shows the queue file (:class:`~studio.jobs_queue.QueueDriver` reads it every
second), so jobs queued from a terminal (``worldstudio queue add``) are here too. Below the
queue, the studio's running jobs that are not queue entries (a preview render, an
export, a download), which Cancel stops."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.jobs.progress import format_elapsed, format_seconds_left
from worldstudio.core.jobs.queue import ENDED, WAITING, QueueEntry
from worldstudio.studio.jobs_queue import LiveJob, QueueDriver

COLUMNS = ("Job", "State", "Progress", "Elapsed", "Left")
LIVE = "live:"  # the row key of a job the studio runs outside the queue
STATE_TEXT = {
    "queued": "queued",
    "running": "running",
    "done": "done",
    "failed": "failed",
    "cancelled": "cancelled",
    "interrupted": "interrupted",
}
STATE_COLOUR = {
    "failed": "#ff8a7a",
    "cancelled": "#c8b46e",
    "interrupted": "#c8b46e",
    "done": "#8fd18f",
}


class JobsPanel(QWidget):
    """The queue as a table with its controls."""

    def __init__(self, driver: QueueDriver, parent: QWidget | None = None):
        super().__init__(parent)
        self.driver = driver
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("jobsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.run_button = QPushButton("Run queue")
        self.run_button.setCheckable(True)
        self.run_button.setToolTip(
            "Run queue: start the waiting jobs in order (the GPU runs one at a time; previews "
            "and exports run beside it). Hold queue: running jobs go on, no new one starts."
        )
        self.run_button.toggled.connect(driver.run_queue)
        self.up_button = QPushButton("Up")
        self.up_button.setToolTip("Run the chosen job earlier")
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button = QPushButton("Down")
        self.down_button.setToolTip("Run the chosen job later")
        self.down_button.clicked.connect(lambda: self._move(+1))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "A waiting job is cancelled; a running one stops after its current step (a "
            "generation keeps its finished rounds)"
        )
        self.cancel_button.clicked.connect(lambda: self._on_selected(driver.cancel))
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the chosen job out of the queue")
        self.remove_button.clicked.connect(lambda: self._on_selected(driver.remove))
        self.retry_button = QPushButton("Retry")
        self.retry_button.setToolTip(
            "Queue a failed or cancelled job again; a generation continues its run after its "
            "last finished round"
        )
        self.retry_button.clicked.connect(lambda: self._on_selected(driver.retry))
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove the done, failed and cancelled jobs")
        self.clear_button.clicked.connect(driver.clear_ended)
        self.note = QLabel("")
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)

        buttons = QHBoxLayout()
        for b in (
            self.run_button,
            self.up_button,
            self.down_button,
            self.cancel_button,
            self.remove_button,
            self.retry_button,
            self.clear_button,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        driver.changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ showing
    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def refresh(self) -> None:
        entries = self.driver.entries
        live = self.driver.live_jobs()
        chosen = self.selected_id()
        now = time.time()
        self.table.setRowCount(len(entries) + len(live))
        for row, e in enumerate(entries):
            self._fill_row(row, e, now)
        for row, job in enumerate(live, start=len(entries)):
            self._fill_live_row(row, job)
        if chosen is not None:
            for row, e in enumerate(entries):
                if e.id == chosen:
                    self.table.selectRow(row)
        self.run_button.blockSignals(True)
        self.run_button.setChecked(self.driver.auto)
        self.run_button.setText("Hold queue" if self.driver.auto else "Run queue")
        self.run_button.blockSignals(False)
        waiting = sum(e.state in WAITING for e in entries)
        if not entries:
            self.note.setText(
                "No jobs. Generate queues a run here; `worldstudio queue add PROJECT -- "
                "generate` queues one from a terminal."
            )
        elif waiting and not self.driver.auto:
            self.note.setText(f"{waiting} waiting: press Run queue to start them.")
        else:
            self.note.setText(f"queue file: {self.driver.queue.path}")
        self._update_buttons()

    def _fill_row(self, row: int, e: QueueEntry, now: float) -> None:
        def cell(col: int, text: str, tip: str = "") -> QTableWidgetItem:
            return self._cell(row, col, text, tip)

        name = cell(0, e.title, f"worldstudio {' '.join(e.argv)}")
        name.setData(Qt.ItemDataRole.UserRole, e.id)
        state = STATE_TEXT.get(e.state, e.state)
        if e.state == "running" and e.cancel:
            state = "cancelling"
        elif e.state == "interrupted" and e.run:
            state = "interrupted (continues its run)"
        tip = e.error if e.state == "failed" else e.message
        item = cell(1, state, tip)
        colour = STATE_COLOUR.get(e.state)
        item.setData(Qt.ItemDataRole.ForegroundRole, None if colour is None else QColor(colour))
        bar = self._bar(row)
        if e.state == "done":
            bar.setRange(0, 1)
            bar.setValue(1)
        else:
            bar.setRange(0, max(1, e.total))
            bar.setValue(min(e.done, max(1, e.total)))
        bar.setFormat("%p%" if e.total or e.state == "done" else "")
        bar.setToolTip(e.message)
        cell(3, format_elapsed(e.elapsed(now)))
        cell(4, format_seconds_left(e.eta_now(now)) if e.state == "running" else "")

    def _fill_live_row(self, row: int, job: LiveJob) -> None:
        """A running job the studio started outside the queue (a preview render, an
        export): Cancel works on it; it leaves the list when it ends."""
        h = job.handle
        name = self._cell(row, 0, h.description, "started by the studio, not queued")
        name.setData(Qt.ItemDataRole.UserRole, f"{LIVE}{id(h)}")
        state = "cancelling" if h.cancel_requested else h.state
        self._cell(row, 1, state, job.message).setData(Qt.ItemDataRole.ForegroundRole, None)
        bar = self._bar(row)
        bar.setRange(0, max(1, job.total))
        bar.setValue(min(job.done, max(1, job.total)))
        bar.setFormat("%p%" if job.total else "")
        bar.setToolTip(job.message)
        self._cell(row, 3, format_elapsed(h.elapsed()))
        self._cell(row, 4, format_seconds_left(job.seconds_left()))

    def _cell(self, row: int, col: int, text: str, tip: str = "") -> QTableWidgetItem:
        item = self.table.item(row, col)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(row, col, item)
        item.setText(text)
        item.setToolTip(tip)
        return item

    def _bar(self, row: int) -> QProgressBar:
        bar = self.table.cellWidget(row, 2)
        if not isinstance(bar, QProgressBar):
            bar = QProgressBar()
            bar.setTextVisible(True)
            self.table.setCellWidget(row, 2, bar)
        return bar

    def _live(self, key: str | None) -> LiveJob | None:
        if not key or not key.startswith(LIVE):
            return None
        return next((j for j in self.driver.live_jobs() if f"{LIVE}{id(j.handle)}" == key), None)

    def _update_buttons(self) -> None:
        live = self._live(self.selected_id())
        if live is not None:  # not a queue entry: only Cancel
            for b in (self.up_button, self.down_button, self.remove_button, self.retry_button):
                b.setEnabled(False)
            self.cancel_button.setEnabled(not live.handle.cancel_requested)
            self.clear_button.setEnabled(any(x.state in ENDED for x in self.driver.entries))
            return
        e = self.driver.entry(self.selected_id() or "")
        ids = [x.id for x in self.driver.entries]
        i = ids.index(e.id) if e is not None else -1
        self.up_button.setEnabled(e is not None and i > 0)
        self.down_button.setEnabled(e is not None and 0 <= i < len(ids) - 1)
        self.cancel_button.setEnabled(e is not None and e.state in (*WAITING, "running"))
        self.remove_button.setEnabled(e is not None and e.state != "running")
        self.retry_button.setEnabled(e is not None and e.state in ("failed", "cancelled"))
        self.clear_button.setEnabled(any(x.state in ENDED for x in self.driver.entries))

    # ------------------------------------------------------------------ actions
    def select(self, entry_id: str) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == entry_id:
                self.table.selectRow(row)
                return

    def _on_selected(self, fn) -> None:
        entry_id = self.selected_id()
        live = self._live(entry_id)
        if live is not None:
            if fn == self.driver.cancel:
                live.handle.cancel()
                self.refresh()
        elif entry_id is not None:
            fn(entry_id)

    def _move(self, step: int) -> None:
        entry_id = self.selected_id()
        if entry_id is None:
            return
        ids = [e.id for e in self.driver.entries]
        self.driver.move(entry_id, ids.index(entry_id) + step)
        self.select(entry_id)
