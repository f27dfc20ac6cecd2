"""What the diffusers Wan backends share: loading through the model manager, device and dtype,
memory profiles and attention, LoRAs, the per-step callback (progress, live preview, cancel) and
the output conversion.

A subclass of :class:`DiffusersWanBackend` says which pipeline class to load
(:meth:`~DiffusersWanBackend._load`) and how a :class:`GenerationRequest` becomes pipeline
arguments (:meth:`~DiffusersWanBackend._call_arguments`). The pipeline is loaded on the first
``generate`` and kept until :meth:`~DiffusersWanBackend.close` (one load per run).

Imported only when a Wan backend is asked for; torch and diffusers are imported inside.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.generation.backends.base import BackendError, GenerationRequest, check_frames
from worldstudio.core.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.generation.memory import AppliedProfile

GRAY = 128  # VACE's neutral "no content" colour (0 in the pipeline's [-1, 1] range)


# --------------------------------------------------------------------------- small helpers
def pick_device(device: str | None = None):
    """``device``, else ``$WORLDSTUDIO_DEVICE``, else CUDA when available, else the CPU."""
    import torch

    name = device or os.environ.get("WORLDSTUDIO_DEVICE")
    if not name:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def pick_dtype(device, dtype: Any = None):
    """``dtype`` (a torch dtype or its name), else bf16 on an accelerator and float32 on a CPU."""
    import torch

    if dtype is not None:
        if isinstance(dtype, str):
            try:
                return getattr(torch, dtype.replace("torch.", ""))
            except AttributeError:
                raise BackendError(f"unknown dtype {dtype!r}") from None
        return dtype
    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def model_folder(model_id: str | os.PathLike) -> Path:
    """A local pipeline folder as is; otherwise the catalogue name / hub repo id through
    ``worldstudio.core.models.resolve`` (the local snapshot, a download, or one ModelMissingError line)."""
    path = Path(model_id).expanduser()
    if (path / "model_index.json").is_file():
        return path
    from worldstudio.core.models import resolve

    return resolve(str(model_id))


@contextlib.contextmanager
def quiet_hub():
    """Silence diffusers' and transformers' progress bars and info logs while loading."""
    from diffusers.utils import logging as d_logging
    from transformers.utils import logging as t_logging

    d_level, t_level = d_logging.get_verbosity(), t_logging.get_verbosity()
    d_logging.set_verbosity_error()
    t_logging.set_verbosity_error()
    d_logging.disable_progress_bar()
    t_logging.disable_progress_bar()
    try:
        yield
    finally:
        d_logging.set_verbosity(d_level)
        t_logging.set_verbosity(t_level)
        d_logging.enable_progress_bar()
        t_logging.enable_progress_bar()


def dtype_kwarg(dtype) -> dict:
    """``{"dtype": ...}`` for diffusers' from_pretrained (``torch_dtype`` before it was renamed)."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - the rename's marker
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def transformers_dtype_kwarg(dtype) -> dict:
    """The same for transformers (``dtype`` since 4.56; version 5 otherwise keeps the stored dtype)."""
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__) >= Version("4.56"):
        return {"dtype": dtype}
    return {"torch_dtype": dtype}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def to_pil(image: np.ndarray, mode: str = "RGB"):
    import PIL.Image

    return PIL.Image.fromarray(np.ascontiguousarray(image), mode=mode)


def frames_to_uint8(video) -> np.ndarray:
    """The pipeline's ``output_type="np"`` frames, float in [0, 1], -> uint8 (F, H, W, 3)."""
    video = np.asarray(video)
    if video.ndim == 5:
        video = video[0]
    return (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_image(name: str, image: np.ndarray, height: int, width: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BackendError(
            f"{name}: expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}"
        )
    return image


# --------------------------------------------------------------------------- LoRAs
def lora_file(path: str | os.PathLike) -> Path:
    """A LoRA safetensors file (a folder holding ``pytorch_lora_weights.safetensors`` works too)."""
    p = Path(path).expanduser()
    if p.is_dir():
        candidates = [p / "pytorch_lora_weights.safetensors", *sorted(p.glob("*.safetensors"))]
        for c in candidates:
            if c.is_file():
                return c
        raise BackendError(f"LoRA folder {p}: no .safetensors file in it")
    if not p.is_file():
        raise BackendError(f"LoRA {p}: file not found")
    if p.suffix != ".safetensors":
        raise BackendError(f"LoRA {p}: expected a .safetensors file")
    return p


class LoraSet:
    """The LoRA adapters loaded into one pipeline, by file; applies a request's (path, strength)
    list with ``set_adapters`` (strength 0 keeps an adapter loaded but without effect)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # resolved file -> adapter name

    def apply(
        self, pipe: Any, loras: list[tuple[str, float]], ctx: JobContext | None = None
    ) -> list[str]:
        wanted: list[tuple[str, float]] = []
        for path, strength in loras or []:
            f = lora_file(path)
            key = str(f.resolve())
            if key not in self.names:
                name = f"lora{len(self.names)}_" + re.sub(r"[^A-Za-z0-9_]", "_", f.stem)[:40]
                try:
                    pipe.load_lora_weights(str(f), adapter_name=name)
                except Exception as exc:
                    raise BackendError(
                        f"LoRA {f}: cannot be applied to this model ({first_line(exc)})"
                    ) from exc
                self.names[key] = name
                if ctx is not None:
                    ctx.log(f"loaded LoRA {f.name} as {name}")
            wanted.append((self.names[key], float(strength)))
        if not self.names:
            return []
        if wanted:
            pipe.enable_lora()
            pipe.set_adapters([n for n, _ in wanted], [s for _, s in wanted])
        else:
            pipe.disable_lora()
        return [n for n, _ in wanted]


# --------------------------------------------------------------------------- the step callback
class StepReporter:
    """``callback_on_step_end`` for a diffusers pipeline: progress per step, a live preview of
    the predicted clean video, and cancellation (sets the pipeline's interrupt flag and raises
    :class:`Cancelled` at once, so no time is spent decoding an abandoned video)."""

    def __init__(
        self,
        ctx: JobContext,
        steps: int,
        label: str,
        tap=None,
        rgb_map=None,
        skip_latent_frames: int = 0,
        preview_every: int = 1,
    ):
        self.ctx = ctx
        self.steps = steps
        self.label = label
        self.tap = tap
        self.rgb_map = rgb_map
        self.skip = skip_latent_frames
        self.every = max(1, int(preview_every))
        self.done = 0
        self.preview_seconds = 0.0

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        self.done = step + 1
        self.ctx.progress(self.done, self.steps, f"{self.label}: step {self.done}/{self.steps}")
        if self.rgb_map is not None and self.tap is not None and self.tap.x0 is not None:
            if self.done % self.every == 0 or self.done == self.steps:
                from worldstudio.core.generation.live_preview import preview_image

                t0 = time.perf_counter()
                image = preview_image(self.tap.x0, self.rgb_map, skip_frames=self.skip)
                self.preview_seconds += time.perf_counter() - t0
                self.ctx.preview(image, f"{self.label}: step {self.done}/{self.steps}")
        if self.ctx.cancelled:
            pipe._interrupt = True
            raise Cancelled(f"cancelled at denoising step {self.done}/{self.steps}")
        return callback_kwargs


# --------------------------------------------------------------------------- the backend
@dataclass
class CallPlan:
    """What one pipeline call needs beyond the request: the arguments, how many leading output
    frames to drop, and how many latent frames the preview skips."""

    kwargs: dict[str, Any]
    drop_frames: int = 0
    skip_latent_frames: int = 0
    total_frames: int = 0


class DiffusersWanBackend:
    """Lazy loading, profiles, LoRAs, previews and cancellation around a diffusers Wan pipeline."""

    name = "wan"
    default_model = ""
    lifter = "model"

    def __init__(
        self,
        model_id: str | None = None,
        profile: str | None = "auto",
        device=None,
        dtype=None,
        preview: bool = True,
        preview_every: int = 1,
        **_options: Any,
    ):
        from worldstudio.core.generation.memory import check_profile

        self.model_id = str(model_id or self.default_model)
        self.profile = check_profile(profile)
        self._device_option = device
        self._dtype_option = dtype
        self.preview_enabled = bool(preview)
        self.preview_every = preview_every
        self.pipe = None
        self.folder: Path | None = None
        self.device = None
        self.dtype = None
        self.applied: AppliedProfile | None = None
        self.rgb_map = None
        self.loras = LoraSet()
        self.load_seconds = 0.0
        self.last_call_seconds = 0.0

    def required_models(self) -> list[str]:
        return [self.model_id]

    # ------------------------------------------------------------------ subclass hooks
    def _load(self, folder: Path, dtype):  # pragma: no cover - abstract
        raise NotImplementedError

    def _plan(self, request: GenerationRequest) -> CallPlan:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ loading
    def estimate(self, height: int, width: int, frames: int, profile: str | None = None):
        """The :class:`worldstudio.core.generation.memory.VramEstimate` of a call (profile "auto" -> gpu)."""
        from worldstudio.core.generation.memory import estimate

        name = profile or (self.applied.profile if self.applied else self.profile)
        return estimate(
            self.folder or self.model_id,
            height,
            width,
            frames,
            "gpu" if name == "auto" else name,
            extra_latent_frames=self._extra_latent_frames(),
        )

    def _extra_latent_frames(self) -> int:
        return 0

    def load(self, ctx: JobContext | None = None, request: GenerationRequest | None = None):
        """Load the pipeline (once), place it for the memory profile, pick the attention backend."""
        if self.pipe is not None:
            return self.pipe
        from worldstudio.core.generation import memory

        t0 = time.perf_counter()
        self.device = pick_device(self._device_option)
        self.dtype = pick_dtype(self.device, self._dtype_option)
        self.folder = model_folder(self.model_id)
        if ctx is not None:
            ctx.check_cancelled()
            ctx.log(
                f"{self.name}: loading {self.model_id} from {self.folder} ({self.dtype}, {self.device})"
            )
        try:
            with quiet_hub():
                pipe = self._load(self.folder, self.dtype)
        except WorldStudioError:
            raise
        except Exception as exc:
            raise BackendError(
                f"{self.name}: cannot load {self.folder} ({first_line(exc)})"
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        profile = self.profile
        if profile == "auto":
            h, w, f = (
                (request.height, request.width, request.num_frames) if request else (480, 832, 81)
            )
            free = memory.device_memory(self.device)
            profile = memory.choose_profile(
                self.folder, h, w, f, free, extra_latent_frames=self._extra_latent_frames()
            )
        applied = self.applied = memory.apply_profile(pipe, profile, self.device)
        attention, note = memory.apply_attention_backend(
            getattr(pipe, "transformer", None), self.device
        )
        applied.attention = attention
        if note:
            applied.notes.append(note)
        self.pipe = pipe
        self.load_seconds = time.perf_counter() - t0
        if ctx is not None:
            ctx.log(
                f"{self.name}: memory profile {applied.profile}, attention {attention}"
                f"{', VAE tiling' if applied.vae_tiling else ''}; loaded in {self.load_seconds:.1f} s"
            )
            for n in applied.notes:
                ctx.log(f"{self.name}: {n}")
        return pipe

    def _preview_map(self):
        if not self.preview_enabled or self.pipe is None:
            return None
        if self.rgb_map is None:
            from worldstudio.core.generation.live_preview import latent_rgb_map_for

            self.rgb_map = latent_rgb_map_for(self.pipe.vae, device=self.pipe._execution_device)
            if (
                self.applied is not None
                and self.applied.profile == "offload"
                and self.device.type != "cpu"
            ):
                self.pipe.maybe_free_model_hooks()  # send the VAE back to the CPU
        return self.rgb_map

    # ------------------------------------------------------------------ generating
    def call_arguments(
        self, request: GenerationRequest, plan: CallPlan, output_type: str = "np"
    ) -> dict:
        """The pipeline's keyword arguments for ``request`` (without the step callback)."""
        import torch

        return {
            **plan.kwargs,
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or "",
            "height": request.height,
            "width": request.width,
            "num_frames": plan.total_frames or request.num_frames,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "generator": torch.Generator(device="cpu").manual_seed(int(request.seed) % 2**63),
            "output_type": output_type,
        }

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        import torch

        from worldstudio.core.generation.live_preview import SchedulerTap

        ctx.check_cancelled()
        pipe = self.load(ctx, request)
        ctx.check_cancelled()
        self.loras.apply(pipe, list(request.loras or []), ctx)
        plan = self._plan(request)
        rgb_map = self._preview_map()
        tap = SchedulerTap(pipe.scheduler) if rgb_map is not None else contextlib.nullcontext()
        reporter = StepReporter(
            ctx,
            request.steps,
            f"{request.camera_id} round {request.round_index + 1}",
            tap if rgb_map is not None else None,
            rgb_map,
            plan.skip_latent_frames,
            self.preview_every,
        )
        ctx.progress(0, request.steps, f"{reporter.label}: encoding the conditioning")
        t0 = time.perf_counter()
        try:
            with tap:
                out = pipe(
                    **self.call_arguments(request, plan),
                    callback_on_step_end=reporter,
                    callback_on_step_end_tensor_inputs=["latents"],
                )
        except (WorldStudioError, Cancelled):
            self._after_failure()
            raise
        except torch.OutOfMemoryError as exc:
            self._after_failure()
            est = self.estimate(request.height, request.width, request.num_frames)
            raise BackendError(
                f"{self.name}: out of accelerator memory at {request.width}x{request.height}x"
                f"{request.num_frames} with profile {self.applied.profile if self.applied else self.profile} "
                f"(estimate {est.text()}); "
                f"try the 'offload' or 'low-vram' profile, fewer frames or a smaller size"
            ) from exc
        except Exception as exc:
            self._after_failure()
            raise BackendError(
                f"{self.name}: generation failed for {request.camera_id} "
                f"round {request.round_index + 1} ({type(exc).__name__}: {first_line(exc)})"
            ) from exc
        self.last_call_seconds = time.perf_counter() - t0
        frames = frames_to_uint8(out.frames)
        frames = frames[plan.drop_frames : plan.drop_frames + request.num_frames]
        return check_frames(frames, request, self.name)

    def _after_failure(self) -> None:
        pipe = self.pipe
        if pipe is None:
            return
        pipe._interrupt = False
        with contextlib.suppress(Exception):
            pipe.maybe_free_model_hooks()

    def close(self) -> None:
        pipe, self.pipe = self.pipe, None
        self.loras = LoraSet()
        if pipe is None:
            return
        with contextlib.suppress(Exception):
            pipe.remove_all_hooks()
        del pipe
        import gc

        gc.collect()
        with contextlib.suppress(Exception):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
