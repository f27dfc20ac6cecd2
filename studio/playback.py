"""Playback: the clock that moves the document's playhead along the camera path.

Playing follows the wall clock at the project's fps (a slow frame is skipped, not stretched)
and stops at the last frame. Stepping and jumping between keyframes stop the clock first.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from worldstudio.studio.document import ProjectDocument, Selection


class Playback(QObject):
    """Plays, steps and jumps the playhead of ``doc``."""

    playing_changed = Signal(bool)

    def __init__(self, doc: ProjectDocument, parent: QObject | None = None):
        super().__init__(parent)
        self.doc = doc
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self._t0 = 0.0
        self._f0 = 0

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def toggle(self) -> None:
        if self.playing:
            self.stop()
        else:
            self.play()

    def play(self) -> None:
        last = self.doc.frame_count() - 1
        if last <= 0:
            return
        if self.doc.playhead >= last:
            self.doc.set_playhead(0)
        self._t0 = time.monotonic()
        self._f0 = self.doc.playhead
        fps = self.doc.project.camera_path.settings.fps
        self.timer.start(max(1, int(1000 / fps / 2)))
        self.playing_changed.emit(True)

    def stop(self) -> None:
        was_playing = self.playing
        self.timer.stop()
        if was_playing:
            self.playing_changed.emit(False)

    def _tick(self) -> None:
        fps = self.doc.project.camera_path.settings.fps
        frame = self._f0 + int((time.monotonic() - self._t0) * fps)
        last = self.doc.frame_count() - 1
        if frame >= last:
            self.doc.set_playhead(last)
            self.stop()
            return
        self.doc.set_playhead(frame)

    def step(self, delta: int) -> None:
        self.stop()
        self.doc.set_playhead(self.doc.playhead + delta)

    def jump_keyframe(self, direction: int) -> None:
        """To the next (``direction`` > 0) or previous keyframe, and select it."""
        frames = sorted(set(self.doc.keyframe_frames()))
        f = self.doc.playhead
        target = [x for x in frames if x > f] if direction > 0 else [x for x in frames if x < f]
        if not target:
            return
        self.stop()
        frame = target[0] if direction > 0 else target[-1]
        self.doc.set_playhead(frame)
        kfs = self.doc.project.camera_path.keyframes
        all_frames = self.doc.keyframe_frames()
        self.doc.set_selection(Selection("keyframe", kfs[all_frames.index(frame)].id))
