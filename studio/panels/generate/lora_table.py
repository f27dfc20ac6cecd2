"""The Generate panel's LoRA table: the adapters in the project's ``loras/`` folder, each with a
check box (apply it) and a strength. The choice is the table's own (not part of the project)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.panels.generate.settings_form import MODEL_FREE
from worldstudio.studio.widgets import float_spin, hint


class LoraTable(QGroupBox):
    """The adapters and which of them a run applies."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__("LoRAs (the project's loras/ folder)", parent)
        self.doc = doc
        self.adapters: list[dict] = []
        self._loras: dict[str, tuple[bool, float]] = {}  # adapter path -> (chosen, strength)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["LoRA", "Strength"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents
        )
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setMinimumHeight(60)
        self.table.setMaximumHeight(130)
        self.table.itemChanged.connect(self._lora_toggled)
        self.note = hint()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        doc.changed.connect(self._on_changed)
        self.refresh()

    def _on_changed(self, aspect: str) -> None:
        if aspect == "all":
            self.refresh()
        elif aspect == "generation":
            self._update_note()  # LoRAs apply to some backends only

    def showEvent(self, event) -> None:
        """LoRAs may have been trained meanwhile: look again."""
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Read the project's loras/ folder again (a training finished, a project opened)."""
        from worldstudio.core.training import list_adapters

        adapters = []
        if self.doc.folder is not None:
            from worldstudio.core.project import ProjectFolder

            adapters = list_adapters(ProjectFolder(self.doc.folder).loras_dir)
        self.adapters = adapters
        table = self.table
        table.blockSignals(True)
        table.setRowCount(0)
        for info in adapters:
            path = info["path"]
            chosen, strength = self._loras.get(path, (False, 1.0))
            row = table.rowCount()
            table.insertRow(row)
            item = QTableWidgetItem(info.get("name", Path(path).stem))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if chosen else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, path)
            bits = [
                f"base model: {info['base_model']}" if info.get("base_model") else "",
                f"rank {info['rank']}" if info.get("rank") else "",
                f"{info['steps']} steps" if info.get("steps") else "",
                f"final loss {info['final_loss']:.4f}"
                if isinstance(info.get("final_loss"), float)
                else "",
                path,
            ]
            item.setToolTip("\n".join(b for b in bits if b))
            table.setItem(row, 0, item)
            spin = float_spin(-2.0, 2.0, decimals=2, step=0.05, value=strength)
            spin.valueChanged.connect(lambda v, p=path: self._lora_strength(p, v))
            table.setCellWidget(row, 1, spin)
            self._loras.setdefault(path, (chosen, strength))
        table.blockSignals(False)
        self._update_note()

    def _lora_toggled(self, item: QTableWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path is None:
            return
        _chosen, strength = self._loras.get(path, (False, 1.0))
        self._loras[path] = (item.checkState() == Qt.CheckState.Checked, strength)
        self._update_note()

    def _lora_strength(self, path: str, value: float) -> None:
        chosen, _ = self._loras.get(path, (False, 1.0))
        self._loras[path] = (chosen, float(value))

    def set_lora(
        self, name_or_path: str, chosen: bool = True, strength: float | None = None
    ) -> None:
        """Choose (or drop) an adapter by name or path, as the table's check box and spin do."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            path = item.data(Qt.ItemDataRole.UserRole)
            if name_or_path in (path, item.text()):
                if strength is not None:
                    self.table.cellWidget(row, 1).setValue(strength)
                item.setCheckState(Qt.CheckState.Checked if chosen else Qt.CheckState.Unchecked)
                return
        raise KeyError(f"no LoRA {name_or_path!r} in the project's loras folder")

    def selected(self) -> list[tuple[str, float]]:
        """(path, strength) of the chosen adapters that are still in the folder."""
        present = {a["path"] for a in self.adapters}
        return [(p, s) for p, (chosen, s) in self._loras.items() if chosen and p in present]

    def _update_note(self) -> None:
        if not self.adapters:
            self.note.setText("No LoRAs yet: train one in the Training panel.")
        elif self.doc.project.generation.backend in MODEL_FREE:
            self.note.setText("LoRAs apply to the Wan backends only.")
        else:
            n = len(self.selected())
            self.note.setText(f"{n} chosen" if n else "Tick an adapter to apply it.")
