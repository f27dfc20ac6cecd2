"""Play mode: the world generated live from the keys, in the studio.

:class:`PlayMode` lays a :class:`~worldstudio.studio.play.view.PlayView` over the window's central
area and starts a live :class:`~worldstudio.core.play.PlaySession` as a job on the window's
runner (the GPU lane). The engine, in the worker thread, generates chunk after chunk from the
keys; each chunk comes back as a ``play_chunk`` event (a queued signal) and its frames go on a
queue that a timer plays at the project's fps. When a chunk starts playing the session's
:class:`~worldstudio.core.play.Pacer` hears of it, so the next chunk is prepared while this one
plays and the keys pressed now steer it. The GUI thread never waits for the engine.

The Play action first opens the view *ready*: the strip's backend, quality and size can be
chosen, and Enter (or Start) starts the session. Space pauses and resumes (the job holds between steps, the screen holds its frame); Esc or P
stops: the chunk under way finishes, the session becomes an ordinary run, and its camera motion
becomes keyframes fitted to the played poses (fitted in the job's thread), pushed as ONE
undoable edit. The view closes when the job ends.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QWidget

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.acceleration import QUALITIES, QUALITY_HELP
from worldstudio.core.play import KeyState, Pacer, PlayOptions, PlaySession
from worldstudio.core.play.backends import play_quality
from worldstudio.core.project import ProjectFolder
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.play.view import READY, SIZES, PlayView
from worldstudio.studio.worker import GPU, JobHandle, JobRunner

BACKENDS = ("geometry", "oracle", "ideal", "wan-vace", "liveworld")
FRAMES_PER_ACTION = 4
"""Frames a step lasts in the studio (half a headless step, at the same speed): a key steers
the path from the step after the frames already decided, so shorter steps answer sooner."""


class PlayMode(QObject):
    """Play mode over ``host`` (the widget the view covers). ``save()`` saves the project (the
    engine reads the saved one); ``ask_save()`` asks first (tests replace it)."""

    active_changed = Signal(bool)
    session_finished = Signal(object)  # the PlayResult of a session that ended well
    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(
        self,
        doc: ProjectDocument,
        runner: JobRunner,
        host: QWidget,
        save: Callable[[], bool] | None = None,
        start_pose: Callable[[], tuple[np.ndarray, float] | None] | None = None,
    ):
        super().__init__(host)
        self.doc = doc
        self.runner = runner
        self.host = host
        self._save = save
        self.start_pose = start_pose or self._playhead_pose
        self.ask_save: Callable[[], bool] = lambda: True
        self.keys = KeyState()
        self.pacer: Pacer | None = None
        self.session: PlaySession | None = None
        self.job: JobHandle | None = None
        self.result = None
        self.view = PlayView(self.keys, host)
        self.view.hide()
        self.view.pause_toggled.connect(self.toggle_pause)
        self.view.stop_requested.connect(self.stop)
        self.view.start_requested.connect(self._start_from_view)
        self.view.backend_box.addItems(list(BACKENDS))
        for name in QUALITIES:
            self.view.quality_box.addItem(name)
            self.view.quality_box.setItemData(
                self.view.quality_box.count() - 1, QUALITY_HELP[name], Qt.ItemDataRole.ToolTipRole
            )
        self.view.backend_box.currentTextChanged.connect(self._backend_quality)
        self._queue: deque[tuple[int, np.ndarray, str]] = deque()
        self._playing_chunk = -1
        self._shown: deque[float] = deque(maxlen=32)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        host.installEventFilter(self)

    @property
    def active(self) -> bool:
        return self.view.isVisible()

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.ended

    # ------------------------------------------------------------------ entering and leaving
    def toggle(self) -> None:
        """The Play action: open the view ready to start, or stop the session under way, or close
        the view."""
        if self.running:
            self.stop()
        elif self.active:
            self._close()
        else:
            self.open()

    def open(self) -> None:
        """Show the view ready to start: the strip's settings can be changed, Enter starts."""
        self._refresh_choices()
        self.keys.release_all()
        self.view.settings_strip.setEnabled(True)
        self.view.set_stats(
            status=READY, latency=None, gen_fps=None, show_fps=None, chunk=-1, action="(SN)"
        )
        self._show_view()

    def _start_from_view(self) -> None:
        if not self.running:
            self.start()

    def _refresh_choices(self) -> None:
        v = self.view
        g = self.doc.project.generation
        if v.backend_box.findText(g.backend) < 0:
            v.backend_box.addItem(g.backend)
        if not self.active:
            v.backend_box.setCurrentText(g.backend)
            self._backend_quality(g.backend)

    def _backend_quality(self, backend: str) -> None:
        """A backend chosen: the quality it plays with (wan-vace: draft; others: the project's)."""
        quality = play_quality(backend) or self.doc.project.generation.quality
        self.view.quality_box.setCurrentText(quality)

    def options(self) -> PlayOptions:
        """The session's options from the view's settings strip and the start pose."""
        v = self.view
        size_text = v.size_box.currentText()
        size = None
        if size_text in SIZES[1:]:
            w, h = size_text.split("x")
            size = (int(w), int(h))
        pose = self.start_pose()
        return PlayOptions(
            keys=self.keys,
            pacer=self.pacer,
            frames_per_action=FRAMES_PER_ACTION,
            backend=v.backend_box.currentText() or None,
            quality=v.quality_box.currentText() or None,
            size=size,
            start_c2w=None if pose is None else pose[0],
            fov=None if pose is None else pose[1],
            depth=False,
            ply_every=0,
            fit_keyframes=True,
        )

    def _playhead_pose(self) -> tuple[np.ndarray, float] | None:
        """The camera at the playhead (None without a path: the session starts at the source
        camera)."""
        return self.doc.pose_at(self.doc.playhead)

    def start(self) -> bool:
        """Open the view and start a live session (saving the project first, asking)."""
        if not self.runner.can_start(GPU):
            self._refuse("Another job is running; wait for it or cancel it")
            return False
        if not self._ensure_saved():
            return False
        self._refresh_choices()
        self.keys.release_all()
        self.pacer = Pacer()
        try:
            self.session = PlaySession(self.doc.folder, self.options())
        except WorldStudioError as exc:
            self._refuse(str(exc))
            return False
        handle = self.runner.start(self.session, "Play", GPU)
        if handle is None:
            return False
        self.job = handle
        self.result = None
        handle.event.connect(self._on_event)
        handle.finished.connect(self._on_finished)
        handle.failed.connect(self._on_failed)
        handle.cancelled.connect(self._on_cancelled)
        handle.state_changed.connect(self._on_state)
        self._queue.clear()
        self._playing_chunk = -1
        self._shown.clear()
        self.view.image = None
        self.view.frames_shown = 0
        self.view.set_stats(
            status="starting…", latency=None, gen_fps=None, show_fps=None, chunk=-1, action="(SN)"
        )
        self.view.settings_strip.setEnabled(False)
        self._show_view()
        fps = max(1, int(self.doc.project.generation.fps))
        self._timer.start(max(1, round(1000 / fps)))
        return True

    def _show_view(self) -> None:
        was_active = self.active
        self._cover()
        self.view.show()
        self.view.raise_()
        self.view.setFocus()
        if not was_active:
            self.active_changed.emit(True)

    def _refuse(self, text: str) -> None:
        """A session that cannot start: said in the status bar and, when ready, in the view."""
        self.message.emit(text, True)
        if self.active:
            self.view.set_stats(status=f"{text}\nEsc closes")

    def _ensure_saved(self) -> bool:
        if self.doc.folder is not None and not self.doc.is_modified:
            return True
        if self.doc.folder is None:
            self.message.emit("Save the project first: a play session is a run in its folder", True)
            return False
        if not self.ask_save():
            return False
        try:
            ok = self._save() if self._save is not None else bool(self.doc.save())
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
            return False
        return bool(ok)

    def stop(self) -> None:
        """End the session after the chunk under way (its run and keyframes are kept)."""
        if self.session is not None and self.running:
            self.session.stop()
            if self.job is not None:
                self.job.resume()  # a paused session must reach its end
            self.view.set_stats(status="stopping after this chunk…")
        elif not self.running:
            self._close()

    def toggle_pause(self) -> None:
        if not self.running or self.job is None:
            return
        if self.job.pause_requested:
            self.job.resume()
            self._timer.start()
            self.view.set_stats(status="")
        else:
            self.job.pause()
            self._timer.stop()
            self.view.set_stats(status="paused (Space resumes)")

    def _close(self) -> None:
        self._timer.stop()
        self.keys.release_all()
        self.view.settings_strip.setEnabled(True)
        self.view.hide()
        self.active_changed.emit(False)

    def _cover(self) -> None:
        self.view.setGeometry(self.host.rect())

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if obj is self.host and ev.type() == QEvent.Type.Resize and self.view.isVisible():
            self._cover()
        return False

    # ------------------------------------------------------------------ the session's reports
    def _on_event(self, name: str, data: dict) -> None:
        if name != "play_chunk":
            return
        frames = np.asarray(data["frames"])
        steps = list(data.get("steps") or [])
        for i in range(len(frames)):
            self._queue.append((int(data["round"]), frames[i], steps[i] if i < len(steps) else ""))
        self.view.set_stats(latency=float(data["latency"]), gen_fps=data.get("fps"))

    def _tick(self) -> None:
        """One frame of playback, if there is one; the pacer hears when a chunk starts."""
        if not self._queue:
            if self.running and self.view.frames_shown and not self.job.pause_requested:
                self.view.set_stats(status="waiting for the next chunk…")
            return
        chunk, frame, step = self._queue.popleft()
        if chunk != self._playing_chunk:
            self._playing_chunk = chunk
            if self.pacer is not None:
                self.pacer.playing(chunk)
        now = time.perf_counter()
        self._shown.append(now)
        fps = None
        if len(self._shown) >= 2 and self._shown[-1] > self._shown[0]:
            fps = (len(self._shown) - 1) / (self._shown[-1] - self._shown[0])
        status = "" if self.session is None or not self.session.source.stopped else self.view.status
        self.view.set_stats(
            chunk=chunk, action=step or self.view.action, show_fps=fps, status=status
        )
        self.view.show_frame(frame)

    def _on_state(self, state: str) -> None:
        if state == "paused":
            self.view.set_stats(status="paused (Space resumes)")

    def _on_finished(self, result) -> None:
        self.result = result
        keyframes = result.keyframes or []
        if len(keyframes) >= 2:
            commands.replace_keyframes(self.doc, keyframes, text="Play session camera path")
        self.message.emit(
            f"Play: run {result.run.run_id}, {result.frames} frames; the camera path is now the "
            f"played one ({len(keyframes)} keyframes, Ctrl+Z undoes it)",
            False,
        )
        self._close()
        self.session_finished.emit(result)

    def _on_failed(self, message: str) -> None:
        """Back to ready, the error on screen: another backend or size may do."""
        self.message.emit(f"Play failed: {message}", True)
        self._timer.stop()
        self.keys.release_all()
        self.view.settings_strip.setEnabled(True)
        self.view.set_stats(status=f"Play failed: {message}\nEnter retries · Esc closes")

    def _on_cancelled(self) -> None:
        run = self.session.run_dir if self.session is not None else None
        kept = f" (finished chunks are kept in {Path(run).name})" if run else ""
        self.message.emit(f"Play cancelled{kept}", False)
        self._close()

    def run_folder(self) -> Path | None:
        """The run of the latest session."""
        if self.session is None or self.session.run_dir is None:
            return None
        return Path(self.session.run_dir)

    def runs_dir(self) -> Path | None:
        return None if self.doc.folder is None else ProjectFolder(self.doc.folder).runs_dir
