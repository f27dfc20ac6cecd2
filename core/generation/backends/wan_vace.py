"""The ``wan-vace`` backend: diffusers ``WanVACEPipeline`` conditioned on the world's renders.

How a :class:`GenerationRequest` maps onto VACE's inputs (:func:`vace_inputs`; the exact video
and mask are also what :meth:`WanVaceBackend.conditioning` returns, which the engine writes
beside the round):

- **Observer**: control video = the scene projection with the foreground projection composited
  over it; mask = ``control_mask`` (True, white: the model generates there; False, black: keep
  the pixel). Inside the mask, pixels with nothing rendered (no depth and no entity, or pure
  black without depths) become neutral gray (128, i.e. 0 in the pipeline's [-1, 1] range:
  VACE's "no content"); other masked pixels (the entities' projected state, sparse or
  discontinuous render) stay: VACE feeds the masked region to the model as "reactive" content,
  a hint it may change.
- **Monitor**: control video = the scene projection only (its foreground, the entities' last
  state, is NOT shown: the entities are generated from the prompt and may go anywhere); mask =
  ``control_mask`` (the engine's: the whole frame), so the render is a soft hint.
- ``conditioning_scale`` = the request's ``strength`` (the role's: observer 1.0, monitor 0.4 by
  default, LiveWorld's values), scaling VACE's control hints in the transformer.
- **Previous frames** are *leading control frames with an empty mask* (all black: keep them),
  prepended to the round: the clip generated is ``[context | round]`` and the round's F frames
  are returned. All the frames the request gives are used (the engine gives exactly the run's
  ``context_frames``, by default this backend's ``context_frames``, 4); gray to-be-generated
  frames pad the front to a multiple of 4 (so ``lead + F`` stays ``4k + 1``; the padding is
  dropped with the context). This is VACE's own video-extension task ("firstclip"): the known
  frames sit at their true place in time, so the model continues their motion. One extra latent
  frame per 4 context frames is the cost.
- **Reference images**: the scene references (source image and retrieved earlier frames,
  entities blacked out), then the instance references (one cut-out per visible entity), at most
  ``max_references`` in all with the instance references kept first when there are too many,
  become VACE ``reference_images``: appearance references for the whole clip.
- ``negative_prompt`` and the flow shift (``flow_shift``, else 3.0 below 720p and 5.0 at 720p,
  as Wan recommends) go to the pipeline and its scheduler (:mod:`.wan_common`).

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


def _checked(name: str, a, shape: tuple[int, ...], dtype=None) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != shape or (dtype is not None and a.dtype != dtype):
        raise BackendError(f"wan-vace: {name} is {a.dtype} {a.shape}, expected {shape}")
    return a


def vace_references(request: GenerationRequest, max_references: int) -> list[np.ndarray]:
    """Scene references then instance references, ``max_references`` at most; when there are
    more, the instance references keep their places (an entity's look matters more than a
    second view of the room) and the scene references are cut, the source image last."""
    H, W = request.height, request.width
    scene = [check_image("wan-vace: reference image", r, H, W) for r in request.reference_images]
    inst = [
        check_image("wan-vace: instance reference", r, H, W) for r in request.instance_references
    ]
    if max_references <= 0:
        return []
    n_inst = min(len(inst), max_references - (1 if scene else 0))
    n_scene = min(len(scene), max_references - n_inst)
    return scene[:n_scene] + inst[:n_inst]


def vace_inputs(
    request: GenerationRequest, context_frames: int | None = None, max_references: int = 3
):
    """The control video (F', H, W, 3) uint8, mask (F', H, W) bool (True = generate), reference
    images and lead length (frames to drop from the output) for ``request``; ``context_frames``:
    use at most that many previous frames (None: all the request gives)."""
    F, H, W = request.num_frames, request.height, request.width
    monitor = request.role == "monitor"
    if request.control_rgb is not None:
        control = _checked("control_rgb", request.control_rgb, (F, H, W, 3), np.uint8).copy()
    else:
        control = np.full((F, H, W, 3), GRAY, np.uint8)
    fg = request.foreground_labels
    on = (
        np.zeros((F, H, W), bool)
        if fg is None or monitor
        else _checked("foreground_labels", fg, (F, H, W)) >= 0
    )
    if on.any():
        control[on] = _checked("foreground_rgb", request.foreground_rgb, (F, H, W, 3))[on]
    if request.control_mask is not None:
        mask = _checked("control_mask", request.control_mask, (F, H, W)).astype(bool)
    else:
        mask = (
            np.ones((F, H, W), bool) if request.control_rgb is None else np.zeros((F, H, W), bool)
        )
    if request.control_depth is not None:
        nothing = (_checked("control_depth", request.control_depth, (F, H, W)) <= 0) & ~on
    else:
        nothing = (control == 0).all(axis=-1)
    control[mask & nothing] = GRAY

    prev = request.previous_frames
    given = 0 if prev is None else len(prev)
    used, lead = _lead_length(given, given if context_frames is None else context_frames)
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
    return control, mask, vace_references(request, max_references), lead


class WanVaceBackend(DiffusersWanBackend):
    """``WanVACEPipeline`` with the world's renders as control video and the engine's mask."""

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
        **options: Any,
    ):
        super().__init__(model_id, profile, device, dtype, **options)
        if context_frames < 0:
            raise BackendError("wan-vace: context_frames must be >= 0")
        self.context_frames = int(context_frames)  # the default when the run does not say
        self.max_references = int(max_references)

    def _extra_latent_frames(self) -> int:
        # every reference image + the leading context, at most, as the engine calls it
        return self.max_references + (-(-self.context_frames // 4) if self.context_frames else 0)

    def conditioning(self, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray]:
        """The exact control video and mask the pipeline gets for ``request``."""
        control, mask, _refs, _lead = vace_inputs(request, None, self.max_references)
        return control, mask

    def _load(self, folder: Path, dtype, **components):
        import torch
        from diffusers import AutoencoderKLWan, WanVACEPipeline

        vae = AutoencoderKLWan.from_pretrained(
            folder, subfolder="vae", **dtype_kwarg(torch.float32)
        )
        return WanVACEPipeline.from_pretrained(folder, vae=vae, **components, **dtype_kwarg(dtype))

    def _plan(self, request: GenerationRequest) -> CallPlan:
        control, mask, refs, lead = vace_inputs(request, None, self.max_references)
        kwargs: dict[str, Any] = {
            "video": [to_pil(f) for f in control],
            "mask": [to_pil(np.where(m, 255, 0).astype(np.uint8), "L") for m in mask],
            "conditioning_scale": float(request.strength),
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
