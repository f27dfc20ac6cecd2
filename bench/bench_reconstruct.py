"""Benchmark: reconstruction of one photo with a Depth-Anything-V2-Small-sized depth model.

    python bench/bench_reconstruct.py [--device cpu|cuda] [--size 832x480] [--repeats 3]
                                      [--image tests/data/coffee.jpg] [--threads N]

No weights are downloaded: the full Small architecture (ViT-S/14 DINOv2 backbone + DPT head,
~25M parameters) is built from its config with random weights and saved into a temporary hub
cache under the real repo id with the real preprocessor config (518 px), so the run goes through
the app's own code: model lookup by name, loading, hand preprocessing, depth, focal, point cloud,
writing the project folder.

Figures (best of ``--repeats`` after a warm-up, the forward and the pipeline interleaved;
CUDA synchronised):
- baseline: the model forward alone on the preprocessed tensor (896x518 for an 832x480 project);
- pipeline: ``new_project_from_image`` end to end with the model already loaded;
- the stages of the pipeline timed one by one, and the ratio pipeline / forward, which is the
  overhead the app adds around the network.
Model loading (from a warm disk cache) is reported separately.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(fn, repeats: int, sync=None) -> float:
    fn()  # warm-up
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--size", default="832x480", help="project size WxH (default 832x480)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--image", default=str(ROOT / "tests" / "data" / "coffee.jpg"))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))

    work = Path(tempfile.mkdtemp(prefix="bench_reconstruct_"))
    os.environ["HF_HUB_CACHE"] = str(work / "hub")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["WORLDSTUDIO_CONFIG"] = str(work / "config")
    os.environ["WORLDSTUDIO_DEVICE"] = args.device
    try:
        import numpy as np
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        from tests.tiny_models import DA_SMALL, build_depth_anything, install_snapshot
        from worldstudio.core.geometry.camera import intrinsics_from_fov
        from worldstudio.core.jobs import JobContext
        from worldstudio.core.reconstruct.depth import load_depth_estimator
        from worldstudio.core.reconstruct.image_io import prepare_image
        from worldstudio.core.reconstruct.new_project import (
            depth_to_cloud,
            new_project_from_image,
            write_project_folder,
        )

        src = work / "model"
        src.mkdir()
        build_depth_anything(src, full_size=True)
        install_snapshot(work / "hub", DA_SMALL, src)

        sync = torch.cuda.synchronize if args.device == "cuda" else None
        t0 = time.perf_counter()
        est = load_depth_estimator("depth-anything-v2-small")
        load_s = time.perf_counter() - t0
        params = sum(p.numel() for p in est.model.parameters())

        prepared = prepare_image(args.image, (w, h))
        pv = est.pixel_values(prepared.rgb)
        in_h, in_w = pv.shape[-2:]

        forward_s = best_of(lambda: est.forward(pv), args.repeats, sync)
        read_s = best_of(lambda: prepare_image(args.image, (w, h)), args.repeats)
        pre_s = best_of(lambda: est.pixel_values(prepared.rgb), args.repeats, sync)
        predict_s = best_of(lambda: est.predict(prepared.rgb), args.repeats)
        raw = est.forward(pv).predicted_depth

        def upsample():
            import torch.nn.functional as F

            with torch.inference_mode():
                F.interpolate(
                    raw[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
                )[0, 0].cpu().numpy()

        upsample_s = best_of(upsample, args.repeats, sync)
        pred = est.predict(prepared.rgb)
        K = intrinsics_from_fov(60.0, h, w)
        depth = pred.depth()
        post_s = best_of(lambda: pred.depth(), args.repeats)
        cloud_s = best_of(lambda: depth_to_cloud(depth, K, prepared.rgb), args.repeats)
        cloud = depth_to_cloud(depth, K, prepared.rgb)
        from worldstudio.core.project import Project

        counter = iter(range(10**6))

        def write_once():
            write_project_folder(
                work / f"w{next(counter)}", Project(), prepared.rgb, depth, cloud, JobContext()
            )

        write_s = best_of(write_once, args.repeats)

        # Random weights give a noisy depth whose "edges" drop most pixels; a real model's depth
        # is smooth. Time the cloud and the writing on the oracle scene's exact depth too.
        from worldstudio.core.oracle import OracleScene, demo_intrinsics

        frame = OracleScene.demo().render(np.eye(4), demo_intrinsics(h, w), h, w)
        smooth_cloud = depth_to_cloud(frame.depth, K, frame.rgb)
        smooth_cloud_s = best_of(lambda: depth_to_cloud(frame.depth, K, frame.rgb), args.repeats)

        def write_smooth():
            write_project_folder(
                work / f"w{next(counter)}",
                Project(),
                frame.rgb,
                frame.depth,
                smooth_cloud,
                JobContext(),
            )

        smooth_write_s = best_of(write_smooth, args.repeats)

        def pipeline():
            new_project_from_image(args.image, work / f"p{next(counter)}", size=(w, h))

        # the two headline figures are measured interleaved, so that load from other processes
        # on the machine hits both alike
        pipeline()
        fw, pl = [], []
        for _ in range(args.repeats):
            fw.append(best_of(lambda: est.forward(pv), 1, sync))
            t0 = time.perf_counter()
            pipeline()
            pl.append(time.perf_counter() - t0)
        forward_s = min(forward_s, *fw)
        pipeline_s = min(pl)
        stages_s = read_s + pre_s + upsample_s + post_s + cloud_s + write_s

        dev = (
            torch.cuda.get_device_name(0)
            if args.device == "cuda"
            else f"CPU, {torch.get_num_threads()} threads"
        )
        print(f"device            {dev}")
        print(
            f"model             Depth-Anything-V2-Small-sized, random weights, {params / 1e6:.1f}M parameters"
        )
        print(
            f"image             {Path(args.image).name} -> project {w}x{h}, network input {in_w}x{in_h}"
        )
        print(f"model load        {load_s * 1000:8.1f} ms (from the hub cache, once per process)")
        print(f"baseline: forward {forward_s * 1000:8.1f} ms (the network alone)")
        print(
            f"pipeline          {pipeline_s * 1000:8.1f} ms (new_project_from_image, model loaded)"
        )
        print(f"  read + crop     {read_s * 1000:8.1f} ms")
        print(f"  preprocess      {pre_s * 1000:8.1f} ms")
        print(
            f"  predict         {predict_s * 1000:8.1f} ms (preprocess + forward + resize to {w}x{h})"
        )
        print(
            f"  resize output   {upsample_s * 1000:8.1f} ms ({raw.shape[-1]}x{raw.shape[-2]} -> {w}x{h})"
        )
        print(f"  depth convert   {post_s * 1000:8.1f} ms")
        print(
            f"  point cloud     {cloud_s * 1000:8.1f} ms ({len(cloud.xyz)} points, edges removed)"
        )
        print(
            f"  write folder    {write_s * 1000:8.1f} ms (source.png, depth.npy, points.ply, project.json)"
        )
        print(
            f"  with a smooth depth (the oracle scene's exact depth, {len(smooth_cloud.xyz)} points):"
        )
        print(f"  point cloud     {smooth_cloud_s * 1000:8.1f} ms")
        print(f"  write folder    {smooth_write_s * 1000:8.1f} ms")
        full_stages = stages_s - cloud_s - write_s + smooth_cloud_s + smooth_write_s
        print(
            f"ratio pipeline / forward: {pipeline_s / forward_s:.2f}x measured "
            f"(everything but the network: {1000 * stages_s:.0f} ms, "
            f"{(forward_s + stages_s) / forward_s:.2f}x from the stages; with a full-size cloud "
            f"{1000 * full_stages:.0f} ms, {(forward_s + full_stages) / forward_s:.2f}x)"
        )
        assert np.isfinite(depth).all()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
