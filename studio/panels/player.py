"""A small mp4 player: core.media decodes in a background thread, frames show in a QLabel.

No QtMultimedia: the ffmpeg that imageio-ffmpeg bundles reads every file the studio writes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.studio.util import icon, pixmap_fit


class _Decoder(QThread):
    meta = Signal(float, int, int)  # fps, width, height
    progress = Signal(int)  # frames decoded so far
    done = Signal(int)
    failed = Signal(str)

    def __init__(self, path: Path, frames: list, max_width: int = 960):
        super().__init__()
        self.path = path
        self.frames = frames
        self.max_width = max_width
        self.stop_flag = threading.Event()

    def run(self) -> None:
        from worldstudio.core.media import VideoReader

        try:
            with VideoReader(self.path) as video:
                step = 1
                last = 0.0
                for i, frame in enumerate(video):
                    if self.stop_flag.is_set():
                        return
                    if i == 0:  # the decoded size is known from the first frame
                        h, w = frame.shape[:2]
                        self.meta.emit(video.fps or 16.0, w, h)
                        step = max(1, int(np.ceil(w / self.max_width)))
                    self.frames.append(np.ascontiguousarray(frame[::step, ::step]))
                    now = time.monotonic()
                    if now - last > 0.1:
                        last = now
                        self.progress.emit(len(self.frames))
        except Exception as exc:  # noqa: BLE001 - a broken file is reported, not fatal
            self.failed.emit(f"{self.path.name}: cannot be played ({exc})")
            return
        self.done.emit(len(self.frames))


PLACEHOLDER = "Render a preview (Render ▸ Render preview) to play it here."


class VideoPlayer(QWidget):
    """Plays an mp4 into a label, with play / pause, a position slider and looping."""

    loaded = Signal(int)  # number of frames, once the whole file is decoded

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.path: Path | None = None
        self.frames: list[np.ndarray] = []
        self.fps = 16.0
        self.index = 0
        self.complete = False
        self._decoder: _Decoder | None = None
        self.screen = QLabel(PLACEHOLDER)
        self.screen.setObjectName("screen")
        self.screen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.screen.setMinimumSize(200, 120)
        self.screen.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.screen.setWordWrap(True)
        self.play_button = QToolButton()
        self.play_button.setIcon(icon("play"))
        self.play_button.setToolTip("Play / pause")
        self.play_button.clicked.connect(self.toggle)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self.seek)
        self.counter = QLabel("0 / 0")
        self.counter.setObjectName("mono")
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.counter)
        self.caption = QLabel("")
        self.caption.setObjectName("hint")
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.screen, 1)
        layout.addLayout(controls)
        layout.addWidget(self.caption)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self._t0 = 0.0
        self._i0 = 0

    def load(self, path: str | Path, autoplay: bool = True) -> None:
        self.stop_decoding()
        self.timer.stop()
        self.path = Path(path)
        self.frames = []
        self.index = 0
        self.complete = False
        self.caption.setText(str(self.path))
        self.screen.setText("decoding…")
        self._autoplay = autoplay
        dec = _Decoder(self.path, self.frames)
        # Reports of a decoder that was stopped meanwhile (another file or project) are dropped.
        dec.meta.connect(lambda *a, d=dec: d is self._decoder and self._on_meta(*a))
        dec.progress.connect(lambda n, d=dec: d is self._decoder and self._on_progress(n))
        dec.done.connect(lambda n, d=dec: d is self._decoder and self._on_done(n))
        dec.failed.connect(lambda m, d=dec: d is self._decoder and self._on_failed(m))
        self._decoder = dec
        dec.start()

    def clear(self) -> None:
        """Show nothing (another project was opened)."""
        self.stop_decoding()
        self.pause()
        self.path = None
        self.frames = []
        self.index = 0
        self.complete = False
        self.screen.clear()
        self.screen.setText(PLACEHOLDER)
        self.caption.setText("")
        self.slider.setRange(0, 0)
        self._update_counter()

    def stop_decoding(self) -> None:
        if self._decoder is not None:
            self._decoder.stop_flag.set()
            self._decoder.wait(5000)
            self._decoder = None

    def _on_meta(self, fps: float, w: int, h: int) -> None:
        self.fps = fps
        self.caption.setText(f"{self.path}  ·  {w}×{h}  ·  {fps:g} fps")

    def _on_progress(self, n: int) -> None:
        self.slider.setRange(0, max(n - 1, 0))
        self._update_counter()
        if self.index == 0 and n:
            self.show_frame(0)
            if self._autoplay and not self.timer.isActive():
                self.play()

    def _on_done(self, n: int) -> None:
        self.complete = True
        self._on_progress(n)
        self.loaded.emit(n)

    def _on_failed(self, message: str) -> None:
        self.screen.setText(message)

    # ------------------------------------------------------------------ playback
    def play(self) -> None:
        if not self.frames:
            return
        if self.complete and self.index >= len(self.frames) - 1:
            self.index = 0
        self._t0, self._i0 = time.monotonic(), self.index
        self.timer.start(max(int(1000 / self.fps / 2), 5))
        self.play_button.setIcon(icon("pause"))

    def pause(self) -> None:
        self.timer.stop()
        self.play_button.setIcon(icon("play"))

    def toggle(self) -> None:
        self.pause() if self.timer.isActive() else self.play()

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def _tick(self) -> None:
        i = self._i0 + int((time.monotonic() - self._t0) * self.fps)
        if i >= len(self.frames):
            if self.complete:
                self.show_frame(len(self.frames) - 1)
                self.pause()
                return
            i = len(self.frames) - 1
        if i != self.index:
            self.show_frame(i)

    def seek(self, i: int) -> None:
        if 0 <= i < len(self.frames) and i != self.index:
            self.show_frame(i)
            if self.timer.isActive():
                self._t0, self._i0 = time.monotonic(), i

    def show_frame(self, i: int) -> None:
        self.index = i
        self.screen.setPixmap(pixmap_fit(self.frames[i], self.screen.width(), self.screen.height()))
        self.slider.blockSignals(True)
        self.slider.setValue(i)
        self.slider.blockSignals(False)
        self._update_counter()

    def _update_counter(self) -> None:
        self.counter.setText(f"{self.index + 1 if self.frames else 0} / {len(self.frames)}")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.frames:
            self.show_frame(self.index)
