"""The ``wan-i2v`` backend: diffusers ``WanImageToVideoPipeline``, a baseline with no 3D
conditioning (the renders and masks are ignored).

The first frame is the previous round's last frame when there is one, else the source image (as
it is, entities in it), else the first reference image, else the first render. When it is the previous round's last frame,
that frame already belongs to the previous round: the pipeline generates ``F + 4`` frames (still
``4k + 1``) and frames ``1 .. F`` are returned, so the round continues the video instead of
repeating its boundary frame. From the source image (round 0) the clip starts with the image
itself and its first F frames are returned.

Default model ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers`` (with its CLIP image encoder, loaded in
float32 like the VAE, as the diffusers example does; the rest in bf16 on an accelerator, float32
on a CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.generation.backends.base import BackendError, GenerationRequest
from worldstudio.core.generation.backends.wan_common import (
    CallPlan,
    DiffusersWanBackend,
    check_image,
    dtype_kwarg,
    to_pil,
    transformers_dtype_kwarg,
)

DEFAULT_MODEL = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"

__all__ = ["DEFAULT_MODEL", "WanI2VBackend", "create_backend", "first_frame"]


def first_frame(request: GenerationRequest) -> tuple[np.ndarray, bool]:
    """(the conditioning image, whether it is the previous round's last frame)."""
    if request.previous_frames is not None and len(request.previous_frames):
        return check_image(
            "wan-i2v: previous frame", request.previous_frames[-1], request.height, request.width
        ), True
    if request.source_image is not None:
        return check_image(
            "wan-i2v: source image", request.source_image, request.height, request.width
        ), False
    if request.reference_images:
        return check_image(
            "wan-i2v: reference image", request.reference_images[0], request.height, request.width
        ), False
    if request.control_rgb is not None and len(request.control_rgb):
        return check_image(
            "wan-i2v: render", request.control_rgb[0], request.height, request.width
        ), False
    raise BackendError(
        "wan-i2v needs a first frame: previous frames, a reference image or a render"
    )


class WanI2VBackend(DiffusersWanBackend):
    """``WanImageToVideoPipeline`` from one image."""

    name = "wan-i2v"
    default_model = DEFAULT_MODEL
    context_frames = 1  # it continues from the last one

    def __init__(
        self,
        model_id: str | None = DEFAULT_MODEL,
        profile: str | None = "auto",
        device=None,
        dtype=None,
        **options: Any,
    ):
        super().__init__(model_id, profile, device, dtype, **options)

    def _extra_latent_frames(self) -> int:
        return 1  # F + 4 frames when continuing a previous round

    def conditioning(self, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray]:
        """All it is given: the first frame (kept)."""
        image, _continuing = first_frame(request)
        image = _fit(image, request.height, request.width)
        return image[None], np.zeros((1, request.height, request.width), bool)

    def _load(self, folder: Path, dtype, **components):
        import torch
        from diffusers import AutoencoderKLWan, WanImageToVideoPipeline

        f32 = torch.float32
        parts: dict[str, Any] = {
            "vae": AutoencoderKLWan.from_pretrained(folder, subfolder="vae", **dtype_kwarg(f32))
        }
        if (folder / "image_encoder").is_dir():
            from transformers import CLIPVisionModel

            parts["image_encoder"] = CLIPVisionModel.from_pretrained(
                folder, subfolder="image_encoder", **transformers_dtype_kwarg(f32)
            )
        return WanImageToVideoPipeline.from_pretrained(
            folder, **parts, **components, **dtype_kwarg(dtype)
        )

    def _plan(self, request: GenerationRequest) -> CallPlan:
        image, continuing = first_frame(request)
        image = _fit(image, request.height, request.width)
        total = request.num_frames + 4 if continuing else request.num_frames
        # continuing: latent frame 0 is the previous round's frame, not shown in the preview
        return CallPlan(
            {"image": to_pil(image)},
            drop_frames=1 if continuing else 0,
            total_frames=total,
            skip_latent_frames=1 if continuing else 0,
        )


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize (never stretch)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    import PIL.Image

    target = width / height
    if w / h > target:
        nw = max(1, round(h * target))
        x0 = (w - nw) // 2
        image = image[:, x0 : x0 + nw]
    else:
        nh = max(1, round(w / target))
        y0 = (h - nh) // 2
        image = image[y0 : y0 + nh]
    pil = PIL.Image.fromarray(np.ascontiguousarray(image)).resize(
        (width, height), PIL.Image.Resampling.LANCZOS
    )
    return np.asarray(pil)


def create_backend(**options: Any) -> WanI2VBackend:
    """The registry's factory (see :func:`worldstudio.core.generation.backends.wan_vace.create_backend`)."""
    options.pop("project", None)
    options.pop("project_folder", None)
    model_id = options.pop("model_id", None) or DEFAULT_MODEL
    profile = options.pop("profile", None) or "auto"
    return WanI2VBackend(model_id=model_id, profile=profile, **options)
