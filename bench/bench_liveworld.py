"""Benchmark: LiveWorld's model (Wan2.1-T2V-14B + State Adapter + LoRA) at full size.

    python bench/bench_liveworld.py                      # parameter count on the meta device
    python bench/bench_liveworld.py --device cuda        # + one full-size forward per profile
    python bench/bench_liveworld.py --device cpu --tiny  # the forward path on the tiny model
    options: [--profiles gpu,offload,fp8,low-vram] [--height 480] [--width 832] [--frames 65]
             [--preceding 10] [--scene-refs 1] [--instance-refs 1] [--json]

**Parameters** (always): the architecture is built on the meta device exactly as the backend
builds it (diffusers' ``WanTransformer3DModel`` with the Wan2.1-T2V-14B configuration, the
``StateAdapter`` LiveWorld's 14B checkpoint implies: 8 control blocks at layers 0, 5, ..., 35 with a
32-channel state) and its parameters are counted, plus LiveWorld's LoRA (rank 64 on q, k, v, o of
both attentions of the 40 blocks: 40 * 8 * 2 * 64 * 5120). Printed next to:

- the formula of ``core.generation.memory`` (``transformer_params``; the backbone with the adapter
  described as VACE-shaped control blocks), which the VRAM estimate uses;
- the published size of the real backbone: the single-file bf16 Wan2.1-T2V-14B
  (``Comfy-Org/Wan_2.1_ComfyUI_repackaged``, ``wan2.1_t2v_14B_bf16.safetensors``, 28.6 GB as the hub
  lists it, i.e. 14.30e9 +- 0.03e9 parameters at 2 bytes: the size is rounded to 0.1 GB);
- the adapter's size the LiveWorld issue states ("about 6 GB more" in bf16: ~3e9 parameters).

**One forward per memory profile** (``--device cuda``; the tiny model with ``--tiny``, on any
device): random weights (normal, std 0.02) in bf16 (float32 on a CPU), one forward of the
transformer as one denoising call runs it: T = (frames - 1) / 4 + 1 target latent frames at
timestep 500, P preceding frames (VAE-encoded: (P - 1) / 4 + 1 latent frames) and the scene and
instance references (one latent frame each) at timestep 0, 512 text tokens, the State Adapter's
state on T + P frames, strength 1. The profiles place the transformer as the backend does:
``gpu`` (on the device), ``offload`` (model CPU offload: moved onto the device for the call, the
time includes the transfer), ``fp8`` (float8 storage, bf16 compute, on the device), ``low-vram``
(block-level group offload with CUDA streams). Timed with a synchronize (median of ``--repeats``
after one warm-up); peak ``torch.cuda.max_memory_allocated`` against the estimate's transformer
stage (resident weights + activations, ``core.generation.memory.estimate_liveworld``). The gpu
profile is the baseline: each profile's time is also printed as a ratio to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEXT_TOKENS = 512
LORA_RANK = 64
TINY_LORA_RANK = 4
PUBLISHED_BF16_BYTES = 28.6e9  # wan2.1_t2v_14B_bf16.safetensors as the hub lists it
PUBLISHED_ROUNDING = 0.05e9  # the listed size is rounded to 0.1 GB
ADAPTER_ISSUE_BYTES = 6e9  # "the adapter about 6 GB more" (bf16)
PROFILES = ("gpu", "offload", "fp8", "low-vram")


def full_config() -> dict:
    from worldstudio.core.generation.memory import WAN21_T2V_14B_TRANSFORMER

    return {k: v for k, v in WAN21_T2V_14B_TRANSFORMER.items() if not k.startswith("_")}


def tiny_config() -> dict:
    from tests.tiny_liveworld import TINY_BACKBONE

    return dict(TINY_BACKBONE)


def build(cfg: dict, blocks: int, device, dtype):
    """The LiveWorld composition for backbone config ``cfg`` and an adapter of ``blocks``."""
    import torch
    from diffusers import WanTransformer3DModel

    from worldstudio.core.generation.backends.liveworld.model import (
        LiveWorldTransformer,
        StateAdapter,
    )
    from worldstudio.core.generation.backends.liveworld.weights import adapter_config

    with torch.device("meta"):
        backbone = WanTransformer3DModel(**cfg)
        adapter = StateAdapter(**adapter_config(cfg, blocks))
    model = LiveWorldTransformer(backbone, adapter).eval()
    if device.type == "meta":
        return model
    # storage in the run's dtype straight away (float32 storage of 17.5e9 parameters would not
    # fit an 80 GB GPU), real rotary tables (non-persistent buffers), random weights
    model = model.to(dtype).to_empty(device=device)
    rope = type(backbone.rope)(
        cfg.get("attention_head_dim", 128), cfg["patch_size"], cfg.get("rope_max_seq_len", 1024)
    )
    model.backbone.rope = rope.to(device)
    with torch.no_grad():
        g = torch.Generator(device=device).manual_seed(0)
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=g)
    return model


def add_lora(model, cfg: dict, rank: int) -> int:
    """LiveWorld's LoRA shape (random factors) on the backbone; returns its parameter count."""
    import torch

    width = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    device = next(model.parameters()).device
    state = {}
    for i in range(cfg["num_layers"]):
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                base = f"blocks.{i}.{attn}.{proj}"
                state[f"{base}.lora_A.weight"] = torch.randn(rank, width, device=device) * 0.01
                state[f"{base}.lora_B.weight"] = torch.randn(width, rank, device=device) * 0.01
    targets = sorted({k.rsplit(".lora_", 1)[0] for k in state})
    model.backbone.load_lora_adapter(
        state,
        prefix=None,
        adapter_name="liveworld",
        metadata={"r": rank, "lora_alpha": rank, "target_modules": targets},
    )
    return sum(v.numel() for v in state.values())


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameters(cfg: dict, blocks: int, rank: int = LORA_RANK) -> dict:
    """The meta-device counts, the formula's, and the published figures."""
    import torch

    from worldstudio.core.generation.memory import liveworld_transformer_config, transformer_params

    model = build(cfg, blocks, torch.device("meta"), torch.bfloat16)
    layers = list(model.adapter.config.layers)
    formula = transformer_params(liveworld_transformer_config(cfg, layers))
    width = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    lora = cfg["num_layers"] * 8 * 2 * rank * width
    return {
        "backbone": count(model.backbone),
        "adapter": count(model.adapter),
        "lora": lora,
        "total": count(model) + lora,
        "adapter_layers": layers,
        "formula_backbone": formula["other"] - (32 * 4 * width + width) + formula["blocks"],
        "formula_adapter": formula["vace_blocks"] + 32 * 4 * width + width,
        "formula_total": formula["total"],
    }


def make_inputs(cfg: dict, args, device, dtype):
    import torch

    from worldstudio.core.generation.backends.liveworld.model import Segments

    t = (args.frames - 1) // 4 + 1
    p = (args.preceding - 1) // 4 + 1 if args.preceding else 0
    segments = Segments(t, p, args.scene_refs, args.instance_refs)
    h, w = args.height // 8, args.width // 8
    g = torch.Generator(device="cpu").manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device, dtype)

    latents = randn(1, cfg["in_channels"], segments.frames, h, w)
    context = randn(1, TEXT_TOKENS, cfg["text_dim"])
    state = randn(1, 32, segments.conditioned, h, w)
    return segments, latents, context, state


def place(model, profile: str, device, dtype):
    """Place the transformer for ``profile`` as the backend does; returns a callable that runs
    the model (moving it on and off the device for model CPU offload)."""

    if profile == "fp8":
        from worldstudio.core.generation.backends.liveworld.backend import fp8_storage

        for m in (model.backbone, model.adapter):
            fp8_storage(m, dtype)
    if profile in ("gpu", "fp8") or device.type == "cpu":
        model.to(device)
        return model
    if profile == "offload":
        from accelerate import cpu_offload_with_hook

        model.to("cpu")
        model, hook = cpu_offload_with_hook(model, device)

        def run(*args, **kwargs):
            out = model(*args, **kwargs)
            hook.offload()
            return out

        return run
    from worldstudio.core.generation.backends.liveworld.backend import group_offload

    model.to("cpu")
    group_offload(model, device)
    return model


def forward_profile(cfg: dict, blocks: int, profile: str, args, device, dtype) -> dict:
    import torch

    from worldstudio.core.generation.memory import GiB, estimate_liveworld

    build_device = device if profile in ("gpu", "fp8") else torch.device("cpu")
    model = build(cfg, blocks, build_device, dtype)
    add_lora(model, cfg, TINY_LORA_RANK if args.tiny else LORA_RANK)
    run = place(model, profile, device, dtype)
    segments, latents, context, state = make_inputs(cfg, args, device, dtype)
    t = torch.tensor(500.0)

    def once():
        with torch.inference_mode():
            out = run(latents, t, context, segments, state, 1.0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    out = once()  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    configs = {"transformer": cfg, "text_encoder": None, "vae": None}
    from worldstudio.core.generation import memory

    configs["text_encoder"], configs["vae"] = memory.UMT5_XXL, memory.WAN21_VAE
    extra = segments.frames - segments.target
    est = estimate_liveworld(
        configs,
        args.height,
        args.width,
        args.frames,
        profile,
        adapter_layers=list(model.adapter.config.layers) if hasattr(model, "adapter") else [0],
        extra_latent_frames=extra,
        lora_params=0,
        device_type=device.type,
    )
    stage = est.parts["resident.transformer"] + est.parts["activations.transformer"]
    result = {
        "profile": profile,
        "seconds": statistics.median(times),
        "tokens": int(est.parts["tokens"]),
        "output_shape": list(out.shape),
        "finite": bool(torch.isfinite(out.float()).all()),
        "estimate_transformer_stage_gib": stage / GiB,
        "peak_gib": None if peak is None else peak / GiB,
    }
    model = run = out = None  # free the weights before the next profile builds its own
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="meta", help="meta (counts only), cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model (any device)")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--height", type=int, default=None, help="default 480 (tiny: 32)")
    parser.add_argument("--width", type=int, default=None, help="default 832 (tiny: 48)")
    parser.add_argument("--frames", type=int, default=None, help="default 65 (tiny: 9)")
    parser.add_argument("--preceding", type=int, default=10, help="preceding pixel frames")
    parser.add_argument("--scene-refs", type=int, default=1)
    parser.add_argument("--instance-refs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)

    import torch
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    args.height = args.height or (32 if args.tiny else 480)
    args.width = args.width or (48 if args.tiny else 832)
    args.frames = args.frames or (9 if args.tiny else 65)
    if args.frames % 4 != 1 or args.height % 16 or args.width % 16:
        parser.error("--frames must be 4k+1 and --height/--width multiples of 16")
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        parser.error(f"--profiles: unknown {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    cfg = tiny_config() if args.tiny else full_config()
    blocks = 2 if args.tiny else 8

    result: dict = {"model": "tiny" if args.tiny else "Wan2.1-T2V-14B + State Adapter + LoRA"}
    rank = TINY_LORA_RANK if args.tiny else LORA_RANK
    counts = parameters(cfg, blocks, rank)
    result["parameters"] = counts
    if not args.tiny:
        published = PUBLISHED_BF16_BYTES / 2
        result["expected"] = {
            "backbone": published,
            "backbone_tolerance": PUBLISHED_ROUNDING / 2,
            "backbone_source": "wan2.1_t2v_14B_bf16.safetensors, 28.6 GB (Comfy-Org repackage)",
            "adapter_about": ADAPTER_ISSUE_BYTES / 2,
            "adapter_source": "LiveWorld issue: the adapter is about 6 GB more in bf16",
        }
    result["matches_formula"] = (
        counts["backbone"] == counts["formula_backbone"]
        and counts["adapter"] == counts["formula_adapter"]
        and counts["backbone"] + counts["adapter"] == counts["formula_total"]
    )

    device = torch.device(args.device)
    runs = []
    if device.type != "meta":
        dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
        for profile in profiles:
            runs.append(forward_profile(cfg, blocks, profile, args, device, dtype))
        base = next((r["seconds"] for r in runs if r["profile"] == "gpu"), None)
        for r in runs:
            r["time_vs_gpu"] = None if not base else r["seconds"] / base
            if r["peak_gib"] is not None:
                r["peak_vs_estimate"] = r["peak_gib"] / r["estimate_transformer_stage_gib"]
    result["forwards"] = runs

    if args.json:
        print(json.dumps(result))
        return result
    c = counts
    print(f"LiveWorld at {'tiny' if args.tiny else 'full'} size, built on the meta device:")
    print(f"  backbone  {c['backbone']:>16,d}   formula {c['formula_backbone']:,d}")
    print(
        f"  adapter   {c['adapter']:>16,d}   formula {c['formula_adapter']:,d} "
        f"(layers {c['adapter_layers']})"
    )
    print(f"  LoRA      {c['lora']:>16,d}   rank {rank} on q, k, v, o of both attentions")
    print(f"  total     {c['total']:>16,d}")
    if "expected" in result:
        e = result["expected"]
        print(
            f"  expected backbone {e['backbone']:,.0f} +- {e['backbone_tolerance']:,.0f} "
            f"({e['backbone_source']}); ratio {c['backbone'] / e['backbone']:.4f}"
        )
        print(
            f"  expected adapter about {e['adapter_about']:,.0f} ({e['adapter_source']}); "
            f"ratio {c['adapter'] / e['adapter_about']:.3f}"
        )
    print(f"  counts match the memory formula: {result['matches_formula']}")
    for r in runs:
        peak = "" if r["peak_gib"] is None else f", peak {r['peak_gib']:.1f} GiB"
        ratio = "" if r["time_vs_gpu"] is None else f", {r['time_vs_gpu']:.2f}x the gpu profile"
        vs = f" ({r['peak_vs_estimate']:.2f}x)" if "peak_vs_estimate" in r else ""
        print(
            f"  forward {r['profile']:<9} {r['seconds']:.3f} s{ratio}{peak} vs estimate "
            f"{r['estimate_transformer_stage_gib']:.1f} GiB{vs}; {r['tokens']} tokens"
        )
    return result


if __name__ == "__main__":
    main()
