"""Accelerations of the diffusers backends, each through the library that provides it.

- **Attention** (:func:`apply_attention`): diffusers' attention dispatcher
  (``ModelMixin.set_attention_backend``), under the dispatcher's names: PyTorch SDPA ("native";
  "sdpa" is accepted for it; also its single kernels "native-math", "native-flash",
  "native-efficient", "native-cudnn"),
  FlashAttention 2 ("flash", the flash-attn package), FlashAttention 3 ("flash3", the
  flash_attn_interface package, Hopper GPUs), SageAttention ("sage") and xFormers. "auto" takes
  the best one this device can run: flash3 on a Hopper GPU, else sage, else flash (both Ampere
  or newer), else native SDPA, which picks its own fused kernel. Sage quantises q and k to int8 (and, on
  newer GPUs, p and v to fp8): it is the fastest on consumer GPUs and designed to be accurate
  enough for video diffusion, but it is not exact; the others compute the same attention as SDPA
  up to float rounding.
- **Regional compilation** (:func:`compile_transformer`): ``torch.compile`` of the transformer's
  repeated blocks only (diffusers' ``compile_repeated_blocks``: one compile per block *class*
  instead of the whole model), with ``dynamic=True``: the token count (latent frames x height x
  width / 4, plus reference and context frames) is a symbol in the compiled graph, so a new
  resolution, frame count or number of references reuses it. Bucketing sizes instead would mean
  padding the token sequence, which changes full attention (every token attends to the padding)
  and so the frames; dynamic shapes cost little for these blocks, whose large ops are matrix
  products and attention kernels that take any length. Duck sizing (torch assuming two dims
  equal because they happened to be equal on the first call) is switched off so that a square
  first call does not force a recompile later. The first call compiles (tens of seconds on a
  GPU); the backends say "compiling" meanwhile.
- **Caches** (:func:`apply_cache`): diffusers' cache hooks, which skip or approximate work of
  later denoising steps from earlier ones: ``"taylorseer"`` (TaylorSeer, lite mode: the output
  projection's features extrapolated by a Taylor series between full steps; its memory is one
  output-sized tensor per order), ``"first-block"`` (First Block Cache: when the first block's
  residual barely changed since the last full step, reuse the other blocks' residual) and
  ``"pab"`` (Pyramid Attention Broadcast: self-attention outputs reused for a step in the middle
  of the schedule). First Block Cache caches the residual of the main blocks *as a whole*, but
  VACE adds its control hints between those blocks, outside them: on a reused step the hints
  would be added twice, so it is refused for VACE models. MagCache (also in diffusers) needs
  magnitude ratios calibrated per checkpoint and scheduler, which diffusers does not ship for
  Wan, and has the same hint problem; it is not offered.
- **Quality presets** (:data:`QUALITIES`): "full" (no cache), "fast" (the "taylorseer" cache) and
  "draft" (a step-distillation LoRA from the catalogue with its recommended steps, guidance and
  flow shift: :func:`draft_recipe`).
- **Weights** (:data:`PRECISIONS`, :func:`quantization_config`, :func:`apply_layerwise_fp8`):
  "auto" (bf16 on an accelerator, float32 on a CPU), "fp8" (diffusers' layerwise casting: the
  transformer's weights stored in float8 e4m3, each layer cast to the compute dtype as it runs),
  "int8" (torchao int8 weight-only quantisation of the transformer) and "nf4" (bitsandbytes 4-bit
  NormalFloat, which needs a CUDA GPU). With the other components offloaded (profile
  "offload") a 14B VACE model at 832x480 fits a 24 GB GPU: nf4 at 81 frames (~17 GiB by the
  estimate), int8 or fp8 at 65 (~23 GiB); in bf16 it needs ~39.

Pure Python at import; torch and diffusers are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.project.model import CacheName, Precision, Quality


class AccelerationError(WorldStudioError):
    """An acceleration that is unknown, not installed or not possible here (one clear line)."""


# --------------------------------------------------------------------------- attention
@dataclass(frozen=True)
class AttentionBackend:
    """One attention implementation of diffusers' dispatcher, as the studio names it."""

    name: str
    diffusers: str  # diffusers' AttentionBackendName value
    exact: bool  # the same attention as SDPA up to float rounding
    cuda_only: bool
    min_capability: tuple[int, int] | None = None  # CUDA compute capability
    max_capability: tuple[int, int] | None = None
    package: str | None = None  # the importable module it needs
    needs: str = ""  # what to install, for messages


ATTENTION_BACKENDS: dict[str, AttentionBackend] = {
    b.name: b
    for b in (
        AttentionBackend("native", "native", True, False),
        AttentionBackend("native-math", "_native_math", True, False),
        AttentionBackend("native-flash", "_native_flash", True, True, (8, 0)),
        AttentionBackend("native-efficient", "_native_efficient", True, True),
        AttentionBackend("native-cudnn", "_native_cudnn", True, True, (8, 0)),
        AttentionBackend(
            "flash", "flash", True, True, (8, 0), None, "flash_attn", "pip install flash-attn"
        ),
        AttentionBackend(
            "flash3",
            "_flash_3",
            True,
            True,
            (9, 0),
            (9, 0),
            "flash_attn_interface",
            "FlashAttention 3 built from its hopper/ folder",
        ),
        AttentionBackend(
            "sage", "sage", False, True, (8, 0), None, "sageattention", "pip install sageattention"
        ),
        AttentionBackend(
            "xformers", "xformers", True, True, None, None, "xformers", "pip install xformers"
        ),
    )
}
ATTENTION_CHOICES = ("auto", *ATTENTION_BACKENDS)
AUTO_ATTENTION_ORDER = ("flash3", "sage", "flash", "native")
ATTENTION_ALIASES = {"sdpa": "native"}


def _installed(package: str | None) -> bool:
    if package is None:
        return True
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def attention_unavailable(name: str, device) -> str | None:
    """Why attention backend ``name`` cannot run on ``device`` (None: it can)."""
    import torch

    backend = ATTENTION_BACKENDS[name]
    device = torch.device(device)
    if backend.cuda_only and device.type != "cuda":
        return f"it needs a CUDA GPU (this run is on {device.type})"
    if not _installed(backend.package):
        return f"the {backend.package} package is not installed ({backend.needs})"
    # (without a GPU here the capability cannot be read: the dispatcher's own checks decide)
    if device.type == "cuda" and torch.cuda.is_available():
        cap = torch.cuda.get_device_capability(device)
        if backend.min_capability and cap < backend.min_capability:
            return f"it needs compute capability {backend.min_capability[0]}.{backend.min_capability[1]} or newer (this GPU: {cap[0]}.{cap[1]})"
        if backend.max_capability and cap > backend.max_capability:
            return f"it runs on compute capability {backend.max_capability[0]}.{backend.max_capability[1]} (this GPU: {cap[0]}.{cap[1]})"
    return None


def available_attention(device) -> list[str]:
    """The attention backends ``device`` can run here, in :data:`ATTENTION_BACKENDS` order."""
    return [n for n in ATTENTION_BACKENDS if attention_unavailable(n, device) is None]


def choose_attention(device) -> str:
    """The best attention backend for ``device``: the first of :data:`AUTO_ATTENTION_ORDER` that
    can run here."""
    for name in AUTO_ATTENTION_ORDER:
        if attention_unavailable(name, device) is None:
            return name
    return "native"


def check_attention(name: str | None) -> str:
    """A valid attention choice (None -> "auto"), else one clear line naming the choices."""
    key = (name or "auto").strip().lower()
    key = ATTENTION_ALIASES.get(key, key)
    if key not in ATTENTION_CHOICES:
        raise AccelerationError(
            f"attention {name!r}: expected one of {', '.join(ATTENTION_CHOICES)}"
        )
    return key


def resolve_attention(requested: str | None, device) -> str:
    """The backend a run uses: ``requested`` when it can run on ``device``, the best one for
    "auto"; a requested backend that cannot run is an error naming what can."""
    name = check_attention(requested)
    if name == "auto":
        return choose_attention(device)
    why = attention_unavailable(name, device)
    if why is not None:
        raise AccelerationError(
            f"attention {name!r} is not available here: {why}; available: "
            f"{', '.join(available_attention(device))}"
        )
    return name


def apply_attention(module: Any, requested: str | None, device) -> tuple[str, str | None]:
    """Set the attention backend of a diffusers model (a transformer). Returns (the backend's
    name, a note or None). "auto" falls back to SDPA with a note when diffusers refuses the
    chosen one (e.g. a too old flash-attn); a backend asked for by name that diffusers refuses
    is an :class:`AccelerationError`."""
    asked = check_attention(requested)
    name = resolve_attention(asked, device)
    if module is None or not hasattr(module, "set_attention_backend"):
        return "native", None
    if name == "native":
        if hasattr(module, "reset_attention_backend"):
            _quietly(module.reset_attention_backend)
        return name, None
    try:
        _quietly(module.set_attention_backend, ATTENTION_BACKENDS[name].diffusers)
    except Exception as exc:  # diffusers raises plain errors for its checks
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if asked != "auto":
            raise AccelerationError(f"attention {name!r} cannot be used: {first}") from exc
        return "native", f"{name} attention unavailable ({first}); using PyTorch SDPA"
    return name, None


def _quietly(fn, *args):
    """Call ``fn`` without diffusers' "experimental feature" warning."""
    from diffusers.utils import logging as d_logging

    level = d_logging.get_verbosity()
    d_logging.set_verbosity_error()
    try:
        return fn(*args)
    finally:
        d_logging.set_verbosity(level)


# --------------------------------------------------------------------------- compile
COMPILE_BACKEND = "inductor"


def compile_transformer(transformer: Any, backend: str = COMPILE_BACKEND) -> None:
    """Regional ``torch.compile`` of ``transformer``'s repeated blocks with dynamic shapes (see
    the module docstring). Compilation itself happens on the first forward."""
    import torch
    import torch.fx.experimental._config as fx_config

    if not getattr(transformer, "_repeated_blocks", None):
        raise AccelerationError(f"{type(transformer).__name__} names no repeated blocks to compile")
    fx_config.use_duck_shape = False
    # the blocks' code is shared by every instance; structural variants (the first VACE block's
    # proj_in, a view or not as input) each need a graph of their own
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    transformer.compile_repeated_blocks(dynamic=True, fullgraph=False, backend=backend)


def compiled_graphs() -> int:
    """How many graphs dynamo has compiled in this process (for tests and benchmarks)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# --------------------------------------------------------------------------- caches
CACHE_CHOICES: tuple[str, ...] = get_args(CacheName)  # "auto": the quality preset's
CACHES = tuple(c for c in CACHE_CHOICES if c != "auto")


def check_cache(name: str | None) -> str:
    key = (name or "auto").strip().lower()
    if key not in CACHE_CHOICES:
        raise AccelerationError(f"cache {name!r}: expected one of {', '.join(CACHE_CHOICES)}")
    return key


def has_vace_hints(transformer: Any) -> bool:
    """Whether ``transformer`` adds VACE control hints between its main blocks."""
    return bool(getattr(getattr(transformer, "config", None), "vace_layers", None))


def cache_config(name: str, steps: int, transformer: Any = None, timestep_fn=None):
    """The diffusers cache config of cache ``name`` for a call of ``steps`` denoising steps (None
    for "none"). ``timestep_fn`` returns the pipeline's current timestep (PAB needs it)."""
    import torch

    name = check_cache(name)
    if name in ("none", "auto"):
        return None
    if name == "first-block":
        if transformer is not None and has_vace_hints(transformer):
            raise AccelerationError(
                "cache 'first-block' cannot be used with a VACE model: VACE adds its control "
                "hints between the blocks the cache skips, so a reused step would add them "
                "twice; use 'taylorseer' or 'pab'"
            )
        from diffusers import FirstBlockCacheConfig

        return FirstBlockCacheConfig(threshold=0.05)
    if name == "taylorseer":
        from diffusers import TaylorSeerCacheConfig

        steps = max(1, int(steps))
        warmup = max(2, steps // 10)
        return TaylorSeerCacheConfig(
            cache_interval=3,
            disable_cache_before_step=warmup,
            disable_cache_after_step=max(warmup, steps - 2),  # the last steps in full
            max_order=1,
            taylor_factors_dtype=torch.float32,
            use_lite_mode=True,
        )
    from diffusers import PyramidAttentionBroadcastConfig

    if timestep_fn is None:
        raise AccelerationError("cache 'pab' needs the pipeline's current timestep")
    return PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2,
        spatial_attention_timestep_skip_range=(100, 800),
        current_timestep_callback=timestep_fn,
    )


def apply_cache(transformer: Any, name: str, steps: int, timestep_fn=None) -> str:
    """Give ``transformer`` cache ``name`` (replacing any other) for ``steps`` steps; returns the
    cache now on it."""
    name = check_cache(name)
    config = cache_config(name, steps, transformer, timestep_fn)
    if getattr(transformer, "is_cache_enabled", False):
        transformer.disable_cache()
    if config is None:
        return "none"
    if not hasattr(transformer, "enable_cache"):
        raise AccelerationError(f"{type(transformer).__name__} takes no diffusers cache")
    transformer.enable_cache(config)
    return name


# --------------------------------------------------------------------------- quality presets
QUALITIES: tuple[str, ...] = get_args(Quality)
FAST_CACHE = "taylorseer"
QUALITY_HELP = {
    "full": "every step in full",
    "fast": "a denoising cache (TaylorSeer) reuses work between steps",
    "draft": "a step-distillation LoRA: 4-8 steps without guidance (downloaded on first use)",
}
"""What each quality preset does, in a line (the studio's tooltips)."""


def check_quality(name: str | None) -> str:
    key = (name or "full").strip().lower()
    if key not in QUALITIES:
        raise AccelerationError(f"quality {name!r}: expected one of {', '.join(QUALITIES)}")
    return key


def cache_for(quality: str | None, cache: str | None) -> str:
    """The cache a run uses: ``cache`` when set, else the quality preset's ("fast": taylorseer;
    "draft" and "full": none; a distilled 4-step schedule leaves nothing to reuse)."""
    chosen = check_cache(cache)
    if chosen != "auto":
        return chosen
    return FAST_CACHE if check_quality(quality) == "fast" else "none"


@dataclass(frozen=True)
class DraftRecipe:
    """A step-distillation LoRA (a catalogue entry of kind "lora") and the sampling it is made
    for."""

    lora: str  # catalogue name
    strength: float
    steps: int
    guidance: float
    flow_shift: float

    @property
    def file(self) -> str:
        """The LoRA file within its catalogue entry."""
        from worldstudio.core.models import get_model

        return get_model(self.lora).files[0]

    def text(self) -> str:
        return (
            f"{self.lora} at {self.strength:g}, {self.steps} steps, guidance {self.guidance:g}, "
            f"flow shift {self.flow_shift:g}"
        )


# Recommended settings as the LoRAs' authors and their users' trackers give them: lightx2v's
# step- and CFG-distilled LoRAs are trained for 4 steps at flow shift 5 without guidance (their
# 4-step timesteps 1000, 937.5, 833.3, 625 are shift 5's); CausVid's extraction runs 4-8 steps
# without guidance (8 here for the small model; shift 8 as in its author's examples).
DRAFT_RECIPES = {
    "1.3b": DraftRecipe("causvid-lora-wan2.1-1.3b", 1.0, 8, 1.0, 8.0),
    "14b": DraftRecipe("lightx2v-lora-wan2.1-t2v-14b", 1.0, 4, 1.0, 5.0),
    "14b-i2v": DraftRecipe("lightx2v-lora-wan2.1-i2v-14b", 1.0, 4, 1.0, 5.0),
}


def model_family(transformer_config: dict) -> str:
    """ "1.3b", "14b" or "14b-i2v" for a Wan 2.1 transformer config (by width; an image
    encoder's projection marks image-to-video)."""
    width = int(transformer_config.get("num_attention_heads", 40)) * int(
        transformer_config.get("attention_head_dim", 128)
    )
    if width <= 2048:
        return "1.3b"
    return "14b-i2v" if transformer_config.get("image_dim") else "14b"


def draft_recipe(model: str | Any) -> DraftRecipe:
    """The draft preset of a model (a catalogue name, hub repo id or pipeline folder, or its
    component configs as :func:`worldstudio.core.generation.memory.pipeline_configs` gives
    them)."""
    from worldstudio.core.generation.memory import pipeline_configs

    cfgs = model if isinstance(model, dict) else pipeline_configs(model)
    return DRAFT_RECIPES[model_family(cfgs["transformer"])]


def recipe_lora_path(recipe: DraftRecipe, ctx=None) -> Path:
    """The local file of ``recipe``'s LoRA (downloaded when missing and this machine is online;
    otherwise one line saying how to get it)."""
    from worldstudio.core.models import get_model
    from worldstudio.core.models.manager import ModelMissingError, resolve_with_context

    info = get_model(recipe.lora)
    try:
        folder = resolve_with_context(info, ctx)
    except ModelMissingError as exc:  # say what needs it: the preset may be a default (play)
        raise ModelMissingError(
            f"quality 'draft' needs its step-distillation LoRA: {exc}"
        ) from None
    path = folder / recipe.file
    if not path.is_file():
        raise AccelerationError(
            f"draft preset: {info.name} in {folder} has no {recipe.file}; run "
            f"`worldstudio models download {info.name} --force`"
        )
    return path


# --------------------------------------------------------------------------- weights
PRECISIONS: tuple[str, ...] = get_args(Precision)
FP8_BYTES, INT8_BYTES, NF4_BYTES = 1.0, 1.0, 0.5 + 4 / 64  # nf4: + one fp32 absmax per 64


def check_precision(name: str | None) -> str:
    key = (name or "auto").strip().lower()
    if key not in PRECISIONS:
        raise AccelerationError(f"precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    return key


def quantization_config(precision: str, device, compute_dtype) -> Any:
    """The diffusers ``quantization_config`` that loads a transformer in ``precision`` ("int8":
    torchao, "nf4": bitsandbytes), or None for "auto" and "fp8" (applied after loading)."""
    import torch

    precision = check_precision(precision)
    if precision in ("auto", "fp8"):
        return None
    if precision == "int8":
        if not _installed("torchao"):
            raise AccelerationError("precision 'int8' needs torchao (pip install torchao)")
        from diffusers import TorchAoConfig
        from torchao.quantization import Int8WeightOnlyConfig

        return TorchAoConfig(Int8WeightOnlyConfig())
    if torch.device(device).type != "cuda":
        raise AccelerationError(
            "precision 'nf4' needs a CUDA GPU (bitsandbytes quantises on the GPU); use 'int8' "
            "or 'fp8' here"
        )
    if not _installed("bitsandbytes"):
        raise AccelerationError("precision 'nf4' needs bitsandbytes (pip install bitsandbytes)")
    from diffusers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype
    )


def apply_layerwise_fp8(transformer: Any, compute_dtype) -> None:
    """Store ``transformer``'s layer weights in float8 e4m3, each cast to ``compute_dtype`` as it
    runs (diffusers' layerwise casting; norms, embeddings and the patch embedding stay as they
    are)."""
    import torch

    transformer.enable_layerwise_casting(
        storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype
    )
