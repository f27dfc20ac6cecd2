"""One script that measures what matters on a GPU, with random weights (no download), and writes a
JSON report and a readable table.

    python bench/gpu_check.py [--json REPORT.json] [--budget 380]   # a CUDA GPU, < 8 min on an H100
    python bench/gpu_check.py --cpu --tiny [--json REPORT.json]     # the same code on a CPU (CI)

Sections, in this order (each one records its error instead of stopping the others, and one that
would not fit in what is left of ``--budget`` seconds is skipped, saying so):

1. **denoise**: the Wan2.1-VACE-1.3B-shaped transformer (bench_denoise_step's builder and FLOP
   formula) at 832x480x65 (17 x 60 x 104 latents, 26520 tokens), one forward as a denoising step
   runs it with classifier-free guidance twice: seconds per step (two forwards) and achieved
   TFLOP/s, with MFU against the device's dense bf16 peak (989 TFLOP/s for an H100 SXM; on a CPU
   against a dense matmul timed in the same run) for every attention backend the machine runs
   (core.generation.acceleration; the slow reference "native-math" only on a CPU); then
   each cache over a short schedule (cond and uncond forwards per step in their cache contexts,
   as the pipeline runs them): seconds per step averaged over the schedule against no cache.
   Regional compilation is measured last (section 6), as its first call takes the longest.
2. **preview**: the live preview's cost per step (the x0 estimate and the app's StepReporter with
   a latent-to-RGB map, on the step's latents) against the step's time; goal 3 % or less.
3. **splat**: the z-buffer splatting renderer (core.pointcloud), 2M points into 65 poses at
   832x480 in one batched call, per pose and in all; goal 20 ms a pose or less.
4. **memory**: a whole random-weight VACE 1.3B pipeline (UMT5-XXL text encoder, Wan VAE, 1
   denoising step at 832x480x65 with guidance, the VAE decode) under each memory profile (gpu,
   offload, low-vram) and gpu with fp8 weights, applied by the app's own code: the device memory
   at the peak (the allocator's reserved peak plus the CUDA context) against the VRAM estimate
   (core.generation.memory); more than 15 % off is a bug in the estimate.
5. **train**: one LoRA training step (bench_train_step: the trainer's loss, backward, AdamW) of
   the 1.3B shape at 832x480x65, then of the 14B shape when the estimate says it fits the free
   memory: seconds and peak memory.
6. **compile**: regional compilation of the same transformer (inductor; "eager" with --tiny,
   whose C++ build alone takes a minute on a CPU) with the auto attention: the first call's
   seconds, the compiled step against the eager one, and whether a new size recompiles.

``--cpu --tiny`` runs every section with the tiny test shapes at small sizes on the CPU (under a
minute); the CI test checks the report's structure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bench_denoise_step as denoise  # noqa: E402 - after the path set-up
import bench_renderer as renderer  # noqa: E402
import bench_train_step as train  # noqa: E402

SCHEMA = 1
SECTIONS = ("denoise", "preview", "splat", "memory", "train", "compile")
# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of the device name
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
MEMORY_TOLERANCE = 0.15
PREVIEW_GOAL = 0.03
SPLAT_GOAL_MS = 20.0


def full_sizes() -> SimpleNamespace:
    return SimpleNamespace(
        height=480,
        width=832,
        frames=65,
        repeats=3,
        cache_steps=10,
        splat_points=2_000_000,
        splat_poses=65,
        train_frames=65,
        compile_backend="inductor",
        # rough seconds each section takes on an H100, for the budget
        cost={
            "denoise": 60,
            "preview": 5,
            "splat": 10,
            "memory": 120,
            "train": 60,
            "compile": 150,
        },
    )


def tiny_sizes() -> SimpleNamespace:
    return SimpleNamespace(
        height=48,
        width=64,
        frames=9,
        repeats=2,
        cache_steps=6,
        splat_points=50_000,
        splat_poses=9,
        train_frames=9,
        compile_backend="eager",
        cost={"denoise": 5, "preview": 1, "splat": 2, "memory": 10, "train": 5, "compile": 10},
    )


# --------------------------------------------------------------------------- helpers
class Clock:
    """The run's time budget."""

    def __init__(self, budget: float):
        self.start = time.perf_counter()
        self.budget = budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gib(n: float | None) -> float | None:
    return None if n is None else n / 1024**3


def peak_tflops(device, matmul_tflops: float) -> tuple[float, str]:
    """(peak, what it is) for MFU: the data-sheet bf16 peak of a known GPU, else the dense
    matmul measured in this run."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_TFLOPS.items():
            if key in name:
                return value, f"{name} dense bf16 peak"
    return matmul_tflops, "a dense matmul timed in this run"


def transformer_config(tiny: bool) -> dict:
    return denoise.tiny_config() if tiny else denoise.full_config()


def latent_shape(sizes) -> tuple[int, int, int]:
    return (sizes.frames - 1) // 4 + 1, sizes.height // 8, sizes.width // 8


# --------------------------------------------------------------------------- 1. denoise
def forward_fn(model, inputs):
    import torch

    def forward():
        with torch.inference_mode():
            return model(**inputs)[0]

    return forward


def step_row(name: str, forward_s: float, flops: float, peak: float) -> dict:
    step_s = 2 * forward_s  # classifier-free guidance: two forwards a step
    tflops = flops / forward_s / 1e12
    return {
        "name": name,
        "forward_s": forward_s,
        "step_s": step_s,
        "tflops": tflops,
        "mfu": tflops / peak,
    }


def section_denoise(ctx) -> dict:

    from worldstudio.core.generation import acceleration as acc

    device, dtype, sizes = ctx.device, ctx.dtype, ctx.sizes
    cfg = transformer_config(ctx.tiny)
    lf, lh, lw = latent_shape(sizes)
    flops = denoise.step_flops(cfg, lf, lh, lw)
    model = denoise.build_model(cfg, device, dtype)
    inputs = denoise.make_inputs(cfg, lf, lh, lw, device, dtype)
    forward = forward_fn(model, inputs)
    out: dict = {
        "model": "tiny test shape" if ctx.tiny else "Wan2.1-VACE-1.3B shape",
        "size": f"{sizes.width}x{sizes.height}x{sizes.frames}",
        "tokens": flops["tokens"],
        "tflop_per_forward": flops["total"] / 1e12,
        "peak_tflops": ctx.peak,
        "peak_is": ctx.peak_is,
        "attention": [],
        "caches": [],
    }
    reference = None
    names = acc.available_attention(device)
    if device.type == "cuda":
        names = [n for n in names if n != "native-math"]  # the O(L^2)-memory reference
    best = acc.choose_attention(device)
    for name in names:
        row: dict = {"name": name, "auto": name == best}
        try:
            acc.apply_attention(model, name, device)
            result = forward().float()
            if reference is None:
                reference = result
            row["max_abs_diff_vs_first"] = float((result - reference).abs().max())
            row["exact"] = acc.ATTENTION_BACKENDS[name].exact
            t = statistics.median(denoise.timed(forward, device, sizes.repeats, 1))
            out["attention"].append({**row, **step_row(name, t, flops["total"], ctx.peak)})
        except Exception as exc:  # noqa: BLE001 - a backend that fails is a row that says so
            out["attention"].append({**row, "error": f"{type(exc).__name__}: {exc}"[:300]})
    acc.apply_attention(model, best, device)
    base = next((r for r in out["attention"] if r.get("name") == best and "step_s" in r), None)
    base_step = base["step_s"] if base else None

    # caches over a short schedule, with the auto attention, no compile
    for name in acc.CACHES:
        out["caches"].append(cache_row(model, inputs, name, sizes.cache_steps, flops, ctx))
    none = next((c for c in out["caches"] if c["cache"] == "none" and "step_s" in c), None)
    for c in out["caches"]:
        if none and "step_s" in c:
            c["speedup_vs_none"] = none["step_s"] / c["step_s"]

    del model, inputs, forward, reference
    free_memory(device)
    ctx.step_s = base_step
    return out


def cache_row(model, inputs, name: str, steps: int, flops: dict, ctx) -> dict:
    """Seconds per step of a ``steps``-step schedule with cache ``name`` (cond and uncond
    forwards per step in their cache contexts)."""
    import torch

    from worldstudio.core.generation import acceleration as acc

    device = ctx.device
    row: dict = {"cache": name, "steps": steps}
    timesteps = torch.linspace(999.0, 1.0, steps)
    current = {"t": timesteps[0]}
    try:
        acc.apply_cache(model, name, steps, timestep_fn=lambda: current["t"])
    except acc.AccelerationError as exc:
        row["refused"] = str(exc)
        return row
    try:

        def schedule():
            model._reset_stateful_cache()
            x = dict(inputs)
            for t in timesteps:
                current["t"] = t
                x["timestep"] = t.reshape(1).to(device)
                with torch.inference_mode():
                    with model.cache_context("cond"):
                        model(**x)
                    with model.cache_context("uncond"):
                        model(**x)

        schedule()  # warm-up
        sync(device)
        t0 = time.perf_counter()
        schedule()
        sync(device)
        step_s = (time.perf_counter() - t0) / steps
        row.update(
            step_s=step_s,
            effective_tflops=2 * flops["total"] / step_s / 1e12,  # dense FLOPs it stands for
        )
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        acc.apply_cache(model, "none", steps)
    return row


def section_compile(ctx) -> dict:
    """Regional compilation (last: its first call is the longest single thing here)."""
    import torch

    from worldstudio.core.generation import acceleration as acc

    device, sizes = ctx.device, ctx.sizes
    cfg = transformer_config(ctx.tiny)
    lf, lh, lw = latent_shape(sizes)
    flops = denoise.step_flops(cfg, lf, lh, lw)
    model = denoise.build_model(cfg, device, ctx.dtype)
    attention, _note = acc.apply_attention(model, "auto", device)
    inputs = denoise.make_inputs(cfg, lf, lh, lw, device, ctx.dtype)
    base_step = ctx.step_s
    row: dict = {"backend": sizes.compile_backend, "dynamic": True, "attention": attention}
    try:
        acc.compile_transformer(model, sizes.compile_backend)
        forward = forward_fn(model, inputs)
        sync(device)
        t0 = time.perf_counter()
        forward()
        sync(device)
        row["first_call_s"] = time.perf_counter() - t0
        t = statistics.median(denoise.timed(forward, device, sizes.repeats, 1))
        row.update(step_row("compiled", t, flops["total"], ctx.peak))
        if base_step:
            row["speedup_vs_eager"] = base_step / row["step_s"]
        # another size (fewer frames, one latent row less): served by the dynamic graphs
        graphs = acc.compiled_graphs()
        lf, lh, lw = latent_shape(sizes)
        other = denoise.make_inputs(cfg, max(2, lf - 4), lh - 2, lw, device, ctx.dtype)
        sync(device)
        t0 = time.perf_counter()
        forward_fn(model, other)()
        sync(device)
        row["other_size_s"] = time.perf_counter() - t0
        row["recompiled_for_other_size"] = acc.compiled_graphs() != graphs
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    torch._dynamo.reset()
    del model, inputs
    return row


# --------------------------------------------------------------------------- 2. preview
def section_preview(ctx) -> dict:
    import numpy as np
    import torch

    from worldstudio.core.generation.backends.wan_common import StepReporter
    from worldstudio.core.generation.live_preview import LatentRGBMap, flow_x0
    from worldstudio.core.jobs import JobContext

    device, sizes = ctx.device, ctx.sizes
    lf, lh, lw = latent_shape(sizes)
    gen = torch.Generator(device="cpu").manual_seed(3)
    latents = torch.randn(1, 16, lf, lh, lw, generator=gen).to(device)
    velocity = torch.randn(1, 16, lf, lh, lw, generator=gen).to(device, ctx.dtype)
    rng = np.random.default_rng(0)
    rgb_map = LatentRGBMap(
        rng.normal(0, 0.1, (16, 3)).astype(np.float32), np.full(3, 0.5, np.float32)
    )
    tap = SimpleNamespace(x0=None)
    images = []
    reporter = StepReporter(JobContext(lambda r: images.append(r)), 1000, "check", tap, rgb_map)

    def one_step_preview():
        tap.x0 = flow_x0(latents.float(), velocity.float(), 0.5)  # what the scheduler tap does
        reporter(SimpleNamespace(_interrupt=False), 0, None, {})

    times = denoise.timed(one_step_preview, device, 5, 2)
    preview_s = statistics.median(times)
    step_s = ctx.step_s
    out = {"preview_ms": preview_s * 1e3, "step_ms": None, "fraction": None, "goal": PREVIEW_GOAL}
    shown = [r for r in images if r.kind == "preview"]
    out["image_shape"] = list(np.asarray(shown[-1].payload).shape) if shown else None
    if step_s:
        out.update(step_ms=step_s * 1e3, fraction=preview_s / step_s)
        out["ok"] = out["fraction"] <= PREVIEW_GOAL
    return out


# --------------------------------------------------------------------------- 3. splat
def section_splat(ctx) -> dict:
    import torch

    from worldstudio.core.pointcloud.render import render_points

    device, sizes = ctx.device, ctx.sizes
    H, W, B = sizes.height, sizes.width, sizes.splat_poses
    K = renderer.intrinsics(H, W)
    xyz, rgb = renderer.make_cloud(sizes.splat_points, K, H, W)
    poses = renderer.orbit_poses(B)
    xyz_d, rgb_d = torch.from_numpy(xyz).to(device), torch.from_numpy(rgb).to(device)
    render_points(xyz_d, rgb_d, poses[:2], K, H, W)  # warm-up
    times = []
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        result = render_points(xyz_d, rgb_d, poses, K, H, W)
        sync(device)
        times.append(time.perf_counter() - t0)
    best = min(times)
    del xyz_d, rgb_d
    return {
        "points": sizes.splat_points,
        "poses": B,
        "size": f"{W}x{H}",
        "total_ms": best * 1e3,
        "per_pose_ms": best / B * 1e3,
        "coverage": float(result.mask.float().mean()),
        "goal_ms_per_pose": SPLAT_GOAL_MS,
        "ok": best / B * 1e3 <= SPLAT_GOAL_MS,
    }


# --------------------------------------------------------------------------- 4. memory
def pipeline_configs(ctx) -> dict:
    """The component configs of :func:`random_pipeline`, as the estimate reads them."""
    from worldstudio.core.generation import memory

    if ctx.tiny:
        from tests import tiny_wan

        text_encoder, _ = tiny_wan.tiny_text_encoder_and_tokenizer()
        text_cfg, vae_cfg = text_encoder.config.to_dict(), dict(tiny_wan.tiny_vae().config)
    else:
        text_cfg, vae_cfg = memory.UMT5_XXL, memory.WAN21_VAE
    return {"transformer": transformer_config(ctx.tiny), "text_encoder": text_cfg, "vae": vae_cfg}


def random_pipeline(ctx):
    """A WanVACEPipeline of random weights on the device: the 1.3B transformer, UMT5-XXL and the
    Wan 2.1 VAE (the tiny test models with --tiny), and a byte-level tokenizer (no download)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    device, dtype = ctx.device, ctx.dtype
    configs = pipeline_configs(ctx)
    if ctx.tiny:
        from tests import tiny_wan

        text_encoder, tokenizer = tiny_wan.tiny_text_encoder_and_tokenizer()
        vae = tiny_wan.tiny_vae()
    else:
        tokenizer = ByT5Tokenizer()
        config = UMT5Config(**configs["text_encoder"], is_encoder_decoder=False, use_cache=False)
        with torch.device("meta"):
            text_encoder = UMT5EncoderModel(config)
        text_encoder = text_encoder.to(dtype).to_empty(device=device)
        denoise.init_random_(text_encoder, device)
        vae = AutoencoderKLWan(
            **{k: v for k, v in configs["vae"].items() if not k.startswith("scale_factor")}
        )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=3.0,
        num_train_timesteps=1000,
        solver_order=2,
        predict_x0=True,
    )
    pipe = WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder.to(device, dtype).eval(),
        vae=vae.to(device, torch.float32).eval(),
        scheduler=scheduler,
        transformer=denoise.build_model(configs["transformer"], device, dtype),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline_call(pipe, sizes):
    import PIL.Image

    H, W, F = sizes.height, sizes.width, sizes.frames
    gray = PIL.Image.new("RGB", (W, H), (128, 128, 128))
    white = PIL.Image.new("L", (W, H), 255)
    return pipe(
        prompt="a quiet street, a cat walks by",
        negative_prompt="blurry",
        video=[gray] * F,
        mask=[white] * F,
        height=H,
        width=W,
        num_frames=F,
        num_inference_steps=1,
        guidance_scale=5.0,
        output_type="np",
    )


def section_memory(ctx) -> dict:
    import torch

    from worldstudio.core.generation import memory
    from worldstudio.core.generation.acceleration import apply_layerwise_fp8

    device, sizes = ctx.device, ctx.sizes
    cuda = device.type == "cuda"
    context = 0
    if cuda:
        free, total = torch.cuda.mem_get_info(device)
        context = total - free - torch.cuda.memory_reserved(device)  # CUDA context, other users
    configs = pipeline_configs(ctx)
    rows = []
    for profile, precision in (
        ("gpu", "auto"),
        ("offload", "auto"),
        ("low-vram", "auto"),
        ("gpu", "fp8"),
    ):
        row: dict = {"profile": profile, "precision": precision}
        if ctx.clock.left() < ctx.sizes.cost["memory"] / 4:
            rows.append({**row, "skipped": "time budget"})
            continue
        est = memory.estimate(
            configs, sizes.height, sizes.width, sizes.frames, profile, precision=precision
        )
        row["estimate_gib"] = gib(est.total)
        pipe = None
        try:
            pipe = random_pipeline(ctx)  # a fresh one each time: no hooks left from the last
            if precision == "fp8":
                apply_layerwise_fp8(pipe.transformer, ctx.dtype)
            if profile != "gpu" and cuda:
                pipe.to("cpu")  # the offloading profiles start from main memory
            free_memory(device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            applied = memory.apply_profile(pipe, profile, device)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = pipeline_call(pipe, sizes)
            sync(device)
            row.update(
                seconds=time.perf_counter() - t0,
                notes=applied.notes,
                output_shape=list(out.frames.shape),
            )
            if cuda:
                measured = torch.cuda.max_memory_reserved(device) + context
                row["peak_allocated_gib"] = gib(torch.cuda.max_memory_allocated(device))
                row["peak_gib"] = gib(measured)
                row["error_pct"] = 100.0 * (est.total - measured) / measured
                row["within_15pct"] = abs(row["error_pct"]) <= 100 * MEMORY_TOLERANCE
            else:
                row["peak_gib"] = None
                row["note"] = "not measured on a CPU"
        except Exception as exc:  # noqa: BLE001 - a profile that fails is a row that says so
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        del pipe
        free_memory(device)
        rows.append(row)
    return {
        "size": f"{sizes.width}x{sizes.height}x{sizes.frames}",
        "tolerance": MEMORY_TOLERANCE,
        "context_gib": gib(context),
        "profiles": rows,
    }


# --------------------------------------------------------------------------- 5. train
def section_train(ctx) -> dict:
    import torch

    from worldstudio.core.generation import memory

    device, sizes = ctx.device, ctx.sizes
    shapes = ["tiny"] if ctx.tiny else ["wan1.3b", "wan14b"]
    rows = []
    for shape in shapes + (["wan14b"] if ctx.tiny else []):
        row: dict = {"shape": shape}
        if ctx.tiny and shape == "wan14b":
            row["skipped"] = "the 14B shape needs a CUDA GPU with room for it"
            rows.append(row)
            continue
        if shape == "wan14b":
            need = (
                2
                * memory.transformer_params(
                    {**train.SHAPES[shape], "_class_name": "WanVACETransformer3DModel"}
                )["total"]
            )
            free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
            row["weights_gib"] = gib(need)
            if free < 1.6 * need:  # weights, LoRA, checkpointed activations, optimizer
                row["skipped"] = (
                    f"needs ~{1.6 * need / 1024**3:.0f} GiB free, {free / 1024**3:.0f} GiB here"
                )
                rows.append(row)
                continue
            if ctx.clock.left() < 60:
                row["skipped"] = "time budget"
                rows.append(row)
                continue
        args = SimpleNamespace(
            shape=shape,
            device=str(device),
            width=sizes.width,
            height=sizes.height,
            frames=sizes.train_frames,
            rank=16,
            steps=1,
            warmup=1,
            gradient_checkpointing=True,
        )
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            result = train.run(args)
            row.update(
                size=f"{sizes.width}x{sizes.height}x{sizes.train_frames}",
                train_step_s=result["train_s"],
                forward_s=result["forward_s"],
                peak_gib=None if result["peak_gb"] is None else result["peak_gb"] * 1e9 / 1024**3,
                lora_params_m=result["lora_params_m"],
            )
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
        free_memory(device)
    return {"steps": rows}


# --------------------------------------------------------------------------- the report
def fmt(value, spec: str = ".3g", unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:{spec}}{unit}"
    return f"{value}{unit}"


def table(report: dict) -> str:
    """The report as aligned text rows: what, value, goal / note."""
    rows: list[tuple[str, str, str]] = []
    d = report.get("denoise") or {}
    if "attention" in d:
        rows.append(
            ("denoise step", d["size"] + f", {d['tokens']} tokens", f"MFU vs {d['peak_is']}")
        )
        for r in d["attention"]:
            if "step_s" in r:
                rows.append(
                    (
                        f"  attention {r['name']}" + (" (auto)" if r.get("auto") else ""),
                        f"{r['step_s']:.3g} s/step, {r['tflops']:.3g} TFLOP/s",
                        f"MFU {r['mfu']:.1%}",
                    )
                )
            else:
                rows.append((f"  attention {r['name']}", "failed", r.get("error", "")[:60]))
    c = report.get("compile") or {}
    if c:
        if "step_s" in c:
            rows.append(
                (
                    f"  compiled ({c['backend']})",
                    f"{c['step_s']:.3g} s/step, {c['tflops']:.3g} TFLOP/s",
                    f"MFU {c['mfu']:.1%}, {fmt(c.get('speedup_vs_eager'), '.2f', 'x')} vs eager; "
                    f"first call {c['first_call_s']:.1f} s; "
                    f"new size recompiled: {fmt(c['recompiled_for_other_size'])}",
                )
            )
        else:
            rows.append(("  compiled", "failed", c.get("error", "")[:60]))
    if "attention" in d:
        for c in d.get("caches", []):
            if "step_s" in c:
                speed = c.get("speedup_vs_none")
                rows.append(
                    (
                        f"  cache {c['cache']}",
                        f"{c['step_s']:.3g} s/step over {c['steps']} steps",
                        f"{speed:.2f}x vs none" if speed else "",
                    )
                )
            else:
                why = c.get("refused") or c.get("error", "")
                rows.append((f"  cache {c['cache']}", "not run", why[:70]))
    p = report.get("preview") or {}
    if "preview_ms" in p:
        rows.append(
            (
                "live preview per step",
                f"{p['preview_ms']:.2f} ms"
                + (f" = {p['fraction']:.2%} of a step" if p["fraction"] else ""),
                f"goal <= {p['goal']:.0%}: {fmt(p.get('ok'))}",
            )
        )
    s = report.get("splat") or {}
    if "total_ms" in s:
        rows.append(
            (
                f"splatting {s['points']:,} points x {s['poses']} poses",
                f"{s['total_ms']:.1f} ms, {s['per_pose_ms']:.2f} ms/pose",
                f"goal <= {s['goal_ms_per_pose']:.0f} ms/pose: {fmt(s['ok'])}",
            )
        )
    m = report.get("memory") or {}
    for r in m.get("profiles", []):
        label = f"memory {r['profile']}" + (
            f" {r['precision']}" if r["precision"] != "auto" else ""
        )
        if r.get("skipped") or r.get("error"):
            rows.append((label, "not run", (r.get("skipped") or r.get("error"))[:70]))
        else:
            rows.append(
                (
                    label,
                    f"peak {fmt(r.get('peak_gib'), '.2f', ' GiB')}, estimate {r['estimate_gib']:.2f} GiB",
                    "within 15 %: " + fmt(r.get("within_15pct"))
                    if r.get("peak_gib") is not None
                    else r.get("note", ""),
                )
            )
    t = report.get("train") or {}
    for r in t.get("steps", []):
        if "train_step_s" in r:
            rows.append(
                (
                    f"LoRA train step {r['shape']}",
                    f"{r['train_step_s']:.2f} s, peak {fmt(r['peak_gib'], '.1f', ' GiB')}",
                    r["size"],
                )
            )
        else:
            rows.append(
                (
                    f"LoRA train step {r['shape']}",
                    "not run",
                    (r.get("skipped") or r.get("error", ""))[:70],
                )
            )
    for name in report.get("skipped", []):
        rows.append((name, "skipped", "time budget"))
    for name, error in report.get("errors", {}).items():
        rows.append((name, "FAILED", error.splitlines()[-1][:70]))
    w0 = max(len(r[0]) for r in rows) if rows else 0
    w1 = max(len(r[1]) for r in rows) if rows else 0
    lines = [
        f"gpu_check on {report['device']['name']} ({report['mode']}), "
        f"{report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget"
    ]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU")
    parser.add_argument("--tiny", action="store_true", help="the tiny test shapes, small sizes")
    parser.add_argument("--json", metavar="PATH", help="write the report here")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds the sections may start within (380, which keeps a full run under 8 "
        "minutes on an H100; 300 with --tiny, which takes well under a minute)",
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)

    import torch
    from diffusers.utils import logging as d_logging

    d_logging.set_verbosity_error()
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: use --cpu (with --tiny for the quick check)")
    device = torch.device("cpu" if args.cpu else "cuda")
    tiny = bool(args.tiny)
    sizes = tiny_sizes() if tiny else full_sizes()
    if device.type == "cpu":
        torch.set_num_threads(1 if tiny else torch.get_num_threads())
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    clock = Clock(args.budget if args.budget is not None else (300.0 if tiny else 380.0))
    matmul = denoise.matmul_baseline(device, dtype)
    peak, peak_is = peak_tflops(device, matmul)
    ctx = SimpleNamespace(
        device=device,
        dtype=dtype,
        tiny=tiny,
        sizes=sizes,
        clock=clock,
        peak=peak,
        peak_is=peak_is,
        step_s=None,
    )
    import diffusers

    report: dict = {
        "schema": SCHEMA,
        "mode": ("cpu" if device.type == "cpu" else "gpu") + ("-tiny" if tiny else ""),
        "device": {
            "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "dtype": str(dtype).replace("torch.", ""),
            "matmul_tflops": matmul,
            "memory_gib": gib(torch.cuda.get_device_properties(device).total_memory)
            if device.type == "cuda"
            else None,
        },
        "budget_s": clock.budget,
        "sections": list(args.only or SECTIONS),
        "skipped": [],
        "errors": {},
    }
    runners = {
        "denoise": section_denoise,
        "preview": section_preview,
        "splat": section_splat,
        "memory": section_memory,
        "train": section_train,
        "compile": section_compile,
    }
    for name in report["sections"]:
        report[name] = None
        if clock.left() < sizes.cost[name] * (0.25 if name == "train" else 1.0):
            report["skipped"].append(name)
            continue
        t0 = time.perf_counter()
        try:
            report[name] = runners[name](ctx)
            report[name]["seconds"] = time.perf_counter() - t0
        except Exception:  # noqa: BLE001 - the other sections still run
            report["errors"][name] = traceback.format_exc(limit=3)
        free_memory(device)
    report["elapsed_s"] = clock.elapsed()
    text = table(report)
    print(text)
    report["table"] = text
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, default=_json_default), encoding="utf-8")
        print(f"report: {path}")
    return report


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    return str(value)


if __name__ == "__main__":
    main()
    sys.exit(0)
