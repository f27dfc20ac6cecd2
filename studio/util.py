"""Small helpers shared by the studio's widgets (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QImage, QPixmap

RESOURCES = Path(__file__).resolve().parent / "resources"
REPO_ROOT = Path(__file__).resolve().parent.parent


def icon(name: str) -> QIcon:
    """An icon of studio/resources/icons (an SVG drawn in the theme's light grey)."""
    return QIcon(str(RESOURCES / "icons" / f"{name}.svg"))


def qimage_from_rgb(image: np.ndarray) -> QImage:
    """An (H, W, 3) uint8 RGB array as a QImage that owns its pixels."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def pixmap_fit(image: np.ndarray, width: int, height: int) -> QPixmap:
    pm = QPixmap.fromImage(qimage_from_rgb(image))
    if width > 0 and height > 0:
        pm = pm.scaled(
            width,
            height,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return pm


def fmt_vec(v, digits: int = 3) -> str:
    return "(" + ", ".join(f"{float(x):.{digits}f}" for x in v) + ")"
