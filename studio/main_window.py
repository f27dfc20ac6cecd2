"""The studio's main window: viewport, docks, timeline, menus, shortcuts, jobs, autosave.

Widgets only talk to the :class:`~studio.document.ProjectDocument`: they edit it through
:mod:`worldstudio.studio.commands` and redraw from its signals. The window owns the document for its whole
life; opening another project loads into the same document (``doc.load``).

Jobs run through the window's :class:`~studio.worker.JobRunner`; each panel follows the handle of
the job it started, the status bar follows the latest running job. The file and interop actions
see the window as a :class:`~studio.shell.Shell`; playback is :class:`~studio.playback.Playback`.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolBar,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.jobs.progress import Eta, format_elapsed, format_seconds_left
from worldstudio.core.project import ProjectFolder
from worldstudio.studio import commands, field_guard
from worldstudio.studio import settings as app_settings
from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.frame_renderer import FrameRenderer
from worldstudio.studio.jobs_queue import LIGHT, QueueDriver
from worldstudio.studio.panels.camera_view import CameraViewPanel
from worldstudio.studio.panels.entities import EntitiesPanel
from worldstudio.studio.panels.inspector import InspectorPanel
from worldstudio.studio.panels.player import VideoPlayer
from worldstudio.studio.panels.rounds import RoundsPanel
from worldstudio.studio.playback import Playback
from worldstudio.studio.timeline import TimelineWidget
from worldstudio.studio.util import icon, pixmap_fit
from worldstudio.studio.worker import GPU, JobHandle, JobRunner

AUTOSAVE_SECONDS = 60
THUMB_W, THUMB_H = 256, 144
QUIT_WAIT_MS = 10000  # how long quitting waits for cancelled jobs to stop
LAYOUT_VERSION = 5  # bump when the docks change, so an old saved layout is not restored


def _file_name(name: str) -> str:
    """A project's name as a folder name: letters, digits, '-' and '_' (spaces become '-')."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())
    return "-".join(part for part in cleaned.split("-") if part) or "project"


class MainWindow(QMainWindow):
    """The World Studio window. ``viewport=False`` uses a placeholder instead of the GL view.

    It is the :class:`~studio.shell.Shell` of the interop actions."""

    preview_ready = Signal(str)  # path of a rendered preview, once it is loaded in the player

    def __init__(
        self,
        doc: ProjectDocument | None = None,
        viewport: bool = True,
        autosave_seconds: float = AUTOSAVE_SECONDS,
        start_renders_after_ms: int | None = 1500,
    ):
        super().__init__()
        self.doc = doc if doc is not None else ProjectDocument(parent=self)
        self.doc.setParent(self)
        self.settings = app_settings.settings()
        self.runner = JobRunner(self)
        self.queue_driver = QueueDriver(self.runner, parent=self)  # the on-disk job queue
        self.shown_job: JobHandle | None = None  # the job the status bar follows
        self.playback = Playback(self.doc, self)
        self.frame_renderer = FrameRenderer(self)
        self.last_preview: Path | None = None
        # Questions the window asks; tests replace them with plain functions.
        self.ask_unsaved = self._ask_unsaved
        self.ask_recover = self._ask_recover

        self._layout_restored = False  # a saved layout was restored at start
        self._sized = False  # the default dock sizes were applied
        self._geometry_restored = False  # the window's saved size and place were restored
        self.setObjectName("MainWindow")
        self.setDockNestingEnabled(True)
        self._make_central(viewport)
        self._make_docks()
        self._make_play_mode()
        self._make_actions()
        self._make_menus()
        self._make_toolbar()
        self._make_statusbar()
        self.runner.started.connect(self._job_started)
        self.runner.jobs_changed.connect(self._update_frame_actions)
        self.queue_driver.changed.connect(self._update_frame_actions)
        self.playback.playing_changed.connect(self._playing_changed)

        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        if autosave_seconds > 0:
            self.autosave_timer.start(int(autosave_seconds * 1000))

        self.doc.changed.connect(self._on_changed)
        self.doc.selection_changed.connect(self._on_selection)
        self.doc.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.doc.playhead_changed.connect(self._update_frame_actions)
        self.frame_renderer.rendered.connect(self._on_render)
        self._renders_started = False
        if start_renders_after_ms is not None:
            QTimer.singleShot(start_renders_after_ms, self.start_renders)
        self._update_title()
        self._update_frame_actions()
        self._restore_layout()
        field_guard.guard_fields(self)  # the wheel and Ctrl+Z rules on every form field

    # ================================================================== building
    def _make_central(self, want_viewport: bool) -> None:
        self.viewport = None
        if want_viewport and QApplication.platformName() not in ("offscreen", "minimal"):
            try:
                from worldstudio.studio.viewport import Viewport

                self.viewport = Viewport(self.doc)
            except Exception as exc:  # noqa: BLE001 - no GL: the rest of the studio still works
                self._viewport_error = f"3D view unavailable: {exc}"
        if self.viewport is not None:
            self.setCentralWidget(self.viewport)
            return
        placeholder = QLabel(getattr(self, "_viewport_error", "3D view disabled"))
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        placeholder.setObjectName("viewportPlaceholder")
        self.setCentralWidget(placeholder)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _make_docks(self) -> None:
        """The default layout: the viewport in the middle gets most of the window; the
        inspector with the rounds and entities on the left; the camera view (and the player)
        above Generate and Training on the right, in a column of their own; the timeline (and
        the log) along the bottom. Each dock can be moved; the layout is saved on quit and
        Window ▸ Reset layout brings this one back."""
        L, R, B = (
            Qt.DockWidgetArea.LeftDockWidgetArea,
            Qt.DockWidgetArea.RightDockWidgetArea,
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        V = Qt.Orientation.Vertical
        self.setCorner(Qt.Corner.BottomLeftCorner, L)
        self.setCorner(Qt.Corner.BottomRightCorner, R)
        self.inspector = InspectorPanel(self.doc)
        self.rounds_panel = RoundsPanel(self.doc)
        self.entities_panel = EntitiesPanel(self.doc, self.current_view, self.runner)
        self.player = VideoPlayer()
        self.camera_view = CameraViewPanel(self.doc, self.frame_renderer)
        self.timeline = TimelineWidget(self.doc)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setObjectName("log")
        self.log_view.setMaximumBlockCount(5000)

        self.inspector_dock = self._dock("Inspector", "inspectorDock", self.inspector, L)
        self.rounds_dock = self._dock("Rounds", "roundsDock", self.rounds_panel, L)
        self.entities_dock = self._dock(
            "Entities && monitors", "entitiesDock", self.entities_panel, L
        )
        self.camera_dock = self._dock("Camera view", "cameraViewDock", self.camera_view, R)
        self.player_dock = self._dock("Player", "playerDock", self.player, R)
        self.timeline_dock = self._dock("Timeline", "timelineDock", self.timeline, B)
        self.log_dock = self._dock("Log", "logDock", self.log_view, B)
        self._make_generation_docks()
        # Splits first, then tabs (splitting a dock that is already in a tab group adds to the
        # group instead).
        self.splitDockWidget(self.inspector_dock, self.rounds_dock, V)
        self.splitDockWidget(self.camera_dock, self.generate_dock, V)
        self.tabifyDockWidget(self.rounds_dock, self.entities_dock)
        self.tabifyDockWidget(self.camera_dock, self.player_dock)
        self.tabifyDockWidget(self.generate_dock, self.training_dock)
        self.tabifyDockWidget(self.timeline_dock, self.log_dock)
        self.tabifyDockWidget(self.log_dock, self.jobs_dock)
        for dock in (self.rounds_dock, self.camera_dock, self.generate_dock, self.timeline_dock):
            dock.raise_()
        self._default_state = self.saveState(LAYOUT_VERSION)

    def _default_size(self) -> None:
        """1560x960, or less on a smaller screen. Applied once shown: before, the docks' tab
        groups are not formed yet and the window cannot be narrower than all of them side by
        side."""
        width, height = 1560, 960
        screen = QGuiApplication.primaryScreen()
        if screen is not None:
            free = screen.availableGeometry()
            width, height = min(width, free.width()), min(height, free.height())
        self.resize(width, height)

    def _default_sizes(self) -> None:
        """The default docks' sizes (they only take once the window has its size: at the first
        show without a saved layout, and on Reset layout)."""
        H, V = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        self.resizeDocks([self.inspector_dock, self.camera_dock], [340, 440], H)
        self.resizeDocks([self.inspector_dock, self.rounds_dock], [560, 300], V)
        self.resizeDocks([self.camera_dock, self.generate_dock], [290, 620], V)
        self.resizeDocks([self.timeline_dock], [230], V)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._layout_restored and not self._sized:
            self._sized = True
            if not self._geometry_restored:
                QTimer.singleShot(0, self._default_size)
            QTimer.singleShot(0, self._default_sizes)  # once the window has its final size

    def _make_generation_docks(self) -> None:
        """The Generate and Training docks (tabbed together under the camera view, on the right)
        and the timeline's Run row."""
        from worldstudio.studio.panels.generate import GeneratePanel
        from worldstudio.studio.panels.jobs import JobsPanel
        from worldstudio.studio.panels.training import TrainingPanel
        from worldstudio.studio.timeline.run_track import RunTrack

        self.generate_panel = gp = GeneratePanel(
            self.doc, self.runner, save=self.save, queue=self.queue_driver
        )
        gp.on_models = self._download_models
        gp.on_camera = self.path_dialog
        self.jobs_panel = JobsPanel(self.queue_driver)
        self.jobs_dock = self._dock(
            "Jobs", "jobsDock", self.jobs_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.queue_driver.message.connect(self.show_message)
        self.training_panel = tp = TrainingPanel(self.doc, self.runner, queue=self.queue_driver)
        self.run_track = RunTrack(self.timeline)
        self.timeline.layout().addWidget(self.run_track)
        self.generate_dock = self._dock(
            "Generate", "generateDock", gp, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.training_dock = self._dock(
            "Training", "trainingDock", tp, Qt.DockWidgetArea.RightDockWidgetArea
        )
        gp.play_requested.connect(self.play_video)
        gp.run_changed.connect(self.run_track.show_run)
        gp.message.connect(self.show_message)
        tp.sample_ready.connect(self.play_video)
        tp.adapter_ready.connect(lambda _path: gp.refresh_loras())
        tp.message.connect(self.show_message)
        self.run_track.round_clicked.connect(self.play_video)

    def _make_play_mode(self) -> None:
        """Play mode over the central area (:mod:`worldstudio.studio.play`)."""
        from worldstudio.studio.play import PlayMode

        self.play_mode = PlayMode(self.doc, self.runner, self.centralWidget(), save=self.save)
        self.play_mode.message.connect(self.show_message)
        self.play_mode.session_finished.connect(lambda _result: self.generate_panel.refresh())

    def generate(self) -> JobHandle | None:
        """Render ▸ Generate video (Ctrl+G, the toolbar's Generate): what the Generate panel's
        button does, with the panel brought to the front."""
        self.generate_dock.show()
        self.generate_dock.raise_()
        if not self.generate_panel.generate():
            return None
        return self.generate_panel.job

    def _playing_changed(self, playing: bool) -> None:
        self.act_play.setText("Pause" if playing else "Play / pause")
        self.tb_play.setIcon(icon("pause" if playing else "play"))
        self.tb_play.setText("Pause" if playing else "Play")

    def play_video(self, path: str | Path) -> None:
        """Open an mp4 (a run's result, a round, a training sample) in the player dock."""
        self.player.load(path)
        self.player_dock.show()
        self.player_dock.raise_()

    def widget(self) -> QWidget:
        return self

    def add_action(
        self, text: str, slot, shortcut=None, tip: str | None = None, name: str | None = None
    ) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip + (f" ({a.shortcut().toString()})" if shortcut else ""))
        a.triggered.connect(lambda _checked=False: slot())
        if name:
            a.setObjectName(name)
        self.addAction(a)  # shortcuts work wherever the focus is in the window
        return a

    def _make_actions(self) -> None:
        K = QKeySequence.StandardKey
        a = self.add_action
        self.act_new_image = a(
            "New from image…",
            self.new_from_image,
            "Ctrl+Shift+N",
            "Reconstruct a new project from one photo",
        )
        self.act_new_demo = a(
            "New demo project…", self.new_demo_project, tip="Create a copy of the demo project"
        )
        self.act_open = a("Open…", self.open_dialog, K.Open, "Open a project folder")
        self.act_save = a("Save", self.save, K.Save, "Save the project")
        self.act_save_as = a("Save as…", self.save_as, K.SaveAs, "Save the project to a new folder")
        self.act_export_video = a(
            "Last preview video…", self.export_video, tip="Copy the last rendered preview"
        )
        self.act_models = a(
            "Manage models…",
            self.show_models,
            tip="Which models are here, download them, or use local folders",
        )
        self.act_quit = a("Quit", self.close, K.Quit)

        self.act_undo = self.doc.undo_stack.createUndoAction(self, "Undo")
        self.act_undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.act_redo = self.doc.undo_stack.createRedoAction(self, "Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for act in (self.act_undo, self.act_redo):
            self.addAction(act)
        self.act_delete = a(
            "Delete selection",
            self.delete_selection,
            QKeySequence.StandardKey.Delete,
            "Delete the selected keyframe, monitor or entity",
        )
        self.act_deselect = a("Select none", lambda: self.doc.set_selection(None), "Ctrl+Shift+A")
        self.act_grab = a(
            "Move selection",
            lambda: self.transform_selection("move"),
            "G",
            "Move the selected keyframe, monitor or entity with the mouse (X/Y/Z: along an axis, "
            "type a distance, Enter: done, Esc: cancel)",
            "moveSelection",
        )
        self.act_rotate = a(
            "Rotate selection",
            lambda: self.transform_selection("rotate"),
            "R",
            "Rotate the selected keyframe or monitor with the mouse (X/Y/Z: about an axis, type "
            "an angle, Enter: done, Esc: cancel)",
            "rotateSelection",
        )

        self.act_add_kf = a(
            "Add keyframe from view",
            self.add_keyframe_from_view,
            "I",
            "Add a keyframe at the playhead from the current view",
            "addKeyframe",
        )
        self.act_del_kf = a(
            "Delete keyframe",
            self.delete_keyframe,
            "Alt+I",
            "Delete the selected keyframe (or the one at the playhead)",
            "deleteKeyframe",
        )
        self.act_path_dialog = a(
            "Presets && action strings…",
            self.path_dialog,
            "Ctrl+P",
            "Build the path from a preset or an action string",
        )
        self.act_play = a(
            "Play / pause", self.playback.toggle, "Space", "Play the path at the project's fps"
        )
        self.act_next = a("Next frame", lambda: self.playback.step(1), "Right")
        self.act_prev = a("Previous frame", lambda: self.playback.step(-1), "Left")
        self.act_next_kf = a("Next keyframe", lambda: self.playback.jump_keyframe(1), "Up")
        self.act_prev_kf = a("Previous keyframe", lambda: self.playback.jump_keyframe(-1), "Down")
        self.act_start = a("Go to start", lambda: self.doc.set_playhead(0), "Shift+Left")
        self.act_end = a(
            "Go to end", lambda: self.doc.set_playhead(self.doc.frame_count() - 1), "Shift+Right"
        )
        self.act_look_playhead = a(
            "Look through playhead camera", self.look_through_playhead, "Ctrl+0"
        )
        self.act_look_selected = a("Look through selection", self.look_through_selection, "Ctrl+1")
        self.act_follow = a(
            "Follow playhead", lambda: self.set_follow(self.act_follow.isChecked()), "Ctrl+2"
        )
        self.act_follow.setCheckable(True)
        self.act_frame_scene = a(
            "Frame the scene", self._frame_scene, None, "Back to the source camera"
        )
        self.act_add_monitor = a(
            "Add monitor from view", self.entities_panel.add_monitor_from_view, "Ctrl+M"
        )
        self.act_add_entity = a(
            "Add entity from source image…", self.entities_panel.add_entity_dialog, "Ctrl+E"
        )
        self.act_add_entity_3d = a(
            "Add entity by clicking in the 3D view",
            self.add_entity_from_3d_click,
            "Ctrl+Shift+E",
            "Click a thing in the 3D view: SAM 2 masks it on the source image",
            "addEntity3d",
        )
        self.act_add_round = a("Add round", lambda: commands.add_round(self.doc), "Ctrl+R")

        self.act_render = a(
            "Render preview",
            self.render_preview,
            "Ctrl+Shift+R",
            "Render the geometry preview along the path to mp4 and play it",
            "renderPreview",
        )
        self.act_play_world = a(
            "Play world",
            self.play_mode.toggle,
            "P",
            "Drive the world live with the keys: the engine generates chunk after chunk",
            "playWorld",
        )
        self.act_play_world.setCheckable(True)
        self.play_mode.active_changed.connect(self.act_play_world.setChecked)
        self.act_generate = a(
            "Generate video",
            self.generate,
            "Ctrl+G",
            "Generate the project's video round by round with the Generate panel's settings",
            "generate",
        )
        self.act_generate.setIcon(icon("generate"))
        self.act_cancel = a(
            "Cancel job", self.cancel_job, None, "Stop the job the status bar shows"
        )
        self.act_cancel.setEnabled(False)
        self.act_reset_layout = a(
            "Reset layout", self.reset_layout, tip="Put every panel back where it was at first"
        )

    def _make_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_new_image)
        m.addAction(self.act_new_demo)
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        m.addAction(self.act_save)
        m.addAction(self.act_save_as)
        m.addSeparator()
        self._make_interop_menus(m)
        m.addSeparator()
        m.addAction(self.act_quit)

        m = mb.addMenu("&Edit")
        m.addAction(self.act_undo)
        m.addAction(self.act_redo)
        m.addSeparator()
        m.addAction(self.act_delete)
        m.addAction(self.act_deselect)
        m.addSeparator()
        m.addAction(self.act_grab)
        m.addAction(self.act_rotate)

        m = mb.addMenu("&Camera")
        for act in (
            self.act_add_kf,
            self.act_del_kf,
            self.act_path_dialog,
            None,
            self.act_play,
            self.act_prev,
            self.act_next,
            self.act_prev_kf,
            self.act_next_kf,
            self.act_start,
            self.act_end,
            None,
            self.act_look_playhead,
            self.act_look_selected,
            self.act_follow,
            self.act_frame_scene,
        ):
            m.addSeparator() if act is None else m.addAction(act)

        m = mb.addMenu("&World")
        m.addAction(self.act_add_entity)
        m.addAction(self.act_add_entity_3d)
        m.addAction(self.act_add_monitor)
        m.addAction(self.act_add_round)

        m = mb.addMenu("&Render")
        m.addAction(self.act_generate)
        m.addAction(self.act_render)
        m.addAction(self.act_play_world)
        m.addSeparator()
        m.addAction(self.act_cancel)

        m = mb.addMenu("&Window")
        for dock in (
            self.inspector_dock,
            self.camera_dock,
            self.rounds_dock,
            self.entities_dock,
            self.player_dock,
            self.timeline_dock,
            self.log_dock,
        ):
            m.addAction(dock.toggleViewAction())
        for dock in (self.generate_dock, self.training_dock, self.jobs_dock):
            m.addAction(dock.toggleViewAction())
        m.addSeparator()
        m.addAction(self.act_reset_layout)

        m = mb.addMenu("&Models")
        m.addAction(self.act_models)

        m = mb.addMenu("&Help")
        m.addAction(self.add_action("Keyboard shortcuts", self.show_shortcuts))
        self.act_system_report = self.add_action(
            "System report…",
            self.show_system_report,
            tip="This machine's GPU, CUDA, models, ffmpeg and OpenGL, to paste into a bug report",
        )
        m.addAction(self.act_system_report)
        m.addAction(self.add_action("About World Studio", self.show_about))

    def _make_interop_menus(self, file_menu) -> None:
        """File ▸ Import and File ▸ Export (studio/interop_actions.py)."""
        from worldstudio.studio.interop_actions import InteropActions

        self.interop = InteropActions(self)
        self.import_menu = file_menu.addMenu("Import")
        self.interop.fill_import_menu(self.import_menu)
        self.export_menu = file_menu.addMenu("Export")
        self.interop.fill_export_menu(self.export_menu)
        self.export_menu.addSeparator()
        self.export_menu.addAction(self.act_export_video)

    def _make_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        # Undo and Redo keep their width: the menu's actions say what they undo, these say it in
        # the tooltip only (a toolbar whose buttons shift under the mouse is hard to use).
        stack = self.doc.undo_stack
        self.tb_undo = QAction("Undo", self)
        self.tb_undo.triggered.connect(stack.undo)
        self.tb_redo = QAction("Redo", self)
        self.tb_redo.triggered.connect(stack.redo)
        stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        stack.undoTextChanged.connect(lambda t: self.tb_undo.setToolTip(f"Undo {t} (Ctrl+Z)"))
        stack.redoTextChanged.connect(lambda t: self.tb_redo.setToolTip(f"Redo {t} (Ctrl+Shift+Z)"))
        self.tb_undo.setEnabled(stack.canUndo())
        self.tb_redo.setEnabled(stack.canRedo())
        self.tb_play = QAction(icon("play"), "Play", self)
        self.tb_play.setToolTip("Play / pause the path (Space)")
        self.tb_play.triggered.connect(self.playback.toggle)
        for act in (
            self.act_open,
            self.act_save,
            None,
            self.tb_undo,
            self.tb_redo,
            None,
            self.act_add_kf,
            self.act_del_kf,
            self.act_path_dialog,
            None,
            self.tb_play,
            None,
            self.act_render,
            self.act_generate,
            self.act_play_world,
        ):
            tb.addSeparator() if act is None else tb.addAction(act)
        tb.widgetForAction(self.act_generate).setObjectName("generateToolButton")
        play = tb.widgetForAction(self.tb_play)
        widths = []
        for text in ("Pause", "Play"):  # as wide as its widest label: nothing shifts
            self.tb_play.setText(text)
            widths.append(play.sizeHint().width())
        play.setFixedWidth(max(widths))
        if self.viewport is not None and hasattr(self.viewport, "set_point_size"):
            tb.addSeparator()
            tb.addWidget(QLabel(" Point size "))
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(1, 12)
            s.setValue(int(round(getattr(self.viewport, "point_size", 2.0))))
            s.setFixedWidth(110)
            s.valueChanged.connect(lambda v: self.viewport.set_point_size(float(v)))
            tb.addWidget(s)
            self.point_size_slider = s
        self.toolbar = tb

    def _make_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("")
        self.status_label.setObjectName("statusMessage")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.job_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_job)
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.job_label)
        self.job_times = QLabel("")  # elapsed and time left of the shown job
        self.job_times.setObjectName("hint")
        sb.addPermanentWidget(self.job_times)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        self.progress.hide()
        self.cancel_button.hide()
        self._status_eta = Eta()
        self._status_left: tuple[float, float] | None = None  # (seconds left, when said)
        self._job_clock = QTimer(self)
        self._job_clock.setInterval(1000)
        self._job_clock.timeout.connect(self._update_job_label)

    # ================================================================== status and title
    def log(self, text: str) -> None:
        self.log_view.appendPlainText(f"[{datetime.now():%H:%M:%S}] {text}")

    def show_message(self, text: str, error: bool = False) -> None:
        self.status_label.setProperty("error", error)
        self.status_label.setStyleSheet("color: #ff8a7a;" if error else "")
        self.status_label.setText(text)
        if error:
            self.log("error: " + text)

    def _on_clean_changed(self, _clean: bool) -> None:
        try:
            self._update_title()
        except RuntimeError:  # the undo stack emits while it is being destroyed with the window
            pass

    def _update_title(self) -> None:
        mark = "*" if self.doc.is_modified else ""
        where = f" — {self.doc.folder}" if self.doc.folder else ""
        self.setWindowTitle(f"{self.doc.project.name}{mark}{where} — World Studio")

    def _on_changed(self, aspect: str) -> None:
        self._update_title()
        self._update_frame_actions()
        if aspect in ("path", "all", "scene") and self._selected_keyframe() is not None:
            self._request_thumbnail()

    def _on_selection(self, sel) -> None:
        self._update_frame_actions()
        if sel is not None and sel.kind == "keyframe":
            self._request_thumbnail()

    def _update_frame_actions(self, *_args) -> None:
        has_kf = bool(self.doc.project.camera_path.keyframes)
        self.act_del_kf.setEnabled(has_kf)
        self.act_render.setEnabled(  # a light job: it may render beside a generation
            self.runner.can_start(LIGHT) and has_kf and self.doc.cloud is not None
        )
        # Generate queues behind other GPU work; one run (running or queued) per panel
        gp = self.generate_panel
        self.act_generate.setEnabled(not gp.running and gp.queued is None)

    # ================================================================== views and cameras
    def current_view(self) -> tuple[np.ndarray, float] | None:
        """(c2w, fov) of what the user looks at: the viewport camera, else the playhead camera."""
        if self.viewport is not None and hasattr(self.viewport, "current_view_pose"):
            c2w, fov = self.viewport.current_view_pose()
            return np.asarray(c2w, dtype=np.float64), float(fov)
        pose = self.doc.pose_at(self.doc.playhead)
        if pose is not None:
            return pose
        return np.eye(4), self._source_fov()

    def _source_fov(self) -> float:
        p = self.doc.project
        if p.intrinsics is None:
            return 60.0
        from worldstudio.core.geometry.camera import fov_from_intrinsics

        return float(fov_from_intrinsics(np.array(p.intrinsics.K), p.intrinsics.height))

    def _frame_scene(self) -> None:
        if self.viewport is not None:
            self.viewport.frame_scene()

    def look_through_playhead(self) -> None:
        if self.viewport is not None:
            self.viewport.look_through_playhead()

    def look_through_selection(self) -> None:
        sel = self.doc.selection
        if self.viewport is None or sel is None:
            return
        if sel.kind == "keyframe":
            self.viewport.look_through_keyframe(sel.id)
        elif sel.kind == "monitor":
            self.viewport.look_through_monitor(sel.id)

    def set_follow(self, on: bool) -> None:
        if self.viewport is not None:
            self.viewport.set_follow_playhead(on)

    def start_renders(self) -> None:
        """Start the torch-backed renders (playhead pane, thumbnails) once the window is up."""
        if self._renders_started:
            return
        self._renders_started = True
        self.camera_view.start()
        self._request_thumbnail()

    def _selected_keyframe(self):
        sel = self.doc.selection
        if sel is None or sel.kind != "keyframe":
            return None
        try:
            return self.doc.project.camera_path.keyframe(sel.id)
        except KeyError:
            return None

    def _request_thumbnail(self) -> None:
        kf = self._selected_keyframe()
        if kf is None:
            return
        from worldstudio.core.geometry.transforms import pose_matrix

        c2w = pose_matrix(kf.position, kf.orientation)
        # The software renderer, like the preview video: the thumbnail is what the keyframe's
        # camera will render.
        if self._renders_started and self.doc.cloud is not None:
            self.frame_renderer.request(
                "thumbnail", kf.id, self.doc.cloud, c2w, kf.fov, THUMB_H, THUMB_W
            )

    def _on_render(self, key: str, tag, image) -> None:
        kf = self._selected_keyframe()
        if key == "thumbnail" and kf is not None and kf.id == tag:
            self.inspector.set_thumbnail(pixmap_fit(image, THUMB_W, THUMB_H))

    # ================================================================== camera edits
    def add_keyframe_from_view(self) -> str | None:
        """I: a keyframe at the playhead from the current view (replaces the pose of a keyframe
        already at that frame, like Blender)."""
        view = self.current_view()
        if view is None:
            return None
        c2w, fov = view
        frame = self.doc.playhead
        kfs = self.doc.project.camera_path.keyframes
        frames = self.doc.keyframe_frames()
        if frame in frames:
            kf_id = kfs[frames.index(frame)].id
            commands.move_keyframe_c2w(self.doc, kf_id, c2w)
            commands.move_keyframe(self.doc, kf_id, fov=fov)
            self.show_message(f"Keyframe at frame {frame} updated from the view")
        else:
            kf_id = commands.add_keyframe_at_frame(self.doc, c2w, fov, frame)
            self.show_message(f"Keyframe added at frame {frame}")
        self.doc.set_selection(Selection("keyframe", kf_id))
        return kf_id

    def delete_keyframe(self) -> None:
        """Alt+I: the selected keyframe, else the one at the playhead."""
        kf = self._selected_keyframe()
        if kf is None:
            frames = self.doc.keyframe_frames()
            if self.doc.playhead in frames:
                kf = self.doc.project.camera_path.keyframes[frames.index(self.doc.playhead)]
        if kf is None:
            self.show_message("Select a keyframe (or put the playhead on one) to delete it")
            return
        commands.delete_keyframe(self.doc, kf.id)
        self.show_message("Keyframe deleted")

    def delete_selection(self) -> None:
        sel = self.doc.selection
        if sel is None:
            return
        if sel.kind == "keyframe":
            commands.delete_keyframe(self.doc, sel.id)
        elif sel.kind == "monitor":
            commands.remove_monitor(self.doc, sel.id)
        elif sel.kind == "entity":
            commands.remove_entity(self.doc, sel.id)
        elif sel.kind == "round" and len(self.doc.project.rounds) > 1:
            commands.remove_round(self.doc, int(sel.id))

    def transform_selection(self, mode: str) -> bool:
        """G / R: move or rotate the selection with the mouse in the 3D view."""
        if self.viewport is None:
            self.show_message("Moving with the mouse needs the 3D view", error=True)
            return False
        why = self.viewport.begin_transform(mode)
        if why is not None:
            self.show_message(why, error=True)
            return False
        return True

    def add_entity_from_3d_click(self) -> bool:
        """World ▸ Add entity by clicking in the 3D view: the next click in the viewport picks a
        cloud point; it is projected into the source image (the source camera, identity pose)
        and the source-image dialog opens with SAM 2 run on that pixel."""
        p = self.doc.project
        if self.viewport is None:
            self.show_message("Picking in 3D needs the 3D view", error=True)
            return False
        if p.source is None or p.intrinsics is None or self.doc.cloud is None:
            self.show_message("This project has no reconstructed source image", error=True)
            return False
        self.viewport.begin_point_pick(self._entity_point_picked)
        self.show_message("Click the entity in the 3D view (Esc cancels)")
        return True

    def _entity_point_picked(self, point) -> None:
        from worldstudio.studio.panels.entities import source_pixel

        if point is None:
            self.show_message("No entity picked")
            return
        pixel = source_pixel(self.doc.project, point)
        if pixel is None:
            self.show_message(
                "That point is not in the source image: pick something the photo shows",
                error=True,
            )
            return
        self.entity_dialog = self.entities_panel.add_entity_dialog(at_pixel=pixel)

    def path_dialog(self, preset: str | None = None):
        from worldstudio.studio.panels.path_dialog import PathDialog

        dlg = PathDialog(self.doc, self.current_view, self, preset=preset)
        dlg.open()
        return dlg

    # ================================================================== jobs
    def _job_started(self, handle: JobHandle) -> None:
        """Every job logs here and says how it ended; the status bar follows the latest one."""
        self.log(f"started: {handle.description}")
        handle.log.connect(self.log)
        handle.progress.connect(self._job_progress)
        handle.failed.connect(self._job_failed)
        handle.cancelled.connect(self._job_cancelled)
        handle.finished.connect(self._job_finished)
        handle.state_changed.connect(self._job_state)
        self._show_job(handle)

    def _show_job(self, handle: JobHandle | None) -> None:
        self.shown_job = handle
        self.act_cancel.setEnabled(handle is not None)
        self._status_eta.reset()
        self._status_left = None
        if handle is None:
            self.progress.hide()
            self.cancel_button.hide()
            self.job_label.setText("")
            self.job_times.setText("")
            self._job_clock.stop()
            return
        self.progress.setRange(0, 0)
        self.progress.setFormat("%p%")
        self.progress.show()
        self.cancel_button.show()
        self._update_job_label()
        self._job_clock.start()

    def _update_job_label(self) -> None:
        """The shown job's name, how long it has run and the time left (every second)."""
        handle = self.shown_job
        if handle is None:
            return
        others = len(self.runner.jobs) - 1
        more = f" (+{others} more)" if others > 0 else ""
        times = [f"{format_elapsed(handle.elapsed())} elapsed"]
        if self._status_left is not None:
            left_now = self._status_left[0] - (time.monotonic() - self._status_left[1])
            times.append(format_seconds_left(max(0.0, left_now)))
        self.job_label.setText(f"{handle.description}{more}")
        self.job_times.setText(", ".join(times))

    def cancel_job(self) -> None:
        """Cancel the job the status bar shows."""
        if self.shown_job is not None:
            self.shown_job.cancel()

    def _job_progress(self, done: int, total: int, message: str) -> None:
        if self.sender() is not self.shown_job:
            return
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.progress.setFormat(message or "%p%")
        left = self._status_eta.update(done, total)
        self._status_left = None if left is None else (left, time.monotonic())
        self._update_job_label()

    def _job_state(self, state: str) -> None:
        handle = self.sender()
        if state == "paused":
            self.log(f"paused: {handle.description}")
        elif handle.ended and handle is self.shown_job:
            jobs = self.runner.jobs
            self._show_job(jobs[-1] if jobs else None)

    def _job_failed(self, message: str) -> None:
        handle = self.sender()
        self.show_message(f"{handle.description} failed: {message}", error=True)
        if handle.internal_error:
            self.show_crash(handle.description or "A job", message, handle.traceback)

    def show_crash(self, what: str, message: str, details: str):
        """The internal-error dialog (a bug): the message, the crash log's text and a Copy
        details button. Returned, shown non-modally."""
        from worldstudio.studio.dialogs.crash import CrashDialog

        self.crash_dialog = CrashDialog(self, what, message, details)
        self.crash_dialog.open()
        return self.crash_dialog

    def _job_cancelled(self) -> None:
        self.show_message(f"{self.sender().description}: cancelled")
        self.log("cancelled")

    def _job_finished(self, _result) -> None:
        """A job that ended well says so (no earlier "cancelled" or error stays behind)."""
        handle = self.sender()
        self.show_message(f"{handle.description}: done in {format_elapsed(handle.elapsed())}")
        self.log(f"done: {handle.description}")

    def run_job(
        self, job, description: str, on_done=None, on_failed=None, lane: str | None = GPU
    ) -> JobHandle | None:
        """Run a core job in a worker thread; ``on_done(result)`` (or ``on_failed(message)``)
        runs in the GUI thread after it. None when another job holds its lane."""
        handle = self.runner.start(job, description, lane)
        if handle is None:
            self.show_message("Another job is running; wait for it or cancel it", error=True)
            return None
        if on_done is not None:
            handle.finished.connect(on_done)
        if on_failed is not None:
            handle.failed.connect(on_failed)
        return handle

    def render_preview(
        self, width: int | None = None, height: int | None = None
    ) -> JobHandle | None:
        """Render the geometry preview to runs/preview-<time>/preview.mp4 in the worker and play
        it when done. Unsaved edits render too where render_preview_job takes the model."""
        from worldstudio.core.generation.preview import render_preview_job

        if self.doc.folder is None:
            self.show_message(
                "Save the project first: the preview goes into its runs folder", error=True
            )
            return None
        if not self.doc.project.camera_path.keyframes:
            self.show_message("The camera path has no keyframes to render", error=True)
            return None
        run = ProjectFolder(self.doc.folder).runs_dir / f"preview-{datetime.now():%Y%m%d-%H%M%S}"
        out = run / "preview.mp4"
        kwargs = self._preview_kwargs()
        if not kwargs and self.doc.is_modified:
            self.log("note: the preview renders the last saved project; save to include your edits")
        job = render_preview_job(self.doc.folder, out, width, height, **kwargs)
        self.playback.stop()
        return self.run_job(job, "Render preview", self._preview_done, lane=LIGHT)

    def _preview_kwargs(self) -> dict:
        """Pass the in-memory model when render_preview_job accepts one (unsaved edits render)."""
        import inspect

        from worldstudio.core.generation.preview import render_preview_job

        if "project" in inspect.signature(render_preview_job).parameters:
            return {"project": self.doc.project}
        return {}

    def _preview_done(self, result) -> None:
        path = Path(result)
        self.last_preview = path
        self.show_message(f"Preview written: {path}")
        self.player.load(path)
        self.player_dock.show()
        self.player_dock.raise_()
        self.preview_ready.emit(str(path))

    # ================================================================== files
    def open_project(self, folder: str | Path, offer_recovery: bool = True) -> bool:
        folder = Path(folder)
        for line in ProjectFolder(folder).clean_leftovers():  # what killed writes left behind
            self.log(line)
        try:
            self.doc.load(folder)
        except WorldStudioError as exc:
            self.show_message(str(exc), error=True)
            if self.isVisible():
                QMessageBox.warning(self, "Open project", str(exc))
            return False
        app_settings.add_recent(folder, self.settings)
        self.playback.stop()
        self._forget_previous_project()
        self._update_title()
        self._update_frame_actions()
        self.log(f"—— opened {folder}")
        self.show_message(f"Opened {folder}")
        if self.viewport is not None and hasattr(self.viewport, "overview"):
            self.viewport.overview()
        if offer_recovery:
            self._offer_recovery()
        return True

    def _forget_previous_project(self) -> None:
        """What showed the previous project goes: the player's video, the last preview, the
        playhead render, the keyframe thumbnail and the panels' run messages (a job still
        running keeps its own panel)."""
        self.last_preview = None
        self.player.clear()
        self.camera_view.clear()
        self.inspector.set_thumbnail(None)
        self.generate_panel.forget_project()
        self.training_panel.forget_project()

    def open_dialog(self) -> None:
        if not self.ensure_saved():
            return
        start = str(self.doc.folder.parent) if self.doc.folder else str(app_settings.projects_dir())
        folder = QFileDialog.getExistingDirectory(self, "Open project folder", start)
        if folder:
            self.open_project(folder)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = app_settings.recent_projects(self.settings)
        for path in items:
            act = self.recent_menu.addAction(path)
            act.setEnabled(Path(path, "project.json").is_file())
            act.triggered.connect(
                lambda _c=False, p=path: self.ensure_saved() and self.open_project(p)
            )
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction(
                "Clear list", lambda: app_settings.clear_recent(self.settings)
            )
        else:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def save(self) -> bool:
        if self.doc.folder is None:
            return self.save_as()
        return self._save_to(self.doc.folder)

    def save_as(self) -> bool:
        default = self.doc.folder or app_settings.free_folder(
            app_settings.projects_dir() / f"{_file_name(self.doc.project.name)}.wsproj"
        )
        folder, _ = QFileDialog.getSaveFileName(
            self, "Save project as (a folder)", str(default), "Project folder (*.wsproj)"
        )
        if not folder:
            return False
        if not folder.endswith(".wsproj"):
            folder += ".wsproj"
        return self._save_to(Path(folder))

    def _save_to(self, folder: Path) -> bool:
        old = self.doc.folder
        try:
            self.doc.save(folder)
        except WorldStudioError as exc:
            self.show_message(str(exc), error=True)
            return False
        if old is not None:
            ProjectFolder(old).discard_autosave()
        ProjectFolder(folder).discard_autosave()
        app_settings.add_recent(folder, self.settings)
        self._update_title()
        self.show_message(f"Saved {folder}")
        return True

    def export_video(self) -> None:
        if self.last_preview is None or not self.last_preview.is_file():
            self.show_message("Render a preview first (Render ▸ Render preview)", error=True)
            return
        start = app_settings.last_dir("export") or (
            self.doc.folder.parent if self.doc.folder else app_settings.projects_dir()
        )
        path, _ = QFileDialog.getSaveFileName(
            self, "Export preview video", str(start / "preview.mp4"), "MP4 (*.mp4)"
        )
        if path:
            shutil.copyfile(self.last_preview, path)
            app_settings.remember_dir("export", path)
            self.show_message(f"Wrote {path}")

    def new_demo_project(self) -> None:
        if not self.ensure_saved():
            return
        default = app_settings.free_folder(app_settings.projects_dir() / "demo.wsproj")
        folder, _ = QFileDialog.getSaveFileName(
            self, "New demo project (a folder)", str(default), "Project folder (*.wsproj)"
        )
        if not folder:
            return
        from worldstudio.core.oracle.demo_project import create_demo_project

        out = Path(folder)
        self.run_job(
            lambda ctx: create_demo_project(out),
            "Create demo project",
            lambda _p: self.open_project(out),
        )

    def new_from_image(self):
        """File ▸ New from image…: the dialog (returned, shown non-modally); when it is accepted
        the reconstruction runs in the worker and the new project opens when it is done."""
        from worldstudio.studio.dialogs.new_from_image import NewFromImageDialog

        if not self.ensure_saved():
            return None
        start = app_settings.last_dir("image") or Path.home()
        dlg = NewFromImageDialog(
            self,
            start_dir=start,
            open_folder=self.doc.folder,
            projects_folder=app_settings.projects_dir(),
        )
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self._new_from_image_accepted(dlg))
        dlg.open()
        return dlg

    def _new_from_image_accepted(self, dlg) -> None:
        request = dlg.request()
        app_settings.remember_dir("image", request.image)
        self.reconstruct(request)

    def reconstruct(self, request) -> JobHandle | None:
        """Run a :class:`~studio.dialogs.new_from_image.NewProjectRequest` in the worker."""
        out = request.out

        def failed(message: str) -> None:
            if self.isVisible():
                box = QMessageBox(
                    QMessageBox.Icon.Warning,
                    "New from image",
                    message,
                    QMessageBox.StandardButton.Ok,
                    self,
                )
                box.open()

        self.log(
            f"new project from {request.image} -> {out} (depth model {request.depth_model}, "
            f"size {request.size[0]}x{request.size[1]}, crop {request.crop}, fov {request.fov})"
        )
        return self.run_job(
            request.job(),
            "New from image",
            lambda _p: self.open_project(out, offer_recovery=False),
            failed,
        )

    def _download_models(self, names: tuple[str, ...]):
        """The pre-flight dialog's Download: the model manager, downloading the missing models
        one after another (online; offline it only opens, for Use folder)."""
        from worldstudio.core.models.manager import offline_reason

        dlg = self.show_models()
        if offline_reason():
            return dlg
        pending = list(names)

        def next_one(_result=None) -> None:
            while pending:
                if dlg.download(pending.pop(0)):
                    dlg.job.finished.connect(next_one)
                    return

        next_one()
        return dlg

    def show_models(self):
        """Models ▸ Manage models…: the model manager (returned, shown non-modally)."""
        from worldstudio.studio.dialogs.models import ModelsDialog

        dlg = ModelsDialog(self.runner, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        return dlg

    # ================================================================== autosave and closing
    def autosave(self) -> Path | None:
        """Write the unsaved model next to project.json (never over it)."""
        if not self.doc.is_modified or self.doc.folder is None:
            return None
        try:
            path = ProjectFolder(self.doc.folder).autosave(self.doc.project)
        except WorldStudioError as exc:
            self.show_message(str(exc), error=True)
            return None
        self.log(f"autosaved to {path}")
        return path

    def _offer_recovery(self) -> bool:
        if self.doc.folder is None:
            return False
        folder = ProjectFolder(self.doc.folder)
        try:
            found = folder.recovery(self.doc.project)
        except WorldStudioError as exc:
            self.log(f"ignoring unreadable autosave {folder.autosave_file}: {exc}")
            return False
        if found is None:
            return False
        if self.ask_recover(found.saved_at):
            self.doc.replace_project(found.project, "Recover unsaved changes")
            self.show_message(f"Recovered unsaved changes from {found.saved_at:%Y-%m-%d %H:%M}")
            return True
        folder.discard_autosave()
        return False

    def _ask_recover(self, when: datetime) -> bool:
        answer = QMessageBox.question(
            self,
            "Recover unsaved changes?",
            f"This project has unsaved changes from {when:%Y-%m-%d %H:%M} (the studio did not close "
            "normally). Recover them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_unsaved(self) -> str:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved changes")
        box.setText(f"Save the changes to “{self.doc.project.name}”?")
        box.setInformativeText("Your changes are lost if you don't save them.")
        box.setStandardButtons(
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(QMessageBox.StandardButton(answer), "cancel")

    def ensure_saved(self) -> bool:
        """True when it is fine to drop the current model (saved, discarded, or unmodified)."""
        if not self.doc.is_modified:
            return True
        choice = self.ask_unsaved()
        if choice == "save":
            return self.save()
        if choice == "discard":
            if self.doc.folder is not None:
                ProjectFolder(self.doc.folder).discard_autosave()
            return True
        return False

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.ensure_saved():
            event.ignore()
            return
        self.playback.stop()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        # quitting cancels every job (a generation records its run as cancelled) and starts
        # no queued one; a job that does not stop in time is left to the process's end (its
        # run then shows as interrupted)
        self.queue_driver.run_queue(False)
        self.queue_driver.timer.stop()
        if self.runner.busy:
            self.show_message("Stopping the running jobs after their current step…")
            QApplication.processEvents()  # say so before the wait
        self.runner.cancel_all()
        self.runner.wait_all(QUIT_WAIT_MS)
        self.frame_renderer.shutdown()
        self.player.stop_decoding()
        self.autosave_timer.stop()
        event.accept()
        super().closeEvent(event)

    # ================================================================== layout and help
    def _restore_layout(self) -> None:
        """The window's size and docks as the user left them (QSettings, saved on quit)."""
        geo = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geo, QByteArray | bytes):
            self._geometry_restored = bool(self.restoreGeometry(geo))
        if isinstance(state, QByteArray | bytes):
            self._layout_restored = bool(self.restoreState(state, LAYOUT_VERSION))

    def reset_layout(self) -> None:
        """Window ▸ Reset layout: every dock where it was at first, shown, at its first size."""
        self.restoreState(self._default_state, LAYOUT_VERSION)
        for dock in self.findChildren(QDockWidget):
            dock.show()
        for dock in (self.rounds_dock, self.camera_dock, self.generate_dock, self.timeline_dock):
            dock.raise_()
        self._default_sizes()

    def show_shortcuts(self) -> None:
        rows = [
            (a.text().replace("&&", "&"), a.shortcut().toString())
            for a in self.actions()
            if not a.shortcut().isEmpty()
        ]
        text = "\n".join(f"{k:<14} {t}" for t, k in sorted(rows, key=lambda r: r[1]))
        text += (
            "\n\nViewport: left-drag orbits, right/middle-drag pans, wheel zooms, click selects."
            "\nThe selection's gizmo: drag an arrow (move along an axis), a square (move in its"
            "\nplane), a ring (rotate), the centre (move facing the camera). Shift-drag on an"
            "\nobject moves it, Ctrl-drag rotates it. F flies (WASD, Q/E, R records)."
            "\nG / R: move / rotate with the mouse; X/Y/Z along or about an axis (twice: the"
            "\nobject's own), Shift+X/Y/Z in a plane, type a value, Enter or click: done,"
            "\nEsc or right-click: cancel."
            "\nPlay world (P): WASD move, Q/E down/up, arrows or drag turn and look, Space pauses,"
            "\nEsc stops (the played camera becomes the path)."
        )
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText("<pre>" + text + "</pre>")
        box.open()

    def show_system_report(self) -> None:
        """Help ▸ System report…: what `worldstudio doctor` prints, plus the OpenGL renderer."""
        from worldstudio.studio.dialogs.system_report import SystemReportDialog, studio_report_text

        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # torch's first import: ~2 s
        try:
            text = studio_report_text()
        finally:
            QApplication.restoreOverrideCursor()
        self.system_report_dialog = SystemReportDialog(self, text)
        self.system_report_dialog.open()

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About World Studio",
            "World Studio: one image to a 3D world, camera paths, rounds, monitors and "
            "generated video.",
        )
