"""The ``liveworld`` backend: LiveWorld's trained model (Wan2.1-T2V-14B + State Adapter + LoRA).

**Models** (catalogue names; fetched through ``worldstudio.core.models`` from the hub cache, and
downloaded on first use when the machine is online):

- ``wan2.1-t2v-14b`` (``Wan-AI/Wan2.1-T2V-14B-Diffusers``): the backbone (full step), the UMT5
  text encoder, the VAE and the scheduler config;
- ``liveworld`` (``ZichengD/LiveWorld``: ``ckpts/state_adapter/model.pt`` and
  ``ckpts/lora/model.pt``), converted once to safetensors (:mod:`.weights`);
- ``wan2.1-t2v-14b-stepdistill`` (``lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill``:
  ``distill_model.pt``): the backbone of the few-step variant, converted once likewise.

**Variants**, chosen by ``model_id``: the full-step model (default; ``liveworld``,
``ZichengD/LiveWorld`` or the T2V repo) samples with ``request.steps`` UniPC steps and
``request.guidance`` (LiveWorld: 50 and 7) at flow shift ``request.flow_shift`` (default 5.0); the
few-step model (``liveworld-4step``, the distilled repo id or its catalogue name) always runs
LiveWorld's 4 steps at timesteps 1000, 750, 500, 250 with shift 8.0 and no guidance.

**Memory profiles** (:func:`worldstudio.core.generation.memory.estimate_liveworld` gives the GPU
and RAM estimate of each): ``gpu``, ``offload`` (model CPU offload), ``fp8`` (backbone and adapter
stored in float8, computed in bf16, with model CPU offload), ``low-vram`` (block-level group offload
with CUDA streams for the transformer and the text encoder, VAE tiling), ``auto`` (the first of
gpu, offload, low-vram that fits). A profile whose estimate does not fit the free GPU memory or the
available RAM is refused before anything loads, with the numbers.

**LoRAs**: LiveWorld's LoRA is always on, at ``lora_strength`` (option, default 1.0); the request's
LoRAs (``.safetensors`` in diffusers' naming, for this backbone) are added with their strengths.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
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
from worldstudio.core.generation.backends.liveworld.conditioning import (
    CONTEXT_FRAMES,
    MAX_INSTANCE_REFERENCES,
    MAX_SCENE_REFERENCES,
    conditioning_video,
    liveworld_inputs,
    liveworld_prompt,
)
from worldstudio.core.generation.memory import LIVEWORLD_PROFILES, release_pipeline
from worldstudio.core.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.project import Project

__all__ = [
    "DISTILL_MODEL",
    "FEW_STEP",
    "FEW_STEP_MODEL",
    "FULL_STEP",
    "LIVEWORLD_MODEL",
    "T2V_MODEL",
    "LiveWorldBackend",
    "create_backend",
    "variant_of",
]

T2V_MODEL = "wan2.1-t2v-14b"
LIVEWORLD_MODEL = "liveworld"
DISTILL_MODEL = "wan2.1-t2v-14b-stepdistill"
ADAPTER_FILE = "ckpts/state_adapter/model.pt"
LORA_FILE = "ckpts/lora/model.pt"
DISTILL_FILE = "distill_model.pt"
LORA_ADAPTER = "liveworld"
FULL_STEP, FEW_STEP = "full-step", "few-step"
PRECEDING_LATENT_FRAMES = (CONTEXT_FRAMES - 1) // 4 + 1  # 10 frames -> 3 latent frames
DEFAULT_SIZE = (480, 832, 65)  # LiveWorld's rounds: 832x480, 65 frames at 16 fps
# the sampler's flow shift per variant (sampling's FULL_STEP_SHIFT and FEW_STEP_SHIFT; that module
# imports torch, which choosing the backend in the studio should not)
FLOW_SHIFT = {FULL_STEP: 5.0, FEW_STEP: 8.0}
FEW_STEP_MODEL = "liveworld-4step"

_VARIANTS = {
    LIVEWORLD_MODEL: FULL_STEP,
    "zichengd/liveworld": FULL_STEP,
    T2V_MODEL: FULL_STEP,
    "wan-ai/wan2.1-t2v-14b-diffusers": FULL_STEP,
    FEW_STEP_MODEL: FEW_STEP,
    DISTILL_MODEL: FEW_STEP,
    "lightx2v/wan2.1-t2v-14b-stepdistill-cfgdistill": FEW_STEP,
}


def variant_of(model_id: str | None) -> tuple[str, str | None]:
    """(``FULL_STEP`` or ``FEW_STEP``, a note) for a ``model_id``. None, or another backend's
    catalogue model (a project's model setting is shared by the backends): full step, with a note
    in the second case. Anything else is an error."""
    if model_id is None or not str(model_id).strip():
        return FULL_STEP, None
    key = str(model_id).strip().lower()
    if key in _VARIANTS:
        return _VARIANTS[key], None
    from worldstudio.core.models import find_model

    info = find_model(key)
    if info is not None and info.kind == "video":
        return FULL_STEP, (
            f"model {info.name} is for the Wan backends; liveworld runs LiveWorld's own model "
            "(full step; liveworld-4step for the distilled 4-step one)"
        )
    raise BackendError(
        f"liveworld runs LiveWorld's own model; model {model_id!r} is not one of it: use "
        "liveworld (full step, 50 steps) or liveworld-4step (the distilled 4-step backbone)"
    )


class LiveWorldBackend(BaseBackend):
    """LiveWorld's State Adapter model as a World Studio backend (see the module notes)."""

    name = "liveworld"
    lifter = "model"
    context_frames = CONTEXT_FRAMES
    profiles = LIVEWORLD_PROFILES

    def __init__(
        self,
        model_id: str | None = None,
        profile: str | None = "auto",
        device=None,
        dtype=None,
        lora_strength: float = 1.0,
        preview: bool = True,
        preview_every: int = 1,
        context_frames: int = CONTEXT_FRAMES,
        max_scene_references: int = MAX_SCENE_REFERENCES,
        max_instance_references: int = MAX_INSTANCE_REFERENCES,
        **_options: Any,
    ):
        self.model_id = model_id
        self.variant, note = variant_of(model_id)
        name = (profile or "auto").strip().lower()
        if name not in LIVEWORLD_PROFILES:
            raise BackendError(
                f"liveworld: memory profile {profile!r}: expected one of {', '.join(LIVEWORLD_PROFILES)}"
            )
        if context_frames < 0 or max_scene_references < 0 or max_instance_references < 0:
            raise BackendError("liveworld: frame and reference counts must be >= 0")
        self.profile = name
        self.lora_strength = float(lora_strength)
        self.context_frames = int(context_frames)
        self.max_scene_references = int(max_scene_references)
        self.max_instance_references = int(max_instance_references)
        self._device_option = device
        self._dtype_option = dtype
        self.preview_enabled = bool(preview)
        self.preview_every = max(1, int(preview_every))
        self.pipe: Any = None  # the LiveWorldPipeline once loaded
        self.device: Any = None  # torch.device once loaded
        self.dtype: Any = None
        self.applied_profile: str | None = None
        self.notes: list[str] = [note] if note else []
        self.rgb_map: Any = None  # the fitted LatentRGBMap for live previews
        self.t2v_folder: Path | None = None
        self._user_loras: dict[str, str] = {}  # resolved file -> adapter name
        self.load_seconds = 0.0

    # ------------------------------------------------------------------ what it declares
    def models(self) -> list[ModelChoice]:
        """Its two variants, with the downloads each needs."""
        return [
            ModelChoice(
                LIVEWORLD_MODEL,
                "liveworld (full step)",
                (T2V_MODEL, LIVEWORLD_MODEL),
                "LiveWorld's State Adapter and LoRA on Wan 2.1 T2V 14B: UniPC, 50 steps, "
                "guidance 7",
            ),
            ModelChoice(
                FEW_STEP_MODEL,
                "liveworld-4step",
                (T2V_MODEL, LIVEWORLD_MODEL, DISTILL_MODEL),
                "the same on the step-distilled backbone: 4 steps, no guidance",
            ),
        ]

    def required_models(self) -> list[str]:
        """The downloads of this backend's variant (the backbone, LiveWorld's checkpoints, and
        the distilled backbone for the few-step variant)."""
        model_id = FEW_STEP_MODEL if self.variant == FEW_STEP else LIVEWORLD_MODEL
        (choice,) = [c for c in self.models() if c.model_id == model_id]
        return list(choice.needs)

    def flow_shift_for(self, height: int, width: int) -> float:
        """LiveWorld's shift for the variant, at any size (5.0 full step, 8.0 few step)."""
        return FLOW_SHIFT[self.variant]

    # ------------------------------------------------------------------ memory
    def _extra_latent_frames(self) -> int:
        preceding = (self.context_frames - 1) // 4 + 1 if self.context_frames else 1
        return preceding + self.max_scene_references + self.max_instance_references

    def _adapter_layers(self) -> list[int]:
        if self.pipe is not None:
            return list(self.pipe.transformer.adapter.config.layers)
        layers = 40
        if self.t2v_folder is not None:
            cfg = json.loads((self.t2v_folder / "transformer" / "config.json").read_text())
            layers = int(cfg.get("num_layers", 40))
        return list(range(0, layers, 5))

    def _estimate_model(self):
        if self.t2v_folder is not None:
            return self.t2v_folder
        from worldstudio.core.models import find_model, model_status

        info = find_model(T2V_MODEL)
        try:
            status = model_status(info) if info is not None else None
        except WorldStudioError:
            status = None
        if status is not None and status.present and status.path is not None:
            self.t2v_folder = status.path
            return status.path
        return info.repo_id if info is not None else T2V_MODEL

    def estimate(
        self,
        height: int,
        width: int,
        frames: int,
        profile: str | None = None,
        device_type: str | None = None,
        *,
        guidance: float = 5.0,  # the estimate does not depend on it (no step caches here)
    ):
        """The :class:`~worldstudio.core.generation.memory.VramEstimate` (GPU and RAM) of a call
        at ``height`` x ``width`` x ``frames`` ("auto" -> "gpu") on a device of ``device_type``
        (default: the loaded device, else an accelerator)."""
        from worldstudio.core.generation.memory import estimate_liveworld

        name = profile or self.applied_profile or self.profile
        if device_type is None:
            device_type = self.device.type if self.device is not None else "cuda"
        return estimate_liveworld(
            self._estimate_model(),
            height,
            width,
            frames,
            "gpu" if name == "auto" else name,
            adapter_layers=self._adapter_layers(),
            extra_latent_frames=self._extra_latent_frames(),
            device_type=device_type,
        )

    def check_fits(self, height: int, width: int, frames: int) -> str:
        """The profile to run (``auto`` resolved) when its estimate fits the free GPU memory and
        the available RAM; else :class:`BackendError` with the numbers."""
        from worldstudio.core.generation import memory
        from worldstudio.core.generation.backends.wan_common import pick_device

        device = self.device or pick_device(self._device_option)
        free = memory.device_memory(device)
        ram = memory.host_memory()
        gib = memory.GiB

        def fits(est) -> bool:
            return (free is None or est.total <= free) and (ram is None or est.ram <= ram)

        names = memory.LIVEWORLD_AUTO_ORDER if self.profile == "auto" else (self.profile,)
        tried = []
        for name in names:
            est = self.estimate(height, width, frames, name, device.type)
            if fits(est):
                return name
            tried.append(est)
        where = f"{free / gib:.1f} GiB free on {device}" if free is not None else str(device)
        have = f"{ram / gib:.1f} GiB RAM available" if ram is not None else "RAM unknown"
        needs = "; ".join(
            f"{e.profile} needs ~{e.total / gib:.1f} GiB GPU and ~{e.ram / gib:.1f} GiB RAM"
            if e.total
            else f"{e.profile} needs ~{e.ram / gib:.1f} GiB RAM"
            for e in tried
        )
        others = [
            p for p in memory.LIVEWORLD_PROFILES if p not in ("auto", *[e.profile for e in tried])
        ]
        fitting = [
            f"{p} (~{est.total / gib:.1f} GiB)"
            for p in others
            if fits(est := self.estimate(height, width, frames, p, device.type))
        ]
        hint = f"; profiles that fit: {', '.join(fitting)}" if fitting else ""
        raise BackendError(
            f"liveworld cannot run {width}x{height}x{frames} here: {needs} ({where}, {have}){hint}"
        )

    # ------------------------------------------------------------------ loading
    def load(self, ctx: JobContext | None = None, request: GenerationRequest | None = None):
        """Load the models (once), place them for the memory profile."""
        if self.pipe is not None:
            return self.pipe
        from worldstudio.core.generation import memory
        from worldstudio.core.generation.backends.wan_common import (
            first_line,
            pick_device,
            pick_dtype,
            quiet_hub,
        )

        t0 = time.perf_counter()
        self.device = pick_device(self._device_option)
        self.dtype = pick_dtype(self.device, self._dtype_option)
        h, w, f = (request.height, request.width, request.num_frames) if request else DEFAULT_SIZE
        profile = self.check_fits(h, w, f)

        def log(text: str) -> None:
            if ctx is not None:
                ctx.log(f"liveworld: {text}")

        if ctx is not None:
            ctx.check_cancelled()
        log(f"loading LiveWorld ({self.variant}, {self.dtype}, {self.device}, profile {profile})")
        try:
            with quiet_hub():
                pipe = self._load_pipeline(ctx, profile, log)
        except (WorldStudioError, Cancelled):
            raise
        except Exception as exc:
            raise BackendError(f"liveworld: cannot load the model ({first_line(exc)})") from exc
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe, profile)
        attention = "native"
        for module in (pipe.transformer.backbone, pipe.transformer.adapter):
            attention, note = memory.apply_attention_backend(module, self.device)
            if note:
                self.notes.append(note)
        self.applied_profile = profile
        self.pipe = pipe
        self.load_seconds = time.perf_counter() - t0
        log(f"attention {attention}; loaded in {self.load_seconds:.1f} s")
        for n in self.notes:
            log(n)
        return pipe

    def _load_pipeline(self, ctx, profile: str, log):
        import torch
        from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel

        from worldstudio.core.generation.backends.liveworld.model import (
            LiveWorldTransformer,
            StateAdapter,
        )
        from worldstudio.core.generation.backends.liveworld.pipeline import LiveWorldPipeline
        from worldstudio.core.generation.backends.liveworld.weights import (
            converted_adapter,
            converted_backbone,
            converted_lora,
            load_lora,
        )
        from worldstudio.core.generation.backends.wan_common import dtype_kwarg
        from worldstudio.core.models import resolve_with_context

        t2v = resolve_with_context(T2V_MODEL, ctx)
        self.t2v_folder = t2v
        liveworld = resolve_with_context(LIVEWORLD_MODEL, ctx)
        adapter_pt, lora_pt = liveworld / ADAPTER_FILE, liveworld / LORA_FILE
        config = json.loads((t2v / "transformer" / "config.json").read_text(encoding="utf-8"))
        if self.variant == FEW_STEP:
            distill = resolve_with_context(DISTILL_MODEL, ctx) / DISTILL_FILE
            backbone_folder = converted_backbone(distill, config, log)
        else:
            backbone_folder = t2v / "transformer"
        dtype = dtype_kwarg(self.dtype)
        backbone = WanTransformer3DModel.from_pretrained(backbone_folder, **dtype).eval()
        adapter = StateAdapter.from_pretrained(
            converted_adapter(adapter_pt, config, log), **dtype
        ).eval()
        width = config["num_attention_heads"] * config["attention_head_dim"]
        load_lora(backbone, converted_lora(lora_pt, config["num_layers"], width, log), LORA_ADAPTER)
        backbone.set_adapters([LORA_ADAPTER], weights=[self.lora_strength])
        if profile == "fp8":
            for model in (backbone, adapter):
                fp8_storage(model, self.dtype)
        vae = AutoencoderKLWan.from_pretrained(t2v, subfolder="vae", **dtype_kwarg(torch.float32))
        wan = WanPipeline.from_pretrained(t2v, transformer=backbone, vae=vae, **dtype)
        return LiveWorldPipeline(
            tokenizer=wan.tokenizer,
            text_encoder=wan.text_encoder,
            vae=vae,
            scheduler=wan.scheduler,
            transformer=LiveWorldTransformer(backbone, adapter),
        )

    def _place(self, pipe, profile: str) -> None:
        device = self.device
        accelerator = device.type not in ("cpu", "meta")
        if profile == "gpu" or not accelerator:
            pipe.to(device)
            if not accelerator and profile in ("offload", "fp8", "low-vram"):
                kept = {"fp8": " (weights still stored in float8)", "low-vram": " (VAE tiling on)"}
                self.notes.append(
                    f"profile {profile} on a CPU: nothing to offload to, everything stays on the "
                    f"CPU{kept.get(profile, '')}"
                )
        elif profile in ("offload", "fp8"):
            pipe.enable_model_cpu_offload(device=device)
        else:  # low-vram: blocks streamed through the device, the text encoder moved in to
            # encode, the VAE on the device (tiled)
            from accelerate import cpu_offload_with_hook

            group_offload(pipe.transformer, device)
            _, pipe.text_encoder_offload = cpu_offload_with_hook(pipe.text_encoder, device)
            pipe.vae.to(device)
        if profile == "low-vram":
            pipe.vae.enable_tiling()

    def _preview_map(self):
        if not self.preview_enabled or self.pipe is None:
            return None
        if self.rgb_map is None:
            from worldstudio.core.generation.live_preview import latent_rgb_map_for

            self.rgb_map = latent_rgb_map_for(self.pipe.vae, device=self.pipe._execution_device)
            self.pipe.maybe_free_model_hooks()
        return self.rgb_map

    def _apply_loras(self, loras: list[tuple[str, float]], ctx: JobContext | None) -> None:
        from worldstudio.core.generation.backends.wan_common import first_line, lora_file

        backbone = self.pipe.transformer.backbone
        names, weights = [LORA_ADAPTER], [self.lora_strength]
        if loras and self.applied_profile == "fp8":
            raise BackendError(
                "liveworld: the fp8 profile stores the backbone in float8 and takes no further "
                "LoRAs; use the gpu, offload or low-vram profile to add one"
            )
        for path, strength in loras or []:
            f = lora_file(path)
            key = str(f.resolve())
            if key not in self._user_loras:
                name = f"lora{len(self._user_loras)}_" + re.sub(r"[^A-Za-z0-9_]", "_", f.stem)[:40]
                try:
                    backbone.load_lora_adapter(str(f), prefix="transformer", adapter_name=name)
                except Exception as exc:
                    raise BackendError(
                        f"LoRA {f}: cannot be applied to LiveWorld's backbone ({first_line(exc)})"
                    ) from exc
                self._user_loras[key] = name
                if ctx is not None:
                    ctx.log(f"loaded LoRA {f.name} as {name}")
            names.append(self._user_loras[key])
            weights.append(float(strength))
        backbone.set_adapters(names, weights=weights)

    # ------------------------------------------------------------------ generating
    def conditioning(self, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray]:
        """The scene projection the model is conditioned on for ``request`` (the foreground
        composited for the observer) and an all-True mask (LiveWorld has none)."""
        return conditioning_video(self._inputs(request))

    def _inputs(self, request: GenerationRequest):
        return liveworld_inputs(
            request, self.context_frames, self.max_scene_references, self.max_instance_references
        )

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        from worldstudio.core.generation.backends.liveworld.sampling import FEW_STEP_TIMESTEPS
        from worldstudio.core.generation.backends.wan_common import model_call_errors

        ctx.check_cancelled()
        inputs = self._inputs(request)  # bad input fails before anything loads
        pipe = self.load(ctx, request)
        ctx.check_cancelled()
        self._apply_loras(list(request.loras or []), ctx)
        few = self.variant == FEW_STEP
        total = len(FEW_STEP_TIMESTEPS) if few else request.steps
        label = f"{request.camera_id} round {request.round_index + 1}"
        rgb_map = self._preview_map()

        def on_stage(text: str) -> None:
            ctx.check_cancelled()
            ctx.progress(0, total, f"{label}: {text}")

        def on_step(done: int, steps: int, x0) -> None:
            ctx.progress(done, steps, f"{label}: step {done}/{steps}")
            if rgb_map is not None and (done % self.preview_every == 0 or done == steps):
                from worldstudio.core.generation.live_preview import preview_image

                ctx.preview(preview_image(x0, rgb_map), f"{label}: step {done}/{steps}")
            if ctx.cancelled:
                raise Cancelled(f"cancelled at denoising step {done}/{steps}")

        instead = "the fp8 or low-vram profile"
        with model_call_errors(self, request, str(self.applied_profile), instead):
            frames = pipe(
                inputs,
                liveworld_prompt(request.prompt),
                request.negative_prompt,
                few_step=few,
                steps=request.steps,
                guidance=request.guidance,
                shift=request.flow_shift,
                seed=request.seed,
                on_step=on_step,
                on_stage=on_stage,
            )
        return check_frames(frames, request, self.name)

    def _after_failure(self) -> None:
        if self.pipe is not None:
            with contextlib.suppress(Exception):
                self.pipe.maybe_free_model_hooks()

    def close(self) -> None:
        self._user_loras = {}
        release_pipeline(self)


def group_offload(transformer, device) -> None:
    """Block-level group offload (one block at a time, the next prefetched on a CUDA stream) of a
    :class:`~.model.LiveWorldTransformer`. The backbone's other parts (embeddings, head, rotary
    tables: ~0.2e9 parameters at 14B) stay on the device: LiveWorld's forward calls them
    directly, never the backbone's own forward, around which diffusers would move them."""
    import torch
    from diffusers.hooks import apply_group_offloading

    options = dict(
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=torch.device(device).type == "cuda",
    )
    backbone = transformer.backbone
    blocks = backbone.blocks
    backbone.blocks = torch.nn.ModuleList()  # move everything but the blocks
    backbone.to(device)
    backbone.blocks = blocks
    holder = torch.nn.Module()
    holder.blocks = blocks
    apply_group_offloading(holder, **options)
    apply_group_offloading(transformer.adapter, **options)


def fp8_storage(model, compute_dtype) -> None:
    """Store ``model``'s linear and convolution weights in float8 (e4m3), computed in
    ``compute_dtype`` (diffusers' layerwise casting), except what diffusers keeps (embeddings,
    norms, the model's own skip list) and LoRA factors (they stay in the compute dtype)."""
    import torch
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    skip = (
        *DEFAULT_SKIP_MODULES_PATTERN,
        *(model._skip_layerwise_casting_patterns or ()),
        *(model._keep_in_fp32_modules or ()),
        "lora_",
    )
    model.enable_layerwise_casting(
        storage_dtype=torch.float8_e4m3fn,
        compute_dtype=compute_dtype,
        skip_modules_pattern=skip,
    )


def create_backend(**options: Any) -> LiveWorldBackend:
    """The registry's factory. With the engine's ``project`` option the run's size is known, and a
    memory profile that cannot fit is refused here, before the run starts."""
    project: Project | None = options.pop("project", None)
    options.pop("project_folder", None)
    backend = LiveWorldBackend(**options)
    if project is not None:
        g = project.generation
        backend.check_fits(g.height, g.width, g.frames_per_round)
    return backend
