"""Live preview of a diffusion run: at every denoising step, the predicted clean video, cheaply.

Two parts.

**x0, the predicted clean latents.** Wan is a flow-matching model: with ``sigma`` in [0, 1] the
noisy latent is ``x_t = (1 - sigma) * x0 + sigma * noise`` and the transformer predicts the
velocity ``v = noise - x0``. Hence ``x0 = x_t - sigma * v``. diffusers' step callback
(``callback_on_step_end``) only hands out the *new* latents, not the model output, so
:class:`SchedulerTap` wraps the pipeline scheduler's ``step(model_output, timestep, sample)`` for
the duration of a call and records ``model_output`` (the guided velocity, after classifier-free
guidance) and ``sample`` (``x_t`` before the step). Sigma is the scheduler's own value for that
step: both ``FlowMatchEulerDiscreteScheduler`` and ``UniPCMultistepScheduler`` (Wan's default,
``prediction_type="flow_prediction"``, ``use_flow_sigmas=True``) keep ``sigmas`` in flow space and
advance ``step_index`` by exactly one per ``step``, so the step's sigma is
``scheduler.sigmas[scheduler.step_index - 1]`` once the step has run. This is exact (UniPC
computes the same quantity internally in ``convert_model_output`` as its x0 prediction; the tests
check that they agree), and it works for multistep solvers, where recovering x0 from two
consecutive latents (``v = (x_next - x_t) / (sigma_next - sigma_t)``, exact only for a plain
Euler step) would be wrong.

**A linear latent-to-RGB map.** Decoding x0 with the full VAE at every step would cost about as
much as a denoising step. Instead a 16x3 matrix plus a bias maps each latent pixel (in the
pipeline's normalised latent space, ``(z - latents_mean) / latents_std``) to an RGB colour, at
latent resolution (1/8 of the image). It is fitted once per VAE by least squares
(:func:`fit_latent_rgb_map`) on procedural test clips: the VAE encodes them, and the target is the
VAE's own *decode* of those latents, area-averaged onto the latent grid (for a trained VAE this is
the input clip up to reconstruction error; targeting the decode makes the map approximate what the
final decode will show, whatever the VAE). The fit is cached on disk by a fingerprint of the VAE's
config and weights (:func:`latent_rgb_map_for`), so a real model pays it once (a second or two).

The thumbnail (:func:`preview_image`) is a horizontal strip of up to ``max_frames`` evenly spaced
latent frames, ``(h, n * w, 3)`` uint8 with ``h, w`` the latent height and width (60 x 104 per
frame at 832x480).

torch is imported lazily; importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.user_dirs import cache_dir

__all__ = [
    "LatentRGBMap",
    "SchedulerTap",
    "fit_latent_rgb_map",
    "flow_x0",
    "latent_rgb_map_for",
    "preview_cache_dir",
    "preview_frame_indices",
    "preview_image",
    "preview_shape",
    "vae_fingerprint",
]

FIT_VERSION = 1  # bump when the fitting procedure changes: old cache files are then ignored


# --------------------------------------------------------------------------- the map
@dataclass(frozen=True)
class LatentRGBMap:
    """``rgb01 = latent @ matrix + bias`` per latent pixel; latents in the pipeline's normalised
    space, RGB in [0, 1] (clipped when applied)."""

    matrix: np.ndarray  # (C, 3) float32
    bias: np.ndarray  # (3,) float32
    fit_r2: float = float("nan")  # share of the target's variance the fit explains

    @property
    def channels(self) -> int:
        return int(self.matrix.shape[0])

    def apply(self, latents: Any, channel_axis: int = 0) -> np.ndarray:
        """Map latents (numpy or torch, any leading shape) to float RGB in [0, 1]; the channel
        axis moves last: (C, F, h, w) -> (F, h, w, 3)."""
        if hasattr(latents, "detach"):  # torch: compute on its device, bring back only RGB
            import torch

            t = torch.movedim(latents.detach().float(), channel_axis, -1)
            m = torch.as_tensor(self.matrix, device=t.device)
            b = torch.as_tensor(self.bias, device=t.device)
            return (t @ m + b).clamp_(0.0, 1.0).cpu().numpy()
        a = np.moveaxis(np.asarray(latents, dtype=np.float32), channel_axis, -1)
        return np.clip(a @ self.matrix + self.bias, 0.0, 1.0)

    def to_json(self) -> dict:
        return {"matrix": self.matrix.tolist(), "bias": self.bias.tolist(), "fit_r2": self.fit_r2}

    @classmethod
    def from_json(cls, data: dict) -> LatentRGBMap:
        matrix = np.asarray(data["matrix"], dtype=np.float32)
        bias = np.asarray(data["bias"], dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != 3 or bias.shape != (3,):
            raise ValueError("a latent-to-RGB map needs a (C, 3) matrix and a (3,) bias")
        return cls(matrix, bias, float(data.get("fit_r2", float("nan"))))


def _test_clips(count: int, size: int, frames: int, seed: int) -> np.ndarray:
    """(count, frames, size, size, 3) float32 in [0, 1]: random colour blocks of several scales
    over smooth gradients, drifting a couple of pixels a frame (so later latent frames, which
    each pack 4 frames, see mild motion as in real videos)."""
    rng = np.random.default_rng(seed)
    pad = 2 * frames + 2
    full = size + pad
    yy, xx = np.mgrid[0:full, 0:full].astype(np.float32) / full
    clips = np.empty((count, frames, size, size, 3), np.float32)
    for k in range(count):
        block = int(rng.choice([8, 16, 32]))
        cells = -(-full // block)
        colours = rng.uniform(0.0, 1.0, (cells, cells, 3)).astype(np.float32)
        blocks = np.repeat(np.repeat(colours, block, 0), block, 1)[:full, :full]
        gradient = (
            rng.uniform(0, 1, 3)
            + rng.uniform(-0.5, 0.5, 3) * yy[..., None]
            + rng.uniform(-0.5, 0.5, 3) * xx[..., None]
        )
        weight = float(rng.uniform(0.5, 0.9))
        image = np.clip(weight * blocks + (1 - weight) * gradient, 0.0, 1.0)
        dy, dx = rng.integers(-2, 3, 2)
        for f in range(frames):
            oy = pad // 2 + int(dy) * f // 2
            ox = pad // 2 + int(dx) * f // 2
            clips[k, f] = image[oy : oy + size, ox : ox + size]
    return clips


def _latent_grid_targets(video: np.ndarray, temporal: int, spatial: int) -> np.ndarray:
    """(F, H, W, 3) frames -> (f, H/s, W/s, 3): latent frame 0 <- frame 0, latent j <- the mean
    of frames 4j-3..4j (the causal VAE's grouping), each area-averaged over s x s pixels."""
    frames, height, width, _ = video.shape
    groups = [video[:1]] + [
        video[1 + temporal * j : 1 + temporal * (j + 1)] for j in range((frames - 1) // temporal)
    ]
    out = []
    for g in groups:
        m = g.mean(0)
        m = m.reshape(height // spatial, spatial, width // spatial, spatial, 3).mean((1, 3))
        out.append(m)
    return np.stack(out)


def fit_latent_rgb_map(
    vae,
    *,
    device=None,
    count: int = 8,
    size: int = 64,
    frames: int = 5,
    seed: int = 0,
    ridge: float = 1e-3,
) -> LatentRGBMap:
    """Fit a :class:`LatentRGBMap` for ``vae`` (an ``AutoencoderKLWan``): least squares with a
    small ridge from normalised latents (+1 for the bias) to the VAE's decode of those latents,
    both on the latent grid. Runs under no_grad in the VAE's dtype on ``device`` (default: where
    its weights are; pass the pipeline's execution device when the VAE is offloaded)."""
    import torch

    cfg = vae.config
    spatial = int(getattr(cfg, "scale_factor_spatial", 8))
    temporal = int(getattr(cfg, "scale_factor_temporal", 4))
    z_dim = int(cfg.z_dim)
    param = next(vae.parameters())
    device, dtype = torch.device(device) if device is not None else param.device, param.dtype
    mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, z_dim, 1, 1, 1)
    std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, z_dim, 1, 1, 1)

    clips = _test_clips(count, size, frames, seed)
    xs, ys = [], []
    with torch.no_grad():
        for clip in clips:
            video = torch.from_numpy(clip).permute(3, 0, 1, 2)[None] * 2.0 - 1.0  # (1,3,F,H,W)
            z = vae.encode(video.to(device, dtype)).latent_dist.mode()
            decoded = vae.decode(z, return_dict=False)[0]
            rgb = ((decoded.float().clamp(-1, 1) + 1) / 2)[0].permute(1, 2, 3, 0).cpu().numpy()
            zn = ((z.float().cpu() - mean) / std)[0]  # (C, f, h, w)
            target = _latent_grid_targets(rgb, temporal, spatial)  # (f, h, w, 3)
            f = min(zn.shape[1], target.shape[0])
            xs.append(zn[:, :f].permute(1, 2, 3, 0).reshape(-1, z_dim).numpy())
            ys.append(target[:f].reshape(-1, 3))
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys).astype(np.float64)
    a = np.concatenate([x, np.ones((len(x), 1))], 1)
    reg = ridge * len(x) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the bias
    w = np.linalg.solve(a.T @ a + reg, a.T @ y)
    residual = y - a @ w
    r2 = 1.0 - float((residual**2).sum() / max(((y - y.mean(0)) ** 2).sum(), 1e-12))
    return LatentRGBMap(w[:-1].astype(np.float32), w[-1].astype(np.float32), r2)


# --------------------------------------------------------------------------- cache
_memo: dict[str, LatentRGBMap] = {}
_memo_lock = threading.Lock()


def preview_cache_dir() -> Path:
    """``$WORLDSTUDIO_CACHE/latent_rgb``, else ``$XDG_CACHE_HOME/worldstudio/latent_rgb``, else
    ``~/.cache/worldstudio/latent_rgb`` (read at call time)."""
    return cache_dir() / "latent_rgb"


def vae_fingerprint(vae) -> str:
    """A short hash of the VAE's config and a sample of its weights (not its dtype or device)."""
    import torch

    h = hashlib.sha1()
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(f"fit{FIT_VERSION}".encode())
    params = list(vae.parameters())
    for p in (params[0], params[len(params) // 2], params[-1]):
        # through bf16: a bf16 copy and the float32 original hash alike
        sample = p.detach().flatten()[:256].to("cpu", torch.bfloat16).float().numpy()
        h.update(sample.tobytes())
    return h.hexdigest()[:16]


def latent_rgb_map_for(
    vae, cache_dir: str | os.PathLike | None = None, device=None
) -> LatentRGBMap:
    """The map for ``vae``: from memory, else from the disk cache, else fitted (on ``device``)
    and cached."""
    key = vae_fingerprint(vae)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    folder = Path(cache_dir) if cache_dir is not None else preview_cache_dir()
    path = folder / f"wan-{key}.json"
    result: LatentRGBMap | None = None
    if path.is_file():
        try:
            result = LatentRGBMap.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            result = None  # a damaged cache file is refitted and overwritten
    if result is None:
        result = (
            fit_latent_rgb_map(vae, device=device)
            if device is not None
            else fit_latent_rgb_map(vae)
        )
        try:
            from worldstudio.core.project import atomic_write_bytes

            atomic_write_bytes(path, json.dumps(result.to_json()).encode("utf-8"))
        except OSError:
            pass  # a read-only cache only costs a refit next time
    with _memo_lock:
        _memo[key] = result
    return result


# --------------------------------------------------------------------------- x0 and the image
def flow_x0(sample, velocity, sigma):
    """Flow matching: the clean sample predicted from ``x_t`` and the velocity at ``sigma``."""
    return sample - sigma * velocity


class SchedulerTap:
    """Records each scheduler step's x0 prediction while installed (a context manager).

    ``x0`` is float32, on the latents' device, of the latest step; ``sigma`` its noise level.
    """

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.x0 = None
        self.sigma: float | None = None
        self.steps = 0
        self._had_attr = False
        self._old = None

    def __enter__(self) -> SchedulerTap:
        scheduler = self.scheduler
        self._had_attr = "step" in vars(scheduler)
        self._old = vars(scheduler).get("step")
        original = scheduler.step  # the bound method (or an earlier wrapper)

        def step(model_output, timestep, sample, *args, **kwargs):
            out = original(model_output, timestep, sample, *args, **kwargs)
            index = scheduler.step_index
            if index is not None and index >= 1:
                sigma = scheduler.sigmas[index - 1]
                self.sigma = float(sigma)
                self.x0 = flow_x0(sample.float(), model_output.float(), self.sigma)
            self.steps += 1
            return out

        scheduler.step = step
        return self

    def __exit__(self, *exc) -> None:
        if self._had_attr:
            self.scheduler.step = self._old
        else:
            try:
                del self.scheduler.step
            except AttributeError:
                pass


def preview_frame_indices(latent_frames: int, skip: int = 0, max_frames: int = 4) -> list[int]:
    """Evenly spaced latent frame indices after the first ``skip`` (reference/lead frames)."""
    usable = max(latent_frames - skip, 0)
    if usable == 0:
        return []
    n = min(max_frames, usable)
    if n == 1:
        return [skip + usable - 1]
    return sorted({skip + round(i * (usable - 1) / (n - 1)) for i in range(n)})


def preview_image(
    x0, rgb_map: LatentRGBMap, *, skip_frames: int = 0, max_frames: int = 4
) -> np.ndarray:
    """A thumbnail strip of the predicted clean video: (h, n * w, 3) uint8 from x0 of shape
    (B, C, f, h, w) or (C, f, h, w) (batch element 0)."""
    if x0.ndim == 5:
        x0 = x0[0]
    idx = preview_frame_indices(int(x0.shape[1]), skip_frames, max_frames)
    if not idx:
        idx = [int(x0.shape[1]) - 1]
    rgb = rgb_map.apply(x0[:, idx], channel_axis=0)  # (n, h, w, 3)
    strip = np.concatenate(list(rgb), axis=1)
    return (strip * 255.0 + 0.5).astype(np.uint8)


def preview_shape(
    height: int,
    width: int,
    num_frames: int,
    *,
    max_frames: int = 4,
    spatial: int = 8,
    temporal: int = 4,
) -> tuple[int, int, int]:
    """The shape of :func:`preview_image`'s strip for the shown part of a video: ``num_frames``
    frames (4k + 1) at ``height`` x ``width`` (the backends skip reference and context latent
    frames, so this is the round's own frame count)."""
    latent_frames = (num_frames - 1) // temporal + 1
    n = max(len(preview_frame_indices(latent_frames, 0, max_frames)), 1)
    return height // spatial, n * (width // spatial), 3
