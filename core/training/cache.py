"""The latent and text-embedding cache, and the encoders that fill it.

Each clip window is VAE-encoded once and each caption text-encoded once; the results are
safetensors files, so later epochs, resumed runs and new runs on the same clips never re-encode
(and a run whose cache is complete never loads the text encoder: 11 GB for Wan's UMT5-XXL).

Layout (default ``PROJECT/loras/.cache/``, shared by every adapter of the project)::

    latents/<key>.safetensors   "latents": (C, f, h, w) float32, normalised like the pipelines'
                                latents: (mean of the VAE posterior - latents_mean) / latents_std
    text/<key>.safetensors      "embeds": (L, D) float32, the pipeline's prompt embedding with
                                the zero padding cut off (padded again to 512 tokens in a batch)
    control/<key>.safetensors   "control": VACE's "no control" conditioning for one shape

A latents key hashes the clip file's bytes (SHA-256), the window index, size, frame count, fps
and the encoder identity (:func:`worldstudio.core.training.model.encoder_key`); a text key hashes the caption,
the token limit and the encoder identity. Changing any of them makes new entries; stale ones are
just unused (delete the folder to reclaim the space). A damaged cache file is re-encoded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldstudio.core.project import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]


def latents_key(
    clip_digest: str, window: int, width: int, height: int, frames: int, fps: float, enc: str
) -> str:
    return _key("latents-v1", clip_digest, window, width, height, frames, float(fps), enc)


def text_key(caption: str, max_sequence_length: int, enc: str) -> str:
    return _key("text-v1", caption, max_sequence_length, enc)


def control_key(width: int, height: int, frames: int, enc: str) -> str:
    return _key("control-v1", width, height, frames, enc)


class TensorCache:
    """safetensors files under ``root/<kind>/<key>.safetensors``, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.safetensors"

    def load(self, kind: str, key: str) -> dict | None:
        """The tensors, or None when the entry is missing or damaged."""
        from safetensors.torch import load_file

        p = self.path(kind, key)
        if not p.is_file():
            return None
        try:
            return load_file(str(p))
        except Exception:  # noqa: BLE001 - a truncated or foreign file: encode again
            return None

    def has(self, kind: str, key: str, tensor: str) -> bool:
        """True when the entry exists and names ``tensor`` (reads the header only)."""
        from safetensors import safe_open

        p = self.path(kind, key)
        if not p.is_file():
            return False
        try:
            with safe_open(str(p), "pt") as f:
                return tensor in f.keys()
        except Exception:  # noqa: BLE001 - damaged: encode again
            return False

    def load_json(self, kind: str, key: str) -> dict | None:
        p = self.root / kind / f"{key}.json"
        try:
            value = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def save_json(self, kind: str, key: str, value: dict) -> None:
        atomic_write_bytes(self.root / kind / f"{key}.json", json.dumps(value).encode("utf-8"))

    def save(
        self, kind: str, key: str, tensors: dict, metadata: dict[str, str] | None = None
    ) -> Path:
        from safetensors.torch import save

        p = self.path(kind, key)
        data = save(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=metadata
        )
        atomic_write_bytes(p, data)
        return p


@dataclass
class CacheStats:
    """What building the cache did (the trainer's result carries it; tests check it)."""

    clips_encoded: int = 0  # clip windows VAE-encoded in this run
    clips_cached: int = 0  # clip windows found in the cache
    texts_encoded: int = 0
    texts_cached: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip, reason)


class Encoders:
    """Loads the VAE and the text encoder only when a cache entry is missing, then encodes the way
    the model's pipeline does (its own ``encode_prompt`` and, for VACE, its own
    ``preprocess_conditions`` / ``prepare_video_latents`` / ``prepare_masks``)."""

    def __init__(self, spec, device, text_dtype, max_sequence_length: int = 512):
        self.spec = spec
        self.device = device
        self.text_dtype = text_dtype
        self.max_sequence_length = max_sequence_length
        self._vae: Any = None
        self._text_pipe = None
        self._vae_pipe = None
        self.vae_calls = 0
        self.text_calls = 0

    # -- lazily loaded parts
    @property
    def vae(self):
        if self._vae is None:
            from worldstudio.core.training.model import load_vae

            self._vae = load_vae(self.spec).to(self.device).eval()
            self._vae.requires_grad_(False)
        return self._vae

    def _text_pipeline(self):
        if self._text_pipe is None:
            from worldstudio.core.training.model import (
                load_text_encoder,
                load_tokenizer,
                make_pipeline,
            )

            te = load_text_encoder(self.spec, self.text_dtype).to(self.device).eval()
            te.requires_grad_(False)
            self._text_pipe = make_pipeline(
                self.spec, tokenizer=load_tokenizer(self.spec), text_encoder=te
            )
        return self._text_pipe

    def release_text_encoder(self) -> None:
        """Drop the text encoder (the biggest part) once the captions are encoded."""
        if self._text_pipe is not None:
            self._text_pipe = None
            _empty_device_cache()

    def release(self) -> None:
        self._text_pipe = None
        self._vae_pipe = None
        self._vae = None
        _empty_device_cache()

    # -- encoding
    def encode_text(self, text: str):
        """(L, D) float32 CPU: the pipeline's embedding, trailing zero padding removed."""
        import torch

        pipe = self._text_pipeline()
        with torch.no_grad():
            embeds, _ = pipe.encode_prompt(
                prompt=text,
                do_classifier_free_guidance=False,
                num_videos_per_prompt=1,
                max_sequence_length=self.max_sequence_length,
                device=self.device,
            )
        self.text_calls += 1
        e = embeds[0].float().cpu()
        nonzero = (e != 0).any(dim=1).nonzero()
        length = int(nonzero[-1]) + 1 if len(nonzero) else 1
        return e[:length].contiguous()

    def encode_video(self, frames):
        """(F, H, W, 3) uint8 -> (C, f, h, w) float32 CPU normalised latents (posterior mean)."""
        import torch

        vae = self.vae
        x = torch.from_numpy(frames).to(self.device).permute(3, 0, 1, 2).unsqueeze(0)
        x = x.float().div(127.5).sub(1.0)
        with torch.no_grad():
            dist = vae.encode(x).latent_dist
            z = dist.mode().float()
        self.vae_calls += 1
        mean, inv_std = latent_norm(vae, z.device)
        return ((z - mean) * inv_std)[0].cpu().contiguous()

    def empty_control(self, transformer, width: int, height: int, frames: int):
        """VACE's conditioning for "no control video": (C, f, h, w) float32 CPU, built by the
        pipeline's own methods exactly as ``WanVACEPipeline.__call__`` does without a video."""
        import torch

        from worldstudio.core.training.model import make_pipeline

        pipe = make_pipeline(self.spec, vae=self.vae, transformer=transformer)
        device = torch.device(self.device)
        with torch.no_grad():
            video, mask, refs = pipe.preprocess_conditions(
                None, None, None, 1, height, width, frames, torch.float32, device
            )
            latents = pipe.prepare_video_latents(video, mask, refs, None, device)
            mask = pipe.prepare_masks(mask, refs, None)
            control = torch.cat([latents, mask], dim=1)
        self.vae_calls += 2  # the pipeline encodes the inactive and the reactive part
        return control[0].float().cpu().contiguous()


def latent_norm(vae, device):
    """(latents_mean, 1 / latents_std) shaped (1, C, 1, 1, 1), as the Wan pipelines use them."""
    import torch

    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=device).view(
        1, z, 1, 1, 1
    )
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, dtype=torch.float32, device=device).view(
        1, z, 1, 1, 1
    )
    return mean, inv_std


def _empty_device_cache() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort
        pass


# --------------------------------------------------------------------------- filling the cache
@dataclass(frozen=True)
class Item:
    """One training sample: a cached clip window and its caption's cached embedding."""

    name: str  # "sub/clip.mp4" or "clip.mp4#2" for window 2
    latents_path: Path
    caption: str


def prepare_items(
    clips,
    *,
    cache: TensorCache,
    encoders: Encoders,
    enc_key: str,
    width: int,
    height: int,
    frames: int,
    fps: float,
    windows: int,
    report=None,
    check=None,
) -> tuple[list[Item], CacheStats]:
    """Make sure every clip window has cached latents; decode and encode only what is missing.

    ``report(done, total, message)`` follows the work, ``check()`` is called between clips (it
    may raise to cancel). Unusable clips are returned in ``stats.skipped`` with the reason and
    left out of the items."""
    from worldstudio.core.training.dataset import ClipError, decode_windows

    stats = CacheStats()
    items: list[Item] = []
    for i, clip in enumerate(clips):
        if check is not None:
            check()
        if report is not None:
            report(i, len(clips), f"preparing {clip.rel}")
        try:
            digest = file_digest(clip.path)
        except OSError as exc:
            stats.skipped.append((clip.rel, f"{clip.rel}: cannot be read ({exc.strerror or exc})"))
            continue
        keys = [latents_key(digest, w, width, height, frames, fps, enc_key) for w in range(windows)]
        index_key = latents_key(digest, -1, width, height, frames, fps, enc_key) + f"-{windows}"
        index = cache.load_json("latents", index_key)
        count = int(index["windows"]) if index and isinstance(index.get("windows"), int) else None
        if count is not None and all(cache.has("latents", k, "latents") for k in keys[:count]):
            stats.clips_cached += count
        else:
            try:
                decoded = decode_windows(
                    clip.path, frames=frames, fps=fps, width=width, height=height, windows=windows
                )
            except ClipError as exc:
                stats.skipped.append((clip.rel, str(exc)))
                continue
            count = len(decoded)
            for w, video in enumerate(decoded):
                if cache.has("latents", keys[w], "latents"):
                    stats.clips_cached += 1
                    continue
                latents = encoders.encode_video(video)
                cache.save(
                    "latents",
                    keys[w],
                    {"latents": latents},
                    {
                        "clip": clip.rel,
                        "window": str(w),
                        "size": f"{width}x{height}",
                        "frames": str(frames),
                        "fps": f"{fps:g}",
                    },
                )
                stats.clips_encoded += 1
            cache.save_json("latents", index_key, {"windows": count, "clip": clip.rel})
        for w in range(count):
            name = clip.rel if windows == 1 else f"{clip.rel}#{w}"
            items.append(Item(name, cache.path("latents", keys[w]), clip.caption))
    if report is not None:
        report(len(clips), len(clips), "clips ready")
    return items, stats


def prepare_texts(
    texts,
    *,
    cache: TensorCache,
    encoders: Encoders,
    enc_key: str,
    max_sequence_length: int,
    stats: CacheStats,
    check=None,
) -> dict[str, torch.Tensor]:
    """text -> (L, D) float32 embedding for every distinct text, encoding only missing ones."""
    out: dict[str, torch.Tensor] = {}
    for text in dict.fromkeys(texts):
        if check is not None:
            check()
        key = text_key(text, max_sequence_length, enc_key)
        entry = cache.load("text", key)
        if entry is not None and "embeds" in entry:
            stats.texts_cached += 1
        else:
            entry = {"embeds": encoders.encode_text(text)}
            cache.save("text", key, entry, {"text": text[:1000]})
            stats.texts_encoded += 1
        out[text] = entry["embeds"]
    return out
