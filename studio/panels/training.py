"""The Training panel: LoRA fine-tuning of the video backbone on the user's clips.

Settings (clip folder, model, steps, rank, learning rate, size, frames, adapter name) are the
panel's own: a training run is not part of the project model; what it makes is (the adapter in
the project's ``loras/`` folder, which the Generate panel lists).

Start runs ``worldstudio.core.training.train_job`` on the window's :class:`~studio.worker.JobRunner`
and follows the job's handle. The trainer's events arrive in the GUI thread through the handle:
``metrics`` grow the loss curve (train loss per step, its moving average, eval loss points), a
``sample`` clip is sent to the player (:attr:`sample_ready`), a ``checkpoint`` is said in the
status bar and, at the end, the adapter is announced (:attr:`adapter_ready`). Pause holds the run
at its next optimizer step (the job's ``ctx.checkpoint``); Cancel stops it (also while paused).

Nothing here imports torch: the trainer is imported when a run starts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.studio import settings as app_settings
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.jobs_queue import QueueDriver
from worldstudio.studio.panels.job_header import JobHeader
from worldstudio.studio.widgets import hint, int_spin, scroll_column, size_row
from worldstudio.studio.worker import GPU, JobHandle, JobRunner

TRAIN_PEN = QColor(110, 160, 230, 110)
SMOOTH_PEN = QColor(120, 180, 255)
EVAL_BRUSH = QColor(255, 170, 70)
PLOT_BG = QColor(30, 33, 39)
START_TEXT = "Choose a folder of clips (with captions) and press Start."
SMOOTHING = 0.9  # exponential moving average of the train loss


class StepAxis(pg.AxisItem):
    """An axis of optimizer steps: whole numbers only (a few steps in, pyqtgraph would put
    ticks at 0.5, 1.5, ...)."""

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802,N803 - pyqtgraph's names
        levels = super().tickSpacing(minVal, maxVal, size)
        out = []
        for spacing, offset in levels:
            if spacing >= 1.0:
                out.append((float(math.ceil(spacing)), float(round(offset))))
        return out or [(1.0, 0.0)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [str(int(round(v))) for v in values]


def clip_summary(folder: str) -> tuple[str, bool]:
    """(what the clips folder holds, whether training can start with it): the clips found and
    how many have a caption (a same-name .txt or a captions file; see core.training.dataset)."""
    from worldstudio.core.training import TrainingError
    from worldstudio.core.training.dataset import (
        VIDEO_SUFFIXES,
        find_clip_files,
        read_captions_file,
    )

    if not folder:
        return "", True
    root = Path(folder).expanduser()
    if not root.is_dir():
        return f"{folder} is not a folder", False
    files = find_clip_files(root)
    if not files:
        return f"no clips here (looked for {', '.join(VIDEO_SUFFIXES)} files)", False
    try:
        table, table_name = read_captions_file(root)
    except TrainingError as exc:
        return str(exc), False
    missing = [
        p
        for p in files
        if not p.with_suffix(".txt").is_file()
        and p.relative_to(root).as_posix() not in table
        and p.name not in table
    ]
    found = f"{len(files)} clip{'s' if len(files) != 1 else ''}"
    where = f" (.txt files{f' and {table_name}' if table_name else ''})"
    if not missing:
        return f"{found}, all with a caption{where}", True
    names = ", ".join(p.name for p in missing[:3]) + (" …" if len(missing) > 3 else "")
    return (
        f"{found}, {len(files) - len(missing)} with a caption; {len(missing)} without: {names}",
        False,
    )


class TrainingPanel(QWidget):
    """The Training dock's widget."""

    sample_ready = Signal(str)  # the latest sample clip (mp4)
    adapter_ready = Signal(str)  # the trained LoRA (.safetensors), once training is done
    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(
        self,
        doc: ProjectDocument,
        runner: JobRunner,
        parent: QWidget | None = None,
        queue: QueueDriver | None = None,
    ):
        super().__init__(parent)
        self.doc = doc
        self.runner = runner
        self.queue = queue
        self.queued: str | None = None  # the queue entry of the training it waits for
        self._queued_steps = 0
        self.job: JobHandle | None = None  # this panel's latest training
        self.last_result = None
        self.last_error = ""
        self.last_sample: str | None = None
        self.extra_settings: dict = {}  # more TrainConfig fields (advanced use, tests)
        # The question asked before replacing an earlier run of the same name.
        self.ask_overwrite = self._ask_overwrite
        self.events: list[tuple[str, dict]] = []  # the latest training's events
        self._steps: list[float] = []
        self._losses: list[float] = []
        self._smooth: list[float] = []
        self._eval_steps: list[float] = []
        self._eval_losses: list[float] = []
        self.total_steps = 0
        self._build()
        self._remembered = self.restore_settings()
        doc.changed.connect(self._on_changed)
        runner.jobs_changed.connect(self._update_buttons)
        if queue is not None:
            queue.entry_started.connect(self._on_entry_started)
            queue.changed.connect(self._on_queue_changed)
        self.reset_from_project()
        self.scan_clips()

    @property
    def running(self) -> bool:
        """Whether this panel's training is under way (paused included)."""
        return self.job is not None and not self.job.ended

    @property
    def paused(self) -> bool:
        """Whether the training holds between steps."""
        return self.job is not None and self.job.state == "paused"

    # ================================================================== building
    def _build(self) -> None:
        # -- the loss curve
        self.plot = pg.PlotWidget(background=PLOT_BG, axisItems={"bottom": StepAxis("bottom")})
        self.plot.setObjectName("lossPlot")
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        pi.setMenuEnabled(False)
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setLabel("bottom", "step")
        pi.setLabel("left", "loss")
        # The legend is a line above the plot, never over the curves.
        self.legend = QLabel(
            f"<span style='color:{SMOOTH_PEN.name()}'>━</span> train loss (average) &nbsp; "
            f"<span style='color:{TRAIN_PEN.name()}'>━</span> train loss per step &nbsp; "
            f"<span style='color:{EVAL_BRUSH.name()}'>●</span> eval loss"
        )
        self.legend.setObjectName("hint")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.loss_curve = pi.plot([], [], pen=pg.mkPen(TRAIN_PEN, width=1), name="train loss")
        self.smooth_curve = pi.plot([], [], pen=pg.mkPen(SMOOTH_PEN, width=2), name="train (avg)")
        self.eval_points = pi.plot(
            [],
            [],
            pen=pg.mkPen(EVAL_BRUSH, width=1, style=Qt.PenStyle.DotLine),
            symbol="o",
            symbolSize=7,
            symbolBrush=pg.mkBrush(EVAL_BRUSH),
            symbolPen=pg.mkPen(QColor(30, 30, 30)),
            name="eval loss",
        )
        self.plot.setMinimumHeight(140)

        self.header = JobHeader(
            "Start",
            "Train a LoRA on the clips; it is saved in the project's loras/ folder",
            "Stop training (the last checkpoint stays on disk)",
            pausable=True,
            pause_tip="Hold the run between optimizer steps",
        )
        self.header.status.setText(START_TEXT)
        self.header.start_button.clicked.connect(lambda: self.start())
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(6, 6, 6, 0)
        tl.addWidget(self.legend)
        tl.addWidget(self.plot, 1)
        tl.addWidget(self.header)

        # -- data
        self.clips = QLineEdit()
        self.clips.setPlaceholderText("folder of mp4 / mov / webm clips + .txt captions")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose the clips folder")
        browse.clicked.connect(self.browse_clips)
        clips_row = QHBoxLayout()
        clips_row.addWidget(self.clips, 1)
        clips_row.addWidget(browse)
        self.name = QLineEdit("lora")
        self.name.setToolTip("the adapter's name: loras/<name>.safetensors")
        self.clips_found = hint("")
        self.clips_found.setObjectName("clipsFound")
        self._scan_timer = QTimer(self)
        self._scan_timer.setSingleShot(True)
        self._scan_timer.setInterval(300)
        self._scan_timer.timeout.connect(self.scan_clips)
        self.clips.textChanged.connect(lambda _t: self._scan_timer.start())
        g1 = QGroupBox("Data")
        f1 = QFormLayout(g1)
        f1.addRow("Clips", clips_row)
        f1.addRow("", self.clips_found)
        f1.addRow("Name", self.name)

        # -- model and settings
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(12)
        self.steps = int_spin(1, 1_000_000, 50, 500, "optimizer steps")
        self.rank = int_spin(1, 512, 4, 16, "LoRA rank (alpha = rank)")
        self.lr = QLineEdit("1e-4")
        self.lr.setToolTip("peak learning rate (warm-up, then cosine decay)")
        self.lr.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.width_spin = int_spin(16, 4096, 16, 832, "training width (a multiple of 16)")
        self.height_spin = int_spin(16, 4096, 16, 480, "training height (a multiple of 16)")
        self.frames = int_spin(5, 1001, 4, 33, "frames per training clip: 4k+1")
        self.sample_every = int_spin(0, 1_000_000, 50, 100, "a sample clip every N steps (0: none)")
        self.eval_every = int_spin(
            0,
            1_000_000,
            10,
            50,
            "eval loss on a fixed batch every N steps (0: at the start and end only)",
        )
        g2 = QGroupBox("Model and settings")
        f2 = QFormLayout(g2)
        f2.addRow("Model", self.model)
        f2.addRow("Steps", self.steps)
        f2.addRow("Rank", self.rank)
        f2.addRow("Learning rate", self.lr)
        f2.addRow("Size", size_row(self.width_spin, self.height_spin))
        f2.addRow("Frames", self.frames)
        f2.addRow("Sample every", self.sample_every)
        f2.addRow("Eval every", self.eval_every)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(scroll_column(g1, g2))
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        self.splitter = split
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ================================================================== project -> fields
    def _on_changed(self, aspect: str) -> None:
        if aspect == "all" and not self.running:
            self.reset_from_project()

    def reset_from_project(self) -> None:
        """Defaults from the project (its model and video size) for what the user has not set
        in an earlier session (:meth:`restore_settings`)."""
        g = self.doc.project.generation
        self._fill_models(self.model.currentData() or g.model_id)
        if not self._remembered:
            self.width_spin.setValue(g.width)
            self.height_spin.setValue(g.height)
        self._update_buttons()

    # ------------------------------------------------------------------ remembered settings
    def _remembered_fields(self) -> dict:
        return {
            "clips": self.clips,
            "name": self.name,
            "lr": self.lr,
            "steps": self.steps,
            "rank": self.rank,
            "width": self.width_spin,
            "height": self.height_spin,
            "frames": self.frames,
            "sample_every": self.sample_every,
            "eval_every": self.eval_every,
        }

    def save_settings(self) -> None:
        """Remember the panel's settings for the next session (QSettings, group training/)."""
        s = app_settings.settings()
        for key, widget in self._remembered_fields().items():
            value = widget.text() if isinstance(widget, QLineEdit) else widget.value()
            s.setValue(f"training/{key}", value)
        s.setValue("training/model", self.model.currentData() or "")
        s.sync()

    def restore_settings(self) -> bool:
        """The settings of the last session, if there are any (True then)."""
        s = app_settings.settings()
        if s.value("training/steps") is None:
            return False
        for key, widget in self._remembered_fields().items():
            value = s.value(f"training/{key}")
            if value is None:
                continue
            if isinstance(widget, QLineEdit):
                widget.setText(str(value))
            else:
                try:
                    widget.setValue(int(value))
                except (TypeError, ValueError):
                    pass
        model = s.value("training/model")
        if model:
            self._fill_models(str(model))
        return True

    # ------------------------------------------------------------------ the clips folder
    def scan_clips(self) -> None:
        """Say how many clips and captions the chosen folder holds (before Start)."""
        text, ok = clip_summary(self.clips.text().strip())
        self.clips_found.setText(text)
        self.clips_found.setStyleSheet("" if ok else "color: #ff8a7a;")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fill_models(self.model.currentData())  # a model may have been downloaded meanwhile

    def _fill_models(self, current: str | None) -> None:
        from worldstudio.core.models import all_models, model_status

        self.model.clear()
        for info in all_models("video"):
            if "i2v" in info.repo_id.lower():
                continue  # image-to-video models cannot be trained here
            try:
                present = model_status(info).present
            except WorldStudioError:
                present = False
            mark = "●" if present else "○"
            self.model.addItem(
                f"{mark} {info.name}" + ("" if present else "  (not downloaded)"), info.repo_id
            )
            self.model.setItemData(
                self.model.count() - 1,
                f"{info.repo_id}\n{info.description}",
                Qt.ItemDataRole.ToolTipRole,
            )
        if current and self.model.findData(current) < 0 and Path(current).expanduser().is_dir():
            self.model.addItem(f"◆ {Path(current).name}", current)
        self.model.setCurrentIndex(max(self.model.findData(current), 0))

    def browse_clips(self) -> None:
        start = self.clips.text() or (str(self.doc.folder) if self.doc.folder else "")
        folder = QFileDialog.getExistingDirectory(self, "Folder of training clips", start)
        if folder:
            self.clips.setText(folder)

    # ================================================================== running
    def settings(self) -> dict:
        """The TrainConfig fields the panel's widgets say (raises WorldStudioError if one is bad)."""
        from worldstudio.core.training import TrainingError

        try:
            lr = float(self.lr.text().strip())
        except ValueError:
            raise TrainingError(
                f"learning rate: {self.lr.text()!r} is not a number (e.g. 1e-4)"
            ) from None
        clips = self.clips.text().strip()
        if not clips:
            raise TrainingError("choose the folder of training clips first")
        if not Path(clips).expanduser().is_dir():
            raise TrainingError(f"clips: {clips} is not a folder")
        steps = self.steps.value()
        out = dict(
            clips=clips,
            name=self.name.text().strip(),
            model=self.model.currentData(),
            steps=steps,
            rank=self.rank.value(),
            lr=lr,
            width=self.width_spin.value(),
            height=self.height_spin.value(),
            frames=self.frames.value(),
            sample_every=self.sample_every.value(),
            eval_every=self.eval_every.value(),
            warmup_steps=min(50, steps // 10),
        )
        out.update(self.extra_settings)
        return out

    def _ask_overwrite(self, name: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Replace the earlier training?",
            f"The project already has a LoRA training called “{name}”. Replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def start(self) -> bool:
        """Start training with the panel's settings."""
        from worldstudio.core.project import ProjectFolder
        from worldstudio.core.training import train_job

        if self.queue is None and not self.runner.can_start(GPU):
            self.message.emit("Another job is running; wait for it or cancel it", True)
            return False
        if self.running or self.queued is not None:
            self.message.emit("A training of this panel is already queued or running", True)
            return False
        if self.doc.folder is None:
            self.message.emit("Save the project first: the LoRA goes into its loras/ folder", True)
            return False
        try:
            settings = self.settings()
            loras = ProjectFolder(self.doc.folder).loras_dir
            name = settings["name"]
            if (
                name
                and ((loras / f"{name}.safetensors").exists() or (loras / name).exists())
                and not settings.get("overwrite")
            ):
                if not self.ask_overwrite(name):
                    return False
                settings["overwrite"] = True
            if self.queue is not None:
                return self._submit(name, settings)
            job = train_job(self.doc.folder, **settings)
        except WorldStudioError as exc:
            self.header.status.setText(f"error: {exc}")
            self.message.emit(str(exc), True)
            return False
        handle = self.runner.start(job, f"Train LoRA {name}", GPU)
        if handle is None:
            return False
        self.save_settings()
        self._follow(handle, int(settings["steps"]))
        return True

    def _submit(self, name: str, settings: dict) -> bool:
        """Queue the training (``train PROJECT --clips ...``): it starts at once when the GPU is
        free, else waits its turn in the Jobs panel."""
        from worldstudio.core.cli.train_cmds import args_from_settings
        from worldstudio.core.training import TrainConfig

        TrainConfig(**settings).validate()  # a bad setting is said now, not at its turn
        args = args_from_settings(settings)
        self._queued_steps = int(settings["steps"])
        entry = self.queue.submit(
            "train",
            self.doc.folder,
            args,
            f"Train LoRA {name}",
            on_added=lambda e: setattr(self, "queued", e.id),
        )
        self.save_settings()
        if self.queued == entry.id:
            self.header.status.setText("queued: it starts when the GPU is free (Jobs panel)")
        return True

    def _on_entry_started(self, entry_id: str, handle: JobHandle) -> None:
        if entry_id == self.queued:
            self.queued = None
            self._follow(handle, self._queued_steps)

    def _on_queue_changed(self) -> None:
        if self.queued is None:
            return
        entry = self.queue.entry(self.queued)
        if entry is None or entry.state not in ("queued", "interrupted", "running"):
            self.queued = None
            self.header.reset("the queued training was cancelled" if entry else START_TEXT)

    def _follow(self, handle: JobHandle, steps: int) -> None:
        """Show ``handle``'s training: the curve, samples, outcome."""
        self.job = handle
        self.clear_curve()
        self.total_steps = steps
        self.last_error = ""
        handle.event.connect(self._on_event)
        handle.finished.connect(self._on_finished)
        handle.failed.connect(self._on_failed)
        handle.cancelled.connect(self._on_cancelled)
        self.header.follow(handle)
        self.header.status.setText("loading the model and encoding the clips…")
        self._update_buttons()

    def forget_project(self) -> None:
        """Another project was opened: the last training's curve and messages go (a training
        still under way keeps them)."""
        if self.running:
            return
        self.clear_curve()
        self.last_sample = None
        self.last_result = None
        self.last_error = ""
        self.header.reset(START_TEXT)

    def clear_curve(self) -> None:
        self.events = []
        for lst in (self._steps, self._losses, self._smooth, self._eval_steps, self._eval_losses):
            lst.clear()
        self._redraw()

    def _redraw(self) -> None:
        self.loss_curve.setData(self._steps, self._losses)
        self.smooth_curve.setData(self._steps, self._smooth)
        self.eval_points.setData(self._eval_steps, self._eval_losses)

    def _update_buttons(self) -> None:
        # with a queue, Start queues behind whatever holds the GPU
        self.header.set_can_start(self.queue is not None or self.runner.can_start(GPU))

    # ------------------------------------------------------------------ the job's events
    def _on_event(self, name: str, m: dict) -> None:
        self.events.append((name, m))
        status = self.header.status
        if name == "metrics" and "loss" in m:
            loss = float(m["loss"])
            if not math.isfinite(loss):
                return
            prev = self._smooth[-1] if self._smooth else loss
            self._steps.append(float(m["step"]))
            self._losses.append(loss)
            self._smooth.append(SMOOTHING * prev + (1 - SMOOTHING) * loss)
            self._redraw()
            total = self.total_steps or m["step"]
            status.setText(
                f"step {m['step']}/{total} · loss {loss:.4f} · lr {float(m.get('lr', 0)):.2e}"
            )
        elif name == "metrics" and "eval_loss" in m:
            self._eval_steps.append(float(m["step"]))
            self._eval_losses.append(float(m["eval_loss"]))
            self._redraw()
        elif name == "sample":
            self.last_sample = str(m["path"])
            self.sample_ready.emit(self.last_sample)
        elif name == "paused":
            status.setText(f"paused at step {m.get('step')}: Resume continues")
        elif name == "resumed":
            status.setText(f"resumed at step {m.get('step')}")
        elif name == "checkpoint":
            self.message.emit(f"checkpoint at step {m.get('step')}: {m.get('path')}", False)

    def _on_finished(self, result) -> None:
        self.last_result = result
        adapter = str(result.adapter)
        self.header.show_outcome(
            f"done: {Path(adapter).name} after {result.step} steps", complete=True
        )
        self.message.emit(f"LoRA saved: {adapter}", False)
        self.adapter_ready.emit(adapter)

    def _on_failed(self, message: str) -> None:
        self.last_error = message
        self.header.show_outcome(f"failed: {message}", complete=False)

    def _on_cancelled(self) -> None:
        self.header.show_outcome("cancelled", complete=False)
