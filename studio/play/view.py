"""The play view: the generated frames, big, with a small overlay (the action of the frame on
screen, the keys held now, which steer the next chunk, the chunk latency, the sustained FPS), the
session's settings on a strip at the top, and the keys.

Keys go to the session's :class:`~worldstudio.core.play.KeyState` (:data:`PLAY_KEYS`: W A S D
move, Q E down and up, the arrows turn and look); a horizontal mouse drag turns one step each
:data:`DRAG_STEP_PX` pixels, a vertical one looks up or down. While the view has the focus, these
keys are the view's, not the window's shortcuts (the arrows also step the playhead elsewhere).
Before a session the view is *ready*: the strip's settings can be changed and Enter (or the Start
button) starts. Space pauses and resumes, Esc or P stops (or, when ready, closes the view). The
view never waits for a chunk: it shows the frames it is given (:meth:`PlayView.show_frame`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QPainter
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

from worldstudio.core.play import KeyState
from worldstudio.studio.field_guard import guard
from worldstudio.studio.util import qimage_from_rgb

PLAY_KEYS: dict[int, str] = {
    Qt.Key.Key_W: "W",
    Qt.Key.Key_A: "A",
    Qt.Key.Key_S: "S",
    Qt.Key.Key_D: "D",
    Qt.Key.Key_Q: "Q",
    Qt.Key.Key_E: "E",
    Qt.Key.Key_Left: "LEFT",
    Qt.Key.Key_Right: "RIGHT",
    Qt.Key.Key_Up: "UP",
    Qt.Key.Key_Down: "DOWN",
}
"""Qt keys -> the key names :func:`worldstudio.core.play.step_from_keys` reads."""
START_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
CONTROL_KEYS = (Qt.Key.Key_Space, Qt.Key.Key_Escape, Qt.Key.Key_P, *START_KEYS)
DRAG_STEP_PX = 24
READY = "Ready: choose the backend, quality and size above · Enter starts · Esc closes"
HINT = "WASD move · Q/E down/up · ←/→ or drag turn · ↑/↓ look · Space pause · Esc stop"
SIZES = ("project", "416x240", "832x480")


class PlayView(QWidget):
    """The generated view of a play session (module docstring)."""

    pause_toggled = Signal()
    stop_requested = Signal()
    start_requested = Signal()

    def __init__(self, keys: KeyState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("playView")
        self.keys = keys
        self.image: QImage | None = None
        self.frames_shown = 0
        self.action = "(SN)"
        self.status = "starting…"
        self.latency: float | None = None
        self.gen_fps: float | None = None
        self.show_fps: float | None = None
        self.chunk = -1
        self._drag: QPointF | None = None
        self._drag_acc = np.zeros(2)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAutoFillBackground(False)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

        # the session's settings (read when a session starts)
        strip = QWidget(self)
        strip.setObjectName("playSettings")
        row = QHBoxLayout(strip)
        row.setContentsMargins(8, 4, 8, 4)
        self.backend_box = QComboBox()
        self.quality_box = QComboBox()
        self.size_box = QComboBox()
        self.size_box.addItems(list(SIZES))
        for label, box in (
            ("Backend", self.backend_box),
            ("Quality", self.quality_box),
            ("Size", self.size_box),
        ):
            box.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay the view's
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            guard(box)  # never focused, so the wheel never changes it
            row.addWidget(QLabel(label))
            row.addWidget(box)
        self.start_button = QPushButton("Start  ⏎")
        self.start_button.setToolTip("Start the session with these settings (Enter)")
        self.start_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.start_button.clicked.connect(self.start_requested)
        row.addWidget(self.start_button)
        row.addStretch(1)
        self.settings_strip = strip

    # ------------------------------------------------------------------ what it shows
    def show_frame(self, frame: np.ndarray) -> None:
        self.image = qimage_from_rgb(frame)
        self.frames_shown += 1
        self.update()

    def set_stats(self, **values) -> None:
        """Any of action, status, latency, gen_fps, show_fps, chunk."""
        for key, value in values.items():
            setattr(self, key, value)
        self.update()

    def overlay_lines(self) -> list[str]:
        """The overlay's text (also what tests read)."""
        top = f"▶ PLAY  {self.action}"
        if self.chunk >= 0:
            top += f"   chunk {self.chunk + 1}"
        held = self.keys.current()
        top += f"   keys {held.text}{held.extras}"
        stats = []
        if self.latency is not None:
            stats.append(f"chunk latency {self.latency:.2f} s")
        if self.gen_fps is not None:
            stats.append(f"{self.gen_fps:.1f} FPS sustained")
        if self.show_fps is not None:
            stats.append(f"{self.show_fps:.1f} FPS shown")
        lines = [top]
        if stats:
            lines.append(" · ".join(stats))
        if self.status:
            lines.extend(self.status.splitlines())
        return lines

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.settings_strip.setGeometry(0, 0, self.width(), self.settings_strip.sizeHint().height())

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        top = self.settings_strip.height()
        area = QRectF(0, top, self.width(), self.height() - top)
        if self.image is not None and not self.image.isNull():
            iw, ih = self.image.width(), self.image.height()
            scale = min(area.width() / iw, area.height() / ih)
            w, h = iw * scale, ih * scale
            target = QRectF(
                area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h
            )
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(target, self.image)
        font = QFont(self.font())
        font.setPointSizeF(max(9.0, font.pointSizeF()))
        p.setFont(font)
        fm = p.fontMetrics()
        room = max(80, self.width() - 40)
        lines = [fm.elidedText(t, Qt.TextElideMode.ElideRight, room) for t in self.overlay_lines()]
        box_w = max(fm.horizontalAdvance(t) for t in lines) + 16
        box_h = fm.height() * len(lines) + 10
        p.fillRect(QRectF(10, top + 10, box_w, box_h), QColor(0, 0, 0, 150))
        p.setPen(QColor(255, 214, 90))
        for i, text in enumerate(lines):
            p.drawText(QPointF(18, top + 10 + 5 + fm.ascent() + i * fm.height()), text)
            p.setPen(QColor(235, 235, 235))
        hint_w = fm.horizontalAdvance(HINT) + 16
        y = self.height() - fm.height() - 16
        p.fillRect(QRectF(10, y, hint_w, fm.height() + 8), QColor(0, 0, 0, 150))
        p.drawText(QPointF(18, y + 4 + fm.ascent()), HINT)
        p.end()

    # ------------------------------------------------------------------ keys and mouse
    def event(self, ev: QEvent) -> bool:
        # the play keys are the view's while it has the focus, not the window's shortcuts
        if ev.type() == QEvent.Type.ShortcutOverride and isinstance(ev, QKeyEvent):
            if ev.key() in PLAY_KEYS or ev.key() in CONTROL_KEYS:
                ev.accept()
                return True
        return super().event(ev)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key = ev.key()
        if key in PLAY_KEYS:
            if not ev.isAutoRepeat():
                self.keys.press(PLAY_KEYS[key])
                self.update()
            return
        if ev.isAutoRepeat():
            return
        if key in START_KEYS:
            self.start_requested.emit()
        elif key == Qt.Key.Key_Space:
            self.pause_toggled.emit()
        elif key in (Qt.Key.Key_Escape, Qt.Key.Key_P):
            self.stop_requested.emit()
        else:
            super().keyPressEvent(ev)

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        if ev.key() in PLAY_KEYS and not ev.isAutoRepeat():
            self.keys.release(PLAY_KEYS[ev.key()])
            self.update()
            return
        super().keyReleaseEvent(ev)

    def focusOutEvent(self, ev) -> None:
        self.keys.release_all()  # a key released elsewhere must not stay held
        super().focusOutEvent(ev)

    def mousePressEvent(self, ev) -> None:
        self.setFocus()
        self._drag = ev.position()
        self._drag_acc[:] = 0.0

    def mouseMoveEvent(self, ev) -> None:
        if self._drag is None:
            return
        pos = ev.position()
        self._drag_acc += (pos.x() - self._drag.x(), pos.y() - self._drag.y())
        self._drag = pos
        while abs(self._drag_acc[0]) >= DRAG_STEP_PX:
            right = self._drag_acc[0] > 0
            self.keys.tap("RIGHT" if right else "LEFT")
            self._drag_acc[0] -= DRAG_STEP_PX if right else -DRAG_STEP_PX
        while abs(self._drag_acc[1]) >= DRAG_STEP_PX:
            down = self._drag_acc[1] > 0
            self.keys.tap("DOWN" if down else "UP")  # drag down: look down
            self._drag_acc[1] -= DRAG_STEP_PX if down else -DRAG_STEP_PX

    def mouseReleaseEvent(self, ev) -> None:
        self._drag = None
