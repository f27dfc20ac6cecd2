"""Memory for the diffusion backends: named profiles, a VRAM estimate, the attention backend.

Profiles (``PROFILES``):

- ``"gpu"``: every component on the device (fastest; needs the most memory).
- ``"offload"``: diffusers' model CPU offload: one component at a time (text encoder, image
  encoder, transformer, VAE) moves to the device when it runs; needs an accelerator.
- ``"low-vram"``: diffusers' group offload (block level, one block per group, the next block
  prefetched on a CUDA stream) for the text encoder, image encoder and transformer, the VAE kept on
  the device with tiled encode/decode. Slowest; fits small GPUs.
- ``"auto"``: the first of gpu / offload / low-vram whose estimate fits the device's free memory
  (on a CPU: everything on the CPU).

On a CPU there is nothing to offload to: ``offload`` keeps everything on the CPU and
``low-vram`` only turns on VAE tiling (each says so in :attr:`AppliedProfile.notes`).

The estimate (:func:`estimate_vram`) is computed from the model's *configs*, without weights and
without importing torch: parameter counts from the architecture's formulas (checked against the
real modules in the tests) times the bytes of the dtype each component runs in (transformer, text
encoder in bf16; VAE and CLIP image encoder in float32, as the backends load them), plus the
largest activations of each stage:

- transformer (one forward, batch 1; classifier-free guidance runs the two branches one after the
  other): ``L = latent_frames * (H / 16) * (W / 16)`` tokens of width ``D``. Held through the
  forward: the hidden states, for VACE the control stream and one hint per VACE layer
  (``(2 + n_vace) * L * D`` bf16). Inside a block, the larger of the attention part (q, k, v and
  the output in bf16 plus float32 copies of q and k for the rotary embedding) and the
  feed-forward part (two ``L x ffn_dim`` bf16 tensors), plus two float32 ``L x D`` temporaries of
  the float32 norms and gated residuals. Attention itself is flash / memory-efficient (no
  ``L x L`` matrix).
- VAE (decode of one latent frame = 4 video frames at a time, with causal caches):
  ``VAE_DECODE_FACTOR * 4 * base_dim * H * W`` float32 bytes (with tiling, ``H * W`` is capped at
  one 256 x 256 tile; a rough constant, to be calibrated on a GPU), plus the decoded video
  (``3 * F * H * W`` float32) twice, as the decoder concatenates its chunks.
- text encoder: 512 tokens; small.

and ``RUNTIME_OVERHEAD`` for the CUDA context, cuBLAS workspaces and allocator slack. Resident
weights per profile: gpu = all; offload = the largest component (+ its activations); low-vram = the
components' non-block parameters plus two blocks (the running one and the prefetched one).

The accelerations of :mod:`.acceleration` change it as follows:

- precision: the transformer's blocks (main and VACE) take ``fp8`` / ``int8`` 1 byte a parameter
  (layerwise casting, torchao weight-only), ``nf4`` 0.5 byte plus one float32 scale per 64; its
  other parameters (embeddings, norms, output) stay bf16. Activations are unchanged (the layers
  compute in bf16); the one layer cast back to bf16 at a time is counted.
- cache, per guidance branch (classifier-free guidance keeps one cache state for the
  conditional and one for the unconditional forward): ``taylorseer`` (lite) keeps the output
  projection's features and their first difference in float32 (``2 * L * out * patch``);
  ``first-block`` the first block's output and residual and the blocks' residual (``3 * L * D``
  bf16); ``pab`` one self-attention output per block (``(layers + vace layers) * L * D`` bf16).
- compiled: nothing is added; inductor's fusions only lower the peak (kernels keep no extra
  buffers across calls), which the estimate does not credit.
- VAE tiling: on in low-vram, or as the run says; it caps the decoder's working set at one tile.

The attention backend (:func:`apply_attention_backend`): through diffusers' attention
dispatcher, "auto" the best one the device runs (:mod:`.acceleration`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldstudio.core.errors import WorldStudioError

PROFILES = ("auto", "gpu", "offload", "low-vram")
CONCRETE_PROFILES = ("gpu", "offload", "low-vram")

GiB = 1024**3
RUNTIME_OVERHEAD = 1 * GiB
VAE_DECODE_FACTOR = 8
VAE_TILE = 256 * 256  # diffusers' default tile_sample_min_height x width for AutoencoderKLWan
TEXT_TOKENS = 512
BF16, F32 = 2, 4


class MemoryProfileError(WorldStudioError):
    """An unknown memory profile name, or a model whose shape is unknown."""


# --------------------------------------------------------------------------- known shapes
UMT5_XXL = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "feed_forward_proj": "gated-gelu",
}
WAN21_VAE = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
    "scale_factor_spatial": 8,
    "scale_factor_temporal": 4,
}
CLIP_VIT_H14 = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "num_channels": 3,
}
_WAN_COMMON = {
    "patch_size": [1, 2, 2],
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "cross_attn_norm": True,
    "image_dim": None,
    "added_kv_proj_dim": None,
    "pos_embed_seq_len": None,
}
WAN21_VACE_1_3B_TRANSFORMER = {
    **_WAN_COMMON,
    "_class_name": "WanVACETransformer3DModel",
    "num_attention_heads": 12,
    "ffn_dim": 8960,
    "num_layers": 30,
    "vace_layers": list(range(0, 30, 2)),
    "vace_in_channels": 96,
}
WAN21_VACE_14B_TRANSFORMER = {
    **_WAN_COMMON,
    "_class_name": "WanVACETransformer3DModel",
    "num_attention_heads": 40,
    "ffn_dim": 13824,
    "num_layers": 40,
    "vace_layers": list(range(0, 40, 5)),
    "vace_in_channels": 96,
}
WAN21_T2V_14B_TRANSFORMER = {
    **_WAN_COMMON,
    "_class_name": "WanTransformer3DModel",
    "num_attention_heads": 40,
    "ffn_dim": 13824,
    "num_layers": 40,
}
WAN21_I2V_14B_TRANSFORMER = {
    **_WAN_COMMON,
    "_class_name": "WanTransformer3DModel",
    "num_attention_heads": 40,
    "ffn_dim": 13824,
    "num_layers": 40,
    "in_channels": 36,
    "image_dim": 1280,
    "added_kv_proj_dim": 5120,
}

KNOWN_PIPELINES: dict[str, dict[str, dict]] = {
    "Wan-AI/Wan2.1-VACE-1.3B-diffusers": {
        "transformer": WAN21_VACE_1_3B_TRANSFORMER,
        "text_encoder": UMT5_XXL,
        "vae": WAN21_VAE,
    },
    "Wan-AI/Wan2.1-VACE-14B-diffusers": {
        "transformer": WAN21_VACE_14B_TRANSFORMER,
        "text_encoder": UMT5_XXL,
        "vae": WAN21_VAE,
    },
    "Wan-AI/Wan2.1-T2V-14B-Diffusers": {
        "transformer": WAN21_T2V_14B_TRANSFORMER,
        "text_encoder": UMT5_XXL,
        "vae": WAN21_VAE,
    },
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": {
        "transformer": WAN21_I2V_14B_TRANSFORMER,
        "text_encoder": UMT5_XXL,
        "vae": WAN21_VAE,
        "image_encoder": CLIP_VIT_H14,
    },
}


# --------------------------------------------------------------------------- parameter counts
def _wan_block_params(d: int, ffn: int, cross_attn_norm: bool, added_kv: int | None) -> int:
    attn = 4 * (d * d + d) + 2 * d  # q, k, v, out (+bias) and the q/k RMS norms
    cross = attn + (2 * (added_kv * d + d) + d if added_kv else 0)
    norm2 = 2 * d if cross_attn_norm else 0
    ffn_params = (d * ffn + ffn) + (ffn * d + d)
    return attn + cross + norm2 + ffn_params + 6 * d  # + the block's scale_shift_table


def transformer_params(cfg: dict) -> dict[str, int]:
    """Parameter counts of a ``WanTransformer3DModel`` / ``WanVACETransformer3DModel`` config:
    ``{"total", "block", "blocks", "vace_block", "vace_blocks", "other"}``."""
    heads = int(cfg.get("num_attention_heads", 40))
    d = heads * int(cfg.get("attention_head_dim", 128))
    ffn = int(cfg.get("ffn_dim", 13824))
    layers = int(cfg.get("num_layers", 40))
    patch = math.prod(int(p) for p in cfg.get("patch_size", (1, 2, 2)))
    cin = int(cfg.get("in_channels", 16))
    cout = int(cfg.get("out_channels") or cin)
    text = int(cfg.get("text_dim", 4096))
    freq = int(cfg.get("freq_dim", 256))
    image = cfg.get("image_dim")
    added_kv = cfg.get("added_kv_proj_dim")
    cross_norm = bool(cfg.get("cross_attn_norm", True))
    pos_seq = cfg.get("pos_embed_seq_len")

    other = cin * patch * d + d  # patch embedding
    other += (freq * d + d) + (d * d + d)  # time embedder
    other += d * 6 * d + 6 * d  # time projection
    other += (text * d + d) + (d * d + d)  # text embedder
    if image:
        image = int(image)
        other += 2 * image + (image * image + image) + (image * d + d) + 2 * d
        if pos_seq:
            other += int(pos_seq) * image
    other += d * cout * patch + cout * patch + 2 * d  # output projection + scale_shift_table
    block = _wan_block_params(d, ffn, cross_norm, int(added_kv) if added_kv else None)
    vace_layers = cfg.get("vace_layers")
    vace_block = vace_total = 0
    if vace_layers is not None:
        n_vace = len(vace_layers)
        other += int(cfg.get("vace_in_channels", 96)) * patch * d + d
        vace_block = block + (d * d + d)  # + proj_out
        vace_total = n_vace * vace_block + (d * d + d)  # + the first block's proj_in
    blocks = layers * block
    return {
        "total": other + blocks + vace_total,
        "block": block,
        "blocks": blocks,
        "vace_block": vace_block,
        "vace_blocks": vace_total,
        "other": other,
    }


def umt5_params(cfg: dict) -> dict[str, int]:
    """Parameter counts of a ``UMT5EncoderModel`` config: ``{"total", "block", "other"}``."""
    d = int(cfg.get("d_model", 512))
    inner = int(cfg.get("d_kv", 64)) * int(cfg.get("num_heads", 6))
    ff = int(cfg.get("d_ff", 1024))
    gated = str(cfg.get("feed_forward_proj", "gated-gelu")).startswith("gated")
    buckets = int(cfg.get("relative_attention_num_buckets", 32))
    block = 4 * d * inner + buckets * int(cfg.get("num_heads", 6)) + 2 * d
    block += (3 if gated else 2) * d * ff
    other = int(cfg.get("vocab_size", 250112)) * d + d  # shared embedding + final norm
    return {"total": other + int(cfg.get("num_layers", 8)) * block, "block": block, "other": other}


def clip_vision_params(cfg: dict) -> dict[str, int]:
    """Parameter counts of a ``CLIPVisionModel`` config: ``{"total", "block", "other"}``."""
    h = int(cfg.get("hidden_size", 768))
    inter = int(cfg.get("intermediate_size", 3072))
    patch = int(cfg.get("patch_size", 32))
    size = int(cfg.get("image_size", 224))
    chans = int(cfg.get("num_channels", 3))
    positions = (size // patch) ** 2 + 1
    other = chans * patch * patch * h + h + positions * h + 2 * h + 2 * h  # embeddings, 2 norms
    block = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 4 * h
    return {
        "total": other + int(cfg.get("num_hidden_layers", 12)) * block,
        "block": block,
        "other": other,
    }


def vae_params(cfg: dict) -> int:
    """``AutoencoderKLWan``: 126.9M at base_dim 96 (the Wan 2.1 VAE), scaled by base_dim^2 (an
    approximation within ~15% for other widths; the VAE is ~1% of a pipeline's weights)."""
    return int(126_892_531 * (int(cfg.get("base_dim", 96)) / 96.0) ** 2)


# --------------------------------------------------------------------------- configs
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pipeline_configs(model: str | os.PathLike | dict) -> dict[str, dict]:
    """The component configs of a pipeline: ``{"transformer": ..., "text_encoder": ..., "vae":
    ..., "image_encoder": ... (optional)}``.

    ``model`` is such a dict, a pipeline folder, or a catalogue name / hub repo id (its configs
    are read from the local snapshot when the model is on this machine, else from the built-in
    shapes of the catalogue's Wan models, so the estimate can be shown before a download).
    """
    if isinstance(model, dict):
        if "transformer" not in model:
            return {"transformer": model, "text_encoder": UMT5_XXL, "vae": WAN21_VAE}
        return model
    folder = Path(model).expanduser()
    if not (folder / "model_index.json").is_file():
        from worldstudio.core.models import find_model, model_status

        info = find_model(str(model))
        if info is None:
            raise MemoryProfileError(f"cannot estimate memory for unknown model {str(model)!r}")
        try:
            status = model_status(info)
        except WorldStudioError:
            status = None
        if status is not None and status.present and status.path is not None:
            folder = status.path
        elif info.repo_id in KNOWN_PIPELINES:
            return KNOWN_PIPELINES[info.repo_id]
        else:
            raise MemoryProfileError(
                f"cannot estimate memory for model {info.name}: it is not on this machine and its shape is not built in"
            )
    out: dict[str, dict] = {}
    for name in ("transformer", "text_encoder", "vae", "image_encoder"):
        cfg = _read_json(folder / name / "config.json")
        if cfg:
            out[name] = cfg
    if "transformer" not in out:
        raise MemoryProfileError(f"{folder}: no transformer/config.json to estimate memory from")
    out.setdefault("text_encoder", UMT5_XXL)
    out.setdefault("vae", WAN21_VAE)
    return out


# --------------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class VramEstimate:
    """Bytes of accelerator memory one generation call needs, with its parts."""

    profile: str
    total: int
    weights: int  # resident weights at the peak
    activations: int  # activations at the peak
    overhead: int
    parts: dict[str, int] = field(default_factory=dict)
    ram: int = 0  # bytes of main memory at the peak (0: not estimated)
    options: tuple[str, ...] = ()  # the accelerations it counts, e.g. ("fp8", "taylorseer")

    def text(self) -> str:
        ram = f", ~{self.ram / GiB:.1f} GiB RAM" if self.ram else ""
        extra = "".join(f", {o}" for o in self.options)
        return f"~{self.total / GiB:.1f} GiB ({self.profile}{extra}{ram})"


def _latent_geometry(
    vae_cfg: dict, tr_cfg: dict, height: int, width: int, frames: int, extra_latent_frames: int
) -> tuple[int, int]:
    spatial = int(
        vae_cfg.get("scale_factor_spatial") or 2 ** (len(vae_cfg.get("dim_mult", [1, 2, 4, 4])) - 1)
    )
    temporal = int(
        vae_cfg.get("scale_factor_temporal")
        or 2 ** sum(bool(x) for x in vae_cfg.get("temperal_downsample", [False, True, True]))
    )
    patch = tr_cfg.get("patch_size", (1, 2, 2))
    latent_frames = (frames - 1) // temporal + 1 + extra_latent_frames
    tokens = (
        (latent_frames // int(patch[0]))
        * (height // (spatial * int(patch[1])))
        * (width // (spatial * int(patch[2])))
    )
    return latent_frames, tokens


def transformer_activation_bytes(cfg: dict, tokens: int, dtype_bytes: int = BF16) -> int:
    """Peak activation bytes of one transformer forward over ``tokens`` tokens (see the module
    docstring)."""
    d = int(cfg.get("num_attention_heads", 40)) * int(cfg.get("attention_head_dim", 128))
    ffn = int(cfg.get("ffn_dim", 13824))
    n_vace = len(cfg.get("vace_layers") or [])
    held = (1 + (1 + n_vace if n_vace else 0)) * tokens * d * dtype_bytes
    attention = 4 * tokens * d * dtype_bytes + 2 * tokens * d * F32
    feed_forward = 2 * tokens * ffn * dtype_bytes + tokens * d * dtype_bytes
    temporaries = 2 * tokens * d * F32
    rope = 2 * tokens * int(cfg.get("attention_head_dim", 128)) * F32
    return held + max(attention, feed_forward) + temporaries + rope


def vae_activation_bytes(
    cfg: dict, height: int, width: int, frames: int = 1, tiled: bool = False, dtype_bytes: int = F32
) -> int:
    """The decoder's working set for one latent frame (4 video frames), capped at one tile when
    tiled, plus the decoded video itself, twice (the frames are concatenated as they come)."""
    area = min(height * width, VAE_TILE) if tiled else height * width
    working = VAE_DECODE_FACTOR * 4 * int(cfg.get("base_dim", 96)) * area * dtype_bytes
    return working + 2 * 3 * frames * height * width * dtype_bytes


def text_activation_bytes(cfg: dict, dtype_bytes: int = BF16) -> int:
    d = int(cfg.get("d_model", 512))
    ff = int(cfg.get("d_ff", 1024))
    heads = int(cfg.get("num_heads", 6))
    return TEXT_TOKENS * (4 * d + 2 * ff) * dtype_bytes + heads * TEXT_TOKENS**2 * F32


def transformer_weight_bytes(tr: dict[str, int], precision: str = "auto") -> int:
    """Bytes of a transformer's weights (:func:`transformer_params` counts) in ``precision``."""
    from worldstudio.core.generation.acceleration import (
        FP8_BYTES,
        INT8_BYTES,
        NF4_BYTES,
        check_precision,
    )

    per = {"auto": BF16, "fp8": FP8_BYTES, "int8": INT8_BYTES, "nf4": NF4_BYTES}[
        check_precision(precision)
    ]
    blocks = tr["blocks"] + tr["vace_blocks"]
    return int(blocks * per + (tr["total"] - blocks) * BF16)


def cache_bytes(cfg: dict, tokens: int, cache: str = "none", branches: int = 2) -> int:
    """Accelerator bytes a cache keeps during a call (see the module docstring)."""
    from worldstudio.core.generation.acceleration import check_cache

    cache = check_cache(cache)
    d = int(cfg.get("num_attention_heads", 40)) * int(cfg.get("attention_head_dim", 128))
    if cache == "taylorseer":
        patch = math.prod(int(p) for p in cfg.get("patch_size", (1, 2, 2)))
        out = int(cfg.get("out_channels") or cfg.get("in_channels", 16))
        per_branch = 2 * tokens * out * patch * F32
    elif cache == "first-block":
        per_branch = 3 * tokens * d * BF16
    elif cache == "pab":
        layers = int(cfg.get("num_layers", 40)) + len(cfg.get("vace_layers") or [])
        per_branch = layers * tokens * d * BF16
    else:
        return 0
    return per_branch * max(1, branches)


def estimate(
    model: str | os.PathLike | dict,
    height: int,
    width: int,
    frames: int,
    profile: str = "gpu",
    *,
    extra_latent_frames: int = 0,
    precision: str = "auto",
    cache: str = "none",
    compiled: bool = False,
    vae_tiling: bool | None = None,
    guidance: float = 5.0,
) -> VramEstimate:
    """The :class:`VramEstimate` of one call at ``height`` x ``width`` x ``frames`` (F = 4k+1)
    under ``profile`` ("gpu", "offload" or "low-vram"); ``extra_latent_frames`` counts latent
    frames the backend adds (VACE reference images, leading context frames). ``precision``,
    ``cache``, ``compiled`` and ``vae_tiling`` (None: the profile's) are the run's accelerations;
    ``guidance`` above 1 runs two branches per step (two cache states)."""
    if profile not in CONCRETE_PROFILES:
        raise MemoryProfileError(
            f"memory profile {profile!r}: expected one of {', '.join(CONCRETE_PROFILES)}"
        )
    from worldstudio.core.generation.acceleration import check_cache, check_precision

    precision, cache = check_precision(precision), check_cache(cache)
    cache = "none" if cache == "auto" else cache
    cfgs = pipeline_configs(model)
    tr_cfg, te_cfg, vae_cfg = cfgs["transformer"], cfgs["text_encoder"], cfgs["vae"]
    ie_cfg = cfgs.get("image_encoder")
    _, tokens = _latent_geometry(vae_cfg, tr_cfg, height, width, frames, extra_latent_frames)

    tr = transformer_params(tr_cfg)
    te = umt5_params(te_cfg)
    ie = clip_vision_params(ie_cfg) if ie_cfg else {"total": 0, "block": 0, "other": 0}
    w = {
        "transformer": transformer_weight_bytes(tr, precision),
        "text_encoder": te["total"] * BF16,
        "vae": vae_params(vae_cfg) * F32,
        "image_encoder": ie["total"] * F32,
    }
    tiled = profile == "low-vram" if vae_tiling is None else bool(vae_tiling)
    d = int(tr_cfg.get("num_attention_heads", 40)) * int(tr_cfg.get("attention_head_dim", 128))
    cast_back = d * int(tr_cfg.get("ffn_dim", 13824)) * BF16 if precision != "auto" else 0
    kept = cache_bytes(tr_cfg, tokens, cache, 2 if guidance > 1.0 else 1)
    act = {
        "transformer": transformer_activation_bytes(tr_cfg, tokens) + kept + cast_back,
        "text_encoder": text_activation_bytes(te_cfg),
        "vae": vae_activation_bytes(vae_cfg, height, width, frames, tiled=tiled),
        "image_encoder": (257 * int(ie_cfg.get("hidden_size", 1280)) * 8 * F32) if ie_cfg else 0,
    }
    if profile == "gpu":
        peak_stage = max(act, key=lambda stage: act[stage])
        weights, activations = sum(w.values()), act[peak_stage]
    else:
        if profile == "offload":
            resident = dict(w)
        else:  # low-vram: non-block parameters + two blocks per group-offloaded component
            big_block = max(tr["block"], tr["vace_block"])
            block_bytes = transformer_weight_bytes(
                {"total": big_block, "blocks": big_block, "vace_blocks": 0}, precision
            )
            resident = {
                "transformer": tr["other"] * BF16 + 2 * block_bytes,
                "text_encoder": (te["other"] + 2 * te["block"]) * BF16,
                "vae": w["vae"],
                "image_encoder": (ie["other"] + 2 * ie["block"]) * F32,
            }
        stage = max(resident, key=lambda k: resident[k] + act[k])
        weights, activations = resident[stage], act[stage]
    total = weights + activations + RUNTIME_OVERHEAD
    parts = {f"weights.{k}": v for k, v in w.items() if v} | {
        f"activations.{k}": v for k, v in act.items() if v
    }
    parts["tokens"] = tokens
    if kept:
        parts["cache"] = kept
    options = tuple(
        o
        for o in (
            precision if precision != "auto" else "",
            cache if cache != "none" else "",
            "compiled" if compiled else "",
            "VAE tiling" if tiled and profile != "low-vram" else "",
        )
        if o
    )
    return VramEstimate(
        profile,
        int(total),
        int(weights),
        int(activations),
        RUNTIME_OVERHEAD,
        parts,
        options=options,
    )


def estimate_vram(
    model: str | os.PathLike | dict,
    height: int,
    width: int,
    frames: int,
    profile: str = "gpu",
    **options: Any,
) -> int:
    """Bytes of accelerator memory a call needs (see :func:`estimate`; ``options`` are its
    keyword options)."""
    return estimate(model, height, width, frames, profile, **options).total


def choose_profile(
    model: str | os.PathLike | dict,
    height: int,
    width: int,
    frames: int,
    available_bytes: int | None,
    **options: Any,
) -> str:
    """The first of gpu / offload / low-vram whose estimate (with :func:`estimate`'s keyword
    ``options``) fits ``available_bytes`` (None: a CPU, everything stays on it: "gpu");
    "low-vram" when nothing fits."""
    if available_bytes is None:
        return "gpu"
    for profile in CONCRETE_PROFILES:
        if estimate_vram(model, height, width, frames, profile, **options) <= available_bytes:
            return profile
    return "low-vram"


def device_memory(device) -> int | None:
    """Free bytes on a CUDA ``device`` (None for a CPU)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


# --------------------------------------------------------------------------- applying
@dataclass
class AppliedProfile:
    """What :func:`apply_profile` did to a pipeline."""

    profile: str
    device: str
    attention: str = "native"
    vae_tiling: bool = False
    notes: list[str] = field(default_factory=list)


def check_profile(profile: str | None) -> str:
    name = (profile or "auto").strip().lower()
    if name not in PROFILES:
        raise MemoryProfileError(
            f"memory profile {profile!r}: expected one of {', '.join(PROFILES)}"
        )
    return name


def apply_profile(pipe: Any, profile: str, device) -> AppliedProfile:
    """Place ``pipe``'s components for ``profile`` (not "auto": resolve it first) on ``device``."""
    import torch

    profile = check_profile(profile)
    if profile == "auto":
        raise MemoryProfileError(
            "resolve the 'auto' memory profile (choose_profile) before applying it"
        )
    device = torch.device(device)
    applied = AppliedProfile(profile, str(device))
    accelerator = device.type not in ("cpu", "meta")
    vae = getattr(pipe, "vae", None)
    if profile == "gpu":
        pipe.to(device)
    elif profile == "offload":
        if accelerator:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
            applied.notes.append(
                "model CPU offload needs an accelerator: everything stays on the CPU"
            )
    else:  # low-vram
        if accelerator:
            pipe.enable_group_offload(
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=device.type == "cuda",
                exclude_modules=["vae"],
            )
        else:
            pipe.to(device)
            applied.notes.append(
                "group offload needs an accelerator: only VAE tiling applies on the CPU"
            )
        if vae is not None and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
            applied.vae_tiling = True
    return applied


def release_pipeline(backend: Any) -> None:
    """Take ``backend.pipe`` (None after) and give its memory back: its offload hooks removed,
    the objects collected and, on CUDA, the allocator's cache emptied (best effort: closing must
    not fail). It takes the attribute itself so that no caller still holds the pipeline while it
    is collected."""
    import contextlib
    import gc

    pipe, backend.pipe = backend.pipe, None
    if pipe is None:
        return
    with contextlib.suppress(Exception):
        pipe.remove_all_hooks()
    del pipe
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def choose_attention_backend(device) -> str:
    """The best attention backend ``device`` can run (:func:`.acceleration.choose_attention`)."""
    from worldstudio.core.generation.acceleration import choose_attention

    return choose_attention(device)


def apply_attention_backend(
    module: Any, device, requested: str | None = "auto"
) -> tuple[str, str | None]:
    """Set the attention backend of a diffusers model (the transformer); returns (backend,
    note). See :func:`.acceleration.apply_attention` ("auto" falls back to SDPA with a note when
    diffusers refuses its choice)."""
    from worldstudio.core.generation.acceleration import apply_attention

    return apply_attention(module, requested, device)


# --------------------------------------------------------------------------- LiveWorld
LIVEWORLD_PROFILES = ("auto", "gpu", "offload", "fp8", "low-vram")
LIVEWORLD_AUTO_ORDER = ("gpu", "offload", "low-vram")  # fp8 changes the numerics: only on request
RAM_OVERHEAD = 2 * GiB  # the interpreter, libraries, decoded frames
FP8 = 1


def liveworld_transformer_config(backbone: dict, adapter_layers) -> dict:
    """The backbone's config with LiveWorld's State Adapter described as VACE-shaped control
    blocks (same modules: a Wan block, ``proj_in`` on the first, ``proj_out`` on each, a 32-channel
    patch embedding), so :func:`transformer_params` counts backbone + adapter."""
    return {**backbone, "vace_layers": list(adapter_layers), "vace_in_channels": 32}


def estimate_liveworld(
    model: str | os.PathLike | dict,
    height: int,
    width: int,
    frames: int,
    profile: str = "gpu",
    *,
    adapter_layers=(0, 5, 10, 15, 20, 25, 30, 35),
    extra_latent_frames: int = 0,
    lora_params: int = 0,
    device_type: str = "cuda",
) -> VramEstimate:
    """Accelerator and main memory of one LiveWorld call (backbone ``model``: the T2V pipeline by
    name, folder or configs; the State Adapter of ``adapter_layers``; ``extra_latent_frames``
    clean frames: preceding and references) under a LiveWorld profile:

    - ``gpu``: everything on the accelerator in bf16 (VAE float32). RAM: the largest component,
      which passes through main memory while loading.
    - ``offload``: one component at a time on the accelerator (model CPU offload); all weights in
      RAM.
    - ``fp8``: backbone and adapter stored in float8 (e4m3) on the accelerator and computed in
      bf16 (layerwise casting), text encoder and VAE offloaded; RAM: the bf16 transformer while it
      loads plus the offloaded components.
    - ``low-vram``: block-level group offload with CUDA streams for the transformer and the text
      encoder (the running block and the prefetched one on the accelerator), VAE tiling; all
      weights in (pinned) RAM.

    On a CPU (``device_type`` "cpu") everything is in main memory in float32: ``total`` is 0 and
    ``ram`` counts it all."""
    if profile not in LIVEWORLD_PROFILES or profile == "auto":
        raise MemoryProfileError(
            f"LiveWorld memory profile {profile!r}: expected one of "
            f"{', '.join(p for p in LIVEWORLD_PROFILES if p != 'auto')}"
        )
    cfgs = pipeline_configs(model)
    tr_cfg = liveworld_transformer_config(cfgs["transformer"], adapter_layers)
    te_cfg, vae_cfg = cfgs["text_encoder"], cfgs["vae"]
    _, tokens = _latent_geometry(vae_cfg, tr_cfg, height, width, frames, extra_latent_frames)
    tr = transformer_params(tr_cfg)
    te = umt5_params(te_cfg)
    params = {"transformer": tr["total"] + lora_params, "text_encoder": te["total"]}
    tiled = profile == "low-vram"
    act = {
        "transformer": transformer_activation_bytes(tr_cfg, tokens),
        "text_encoder": text_activation_bytes(te_cfg),
        "vae": vae_activation_bytes(vae_cfg, height, width, frames, tiled=tiled),
    }
    if device_type == "cpu":
        w = {k: v * F32 for k, v in params.items()} | {"vae": vae_params(vae_cfg) * F32}
        ram = sum(w.values()) + max(act.values()) * 2 + RAM_OVERHEAD
        parts = {f"weights.{k}": v for k, v in w.items()} | {
            "tokens": tokens,
            "resident.transformer": w["transformer"],
            "activations.transformer": act["transformer"],
        }
        return VramEstimate(profile, 0, 0, 0, 0, parts, ram=int(ram))
    w = {
        "transformer": params["transformer"] * BF16,
        "text_encoder": params["text_encoder"] * BF16,
        "vae": vae_params(vae_cfg) * F32,
    }
    resident_transformer = w["transformer"]
    if profile == "gpu":
        weights, activations = sum(w.values()), max(act.values())
        ram = max(w.values()) + RAM_OVERHEAD
    elif profile == "offload":
        stage = max(w, key=lambda k: w[k] + act[k])
        weights, activations = w[stage], act[stage]
        ram = sum(w.values()) + RAM_OVERHEAD
    elif profile == "fp8":
        fp8 = (params["transformer"] - tr["other"]) * FP8 + tr["other"] * BF16
        resident_transformer = fp8
        resident = {"transformer": fp8, "text_encoder": w["text_encoder"], "vae": w["vae"]}
        stage = max(resident, key=lambda k: resident[k] + act[k])
        weights, activations = resident[stage], act[stage]
        ram = w["transformer"] + w["text_encoder"] + w["vae"] + RAM_OVERHEAD
    else:  # low-vram
        big_block = max(tr["block"], tr["vace_block"])
        resident = {
            "transformer": (tr["other"] + 2 * big_block) * BF16,
            "text_encoder": (te["other"] + 2 * te["block"]) * BF16,
            "vae": w["vae"],
        }
        resident_transformer = resident["transformer"]
        stage = max(resident, key=lambda k: resident[k] + act[k])
        weights, activations = resident[stage], act[stage]
        ram = sum(w.values()) + RAM_OVERHEAD
    total = weights + activations + RUNTIME_OVERHEAD
    parts = {f"weights.{k}": v for k, v in w.items()} | {
        f"activations.{k}": v for k, v in act.items()
    }
    parts["tokens"] = tokens
    parts["resident.transformer"] = int(resident_transformer)  # during the denoising forward
    return VramEstimate(
        profile, int(total), int(weights), int(activations), RUNTIME_OVERHEAD, parts, ram=int(ram)
    )


def host_memory() -> int | None:
    """Bytes of main memory available now (None when unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
