"""Entities and monitors: lists with add / rename / remove, and a picker that defines an entity by
clicking on the source image (its 3D anchor comes from the depth map)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.project import Pose, Project
from studio import commands
from studio.document import ProjectDocument, Selection

ViewProvider = Callable[[], "tuple[np.ndarray, float] | None"]


def anchor_from_depth(project: Project, folder: Path, u: float, v: float):
    """The 3D point seen at source pixel (u, v) (pixels of the source image), or None where the
    depth is unknown. The source camera sits at the identity pose (docs/CONVENTIONS.md)."""
    if project.intrinsics is None or project.scene is None or not project.scene.depth_file:
        return None
    path = folder / project.scene.depth_file
    if not path.is_file():
        return None
    depth = np.load(path, allow_pickle=False)
    K = np.array(project.intrinsics.K, dtype=np.float64)
    H, W = project.intrinsics.height, project.intrinsics.width
    src_h = project.source.height if project.source else H
    src_w = project.source.width if project.source else W
    # Pixel (u, v) of the source image -> pixel of the intrinsics' / depth's grid.
    uk, vk = u * W / src_w, v * H / src_h
    dh, dw = depth.shape[:2]
    iu, iv = int(uk * dw / W), int(vk * dh / H)
    if not (0 <= iu < dw and 0 <= iv < dh):
        return None
    z = float(depth[iv, iu])
    if not np.isfinite(z) or z <= 0:
        return None
    ray = np.linalg.solve(K, np.array([uk, vk, 1.0]))
    return tuple(float(c) for c in ray * z)


class _PickLabel(QLabel):
    picked = Signal(float, float)  # source-image pixel

    def __init__(self, pixmap: QPixmap):
        super().__init__()
        self.source = pixmap
        self.mark: QPoint | None = None
        self.setPixmap(pixmap)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFixedSize(pixmap.size())

    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        p = ev.position()
        self.mark = p.toPoint()
        self.update()
        self.picked.emit(p.x(), p.y())

    def paintEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(ev)
        if self.mark is not None:
            qp = QPainter(self)
            qp.setPen(QPen(QColor(255, 196, 64), 2))
            qp.drawEllipse(self.mark, 8, 8)
            qp.drawLine(self.mark.x() - 14, self.mark.y(), self.mark.x() + 14, self.mark.y())
            qp.drawLine(self.mark.x(), self.mark.y() - 14, self.mark.x(), self.mark.y() + 14)
            qp.end()


class SourcePickDialog(QDialog):
    """Name an entity and click where it is on the source image."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Add entity from the source image")
        self.doc = doc
        self.anchor = None
        p = doc.project
        src = doc.folder / p.source.file if (doc.folder and p.source) else None
        pm = QPixmap(str(src)) if src is not None and src.is_file() else QPixmap()
        self.scale = 1.0
        if not pm.isNull() and pm.width() > 900:
            self.scale = 900 / pm.width()
            pm = pm.scaledToWidth(900, Qt.TransformationMode.SmoothTransformation)
        layout = QVBoxLayout(self)
        self.name = QLineEdit()
        self.name.setPlaceholderText("name, e.g. ball, dog, person")
        layout.addWidget(QLabel("Name"))
        layout.addWidget(self.name)
        self.info = QLabel("Click on the entity in the image.")
        if pm.isNull():
            self.info.setText("This project has no source image: the entity gets no anchor.")
        else:
            self.image = _PickLabel(pm)
            self.image.picked.connect(self._picked)
            layout.addWidget(self.image)
        layout.addWidget(self.info)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _picked(self, x: float, y: float) -> None:
        u, v = x / self.scale, y / self.scale
        self.anchor = anchor_from_depth(self.doc.project, self.doc.folder, u, v)
        if self.anchor is None:
            self.info.setText(f"pixel ({u:.0f}, {v:.0f}): no depth there; the entity gets no anchor")
        else:
            self.info.setText(f"pixel ({u:.0f}, {v:.0f}) → anchor ({self.anchor[0]:.3f}, "
                              f"{self.anchor[1]:.3f}, {self.anchor[2]:.3f})")

    def _accept(self) -> None:
        if not self.name.text().strip():
            QMessageBox.warning(self, "Add entity", "Give the entity a name.")
            return
        self.accept()

    def create(self) -> str:
        """Add the entity (defined from the source camera, at the identity pose)."""
        p = self.doc.project
        fov = None
        if p.intrinsics is not None:
            from core.geometry.camera import fov_from_intrinsics

            fov = float(fov_from_intrinsics(np.array(p.intrinsics.K), p.intrinsics.height))
        return commands.add_entity(self.doc, self.name.text().strip(), self.anchor,
                                   defined_from=Pose(position=(0.0, 0.0, 0.0)), defined_fov=fov)


class EntitiesPanel(QWidget):
    def __init__(self, doc: ProjectDocument, current_view: ViewProvider, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.current_view = current_view
        self._filling = False

        self.entities = QListWidget()
        self.entities.itemChanged.connect(self._entity_renamed)
        self.entities.currentItemChanged.connect(self._entity_selected)
        add_e = QPushButton("Add…")
        add_e.setToolTip("Name an entity and click on it in the source image")
        add_e.clicked.connect(self.add_entity_dialog)
        rm_e = QPushButton("Remove")
        rm_e.clicked.connect(self._remove_entity)
        mon_e = QPushButton("Monitor it")
        mon_e.setToolTip("Add a monitor where the camera was when this entity was defined")
        mon_e.clicked.connect(self._monitor_entity)

        self.monitors = QListWidget()
        self.monitors.itemChanged.connect(self._monitor_item_changed)
        self.monitors.currentItemChanged.connect(self._monitor_selected)
        add_m = QPushButton("From view")
        add_m.setToolTip("Add a monitor at the current view's camera")
        add_m.clicked.connect(self.add_monitor_from_view)
        rm_m = QPushButton("Remove")
        rm_m.clicked.connect(self._remove_monitor)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(QLabel("Entities — things that move on their own"))
        layout.addWidget(self.entities, 1)
        row = QHBoxLayout()
        for b in (add_e, mon_e, rm_e):
            row.addWidget(b)
        layout.addLayout(row)
        layout.addWidget(QLabel("Monitors — stationary cameras that keep entities alive"))
        layout.addWidget(self.monitors, 1)
        row = QHBoxLayout()
        for b in (add_m, rm_m):
            row.addWidget(b)
        row.addStretch(1)
        layout.addLayout(row)
        doc.changed.connect(self._on_changed)
        doc.selection_changed.connect(self._on_selection)
        self.refill()

    def _on_changed(self, aspect: str) -> None:
        if aspect in ("entities", "monitors", "all"):
            self.refill()

    def refill(self) -> None:
        p = self.doc.project
        self._filling = True
        self.entities.clear()
        for e in p.entities:
            item = QListWidgetItem(e.name)
            item.setData(Qt.ItemDataRole.UserRole, e.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            anchor = "no anchor" if e.anchor is None else "anchor ({:.2f}, {:.2f}, {:.2f})".format(*e.anchor)
            item.setToolTip(f"{e.id} · {anchor}")
            self.entities.addItem(item)
        self.monitors.clear()
        for m in p.monitors:
            watched = ", ".join(p.entity(x).name for x in m.entity_ids) or "nothing"
            item = QListWidgetItem(f"{m.name}  —  watches {watched}")
            item.setData(Qt.ItemDataRole.UserRole, m.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if m.enabled else Qt.CheckState.Unchecked)
            item.setToolTip("checked: generates every round")
            self.monitors.addItem(item)
        self._filling = False
        self._on_selection(self.doc.selection)

    def _on_selection(self, sel) -> None:
        self._filling = True
        for lst, kind in ((self.entities, "entity"), (self.monitors, "monitor")):
            lst.setCurrentRow(-1)
            if sel is not None and sel.kind == kind:
                for i in range(lst.count()):
                    if lst.item(i).data(Qt.ItemDataRole.UserRole) == sel.id:
                        lst.setCurrentRow(i)
        self._filling = False

    # ------------------------------------------------------------------ entities
    def _entity_selected(self, item, _prev) -> None:
        if not self._filling and item is not None:
            self.doc.set_selection(Selection("entity", item.data(Qt.ItemDataRole.UserRole)))

    def _entity_renamed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        eid, name = item.data(Qt.ItemDataRole.UserRole), item.text().strip()
        if name and name != self.doc.project.entity(eid).name:
            commands.rename_entity(self.doc, eid, name)
        else:
            self.refill()

    def add_entity_dialog(self) -> None:
        dlg = SourcePickDialog(self.doc, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            eid = dlg.create()
            self.doc.set_selection(Selection("entity", eid))

    def _remove_entity(self) -> None:
        item = self.entities.currentItem()
        if item is not None:
            commands.remove_entity(self.doc, item.data(Qt.ItemDataRole.UserRole))

    def _monitor_entity(self) -> None:
        item = self.entities.currentItem()
        if item is not None:
            mid = commands.add_monitor_for_entity(self.doc, item.data(Qt.ItemDataRole.UserRole))
            self.doc.set_selection(Selection("monitor", mid))

    # ------------------------------------------------------------------ monitors
    def _monitor_selected(self, item, _prev) -> None:
        if not self._filling and item is not None:
            self.doc.set_selection(Selection("monitor", item.data(Qt.ItemDataRole.UserRole)))

    def _monitor_item_changed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        mid = item.data(Qt.ItemDataRole.UserRole)
        enabled = item.checkState() == Qt.CheckState.Checked
        if enabled != self.doc.project.monitor(mid).enabled:
            commands.set_monitor_enabled(self.doc, mid, enabled)

    def add_monitor_from_view(self) -> None:
        view = self.current_view()
        if view is None:
            QMessageBox.information(self, "Add monitor", "There is no camera to copy yet.")
            return
        c2w, fov = view
        mid = commands.add_monitor_from_c2w(self.doc, c2w, fov)
        self.doc.set_selection(Selection("monitor", mid))

    def _remove_monitor(self) -> None:
        item = self.monitors.currentItem()
        if item is not None:
            commands.remove_monitor(self.doc, item.data(Qt.ItemDataRole.UserRole))
