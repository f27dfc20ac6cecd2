"""The Training panel: LoRA fine-tuning of the video backbone on the user's clips.

Settings (clip folder, model, steps, rank, learning rate, size, frames, adapter name) are the
panel's own: a training run is not part of the project model; what it makes is (the adapter in
the project's ``loras/`` folder, which the Generate panel lists).

Start runs ``worldstudio.core.training.train_job`` in the window's :class:`~studio.worker.JobRunner`. The
trainer calls ``on_metrics`` from the worker thread; the panel re-emits each report through a Qt
signal (:attr:`TrainingPanel.metrics_arrived`), which Qt queues to the GUI thread, where the loss
curve grows (train loss per step, its moving average, eval loss points), a sample clip is sent to
the player (:attr:`sample_ready`) and, at the end, the adapter is announced
(:attr:`adapter_ready`). Pause holds the run between optimizer steps (``PauseToken``); Cancel
stops it (also while paused).

Nothing here imports torch: the trainer is imported when a run starts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
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
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.worker import JobRunner

TRAIN_PEN = QColor(110, 160, 230, 110)
SMOOTH_PEN = QColor(120, 180, 255)
EVAL_BRUSH = QColor(255, 170, 70)
PLOT_BG = QColor(30, 33, 39)
SMOOTHING = 0.9  # exponential moving average of the train loss


def _spin(lo: int, hi: int, value: int, step: int = 1, tip: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    s.setAlignment(Qt.AlignmentFlag.AlignRight)
    if tip:
        s.setToolTip(tip)
    return s


class TrainingPanel(QWidget):
    """The Training dock's widget."""

    metrics_arrived = Signal(object)  # emitted from the worker thread; delivered in the GUI thread
    sample_ready = Signal(str)  # the latest sample clip (mp4)
    adapter_ready = Signal(str)  # the trained LoRA (.safetensors), once training is done
    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(self, doc: ProjectDocument, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.runner = runner
        self.active = False
        self.pause_token = None
        self.paused = False
        self.last_result = None
        self.last_error = ""
        self.last_sample: str | None = None
        self.extra_settings: dict = {}  # more TrainConfig fields (advanced use, tests)
        # The question asked before replacing an earlier run of the same name.
        self.ask_overwrite = self._ask_overwrite
        self.metrics: list[dict] = []
        self._steps: list[float] = []
        self._losses: list[float] = []
        self._smooth: list[float] = []
        self._eval_steps: list[float] = []
        self._eval_losses: list[float] = []
        self.total_steps = 0
        self._build()
        self.metrics_arrived.connect(self._on_metrics)
        doc.changed.connect(self._on_changed)
        r = runner
        r.progress.connect(self._on_progress)
        r.finished.connect(self._on_finished)
        r.failed.connect(self._on_failed)
        r.cancelled.connect(self._on_cancelled)
        r.busy_changed.connect(lambda _busy: self._update_buttons())
        self.reset_from_project()

    # ================================================================== building
    def _build(self) -> None:
        # -- the loss curve
        self.plot = pg.PlotWidget(background=PLOT_BG)
        self.plot.setObjectName("lossPlot")
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        pi.setMenuEnabled(False)
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setLabel("bottom", "step")
        pi.setLabel("left", "loss")
        pi.addLegend(offset=(-8, 8), labelTextSize="8pt")
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

        self.status = QLabel("Choose a folder of clips (with captions) and press Start.")
        self.status.setObjectName("mono")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip(
            "Train a LoRA on the clips; it is saved in the project's loras/ folder"
        )
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Hold the run between optimizer steps")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop training (the last checkpoint stays on disk)")
        self.cancel_button.clicked.connect(self.runner.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 2)
        buttons.addWidget(self.pause_button, 1)
        buttons.addWidget(self.cancel_button, 1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(6, 6, 6, 0)
        tl.addWidget(self.plot, 1)
        tl.addWidget(self.status)
        tl.addWidget(self.bar)
        tl.addLayout(buttons)

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
        g1 = QGroupBox("Data")
        f1 = QFormLayout(g1)
        f1.addRow("Clips", clips_row)
        f1.addRow("Name", self.name)

        # -- model and settings
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(12)
        self.steps = _spin(1, 1_000_000, 500, 50, "optimizer steps")
        self.rank = _spin(1, 512, 16, 4, "LoRA rank (alpha = rank)")
        self.lr = QLineEdit("1e-4")
        self.lr.setToolTip("peak learning rate (warm-up, then cosine decay)")
        self.lr.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.width_spin = _spin(16, 4096, 832, 16, "training width (a multiple of 16)")
        self.height_spin = _spin(16, 4096, 480, 16, "training height (a multiple of 16)")
        size = QHBoxLayout()
        size.addWidget(self.width_spin, 1)
        size.addWidget(QLabel("×"))
        size.addWidget(self.height_spin, 1)
        self.frames = _spin(5, 1001, 33, 4, "frames per training clip: 4k+1")
        self.sample_every = _spin(0, 1_000_000, 100, 50, "a sample clip every N steps (0: none)")
        self.eval_every = _spin(
            0,
            1_000_000,
            50,
            10,
            "eval loss on a fixed batch every N steps (0: at the start and end only)",
        )
        g2 = QGroupBox("Model and settings")
        f2 = QFormLayout(g2)
        f2.addRow("Model", self.model)
        f2.addRow("Steps", self.steps)
        f2.addRow("Rank", self.rank)
        f2.addRow("Learning rate", self.lr)
        f2.addRow("Size", size)
        f2.addRow("Frames", self.frames)
        f2.addRow("Sample every", self.sample_every)
        f2.addRow("Eval every", self.eval_every)

        settings = QWidget()
        sl = QVBoxLayout(settings)
        sl.setContentsMargins(6, 0, 6, 6)
        sl.addWidget(g1)
        sl.addWidget(g2)
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(settings)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(scroll)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        self.splitter = split
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ================================================================== project -> fields
    def _on_changed(self, aspect: str) -> None:
        if aspect == "all" and not self.active:
            self.reset_from_project()

    def reset_from_project(self) -> None:
        """Defaults from the project: its model and video size."""
        g = self.doc.project.generation
        self._fill_models(self.model.currentData() or g.model_id)
        self.width_spin.setValue(g.width)
        self.height_spin.setValue(g.height)
        self._update_buttons()

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
        from worldstudio.core.training import PauseToken, train_job

        if self.runner.busy:
            self.message.emit("Another job is running; wait for it or cancel it", True)
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
            self.pause_token = PauseToken()
            job = train_job(
                self.doc.folder,
                pause=self.pause_token,
                on_metrics=self.metrics_arrived.emit,
                **settings,
            )
        except WorldStudioError as exc:
            self.status.setText(f"error: {exc}")
            self.message.emit(str(exc), True)
            return False
        self.clear_curve()
        self.total_steps = int(settings["steps"])
        self.last_error = ""
        self.paused = False
        self.active = True
        if not self.runner.start(job, f"Train LoRA {name}"):
            self.active = False
            return False
        self.status.setText("loading the model and encoding the clips…")
        self.bar.setRange(0, 0)
        self._update_buttons()
        return True

    def toggle_pause(self) -> None:
        if self.pause_token is None or not self.active:
            return
        if self.pause_token.paused:
            self.pause_token.resume()
            self.pause_button.setText("Pause")
        else:
            self.pause_token.pause()
            self.pause_button.setText("Resume")
            self.status.setText("pausing after this step…")

    def clear_curve(self) -> None:
        self.metrics = []
        for lst in (self._steps, self._losses, self._smooth, self._eval_steps, self._eval_losses):
            lst.clear()
        self._redraw()

    def _redraw(self) -> None:
        self.loss_curve.setData(self._steps, self._losses)
        self.smooth_curve.setData(self._steps, self._smooth)
        self.eval_points.setData(self._eval_steps, self._eval_losses)

    def _update_buttons(self) -> None:
        busy = self.runner.busy
        self.start_button.setEnabled(not busy)
        self.pause_button.setEnabled(self.active)
        self.cancel_button.setEnabled(self.active)
        if not self.active:
            self.pause_button.setText("Pause")

    # ------------------------------------------------------------------ reports (GUI thread)
    def _on_metrics(self, m: dict) -> None:
        self.metrics.append(m)
        kind = m.get("kind")
        if kind == "train":
            loss = float(m["loss"])
            if not math.isfinite(loss):
                return
            prev = self._smooth[-1] if self._smooth else loss
            self._steps.append(float(m["step"]))
            self._losses.append(loss)
            self._smooth.append(SMOOTHING * prev + (1 - SMOOTHING) * loss)
            self._redraw()
            total = self.total_steps or m["step"]
            self.status.setText(
                f"step {m['step']}/{total} · loss {loss:.4f} · lr {float(m.get('lr', 0)):.2e}"
            )
        elif kind == "eval":
            self._eval_steps.append(float(m["step"]))
            self._eval_losses.append(float(m["eval_loss"]))
            self._redraw()
        elif kind == "sample":
            self.last_sample = str(m["path"])
            self.sample_ready.emit(self.last_sample)
        elif kind == "paused":
            self.paused = True
            self.status.setText(f"paused at step {m.get('step')}: Resume continues")
        elif kind == "resumed":
            self.paused = False
            self.status.setText(f"resumed at step {m.get('step')}")
        elif kind == "checkpoint":
            self.message.emit(f"checkpoint at step {m.get('step')}: {m.get('path')}", False)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if self.active and total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)

    def _ended(self) -> None:
        self.active = False
        self.paused = False
        self.pause_token = None
        self._update_buttons()

    def _on_finished(self, result) -> None:
        if not self.active:
            return
        self.last_result = result
        self._ended()
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        adapter = str(result.adapter)
        self.status.setText(f"done: {Path(adapter).name} after {result.step} steps")
        self.message.emit(f"LoRA saved: {adapter}", False)
        self.adapter_ready.emit(adapter)

    def _on_failed(self, message: str) -> None:
        if not self.active:
            return
        self.last_error = message
        self._ended()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status.setText(f"failed: {message}")

    def _on_cancelled(self) -> None:
        if not self.active:
            return
        self._ended()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status.setText("cancelled")
