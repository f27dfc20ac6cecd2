"""LiveWorld's generation around the model: text encoding (UMT5), VAE encoding of the
conditioning, the sampler, VAE decoding.

:class:`LiveWorldPipeline` is a diffusers ``DiffusionPipeline`` (so diffusers' model CPU offload
works on it) holding the T2V repo's tokenizer, text encoder, VAE and scheduler and the
:class:`~.model.LiveWorldTransformer`. One call:

1. encodes the prompt (and, with guidance, the negative prompt) to 512 UMT5 tokens, padded with
   zeros past the prompt as Wan and LiveWorld do;
2. VAE-encodes (the latent mean, normalised by the VAE's latent statistics) the preceding frames
   as one clip, every scene and instance reference as a one-frame clip, and the scene and
   foreground projections of the target and preceding frames (zeros where LiveWorld has none);
3. samples the target latents (full step or few step) with the clean latents appended in
   LiveWorld's order ``[T | P | R_scene | R_inst]`` and the state ``[scene | foreground]`` of the
   T and P frames;
4. decodes the target latents to frames.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline

from worldstudio.core.generation.backends.liveworld.conditioning import LiveWorldInputs
from worldstudio.core.generation.backends.liveworld.model import Segments
from worldstudio.core.generation.backends.liveworld.sampling import (
    FEW_STEP_SHIFT,
    FEW_STEP_TIMESTEPS,
    full_step_scheduler,
    sample_few_step,
    sample_full_step,
)

__all__ = ["LIVEWORLD_NEGATIVE_PROMPT", "TEXT_TOKENS", "LiveWorldPipeline", "clean_prompt"]

TEXT_TOKENS = 512
# LiveWorld's negative prompt (configs/train_liveworld_14B.yaml), a shortened form of Wan's
# standard one; used when a request has none
LIVEWORLD_NEGATIVE_PROMPT = (
    "过曝，静态，细节模糊不清，字幕，静止，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，"
    "多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: fix mojibake (ftfy), unescape HTML twice, collapse whitespace."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy is a dependency; tolerate its absence in stripped installs
        pass
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Prepared:
    """The latents and conditioning of one call."""

    clean: torch.Tensor  # (1, 16, P + R, h, w): preceding and reference latents
    state: torch.Tensor  # (1, 32, T + P, h, w)
    segments: Segments


class LiveWorldPipeline(DiffusionPipeline):
    """Tokenizer, text encoder, VAE and scheduler of the Wan T2V repo + the LiveWorld model."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(self, tokenizer, text_encoder, vae, scheduler, transformer) -> None:
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            scheduler=scheduler,
            transformer=transformer,
        )
        # low-vram (the backend's group offload): the text encoder's hook, which moves it back
        # to the CPU once the prompt is encoded
        self.text_encoder_offload: Any = None

    # ------------------------------------------------------------------ encoders
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """(1, 512, text_dim) UMT5 embeddings of ``prompt``, zero past its tokens."""
        device = self._execution_device
        tokens = self.tokenizer(
            [clean_prompt(prompt)],
            padding="max_length",
            max_length=TEXT_TOKENS,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        length = int(mask.gt(0).sum())
        out = self.text_encoder(ids, mask).last_hidden_state
        if self.text_encoder_offload is not None:
            self.text_encoder_offload.offload()
        out = out.to(self.transformer.dtype)
        padded = torch.zeros_like(out)
        padded[:, :length] = out[:, :length]
        return padded

    def _latent_stats(self, device):
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean, dtype=torch.float32, device=device)
        std = torch.tensor(cfg.latents_std, dtype=torch.float32, device=device)
        return mean.view(1, -1, 1, 1, 1), std.view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(1, 16, n, h, w) normalised latent means of ``frames`` (N, H, W, 3) uint8, as one clip."""
        device = self._execution_device
        video = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
        video = video.permute(3, 0, 1, 2)[None].to(device, self.vae.dtype)
        z = self.vae.encode(video).latent_dist.mode().float()
        mean, std = self._latent_stats(z.device)
        return (z - mean) / std

    def encode_images(self, images: list[np.ndarray]) -> torch.Tensor | None:
        """Every image as its own one-frame clip: (1, 16, len(images), h, w), or None."""
        if not images:
            return None
        return torch.cat([self.encode_frames(im[None]) for im in images], dim=2)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(F, H, W, 3) uint8 frames of normalised target latents (1, 16, T, h, w)."""
        mean, std = self._latent_stats(latents.device)
        z = (latents.float() * std + mean).to(self._execution_device, self.vae.dtype)
        video = self.vae.decode(z, return_dict=False)[0].float().clamp(-1, 1)
        video = ((video[0] + 1.0) / 2.0).permute(1, 2, 3, 0).cpu().numpy()
        return (video * 255.0 + 0.5).astype(np.uint8)

    # ------------------------------------------------------------------ conditioning
    def prepare(self, inputs: LiveWorldInputs) -> Prepared:
        """Encode the conditioning pixels of one call."""
        scene = self.encode_frames(inputs.target_scene)
        t = scene.shape[2]

        def or_zeros(frames, n: int) -> torch.Tensor:
            if frames is None:
                return torch.zeros_like(scene[:, :, :n])
            z = self.encode_frames(frames)
            return z if z.shape[2] == n else _fit_frames(z, n)

        foreground = or_zeros(inputs.target_foreground, t)
        parts = [torch.cat([scene, foreground], dim=1)]
        clean = []
        p = 0
        if inputs.preceding is not None and len(inputs.preceding):
            preceding = self.encode_frames(inputs.preceding)
            p = preceding.shape[2]
            clean.append(preceding)
            parts.append(
                torch.cat(
                    [or_zeros(inputs.preceding_scene, p), or_zeros(inputs.preceding_foreground, p)],
                    dim=1,
                )
            )
        scene_refs = self.encode_images(inputs.scene_references)
        instance_refs = self.encode_images(inputs.instance_references)
        clean += [r for r in (scene_refs, instance_refs) if r is not None]
        segments = Segments(
            t,
            p,
            0 if scene_refs is None else scene_refs.shape[2],
            0 if instance_refs is None else instance_refs.shape[2],
        )
        empty = scene[:, :, :0]
        return Prepared(
            clean=torch.cat(clean, dim=2) if clean else empty,
            state=torch.cat(parts, dim=2),
            segments=segments,
        )

    # ------------------------------------------------------------------ a call
    def __call__(
        self,
        inputs: LiveWorldInputs,
        prompt: str,
        negative_prompt: str = "",
        *,
        few_step: bool = False,
        steps: int = 50,
        guidance: float = 7.0,
        shift: float | None = None,
        seed: int = 0,
        on_step=None,
        on_stage=None,
    ) -> np.ndarray:
        """(F, H, W, 3) uint8 frames for ``inputs`` (``on_stage(text)`` hears the encoding and
        decoding stages, ``on_step(done, total, x0)`` every denoising step)."""
        stage = on_stage or (lambda _text: None)
        stage("encoding the prompt")
        context = self.encode_prompt(prompt)
        guided = not few_step and guidance > 1.0
        negative = (
            self.encode_prompt(negative_prompt or LIVEWORLD_NEGATIVE_PROMPT) if guided else None
        )
        stage("encoding the conditioning")
        prepared = self.prepare(inputs)
        segments = prepared.segments
        device = self._execution_device
        dtype = self.transformer.dtype
        clean = prepared.clean.to(device, dtype)
        state = prepared.state.to(device, dtype)
        strength = float(inputs.strength)

        def velocity(x, t, conditional):
            latents = torch.cat([x.to(device, dtype), clean], dim=2)
            with torch.no_grad():
                out = self.transformer(
                    latents,
                    t.to(device) if torch.is_tensor(t) else torch.tensor(float(t), device=device),
                    context if conditional else negative,
                    segments,
                    state,
                    strength,
                )
            return out[:, :, : segments.target].float()

        generator = torch.Generator(device="cpu").manual_seed(int(seed) % 2**63)
        shape = (1, state.shape[1] // 2, segments.target, *state.shape[-2:])
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
        if few_step:
            latents = sample_few_step(
                velocity,
                noise,
                FEW_STEP_TIMESTEPS,
                FEW_STEP_SHIFT if shift is None else shift,
                generator=generator,
                on_step=on_step,
            )
        else:
            scheduler = full_step_scheduler(
                5.0 if shift is None else shift, dict(self.scheduler.config)
            )
            latents = sample_full_step(velocity, noise, scheduler, steps, guidance, on_step)
        stage("decoding")
        frames = self.decode(latents)
        self.maybe_free_model_hooks()
        return frames


def _fit_frames(z: torch.Tensor, n: int) -> torch.Tensor:
    """LiveWorld's ``_adjust_frames``: cut to ``n`` latent frames or repeat the last."""
    if z.shape[2] >= n:
        return z[:, :, :n]
    return torch.cat([z, z[:, :, -1:].expand(-1, -1, n - z.shape[2], -1, -1)], dim=2)
