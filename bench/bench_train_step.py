"""Benchmark: one LoRA training step of the Wan VACE transformer (the trainer's own loss code),
against an inference forward pass of the same transformer at the same shape, in the same run.

    python bench/bench_train_step.py                   # CPU, the tiny test model (32x32, 9 frames)
    python bench/bench_train_step.py --full            # a lent GPU: Wan2.1-VACE-1.3B-shaped random
                                                       # weights at 832x480, 81 frames, bf16
    python bench/bench_train_step.py --full --shape tiny --device cpu   # the --full code path at
                                                       # the tiny shape (a quick check anywhere)

Options: ``--size WxH``, ``--frames F`` (4k+1), ``--rank R``, ``--steps N`` (timed), ``--warmup
N`` (untimed), ``--no-gradient-checkpointing``, ``--threads N`` (CPU; default 1 for the tiny
shape, whose ops are too small to gain from threads), ``--device``.

A training step is what ``worldstudio.core.training.trainer`` does per micro-batch: flow-matching inputs
with shifted sigmas, the transformer forward under bf16 autocast (CUDA) or in float32 (CPU) with
VACE's control input and 512 padded text tokens, the MSE against ``noise - x0``, backward through
the (checkpointed) blocks into the LoRA, gradient clipping and an AdamW step. The baseline is a
``torch.no_grad`` forward (one denoising step of generation). Printed: median seconds per step,
steps per second, the ratio to the baseline and, on CUDA, the peak memory of a training step and
of the weights alone. Weights are random (no download): the timing and memory of the architecture,
not of any checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the other bench scripts

# Wan2.1-VACE-1.3B's transformer config (the diffusers repo's transformer/config.json).
WAN_VACE_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
    vace_layers=list(range(0, 30, 2)),
    vace_in_channels=96,
)
# The test suite's tiny VACE transformer (tests/tiny_wan.py).
TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=3,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
    vace_layers=[0, 2],
    vace_in_channels=96,
)
# Wan2.1-VACE-14B's (core.generation.memory's built-in shape): 40 layers of 5120, 8 VACE blocks.
WAN_VACE_14B = {
    **WAN_VACE_1_3B,
    "num_attention_heads": 40,
    "ffn_dim": 13824,
    "num_layers": 40,
    "vace_layers": list(range(0, 40, 5)),
}
SHAPES = {"wan1.3b": WAN_VACE_1_3B, "wan14b": WAN_VACE_14B, "tiny": TINY}
TEXT_TOKENS = 512
VAE_SPATIAL, VAE_TEMPORAL = 8, 4


def build(shape: str, device, dtype):
    """Random weights on ``device`` (bench_denoise_step's builder: the model is made on the meta
    device and allocated once in ``dtype``, so a 14B shape never passes through float32); modules
    diffusers keeps in float32 stay float32."""
    import torch
    from bench_denoise_step import build_model

    return build_model(SHAPES[shape], torch.device(device), dtype, meta=str(device) == "meta")


def inputs(shape: str, width: int, height: int, frames: int, device):
    import torch

    cfg = SHAPES[shape]
    f, h, w = (frames - 1) // VAE_TEMPORAL + 1, height // VAE_SPATIAL, width // VAE_SPATIAL
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, cfg["in_channels"], f, h, w, generator=g).to(device)
    noise = torch.randn(x0.shape, generator=g).to(device)
    text = torch.zeros(1, TEXT_TOKENS, cfg["text_dim"])
    text[:, :40] = torch.randn(1, 40, cfg["text_dim"], generator=g)  # a caption, zero padding after
    control = torch.randn(cfg["vace_in_channels"], f, h, w, generator=g).to(device)
    return x0, noise, text.to(device), control


def run(args) -> dict:
    import torch

    from worldstudio.core.training.model import add_lora, lora_parameters
    from worldstudio.core.training.schedule import sample_sigmas
    from worldstudio.core.training.trainer import velocity_loss

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    model = build(args.shape, device, dtype)
    sync()
    build_s = time.perf_counter() - t0
    weights_gb = torch.cuda.memory_allocated() / 1e9 if cuda else None
    add_lora(
        model,
        rank=args.rank,
        alpha=float(args.rank),
        dropout=0.0,
        targets=("to_q", "to_k", "to_v", "to_out.0"),
    )
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = lora_parameters(model)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
    x0, noise, text, control = inputs(args.shape, args.width, args.height, args.frames, device)
    gen = torch.Generator().manual_seed(0)

    def train_step():
        model.train()
        sigma = sample_sigmas(1, gen, shift=3.0).to(device)
        loss = velocity_loss(model, x0, noise, sigma, text, control, dtype=dtype, autocast=autocast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def forward_step():
        model.eval()
        with torch.no_grad():
            velocity_loss(
                model,
                x0,
                noise,
                torch.tensor([0.5], device=device),
                text,
                control,
                dtype=dtype,
                autocast=autocast,
            )

    def timed(fn, n):
        times = []
        for _ in range(n):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    for _ in range(args.warmup):
        train_step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train_s = timed(train_step, args.steps)
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
    for _ in range(min(args.warmup, 2)):
        forward_step()
    forward_s = timed(forward_step, args.steps)
    f = (args.frames - 1) // VAE_TEMPORAL + 1
    tokens = f * (args.height // 16) * (args.width // 16)
    return {
        "shape": args.shape,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "size": f"{args.width}x{args.height}",
        "frames": args.frames,
        "tokens": tokens,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "lora_params_m": sum(p.numel() for p in params) / 1e6,
        "build_s": build_s,
        "train_s": train_s,
        "forward_s": forward_s,
        "peak_gb": peak_gb,
        "weights_gb": weights_gb,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--full", action="store_true", help="Wan2.1-VACE-1.3B shape at 832x480x81 on CUDA"
    )
    p.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        help="transformer shape (default: tiny, or wan1.3b with --full)",
    )
    p.add_argument("--device", help="cpu or cuda (default: cuda with --full, else cpu)")
    p.add_argument("--size", help="WxH (default 32x32, or 832x480 with --full)")
    p.add_argument("--frames", type=int, help="frames, 4k+1 (default 9, or 81 with --full)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, help="timed steps (default 20, or 5 with --full)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false"
    )
    p.add_argument(
        "--threads", type=int, help="torch CPU threads (default: 1 for the tiny shape on the CPU)"
    )
    args = p.parse_args(argv)
    args.shape = args.shape or ("wan1.3b" if args.full else "tiny")
    args.device = args.device or ("cuda" if args.full else "cpu")
    big = args.shape != "tiny"
    args.width, args.height = (
        int(v) for v in (args.size or ("832x480" if big else "32x32")).split("x")
    )
    args.frames = args.frames or (81 if big else 9)
    args.steps = args.steps or (5 if args.full else 20)
    if args.width % 16 or args.height % 16 or (args.frames - 1) % 4:
        p.error("--size must be multiples of 16 and --frames 4k+1")
    import torch

    if args.threads is None and args.device == "cpu" and args.shape == "tiny":
        args.threads = 1  # the tiny model is all per-op overhead: extra threads only contend
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--full needs a CUDA GPU (use --shape tiny --device cpu to check the code path)")
    r = run(args)
    print(
        f"LoRA training step, {r['shape']} VACE transformer ({r['params_m']:.1f}M params, "
        f"LoRA rank {args.rank}: {r['lora_params_m']:.2f}M) on {r['device']} ({r['dtype']}), "
        f"{r['size']} x {r['frames']} frames = {r['tokens']} tokens, gradient checkpointing "
        f"{'on' if args.gradient_checkpointing else 'off'}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"  train step:        {r['train_s'] * 1e3:10.1f} ms  ({1 / r['train_s']:.2f} steps/s, median of {args.steps})"
    )
    print(f"  baseline forward:  {r['forward_s'] * 1e3:10.1f} ms  (no_grad, one denoising step)")
    print(f"  ratio train/forward: {r['train_s'] / r['forward_s']:.2f}x")
    if r["peak_gb"] is not None:
        print(
            f"  peak memory of a step: {r['peak_gb']:.2f} GB (weights alone {r['weights_gb']:.2f} GB)"
        )
    print(f"  (built in {r['build_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
