"""LoRA fine-tuning of the Wan video transformer on a folder of clips.

One implementation for every front end: :func:`train` runs a whole training; :func:`train_job`
wraps it as a job (``fn(ctx)``) for the CLI's progress bar and the studio's worker thread.

Per run (``PROJECT/loras/<name>/``)::

    loss.csv                step, loss, lr, epoch, elapsed_s   (one row per optimizer step)
    eval.csv                step, eval_loss                    (fixed batch, noise and timesteps)
    checkpoint-<step>/      see core.training.state (resumable; the LoRA loads in diffusers)
    samples/step-<step>-<i>.mp4   sample clips from fixed prompts and seeds

and, at the end, ``PROJECT/loras/<name>.safetensors`` (the adapter, diffusers format) with
``PROJECT/loras/<name>.json`` (rank, alpha, base model, steps, sizes...).

Reports: ``ctx.progress(step, total, "loss 0.1234")`` each step, ``ctx.log`` lines (every
``log_every`` steps: step, loss, lr), ``ctx.preview(strip)`` for each sample clip (a strip of
frames; the message names the mp4), and typed events (``ctx.event``, core.jobs.EVENTS):

    metrics      {"step", "loss", "lr", "epoch", "elapsed_s"}   every optimizer step
    metrics      {"step", "eval_loss"}                          each evaluation
    sample       {"step", "index", "prompt", "path"}
    checkpoint   {"step", "path"}
    paused / resumed {"step"}                                   from ctx.checkpoint(step)
    output       {"what": "adapter", "path", "step"}            the trained LoRA, at the end

Pause and cancel are the job context's: the loop calls ``ctx.checkpoint(step)`` before each
optimizer step, which holds while the job is paused and raises Cancelled once it is cancelled.

Multi-GPU: the loop runs under ``accelerate.Accelerator`` (the transformer, the optimizer and
the data loader are prepared; each process trains on its share of every batch and gradients are
averaged), so ``worldstudio train --gpus N`` (core.training.parallel, which starts the workers
with torchrun) or ``accelerate launch -m worldstudio train ...`` trains on several GPUs and a
plain call trains on one device (or the CPU). Only the main process encodes the cache, writes
files, samples and reports. With ``fsdp`` the transformer's blocks are sharded over the GPUs
(accelerate's FSDP2): the LoRA's tensors are gathered on every process before rank 0 writes
them, and checkpoints hold no optimizer state (a resumed run starts AdamW's moments afresh).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldstudio.core.errors import Cancelled
from worldstudio.core.jobs import JobContext
from worldstudio.core.training.config import (
    DEFAULT_STEPS,
    SettledConfig,
    TrainConfig,
    TrainingError,
    as_path,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

# Settings that define a run: a resumed run takes them from its checkpoint.
RUN_SETTINGS = (
    "model",
    "rank",
    "alpha",
    "dropout",
    "target_modules",
    "lr",
    "weight_decay",
    "warmup_steps",
    "min_lr_ratio",
    "batch_size",
    "grad_accum",
    "max_grad_norm",
    "width",
    "height",
    "frames",
    "fps",
    "windows_per_clip",
    "flow_shift",
    "timestep_sampling",
    "seed",
    "max_sequence_length",
    "default_caption",
)
EVAL_SIGMAS_UNSHIFTED = (0.1, 0.3, 0.5, 0.7, 0.9)
EVAL_SEED = 20240917


@dataclass
class TrainResult:
    adapter: Path  # PROJECT/loras/<name>.safetensors
    metadata_file: Path  # PROJECT/loras/<name>.json
    run_dir: Path  # PROJECT/loras/<name>/
    step: int
    total_steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # this session's steps
    lrs: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    cache: Any = None  # core.training.cache.CacheStats
    items: int = 0  # clip windows trained on
    resumed_from: Path | None = None


def train_job(
    project: str | Path,
    config: TrainConfig | None = None,
    **settings: Any,
) -> Callable[[JobContext], TrainResult]:
    """A job that trains a LoRA on ``project``: ``train_job(p, clips=..., steps=500)(ctx)``.

    ``config`` (a :class:`TrainConfig`) and/or keyword settings (its fields) say what to train.
    The job reports through its context (the module doc lists the events) and holds between
    optimizer steps while the context's job is paused."""
    unknown = set(settings) - TrainConfig.field_names()
    if unknown:
        raise TypeError(f"unknown training settings: {', '.join(sorted(unknown))}")
    if config is None:
        if "clips" not in settings:
            raise TrainingError("training needs a clip folder (clips=...)")
        config = TrainConfig(**settings)
    elif settings:
        config = dataclasses.replace(config, **settings)
    config.validate()

    def job(ctx: JobContext) -> TrainResult:
        return train(project, config, ctx=ctx)

    return job


def train(
    project: str | Path,
    config: TrainConfig,
    *,
    ctx: JobContext | None = None,
    fsdp: bool = False,
) -> TrainResult:
    """Train (or continue training) a LoRA; see the module doc for what is written. ``fsdp``:
    shard the transformer over the processes of a multi-GPU launch."""
    trainer = Trainer(project, config, ctx=ctx, fsdp=fsdp)
    return trainer.run()


def _reset_single_process_state() -> None:
    """accelerate keeps one process-wide state that refuses a second Accelerator with other
    settings (a bf16 GPU run, then a --cpu run in the same studio session). Outside a
    multi-process launch, forget it so each training starts clean."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return
    try:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    except Exception:  # noqa: BLE001 - a future accelerate without it: keep its state
        pass


def _mix_seed(*parts: int) -> int:
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (
            h ^ (int(p) + 0x9E3779B97F4A7C15 + ((h << 6) & 0xFFFFFFFFFFFFFFFF) + (h >> 2))
        ) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


class Trainer:
    """One training session. :meth:`run` does everything; the pieces are methods so tests and
    benchmarks can drive them (e.g. :meth:`eval_loss`)."""

    optimizer: torch.optim.Optimizer  # AdamW on the LoRA parameters; accelerate wraps it

    def __init__(
        self, project, config: TrainConfig, *, ctx: JobContext | None = None, fsdp: bool = False
    ):
        from worldstudio.core.project import ProjectFolder

        config.validate()
        self.fsdp = fsdp
        self.folder = ProjectFolder(project)
        self.project = self.folder.load()
        self.request = config  # as asked; run() settles it into self.config
        self.user_ctx = ctx or JobContext()
        self.ctx = self.user_ctx
        self.run_dir = self.folder.loras_dir / config.name
        self.adapter_path = self.folder.loras_dir / f"{config.name}.safetensors"
        self.meta_path = self.folder.loras_dir / f"{config.name}.json"

    # ------------------------------------------------------------------ reporting
    def check(self) -> None:
        self.user_ctx.check_cancelled()

    # ------------------------------------------------------------------ settings
    def _resolve_resume(self) -> Path | None:
        value = self.request.resume
        if value is None:
            return None
        from worldstudio.core.training.state import STATE_FILE, list_checkpoints

        if str(value) == "latest":
            found = list_checkpoints(self.run_dir)
            if not found:
                raise TrainingError(f"--resume latest: no checkpoint in {self.run_dir}")
            return found[-1][1]
        path = Path(value).expanduser()
        if not path.exists() and (self.run_dir / str(value)).exists():
            path = self.run_dir / str(value)
        if not (path / STATE_FILE).is_file():
            raise TrainingError(
                f"--resume: {path} is not a training checkpoint (no {STATE_FILE} inside)"
            )
        return path

    def _settle_config(self, checkpoint_state: dict | None) -> SettledConfig:
        """Fill the project's defaults; on resume, take the run-defining settings from the
        checkpoint (and say so when they differ from what was asked)."""
        cfg = self.request
        gen = self.project.generation
        if checkpoint_state is not None:
            saved = checkpoint_state.get("config", {})
            changes = {}
            for key in RUN_SETTINGS:
                if key not in saved:
                    continue
                value = saved[key]
                if key == "target_modules":
                    value = tuple(value)
                current = getattr(cfg, key)
                if current is not None and current != value:
                    default = TrainConfig.__dataclass_fields__[key].default
                    if current != default:
                        self.ctx.log(
                            f"resume: {key} stays {value!r} as in the checkpoint (asked: {current!r})"
                        )
                changes[key] = value
            if cfg.steps is None:
                changes["steps"] = int(checkpoint_state.get("total_steps", DEFAULT_STEPS))
            elif cfg.steps != checkpoint_state.get("total_steps"):
                self.ctx.log(
                    f"resume: training to {cfg.steps} steps instead of {checkpoint_state.get('total_steps')}; "
                    "the cosine schedule is recomputed for the new total"
                )
            cfg = dataclasses.replace(cfg, **changes)
        return SettledConfig.settle(
            cfg,
            steps=cfg.steps or DEFAULT_STEPS,
            width=cfg.width or gen.width,
            height=cfg.height or gen.height,
            fps=float(cfg.fps or gen.fps),
            alpha=float(cfg.alpha if cfg.alpha is not None else cfg.rank),
            sample_frames=cfg.sample_frames or cfg.frames,
        )

    def _prepare_run_dir(self, resume: Path | None) -> None:
        from worldstudio.core.training.state import list_checkpoints

        cfg = self.config
        if resume is None:
            existing = self.run_dir.exists() and (
                list_checkpoints(self.run_dir) or (self.run_dir / "loss.csv").exists()
            )
            if (existing or self.adapter_path.exists()) and not cfg.overwrite:
                where = self.run_dir if existing else self.adapter_path
                raise TrainingError(
                    f"--name {cfg.name}: {where} already holds a training run; continue it with "
                    "--resume latest, start again with --overwrite, or choose another --name"
                )
            if cfg.overwrite and self.is_main:
                shutil.rmtree(self.run_dir, ignore_errors=True)
                for p in (self.adapter_path, self.meta_path):
                    p.unlink(missing_ok=True)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ the whole run
    def run(self) -> TrainResult:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from worldstudio.core.training.cache import (
            Encoders,
            TensorCache,
            prepare_items,
            prepare_texts,
        )
        from worldstudio.core.training.dataset import list_clips
        from worldstudio.core.training.model import encoder_key, inspect_model, resolve_model
        from worldstudio.core.training.state import load_checkpoint

        cfg0 = self.request
        use_cpu = cfg0.cpu or not torch.cuda.is_available()
        precision = cfg0.mixed_precision
        if precision == "auto":
            precision = "no" if use_cpu else "bf16"
        _reset_single_process_state()
        self.accelerator = acc = Accelerator(
            cpu=use_cpu, mixed_precision=precision, fsdp_plugin=self._fsdp_plugin()
        )
        self.is_main = acc.is_main_process
        if not self.is_main:
            self.ctx = self.user_ctx.child(lambda _report: None)  # quiet on other processes
        self.device = acc.device
        self.weight_dtype = torch.bfloat16 if precision == "bf16" else torch.float32

        resume = self._resolve_resume()
        ckpt = load_checkpoint(resume, acc.process_index) if resume is not None else None
        self.config = cfg = self._settle_config(ckpt["state"] if ckpt else None)
        clips = list_clips(cfg.clips, cfg.default_caption)
        self._prepare_run_dir(resume)
        acc.wait_for_everyone()
        model_id, model_folder = resolve_model(cfg.model, self.project.generation.model_id)
        self.spec = spec = inspect_model(model_id, model_folder)
        self.shift = float(cfg.flow_shift or spec.flow_shift)
        if resume is None:
            self.config = cfg = dataclasses.replace(cfg, model=model_id, flow_shift=self.shift)
        self.ctx.log(
            f"training LoRA '{cfg.name}' on {model_id} ({spec.transformer_class}): {len(clips)} clips, "
            f"{cfg.width}x{cfg.height}, {cfg.frames} frames at {cfg.fps:g} fps, rank {cfg.rank}, "
            f"{cfg.steps} steps, {acc.num_processes} process(es) on {self.device}"
            + (f", resuming from {resume}" if resume else "")
        )

        # -- the cache (the main process encodes; the others then find everything cached)
        cache_dir = as_path(cfg.cache_dir) or (self.folder.loras_dir / ".cache")
        self.cache = cache = TensorCache(cache_dir)
        enc_key = encoder_key(spec)
        text_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.encoders = encoders = Encoders(spec, self.device, text_dtype, cfg.max_sequence_length)
        with acc.main_process_first():
            items, stats = prepare_items(
                clips,
                cache=cache,
                encoders=encoders,
                enc_key=enc_key,
                width=cfg.width,
                height=cfg.height,
                frames=cfg.frames,
                fps=cfg.fps,
                windows=cfg.windows_per_clip,
                report=self.ctx.progress,
                check=self.check,
            )
            for _name, reason in stats.skipped:
                self.ctx.log(f"skipped {reason}")
            if not items:
                reasons = "; ".join(r for _n, r in stats.skipped[:3])
                raise TrainingError(
                    f"--clips: none of the {len(clips)} clips in {cfg.clips} can be used ({reasons})"
                )
            self.sample_prompts = list(cfg.sample_prompts) or [items[0].caption]
            texts = [it.caption for it in items] + self.sample_prompts
            if cfg.sample_every and cfg.sample_guidance > 1.0:
                texts.append(cfg.sample_negative_prompt)
            self.text_embeds = prepare_texts(
                texts,
                cache=cache,
                encoders=encoders,
                enc_key=enc_key,
                max_sequence_length=cfg.max_sequence_length,
                stats=stats,
                check=self.check,
            )
            encoders.release_text_encoder()
        self.items = items
        self.stats = stats
        self.ctx.log(
            f"cache {cache_dir}: {stats.clips_encoded} clip windows encoded, {stats.clips_cached} cached; "
            f"{stats.texts_encoded} captions encoded, {stats.texts_cached} cached; {len(items)} windows to train on"
        )

        # -- the model
        set_seed(cfg.seed)
        self._build_model(ckpt)
        if spec.is_vace:
            with acc.main_process_first():
                self.control = self._empty_control(enc_key)
        else:
            self.control = None
        if not cfg.sample_every:
            encoders.release()

        # -- data
        from torch.utils.data import DataLoader

        from worldstudio.core.training.loader import EpochSampler, LatentDataset

        self.dataset = LatentDataset(items, self.text_embeds, cfg.max_sequence_length)
        self.sampler = EpochSampler(len(self.dataset), cfg.seed)
        # its own generator: creating an iterator then draws no number from the global RNG
        loader = DataLoader(
            self.dataset,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            # workers come from a fork server, not a fork of this threaded process: a fork while
            # another thread is inside OpenBLAS can hang that thread (STACK.md)
            multiprocessing_context="forkserver" if cfg.num_workers else None,
            drop_last=False,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.model, self.optimizer, self.loader = acc.prepare(
            self.transformer, self.optimizer, loader
        )
        # sharding replaces the parameters: clip the gradients of the ones the optimizer holds
        self.params = [p for p in self.model.parameters() if p.requires_grad]

        start_step = int(ckpt["state"]["step"]) if ckpt else 0
        if ckpt and ckpt["rng"] is not None:
            from worldstudio.core.training.state import set_rng_state

            set_rng_state(*ckpt["rng"])
        self.result = TrainResult(
            adapter=self.adapter_path,
            metadata_file=self.meta_path,
            run_dir=self.run_dir,
            step=start_step,
            total_steps=cfg.steps,
            cache=stats,
            items=len(items),
            resumed_from=resume,
        )
        self._open_logs(start_step)
        self._loop(start_step)
        return self.result

    # ------------------------------------------------------------------ model
    def _build_model(self, ckpt: dict | None) -> None:
        import torch

        from worldstudio.core.training.model import (
            add_lora,
            load_transformer,
            lora_parameters,
            set_lora_state_dict,
        )

        cfg = self.config
        transformer = load_transformer(self.spec, self.weight_dtype)
        if not self.fsdp:  # sharded, each GPU receives only its shards (fully_shard moves them)
            transformer = transformer.to(self.device)
        self.lora_config = add_lora(
            transformer,
            rank=cfg.rank,
            alpha=cfg.alpha,
            dropout=cfg.dropout,
            targets=cfg.target_modules,
        )
        if ckpt is not None:
            try:
                set_lora_state_dict(transformer, ckpt["lora"])
            except RuntimeError as exc:
                raise TrainingError(
                    f"--resume: the checkpoint's LoRA does not fit ({str(exc).splitlines()[0]})"
                ) from exc
        if cfg.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        transformer.train()
        self.transformer = transformer
        self.params = lora_parameters(transformer)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay
        )
        if ckpt is not None and ckpt["optimizer"] is not None and not self.fsdp:
            try:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except (ValueError, KeyError, RuntimeError) as exc:
                raise TrainingError(f"--resume: the optimizer state does not fit ({exc})") from exc
        n = sum(p.numel() for p in self.params)
        self.ctx.log(f"LoRA: {len(self.params)} tensors, {n:,} trainable parameters")

    def _empty_control(self, enc_key: str):
        from worldstudio.core.training.cache import control_key

        cfg = self.config
        key = control_key(cfg.width, cfg.height, cfg.frames, enc_key)
        entry = self.cache.load("control", key)
        if entry is None or "control" not in entry:
            entry = {
                "control": self.encoders.empty_control(
                    self.transformer, cfg.width, cfg.height, cfg.frames
                )
            }
            self.cache.save("control", key, entry)
        return entry["control"]

    # ------------------------------------------------------------------ the objective
    def loss(self, model, batch: dict, micro_step: int):
        """The flow-matching loss of one micro-batch; noise and timesteps come from a generator
        seeded by (seed, micro step, process), so a resumed run draws what the original would."""
        import torch

        from worldstudio.core.training.schedule import sample_sigmas

        cfg = self.config
        gen = torch.Generator().manual_seed(
            _mix_seed(cfg.seed, micro_step, self.accelerator.process_index)
        )
        x0 = batch["latents"].to(self.device, torch.float32)
        noise = torch.randn(x0.shape, generator=gen).to(self.device)
        sigma = sample_sigmas(x0.shape[0], gen, shift=self.shift, mode=cfg.timestep_sampling).to(
            self.device
        )
        return self._velocity_loss(model, x0, noise, sigma, batch["text"])

    def _velocity_loss(self, model, x0, noise, sigma, text):
        return velocity_loss(
            model,
            x0,
            noise,
            sigma,
            text,
            self.control,
            dtype=self.weight_dtype,
            autocast=self.accelerator.autocast,
        )

    def eval_loss(self) -> float:
        """The loss on a fixed batch (the first ``eval_items`` windows) with fixed noise and the
        fixed sigmas ``shift(0.1, 0.3, 0.5, 0.7, 0.9)``; dropout off, no gradients."""
        import torch

        from worldstudio.core.training.schedule import shift_sigma

        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        gen = torch.Generator().manual_seed(EVAL_SEED)
        losses = []
        try:
            with torch.no_grad():
                for i in range(min(self.config.eval_items, len(self.dataset))):
                    item = self.dataset[i]
                    x0 = item["latents"].unsqueeze(0).to(self.device, torch.float32)
                    text = item["text"].unsqueeze(0)
                    for s in EVAL_SIGMAS_UNSHIFTED:
                        noise = torch.randn(x0.shape, generator=gen).to(self.device)
                        sigma = torch.tensor(
                            [float(shift_sigma(s, self.shift))], device=self.device
                        )
                        losses.append(float(self._velocity_loss(model, x0, noise, sigma, text)))
        finally:
            model.train(was_training)
        return sum(losses) / len(losses)

    # ------------------------------------------------------------------ the loop
    def _open_logs(self, start_step: int) -> None:
        self.loss_csv = self.run_dir / "loss.csv"
        self.eval_csv = self.run_dir / "eval.csv"
        if not self.is_main:
            return
        for path, header in (
            (self.loss_csv, ["step", "loss", "lr", "epoch", "elapsed_s"]),
            (self.eval_csv, ["step", "eval_loss"]),
        ):
            rows: list[list[str]] = []
            if start_step > 0 and path.is_file():
                with open(path, newline="", encoding="utf-8") as f:
                    reader = csv.reader(f)
                    next(reader, None)
                    # the eval at the resumed step is measured again
                    keep = (
                        (lambda s: s <= start_step)
                        if path == self.loss_csv
                        else (lambda s: s < start_step)
                    )
                    rows = [r for r in reader if r and r[0].isdigit() and keep(int(r[0]))]
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(rows)

    def _append(self, path: Path, row: list) -> None:
        if self.is_main:
            with open(path, "a", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(row)

    def _evaluate(self, step: int) -> None:
        if not (self.is_main or self.fsdp):  # sharded, every process runs the forward passes
            return
        value = self.eval_loss()
        if not self.is_main:
            return
        self.result.eval_losses.append((step, value))
        self._append(self.eval_csv, [step, f"{value:.6f}"])
        self.ctx.log(f"step {step}: eval loss {value:.4f}")
        self.ctx.event("metrics", step=step, eval_loss=value)

    def _loop(self, start_step: int) -> None:
        import torch

        from worldstudio.core.training.schedule import lr_factor

        cfg = self.config
        acc = self.accelerator
        total = cfg.steps
        A = cfg.grad_accum
        per_epoch = len(self.loader)
        micro = start_step * A
        step = start_step
        self._last_checkpoint = start_step if start_step else -1
        if step >= total:
            self.ctx.log(f"the checkpoint is at step {step} of {total}: nothing left to train")
        self._evaluate(step)
        acc.wait_for_everyone()
        from worldstudio.core.training.loader import infinite_batches

        batches = infinite_batches(self.loader, micro)
        t0 = time.perf_counter()
        try:
            while step < total:
                self.ctx.checkpoint(step)
                lr = cfg.lr * lr_factor(step, total, cfg.warmup_steps, cfg.min_lr_ratio)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss_sum = torch.zeros((), device=self.device)
                for a in range(A):
                    batch = next(batches)
                    sync = acc.no_sync(self.model) if a < A - 1 else nullcontext()
                    with sync:
                        loss = self.loss(self.model, batch, micro)
                        acc.backward(loss / A)
                    loss_sum += loss.detach()
                    micro += 1
                if cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                value = float(acc.reduce(loss_sum / A, reduction="mean"))
                if not math.isfinite(value):
                    raise TrainingError(
                        f"the loss became {value} at step {step}; lower --lr (now {cfg.lr:g}) and "
                        "resume from the last checkpoint"
                    )
                self._after_step(
                    step, total, value, lr, micro / per_epoch, time.perf_counter() - t0
                )
        except (Cancelled, KeyboardInterrupt):
            if acc.num_processes == 1 and step > 0 and step != self._last_checkpoint:
                path = self._checkpoint(step, micro)
                self.ctx.log(f"stopped at step {step}; continue with --resume {path}")
            raise
        self._finish(step, micro)

    def _after_step(
        self, step: int, total: int, loss: float, lr: float, epoch: float, elapsed: float
    ) -> None:
        cfg = self.config
        res = self.result
        res.step = step
        res.losses.append((step, loss))
        res.lrs.append((step, lr))
        self._append(
            self.loss_csv, [step, f"{loss:.6f}", f"{lr:.6e}", f"{epoch:.4f}", f"{elapsed:.2f}"]
        )
        self.ctx.progress(step, total, f"loss {loss:.4f}")
        if step % cfg.log_every == 0 or step == total:
            self.ctx.log(f"step {step}/{total} loss {loss:.4f} lr {lr:.3e} epoch {epoch:.2f}")
        self.ctx.event("metrics", step=step, loss=loss, lr=lr, epoch=epoch, elapsed_s=elapsed)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
            self._evaluate(step)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
            self._checkpoint(step, step * cfg.grad_accum)
        if cfg.sample_every and step % cfg.sample_every == 0 and step < total:
            self._samples(step)
        self.accelerator.wait_for_everyone()

    def _finish(self, step: int, micro: int) -> None:
        cfg = self.config
        self._evaluate(step)
        if cfg.checkpoint_every and step != self._last_checkpoint:
            self._checkpoint(step, micro)
        if cfg.sample_every:
            self._samples(step)
        lora = self._lora_state()
        if lora is not None:  # rank 0
            self._save_adapter(step, lora)
        self.accelerator.wait_for_everyone()
        self.ctx.log(f"adapter: {self.adapter_path}")
        self.ctx.event("output", what="adapter", path=str(self.adapter_path), step=step)
        self.encoders.release()

    # ------------------------------------------------------------------ files
    def _trainer_state(self, step: int, micro: int) -> dict:
        cfg = self.config
        return {
            "format": "worldstudio-lora-checkpoint",
            "version": 1,
            "step": step,
            "total_steps": cfg.steps,
            "micro_steps": micro,
            "epoch": micro / max(len(self.loader), 1),
            "lr": self.optimizer.param_groups[0]["lr"],
            "num_processes": self.accelerator.num_processes,
            "items": len(self.items),
            "model_id": self.spec.model_id,
            "config": cfg.to_json(),
            "saved": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _fsdp_plugin(self):
        """accelerate's FSDP2 plugin for a sharded run (each main block is one shard unit)."""
        if not self.fsdp:
            return None
        from accelerate import FullyShardedDataParallelPlugin

        return FullyShardedDataParallelPlugin(
            fsdp_version=2,
            # the units: the classes of the model's _no_split_modules it has (its blocks)
            auto_wrap_policy="transformer_based_wrap",
            state_dict_type="FULL_STATE_DICT",
            reshard_after_forward=True,
            cpu_ram_efficient_loading=False,
        )

    def _lora_state(self) -> dict | None:
        """The LoRA's tensors on rank 0 (None elsewhere). Sharded, every process takes part in
        gathering them, so every process calls this."""
        from worldstudio.core.training.model import lora_state_dict

        if not (self.is_main or self.fsdp):
            return None
        state = lora_state_dict(self.accelerator.unwrap_model(self.model))
        return state if self.is_main else None

    def _checkpoint(self, step: int, micro: int) -> Path:
        from worldstudio.core.training.model import lora_metadata
        from worldstudio.core.training.state import (
            checkpoint_name,
            checkpoint_partial,
            finish_checkpoint,
            rng_state,
            save_checkpoint,
            save_rng_file,
        )

        acc = self.accelerator
        folder = self.run_dir / checkpoint_name(step)
        lora = self._lora_state()
        if lora is not None:  # rank 0
            save_checkpoint(
                folder,
                lora_state=lora,
                lora_meta=lora_metadata(self.lora_config),
                optimizer_state=None if self.fsdp else self.optimizer.state_dict(),
                trainer_state=self._trainer_state(step, micro),
            )
        acc.wait_for_everyone()
        save_rng_file(checkpoint_partial(folder), rng_state(), acc.process_index)
        acc.wait_for_everyone()
        if self.is_main:
            finish_checkpoint(folder, keep=self.config.keep_checkpoints)
            self.result.checkpoints.append(folder)
            self.ctx.log(f"checkpoint: {folder}")
            self.ctx.event("checkpoint", step=step, path=str(folder))
        self._last_checkpoint = step
        return folder

    def _save_adapter(self, step: int, lora: dict) -> None:
        from worldstudio.core.project import atomic_write_bytes
        from worldstudio.core.training.model import lora_metadata, save_lora_file

        cfg = self.config
        save_lora_file(self.adapter_path, lora, lora_metadata(self.lora_config))
        ev = self.result.eval_losses
        meta = {
            "format": "worldstudio-lora",
            "version": 1,
            "name": cfg.name,
            "file": self.adapter_path.name,
            "base_model": self.spec.model_id,
            "pipeline": self.spec.pipeline_class,
            "transformer": self.spec.transformer_class,
            "rank": cfg.rank,
            "alpha": cfg.alpha,
            "dropout": cfg.dropout,
            "target_modules": list(cfg.target_modules),
            "lora_modules": self.lora_config.target_modules,
            "steps": step,
            "lr": cfg.lr,
            "batch_size": cfg.batch_size * self.accelerator.num_processes,
            "grad_accum": cfg.grad_accum,
            "width": cfg.width,
            "height": cfg.height,
            "frames": cfg.frames,
            "fps": cfg.fps,
            "flow_shift": self.shift,
            "clips": len(self.items),
            "captions": sorted({it.caption for it in self.items})[:20],
            "final_loss": self.result.losses[-1][1] if self.result.losses else None,
            "eval_loss_start": ev[0][1] if ev else None,
            "eval_loss_end": ev[-1][1] if ev else None,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **({"extra": cfg.extra} if cfg.extra else {}),
        }
        atomic_write_bytes(self.meta_path, (json.dumps(meta, indent=2) + "\n").encode("utf-8"))

    # ------------------------------------------------------------------ samples
    def _sample_pipeline(self):
        if getattr(self, "_pipe", None) is None:
            from worldstudio.core.training.model import load_scheduler, make_pipeline

            self._pipe = make_pipeline(
                self.spec,
                vae=self.encoders.vae,
                scheduler=load_scheduler(self.spec),
                transformer=self.accelerator.unwrap_model(self.model),
            )
        return self._pipe

    def _samples(self, step: int) -> None:
        if not self.is_main:
            return
        import numpy as np
        import torch

        from worldstudio.core.media import write_mp4
        from worldstudio.core.training.loader import pad_text

        cfg = self.config
        pipe = self._sample_pipeline()
        model = pipe.transformer
        was_training = model.training
        model.eval()
        out_dir = self.run_dir / "samples"
        guidance = cfg.sample_guidance
        try:
            for i, prompt in enumerate(self.sample_prompts):
                self.check()
                embeds = pad_text(self.text_embeds[prompt], cfg.max_sequence_length).unsqueeze(0)
                kwargs = {}
                if guidance > 1.0:
                    neg = pad_text(
                        self.text_embeds[cfg.sample_negative_prompt], cfg.max_sequence_length
                    )
                    kwargs["negative_prompt_embeds"] = neg.unsqueeze(0).to(
                        self.device, self.weight_dtype
                    )
                gen = torch.Generator().manual_seed(cfg.sample_seed + i)
                with torch.no_grad():  # the prepared transformer carries accelerate's autocast
                    video = pipe(
                        prompt_embeds=embeds.to(self.device, self.weight_dtype),
                        height=cfg.height,
                        width=cfg.width,
                        num_frames=cfg.sample_frames,
                        num_inference_steps=cfg.sample_steps,
                        guidance_scale=guidance,
                        generator=gen,
                        output_type="np",
                        **kwargs,
                    ).frames[0]
                frames = np.clip(
                    np.round(np.asarray(video, dtype=np.float32) * 255.0), 0, 255
                ).astype(np.uint8)
                path = write_mp4(out_dir / f"step-{step:06d}-{i}.mp4", frames, cfg.fps)
                self.result.samples.append(path)
                self.ctx.preview(frame_strip(frames), f"sample at step {step}: {path.name}")
                self.ctx.log(f"sample: {path}")
                self.ctx.event("sample", step=step, index=i, prompt=prompt, path=str(path))
        finally:
            model.train(was_training)


def velocity_loss(model, x0, noise, sigma, text, control=None, *, dtype, autocast=nullcontext):
    """The flow-matching loss: the transformer's prediction at ``x_t`` against ``noise - x0``.

    ``x0``, ``noise``: (B, C, f, h, w) float32 on the model's device; ``sigma``: (B,); ``text``:
    (B, L, D) prompt embeddings; ``control``: VACE's (C', f, h, w) conditioning or None; ``dtype``:
    the transformer's weight dtype (inputs are cast to it, as the pipelines do); ``autocast``: a
    context factory (accelerate's ``autocast`` for bf16)."""
    import torch.nn.functional as F

    from worldstudio.core.training.schedule import flow_matching_inputs

    x_t, timestep, target = flow_matching_inputs(x0, noise, sigma)
    kwargs = {
        "hidden_states": x_t.to(dtype),
        "timestep": timestep,
        "encoder_hidden_states": text.to(x0.device, dtype),
        "return_dict": False,
    }
    if control is not None:
        c = control.to(x0.device, dtype)
        kwargs["control_hidden_states"] = c.unsqueeze(0).expand(x0.shape[0], *c.shape)
    with autocast():
        pred = model(**kwargs)[0]
    return F.mse_loss(pred.float(), target.float())


def frame_strip(frames, count: int = 4):
    """``count`` evenly spaced frames side by side: one (H, count*W, 3) uint8 preview image."""
    import numpy as np

    n = len(frames)
    idx = sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)}) if n > 1 else [0]
    return np.ascontiguousarray(np.concatenate([frames[i] for i in idx], axis=1))
