"""The ``wan-vace`` backend: diffusers ``WanVACEPipeline`` conditioned on the world's renders.

How a :class:`GenerationRequest` maps onto VACE's inputs:

- **Control video** = the conditioning renders. **Mask** = ``control_mask`` (True, white: the
  model generates there; False, black: keep the render). Inside the mask, pixels the renderer
  left empty (pure black, the splatting renderer's background) become neutral gray (128, i.e. 0 in
  the pipeline's [-1, 1] range: VACE's "no content"); other masked pixels (a monitor's hint of
  where its entities were last seen) are kept, since VACE feeds the masked region to the model as
  "reactive" content it may change.
- **Previous frames** (the last frames of the previous round) are *leading control frames with
  an empty mask* (all black: keep them), prepended to the round: the clip generated is
  ``[context | round]`` and the round's F frames are returned. The most recent
  ``context_frames`` (default 4) previous frames are used; if fewer are given, gray
  to-be-generated frames pad the front to a multiple of 4 (so ``lead + F`` stays ``4k + 1``; the
  padding is dropped with the context). This is VACE's own video-extension task ("firstclip"):
  the known frames sit at their true place in time, so the model continues their motion and the
  round starts where the last one stopped. As VACE ``reference_images`` they would instead be
  treated as appearance references with no position in time (each is pasted on a white canvas
  and given its own latent frame in front of the video), which keeps identity but not continuity.
  One extra latent frame per 4 context frames is the cost.
- **Reference images** (e.g. the source image) become VACE ``reference_images``: appearance
  references for the whole clip, exactly what VACE trained them for (at most ``max_references``).

Default model ``Wan-AI/Wan2.1-VACE-1.3B-diffusers``; ``Wan-AI/Wan2.1-VACE-14B-diffusers`` (or a
local pipeline folder) as ``model_id``. The pipeline loads on the first ``generate`` through
``worldstudio.core.models.resolve`` (bf16 on an accelerator, float32 on a CPU; the VAE always in float32, as
Wan's authors recommend) and stays loaded until ``close``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.generation.backends.base import BackendError, GenerationRequest
from worldstudio.core.generation.backends.wan_common import (
    GRAY,
    CallPlan,
    DiffusersWanBackend,
    check_image,
    dtype_kwarg,
    to_pil,
)

DEFAULT_MODEL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
TEMPORAL = 4  # Wan 2.1 VAE: 4 frames per latent frame (after the first)

__all__ = ["DEFAULT_MODEL", "WanVaceBackend", "create_backend", "vace_inputs"]


def _lead_length(previous: int, context_frames: int) -> tuple[int, int]:
    """(frames of context used, total lead frames incl. padding, a multiple of 4)."""
    used = min(previous, context_frames)
    if used <= 0:
        return 0, 0
    lead = -(-used // TEMPORAL) * TEMPORAL
    return used, lead


def vace_inputs(request: GenerationRequest, context_frames: int = 4, max_references: int = 3):
    """The control video (F', H, W, 3) uint8, mask (F', H, W) bool (True = generate), reference
    images and lead length (frames to drop from the output) for ``request``."""
    F, H, W = request.num_frames, request.height, request.width
    if request.control_rgb is not None:
        control = np.asarray(request.control_rgb)
        if control.shape != (F, H, W, 3) or control.dtype != np.uint8:
            raise BackendError(
                f"wan-vace: control_rgb is {control.dtype} {control.shape}, expected uint8 {(F, H, W, 3)}"
            )
        control = control.copy()
    else:
        control = np.full((F, H, W, 3), GRAY, np.uint8)
    if request.control_mask is not None:
        mask = np.asarray(request.control_mask)
        if mask.shape != (F, H, W):
            raise BackendError(f"wan-vace: control_mask is {mask.shape}, expected {(F, H, W)}")
        mask = mask.astype(bool)
    else:
        mask = (
            np.ones((F, H, W), bool) if request.control_rgb is None else np.zeros((F, H, W), bool)
        )
    empty = mask & (control == 0).all(axis=-1)
    control[empty] = GRAY

    prev = request.previous_frames
    used, lead = _lead_length(0 if prev is None else len(prev), context_frames)
    if lead:
        prev = np.asarray(prev)
        if prev.ndim != 4 or prev.shape[1:] != (H, W, 3) or prev.dtype != np.uint8:
            raise BackendError(
                f"wan-vace: previous_frames is {prev.dtype} {prev.shape}, expected uint8 (P, {H}, {W}, 3)"
            )
        pad = lead - used
        lead_rgb = np.concatenate([np.full((pad, H, W, 3), GRAY, np.uint8), prev[-used:]])
        lead_mask = np.zeros((lead, H, W), bool)
        lead_mask[:pad] = True
        control = np.concatenate([lead_rgb, control])
        mask = np.concatenate([lead_mask, mask])
    refs = [
        check_image("wan-vace: reference image", r, H, W) for r in (request.reference_images or [])
    ]
    return control, mask, refs[:max_references], lead


class WanVaceBackend(DiffusersWanBackend):
    """``WanVACEPipeline`` with the renders as control video and the holes as the mask."""

    name = "wan-vace"
    default_model = DEFAULT_MODEL

    def __init__(
        self,
        model_id: str | None = DEFAULT_MODEL,
        profile: str | None = "auto",
        device=None,
        dtype=None,
        context_frames: int = 4,
        max_references: int = 3,
        conditioning_scale: float = 1.0,
        **options: Any,
    ):
        super().__init__(model_id, profile, device, dtype, **options)
        if context_frames < 0:
            raise BackendError("wan-vace: context_frames must be >= 0")
        self.context_frames = int(context_frames)
        self.max_references = int(max_references)
        self.conditioning_scale = float(conditioning_scale)

    def _extra_latent_frames(self) -> int:
        # one reference image (the source image) + the leading context, as the engine calls it
        return 1 + (-(-self.context_frames // 4) if self.context_frames else 0)

    def _load(self, folder: Path, dtype):
        import torch
        from diffusers import AutoencoderKLWan, WanVACEPipeline

        vae = AutoencoderKLWan.from_pretrained(
            folder, subfolder="vae", **dtype_kwarg(torch.float32)
        )
        return WanVACEPipeline.from_pretrained(folder, vae=vae, **dtype_kwarg(dtype))

    def _plan(self, request: GenerationRequest) -> CallPlan:
        control, mask, refs, lead = vace_inputs(request, self.context_frames, self.max_references)
        kwargs: dict[str, Any] = {
            "video": [to_pil(f) for f in control],
            "mask": [to_pil(np.where(m, 255, 0).astype(np.uint8), "L") for m in mask],
            "conditioning_scale": self.conditioning_scale,
        }
        if refs:
            kwargs["reference_images"] = [to_pil(r) for r in refs]
        return CallPlan(
            kwargs,
            drop_frames=lead,
            total_frames=len(control),
            skip_latent_frames=len(refs) + lead // 4,
        )


def create_backend(**options: Any) -> WanVaceBackend:
    """The registry's factory: ``model_id`` and ``profile`` may be None (defaults); the engine's
    ``project`` / ``project_folder`` options are not needed here."""
    options.pop("project", None)
    options.pop("project_folder", None)
    model_id = options.pop("model_id", None) or DEFAULT_MODEL
    profile = options.pop("profile", None) or "auto"
    return WanVaceBackend(model_id=model_id, profile=profile, **options)
