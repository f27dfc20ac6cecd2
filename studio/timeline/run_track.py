"""A thin "Run" row under the timeline: the rounds of one generation run, as blocks.

A finished round (its round.json says complete) is a solid block; a round still to come is an
outline. Clicking a finished round asks for its observer.mp4 to be played (:attr:`round_clicked`).
The row's frames line up with the timeline's (it follows the timeline's visible frame range; both
plots have the same left axis width), so a round sits under the round it generated. A run keeps the
rounds it was made with: when the project's frames per round or number of rounds have changed
since, the row is named "Run ≠", its tooltip says both, and the timeline's readout gives the
run's round at the playhead beside the project's (:meth:`TimelineWidget.set_run_shape`). It
reads the run folder only (run.json, round.json); nothing here edits the project.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QVBoxLayout, QWidget

from worldstudio.studio.timeline.widget import BG, DIM_TEXT, ROW_PAD, TEXT, TimelineWidget

DONE = QColor(64, 150, 110)
TODO = QColor(120, 126, 138)
FAILED = QColor(200, 90, 80)


class _RunViewBox(pg.ViewBox):
    def __init__(self, track: RunTrack):
        super().__init__(enableMenu=False)
        self.track = track
        self.setMouseEnabled(x=False, y=False)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.track.click_frame(self.mapToView(ev.pos()).x())
        else:
            super().mouseClickEvent(ev)

    def wheelEvent(self, ev, axis=None) -> None:
        ev.ignore()


class _NameAxis(pg.AxisItem):
    def __init__(self) -> None:
        super().__init__("left")
        self.name = "Run"

    def tickValues(self, minVal, maxVal, size):  # noqa: N802,N803 - pyqtgraph's names
        return [(1.0, [0.5])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [self.name for _ in values]


class RunTrack(QWidget):
    """The rounds of one run (usually the latest) under the timeline."""

    round_clicked = Signal(str)  # path of the round's observer.mp4

    def __init__(self, timeline: TimelineWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.timeline = timeline
        self.run: Path | None = None
        self.frames_per_round = 0
        self.rounds_total = 0
        self.rounds_done = 0
        self.status = ""
        self._items: list = []
        self.vb = _RunViewBox(self)
        self.axis = _NameAxis()
        self.plot = pg.PlotWidget(viewBox=self.vb, axisItems={"left": self.axis}, background=BG)
        pi = self.plot.getPlotItem()
        pi.hideAxis("bottom")
        pi.hideButtons()
        pi.setMenuEnabled(False)
        self.axis.setWidth(
            getattr(timeline.tracks, "fixedWidth", None) or 110
        )  # as the track names
        self.axis.setTextPen(pg.mkPen(TEXT))
        self.axis.setPen(pg.mkPen(DIM_TEXT))
        self.axis.setStyle(tickLength=0)
        self.vb.invertY(True)
        self.vb.setYRange(0, 1, padding=0.0)
        # Follow the timeline's frames (one way: this row never pans or zooms on its own).
        timeline.vb.sigXRangeChanged.connect(self._follow)
        self.plot.setFixedHeight(30)
        self.plot.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plot.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.setToolTip("The rounds of the latest run: click a finished round to play it")
        self.vb.sigResized.connect(lambda *_: self._follow())
        timeline.doc.changed.connect(self._project_changed)
        self.show_run(None)
        self._follow()

    def _follow(self, _vb=None, x_range=None) -> None:
        lo, hi = x_range if x_range is not None else self.timeline.vb.viewRange()[0]
        self.vb.setXRange(lo, hi, padding=0.0)

    def show_run(self, run: str | Path | None) -> None:
        """Draw ``run``'s rounds (None: an empty row)."""
        from worldstudio.core.project.runs import RunError, RunFolder

        for item in self._items:
            self.vb.removeItem(item)
        self._items.clear()
        self.run = Path(run) if run is not None else None
        self.rounds_total = self.rounds_done = self.frames_per_round = 0
        self.status = ""
        if self.run is None:
            self.axis.name = "Run"
            self.axis.picture = None
            self.axis.update()
            self.timeline.set_run_shape(0, 0)
            self.setToolTip("The rounds of the latest run: click a finished round to play it")
            return
        rf = RunFolder(self.run)
        try:
            meta = rf.read_meta()
        except RunError:
            self.run = None
            self.timeline.set_run_shape(0, 0)
            return
        settings = meta.get("settings", {})
        self.frames_per_round = int(settings.get("frames_per_round") or 1)
        self.rounds_total = int(meta.get("rounds_total") or 0)
        self.rounds_done = rf.completed_rounds()
        self.status = str(meta.get("status", ""))
        self.timeline.set_run_shape(self.frames_per_round, self.rounds_total)
        differs = self.timeline.run_differs()
        # The run keeps the frames it was made with; when the project's rounds are no longer
        # those, the row's name and the timeline's readout say so.
        self.axis.name = "Run ≠" if differs else "Run"
        self.axis.picture = None
        self.axis.update()
        p = self.timeline.doc.project
        note = (
            f"\nmade with {self.rounds_total} rounds × {self.frames_per_round} frames; the "
            f"project now has {len(p.rounds)} × {p.generation.frames_per_round}"
            if differs
            else ""
        )
        self.setToolTip(
            f"run {rf.id} · {meta.get('backend', '?')} · {self.rounds_done}/{self.rounds_total} "
            f"rounds · {self.status}{note}\nclick a finished round to play it"
        )
        F = self.frames_per_round
        for r in range(self.rounds_total):
            done = r < self.rounds_done
            failed = not done and r == self.rounds_done and self.status in ("failed", "cancelled")
            color = DONE if done else (FAILED if failed else TODO)
            fill = QColor(color)
            fill.setAlpha(200 if done else 40)
            pen = QPen(color.lighter(130))
            pen.setCosmetic(True)
            if not done:
                pen.setStyle(Qt.PenStyle.DashLine)
            rect = QGraphicsRectItem(
                QRectF(r * F + 0.5, ROW_PAD, max(F - 1.0, 0.5), 1 - 2 * ROW_PAD)
            )
            rect.setBrush(QBrush(fill))
            rect.setPen(pen)
            self.vb.addItem(rect, ignoreBounds=True)
            self._items.append(rect)
            word = "" if done else (f" {self.status}" if failed else " to do")
            label = pg.TextItem(
                text=f"R{r + 1}{word}", color=TEXT if done else DIM_TEXT, anchor=(0, 0.5)
            )
            font = QFont()
            font.setPointSizeF(8.0)
            label.setFont(font)
            label.setPos(r * F + 0.5, 0.5)
            self.vb.addItem(label, ignoreBounds=True)
            self._items.append(label)

    def _project_changed(self, aspect: str) -> None:
        if self.run is not None and aspect in ("generation", "rounds", "all"):
            self.show_run(self.run)  # the row's name says whether the rounds still agree

    def round_at(self, x: float) -> int | None:
        if self.run is None or self.frames_per_round <= 0:
            return None
        r = int(math.floor(x / self.frames_per_round))
        return r if 0 <= r < self.rounds_total else None

    def round_video(self, r: int) -> Path | None:
        if self.run is None or r >= self.rounds_done:
            return None
        from worldstudio.core.project.runs import RunFolder

        path = RunFolder(self.run).observer_mp4(r)
        return path if path.is_file() else None

    def click_frame(self, x: float) -> None:
        r = self.round_at(x)
        video = self.round_video(r) if r is not None else None
        if video is not None:
            self.round_clicked.emit(str(video))
