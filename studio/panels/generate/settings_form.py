"""The Generate panel's settings form: backend, model and memory (with the VRAM estimate), speed
(quality preset, cache, attention, compilation), video size and frames, sampling, conditioning.

Settings that are part of the project model (backend, model, weight precision, VAE tiling, the
speed settings, size, frames per round, colour matching, steps, guidance, seed, the
conditioning: per-role strengths, context frames, flow shift, which entities the prompt names,
the negative prompt) are edited through undoable document commands and redrawn from the
document's change events; the memory profile, monitors on/off and the GPU count (several GPUs
split each model call: core.generation.parallel) are the form's own (:meth:`run_options`,
:meth:`gpu_count`). The VRAM row estimates the current combination of profile, precision,
cache and compilation.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation import acceleration
from worldstudio.core.generation.engine import project_model_for
from worldstudio.core.project.model import WAN_NEGATIVE_PROMPT
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.widgets import (
    CommitTextEdit,
    float_spin,
    hint,
    int_spin,
    show_value,
    size_row,
)

MODEL_FREE = ("geometry", "oracle", "ideal")
PROFILE_TIPS = {
    "auto": "the fastest profile that fits the GPU's free memory",
    "gpu": "every component on the GPU (fastest)",
    "offload": "one component at a time on the GPU (model CPU offload)",
    "fp8": "the backbone stored in float8 and computed in bf16, with model CPU offload "
    "(LiveWorld; changes the numerics slightly)",
    "low-vram": "block-level group offload and VAE tiling (slowest, fits small GPUs)",
}
_TILING = {"auto": None, "on": True, "off": False}
# Wan model ids name their kind; a mismatch with the backend is worth a note.
_KIND_HINT = {"wan-vace": "vace", "wan-i2v": "i2v"}
GiB = 1024**3


class GenerationSettingsForm(QWidget):
    """Five group boxes: model and memory, speed, video, sampling, conditioning."""

    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self._backends: dict[tuple[str, str | None], Any] = {}  # estimate-only backend objects
        self._build()
        doc.changed.connect(self._on_changed)
        self.fill()

    def _build(self) -> None:
        # -- model and memory
        self.backend = QComboBox()
        self.backend.setToolTip(
            "geometry: the renders themselves (no model) · oracle: the demo "
            "scene's ground truth · ideal: what a perfect model would make of the conditioning "
            "(demo scene) · wan-vace / wan-i2v: the Wan video models · liveworld: LiveWorld's "
            "own model (Wan 2.1 T2V 14B with its State Adapter)"
        )
        self.backend.currentIndexChanged.connect(
            lambda _i: self._choose_backend(self.backend.currentData())
        )
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(12)
        self.model.currentIndexChanged.connect(
            lambda _i: self._edit("model_id", self.model.currentData())
        )
        self.model_note = hint()
        self.profile = QComboBox()  # the backend's memory profiles (_fill_profiles)
        self.profile.currentIndexChanged.connect(lambda _i: self._update_estimate())
        precision_tips = {
            "auto": "bf16 on a GPU (float32 on a CPU)",
            "fp8": "weights stored in float8, each layer cast to bf16 as it runs (layerwise "
            "casting): half the memory",
            "int8": "torchao int8 weight-only quantisation: half the memory (14B on 24 GB with "
            "the offload profile)",
            "nf4": "bitsandbytes 4-bit: a quarter of the memory; needs a CUDA GPU",
        }
        self.precision = self._choice_box(
            "precision",
            [(name, name, precision_tips[name]) for name in acceleration.PRECISIONS],
            "How the transformer's weights are stored",
        )
        self.vae_tiling = QComboBox()
        for name in _TILING:
            self.vae_tiling.addItem(name, name)
        self.vae_tiling.setToolTip(
            "VAE tiling and slicing: decode in tiles (less memory, a little slower); auto: on "
            "with the low-vram profile"
        )
        self.vae_tiling.currentIndexChanged.connect(
            lambda _i: self._edit_optional("vae_tiling", _TILING[self.vae_tiling.currentData()])
        )
        self.vram = QLabel("")
        self.vram.setObjectName("vramEstimate")
        self.vram.setWordWrap(True)
        self.vram.setToolTip(
            "Accelerator memory one generation call needs (weights + activations "
            "+ runtime), from the model's configs; and main memory, where the backend "
            "estimates it"
        )
        g1 = QGroupBox("Model and memory")
        f1 = QFormLayout(g1)
        f1.addRow("Backend", self.backend)
        f1.addRow("Model", self.model)
        f1.addRow("", self.model_note)
        f1.addRow("Memory", self.profile)
        f1.addRow("Weights", self.precision)
        f1.addRow("VAE tiling", self.vae_tiling)
        f1.addRow("VRAM", self.vram)
        self.gpus = self._build_gpus()
        f1.addRow("GPUs", self.gpus)
        g_speed = self._build_speed()

        # -- video
        self.width_spin = int_spin(16, 4096, 16, tip="video width in pixels (a multiple of 16)")
        self.height_spin = int_spin(16, 4096, 16, tip="video height in pixels (a multiple of 16)")
        self.width_spin.valueChanged.connect(lambda v: self._edit_size("width", v))
        self.height_spin.valueChanged.connect(lambda v: self._edit_size("height", v))
        self.frames_spin = int_spin(5, 1001, 4, tip="frames per round: 4k+1 (5, 9, ..., 65, 81)")
        self.frames_spin.valueChanged.connect(self._edit_frames)
        self.monitors = QCheckBox("Monitors keep entities alive off-screen")
        self.monitors.setChecked(True)
        self.monitors.setToolTip(
            "Off: every monitor is switched off and entities freeze where they were last seen"
        )
        self.video_info = hint()
        g2 = QGroupBox("Video")
        f2 = QFormLayout(g2)
        f2.addRow("Size", size_row(self.width_spin, self.height_spin))
        f2.addRow("Frames / round", self.frames_spin)
        f2.addRow("", self.video_info)
        f2.addRow(self.monitors)
        self.colour_match = QCheckBox("Match colours between rounds")
        self.colour_match.setToolTip(
            "Correct each clip's colours to the frames it continues from (against the colour "
            "drift of long videos)"
        )
        self.colour_match.toggled.connect(lambda on: self._edit("colour_match", bool(on)))
        f2.addRow(self.colour_match)

        # -- sampling
        self.steps_spin = int_spin(1, 1000, 1, tip="denoising steps per call")
        self.steps_spin.valueChanged.connect(lambda v: self._edit("steps", int(v)))
        self.guidance_spin = float_spin(
            0.0, 50.0, decimals=2, step=0.5, tip="classifier-free guidance scale"
        )
        self.guidance_spin.valueChanged.connect(lambda v: self._edit("guidance", float(v)))
        self.seed_spin = int_spin(
            0, 2**31 - 1, 1, tip="run seed; every call derives its own from it"
        )
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

        g4 = self._build_conditioning()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for g in (g1, g_speed, g2, g3, g4):
            layout.addWidget(g)

    def _build_gpus(self):
        from worldstudio.core.runtime.launch import visible_gpu_count

        have = visible_gpu_count()  # torch is not imported for it
        spin = int_spin(1, max(1, have), value=1)
        split = (
            "Several GPUs split each model call (context parallelism: one worker process per "
            "GPU; wan-vace and wan-i2v, memory profile gpu)"
        )
        if have > 1:
            spin.setToolTip(f"{split}. This machine has {have} CUDA GPUs.")
        else:
            spin.setEnabled(False)
            seen = "one CUDA GPU" if have == 1 else "no CUDA GPU"
            spin.setToolTip(f"{split}. This machine has {seen}, so runs use one.")
        return spin

    def gpu_count(self) -> int:
        """How many GPUs a run started from this form uses."""
        return self.gpus.value() if self.gpus.isEnabled() else 1

    def _build_speed(self) -> QGroupBox:
        self.quality = self._choice_box(
            "quality",
            [(name, name, acceleration.QUALITY_HELP[name]) for name in acceleration.QUALITIES],
        )
        self.quality_info = hint()
        self.cache = self._choice_box(
            "cache",
            [(name, name, "") for name in acceleration.CACHE_CHOICES],
            "Denoising cache (diffusers' hooks): taylorseer, first-block (not for VACE), pab "
            "(pyramid attention broadcast); auto: the quality's",
        )
        self.attention = self._choice_box(
            "attention",
            [(name, name, "") for name in acceleration.ATTENTION_CHOICES],
            "Attention kernel (diffusers' dispatcher). auto: FlashAttention 3 on a Hopper GPU, "
            "else SageAttention, else FlashAttention 2, else PyTorch SDPA (native), whichever is "
            "installed; a run asking for one that is not installed says what is",
        )
        self.compile = QCheckBox("Compile the transformer (torch.compile)")
        self.compile.setToolTip(
            "Regional compilation of the repeated blocks with dynamic shapes: the first call "
            "compiles (shown as 'compiling…'), later calls at any size reuse it"
        )
        self.compile.toggled.connect(lambda on: self._edit("compile", bool(on)))
        g = QGroupBox("Speed")
        f = QFormLayout(g)
        f.addRow("Quality", self.quality)
        f.addRow("", self.quality_info)
        f.addRow("Cache", self.cache)
        f.addRow("Attention", self.attention)
        f.addRow(self.compile)
        return g

    def _build_conditioning(self) -> QGroupBox:
        self.observer_strength = float_spin(
            0.0,
            2.0,
            decimals=2,
            step=0.05,
            tip="How strongly the observer follows the world's renders (VACE's conditioning "
            "scale; 1.0 by default)",
        )
        self.observer_strength.valueChanged.connect(
            lambda v: self._edit("observer_strength", float(v))
        )
        self.monitor_strength = float_spin(
            0.0,
            2.0,
            decimals=2,
            step=0.05,
            tip="How strongly the monitors follow the world's renders: a monitor generates the "
            "whole frame, the render a soft hint, so its entities may go anywhere (0.4 by "
            "default, as LiveWorld)",
        )
        self.monitor_strength.valueChanged.connect(
            lambda v: self._edit("monitor_strength", float(v))
        )
        self.context_spin = int_spin(
            -1, 32, 1, tip="Previous frames every call continues from (auto: the backend's)"
        )
        self.context_spin.setSpecialValueText("auto")
        self.context_spin.valueChanged.connect(
            lambda v: self._edit_optional("context_frames", None if v < 0 else int(v))
        )
        self.flow_shift = float_spin(
            0.0,
            20.0,
            decimals=1,
            step=0.5,
            tip="The sampler's flow shift (auto: the backend's for the size; Wan: 3.0 below "
            "720p, 5.0 at 720p)",
        )
        self.flow_shift.setSpecialValueText("auto")
        self.flow_shift.valueChanged.connect(
            lambda v: self._edit_optional("flow_shift", None if v <= 0 else float(v))
        )
        self.prompt_entities = self._choice_box(
            "prompt_entities",
            [("entities it shows", "visible", ""), ("every entity", "all", "")],
            "Which entities the observer's prompt names: only those its renders show (an "
            "off-screen entity named in the prompt gets painted into the holes), or all",
        )
        self.negative = CommitTextEdit()
        self.negative.setMaximumHeight(64)
        self.negative.setToolTip(
            "The negative prompt of every call. Wan's standard one (Chinese) says, roughly: "
            "garish colours, overexposed, static, blurry details, subtitles, style, artwork, "
            "still picture, greyish, worst quality, low quality, JPEG artefacts, ugly, "
            "mutilated, extra fingers, badly drawn hands or faces, deformed, disfigured, "
            "malformed limbs, fused fingers, motionless frame, cluttered background, three "
            "legs, crowded background, walking backwards"
        )
        self.negative.setMinimumWidth(120)
        self.negative.committed.connect(lambda text: self._edit("negative_prompt", text.strip()))
        reset = QToolButton()
        reset.setText("Wan's")
        reset.setToolTip("Back to Wan's standard negative prompt")
        reset.clicked.connect(lambda: self._edit("negative_prompt", WAN_NEGATIVE_PROMPT))
        neg = QHBoxLayout()
        neg.addWidget(self.negative, 1)
        neg.addWidget(reset, 0, Qt.AlignmentFlag.AlignTop)
        self.conditioning_info = hint()
        g4 = QGroupBox("Conditioning")
        f4 = QFormLayout(g4)
        f4.addRow("Observer strength", self.observer_strength)
        f4.addRow("Monitor strength", self.monitor_strength)
        f4.addRow("Context frames", self.context_spin)
        f4.addRow("Flow shift", self.flow_shift)
        f4.addRow("Prompt names", self.prompt_entities)
        f4.addRow("Negative prompt", neg)
        f4.addRow("", self.conditioning_info)
        return g4

    def run_options(self) -> dict:
        """The options a run takes from the form and not from the project."""
        return {
            "profile": self.profile.currentData() or "auto",
            "monitors": self.monitors.isChecked(),
        }

    # ================================================================== model -> widgets
    def _on_changed(self, aspect: str) -> None:
        if aspect in ("all", "generation", "rounds"):
            self.fill()

    def fill(self) -> None:
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
        show_value(self.backend, g.backend)
        self._fill_models(g.model_id)
        self._fill_profiles()
        show_value(self.width_spin, g.width)
        show_value(self.height_spin, g.height)
        show_value(self.frames_spin, g.frames_per_round)
        show_value(self.steps_spin, g.steps)
        show_value(self.guidance_spin, g.guidance)
        show_value(self.seed_spin, min(g.seed, 2**31 - 1))
        show_value(self.observer_strength, g.observer_strength)
        show_value(self.monitor_strength, g.monitor_strength)
        show_value(self.context_spin, -1 if g.context_frames is None else g.context_frames)
        show_value(self.flow_shift, 0.0 if g.flow_shift is None else g.flow_shift)
        show_value(self.prompt_entities, g.prompt_entities)
        show_value(self.negative, g.negative_prompt, keep_focused=True)
        show_value(self.precision, g.precision)
        tiling = {None: "auto", True: "on", False: "off"}[g.vae_tiling]
        show_value(self.vae_tiling, tiling)
        show_value(self.quality, g.quality)
        show_value(self.cache, g.cache)
        show_value(self.attention, g.attention)
        show_value(self.compile, g.compile)
        show_value(self.colour_match, g.colour_match)
        self.quality_info.setText(self._quality_text())
        self.quality_info.setVisible(bool(self.quality_info.text()))
        self.conditioning_info.setText(self._conditioning_text())
        n = len(self.doc.project.rounds)
        total = n * g.frames_per_round
        self.video_info.setText(
            f"{n} round{'s' if n != 1 else ''} × {g.frames_per_round} frames = "
            f"{total} frames ({total / g.fps:.1f} s at {g.fps} fps)"
        )
        model_free = g.backend in MODEL_FREE
        for w in (
            self.model,
            self.profile,
            self.steps_spin,
            self.guidance_spin,
            self.flow_shift,
            self.negative,
            self.precision,
            self.vae_tiling,
            self.quality,
            self.cache,
            self.attention,
            self.compile,
        ):
            w.setEnabled(not model_free)
        self._update_model_note()
        self._update_estimate()

    def _quality_text(self) -> str:
        """What the quality preset does with this model."""
        g = self.doc.project.generation
        if g.backend in MODEL_FREE:
            return ""
        if g.quality == "fast":
            return f"cache: {acceleration.cache_for(g.quality, g.cache)}"
        if g.quality != "draft":
            return ""
        try:
            backend = self._estimate_backend(g.backend, self._effective_model())
            recipe = backend.draft_recipe()
            if recipe is None:
                return f"{g.backend} has no draft preset"
            return f"draft: {recipe.text()} (instead of the sampling's)"
        except WorldStudioError as exc:
            return f"no draft preset: {exc}"

    def _conditioning_text(self) -> str:
        """What the auto values come to for the current backend and size."""
        g = self.doc.project.generation
        if g.backend in MODEL_FREE:
            return f"{g.backend} has no sampler: these are recorded with the run"
        try:
            backend = self._estimate_backend(g.backend, self._effective_model())
        except WorldStudioError:
            return ""
        parts = []
        if g.context_frames is None:
            parts.append(f"auto context: {backend.context_frames} frames")
        shift = backend.flow_shift_for(g.height, g.width)
        if g.flow_shift is None and shift is not None:
            parts.append(f"auto flow shift at {g.width}×{g.height}: {shift:g}")
        return " · ".join(parts)

    def showEvent(self, event) -> None:
        """Models may have been downloaded meanwhile: look again."""
        super().showEvent(event)
        self._fill_models(self.doc.project.generation.model_id)
        self._update_model_note()
        self._update_estimate()

    def _fill_models(self, current: str | None) -> None:
        """The models the backend runs (● on this machine, ○ to download), and ``current`` when
        it is none of them (a local folder: ◆)."""
        from worldstudio.core.models import find_model, model_status

        g = self.doc.project.generation
        try:
            choices = self._estimate_backend(g.backend, None).models()
        except WorldStudioError:
            choices = []
        self.model.blockSignals(True)
        self.model.clear()
        for choice in choices:
            needs = [find_model(n) for n in choice.needs]
            try:
                present = all(info is not None and model_status(info).present for info in needs)
            except WorldStudioError:
                present = False
            mark = "●" if present else "○"
            self.model.addItem(
                f"{mark} {choice.label}" + ("" if present else "  (not downloaded)"),
                choice.model_id,
            )
            downloads = "\n".join(
                f"{info.name}: {info.size_text} · {info.licence_text}"
                for info in needs
                if info is not None
            )
            tip = f"{choice.model_id}\n{choice.description}\n{downloads}"
            self.model.setItemData(self.model.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if choices and current and self.model.findData(current) < 0:
            self.model.addItem(f"◆ {Path(current).name or current}", current)  # a local folder
            self.model.setItemData(self.model.count() - 1, current, Qt.ItemDataRole.ToolTipRole)
        i = self.model.findData(current)
        self.model.setCurrentIndex(max(i, 0))
        self.model.blockSignals(False)

    def _fill_profiles(self) -> None:
        """The backend's memory profiles; the one chosen stays when the backend has it, else
        auto."""
        g = self.doc.project.generation
        try:
            profiles = self._estimate_backend(g.backend, None).profiles
        except WorldStudioError:
            profiles = ()
        if [self.profile.itemData(i) for i in range(self.profile.count())] == list(profiles):
            return
        chosen = self.profile.currentData()
        self.profile.blockSignals(True)
        self.profile.clear()
        for name in profiles:
            self.profile.addItem(name, name)
            self.profile.setItemData(
                self.profile.count() - 1, PROFILE_TIPS.get(name, ""), Qt.ItemDataRole.ToolTipRole
            )
        self.profile.setCurrentIndex(max(self.profile.findData(chosen), 0))
        self.profile.blockSignals(False)

    def _effective_model(self) -> str | None:
        g = self.doc.project.generation
        return project_model_for(g.backend, g)

    def _update_model_note(self) -> None:
        g = self.doc.project.generation
        if g.backend in MODEL_FREE:
            self.model_note.setText(f"{g.backend} uses no model")
            self.model_note.setVisible(True)
            return
        kind = _KIND_HINT.get(g.backend)
        text = ""
        if kind and g.model_id and kind not in g.model_id.lower() and "/" in g.model_id:
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
            accelerations = (
                ("precision", g.precision),
                ("cache", acceleration.cache_for(g.quality, g.cache)),
                ("compile", g.compile),
                ("vae_tiling", g.vae_tiling),
            )
            backend = self._estimate_backend(g.backend, model, accelerations)
            h, w, f = g.height, g.width, g.frames_per_round
            # the caches keep a state per guidance branch
            guidance = 1.0 if g.quality == "draft" else g.guidance
            if profile == "auto":
                full = backend.estimate(h, w, f, "gpu", guidance=guidance)
                low = backend.estimate(h, w, f, "low-vram", guidance=guidance)
                if full is None or low is None:
                    return f"no estimate for the {g.backend} backend"
                extra = "".join(f", {o}" for o in full.options)
                text = (
                    f"~{full.total / GiB:.1f} GiB all on the GPU, ~{low.total / GiB:.1f} GiB "
                    f"with low-vram (auto picks what fits{extra})"
                )
                if full.ram:
                    text += f"; RAM ~{full.ram / GiB:.1f} and ~{low.ram / GiB:.1f} GiB"
                return text
            est = backend.estimate(h, w, f, profile, guidance=guidance)
            return f"no estimate for the {g.backend} backend" if est is None else est.text()
        except WorldStudioError as exc:
            return f"no estimate: {exc}"

    def _estimate_backend(self, name: str, model: str | None, accelerations: tuple = ()):
        key = (name, model, accelerations)
        if key not in self._backends:
            from worldstudio.core.generation.backends import get_backend

            # a backend object loads nothing until it generates: it only answers the estimate
            self._backends[key] = get_backend(
                name, model_id=model, profile="auto", **dict(accelerations)
            )
        return self._backends[key]

    def _update_estimate(self) -> None:
        self.vram.setText(self.estimate_text())

    def _choose_backend(self, name: str | None) -> None:
        """The backend, and its first model when the project's model is not one it runs (a
        local folder stays): one undoable edit."""
        g = self.doc.project.generation
        if name is None or name == g.backend:
            return
        fields: dict[str, Any] = {"backend": name}
        try:
            choices = [c.model_id for c in self._estimate_backend(name, None).models()]
        except WorldStudioError:
            choices = []
        local = g.model_id is not None and Path(g.model_id).expanduser().is_dir()
        if choices and g.model_id not in choices and not local:
            fields["model_id"] = choices[0]
        try:
            commands.set_generation(self.doc, merge_key="generate:backend", **fields)
        except (ValueError, WorldStudioError) as exc:
            self.message.emit(f"generation settings: {str(exc).splitlines()[0]}", True)
            self.fill()

    # ================================================================== widgets -> model
    def _choice_box(
        self, field: str, items: list[tuple[str, str, str]], tip: str = ""
    ) -> QComboBox:
        """A box of (label, value, the item's tooltip) choices whose choice edits the project's
        generation setting ``field``."""
        box = QComboBox()
        for label, value, item_tip in items:
            box.addItem(label, value)
            if item_tip:
                box.setItemData(box.count() - 1, item_tip, Qt.ItemDataRole.ToolTipRole)
        box.setToolTip(tip)
        box.currentIndexChanged.connect(lambda _i: self._edit(field, box.currentData()))
        return box

    def _edit(self, field: str, value) -> None:
        if value is None and field != "model_id":
            return
        if getattr(self.doc.project.generation, field) == value:
            return
        try:
            commands.set_generation(self.doc, merge_key=f"generate:{field}", **{field: value})
        except (ValueError, WorldStudioError) as exc:  # pydantic's ValidationError is a ValueError
            self.message.emit(f"generation settings: {str(exc).splitlines()[0]}", True)
            self.fill()

    def _edit_optional(self, field: str, value) -> None:
        """A setting whose None means "auto"."""
        if getattr(self.doc.project.generation, field) == value:
            return
        try:
            commands.set_generation(self.doc, merge_key=f"generate:{field}", **{field: value})
        except (ValueError, WorldStudioError) as exc:
            self.message.emit(f"generation settings: {str(exc).splitlines()[0]}", True)
            self.fill()

    def _edit_size(self, field: str, value: int) -> None:
        snapped = max(16, int(round(value / 16)) * 16)
        if snapped != value:
            show_value(self.width_spin if field == "width" else self.height_spin, snapped)
        self._edit(field, snapped)

    def _edit_frames(self, value: int) -> None:
        snapped = max(5, 4 * int(round((value - 1) / 4)) + 1)
        if snapped != value:
            show_value(self.frames_spin, snapped)
        self._edit("frames_per_round", snapped)

    def set_profile(self, name: str) -> None:
        i = self.profile.findData(name)
        if i < 0:
            raise ValueError(f"unknown memory profile {name!r}")
        self.profile.setCurrentIndex(i)
