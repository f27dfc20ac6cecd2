"""File ▸ New from image…: choose a photo, where the project goes, the depth model, an optional
field of view, the video size and the crop (a rectangle locked to the video's aspect, dragged on
a preview of the photo). The reconstruction itself is
:func:`worldstudio.core.reconstruct.new_project.new_project_job`, run by the main window in the worker.

Crop coordinates are pixels of the upright original image (EXIF orientation applied), the
convention of :func:`worldstudio.core.reconstruct.image_io.prepare_image`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.studio.field_guard import guard_fields
from worldstudio.studio.settings import free_folder, projects_dir
from worldstudio.studio.util import qimage_from_rgb
from worldstudio.studio.widgets import column, row

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"
DEFAULT_SIZE = (832, 480)
SIZE_PRESETS = ((832, 480), (480, 832), (1280, 720), (640, 368), (512, 512), (416, 240))
PREVIEW_MAX = 1600  # long side of the preview image, pixels
HANDLE = 9  # corner handle half-size on screen, pixels


def load_preview(path: str | Path, max_side: int = PREVIEW_MAX) -> np.ndarray:
    """The upright photo as (h, w, 3) uint8, its long side at most ``max_side`` (JPEGs are
    decoded at a reduced size, so a huge photo never exists at full size)."""
    from PIL import Image, ImageOps

    from worldstudio.core.reconstruct.image_io import ImageError, to_rgb8

    try:
        with Image.open(path) as img:
            try:
                img.draft("RGB", (max_side, max_side))
            except Exception:  # noqa: BLE001 - draft is an optimisation only
                pass
            img.load()
            upright = ImageOps.exif_transpose(img)
            try:
                upright.thumbnail((max_side, max_side))
            except (ValueError, OSError):  # a mode PIL cannot resize: convert first
                upright = to_rgb8(upright)
                upright.thumbnail((max_side, max_side))
            rgb = to_rgb8(upright)
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., :3])
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: the image data is truncated or corrupt ({exc})") from exc


class CropView(QWidget):
    """The photo with a crop rectangle locked to an aspect ratio: drag inside to move it, drag a
    corner to resize it, the wheel scales it, a double click resets it to the largest centred
    crop. ``crop`` is (x, y, w, h) in pixels of the upright original image."""

    crop_changed = Signal(tuple)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(560, 340)
        self.setMouseTracking(True)
        self.setObjectName("cropView")
        self.pixmap: QPixmap | None = None
        self.image_size: tuple[int, int] = (0, 0)  # (width, height) of the original
        self.aspect = DEFAULT_SIZE[0] / DEFAULT_SIZE[1]
        self._rect = QRectF()  # the crop, original pixels
        self._drag: str | None = None  # "move" or "resize"
        self._anchor = QPointF()
        self._grab = QPointF()

    def sizeHint(self) -> QSize:
        return QSize(720, 440)

    # ------------------------------------------------------------------ model
    def set_image(self, rgb: np.ndarray | None, image_size: tuple[int, int] | None = None) -> None:
        """Show ``rgb`` (a preview) for an original of ``image_size`` = (width, height)."""
        if rgb is None:
            self.pixmap = None
            self.image_size = (0, 0)
            self._rect = QRectF()
        else:
            self.pixmap = QPixmap.fromImage(qimage_from_rgb(rgb))
            self.image_size = image_size or (rgb.shape[1], rgb.shape[0])
            self.reset()
        self.update()

    def set_aspect(self, aspect: float) -> None:
        """Lock to a new aspect, keeping the crop's centre and about its area."""
        self.aspect = float(aspect)
        if self.pixmap is None:
            return
        c = self._rect.center()
        area = max(self._rect.width() * self._rect.height(), 1.0)
        w = math.sqrt(area * self.aspect)
        self._set(c.x() - w / 2, c.y() - w / self.aspect / 2, w)

    def reset(self) -> None:
        """The largest centred crop of the aspect (core's ``fit_crop``)."""
        from worldstudio.core.reconstruct.image_io import fit_crop

        iw, ih = self.image_size
        if iw <= 0 or ih <= 0:
            return
        x, y, w, h = fit_crop((iw, ih), (round(self.aspect * 10000), 10000))
        self._rect = QRectF(x, y, w, h)
        self._emit()

    @property
    def crop(self) -> tuple[int, int, int, int] | None:
        if self.pixmap is None or self._rect.isEmpty():
            return None
        iw, ih = self.image_size
        r = self._rect
        x = int(round(max(0.0, min(r.x(), iw - 1))))
        y = int(round(max(0.0, min(r.y(), ih - 1))))
        w = max(1, min(int(round(r.width())), iw - x))
        h = max(1, min(int(round(r.height())), ih - y))
        return x, y, w, h

    def set_crop(self, crop: tuple[float, float, float, float]) -> None:
        """Place the crop (its aspect is locked: the width wins)."""
        x, y, w, _h = (float(v) for v in crop)
        self._set(x, y, w)

    def _max_width(self) -> float:
        iw, ih = self.image_size
        return min(iw, ih * self.aspect)

    def _min_width(self) -> float:
        return max(8.0, 0.02 * self._max_width())

    def _set(self, x: float, y: float, w: float) -> None:
        iw, ih = self.image_size
        w = max(self._min_width(), min(w, self._max_width()))
        h = w / self.aspect
        x = max(0.0, min(x, iw - w))
        y = max(0.0, min(y, ih - h))
        self._rect = QRectF(x, y, w, h)
        self._emit()

    def _emit(self) -> None:
        self.update()
        crop = self.crop
        if crop is not None:
            self.crop_changed.emit(crop)

    # ------------------------------------------------------------------ screen <-> image
    def _view(self) -> tuple[float, QPointF]:
        """(scale from original pixels to screen, top-left of the image on screen)."""
        iw, ih = self.image_size
        if iw <= 0 or ih <= 0:
            return 1.0, QPointF()
        s = min((self.width() - 2) / iw, (self.height() - 2) / ih)
        return s, QPointF((self.width() - iw * s) / 2, (self.height() - ih * s) / 2)

    def to_screen(self, p: QPointF) -> QPointF:
        s, o = self._view()
        return QPointF(o.x() + p.x() * s, o.y() + p.y() * s)

    def to_image(self, p: QPointF) -> QPointF:
        s, o = self._view()
        return QPointF((p.x() - o.x()) / s, (p.y() - o.y()) / s)

    def screen_rect(self) -> QRectF:
        s, o = self._view()
        r = self._rect
        return QRectF(o.x() + r.x() * s, o.y() + r.y() * s, r.width() * s, r.height() * s)

    # ------------------------------------------------------------------ mouse
    def _corner_at(self, pos: QPointF) -> int | None:
        r = self.screen_rect()
        corners = (r.topLeft(), r.topRight(), r.bottomRight(), r.bottomLeft())
        for i, c in enumerate(corners):
            if abs(pos.x() - c.x()) <= HANDLE + 2 and abs(pos.y() - c.y()) <= HANDLE + 2:
                return i
        return None

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if self.pixmap is None or ev.button() != Qt.MouseButton.LeftButton:
            return
        pos = ev.position()
        corner = self._corner_at(pos)
        r = self._rect
        if corner is not None:
            opposite = (r.bottomRight(), r.bottomLeft(), r.topLeft(), r.topRight())[corner]
            self._drag, self._anchor = "resize", opposite
        else:
            p = self.to_image(pos)
            if not r.contains(p):  # jump: centre the crop on the click, then drag it
                self._set(p.x() - r.width() / 2, p.y() - r.height() / 2, r.width())
            self._drag, self._grab = "move", self.to_image(pos) - self._rect.topLeft()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if self._drag is None:
            corner = self._corner_at(pos) if self.pixmap is not None else None
            if corner is not None:
                shape = (
                    Qt.CursorShape.SizeFDiagCursor
                    if corner in (0, 2)
                    else Qt.CursorShape.SizeBDiagCursor
                )
            elif self.pixmap is not None and self.screen_rect().contains(pos):
                shape = Qt.CursorShape.SizeAllCursor
            else:
                shape = Qt.CursorShape.CrossCursor
            self.setCursor(shape)
            return
        p = self.to_image(pos)
        if self._drag == "move":
            tl = p - self._grab
            self._set(tl.x(), tl.y(), self._rect.width())
            return
        a = self._anchor
        iw, ih = self.image_size
        right, down = p.x() >= a.x(), p.y() >= a.y()
        # the corner follows the mouse projected on the crop's diagonal (aspect locked)
        k = self.aspect
        w = k * (abs(p.x() - a.x()) * k + abs(p.y() - a.y())) / (k * k + 1)
        room_w = (iw - a.x()) if right else a.x()
        room_h = (ih - a.y()) if down else a.y()
        w = max(self._min_width(), min(w, room_w, room_h * self.aspect))
        h = w / self.aspect
        x = a.x() if right else a.x() - w
        y = a.y() if down else a.y() - h
        self._set(x, y, w)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        self._drag = None

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        if self.pixmap is not None:
            self.reset()

    def wheelEvent(self, ev: QWheelEvent) -> None:
        if self.pixmap is None:
            return
        steps = ev.angleDelta().y() / 120.0
        c = self._rect.center()
        w = self._rect.width() * (0.9**steps)
        w = max(self._min_width(), min(w, self._max_width()))
        self._set(c.x() - w / 2, c.y() - w / self.aspect / 2, w)

    # ------------------------------------------------------------------ paint
    def paintEvent(self, ev) -> None:
        qp = QPainter(self)
        qp.setRenderHint(QPainter.RenderHint.Antialiasing)
        qp.fillRect(self.rect(), QColor(21, 23, 27))
        if self.pixmap is None:
            qp.setPen(QColor(141, 148, 160))
            qp.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Choose an image to see it here")
            qp.end()
            return
        s, o = self._view()
        iw, ih = self.image_size
        target = QRectF(o.x(), o.y(), iw * s, ih * s)
        qp.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        qp.drawPixmap(target, self.pixmap, QRectF(self.pixmap.rect()))
        r = self.screen_rect()
        shade = QPainterPath()  # dims the photo outside the crop (no seams: one path, aliased)
        shade.setFillRule(Qt.FillRule.OddEvenFill)
        shade.addRect(target)
        shade.addRect(r)
        qp.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        qp.fillPath(shade, QColor(0, 0, 0, 160))
        qp.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        qp.setPen(QPen(QColor(255, 255, 255, 70), 1))
        for k in (1, 2):
            x = r.left() + r.width() * k / 3
            y = r.top() + r.height() * k / 3
            qp.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
            qp.drawLine(QPointF(r.left(), y), QPointF(r.right(), y))
        qp.setPen(QPen(QColor(255, 196, 64), 2))
        qp.drawRect(r)
        qp.setBrush(QColor(255, 196, 64))
        for c in (r.topLeft(), r.topRight(), r.bottomRight(), r.bottomLeft()):
            qp.drawRect(QRectF(c.x() - HANDLE / 2, c.y() - HANDLE / 2, HANDLE, HANDLE))
        qp.end()


@dataclass
class NewProjectRequest:
    """What the dialog asks core to do."""

    image: Path
    out: Path
    depth_model: str
    fov: float | None
    size: tuple[int, int]
    crop: tuple[int, int, int, int] | None

    def job(self):
        from worldstudio.core.reconstruct.new_project import new_project_job

        return new_project_job(
            self.image,
            self.out,
            depth_model=self.depth_model,
            fov=self.fov,
            size=self.size,
            crop=self.crop,
        )


class NewFromImageDialog(QDialog):
    """Collects a :class:`NewProjectRequest`; the caller runs it (see ``request``)."""

    def __init__(
        self,
        parent: QWidget | None = None,
        start_dir: str | Path = "",
        open_folder: Path | None = None,
        projects_folder: Path | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("New project from an image")
        self.setObjectName("newFromImageDialog")
        self.start_dir = str(start_dir or "")  # where the image dialog opens
        # Where the new project goes unless the user picks another folder.
        self.projects_folder = Path(projects_folder or projects_dir())
        self.open_folder = Path(open_folder).resolve() if open_folder else None
        self.image_path: Path | None = None
        self.image_size: tuple[int, int] | None = None  # (width, height), upright original
        self.exif = None
        self._auto_out: str | None = None
        # Asked when the project folder exists; tests replace it with a plain function.
        self.ask_replace: Callable[[Path], bool] = self._ask_replace

        # --- files
        self.image_edit = QLineEdit()
        self.image_edit.setPlaceholderText("a photo: jpg, png, webp, tiff…")
        self.image_edit.editingFinished.connect(lambda: self.set_image(self.image_edit.text()))
        browse_image = QPushButton("Browse…")
        browse_image.clicked.connect(self.browse_image)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("the new project folder (…/name.wsproj)")
        self.out_edit.textEdited.connect(lambda _t: setattr(self, "_auto_out", None))
        self.out_edit.textChanged.connect(lambda _t: self._validate())
        browse_out = QPushButton("Browse…")
        browse_out.clicked.connect(self.browse_out)

        # --- depth model
        self.model_combo = QComboBox()
        self.model_combo.currentIndexChanged.connect(lambda _i: self._update_model_hint())
        self.model_hint = QLabel("")
        self.model_hint.setObjectName("hint")
        self.model_hint.setWordWrap(True)

        # --- field of view
        self.fov_check = QCheckBox("Vertical field of view")
        self.fov_spin = QDoubleSpinBox()
        self.fov_spin.setRange(1.0, 170.0)
        self.fov_spin.setDecimals(1)
        self.fov_spin.setValue(60.0)
        self.fov_spin.setSuffix("°")
        self.fov_spin.setEnabled(False)
        self.fov_check.toggled.connect(self.fov_spin.setEnabled)
        self.fov_hint = QLabel(
            "Used when the photo has no EXIF focal length and the depth model "
            "gives no estimate; otherwise 60°."
        )
        self.fov_hint.setObjectName("hint")
        self.fov_hint.setWordWrap(True)

        # --- size
        self.width_spin = QSpinBox()
        self.height_spin = QSpinBox()
        for spin, value in (
            (self.width_spin, DEFAULT_SIZE[0]),
            (self.height_spin, DEFAULT_SIZE[1]),
        ):
            spin.setRange(16, 4096)
            spin.setSingleStep(16)
            spin.setValue(value)
            spin.setSuffix(" px")
            spin.valueChanged.connect(lambda _v: self._size_changed())
            spin.editingFinished.connect(self._snap_size)
        self.size_presets = QComboBox()
        self.size_presets.addItem("presets…", None)
        for w, h in SIZE_PRESETS:
            self.size_presets.addItem(f"{w} × {h}", (w, h))
        self.size_presets.activated.connect(self._preset_chosen)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_spin)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_spin)
        size_row.addWidget(self.size_presets)
        size_row.addStretch(1)

        # --- crop
        self.crop_view = CropView()
        self.crop_view.crop_changed.connect(lambda _c: self._update_crop_label())
        self.crop_label = QLabel("")
        self.crop_label.setObjectName("mono")
        reset = QPushButton("Largest centred crop")
        reset.clicked.connect(self.crop_view.reset)
        crop_row = QHBoxLayout()
        crop_row.addWidget(self.crop_label, 1)
        crop_row.addWidget(reset)

        self.error = QLabel("")
        self.error.setObjectName("newFromImageError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ff8a7a;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Image", row(self.image_edit, browse_image))
        form.addRow("Project folder", row(self.out_edit, browse_out))
        form.addRow("Depth model", column(self.model_combo, self.model_hint))
        self.fov_spin.setMinimumWidth(110)
        fov_row = QHBoxLayout()
        fov_row.addWidget(self.fov_spin)
        fov_row.addWidget(self.fov_hint, 1)
        form.addRow(self.fov_check, fov_row)
        form.addRow("Video size", size_row)

        hint = QLabel(
            "Crop: drag the rectangle to move it, drag a corner to resize it, scroll to "
            "scale it, double-click for the largest centred crop. It keeps the video's "
            "aspect: the photo is cropped, never stretched."
        )
        hint.setObjectName("hint")
        hint.setWordWrap(True)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton(
            "Create project", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.create_button.setDefault(True)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.crop_view, 1)
        layout.addLayout(crop_row)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.fill_models()
        self._validate()
        guard_fields(self)  # the wheel changes no field it is merely over
        self.resize(820, 860)

    # ------------------------------------------------------------------ models
    def fill_models(self) -> None:
        """The catalogue's depth models, marked present or not (the default, or the first
        present one, is chosen)."""
        from worldstudio.core import models

        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        try:
            statuses = models.list_status("depth")
        except WorldStudioError as exc:
            statuses = [
                models.ModelStatus(i, "missing", None, str(exc)) for i in models.all_models("depth")
            ]
        self.model_statuses = {s.info.name: s for s in statuses}
        for i, st in enumerate(statuses):
            info = st.info
            mark = "✓ present" if st.present else f"not downloaded, {info.size_text}"
            extras = []
            if info.metric:
                extras.append("metric")
            if info.estimates_fov:
                extras.append("estimates fov")
            if info.licence_note:
                extras.append("research licence")
            label = f"{info.name}  —  {mark}" + (f"  ({', '.join(extras)})" if extras else "")
            self.model_combo.addItem(label, info.name)
            self.model_combo.setItemData(
                i,
                f"{info.description}\nLicence: {info.licence_text}\n{st.where}",
                Qt.ItemDataRole.ToolTipRole,
            )
        default = next((i for i, s in enumerate(statuses) if s.info.default), 0)
        present = [i for i, s in enumerate(statuses) if s.present]
        choice = default if (statuses[default].present or not present) else present[0]
        self.model_combo.setCurrentIndex(choice)
        self.model_combo.blockSignals(False)
        self._update_model_hint()

    @property
    def depth_model(self) -> str:
        return str(self.model_combo.currentData())

    def _update_model_hint(self) -> None:
        from worldstudio.core import models

        st = self.model_statuses.get(self.depth_model) if hasattr(self, "model_statuses") else None
        if st is None:
            return
        info = st.info
        parts = [info.description + "."]
        if info.licence_note:
            parts.append(f"Licence: {info.licence_text}.")
        if not st.present:
            if models.is_offline():
                parts.append(
                    f"<b>Not on this machine and HF_HUB_OFFLINE is set</b>: download it "
                    f"first (Models ▸ Manage models…, or <code>worldstudio models download "
                    f"{info.name}</code>) or choose a model that is present."
                )
            else:
                parts.append(f"Not on this machine yet: it is downloaded first ({info.size_text}).")
        self.model_hint.setText(" ".join(parts))

    # ------------------------------------------------------------------ image
    def browse_image(self) -> None:
        start = str(self.image_path.parent) if self.image_path else self.start_dir
        path, _ = QFileDialog.getOpenFileName(self, "Image to reconstruct", start, IMAGE_FILTER)
        if path:
            self.set_image(path)

    def set_image(self, path: str | Path) -> bool:
        """Read the image's header and a preview; False (and the error shown) when unusable."""
        from worldstudio.core.reconstruct.image_io import read_image_info

        text = str(path).strip()
        if self.image_edit.text() != text:
            self.image_edit.setText(text)
        if not text:
            return False
        p = Path(text).expanduser()
        if self.image_path == p and self.image_size is not None:
            return True
        self.image_path, self.image_size, self.exif = p, None, None
        try:
            (h, w), exif = read_image_info(p)
            preview = load_preview(p)
        except WorldStudioError as exc:
            self.crop_view.set_image(None)
            self._set_error(str(exc))
            self._update_crop_label()
            self._validate()
            return False
        self.image_size, self.exif = (w, h), exif
        self.crop_view.set_aspect(self.size[0] / self.size[1])
        self.crop_view.set_image(preview, (w, h))
        self._set_error("")
        if not self.out_edit.text().strip() or self.out_edit.text() == self._auto_out:
            # In the projects folder, named after the photo (never beside the photo: it may sit
            # in a read-only or system folder).
            self._auto_out = str(free_folder(self.projects_folder / f"{p.stem}.wsproj"))
            self.out_edit.setText(self._auto_out)
        if exif is not None and (exif.focal_mm or exif.focal_35mm):
            what = (
                f"{exif.focal_35mm:g} mm (35 mm equivalent)"
                if exif.focal_35mm
                else f"{exif.focal_mm:g} mm"
            )
            cam = f" from {exif.camera}" if exif.camera else ""
            self.fov_hint.setText(
                f"The photo's EXIF focal length ({what}{cam}) comes first when it "
                "gives a plausible field of view; this value is the fallback."
            )
        else:
            self.fov_hint.setText(
                "The photo has no EXIF focal length: this value is used unless the "
                "depth model estimates one (otherwise 60°)."
            )
        self._update_crop_label()
        self._validate()
        return True

    def browse_out(self) -> None:
        start = self.out_edit.text() or str(self.projects_folder / "project.wsproj")
        folder, _ = QFileDialog.getSaveFileName(
            self, "New project (a folder)", start, "Project folder (*.wsproj)"
        )
        if folder:
            if not folder.endswith(".wsproj"):
                folder += ".wsproj"
            self._auto_out = None
            self.out_edit.setText(folder)

    # ------------------------------------------------------------------ size and crop
    @property
    def size(self) -> tuple[int, int]:
        return int(self.width_spin.value()), int(self.height_spin.value())

    def set_size(self, width: int, height: int) -> None:
        self.width_spin.setValue(int(width))
        self.height_spin.setValue(int(height))

    def _snap_size(self) -> None:
        for spin in (self.width_spin, self.height_spin):
            v = int(round(spin.value() / 16) * 16)
            spin.setValue(max(16, v))

    def _preset_chosen(self, index: int) -> None:
        data = self.size_presets.itemData(index)
        if data:
            self.set_size(*data)
        self.size_presets.setCurrentIndex(0)

    def _size_changed(self) -> None:
        w, h = self.size
        self.crop_view.set_aspect(w / h)
        self._update_crop_label()
        self._validate()

    def _update_crop_label(self) -> None:
        crop = self.crop_view.crop
        if crop is None or self.image_size is None:
            self.crop_label.setText("")
            return
        x, y, w, h = crop
        iw, ih = self.image_size
        tw, th = self.size
        scale = th / h
        how = f"upscaled ×{scale:.2f}" if scale > 1.001 else f"scaled ×{scale:.2f}"
        self.crop_label.setText(f"photo {iw}×{ih} · crop {w}×{h} at ({x}, {y}) → {tw}×{th} ({how})")

    @property
    def crop(self) -> tuple[int, int, int, int] | None:
        return self.crop_view.crop

    # ------------------------------------------------------------------ result
    def _set_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def problems(self) -> list[str]:
        out = []
        if self.image_path is None:
            out.append("choose an image")
        elif self.image_size is None:
            out.append("the image cannot be used")
        if not self.out_edit.text().strip():
            out.append("choose the project folder")
        w, h = self.size
        if w % 16 or h % 16:
            out.append(f"the video size must be multiples of 16 pixels (got {w}×{h})")
        return out

    def _validate(self) -> None:
        problems = self.problems()
        self.create_button.setEnabled(not problems)
        self.create_button.setToolTip("; ".join(problems))

    def request(self) -> NewProjectRequest:
        return NewProjectRequest(
            image=Path(self.image_path),  # type: ignore[arg-type]
            out=Path(self.out_edit.text().strip()).expanduser(),
            depth_model=self.depth_model,
            fov=float(self.fov_spin.value()) if self.fov_check.isChecked() else None,
            size=self.size,
            crop=self.crop,
        )

    def _accept(self) -> None:
        self._snap_size()
        problems = self.problems()
        if problems:
            self._set_error("Cannot create the project yet: " + "; ".join(problems) + ".")
            return
        out = Path(self.out_edit.text().strip()).expanduser()
        if self.open_folder is not None and out.resolve() == self.open_folder:
            self._set_error(f"{out} is the project that is open now: choose another folder.")
            return
        if out.exists() and not out.is_dir():
            self._set_error(f"{out} exists and is not a folder: choose another name.")
            return
        if out.is_dir() and any(out.iterdir()) and not self.ask_replace(out):
            return
        self.accept()

    def _ask_replace(self, folder: Path) -> bool:
        answer = QMessageBox.question(
            self,
            "Replace the folder?",
            f"{folder} already exists and holds files. Replace it with the new project? (It is "
            "replaced only once the new project is complete.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
