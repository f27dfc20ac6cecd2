"""Benchmark: the world engine's overhead over the bare backend calls it makes, same model.

    python bench/bench_engine_overhead.py [--backend wan-vace|geometry] [--size 128x96]
        [--frames 17] [--rounds 2] [--steps 4] [--lifter render|oracle|model] [--repeats 2]
        [--device cpu|cuda] [--threads N]

wan-vace (the default when diffusers' Wan pipelines import): a tiny random-weight
``WanVACEPipeline`` (tests/tiny_wan.py) is built in a temp folder and loaded by the app's backend
from that folder. The demo project (oracle scene) runs ``rounds`` rounds with its one monitor, so
the engine makes 2 calls a round. The engine run is timed end to end (world setup, monitor and
observer renders, lifting, static growth, persistence of every round: npy, PLY, npz, three H.264
mp4s a round, and the final mp4s), with the pipeline loaded beforehand. The baseline, in the same
process, replays the very requests the engine made as bare ``pipe(**kwargs)`` calls (kwargs
prepared outside the timing, no step callback, no preview); the backends' live preview is off in
both. Ratio = engine time / bare time (best of ``--repeats``; target <= 1.10).

``--lifter``: ``render`` (default: the engine's own cost; lifting by the render's depth), ``oracle``
(exact depth from the oracle scene, ray-cast per frame) or ``model`` (tiny Depth Anything + SAM 2
from tests/tiny_models.py: the method's full lifting cost with tiny models).

geometry (when diffusers is missing, or asked for): the backend call is the renders themselves,
so the baseline is the bare ``render_points`` of the scene cloud along the same observer and
monitor poses. The output says which backend was measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Recording:
    """Wraps a backend: keeps every request, times every call; declares what the backend does."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.lifter = inner.lifter
        self.context_frames = inner.context_frames
        self.profiles = inner.profiles
        self.requests = []
        self.seconds = 0.0

    def flow_shift_for(self, height, width):
        return self.inner.flow_shift_for(height, width)

    def conditioning(self, request):
        return self.inner.conditioning(request)

    def estimate(self, height, width, frames, profile=None, *, guidance=5.0):
        return self.inner.estimate(height, width, frames, profile, guidance=guidance)

    def models(self):
        return self.inner.models()

    def generate(self, request, ctx):
        self.requests.append(request)
        t0 = time.perf_counter()
        out = self.inner.generate(request, ctx)
        self.seconds += time.perf_counter() - t0
        return out

    def close(self):
        pass


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def have_wan() -> bool:
    try:
        import diffusers  # noqa: F401
        from diffusers import WanVACEPipeline  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: not available here
        return False
    return True


def run_engine(project: Path, backend, args, lifter: str):
    from worldstudio.core.generation.engine import RunOptions, generate_job
    from worldstudio.core.jobs import JobContext

    w, h = parse_size(args.size)
    job = generate_job(
        project,
        RunOptions(
            backend=backend,
            rounds=args.rounds,
            steps=args.steps,
            size=(w, h),
            frames_per_round=args.frames,
            seed=0,
            lifter=lifter,
        ),
    )
    t0 = time.perf_counter()
    result = job(JobContext())
    return time.perf_counter() - t0, result


def bench_wan(project: Path, tmp: Path, args) -> dict:
    import torch

    from tests import tiny_wan
    from worldstudio.core.generation.backends.wan_vace import create_backend

    folder = tiny_wan.build_tiny_wan_vace(tmp / "tiny-vace")
    inner = create_backend(model_id=str(folder), profile="gpu", device=args.device, preview=False)
    inner.load()
    engine_times, bare_times, call_times = [], [], []
    for _ in range(args.repeats):
        rec = Recording(inner)
        t_engine, result = run_engine(project, rec, args, args.lifter)
        engine_times.append(t_engine)
        call_times.append(rec.seconds)
        prepared = []
        for q in rec.requests:
            plan = inner._plan(q)
            prepared.append(inner.call_arguments(q, plan))
        sync = torch.cuda.synchronize if inner.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for kwargs in prepared:
            inner.pipe(**kwargs)
        sync()
        bare_times.append(time.perf_counter() - t0)
    inner.close()
    return {
        "what": f"wan-vace (tiny random-weight WanVACEPipeline, {inner.device}, {inner.dtype})",
        "calls": len(rec.requests),
        "engine": min(engine_times),
        "backend_calls": min(call_times),
        "bare": min(bare_times),
        "timings": result.timings,
    }


def bench_geometry(project: Path, args) -> dict:
    from worldstudio.core.generation.backends.geometry import GeometryBackend
    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.geometry.path import bake_path
    from worldstudio.core.geometry.transforms import pose_matrix
    from worldstudio.core.pointcloud.render import render_points
    from worldstudio.core.project import ProjectFolder

    w, h = parse_size(args.size)
    folder = ProjectFolder(project)
    p = folder.load()
    cloud = folder.read_cloud(p)
    n = args.rounds * args.frames
    baked = bake_path(p.camera_path, n_frames=n)
    K = np.stack([intrinsics_from_fov(float(f), h, w) for f in baked.fov])
    mon = p.monitors[0]
    mc2w = pose_matrix(mon.pose.position, mon.pose.orientation)
    mK = intrinsics_from_fov(mon.fov, h, w)
    engine_times, bare_times, call_times = [], [], []
    for _ in range(args.repeats):
        rec = Recording(GeometryBackend())
        t_engine, result = run_engine(project, rec, args, "render")
        engine_times.append(t_engine)
        call_times.append(rec.seconds)
        t0 = time.perf_counter()
        for r in range(args.rounds):
            render_points(cloud.xyz, cloud.rgb, mc2w, mK, h, w)  # the monitor's view
            s = slice(r * args.frames, (r + 1) * args.frames)
            render_points(cloud.xyz, cloud.rgb, baked.c2w[s], K[s], h, w)  # the observer's round
        bare_times.append(time.perf_counter() - t0)
    return {
        "what": "geometry (no model: bare render_points of the scene cloud along the same cameras)",
        "calls": 2 * args.rounds,
        "engine": min(engine_times),
        "backend_calls": min(call_times),
        "bare": min(bare_times),
        "timings": result.timings,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", choices=["wan-vace", "geometry"], default=None)
    ap.add_argument("--size", default="128x96", help="WxH, multiples of 16 (default 128x96)")
    ap.add_argument("--frames", type=int, default=17, help="frames per round, 4k+1 (default 17)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lifter", choices=["render", "oracle", "model"], default="render")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from worldstudio.core.oracle.demo_project import create_demo_project

    backend = args.backend or ("wan-vace" if have_wan() else "geometry")
    w, h = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="ws-bench-engine-") as d:
        tmp = Path(d)
        project = tmp / "demo.wsproj"
        create_demo_project(project, w, h)
        if args.lifter == "model":
            from tests import tiny_models

            hub = tiny_models.build_fake_hub_cache(tmp / "hub", tmp / "models")
            os.environ["HF_HUB_CACHE"] = str(hub)
            os.environ["WORLDSTUDIO_CONFIG"] = str(tmp / "config")
        out = (
            bench_wan(project, tmp, args)
            if backend == "wan-vace"
            else bench_geometry(project, args)
        )

    ratio = out["engine"] / out["bare"]
    print(f"backend:  {out['what']}")
    print(
        f"setting:  demo project, {args.rounds} rounds x {args.frames} frames at {w}x{h}, 1 monitor "
        f"({out['calls']} calls), {args.steps} steps, lifter {args.lifter}, best of {args.repeats}"
    )
    print(
        f"engine:   {out['engine']:.3f} s end to end (of which backend calls {out['backend_calls']:.3f} s)"
    )
    print(f"bare:     {out['bare']:.3f} s for the same {out['calls']} calls")
    parts = ", ".join(f"{k} {v:.3f} s" for k, v in sorted(out["timings"].items()))
    print(f"engine parts (last run): {parts}")
    verdict = "OK" if ratio <= 1.10 else "ABOVE TARGET"
    print(f"ratio:    {ratio:.3f} (engine / bare; target <= 1.10: {verdict})")
    print(
        f"          {out['engine'] / out['backend_calls']:.3f} (engine / its own backend calls: the "
        f"engine's share alone), {out['backend_calls'] / out['bare']:.3f} (backend calls / bare: the "
        "backend's wrapping)"
    )


if __name__ == "__main__":
    main()
