"""Training settings: one dataclass, validated before anything heavy is loaded.

Pure Python (no torch). ``None`` fields are filled from the project (size, fps, model) or from the
model (flow shift) by :func:`worldstudio.core.training.trainer.train`; :class:`SettledConfig` is
the type of a configuration whose project-dependent fields are filled.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from worldstudio.core.errors import WorldStudioError

DEFAULT_TARGET_MODULES: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
DEFAULT_STEPS = 1000
DEFAULT_FLOW_SHIFT = 3.0  # Wan 2.1 at 480p (the real repos' scheduler config says 3.0)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class TrainingError(WorldStudioError):
    """Training settings, clips or checkpoints a user can fix (the message says which)."""


@dataclass
class TrainConfig:
    """Everything one training run needs besides the project folder.

    The CLI flag for each field is given in brackets.
    """

    clips: Path | str  # [--clips] folder of mp4/mov/webm clips with captions
    name: str = "lora"  # [--name] the adapter: loras/<name>.safetensors, run folder loras/<name>/
    model: str | None = (
        None  # [--model] catalogue name, hub repo id or local folder; None: project's
    )
    steps: int | None = None  # [--steps] optimizer steps in total; None: 1000, or a resumed run's
    log_every: int = 1  # [--log-every] a log line every N steps (metrics are reported every step)
    rank: int = 16  # [--rank]
    alpha: float | None = None  # [--alpha] LoRA alpha; None: = rank (scale 1)
    dropout: float = 0.0  # [--dropout] LoRA dropout
    target_modules: tuple[str, ...] = (
        DEFAULT_TARGET_MODULES  # [--target-modules] in every main block
    )
    lr: float = 1e-4  # [--lr] peak learning rate
    weight_decay: float = 1e-4  # AdamW
    warmup_steps: int = 50  # [--warmup] linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    batch_size: int = 1  # [--batch-size] per process
    grad_accum: int = 1  # [--grad-accum] micro-batches per optimizer step
    max_grad_norm: float = 1.0  # gradient clipping (0 disables)
    width: int | None = None  # [--size WxH] None: the project's generation size
    height: int | None = None
    frames: int = 33  # [--frames] 4k+1
    fps: float | None = None  # [--fps] None: the project's generation fps
    windows_per_clip: int = 1  # [--windows-per-clip] non-overlapping F-frame windows from each clip
    flow_shift: float | None = None  # [--shift] None: the model scheduler's flow_shift, else 3.0
    timestep_sampling: Literal["uniform", "logit_normal"] = "uniform"  # [--timesteps]
    seed: int = 0  # [--seed]
    checkpoint_every: int = 250  # [--checkpoint-every] 0: only the final adapter
    keep_checkpoints: int = 0  # [--keep-checkpoints] 0: keep all
    sample_every: int = 250  # [--sample-every] 0: no samples
    sample_prompts: tuple[str, ...] = ()  # [--sample-prompt] empty: the first clip's caption
    sample_seed: int = 0  # [--sample-seed] prompt i uses seed sample_seed + i
    sample_steps: int = 20  # [--sample-steps]
    sample_guidance: float = 5.0  # [--sample-guidance]
    sample_frames: int | None = None  # None: frames
    sample_negative_prompt: str = ""
    eval_every: int = 0  # [--eval-every] eval loss on a fixed batch; always at the start and end
    eval_items: int = 4  # clips in the fixed evaluation batch
    gradient_checkpointing: bool = True  # [--no-gradient-checkpointing]
    mixed_precision: Literal["auto", "bf16", "no"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    cpu: bool = False  # [--cpu] train on the CPU even when a GPU is present
    resume: Path | str | None = None  # [--resume] checkpoint folder, or "latest"
    overwrite: bool = False  # [--overwrite] replace an earlier run of the same name
    cache_dir: Path | str | None = None  # None: PROJECT/loras/.cache
    default_caption: str | None = None  # [--caption] for clips without one; None: missing = error
    max_sequence_length: int = 512  # text tokens (the Wan pipelines' default)
    num_workers: int = 0  # DataLoader workers

    extra: dict[str, Any] = field(default_factory=dict)  # free-form, copied into the adapter JSON

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def validate(self) -> None:
        """Raise :class:`TrainingError` naming the first bad setting."""

        def need(cond: bool, message: str) -> None:
            if not cond:
                raise TrainingError(message)

        need(
            bool(NAME_RE.match(self.name or "")),
            f"--name: {self.name!r} must be 1-100 letters, digits, '.', '_' or '-' "
            "(it names loras/<name>.safetensors)",
        )
        need(self.steps is None or self.steps >= 1, f"--steps must be at least 1, got {self.steps}")
        need(self.log_every >= 1, f"--log-every must be at least 1, got {self.log_every}")
        need(self.rank >= 1, f"--rank must be at least 1, got {self.rank}")
        need(self.alpha is None or self.alpha > 0, f"--alpha must be positive, got {self.alpha}")
        need(0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}")
        need(
            len(self.target_modules) > 0 and all(t.strip() for t in self.target_modules),
            "--target-modules: give at least one module name such as to_q",
        )
        need(math.isfinite(self.lr) and self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        need(self.warmup_steps >= 0, f"--warmup must be >= 0, got {self.warmup_steps}")
        need(
            0.0 <= self.min_lr_ratio <= 1.0,
            f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}",
        )
        need(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        need(self.grad_accum >= 1, f"--grad-accum must be at least 1, got {self.grad_accum}")
        need(self.max_grad_norm >= 0, f"max_grad_norm must be >= 0, got {self.max_grad_norm}")
        for label, v in (("width", self.width), ("height", self.height)):
            need(
                v is None or (v > 0 and v % 16 == 0),
                f"--size: the {label} must be a positive multiple of 16, got {v}",
            )
        check_frames(self.frames, "--frames")
        if self.sample_frames is not None:
            check_frames(self.sample_frames, "sample_frames")
        need(
            self.fps is None or (math.isfinite(self.fps) and self.fps > 0),
            f"--fps must be positive, got {self.fps}",
        )
        need(
            self.windows_per_clip >= 1,
            f"--windows-per-clip must be at least 1, got {self.windows_per_clip}",
        )
        need(
            self.flow_shift is None or self.flow_shift > 0,
            f"--shift must be positive, got {self.flow_shift}",
        )
        need(
            self.timestep_sampling in ("uniform", "logit_normal"),
            f"--timesteps must be uniform or logit_normal, got {self.timestep_sampling!r}",
        )
        need(self.seed >= 0, f"--seed must be 0 or more, got {self.seed}")
        for label, v in (
            ("--checkpoint-every", self.checkpoint_every),
            ("--sample-every", self.sample_every),
            ("--eval-every", self.eval_every),
            ("--keep-checkpoints", self.keep_checkpoints),
        ):
            need(v >= 0, f"{label} must be 0 or more, got {v}")
        need(self.sample_steps >= 1, f"--sample-steps must be at least 1, got {self.sample_steps}")
        need(
            self.sample_guidance >= 0, f"--sample-guidance must be >= 0, got {self.sample_guidance}"
        )
        need(self.eval_items >= 1, f"eval_items must be at least 1, got {self.eval_items}")
        need(
            self.mixed_precision in ("auto", "bf16", "no"),
            f"--mixed-precision must be auto, bf16 or no, got {self.mixed_precision!r}",
        )
        need(self.max_sequence_length >= 1, "max_sequence_length must be at least 1")
        need(self.num_workers >= 0, "num_workers must be >= 0")


@dataclass(kw_only=True)
class SettledConfig(TrainConfig):
    """A :class:`TrainConfig` with the defaults that depend on the project or a resumed
    checkpoint filled in (by the trainer, before anything is trained): these fields are never
    None. ``model`` and ``flow_shift`` stay optional: the trainer settles them on the model it
    loads."""

    steps: int
    alpha: float
    width: int
    height: int
    fps: float
    sample_frames: int

    @classmethod
    def settle(
        cls,
        config: TrainConfig,
        *,
        steps: int,
        alpha: float,
        width: int,
        height: int,
        fps: float,
        sample_frames: int,
    ) -> SettledConfig:
        """``config`` with these values filled in, validated."""
        values = {f.name: getattr(config, f.name) for f in fields(config)}
        values.update(
            steps=steps,
            alpha=alpha,
            width=width,
            height=height,
            fps=fps,
            sample_frames=sample_frames,
        )
        settled = cls(**values)
        settled.validate()
        return settled


def check_frames(frames: int, label: str = "--frames") -> int:
    if frames < 5 or (frames - 1) % 4 != 0:
        raise TrainingError(
            f"{label} must be 4k+1 and at least 5 (5, 9, 13, ..., 33, ..., 81), got {frames}"
        )
    return frames


def parse_size(text: str) -> tuple[int, int]:
    """'832x480' -> (832, 480), both multiples of 16 (a TrainingError otherwise)."""
    from worldstudio.core.project.model import parse_size as parse_video_size

    try:
        return parse_video_size(text, multiple=16)
    except WorldStudioError as exc:
        raise TrainingError(str(exc)) from None


def as_path(value: Path | str | None) -> Path | None:
    return None if value is None else Path(value).expanduser()
