"""Small helpers shared by the studio's widgets (no torch)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap

from worldstudio.core.geometry.transforms import matrix_to_quat, quat_to_matrix

RESOURCES = Path(__file__).resolve().parent / "resources"
REPO_ROOT = Path(__file__).resolve().parent.parent


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


# Yaw / pitch / roll in degrees for the inspector, in the project's axes (OpenCV camera axes,
# world up = -y): c2w rotation = R_up(yaw) @ R_x(pitch) @ R_z(roll). Positive yaw turns left,
# positive pitch looks up, positive roll turns the image clockwise.
def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def quat_to_ypr(quat) -> tuple[float, float, float]:
    R = quat_to_matrix(np.asarray(quat, dtype=np.float64))
    pitch = math.asin(max(-1.0, min(1.0, -R[1, 2])))
    a = math.atan2(R[0, 2], R[2, 2])
    roll = math.atan2(R[1, 0], R[1, 1])
    return -math.degrees(a), math.degrees(pitch), math.degrees(roll)


def ypr_to_quat(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    R = _ry(-math.radians(yaw)) @ _rx(math.radians(pitch)) @ _rz(math.radians(roll))
    q = matrix_to_quat(R)
    return tuple(float(v) for v in q)  # type: ignore[return-value]


def fmt_vec(v, digits: int = 3) -> str:
    return "(" + ", ".join(f"{float(x):.{digits}f}" for x in v) + ")"
