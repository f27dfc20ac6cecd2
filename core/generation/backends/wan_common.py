"""What the diffusers Wan backends share: loading through the model manager, device and dtype,
memory profiles, the accelerations (:mod:`worldstudio.core.generation.acceleration`: attention
backend, regional compilation, cache, weight precision, VAE tiling), LoRAs, the per-step callback
(progress, live preview, cancel) and the output conversion.

A subclass of :class:`DiffusersWanBackend` says which pipeline class to load
(:meth:`~DiffusersWanBackend._load`, which passes the given components, e.g. a quantised
transformer, to ``from_pretrained``) and how a :class:`GenerationRequest` becomes pipeline
arguments (:meth:`~DiffusersWanBackend._plan`). The pipeline is loaded on the first
``generate`` and kept until :meth:`~DiffusersWanBackend.close` (one load per run). With
``compile`` the transformer's blocks are compiled on the first ``generate``, after its LoRAs are
applied ("compiling" is reported while that first call compiles). With a ``parallel`` part
(:class:`worldstudio.core.generation.parallel.ContextParallel`, one worker of a multi-GPU run)
the transformer is split across the workers' GPUs when it loads, each call is handed to the
other workers before the pipeline runs, and the workers agree on a cancel at every step.

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
from worldstudio.core.generation.backends.base import (
    BackendError,
    BaseBackend,
    GenerationRequest,
    ModelChoice,
    check_frames,
)
from worldstudio.core.generation.memory import PROFILES, release_pipeline
from worldstudio.core.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.generation.acceleration import DraftRecipe
    from worldstudio.core.generation.memory import AppliedProfile

GRAY = 128  # VACE's neutral "no content" colour (0 in the pipeline's [-1, 1] range)


def wan_flow_shift(height: int, width: int) -> float:
    """Wan 2.1's recommended flow shift: 5.0 at 720p (the shorter side 720 pixels or more), 3.0
    below."""
    return 5.0 if min(int(height), int(width)) >= 720 else 3.0


def set_flow_shift(pipe: Any, shift: float) -> None:
    """Give the pipeline's flow-matching scheduler ``shift`` (a new scheduler from the same
    config when it differs; a scheduler without a flow shift is left alone)."""
    scheduler = pipe.scheduler
    current = getattr(scheduler, "config", {}).get("flow_shift")
    if current is None or float(current) == float(shift):
        return
    pipe.scheduler = type(scheduler).from_config(scheduler.config, flow_shift=float(shift))


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


@contextlib.contextmanager
def model_call_errors(backend: Any, request: GenerationRequest, profile: str, instead: str):
    """Around one pipeline call: whatever it raises leaves the pipeline reusable
    (``backend._after_failure()``) and reaches the user as one line. Our own errors and a cancel
    go through as they are; running out of accelerator memory names the size, the profile, the
    estimate and ``instead`` (what to try); anything else names the camera and round."""
    import torch

    try:
        yield
    except (WorldStudioError, Cancelled):
        backend._after_failure()
        raise
    except torch.OutOfMemoryError as exc:
        backend._after_failure()
        est = backend.estimate(request.height, request.width, request.num_frames)
        raise BackendError(
            f"{backend.name}: out of accelerator memory at {request.width}x{request.height}x"
            f"{request.num_frames} with profile {profile} (estimate {est.text()}); "
            f"try {instead}, fewer frames or a smaller size"
        ) from exc
    except Exception as exc:
        backend._after_failure()
        raise BackendError(
            f"{backend.name}: generation failed for {request.camera_id} "
            f"round {request.round_index + 1} ({type(exc).__name__}: {first_line(exc)})"
        ) from exc


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
    :class:`Cancelled` at once, so no time is spent decoding an abandoned video). ``agree``:
    in a multi-process call, turns this process's wish to stop into the one all processes share
    (every process calls it at every step)."""

    def __init__(
        self,
        ctx: JobContext,
        steps: int,
        label: str,
        tap=None,
        rgb_map=None,
        skip_latent_frames: int = 0,
        preview_every: int = 1,
        agree=None,
    ):
        self.ctx = ctx
        self.agree = agree
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
        cancelled = self.ctx.cancelled
        if self.agree is not None:
            cancelled = self.agree(cancelled)
        if cancelled:
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


class DiffusersWanBackend(BaseBackend):
    """Lazy loading, profiles, LoRAs, previews and cancellation around a diffusers Wan pipeline."""

    name = "wan"
    default_model = ""
    lifter = "model"
    context_frames = 1  # a subclass's default, when the run does not say
    profiles = PROFILES

    def __init__(
        self,
        model_id: str | None = None,
        profile: str | None = "auto",
        device=None,
        dtype=None,
        preview: bool = True,
        preview_every: int = 1,
        attention: str | None = "auto",
        compile: bool = False,  # noqa: A002 - the option's name on the CLI and in settings
        cache: str | None = "none",
        precision: str | None = "auto",
        vae_tiling: bool | None = None,
        compile_backend: str | None = None,
        parallel: Any = None,
        **_options: Any,
    ):
        from worldstudio.core.generation import acceleration as acc
        from worldstudio.core.generation.memory import check_profile

        self.model_id = str(model_id or self.default_model)
        self.profile = check_profile(profile)
        self.parallel = parallel  # a ContextParallel part (a multi-GPU run's worker), or None
        if parallel is not None and self.profile == "auto":
            self.profile = "gpu"  # every worker holds the whole pipeline
        self.attention = acc.check_attention(attention)
        cache = acc.check_cache(cache)
        self.cache = "none" if cache == "auto" else cache
        self.precision = acc.check_precision(precision)
        # what this machine may lack is checked now, so that such a run fails before it starts
        # ("auto" needs no check: the studio makes these objects for estimates without torch)
        if self.attention != "auto":
            acc.resolve_attention(self.attention, pick_device(device))
        if self.precision == "nf4":
            acc.quantization_config(self.precision, pick_device(device), None)
        self.compile = bool(compile)
        # torch.compile's backend: inductor, unless $WORLDSTUDIO_COMPILE_BACKEND says another
        # (e.g. "eager" to check the tracing without code generation)
        self.compile_backend = (
            compile_backend or os.environ.get("WORLDSTUDIO_COMPILE_BACKEND") or acc.COMPILE_BACKEND
        )
        self.vae_tiling = vae_tiling
        self._compiled = False
        self._cache_applied: tuple[str, int] | None = None
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
        self._first_call = True

    def parallel_options(self) -> dict[str, Any]:
        """The options that make the same backend in another worker of a multi-GPU run."""
        return {
            "model_id": self.model_id,
            "profile": self.profile,
            "attention": self.attention,
            "compile": self.compile,
            "cache": self.cache,
            "precision": self.precision,
            "vae_tiling": self.vae_tiling,
            "compile_backend": self.compile_backend,
        }

    def required_models(self) -> list[str]:
        return [self.model_id]

    # ------------------------------------------------------------------ subclass hooks
    def _load(self, folder: Path, dtype, **components):  # pragma: no cover - abstract
        """The pipeline from ``folder``, with ``components`` (e.g. a quantised transformer)
        given to ``from_pretrained``."""
        raise NotImplementedError

    def _plan(self, request: GenerationRequest) -> CallPlan:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ loading
    def estimate(
        self,
        height: int,
        width: int,
        frames: int,
        profile: str | None = None,
        *,
        guidance: float = 5.0,
    ):
        """The :class:`worldstudio.core.generation.memory.VramEstimate` of a call with this
        backend's accelerations (profile "auto" -> gpu)."""
        from worldstudio.core.generation.memory import estimate

        name = profile or (self.applied.profile if self.applied else self.profile)
        return estimate(
            self.folder or self.model_id,
            height,
            width,
            frames,
            "gpu" if name == "auto" else name,
            **self._estimate_options(guidance),
        )

    def _estimate_options(self, guidance: float = 5.0) -> dict[str, Any]:
        return {
            "extra_latent_frames": self._extra_latent_frames(),
            "precision": self.precision,
            "cache": self.cache,
            "compiled": self.compile,
            "vae_tiling": self.vae_tiling,
            "guidance": guidance,
        }

    def draft_recipe(self) -> DraftRecipe:
        """The "draft" quality preset of this backend's model: its step-distillation LoRA and
        sampling (:func:`worldstudio.core.generation.acceleration.draft_recipe`)."""
        from worldstudio.core.generation.acceleration import draft_recipe

        return draft_recipe(self.folder or self.model_id)

    def _extra_latent_frames(self) -> int:
        return 0

    def models(self) -> list[ModelChoice]:
        """The catalogue's video pipelines (a Wan model's name says its kind)."""
        from worldstudio.core.models import all_models

        return [
            ModelChoice(info.repo_id, info.name, (info.name,), info.description)
            for info in all_models("video")
        ]

    def flow_shift_for(self, height: int, width: int) -> float:
        """The flow shift a run uses when the project does not say: Wan's for the size."""
        return wan_flow_shift(height, width)

    def load(self, ctx: JobContext | None = None, request: GenerationRequest | None = None):
        """Load the pipeline (once), place it for the memory profile, pick the attention backend."""
        if self.pipe is not None:
            return self.pipe
        from worldstudio.core.generation import memory

        t0 = time.perf_counter()
        device = self.device = pick_device(self._device_option)
        self.dtype = pick_dtype(self.device, self._dtype_option)
        self.folder = model_folder(self.model_id)
        if ctx is not None:
            ctx.check_cancelled()
            ctx.log(
                f"{self.name}: loading {self.model_id} from {self.folder} ({self.dtype}, {self.device})"
            )
        try:
            with quiet_hub():
                pipe = self._load(self.folder, self.dtype, **self._quantised_components())
        except WorldStudioError:
            raise
        except Exception as exc:
            raise BackendError(
                f"{self.name}: cannot load {self.folder} ({first_line(exc)})"
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        transformer = getattr(pipe, "transformer", None)
        if self.precision == "fp8" and transformer is not None:
            from worldstudio.core.generation.acceleration import apply_layerwise_fp8

            apply_layerwise_fp8(transformer, self.dtype)
        profile = self.profile
        h, w, f = (request.height, request.width, request.num_frames) if request else (480, 832, 81)
        guidance = request.guidance if request else 5.0
        if profile == "auto":
            free = memory.device_memory(self.device)
            profile = memory.choose_profile(
                self.folder, h, w, f, free, **self._estimate_options(guidance)
            )
        applied = self.applied = memory.apply_profile(pipe, profile, self.device)
        self._apply_vae_tiling(pipe, applied)
        attention, note = memory.apply_attention_backend(transformer, self.device, self.attention)
        applied.attention = attention
        if note:
            applied.notes.append(note)
        if self.parallel is not None:
            self.parallel.enable(self, pipe, ctx)
        self.pipe = pipe
        self.load_seconds = time.perf_counter() - t0
        if ctx is not None:
            extras = [
                f"precision {self.precision}" if self.precision != "auto" else "",
                f"cache {self.cache}" if self.cache != "none" else "",
                "compiled blocks" if self.compile else "",
                "VAE tiling" if applied.vae_tiling else "",
            ]
            ctx.log(
                f"{self.name}: memory profile {applied.profile}, attention {attention}"
                f"{''.join(', ' + e for e in extras if e)}; loaded in {self.load_seconds:.1f} s"
            )
            if device.type != "cpu":
                est = self.estimate(h, w, f, applied.profile, guidance=guidance)
                ctx.log(f"{self.name}: accelerator memory estimate {est.text()}")
            for n in applied.notes:
                ctx.log(f"{self.name}: {n}")
        return pipe

    def _quantised_components(self) -> dict[str, Any]:
        """``{"quantization_config": ...}`` for ``from_pretrained`` when the transformer loads
        quantised (int8, nf4), else nothing."""
        from worldstudio.core.generation.acceleration import quantization_config

        config = quantization_config(self.precision, self.device, self.dtype)
        if config is None:
            return {}
        from diffusers.quantizers import PipelineQuantizationConfig

        return {
            "quantization_config": PipelineQuantizationConfig(quant_mapping={"transformer": config})
        }

    def _apply_vae_tiling(self, pipe: Any, applied: AppliedProfile) -> None:
        """VAE tiling and slicing as the run says (None: the profile's, on in low-vram)."""
        vae = getattr(pipe, "vae", None)
        if self.vae_tiling is None or vae is None or not hasattr(vae, "enable_tiling"):
            return
        if self.vae_tiling:
            vae.enable_tiling()
            if hasattr(vae, "enable_slicing"):
                vae.enable_slicing()
        else:
            vae.disable_tiling()
            if hasattr(vae, "disable_slicing"):
                vae.disable_slicing()
        applied.vae_tiling = bool(self.vae_tiling)

    def _accelerate(self, pipe: Any, request: GenerationRequest, ctx: JobContext) -> None:
        """The cache for this call's step count, and on the first call the compilation."""
        from worldstudio.core.generation import acceleration as acc

        transformer = getattr(pipe, "transformer", None)
        if transformer is None:
            return
        wanted = (self.cache, int(request.steps))
        if self._cache_applied != wanted and (self.cache != "none" or self._cache_applied):
            acc.apply_cache(
                transformer, self.cache, request.steps, timestep_fn=lambda: pipe.current_timestep
            )
        self._cache_applied = wanted
        if self.compile and not self._compiled:
            acc.compile_transformer(transformer, self.compile_backend)
            self._compiled = True
            ctx.log(
                f"{self.name}: compiling the transformer's blocks ({self.compile_backend}, "
                "dynamic shapes) during the first denoising step"
            )
            ctx.progress(0, request.steps, "compiling the transformer (first call)…")

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

        from worldstudio.core.generation.live_preview import SchedulerTap

        ctx.check_cancelled()
        pipe = self.load(ctx, request)
        ctx.check_cancelled()
        self.loras.apply(pipe, list(request.loras or []), ctx)
        set_flow_shift(
            pipe, request.flow_shift or self.flow_shift_for(request.height, request.width)
        )
        plan = self._plan(request)
        self._accelerate(pipe, request, ctx)
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
            agree=self.parallel.agree_cancel if self.parallel is not None else None,
        )
        if not (self.compile and self._first_call):
            ctx.progress(0, request.steps, f"{reporter.label}: encoding the conditioning")
        if self.parallel is not None:
            self.parallel.before_call(self, request)
        t0 = time.perf_counter()
        profile = self.applied.profile if self.applied else self.profile
        with model_call_errors(self, request, profile, "the 'offload' or 'low-vram' profile"):
            with tap:
                out = pipe(
                    **self.call_arguments(request, plan),
                    callback_on_step_end=reporter,
                    callback_on_step_end_tensor_inputs=["latents"],
                )
        self.last_call_seconds = time.perf_counter() - t0
        self._first_call = False
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
        self.loras = LoraSet()
        self._compiled, self._cache_applied, self._first_call = False, None, True
        release_pipeline(self)
