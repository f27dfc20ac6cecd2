"""Benchmark: one denoising step of the Wan VACE transformer (random weights).

    python bench/bench_denoise_step.py                    # tiny model on the CPU, 448x256x17
    python bench/bench_denoise_step.py --full             # Wan2.1-VACE-1.3B shape, bf16, CUDA
    python bench/bench_denoise_step.py --full --dry-run   # the same on the meta device: shapes,
                                                          # parameters and FLOPs, no timing
    options: [--height 480] [--width 832] [--frames 65] [--repeats 5] [--warmup 2]
             [--device cuda|cpu] [--dtype bfloat16|float32] [--json]

What is timed is one forward of the transformer, as the pipeline runs it at every denoising step:
noisy latents (1, 16, f, H/8, W/8), the VACE control latents (1, 96, f, H/8, W/8: inactive and
reactive latents plus the 8x8 mask), 512 text tokens, one timestep. With classifier-free guidance
(guidance > 1, the default) a step is two such forwards; the script prints both. 832x480 with 65
frames is 17 x 60 x 104 latents, 26520 tokens after the (1, 2, 2) patch.

--full builds ``WanVACETransformer3DModel`` with the Wan2.1-VACE-1.3B configuration (30 layers,
12 heads x 128 = 1536 wide, ffn 8960, text_dim 4096, in_channels 16, patch (1, 2, 2), VACE blocks
on every other layer: 15, vace_in_channels 96; diffusers' defaults are the 14B's), random normal
weights (std 0.02), in bf16 except the modules diffusers keeps in float32
(``_keep_in_fp32_modules``; built on the meta device and allocated once, in those dtypes), with
the attention backend the app would choose (core.generation.acceleration: "auto"). The default mode uses the tiny test model (tests/tiny_wan.py) on the
CPU, by default at 448x256 with 17 frames (5 x 32 x 56 latents, 2240 tokens: the tiny model's
2 heads of 12 make full-size attention take ~20 s a forward on a CPU).

Timing: CUDA events around each forward (wall clock with a synchronize on the CPU); median of
``--repeats`` after ``--warmup`` untimed runs; under ``torch.inference_mode``. Peak memory:
``torch.cuda.max_memory_allocated`` over the timed runs (weights included), next to the VRAM
estimate's transformer stage (core.generation.memory) for calibration.

FLOPs (multiply-add = 2 FLOPs; matrix products only, the usual convention for model FLOP
utilisation; norms, RoPE, GELU, modulation and softmax are left out). With L video tokens, T = 512
text tokens, width D, ffn width Fd, per transformer block (main and VACE alike):

    self-attention projections q, k, v, out      4 * 2 L D^2
    self-attention QK^T and AV                   2 * 2 L^2 D
    cross-attention q, out (video side)          2 * 2 L D^2
    cross-attention k, v (text side)             2 * 2 T D^2
    cross-attention QK^T and AV                  2 * 2 L T D
    feed-forward                                 2 * 2 L D Fd
    VACE blocks add proj_out (2 L D^2), the first also proj_in (2 L D^2)

plus the patch embeddings (2 L * 16*4 * D and 2 L * 96*4 * D), the text embedder
(2 T (4096 D + D^2)), the time embedder and projections (tiny) and the output projection
(2 L D * 16*4). Achieved TFLOP/s = FLOPs / median time. The ratio printed last compares it with a
large dense matrix product (8192^3 in the same dtype on CUDA, 1024^3 float32 on the CPU) timed in
the same process: the share of the device's practical matmul throughput the step reaches.
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


def full_config() -> dict:
    from worldstudio.core.generation.memory import WAN21_VACE_1_3B_TRANSFORMER

    return {k: v for k, v in WAN21_VACE_1_3B_TRANSFORMER.items() if not k.startswith("_")}


def tiny_config() -> dict:
    from tests.tiny_wan import tiny_vace_transformer

    cfg = {k: v for k, v in dict(tiny_vace_transformer().config).items() if not k.startswith("_")}
    cfg["rope_max_seq_len"] = (
        1024  # as the real model: RoPE tables long enough for 832 px (no weights)
    )
    return cfg


def step_flops(
    cfg: dict, latent_frames: int, latent_h: int, latent_w: int, text_tokens: int = TEXT_TOKENS
) -> dict:
    """FLOPs of one transformer forward (see the module docstring), by part."""
    d = int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"])
    ffn = int(cfg["ffn_dim"])
    pt, ph, pw = (int(p) for p in cfg.get("patch_size", (1, 2, 2)))
    patch = pt * ph * pw
    L = (latent_frames // pt) * (latent_h // ph) * (latent_w // pw)
    T = text_tokens
    n_main = int(cfg["num_layers"])
    n_vace = len(cfg.get("vace_layers") or [])
    block_linear = 2 * (4 * L * d * d + 2 * L * d * d + 2 * T * d * d + 2 * L * d * ffn)
    block_attention = 2 * (2 * L * L * d + 2 * L * T * d)
    parts = {
        "linear": (n_main + n_vace) * block_linear
        + 2 * L * d * d * (n_vace + (1 if n_vace else 0)),
        "attention": (n_main + n_vace) * block_attention,
        "embeddings": 2 * L * int(cfg.get("in_channels", 16)) * patch * d
        + 2 * L * int(cfg.get("vace_in_channels", 96)) * patch * d
        + 2 * T * (int(cfg["text_dim"]) * d + d * d)
        + 2 * L * d * int(cfg.get("out_channels") or 16) * patch,
    }
    parts["total"] = sum(parts.values())
    parts["tokens"] = L
    return parts


def build_model(cfg: dict, device, dtype, meta: bool = False):
    import torch
    from diffusers import WanVACETransformer3DModel

    with torch.device("meta"):
        model = WanVACETransformer3DModel(**cfg)
    model = model.to(dtype)  # on the meta device: the weights are allocated once, in dtype
    if meta:
        return model.eval()
    # as from_pretrained(dtype=...) does: some modules stay in float32
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    if dtype != torch.float32:
        for name, p in model.named_parameters():
            if any(k in name.split(".") for k in keep):
                p.data = p.data.float()
    model = model.to_empty(device=device)
    init_random_(model, device)
    # RoPE's frequency tables are buffers computed in __init__ (to_empty leaves them undefined)
    rope = model.rope
    model.rope = type(rope)(rope.attention_head_dim, rope.patch_size, rope.max_seq_len).to(device)
    return model.eval()


def init_random_(model, device, seed: int = 0) -> None:
    """Random weights in place: normal(0, 0.02) matrices, unit norm weights, zero biases."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.02, generator=gen)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


def make_inputs(cfg: dict, latent_frames: int, latent_h: int, latent_w: int, device, dtype):
    import torch

    gen = torch.Generator(device="cpu").manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    if torch.device(device).type == "meta":

        def randn(*shape):
            return torch.empty(*shape, device="meta", dtype=dtype)

    return {
        "hidden_states": randn(1, int(cfg["in_channels"]), latent_frames, latent_h, latent_w),
        "control_hidden_states": randn(
            1, int(cfg.get("vace_in_channels", 96)), latent_frames, latent_h, latent_w
        ),
        "encoder_hidden_states": randn(1, TEXT_TOKENS, int(cfg["text_dim"])),
        "timestep": torch.tensor([999.0], device=device),
        "return_dict": False,
    }


def timed(fn, device, repeats: int, warmup: int) -> list[float]:
    """Seconds per call: CUDA events on a GPU, perf_counter on a CPU."""
    import torch

    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


def matmul_baseline(device, dtype, repeats: int = 5) -> float:
    """Achieved TFLOP/s of a large dense matrix product on ``device``."""
    import torch

    n = 8192 if torch.device(device).type == "cuda" else 1024
    if torch.device(device).type == "cpu":
        dtype = torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = statistics.median(timed(lambda: a @ b, device, repeats, 2))
    return 2 * n**3 / t / 1e12


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="the full Wan2.1-VACE-1.3B shape (for a GPU)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="build and run on the meta device: no timing"
    )
    parser.add_argument(
        "--height", type=int, default=None, help="default 480 with --full, else 256"
    )
    parser.add_argument("--width", type=int, default=None, help="default 832 with --full, else 448")
    parser.add_argument("--frames", type=int, default=None, help="default 65 with --full, else 17")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default=None, help="default: cuda with --full, else cpu")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)

    import torch
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    args.height = args.height or (480 if args.full else 256)
    args.width = args.width or (832 if args.full else 448)
    args.frames = args.frames or (65 if args.full else 17)
    if args.frames % 4 != 1 or args.height % 16 or args.width % 16:
        parser.error("--frames must be 4k+1 and --height/--width multiples of 16")
    device = torch.device(
        "meta" if args.dry_run else (args.device or ("cuda" if args.full else "cpu"))
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(
            "--full times a CUDA device and none is available here (use --dry-run, or --device cpu with a small size)"
        )
    dtype = (
        getattr(torch, args.dtype)
        if args.dtype
        else (torch.float32 if device.type == "cpu" else torch.bfloat16)
    )
    cfg = full_config() if args.full else tiny_config()
    lf, lh, lw = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    flops = step_flops(cfg, lf, lh, lw)

    from worldstudio.core.generation import memory

    params = memory.transformer_params(cfg)["total"]
    result: dict = {
        "model": "Wan2.1-VACE-1.3B shape" if args.full else "tiny test model",
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "size": f"{args.width}x{args.height}x{args.frames}",
        "latents": [lf, lh, lw],
        "tokens": flops["tokens"],
        "parameters": params,
        "gflop_per_forward": flops["total"] / 1e9,
        "gflop_split": {k: flops[k] / 1e9 for k in ("linear", "attention", "embeddings")},
    }

    build_t0 = time.perf_counter()
    model = build_model(cfg, device, dtype, meta=device.type == "meta")
    result["build_seconds"] = time.perf_counter() - build_t0
    assert sum(p.numel() for p in model.parameters()) == params, (
        "the parameter formula disagrees with the model"
    )
    attention = "native"
    if device.type != "meta":
        attention, note = memory.apply_attention_backend(model, device)
        if note:
            result["attention_note"] = note
    result["attention"] = attention
    inputs = make_inputs(cfg, lf, lh, lw, device, dtype)

    def forward():
        with torch.inference_mode():
            return model(**inputs)[0]

    if device.type == "meta":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            out = forward()
        assert tuple(out.shape) == (1, int(cfg["out_channels"]), lf, lh, lw), out.shape
        result["output_shape"] = list(out.shape)
        result["gflop_counted_by_torch"] = counter.get_total_flops() / 1e9
    else:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = timed(forward, device, args.repeats, args.warmup)
        median = statistics.median(times)
        tflops = flops["total"] / median / 1e12
        result.update(
            forward_ms=median * 1e3,
            forward_ms_all=[t * 1e3 for t in times],
            step_ms_with_cfg=2 * median * 1e3,
            tflops=tflops,
        )
        out = forward()
        assert torch.isfinite(out.float()).all(), "the forward produced non-finite values"
        if device.type == "cuda":
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / memory.GiB
            result["device_name"] = torch.cuda.get_device_name(device)
        est_weights = params * (2 if dtype != torch.float32 else 4)
        result["estimate_transformer_stage_gib"] = (
            est_weights + memory.transformer_activation_bytes(cfg, flops["tokens"])
        ) / memory.GiB
        baseline = matmul_baseline(device, dtype)
        result["matmul_tflops"] = baseline
        result["ratio_vs_matmul"] = tflops / baseline

    if args.json:
        print(json.dumps(result))
    else:
        count = f"{params / 1e9:.3f}B" if params >= 1e8 else f"{params / 1e3:.1f}k"
        print(
            f"{result['model']}: {count} parameters, {result['size']} -> latents "
            f"{lf}x{lh}x{lw}, {flops['tokens']} tokens, {result['dtype']} on {device} "
            f"(attention: {attention}); built in {result['build_seconds']:.1f} s"
        )
        split = result["gflop_split"]
        print(
            f"FLOPs per forward: {_si(flops['total'], 'FLOP')} (linear {_si(split['linear'] * 1e9, 'FLOP')}, "
            f"attention {_si(split['attention'] * 1e9, 'FLOP')}, embeddings {_si(split['embeddings'] * 1e9, 'FLOP')})"
        )
        if device.type == "meta":
            print(
                f"dry run on the meta device: output {tuple(result['output_shape'])}, no timing; "
                f"torch's FlopCounterMode counts {_si(result['gflop_counted_by_torch'] * 1e9, 'FLOP')}"
            )
        else:
            print(
                f"one forward: median {result['forward_ms']:.1f} ms of {args.repeats} "
                f"({', '.join(f'{t:.1f}' for t in result['forward_ms_all'])}); a guided step (2 forwards): "
                f"{result['step_ms_with_cfg']:.1f} ms"
            )
            line = f"achieved {_si(result['tflops'] * 1e12, 'FLOP/s')}"
            if "peak_memory_gib" in result:
                line += (
                    f"; peak memory {result['peak_memory_gib']:.2f} GiB on {result['device_name']} "
                    f"(estimate's transformer stage {result['estimate_transformer_stage_gib']:.2f} GiB)"
                )
            print(line)
            print(
                f"ratio vs a dense matmul in this process ({_si(result['matmul_tflops'] * 1e12, 'FLOP/s')}): "
                f"{result['ratio_vs_matmul']:.3f}"
            )
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
