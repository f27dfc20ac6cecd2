"""The Generate panel: the world engine's settings, the VRAM estimate, the live preview, runs.

Settings that are part of the project model (backend, model, size, frames per round, steps,
guidance, seed) are edited through undoable document commands; the rest (memory profile,
monitors on/off, the chosen LoRAs and their strengths) is kept by the panel and passed to
``generate_job``. The engine reads the *saved* project, so Generate saves first (asking).

The job runs in the window's :class:`~studio.worker.JobRunner`. Its preview reports (the latest
thumbnail strip of each denoising step, or a whole frame for the model-free backends) are shown
large at the top, with the round / camera / step text of its progress reports. When the run ends
(finished, cancelled or failed) the panel says which run folder it was (:attr:`run_changed`) and,
when finished, asks for its video to be played (:attr:`play_requested`).

Nothing here imports torch: the engine is imported when a run starts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.engine import RunOptions, project_model_for
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.util import pixmap_fit
from worldstudio.studio.worker import JobRunner

MODEL_FREE = ("geometry", "oracle")
# Wan model ids name their kind; a mismatch with the backend is worth a note.
_KIND_HINT = {"wan-vace": "vace", "wan-i2v": "i2v"}
GiB = 1024**3


def _spin(lo: int, hi: int, step: int = 1, tip: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setKeyboardTracking(False)  # one edit on Enter / focus-out / arrows, not per keystroke
    s.setAlignment(Qt.AlignmentFlag.AlignRight)
    if tip:
        s.setToolTip(tip)
    return s


def _set(widget, value) -> None:
    """Show a model value without echoing it back as an edit."""
    widget.blockSignals(True)
    if isinstance(widget, QSpinBox | QDoubleSpinBox):
        widget.setValue(value)
    elif isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        i = widget.findData(value)
        if i >= 0:
            widget.setCurrentIndex(i)
    widget.blockSignals(False)


class PreviewScreen(QLabel):
    """The live preview: the latest image, scaled to the label (kept on resize)."""

    def __init__(self, text: str = ""):
        super().__init__(text)
        self.image: np.ndarray | None = None
        self.setObjectName("screen")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 90)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setWordWrap(True)

    def show_image(self, image: np.ndarray) -> None:
        self.image = np.ascontiguousarray(image)
        self._redraw()

    def clear_image(self, text: str) -> None:
        self.image = None
        self.clear()
        self.setText(text)

    def _redraw(self) -> None:
        if self.image is not None:
            self.setPixmap(pixmap_fit(self.image, self.width() - 2, self.height() - 2))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw()


class GeneratePanel(QWidget):
    """The Generate dock's widget."""

    play_requested = Signal(str)  # an mp4 to open in the player
    run_changed = Signal(object)  # the run folder (Path) whose rounds changed, or None
    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(
        self,
        doc: ProjectDocument,
        runner: JobRunner,
        save: Callable[[], bool] | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.doc = doc
        self.runner = runner
        self._save = save
        # The question asked before saving; tests replace it with a plain function.
        self.ask_save = self._ask_save
        self.active = False  # a job of this panel is running
        self.last_result = None  # the RunResult of the last finished run
        self.last_error = ""
        self.current_run: Path | None = None  # the run the running job writes (once known)
        self._runs_before: set[str] = set()
        self._loras: dict[str, tuple[bool, float]] = {}  # adapter path -> (chosen, strength)
        self._backends: dict[tuple[str, str | None], Any] = {}  # estimate-only backend objects
        self._last_rounds_seen = -1

        self._build()
        self.poll = QTimer(self)
        self.poll.setInterval(700)
        self.poll.timeout.connect(self._poll_run)

        doc.changed.connect(self._on_changed)
        r = runner
        r.progress.connect(self._on_progress)
        r.preview.connect(self._on_preview)
        r.finished.connect(self._on_finished)
        r.failed.connect(self._on_failed)
        r.cancelled.connect(self._on_cancelled)
        r.busy_changed.connect(lambda _busy: self._update_buttons())
        self.refresh()

    # ================================================================== building
    def _build(self) -> None:
        # -- the live preview and the run buttons
        self.screen = PreviewScreen("The live preview shows here while a run generates.")
        self.stage = QLabel("")
        self.stage.setObjectName("mono")
        self.stage.setWordWrap(True)
        self.stage.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setToolTip("Save the project and generate its video round by round")
        self.generate_button.clicked.connect(lambda: self.generate())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step; finished rounds stay on disk")
        self.cancel_button.clicked.connect(self.runner.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(6, 6, 6, 0)
        tl.addWidget(self.screen, 1)
        tl.addWidget(self.stage)
        tl.addWidget(self.bar)
        tl.addLayout(buttons)

        # -- model and memory
        self.backend = QComboBox()
        self.backend.setToolTip(
            "geometry: the renders themselves (no model) · oracle: the demo "
            "scene's ground truth · wan-vace / wan-i2v: the Wan video models"
        )
        self.backend.currentIndexChanged.connect(
            lambda _i: self._edit("backend", self.backend.currentData())
        )
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(12)
        self.model.currentIndexChanged.connect(
            lambda _i: self._edit("model_id", self.model.currentData())
        )
        self.model_note = QLabel("")
        self.model_note.setObjectName("hint")
        self.model_note.setWordWrap(True)
        self.profile = QComboBox()
        from worldstudio.core.generation.memory import PROFILES

        tips = {
            "auto": "the fastest profile that fits the GPU's free memory",
            "gpu": "every component on the GPU (fastest)",
            "offload": "one component at a time on the GPU (model CPU offload)",
            "low-vram": "block-level group offload and VAE tiling (slowest, fits small GPUs)",
        }
        for name in PROFILES:
            self.profile.addItem(name, name)
            self.profile.setItemData(
                self.profile.count() - 1, tips.get(name, ""), Qt.ItemDataRole.ToolTipRole
            )
        self.profile.currentIndexChanged.connect(lambda _i: self._update_estimate())
        self.vram = QLabel("")
        self.vram.setObjectName("vramEstimate")
        self.vram.setWordWrap(True)
        self.vram.setToolTip(
            "Accelerator memory one generation call needs (weights + activations "
            "+ runtime), from the model's configs"
        )
        g1 = QGroupBox("Model and memory")
        f1 = QFormLayout(g1)
        f1.addRow("Backend", self.backend)
        f1.addRow("Model", self.model)
        f1.addRow("", self.model_note)
        f1.addRow("Memory", self.profile)
        f1.addRow("VRAM", self.vram)

        # -- video
        self.width_spin = _spin(16, 4096, 16, "video width in pixels (a multiple of 16)")
        self.height_spin = _spin(16, 4096, 16, "video height in pixels (a multiple of 16)")
        self.width_spin.valueChanged.connect(lambda v: self._edit_size("width", v))
        self.height_spin.valueChanged.connect(lambda v: self._edit_size("height", v))
        size = QHBoxLayout()
        size.addWidget(self.width_spin, 1)
        size.addWidget(QLabel("×"))
        size.addWidget(self.height_spin, 1)
        self.frames_spin = _spin(5, 1001, 4, "frames per round: 4k+1 (5, 9, ..., 65, 81)")
        self.frames_spin.valueChanged.connect(self._edit_frames)
        self.monitors = QCheckBox("Monitors keep entities alive off-screen")
        self.monitors.setChecked(True)
        self.monitors.setToolTip(
            "Off: every monitor is switched off and entities freeze where they were last seen"
        )
        self.video_info = QLabel("")
        self.video_info.setObjectName("hint")
        self.video_info.setWordWrap(True)
        g2 = QGroupBox("Video")
        f2 = QFormLayout(g2)
        f2.addRow("Size", size)
        f2.addRow("Frames / round", self.frames_spin)
        f2.addRow("", self.video_info)
        f2.addRow(self.monitors)

        # -- sampling
        self.steps_spin = _spin(1, 1000, 1, "denoising steps per call")
        self.steps_spin.valueChanged.connect(lambda v: self._edit("steps", int(v)))
        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setRange(0.0, 50.0)
        self.guidance_spin.setSingleStep(0.5)
        self.guidance_spin.setDecimals(2)
        self.guidance_spin.setKeyboardTracking(False)
        self.guidance_spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.guidance_spin.setToolTip("classifier-free guidance scale")
        self.guidance_spin.valueChanged.connect(lambda v: self._edit("guidance", float(v)))
        self.seed_spin = _spin(0, 2**31 - 1, 1, "run seed; every call derives its own from it")
        self.seed_spin.valueChanged.connect(lambda v: self._edit("seed", int(v)))
        dice = QToolButton()
        dice.setText("New")
        dice.setToolTip("A new random seed")
        dice.clicked.connect(lambda: self._edit("seed", random.randrange(2**31)))
        seed = QHBoxLayout()
        seed.addWidget(self.seed_spin, 1)
        seed.addWidget(dice)
        g3 = QGroupBox("Sampling")
        f3 = QFormLayout(g3)
        f3.addRow("Steps", self.steps_spin)
        f3.addRow("Guidance", self.guidance_spin)
        f3.addRow("Seed", seed)

        # -- LoRAs
        self.lora_table = QTableWidget(0, 2)
        self.lora_table.setHorizontalHeaderLabels(["LoRA", "Strength"])
        self.lora_table.verticalHeader().hide()
        self.lora_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.lora_table.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents
        )
        self.lora_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.lora_table.setMinimumHeight(60)
        self.lora_table.setMaximumHeight(130)
        self.lora_table.itemChanged.connect(self._lora_toggled)
        self.lora_note = QLabel("")
        self.lora_note.setObjectName("hint")
        self.lora_note.setWordWrap(True)
        g4 = QGroupBox("LoRAs (the project's loras/ folder)")
        v4 = QVBoxLayout(g4)
        v4.addWidget(self.lora_table)
        v4.addWidget(self.lora_note)

        # -- runs: resume, branch, play
        self.runs_combo = QComboBox()
        self.runs_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.runs_combo.setMinimumContentsLength(14)
        self.runs_combo.currentIndexChanged.connect(lambda _i: self._run_selected())
        self.run_info = QLabel("")
        self.run_info.setObjectName("hint")
        self.run_info.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "Continue the chosen run after its last complete round (its own "
            "settings and project snapshot)"
        )
        self.resume_button.clicked.connect(lambda: self.resume())
        self.branch_spin = _spin(
            1, 1, 1, "the first round to regenerate; earlier rounds are copied"
        )
        self.branch_button = QPushButton("Branch from round")
        self.branch_button.setToolTip(
            "A new run: copy the rounds before this one from the chosen run, "
            "then regenerate with the project's current prompts and settings"
        )
        self.branch_button.clicked.connect(lambda: self.branch())
        self.play_final = QPushButton("Play")
        self.play_final.setToolTip("Open the run's final.mp4 in the player")
        self.play_final.clicked.connect(lambda: self._play_run("final.mp4"))
        self.play_combined = QPushButton("Play with monitors")
        self.play_combined.setToolTip("Open final_combined.mp4: the observer beside the monitors")
        self.play_combined.clicked.connect(lambda: self._play_run("final_combined.mp4"))
        refresh = QToolButton()
        refresh.setText("↻")
        refresh.setToolTip("Read the runs folder again")
        refresh.clicked.connect(lambda: self.refresh_runs())
        row1 = QHBoxLayout()
        row1.addWidget(self.runs_combo, 1)
        row1.addWidget(refresh)
        row2 = QHBoxLayout()
        row2.addWidget(self.resume_button)
        row2.addWidget(self.branch_button)
        row2.addWidget(self.branch_spin)
        row3 = QHBoxLayout()
        row3.addWidget(self.play_final)
        row3.addWidget(self.play_combined)
        g5 = QGroupBox("Runs")
        v5 = QVBoxLayout(g5)
        v5.addLayout(row1)
        v5.addWidget(self.run_info)
        v5.addLayout(row2)
        v5.addLayout(row3)

        settings = QWidget()
        sl = QVBoxLayout(settings)
        sl.setContentsMargins(6, 0, 6, 6)
        for g in (g1, g2, g3, g4, g5):
            sl.addWidget(g)
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(settings)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(scroll)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([400, 500])  # the preview gets a good share of the dock
        self.splitter = split
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ================================================================== model -> widgets
    def _on_changed(self, aspect: str) -> None:
        if aspect == "all":
            self.refresh()
        elif aspect in ("generation", "rounds"):
            self._fill()

    def refresh(self) -> None:
        """Everything from the model and the project folder (a project was opened)."""
        self._fill()
        self.refresh_loras()
        self.refresh_runs()
        self.run_changed.emit(self._latest_run())

    def _fill(self) -> None:
        from worldstudio.core.generation.backends import backend_names

        g = self.doc.project.generation
        names = backend_names()
        if g.backend not in names:
            names.append(g.backend)
        self.backend.blockSignals(True)
        if [self.backend.itemData(i) for i in range(self.backend.count())] != names:
            self.backend.clear()
            for n in names:
                self.backend.addItem(n, n)
        self.backend.blockSignals(False)
        _set(self.backend, g.backend)
        self._fill_models(g.model_id)
        _set(self.width_spin, g.width)
        _set(self.height_spin, g.height)
        _set(self.frames_spin, g.frames_per_round)
        _set(self.steps_spin, g.steps)
        _set(self.guidance_spin, g.guidance)
        _set(self.seed_spin, min(g.seed, 2**31 - 1))
        n = len(self.doc.project.rounds)
        total = n * g.frames_per_round
        self.video_info.setText(
            f"{n} round{'s' if n != 1 else ''} × {g.frames_per_round} frames = "
            f"{total} frames ({total / g.fps:.1f} s at {g.fps} fps)"
        )
        model_free = g.backend in MODEL_FREE
        for w in (self.model, self.profile, self.steps_spin, self.guidance_spin):
            w.setEnabled(not model_free)
        self._update_model_note()
        self._update_estimate()
        self._update_lora_note()

    def showEvent(self, event) -> None:
        """Models may have been downloaded and LoRAs trained meanwhile: look again."""
        super().showEvent(event)
        self._fill_models(self.doc.project.generation.model_id)
        self._update_model_note()
        self._update_estimate()
        self.refresh_loras()

    def _fill_models(self, current: str | None) -> None:
        from worldstudio.core.models import all_models, model_status

        self.model.blockSignals(True)
        self.model.clear()
        for info in all_models("video"):
            try:
                present = model_status(info).present
            except WorldStudioError:
                present = False
            mark = "●" if present else "○"
            self.model.addItem(
                f"{mark} {info.name}" + ("" if present else "  (not downloaded)"), info.repo_id
            )
            tip = f"{info.repo_id}\n{info.description}\n{info.size_text} · {info.licence_text}"
            self.model.setItemData(self.model.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if current and self.model.findData(current) < 0:
            self.model.addItem(f"◆ {Path(current).name or current}", current)  # a local folder
            self.model.setItemData(self.model.count() - 1, current, Qt.ItemDataRole.ToolTipRole)
        i = self.model.findData(current)
        self.model.setCurrentIndex(max(i, 0))
        self.model.blockSignals(False)

    def _effective_model(self) -> str | None:
        g = self.doc.project.generation
        return project_model_for(g.backend, g)

    def _update_model_note(self) -> None:
        g = self.doc.project.generation
        if g.backend in MODEL_FREE:
            self.model_note.setText(f"{g.backend} uses no model")
            self.model_note.setVisible(True)
            return
        hint = _KIND_HINT.get(g.backend)
        text = ""
        if hint and g.model_id and hint not in g.model_id.lower() and "/" in g.model_id:
            text = f"this model does not look like a {g.backend} model"
        i = self.model.currentIndex()
        if i >= 0 and self.model.itemText(i).startswith("○"):
            text = (text + "; " if text else "") + "not on this machine: the first run downloads it"
        self.model_note.setText(text)
        self.model_note.setVisible(bool(text))

    def estimate_text(self) -> str:
        """What the VRAM row says for the current settings."""
        g = self.doc.project.generation
        if g.backend in MODEL_FREE:
            return "no GPU memory needed"
        profile = self.profile.currentData() or "auto"
        model = self._effective_model()
        try:
            backend = self._estimate_backend(g.backend, model)
            if not hasattr(backend, "estimate"):
                return f"no estimate for the {g.backend} backend"
            h, w, f = g.height, g.width, g.frames_per_round
            if profile == "auto":
                full = backend.estimate(h, w, f, "gpu").total
                low = backend.estimate(h, w, f, "low-vram").total
                return (
                    f"~{full / GiB:.1f} GiB all on the GPU, ~{low / GiB:.1f} GiB with low-vram "
                    "(auto picks what fits)"
                )
            return f"~{backend.estimate(h, w, f, profile).total / GiB:.1f} GiB ({profile})"
        except WorldStudioError as exc:
            return f"no estimate: {exc}"

    def _estimate_backend(self, name: str, model: str | None):
        key = (name, model)
        if key not in self._backends:
            from worldstudio.core.generation.backends import get_backend

            self._backends[key] = get_backend(name, model_id=model, profile="auto")  # loads nothing
        return self._backends[key]

    def _update_estimate(self) -> None:
        self.vram.setText(self.estimate_text())

    # ================================================================== widgets -> model
    def _edit(self, field: str, value) -> None:
        if value is None and field != "model_id":
            return
        if getattr(self.doc.project.generation, field) == value:
            return
        try:
            commands.set_generation(self.doc, merge_key=f"generate:{field}", **{field: value})
        except (ValueError, WorldStudioError) as exc:  # pydantic's ValidationError is a ValueError
            self.message.emit(f"generation settings: {str(exc).splitlines()[0]}", True)
            self._fill()

    def _edit_size(self, field: str, value: int) -> None:
        snapped = max(16, int(round(value / 16)) * 16)
        if snapped != value:
            _set(self.width_spin if field == "width" else self.height_spin, snapped)
        self._edit(field, snapped)

    def _edit_frames(self, value: int) -> None:
        snapped = max(5, 4 * int(round((value - 1) / 4)) + 1)
        if snapped != value:
            _set(self.frames_spin, snapped)
        self._edit("frames_per_round", snapped)

    def set_profile(self, name: str) -> None:
        i = self.profile.findData(name)
        if i < 0:
            raise ValueError(f"unknown memory profile {name!r}")
        self.profile.setCurrentIndex(i)

    # ================================================================== LoRAs
    def refresh_loras(self) -> None:
        """Read the project's loras/ folder again (a training finished, a project opened)."""
        from worldstudio.core.training import list_adapters

        adapters = []
        if self.doc.folder is not None:
            from worldstudio.core.project import ProjectFolder

            adapters = list_adapters(ProjectFolder(self.doc.folder).loras_dir)
        self.adapters = adapters
        table = self.lora_table
        table.blockSignals(True)
        table.setRowCount(0)
        for info in adapters:
            path = info["path"]
            chosen, strength = self._loras.get(path, (False, 1.0))
            row = table.rowCount()
            table.insertRow(row)
            item = QTableWidgetItem(info.get("name", Path(path).stem))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if chosen else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, path)
            bits = [
                f"base model: {info['base_model']}" if info.get("base_model") else "",
                f"rank {info['rank']}" if info.get("rank") else "",
                f"{info['steps']} steps" if info.get("steps") else "",
                f"final loss {info['final_loss']:.4f}"
                if isinstance(info.get("final_loss"), float)
                else "",
                path,
            ]
            item.setToolTip("\n".join(b for b in bits if b))
            table.setItem(row, 0, item)
            spin = QDoubleSpinBox()
            spin.setRange(-2.0, 2.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(strength)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda v, p=path: self._lora_strength(p, v))
            table.setCellWidget(row, 1, spin)
            self._loras.setdefault(path, (chosen, strength))
        table.blockSignals(False)
        self._update_lora_note()

    def _lora_toggled(self, item: QTableWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path is None:
            return
        _chosen, strength = self._loras.get(path, (False, 1.0))
        self._loras[path] = (item.checkState() == Qt.CheckState.Checked, strength)
        self._update_lora_note()

    def _lora_strength(self, path: str, value: float) -> None:
        chosen, _ = self._loras.get(path, (False, 1.0))
        self._loras[path] = (chosen, float(value))

    def set_lora(
        self, name_or_path: str, chosen: bool = True, strength: float | None = None
    ) -> None:
        """Choose (or drop) an adapter by name or path, as the table's check box and spin do."""
        for row in range(self.lora_table.rowCount()):
            item = self.lora_table.item(row, 0)
            path = item.data(Qt.ItemDataRole.UserRole)
            if name_or_path in (path, item.text()):
                if strength is not None:
                    self.lora_table.cellWidget(row, 1).setValue(strength)
                item.setCheckState(Qt.CheckState.Checked if chosen else Qt.CheckState.Unchecked)
                return
        raise KeyError(f"no LoRA {name_or_path!r} in the project's loras folder")

    def selected_loras(self) -> list[tuple[str, float]]:
        """(path, strength) of the chosen adapters that are still in the folder."""
        present = {a["path"] for a in getattr(self, "adapters", [])}
        return [(p, s) for p, (chosen, s) in self._loras.items() if chosen and p in present]

    def _update_lora_note(self) -> None:
        if not getattr(self, "adapters", None):
            self.lora_note.setText("No LoRAs yet: train one in the Training panel.")
        elif self.doc.project.generation.backend in MODEL_FREE:
            self.lora_note.setText("LoRAs apply to the Wan backends only.")
        else:
            n = len(self.selected_loras())
            self.lora_note.setText(f"{n} chosen" if n else "Tick an adapter to apply it.")

    # ================================================================== runs
    def _runs(self):
        from worldstudio.core.project import ProjectFolder
        from worldstudio.core.project.runs import list_runs

        if self.doc.folder is None:
            return []
        return list_runs(ProjectFolder(self.doc.folder))

    def _latest_run(self) -> Path | None:
        runs = self._runs()
        return runs[-1].path if runs else None

    def refresh_runs(self, select: Path | None = None) -> None:
        from worldstudio.core.project.runs import RunError

        keep = Path(select) if select is not None else self.selected_run()
        self.runs_combo.blockSignals(True)
        self.runs_combo.clear()
        self.run_meta: dict[str, dict] = {}
        for run in reversed(self._runs()):  # newest first
            try:
                meta = run.read_meta()
            except RunError:
                continue
            done = run.completed_rounds()
            total = int(meta.get("rounds_total") or 0)
            status = meta.get("status", "?")
            self.run_meta[str(run.path)] = dict(meta, rounds_done=done)
            self.runs_combo.addItem(
                f"{run.id} · {meta.get('backend', '?')} · {done}/{total} · {status}", str(run.path)
            )
        if self.runs_combo.count() == 0:
            self.runs_combo.addItem("(no runs yet)", None)
        i = self.runs_combo.findData(str(keep)) if keep is not None else -1
        self.runs_combo.setCurrentIndex(max(i, 0))
        self.runs_combo.blockSignals(False)
        self._run_selected()

    def selected_run(self) -> Path | None:
        data = self.runs_combo.currentData() if self.runs_combo.count() else None
        return Path(data) if data else None

    def select_run(self, run: str | Path) -> None:
        i = self.runs_combo.findData(str(Path(run)))
        if i < 0:
            raise KeyError(f"no run {run}")
        self.runs_combo.setCurrentIndex(i)

    def _selected_meta(self) -> dict | None:
        run = self.selected_run()
        return self.run_meta.get(str(run)) if run is not None else None

    def _run_selected(self) -> None:
        meta = self._selected_meta()
        if meta is None:
            self.run_info.setText(
                "Generate to make the first run."
                if self.doc.folder
                else "Save the project to generate."
            )
        else:
            s = meta.get("settings", {})
            parent = meta.get("parent")
            text = (
                f"{meta['rounds_done']} of {meta.get('rounds_total')} rounds · {s.get('width')}×"
                f"{s.get('height')} · F={s.get('frames_per_round')} · seed {s.get('seed')}"
            )
            if parent:
                text += f" · branch of {parent.get('run')} from round {int(parent.get('from_round', 0)) + 1}"
            if meta.get("error") and meta.get("status") != "complete":
                text += f"\n{meta.get('status')}: {meta['error']}"
            self.run_info.setText(text)
            self.branch_spin.setRange(1, int(meta["rounds_done"]) + 1)
            self.branch_spin.setValue(int(meta["rounds_done"]) + 1)
        self._update_buttons()

    def resumable(self) -> bool:
        meta = self._selected_meta()
        return bool(meta) and meta["rounds_done"] < int(meta.get("rounds_total") or 0)

    def _play_run(self, name: str) -> None:
        run = self.selected_run()
        if run is not None and (run / name).is_file():
            self.play_requested.emit(str(run / name))

    def _update_buttons(self) -> None:
        busy = self.runner.busy
        has_folder = self.doc.folder is not None
        run = self.selected_run()
        meta = self._selected_meta()
        self.generate_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy and self.active)
        self.resume_button.setEnabled(not busy and has_folder and self.resumable())
        self.branch_button.setEnabled(not busy and meta is not None)
        self.branch_spin.setEnabled(meta is not None)
        self.play_final.setEnabled(run is not None and (run / "final.mp4").is_file())
        self.play_combined.setEnabled(run is not None and (run / "final_combined.mp4").is_file())

    # ================================================================== running
    def _ask_save(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Save before generating?",
            "The world engine reads the saved project. Save your changes and generate?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        return answer == QMessageBox.StandardButton.Save

    def _ensure_saved(self) -> bool:
        if self.doc.folder is not None and not self.doc.is_modified:
            return True
        if not self.ask_save():
            return False
        if self._save is not None:
            return bool(self._save())
        try:
            self.doc.save()
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
            return False
        return True

    def _options(self, **more) -> RunOptions:
        """The run options this panel sets (the rest come from the project)."""
        return RunOptions(
            profile=self.profile.currentData() or "auto",
            monitors=self.monitors.isChecked(),
            loras=self.selected_loras() or None,
            **more,
        )

    def generate(self) -> bool:
        """Save (asking) and start a new run with the project's settings."""
        from worldstudio.core.generation.engine import generate_job

        return self._launch(lambda folder: generate_job(folder, self._options()), "Generate")

    def resume(self, run: str | Path | None = None) -> bool:
        """Continue ``run`` (default: the chosen one) after its last complete round."""
        from worldstudio.core.generation.engine import generate_job

        run = Path(run) if run is not None else self.selected_run()
        if run is None:
            self.message.emit("Choose a run to resume", True)
            return False
        # the run's own settings (profile, LoRAs, monitors) are kept: run.json records them
        return self._launch(
            lambda folder: generate_job(folder, RunOptions(resume=str(run))),
            f"Resume {run.name}",
            needs_save=False,
            run=run,
        )

    def branch(self, from_round: int | None = None, run: str | Path | None = None) -> bool:
        """A new run copying the rounds before ``from_round`` (0-based; default: the spin box's
        round) from ``run`` (default: the chosen one), regenerating the rest with the project's
        current prompts and settings (size and frames per round stay the parent's)."""
        from worldstudio.core.generation.engine import generate_job

        run = Path(run) if run is not None else self.selected_run()
        if run is None:
            self.message.emit("Choose a run to branch from", True)
            return False
        k = int(from_round) if from_round is not None else self.branch_spin.value() - 1
        g = self.doc.project.generation
        options = self._options(
            backend=g.backend,
            steps=g.steps,
            guidance=g.guidance,
            seed=g.seed,
            model=project_model_for(g.backend, g),
            resume=str(run),
            from_round=k,
        )
        return self._launch(
            lambda folder: generate_job(folder, options),
            f"Branch {run.name} from round {k + 1}",
        )

    def _launch(
        self, make_job, description: str, needs_save: bool = True, run: Path | None = None
    ) -> bool:
        if self.runner.busy:
            self.message.emit("Another job is running; wait for it or cancel it", True)
            return False
        if needs_save and not self._ensure_saved():
            return False
        if self.doc.folder is None:
            self.message.emit("Save the project first: runs go into its folder", True)
            return False
        try:
            job = make_job(self.doc.folder)
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
            return False
        self._runs_before = {r.path.name for r in self._runs()}
        self.current_run = run  # a new run's folder is found once it appears
        self.last_error = ""
        self._last_rounds_seen = -1
        self.active = True
        if not self.runner.start(job, description):
            self.active = False
            return False
        self.screen.clear_image("Starting…")
        self.stage.setText(description)
        self.bar.setRange(0, 0)
        self.poll.start()
        self._update_buttons()
        return True

    def _find_current_run(self) -> Path | None:
        if self.current_run is None and self.doc.folder is not None:
            fresh = [r for r in self._runs() if r.path.name not in self._runs_before]
            if fresh:
                self.current_run = fresh[-1].path
        return self.current_run

    def _poll_run(self) -> None:
        """While running: tell the timeline when another round is complete on disk."""
        run = self._find_current_run()
        if run is None:
            return
        from worldstudio.core.project.runs import RunFolder

        done = RunFolder(run).completed_rounds()
        if done != self._last_rounds_seen:
            self._last_rounds_seen = done
            self.run_changed.emit(run)

    # ------------------------------------------------------------------ reports
    def _on_progress(self, done: int, total: int, message: str) -> None:
        if not self.active:
            return
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        self.stage.setText(message)

    def _on_preview(self, image, message: str) -> None:
        if not self.active:
            return
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
            self.screen.show_image(img)
            self.screen.setToolTip(message)

    def _ended(self) -> None:
        self.active = False
        self.poll.stop()
        run = self._find_current_run()
        self.refresh_runs(select=run)
        self.run_changed.emit(run if run is not None else self._latest_run())
        self._update_buttons()

    def _on_finished(self, result) -> None:
        if not self.active:
            return
        self.last_result = result
        self.current_run = Path(result.run_dir)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.stage.setText(
            f"run {result.run_id}: {result.rounds_done}/{result.rounds_total} rounds in "
            f"{result.seconds:.1f} s"
        )
        self._ended()
        video = result.final_mp4
        if video is not None and Path(video).is_file():
            self.play_requested.emit(str(video))

    def _on_failed(self, message: str) -> None:
        if not self.active:
            return
        self.last_error = message
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.stage.setText(f"failed: {message}")
        self._ended()

    def _on_cancelled(self) -> None:
        if not self.active:
            return
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.stage.setText("cancelled: finished rounds are kept (Resume continues the run)")
        self._ended()
