"""The timeline: a pyqtgraph plot of the project over output frames.

Rows, top to bottom: rounds (click to edit the scene text), the camera keyframes (drag to retime,
click to select), one row per entity with its prompt in each round (click to edit), one row per
monitor. A frame ruler runs along the top with the round boundaries; the playhead is a movable
line. Everything is redrawn from the document's ``changed`` events; every edit is a command.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPen
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection

BG = QColor(30, 33, 39)
ROW_COLORS = {
    "rounds": QColor(70, 96, 140),
    "camera": QColor(90, 90, 98),
    "entity": QColor(74, 120, 92),
    "monitor": QColor(132, 96, 60),
}
TEXT = QColor(225, 228, 235)
DIM_TEXT = QColor(140, 146, 158)
SELECTED = QColor(255, 196, 64)
PLAYHEAD = QColor(255, 120, 60)
KEYFRAME = QColor(120, 190, 255)
ROW_PAD = 0.12
HIT_PX = 8


class _InlineEditor(QLineEdit):
    """A one-line editor laid over a timeline block: Enter commits, Escape cancels."""

    committed = Signal(str)

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self._done = False
        self.editingFinished.connect(self._commit)
        self.setObjectName("timelineEditor")

    def _commit(self) -> None:
        if self._done:
            return
        self._done = True
        self.committed.emit(self.text())
        self.hide()
        self.deleteLater()

    def cancel(self) -> None:
        self._done = True
        self.hide()
        self.deleteLater()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
            return
        super().keyPressEvent(event)


class _ViewBox(pg.ViewBox):
    """Left-drag retimes a keyframe or scrubs the playhead; other buttons pan; wheel zooms x."""

    def __init__(self, timeline: TimelineWidget):
        super().__init__(enableMenu=False)
        self.timeline = timeline
        self._drag_kf: str | None = None
        self.setMouseEnabled(x=True, y=False)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.accept()
            p = self.mapToView(ev.pos())
            self.timeline._clicked(p.x(), p.y(), ev.button(), ev.screenPos())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        tl = self.timeline
        if ev.isStart():
            start = self.mapToView(ev.buttonDownPos())
            self._drag_kf = tl.keyframe_at(start.x(), start.y())
            if self._drag_kf is not None:
                tl.doc.set_selection(Selection("keyframe", self._drag_kf))
        x = self.mapToView(ev.pos()).x()
        if self._drag_kf is not None:
            tl.drag_keyframe(self._drag_kf, x)
        else:
            tl.doc.set_playhead(round(x))
        if ev.isFinish():
            if self._drag_kf is not None:
                tl.doc.seal()
            self._drag_kf = None


class _RulerAxis(pg.AxisItem):
    """Frame numbers on the ruler, integers only."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [str(int(round(v))) for v in values]


class _TrackAxis(pg.AxisItem):
    """Track names on the left."""

    def __init__(self) -> None:
        super().__init__("left")
        self.names: list[str] = []

    def tickValues(self, minVal, maxVal, size):  # noqa: N802,N803 - pyqtgraph's names
        return [(1.0, [i + 0.5 for i in range(len(self.names))])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        out = []
        for v in values:
            i = int(math.floor(v))
            out.append(self.names[i] if 0 <= i < len(self.names) else "")
        return out


class TimelineWidget(QWidget):
    """The timeline dock's widget."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.rows: list[tuple[str, str | None]] = []
        self.editor: _InlineEditor | None = None
        # The generation run shown on the Run row: (frames per round, rounds) it was made with.
        self.run_shape: tuple[int, int] | None = None
        self._labels: list[tuple[pg.TextItem, float, float, str]] = []
        self._items: list = []

        self.vb = _ViewBox(self)
        self.ruler = _RulerAxis("top")
        self.tracks = _TrackAxis()
        self.plot = pg.PlotWidget(
            viewBox=self.vb, axisItems={"top": self.ruler, "left": self.tracks}, background=BG
        )
        pi = self.plot.getPlotItem()
        pi.showAxis("top")
        pi.hideAxis("bottom")
        pi.hideButtons()
        pi.setMenuEnabled(False)
        self.tracks.setWidth(110)
        self.ruler.setHeight(26)
        for axis in (self.ruler, self.tracks):
            axis.setTextPen(pg.mkPen(TEXT))
            axis.setPen(pg.mkPen(DIM_TEXT))
        self.tracks.setStyle(tickLength=0)
        self.vb.invertY(True)
        self.plot.setMinimumHeight(120)

        self.playhead = pg.InfiniteLine(
            pos=0,
            angle=90,
            movable=True,
            pen=pg.mkPen(PLAYHEAD, width=2),
            hoverPen=pg.mkPen(PLAYHEAD.lighter(130), width=3),
        )
        self.playhead.setZValue(100)
        self.playhead.sigPositionChanged.connect(self._playhead_dragged)
        self.vb.addItem(self.playhead, ignoreBounds=True)

        self.keyframes = pg.ScatterPlotItem(symbol="d", size=14, pxMode=True)
        self.keyframes.setZValue(50)

        # Header: position readout and a fit button.
        self.readout = QLabel()
        self.readout.setObjectName("timelineReadout")
        fit = QToolButton()
        fit.setText("Fit")
        fit.setToolTip("Show the whole timeline")
        fit.clicked.connect(self.fit)
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 0)
        header.addWidget(self.readout, 1)
        header.addWidget(fit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.plot, 1)

        self.vb.sigXRangeChanged.connect(lambda *_: self._relabel())
        self.vb.sigResized.connect(lambda *_: self._relabel())
        doc.changed.connect(self._on_changed)
        doc.selection_changed.connect(lambda _sel: self._draw_keyframes())
        doc.playhead_changed.connect(self._on_playhead)
        self.rebuild()
        self.fit()

    # ------------------------------------------------------------------ document -> view
    def _on_changed(self, aspect: str) -> None:
        self.rebuild()
        if aspect == "all":
            self.fit()

    def _on_playhead(self, frame: int) -> None:
        if round(self.playhead.value()) != frame:
            self.playhead.blockSignals(True)
            self.playhead.setValue(frame)
            self.playhead.blockSignals(False)
        self._update_readout()

    def _playhead_dragged(self) -> None:
        self.doc.set_playhead(round(self.playhead.value()))
        if round(self.playhead.value()) != self.doc.playhead:
            self._on_playhead(self.doc.playhead)

    def set_run_shape(self, frames_per_round: int, rounds: int) -> None:
        """The run on the Run row was made with ``rounds`` rounds of ``frames_per_round`` frames
        (0 rounds: no run). The timeline then covers the run's frames too, and when they differ
        from the project's the readout says which round of the run the playhead is in."""
        shape = (int(frames_per_round), int(rounds)) if rounds > 0 else None
        if shape == self.run_shape:
            return
        self.run_shape = shape
        self.rebuild()

    def run_frames(self) -> int:
        return 0 if self.run_shape is None else self.run_shape[0] * self.run_shape[1]

    def run_differs(self) -> bool:
        """Whether the shown run's rounds are not the project's (other frames per round or
        another number of rounds)."""
        p = self.doc.project
        shape = (p.generation.frames_per_round, len(p.rounds))
        return self.run_shape is not None and self.run_shape != shape

    def extent(self) -> int:
        """Frames the timeline covers: the project's, or the shown run's when it is longer."""
        return max(self.doc.frame_count(), self.run_frames())

    def fit(self) -> None:
        n = max(self.extent(), 2)
        pad = max(n * 0.01, 1.0)
        self.vb.setXRange(-pad, n - 1 + pad, padding=0)
        self.vb.setYRange(0, max(len(self.rows), 1), padding=0.0)

    def _update_readout(self) -> None:
        p = self.doc.project
        f = self.doc.playhead
        fps = p.camera_path.settings.fps
        r = self.doc.round_of_frame(f)
        n_path = self.doc.path_frames()
        extra = "" if f < n_path or n_path == 0 else "  (past the path's end: camera held)"
        run = ""
        if self.run_differs():
            F, n = self.run_shape  # type: ignore[misc]
            where = f"round {f // F + 1} of {n}" if f < F * n else "after its end"
            run = f"   ·   run: {where} ({n} × {F} frames)"
        self.readout.setText(
            f"frame {f} / {self.doc.frame_count() - 1}   ·   {f / fps:.2f} s   ·   round {r + 1} "
            f"of {len(p.rounds)}{run}{extra}"
        )

    def rebuild(self) -> None:
        """Redraw every track from the model (a few dozen items at most)."""
        for item in self._items:
            self.vb.removeItem(item)
        self._items.clear()
        self._labels.clear()
        if self.keyframes.scene() is not None:
            self.vb.removeItem(self.keyframes)
        p = self.doc.project
        F = p.generation.frames_per_round
        n_rounds = len(p.rounds)
        total = self.doc.frame_count()
        span = self.extent()

        self.rows = [("rounds", None), ("camera", None)]
        self.rows += [("entity", e.id) for e in p.entities]
        self.rows += [("monitor", m.id) for m in p.monitors]
        names = ["Rounds", "Camera"] + [e.name for e in p.entities] + [m.name for m in p.monitors]
        self.tracks.names = [n if len(n) <= 14 else n[:13] + "…" for n in names]
        self.tracks.picture = None
        self.tracks.update()
        self.vb.setLimits(
            xMin=-F,
            xMax=span + F,
            yMin=0,
            yMax=len(self.rows),
            minYRange=len(self.rows),
            maxYRange=len(self.rows),
        )
        self.vb.setYRange(0, len(self.rows), padding=0.0)

        # Alternating row shading.
        for i in range(len(self.rows)):
            if i % 2:
                self._rect(-10 * F, i, 30 * F + span, 1, QColor(255, 255, 255, 8), None, z=-20)

        for r, rnd in enumerate(p.rounds):
            sel = self.doc.selection == Selection("round", str(r))
            text = rnd.scene_text or "(click to describe the scene)"
            self._block(
                r * F,
                0,
                F,
                ROW_COLORS["rounds"],
                f"R{r + 1}  {text}",
                selected=sel,
                dim=not rnd.scene_text,
            )
        # Camera row: the baked path's extent; keyframes on top.
        n_path = self.doc.path_frames()
        if n_path:
            self._rect(0, 1 + 0.42, max(n_path - 1, 0.5), 0.16, ROW_COLORS["camera"], None, z=-5)
        if 0 < n_path < total:
            # Past the path's end the camera holds its last pose: say so.
            held = QColor(ROW_COLORS["camera"])
            held.setAlpha(70)
            self._rect(n_path - 1, 1 + 0.45, total - n_path, 0.10, held, None, z=-5)
        for row, (kind, key) in enumerate(self.rows):
            if kind == "entity":
                e = p.entity(key)
                for r in range(n_rounds):
                    prompt = e.prompt(r)
                    self._block(
                        r * F,
                        row,
                        F,
                        ROW_COLORS["entity"],
                        prompt or "(click to add what it does)",
                        dim=not prompt,
                        selected=self.doc.selection == Selection("entity", e.id),
                    )
            elif kind == "monitor":
                m = p.monitor(key)
                watched = ", ".join(p.entity(x).name for x in m.entity_ids) or "nothing"
                color = ROW_COLORS["monitor"] if m.enabled else QColor(80, 80, 84)
                self._block(
                    0,
                    row,
                    total,
                    color,
                    f"{m.name}: watches {watched}" + ("" if m.enabled else "  (off)"),
                    selected=self.doc.selection == Selection("monitor", m.id),
                    dim=not m.enabled,
                )
        # Round boundaries across every row.
        for r in range(1, n_rounds):
            line = pg.InfiniteLine(
                pos=r * F,
                angle=90,
                pen=pg.mkPen(QColor(200, 205, 215, 110), width=1, style=Qt.PenStyle.DashLine),
            )
            line.setZValue(40)
            self.vb.addItem(line, ignoreBounds=True)
            self._items.append(line)
        self.vb.addItem(self.keyframes)
        self._draw_keyframes()
        self.playhead.setBounds((0, max(total - 1, 0)))
        self._on_playhead(self.doc.playhead)
        self._relabel()

    def _rect(self, x, y, w, h, fill: QColor, pen: QPen | None, z: float = 0):
        item = QGraphicsRectItem(QRectF(x, y, w, h))
        item.setBrush(QBrush(fill))
        item.setPen(pen if pen is not None else QPen(Qt.PenStyle.NoPen))
        item.setZValue(z)
        self.vb.addItem(item, ignoreBounds=True)
        self._items.append(item)
        return item

    def _block(
        self,
        x0: float,
        row: int,
        width: float,
        color: QColor,
        text: str,
        selected: bool = False,
        dim: bool = False,
    ) -> None:
        fill = QColor(color)
        fill.setAlpha(110 if dim else 200)
        pen = QPen(SELECTED if selected else color.lighter(140))
        pen.setCosmetic(True)
        pen.setWidthF(2.0 if selected else 1.0)
        if dim:
            pen.setStyle(Qt.PenStyle.DashLine)
        # Blocks leave a 1-frame gap so neighbours stay visibly separate.
        self._rect(x0 + 0.5, row + ROW_PAD, max(width - 1.0, 0.5), 1 - 2 * ROW_PAD, fill, pen)
        label = pg.TextItem(text="", color=DIM_TEXT if dim else TEXT, anchor=(0, 0.5))
        f = QFont()
        f.setPointSizeF(8.5)
        label.setFont(f)
        label.setPos(x0 + 0.5, row + 0.5)
        label.setZValue(30)
        self.vb.addItem(label, ignoreBounds=True)
        self._items.append(label)
        self._labels.append((label, x0, width, text))

    def _relabel(self) -> None:
        """Elide block labels to the blocks' current on-screen widths."""
        px = self.vb.viewPixelSize()[0] or 1.0
        for label, _x0, width, text in self._labels:
            avail = int(width / px) - 10
            fm = QFontMetrics(label.textItem.font())
            label.setText(
                fm.elidedText(text, Qt.TextElideMode.ElideRight, max(avail, 0))
                if avail > 12
                else ""
            )

    def _draw_keyframes(self) -> None:
        frames = self.doc.keyframe_frames()
        kfs = self.doc.project.camera_path.keyframes
        sel = self.doc.selection
        spots = []
        for kf, f in zip(kfs, frames, strict=False):
            chosen = sel is not None and sel.kind == "keyframe" and sel.id == kf.id
            spots.append(
                {
                    "pos": (f, 1.5),
                    "data": kf.id,
                    "brush": pg.mkBrush(SELECTED if chosen else KEYFRAME),
                    "pen": pg.mkPen(QColor(20, 20, 20), width=1),
                    "size": 16 if chosen else 13,
                }
            )
        self.keyframes.setData(spots)

    # ------------------------------------------------------------------ view -> document
    def row_at(self, y: float) -> tuple[str, str | None] | None:
        i = int(math.floor(y))
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def keyframe_at(self, x: float, y: float) -> str | None:
        """The keyframe under view point (x, y) within a few pixels, if any."""
        if self.row_at(y) != ("camera", None):
            return None
        px = self.vb.viewPixelSize()[0] or 1.0
        best, best_d = None, HIT_PX * px
        for kf, f in zip(
            self.doc.project.camera_path.keyframes, self.doc.keyframe_frames(), strict=False
        ):
            d = abs(f - x)
            if d <= best_d:
                best, best_d = kf.id, d
        return best

    def drag_keyframe(self, kf_id: str, x: float) -> None:
        """Retime a keyframe to frame ``x`` (one undo step per drag; the caller seals)."""
        kfs = self.doc.project.camera_path.keyframes
        if not kfs or kfs[0].id == kf_id:
            return  # the first keyframe is the path's start
        frame = max(round(x), 1)
        commands.retime_keyframe_to_frame(self.doc, kf_id, frame, merge_key=f"retime:{kf_id}")
        self.doc.set_playhead(frame)

    def _round_at(self, x: float) -> int | None:
        F = self.doc.project.generation.frames_per_round
        r = int(math.floor(x / F))
        return r if 0 <= r < len(self.doc.project.rounds) else None

    def _clicked(self, x: float, y: float, button, screen_pos) -> None:
        row = self.row_at(y)
        if button == Qt.MouseButton.RightButton:
            self._context_menu(x, row, screen_pos)
            return
        if row is None:
            self.doc.set_playhead(round(x))
            return
        kind, key = row
        r = self._round_at(x)
        if kind == "camera":
            kf = self.keyframe_at(x, y)
            if kf is not None:
                self.doc.set_selection(Selection("keyframe", kf))
                i = [k.id for k in self.doc.project.camera_path.keyframes].index(kf)
                self.doc.set_playhead(self.doc.keyframe_frames()[i])
            else:
                self.doc.set_playhead(round(x))
        elif kind == "rounds" and r is not None:
            self.doc.set_selection(Selection("round", str(r)))
            self.edit_scene_text(r)
        elif kind == "entity" and r is not None:
            self.doc.set_selection(Selection("entity", key))
            self.edit_prompt(key, r)
        elif kind == "monitor":
            self.doc.set_selection(Selection("monitor", key))
        else:
            self.doc.set_playhead(round(x))

    def _context_menu(self, x: float, row, screen_pos) -> None:
        menu = QMenu(self)
        r = self._round_at(x)
        if row == ("camera", None):
            kf = self.keyframe_at(x, 1.5)
            if kf is not None:
                menu.addAction("Delete keyframe", lambda: commands.delete_keyframe(self.doc, kf))
        if r is not None:
            menu.addAction(
                f"Insert round after round {r + 1}", lambda: commands.add_round(self.doc, r + 1)
            )
            if len(self.doc.project.rounds) > 1:
                menu.addAction(f"Remove round {r + 1}", lambda: commands.remove_round(self.doc, r))
        menu.addAction("Fit timeline", self.fit)
        menu.popup(QPoint(int(screen_pos.x()), int(screen_pos.y())))

    # ------------------------------------------------------------------ inline editing
    def block_rect(self, row: int, round_index: int | None) -> QRectF:
        """A block's rectangle in the plot widget's viewport coordinates."""
        F = self.doc.project.generation.frames_per_round
        if round_index is None:
            x0, x1 = 0.0, float(self.doc.frame_count())
        else:
            x0, x1 = round_index * F + 0.5, (round_index + 1) * F - 0.5
        tl = self.plot.mapFromScene(self.vb.mapViewToScene(QPointF(x0, row + ROW_PAD)))
        br = self.plot.mapFromScene(self.vb.mapViewToScene(QPointF(x1, row + 1 - ROW_PAD)))
        return QRectF(QPointF(tl), QPointF(br)).normalized()

    def row_index(self, kind: str, key: str | None = None) -> int:
        return self.rows.index((kind, key))

    def _open_editor(self, rect: QRectF, text: str, placeholder: str, on_commit) -> _InlineEditor:
        if self.editor is not None:
            try:
                self.editor.cancel()
            except RuntimeError:  # already deleted
                pass
        visible = QRectF(self.plot.viewport().rect())
        r = rect.intersected(visible) if rect.intersects(visible) else rect
        ed = _InlineEditor(self.plot.viewport())
        ed.setText(text)
        ed.setPlaceholderText(placeholder)
        h = max(int(r.height()), 22)
        ed.setGeometry(int(r.left()), int(r.center().y() - h / 2), max(int(r.width()), 220), h)
        ed.committed.connect(on_commit)
        ed.destroyed.connect(
            lambda *_: setattr(self, "editor", None) if self.editor is ed else None
        )
        ed.show()
        ed.setFocus(Qt.FocusReason.MouseFocusReason)
        ed.selectAll()
        self.editor = ed
        return ed

    def edit_scene_text(self, round_index: int) -> _InlineEditor:
        text = self.doc.project.rounds[round_index].scene_text

        def commit(new: str) -> None:
            if (
                round_index < len(self.doc.project.rounds)
                and new != self.doc.project.rounds[round_index].scene_text
            ):
                commands.set_scene_text(self.doc, round_index, new)

        return self._open_editor(
            self.block_rect(self.row_index("rounds"), round_index),
            text,
            f"round {round_index + 1}: what happens in the scene",
            commit,
        )

    def edit_prompt(self, entity_id: str, round_index: int) -> _InlineEditor:
        e = self.doc.project.entity(entity_id)

        def commit(new: str) -> None:
            try:
                current = self.doc.project.entity(entity_id).prompt(round_index)
            except KeyError:
                return
            if new != current and round_index < len(self.doc.project.rounds):
                commands.set_entity_prompt(self.doc, entity_id, round_index, new)

        return self._open_editor(
            self.block_rect(self.row_index("entity", entity_id), round_index),
            e.prompt(round_index),
            f"what {e.name} does in round {round_index + 1}",
            commit,
        )
