"""Benchmark: headless play (sustained FPS, chunk latency) against ``worldstudio preview`` of the
same path, in the same run.

    python bench/bench_play.py                       # geometry and oracle on the CPU,
                                                     # at 416x240 and 832x480
    python bench/bench_play.py --backends geometry --sizes 416x240 --repeats 3
    python bench/bench_play.py --device cuda         # wan-vace 1.3B (random weights), draft
                                                     # quality or 4 steps, 832x480, on a GPU
    python bench/bench_play.py --device cpu --tiny   # the same path with the tiny test pipeline

CPU: the demo project at each size plays an action string (12 steps of 8 frames: 97 frames, 11
chunks of 9) through :func:`worldstudio.core.play.play_job` exactly as ``worldstudio play`` does
(the run, the depth video and PNGs, a world PLY every 8 frames; ``--no-outputs``: the run only),
monitors and all. *Sustained FPS* is the frames of the chunks after the first over the wall time
they took; *chunk latency* is from a chunk's cameras being decided to its frames being ready. The
baseline is the geometry preview (:func:`worldstudio.core.generation.preview.render_preview_job`,
what ``worldstudio preview`` runs) of the same camera path at the same size: its frames per
second. Ratio = play's sustained FPS / the preview's FPS. Each figure is the best of
``--repeats`` (the machine may be shared). Beside the wall-clock figures, the CPU time a frame
costs (this process's threads and its ffmpeg children, whole session) for both: on a machine
that other work keeps busy, that is the figure that does not move with the load. torch runs on
one thread unless ``--threads`` says otherwise: its worker threads spin while they wait
(docs/STACK.md), and on a shared 2-core machine one thread rendered the preview 4x faster than
two. The goal printed: geometry at 416x240 >= 15 FPS.

CUDA (``--device cuda``): a ``WanVACEPipeline`` with the Wan2.1-VACE-1.3B transformer, the Wan 2.1
VAE and the UMT5-XXL text encoder at full size with random weights (built on the GPU, saved once
to a temp folder and loaded by the app's own backend, as a downloaded model would be) plays 3
chunks of 17 frames at 832x480 with the ``draft`` quality preset (its step-distillation LoRA,
as ``worldstudio play`` plays wan-vace) when that LoRA is on this machine, else with the ``full``
one at 4 steps without guidance (a step-distilled model's sampling; a LoRA's unfused low-rank
products are not in it), lifting with the render's depth (the model lifter's depth and SAM 2 models, absent on
the GPU machine, are not timed). It prints the first chunk's latency (and the time from the session's start, loading
included), each chunk's latency and the sustained FPS, with monitors (two model calls a chunk) and
without (``--no-monitors``). ``--tiny`` uses the tiny test pipeline instead (tests/tiny_wan.py),
to try the path on a CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ACTIONS = "(FN)(FN)(fLN)(SR)(SR)(FN)(FN)(BN)(SL)(SL)(FN)(FN)"
GOAL_FPS = 15.0


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def demo(tmp: Path, name: str, w: int, h: int) -> Path:
    from worldstudio.core.oracle.demo_project import create_demo_project

    folder = tmp / f"{name}.wsproj"
    create_demo_project(folder, w, h)
    return folder


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the ffmpeg encoders)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def play_once(project: Path, backend, w: int, h: int, outputs: bool, **more):
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.play import PlayOptions, play_job

    options = PlayOptions(
        actions=more.pop("actions", ACTIONS),
        backend=backend,
        size=(w, h),
        depth=outputs,
        ply_every=8 if outputs else 0,
        seed=0,
        **more,
    )
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = play_job(project, options)(JobContext())
    result.cpu_seconds = cpu_seconds() - c0
    return result, time.perf_counter() - t0


def preview_once(project: Path, w: int, h: int, out: Path) -> tuple[float, int, float]:
    """The geometry preview of the project's path: (seconds, frames, CPU seconds)."""
    from worldstudio.core.generation.preview import render_preview_job
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.media import probe_video

    t0, c0 = time.perf_counter(), cpu_seconds()
    render_preview_job(project, out, w, h)(JobContext())
    seconds = time.perf_counter() - t0
    return seconds, probe_video(out).frames, cpu_seconds() - c0


def set_path_to_actions(project: Path) -> None:
    """The project's camera path becomes ``ACTIONS`` (what ``worldstudio path --actions`` does)."""
    from worldstudio.core.cli import main

    assert main(["path", str(project), "--actions", ACTIONS]) == 0


def bench_cpu(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ws-bench-play-") as d:
        tmp = Path(d)
        for size in args.sizes.split(","):
            w, h = parse_size(size)
            base = demo(tmp, f"preview-{w}x{h}", w, h)
            set_path_to_actions(base)
            for backend in args.backends.split(","):
                project = demo(tmp, f"{backend}-{w}x{h}", w, h)
                best = None
                previews = []
                for i in range(args.repeats):
                    # interleaved: the baseline and the play see the same machine
                    previews.append(preview_once(base, w, h, tmp / f"preview-{i}.mp4"))
                    res, seconds = play_once(project, backend, w, h, not args.no_outputs)
                    if best is None or (res.sustained_fps or 0) > (best[0].sustained_fps or 0):
                        best = (res, seconds)
                res, seconds = best
                p_seconds, p_frames, p_cpu = min(previews)
                preview_fps = p_frames / p_seconds
                rows.append(
                    {
                        "backend": backend,
                        "size": f"{w}x{h}",
                        "frames": res.frames,
                        "chunks": len(res.chunk_latencies),
                        "sustained_fps": res.sustained_fps or 0.0,
                        "latency_mean": statistics.mean(res.chunk_latencies),
                        "latency_max": max(res.chunk_latencies),
                        "first_chunk": res.first_chunk_seconds,
                        "seconds": seconds,
                        "preview_fps": preview_fps,
                        "ratio": (res.sustained_fps or 0.0) / preview_fps,
                        "cpu_ms": 1000.0 * res.cpu_seconds / res.frames,
                        "preview_cpu_ms": 1000.0 * p_cpu / p_frames,
                    }
                )
                print_row(rows[-1], flush=True)
    return rows


def print_row(r: dict, flush: bool = False) -> None:
    print(
        f"{r['backend']:<9} {r['size']:>8}  play {r['sustained_fps']:6.2f} FPS sustained, chunk "
        f"latency mean {r['latency_mean']:.2f} s max {r['latency_max']:.2f} s, first chunk "
        f"{r['first_chunk']:.2f} s ({r['frames']} frames in {r['seconds']:.1f} s)  |  preview "
        f"{r['preview_fps']:6.2f} FPS  |  ratio {r['ratio']:.2f}\n"
        f"{'':<19}CPU a frame (all threads and encoders): play {r['cpu_ms']:.0f} ms, preview "
        f"{r['preview_cpu_ms']:.0f} ms (ratio {r['preview_cpu_ms'] / r['cpu_ms']:.2f})",
        flush=flush,
    )


# ------------------------------------------------------------------------------- CUDA
def build_full_vace(folder: Path, device) -> Path:
    """A full-size Wan2.1-VACE-1.3B pipeline with random weights (bf16), saved in ``folder``."""
    import torch
    from diffusers import AutoencoderKLWan, WanVACEPipeline, WanVACETransformer3DModel
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    from tests.tiny_wan import tiny_scheduler
    from worldstudio.core.generation.memory import UMT5_XXL, WAN21_VACE_1_3B_TRANSFORMER, WAN21_VAE

    def plain(cfg):
        return {k: v for k, v in cfg.items() if not k.startswith("_")}

    torch.manual_seed(0)
    with torch.device(device):
        transformer = WanVACETransformer3DModel(**plain(WAN21_VACE_1_3B_TRANSFORMER))
        vae = AutoencoderKLWan(**{k: v for k, v in plain(WAN21_VAE).items() if "scale" not in k})
        text = UMT5EncoderModel(UMT5Config(**UMT5_XXL, is_encoder_decoder=False, use_cache=False))
    try:
        tokenizer = AutoTokenizer.from_pretrained("google/umt5-xxl")
    except Exception:  # noqa: BLE001 - offline: a byte tokenizer (token ids < the vocabulary)
        from transformers import ByT5Tokenizer

        tokenizer = ByT5Tokenizer()
    pipe = WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text.to(torch.bfloat16).eval(),
        vae=vae.eval(),
        scheduler=tiny_scheduler(),
        transformer=transformer.to(torch.bfloat16).eval(),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    del pipe, transformer, vae, text
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def wan_sampling(backend) -> tuple[dict, str]:
    """The play options of the wan-vace session and what they mean: the draft quality when its
    LoRA is on this machine (nothing is downloaded here), else 4 steps without guidance."""
    from worldstudio.core.models import get_model, model_status

    recipe = backend.draft_recipe()
    if model_status(get_model(recipe.lora)).present:
        return {"quality": "draft"}, f"draft: {recipe.text()}"
    return (
        {"quality": "full", "steps": 4, "guidance": 1.0},
        f"full at 4 steps without guidance ({recipe.lora}, the draft LoRA, is not on this machine)",
    )


def bench_wan(args) -> list[dict]:
    from worldstudio.core.generation.backends.wan_vace import create_backend

    w, h = parse_size(args.size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ws-bench-play-wan-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        if args.tiny:
            from tests.tiny_wan import build_tiny_wan_vace

            folder = build_tiny_wan_vace(tmp / "vace")
            what = "tiny test WanVACEPipeline"
        else:
            folder = build_full_vace(tmp / "vace", args.device)
            what = "Wan2.1-VACE-1.3B + UMT5-XXL + Wan VAE, random weights"
        built = time.perf_counter() - t0
        backend = create_backend(
            model_id=str(folder), profile="gpu", device=args.device, preview=False
        )
        t0 = time.perf_counter()
        backend.load()
        loaded = time.perf_counter() - t0
        print(f"model: {what}; built in {built:.1f} s, loaded in {loaded:.1f} s", flush=True)
        sampling, quality = wan_sampling(backend)
        print(f"quality: {quality}", flush=True)
        try:
            for monitors in (True, False) if not args.no_monitors else (False,):
                project = demo(tmp, f"wan-{monitors}", w, h)
                res, seconds = play_once(
                    project,
                    backend,
                    w,
                    h,
                    False,
                    actions="(FN)(FN)(fLN)(SR)(SR)(FN)",  # 49 frames: 3 chunks of 17
                    **sampling,
                    monitors=monitors,
                    chunk_frames=args.chunk_frames,
                    lifter="render",
                )
                row = {
                    "monitors": monitors,
                    "frames": res.frames,
                    "latencies": res.chunk_latencies,
                    "first_chunk": res.first_chunk_seconds,
                    "sustained_fps": res.sustained_fps or 0.0,
                    "seconds": seconds,
                }
                rows.append(row)
                lat = ", ".join(f"{v:.2f}" for v in res.chunk_latencies)
                print(
                    f"wan-vace {w}x{h} {args.device}, {sampling['quality']}, chunks of "
                    f"{res.frames // len(res.chunk_latencies)} frames, monitors "
                    f"{'on' if monitors else 'off'}: first chunk latency "
                    f"{res.chunk_latencies[0]:.2f} s ({res.first_chunk_seconds:.2f} s from the "
                    f"session's start), chunk latencies [{lat}] s, sustained "
                    f"{row['sustained_fps']:.2f} FPS ({res.frames} frames in {seconds:.1f} s)",
                    flush=True,
                )
        finally:
            backend.close()
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu", help="cpu: geometry and oracle; cuda: wan-vace")
    ap.add_argument("--backends", default="geometry,oracle")
    ap.add_argument("--sizes", default="416x240,832x480")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-outputs", action="store_true", help="the run only (no depth, no PLYs)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1; 0: torch's default, one a core)",
    )
    ap.add_argument("--tiny", action="store_true", help="wan-vace: the tiny test pipeline")
    ap.add_argument("--size", default="832x480", help="wan-vace: the video size")
    ap.add_argument("--chunk-frames", type=int, default=17, help="wan-vace: frames per chunk")
    ap.add_argument("--no-monitors", action="store_true", help="wan-vace: monitors off only")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads, load "
        f"{load:.1f} at the start",
        flush=True,
    )
    if args.device != "cpu" or args.tiny:
        return bench_wan(args)
    rows = bench_cpu(args)
    goal = [r for r in rows if r["backend"] == "geometry" and r["size"] == "416x240"]
    if goal:
        fps = goal[0]["sustained_fps"]
        verdict = "met" if fps >= GOAL_FPS else "NOT met"
        print(
            f"goal: geometry at 416x240 >= {GOAL_FPS:.0f} FPS sustained: {fps:.2f} FPS, {verdict}"
        )
    return rows


if __name__ == "__main__":
    main()
