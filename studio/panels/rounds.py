"""Rounds and prompts: one row per round, the scene text and every entity's prompt as columns."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection


class RoundsPanel(QWidget):
    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.table = QTableWidget()
        self.table.setWordWrap(True)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemChanged.connect(self._item_changed)
        self.table.currentCellChanged.connect(self._current_changed)
        add = QPushButton("Add round")
        add.clicked.connect(self._add)
        self.remove = QPushButton("Remove round")
        self.remove.clicked.connect(self._remove)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(self.remove)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._filling = False
        doc.changed.connect(self._on_changed)
        doc.selection_changed.connect(self._on_selection)
        self.refill()

    def _on_changed(self, aspect: str) -> None:
        if aspect in ("rounds", "entities", "generation", "all"):
            self.refill()

    def refill(self) -> None:
        p = self.doc.project
        F = p.generation.frames_per_round
        self._filling = True
        self.table.clear()
        self.table.setRowCount(len(p.rounds))
        self.table.setColumnCount(1 + len(p.entities))
        self.table.setHorizontalHeaderLabels(["Scene"] + [e.name for e in p.entities])
        self.table.setVerticalHeaderLabels(
            [f"R{r + 1}  {r * F}–{(r + 1) * F - 1}" for r in range(len(p.rounds))]
        )
        for r, rnd in enumerate(p.rounds):
            self.table.setItem(r, 0, QTableWidgetItem(rnd.scene_text))
            for c, e in enumerate(p.entities, start=1):
                self.table.setItem(r, c, QTableWidgetItem(e.prompt(r)))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.remove.setEnabled(len(p.rounds) > 1)
        self._filling = False
        self._on_selection(self.doc.selection)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        r, c = item.row(), item.column()
        p = self.doc.project
        text = item.text()
        if c == 0:
            if text != p.rounds[r].scene_text:
                commands.set_scene_text(self.doc, r, text)
        else:
            e = p.entities[c - 1]
            if text != e.prompt(r):
                commands.set_entity_prompt(self.doc, e.id, r, text)

    def _current_changed(self, row: int, _col: int, _prev_row: int, _prev_col: int) -> None:
        if self._filling or row < 0:
            return
        self.doc.set_selection(Selection("round", str(row)))
        F = self.doc.project.generation.frames_per_round
        if self.doc.round_of_frame(self.doc.playhead) != row:
            self.doc.set_playhead(row * F)

    def _on_selection(self, sel) -> None:
        if sel is not None and sel.kind == "round" and int(sel.id) != self.table.currentRow():
            self._filling = True
            self.table.selectRow(int(sel.id))
            self._filling = False

    def _add(self) -> None:
        row = self.table.currentRow()
        at = commands.add_round(self.doc, None if row < 0 else row + 1)
        self.doc.set_selection(Selection("round", str(at)))

    def _remove(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            row = len(self.doc.project.rounds) - 1
        if len(self.doc.project.rounds) > 1:
            commands.remove_round(self.doc, row)

    def sizeHint(self):
        s = super().sizeHint()
        s.setWidth(360)
        return s
