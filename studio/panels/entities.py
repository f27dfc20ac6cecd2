"""Entities and monitors: lists with add / rename / remove, and a dialog that defines an entity
on the source image.

With a SAM 2.1 model on this machine (``worldstudio.core.models``: the catalogue's default segmentation
model first), the dialog makes a mask: left clicks mark the entity, right (or Ctrl+) clicks mark
what is not it, a drag draws a box. Each change runs :class:`worldstudio.core.reconstruct.segment.Sam2Segmenter`
in a worker thread (the image is encoded once, further prompts only run the small decoder) and
the mask is shown over the image. Accepting writes the mask (``scene/masks/<id>.png``) and adds
the entity, with the 3D anchor from the masked depth, as one undoable edit. Without SAM 2 a
click gives the entity its anchor from the depth under that pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
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

from worldstudio.core.errors import ProjectError, WorldStudioError
from worldstudio.core.project import Pose, ProjectFolder
from worldstudio.core.reconstruct.segment import anchor_from_depth, fit_mask
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.field_guard import guard_fields
from worldstudio.studio.worker import JobHandle, JobRunner

ViewProvider = Callable[[], "tuple[np.ndarray, float] | None"]

SAM_HINT = (
    "Masks need a SAM 2 model: run <code>worldstudio models download sam2.1-tiny</code> "
    "(or Models ▸ Manage models…). Without it the entity gets its anchor from the clicked pixel."
)
MASK_COLOR = (64, 170, 255, 120)
DRAG_PIXELS = 6  # a press that moves farther than this draws a box
LARGE_MASK_SHARE = 0.25  # a mask over more of the image than this is questioned before use


def source_pixel(project, point) -> tuple[float, float] | None:
    """Where the world ``point`` appears in the project's source image (its pixels, as the
    source-image dialog takes them), or None when it is behind the source camera or outside
    the image. The source camera sits at the identity pose with the project's intrinsics
    (docs/CONVENTIONS.md), which are tied to their own (height, width)."""
    from worldstudio.core.geometry.camera import project_points

    intr = project.intrinsics
    if intr is None:
        return None
    uv, _z = project_points(np.asarray(point, np.float64).reshape(1, 3), intr.K, np.eye(4))
    u, v = uv[0]
    if not (np.isfinite(u) and np.isfinite(v)):
        return None
    width, height = intr.width, intr.height
    if project.source is not None:
        width, height = project.source.width, project.source.height
    u *= width / intr.width
    v *= height / intr.height
    if not (0.0 <= u < width and 0.0 <= v < height):
        return None
    return float(u), float(v)


def mask_points(project, cloud, mask: np.ndarray) -> int:
    """About how many points of the scene cloud an entity with ``mask`` (on the source image)
    takes: the points that project into the mask from the source camera (the engine keeps the
    nearest one per pixel, so this is an upper bound)."""
    intr = project.intrinsics
    if intr is None or cloud is None or len(cloud.xyz) == 0:
        return 0
    m = fit_mask(mask, (intr.height, intr.width))
    K = np.asarray(intr.K, np.float64)
    xyz = np.asarray(cloud.xyz, np.float64)
    z = xyz[:, 2]
    front = z > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.floor(K[0, 0] * xyz[:, 0] / z + K[0, 2])
        v = np.floor(K[1, 1] * xyz[:, 1] / z + K[1, 2])
    inside = front & (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    return int(m[v[inside].astype(int), u[inside].astype(int)].sum())


def segmentation_model() -> str | None:
    """The name of a SAM 2 model on this machine (the catalogue's default first), or None.
    Never touches the network."""
    from worldstudio.core import models

    try:
        default = models.default_model("segmentation")
        order = [default] + [m for m in models.all_models("segmentation") if m is not default]
        for info in order:
            if models.model_status(info).present:
                return info.name
    except WorldStudioError:
        return None
    return None


class _PickLabel(QLabel):
    picked = Signal(float, float)  # source-image pixel

    def __init__(self, pixmap: QPixmap):
        super().__init__()
        self.source = pixmap
        self.mark: QPoint | None = None
        self.setPixmap(pixmap)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFixedSize(pixmap.size())

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        p = ev.position()
        self.mark = p.toPoint()
        self.update()
        self.picked.emit(p.x(), p.y())

    def paintEvent(self, ev) -> None:
        super().paintEvent(ev)
        if self.mark is not None:
            qp = QPainter(self)
            qp.setPen(QPen(QColor(255, 196, 64), 2))
            qp.drawEllipse(self.mark, 8, 8)
            qp.drawLine(self.mark.x() - 14, self.mark.y(), self.mark.x() + 14, self.mark.y())
            qp.drawLine(self.mark.x(), self.mark.y() - 14, self.mark.x(), self.mark.y() + 14)
            qp.end()


class PromptCanvas(QLabel):
    """The source image taking SAM prompts: left click = on the entity, right or Ctrl+click = not
    on it, drag = a box (replacing the previous one). Shows the prompts and the current mask.
    Coordinates in signals and state are source-image pixels (screen / ``scale``)."""

    prompts_changed = Signal()
    clicked = Signal(float, float, int)  # source pixel, label

    def __init__(self, pixmap: QPixmap, scale: float):
        super().__init__()
        self.scale = scale
        self.setPixmap(pixmap)
        self.setFixedSize(pixmap.size())
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.points: list[tuple[float, float, int]] = []
        self.box: tuple[float, float, float, float] | None = None
        self.overlay: QImage | None = None
        self._press: QPointF | None = None
        self._press_label = 1
        self._drag_box: tuple[float, float, float, float] | None = None

    # ------------------------------------------------------------------ state
    def prompts(
        self,
    ) -> tuple[list[tuple[float, float]], list[int], tuple[float, float, float, float] | None]:
        return [(x, y) for x, y, _l in self.points], [lab for _x, _y, lab in self.points], self.box

    def clear(self) -> None:
        self.points.clear()
        self.box = None
        self.set_mask(None)
        self.prompts_changed.emit()

    def undo_last(self) -> None:
        if self.points:
            self.points.pop()
        elif self.box is not None:
            self.box = None
        else:
            return
        self.update()
        self.prompts_changed.emit()

    def set_mask(self, mask: np.ndarray | None) -> None:
        if mask is None or not np.any(mask):
            self.overlay = None
        else:
            h, w = mask.shape
            rgba = np.zeros((h, w, 4), np.uint8)
            rgba[mask] = MASK_COLOR
            self.overlay = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self.update()

    def add_point(self, x: float, y: float, label: int = 1) -> None:
        self.points.append((float(x), float(y), int(label)))
        self.update()
        self.clicked.emit(float(x), float(y), int(label))
        self.prompts_changed.emit()

    def set_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        self.update()
        self.prompts_changed.emit()

    # ------------------------------------------------------------------ mouse
    def _src(self, p: QPointF) -> tuple[float, float]:
        w, h = self.width() / self.scale, self.height() / self.scale
        return (
            min(max(p.x() / self.scale, 0.0), w - 0.5),
            min(max(p.y() / self.scale, 0.0), h - 0.5),
        )

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        negative = ev.button() == Qt.MouseButton.RightButton or bool(
            ev.modifiers() & Qt.KeyboardModifier.ControlModifier
        )
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self._press = ev.position()
        self._press_label = 0 if negative else 1

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if self._press is None:
            return
        d = ev.position() - self._press
        if self._drag_box is not None or abs(d.x()) + abs(d.y()) > DRAG_PIXELS:
            x0, y0 = self._src(self._press)
            x1, y1 = self._src(ev.position())
            self._drag_box = (x0, y0, x1, y1)
            self.update()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if self._press is None:
            return
        press, self._press = self._press, None
        box, self._drag_box = self._drag_box, None
        if box is not None:
            if abs(box[2] - box[0]) >= 2 and abs(box[3] - box[1]) >= 2:
                self.set_box(*box)
            else:
                self.update()
            return
        self.add_point(*self._src(press), self._press_label)

    # ------------------------------------------------------------------ paint
    def paintEvent(self, ev) -> None:
        super().paintEvent(ev)
        qp = QPainter(self)
        qp.setRenderHint(QPainter.RenderHint.Antialiasing)
        s = self.scale
        if self.overlay is not None:
            qp.drawImage(QRectF(0, 0, self.width(), self.height()), self.overlay)
        for box, style in (
            (self.box, Qt.PenStyle.SolidLine),
            (self._drag_box, Qt.PenStyle.DashLine),
        ):
            if box is not None:
                qp.setPen(QPen(QColor(255, 196, 64), 2, style))
                qp.setBrush(Qt.BrushStyle.NoBrush)
                x0, y0, x1, y1 = box
                qp.drawRect(
                    QRectF(min(x0, x1) * s, min(y0, y1) * s, abs(x1 - x0) * s, abs(y1 - y0) * s)
                )
        for x, y, label in self.points:
            c = QPointF(x * s, y * s)
            color = QColor(80, 220, 120) if label else QColor(255, 90, 90)
            qp.setPen(QPen(QColor(0, 0, 0), 3))
            qp.setBrush(color)
            qp.drawEllipse(c, 7, 7)
            qp.setPen(QPen(QColor(255, 255, 255), 2))
            qp.drawLine(QPointF(c.x() - 4, c.y()), QPointF(c.x() + 4, c.y()))
            if label:
                qp.drawLine(QPointF(c.x(), c.y() - 4), QPointF(c.x(), c.y() + 4))
        qp.end()


class SourcePickDialog(QDialog):
    """Name an entity and show where it is on the source image: a SAM 2 mask from clicks and
    boxes when a SAM 2 model is here (``use_masks``: None = when available), else one click
    for its anchor."""

    def __init__(
        self,
        doc: ProjectDocument,
        runner: JobRunner,
        parent: QWidget | None = None,
        use_masks: bool | None = None,
        at_pixel: tuple[float, float] | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Add entity from the source image")
        # The question asked about a mask over much of the image; tests replace it.
        self.ask_large_mask = self._ask_large_mask
        self.doc = doc
        self.runner = runner
        self.anchor = None
        self.mask: np.ndarray | None = None  # (H, W) bool on the source image
        self.mask_score: float | None = None
        self.entity = None  # the Entity made from the mask (its file written), before the edit
        self._segmenter = None
        self._pending = False
        self.job: JobHandle | None = None  # the latest segmentation
        p = doc.project
        src = self._project_file(p.source.file) if p.source else None
        pm = QPixmap(str(src)) if src is not None and src.is_file() else QPixmap()
        has_depth = p.intrinsics is not None and p.scene is not None and bool(p.scene.depth_file)
        available = (
            segmentation_model()
            if (not pm.isNull() and has_depth and use_masks is not False)
            else None
        )
        self.sam_model: str | None = available
        self.scale = 1.0
        if not pm.isNull():
            if pm.width() > 900:
                self.scale = 900 / pm.width()
            elif self.sam_model is not None and pm.width() < 560:
                self.scale = 560 / pm.width()  # small images: bigger targets to click
            if self.scale != 1.0:
                pm = pm.scaledToWidth(
                    round(pm.width() * self.scale), Qt.TransformationMode.SmoothTransformation
                )
        layout = QVBoxLayout(self)
        self.name = QLineEdit()
        self.name.setPlaceholderText("name, e.g. ball, dog, person")
        layout.addWidget(QLabel("Name"))
        layout.addWidget(self.name)
        self.info = QLabel("Click on the entity in the image.")
        self.info.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("segmentStatus")
        self.mask_check: QCheckBox | None = None
        if pm.isNull():
            self.info.setText("This project has no source image: the entity gets no anchor.")
        elif self.sam_model is not None:
            self._source_rgb = _read_rgb(src)
            self.image = PromptCanvas(pm, self.scale)
            self.image.prompts_changed.connect(self._segment)
            self.image.clicked.connect(self._clicked)
            self.info.setText(
                f"<b>Mask with {self.sam_model}</b>: left-click on the entity, right-click "
                "(or Ctrl+click) on what is not it, or drag a box around it."
            )
            layout.addWidget(self.image, 0, Qt.AlignmentFlag.AlignHCenter)
            row = QHBoxLayout()
            self.mask_check = QCheckBox("Save the mask with the entity")
            self.mask_check.setChecked(True)
            self.mask_check.setToolTip(
                "Unchecked: only the anchor is kept (from the mask, else the first click)"
            )
            undo = QPushButton("Undo last prompt")
            undo.clicked.connect(self.image.undo_last)
            clear = QPushButton("Clear")
            clear.clicked.connect(self.image.clear)
            row.addWidget(self.mask_check)
            row.addStretch(1)
            row.addWidget(undo)
            row.addWidget(clear)
            layout.addLayout(row)
        else:
            self.image = _PickLabel(pm)
            self.image.picked.connect(self._picked)
            layout.addWidget(self.image)
            if has_depth:
                self.status.setText(SAM_HINT)
                self.status.setObjectName("hint")
                self.status.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.info)
        layout.addWidget(self.status)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        guard_fields(self)
        if at_pixel is not None and not pm.isNull():
            self.prompt_at(*at_pixel)

    def prompt_at(self, u: float, v: float) -> None:
        """A click on the entity at source-image pixel (u, v), as if made in the dialog (the
        3D view's click lands here): SAM 2 masks from it, or it gives the anchor."""
        if isinstance(self.image, PromptCanvas):
            self.image.add_point(u, v, 1)
        else:
            self.image.mark = QPoint(round(u * self.scale), round(v * self.scale))
            self.image.update()
            self._picked(u * self.scale, v * self.scale)
        self.info.setText(self.info.text() + " The point you clicked in the 3D view is marked.")

    @property
    def uses_masks(self) -> bool:
        return self.sam_model is not None

    # ------------------------------------------------------------------ click for an anchor
    def _picked(self, x: float, y: float) -> None:
        u, v = x / self.scale, y / self.scale
        self.anchor = anchor_from_depth(self.doc.folder, self.doc.project, u, v)
        if self.anchor is None:
            self.info.setText(
                f"pixel ({u:.0f}, {v:.0f}): no depth there; the entity gets no anchor"
            )
        else:
            self.info.setText(
                f"pixel ({u:.0f}, {v:.0f}) → anchor ({self.anchor[0]:.3f}, "
                f"{self.anchor[1]:.3f}, {self.anchor[2]:.3f})"
            )

    def _clicked(self, u: float, v: float, label: int) -> None:
        """The first positive click gives an anchor at once (the mask's replaces it)."""
        if label and self.mask is None and not any(lab for _x, _y, lab in self.image.points[:-1]):
            self.anchor = anchor_from_depth(self.doc.folder, self.doc.project, u, v)

    # ------------------------------------------------------------------ SAM 2 in the worker
    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.ended

    def _segment(self) -> None:
        """Run SAM 2 on the current prompts (queued while a run is under way)."""
        if self.busy:
            self._pending = True
            return
        points, labels, box = self.image.prompts()
        self.entity = None
        if not points and box is None:
            self.mask = None
            self.image.set_mask(None)
            self.status.setText("")
            return
        segmenter, model, rgb = self._segmenter, self.sam_model, self._source_rgb

        def job(ctx):
            from worldstudio.core.reconstruct.segment import Sam2Segmenter

            seg = segmenter
            if seg is None:
                ctx.progress(0, 3, "loading SAM 2")
                seg = Sam2Segmenter(model, ctx)
                ctx.check_cancelled()
                ctx.progress(1, 3, "encoding the image")
                seg.set_image(rgb)
                ctx.check_cancelled()
            ctx.progress(2, 3, "decoding the mask")
            return seg, seg.predict(points or None, labels or None, box)

        self.status.setStyleSheet("")
        self.status.setText(
            "segmenting…" if segmenter is not None else f"loading {model} and segmenting…"
        )
        # A small model on one image: it runs beside whatever else runs (no lane).
        self.job = self.runner.start(job, "Segment", lane=None)
        assert self.job is not None  # a job without a lane always starts
        self.job.finished.connect(self._segmented)
        self.job.failed.connect(self._segment_failed)
        self.job.cancelled.connect(lambda: self.status.setText("segmentation cancelled"))

    def _segmented(self, result) -> None:
        seg, res = result
        self._segmenter = seg
        if self._pending:  # the prompts changed meanwhile: this mask is stale
            self._pending = False
            self._segment()
            return
        self.mask, self.mask_score = res.mask, res.score
        self.image.set_mask(res.mask)
        n = int(res.mask.sum())
        if n == 0:
            self.status.setText(
                "SAM 2 found no mask for these prompts: click elsewhere, add points "
                "or drag a box around the entity."
            )
            return
        anchor = self._mask_anchor(res.mask)
        if anchor is not None:
            self.anchor = anchor
        where = (
            "no depth under the mask"
            if anchor is None
            else "anchor ({:.3f}, {:.3f}, {:.3f})".format(*anchor)
        )
        self.status.setText(f"mask: {n} pixels (score {res.score:.2f}) · {where}")

    def _segment_failed(self, message: str) -> None:
        self._pending = False
        self.status.setStyleSheet("color: #ff8a7a;")
        self.status.setText(message)

    def _mask_anchor(self, mask: np.ndarray):
        from worldstudio.core.reconstruct.segment import mask_anchor

        p = self.doc.project
        try:
            depth = np.load(self._inside(p.scene.depth_file), allow_pickle=False)
            return mask_anchor(fit_mask(mask, depth.shape), depth, np.array(p.intrinsics.K))
        except (OSError, ValueError, WorldStudioError):
            return None

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the running segmentation has finished and its result is shown (tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        timer = QElapsedTimer()
        timer.start()
        while (self.busy or self._pending) and timer.elapsed() < msecs:
            QCoreApplication.processEvents()
            if self.busy:
                self.job.wait(20)
        QCoreApplication.processEvents()
        return not self.busy

    # ------------------------------------------------------------------ accept
    def _accept(self) -> None:
        if not self.name.text().strip():
            QMessageBox.warning(self, "Add entity", "Give the entity a name.")
            return
        if self.busy:
            self.status.setText("Still segmenting: wait for the mask, then press OK again.")
            return
        if self._wants_mask():
            share = float(self.mask.mean())
            if share > LARGE_MASK_SHARE and not self.ask_large_mask(self.large_mask_text()):
                return
            try:
                self._make_entity()
            except WorldStudioError as exc:
                QMessageBox.warning(self, "Add entity", str(exc))
                return
        self.accept()

    def large_mask_text(self) -> str:
        """What is said about the current mask when it covers much of the image."""
        assert self.mask is not None
        n = int(self.mask.sum())
        points = mask_points(self.doc.project, self.doc.cloud, self.mask)
        total = 0 if self.doc.cloud is None else len(self.doc.cloud.xyz)
        return (
            f"The mask covers {100.0 * self.mask.mean():.0f}% of the image ({n:,} pixels): "
            f"the entity would take about {points:,} of the scene's {total:,} points, moved and "
            "regenerated in every round (big rounds on disk, slow generation). A mask this "
            "large usually means SAM 2 took the background: add a click on what is not the "
            "entity, or drag a box around it.\n\nUse this mask anyway?"
        )

    def _ask_large_mask(self, text: str) -> bool:
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "A large mask",
            text,
            QMessageBox.StandardButton.NoButton,
            self,
        )
        use = box.addButton("Use it", QMessageBox.ButtonRole.AcceptRole)
        back = box.addButton("Back to the mask", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(back)
        box.exec()
        return box.clickedButton() is use

    def _wants_mask(self) -> bool:
        return (
            self.mask is not None
            and bool(self.mask.any())
            and (self.mask_check is None or self.mask_check.isChecked())
        )

    def _inside(self, relative: str) -> Path:
        """A file of the project; ProjectError when the path leaves the project folder."""
        if self.doc.folder is None:
            raise ProjectError("the project has no folder yet")
        return ProjectFolder(self.doc.folder).path(relative)

    def _project_file(self, relative: str) -> Path | None:
        try:
            return self._inside(relative)
        except WorldStudioError:
            return None

    def _make_entity(self):
        """The entity from the mask: writes scene/masks/<id>.png (the project itself is only
        changed by the undoable edit in :meth:`create`)."""
        from worldstudio.core.reconstruct.segment import entity_from_mask

        if self.entity is None or self.entity.name != self.name.text().strip():
            p = self.doc.project
            depth_shape = np.load(self._inside(p.scene.depth_file), allow_pickle=False).shape
            self.entity = entity_from_mask(
                self.doc.folder, p, self.name.text().strip(), fit_mask(self.mask, depth_shape)
            )
        return self.entity

    def create(self) -> str:
        """Add the entity (defined from the source camera, at the identity pose) as one
        undoable edit: with its mask when there is one, else with the clicked anchor."""
        if self._wants_mask():
            return commands.add_entity_object(self.doc, self._make_entity())
        p = self.doc.project
        fov = None
        if p.intrinsics is not None:
            from worldstudio.core.geometry.camera import fov_from_intrinsics

            fov = float(fov_from_intrinsics(np.array(p.intrinsics.K), p.intrinsics.height))
        return commands.add_entity(
            self.doc,
            self.name.text().strip(),
            self.anchor,
            defined_from=Pose(position=(0.0, 0.0, 0.0)),
            defined_fov=fov,
        )

    def done(self, result: int) -> None:
        """Closing stops a running segmentation and frees the model."""
        if self.busy:
            self.job.cancel()
            self.job.wait(30000)
        self._segmenter = None
        super().done(result)


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class EntitiesPanel(QWidget):
    def __init__(
        self,
        doc: ProjectDocument,
        current_view: ViewProvider,
        runner: JobRunner,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.doc = doc
        self.current_view = current_view
        self.runner = runner
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
            anchor = (
                "no anchor"
                if e.anchor is None
                else "anchor ({:.2f}, {:.2f}, {:.2f})".format(*e.anchor)
            )
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

    def add_entity_dialog(self, at_pixel: tuple[float, float] | None = None) -> SourcePickDialog:
        """The source-image dialog (returned, shown window-modal); ``at_pixel``: a click on the
        entity already made there (from the 3D view). OK adds the entity and selects it."""
        dlg = SourcePickDialog(self.doc, self.runner, self.window(), at_pixel=at_pixel)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self._entity_accepted(dlg))
        dlg.open()
        return dlg

    def _entity_accepted(self, dlg: SourcePickDialog) -> None:
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
