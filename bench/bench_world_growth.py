"""Benchmark: the static world's cost per round stays flat while the camera revisits (issue 12).

    python bench/bench_world_growth.py [--size 160x96] [--frames 17] [--rounds 10]
        [--repeats 3] [--threads N] [--device cpu|cuda]

The demo project (oracle scene) runs ``rounds`` rounds with the oracle backend along a closed
orbit inside the room, one loop every 1.8 rounds (so from the third round on the camera only
revisits), monitors off (the static world is what is measured). In the same run, round 2 (the
baseline) is compared with the last round:

- the engine's own time in the round, from round.json: render + lift (with the static world's
  growth) + persist; the backend's time (the oracle's ray casting, the same work every round)
  is printed apart;
- a controlled measure of the render cost: the static world as round 2 left it and as the last
  round left it, each rendered along the last round's poses (best of ``repeats``);
- the static point counts, and the size of the static world on disk against its largest file.

Ratio = last round / round 2 (target: about 1, i.e. flat).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FPS = 16


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def orbit_project(root: Path, w: int, h: int, rounds: int, frames: int) -> None:
    from worldstudio.core.geometry.presets import orbit
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.core.project import CameraPath, PathSettings, ProjectFolder

    create_demo_project(root, w, h)
    folder = ProjectFolder(root)
    p = folder.load()
    loops = int(np.ceil(rounds / 1.8)) + 1
    p.camera_path = CameraPath(
        keyframes=orbit(
            (0.0, 0.5, 3.5), 2.5, 0.5, 0.0, 360.0 * loops, 8, loops * 1.8 * frames / FPS
        ),
        settings=PathSettings(fps=FPS),
    )
    folder.save(p)


def best_render(static, c2w, K, h: int, w: int, repeats: int, device) -> float:
    from worldstudio.core.pointcloud.render import render_points

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        render_points(static.xyz, static.rgb, c2w, K, h, w, device=device)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="160x96", help="WxH, multiples of 16 (default 160x96)")
    ap.add_argument("--frames", type=int, default=17, help="frames per round, 4k+1 (default 17)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default=None, help="where the controlled renders run (default cpu)")
    args = ap.parse_args()
    if args.rounds < 3:
        ap.error("--rounds must be at least 3 (round 2 is the baseline)")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from worldstudio.core.generation.engine import RunOptions, generate_job
    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.geometry.path import bake_path
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.project import ProjectFolder
    from worldstudio.core.project.runs import RunFolder

    w, h = parse_size(args.size)
    F, R = args.frames, args.rounds
    with tempfile.TemporaryDirectory(prefix="ws-bench-world-") as d:
        root = Path(d) / "demo.wsproj"
        orbit_project(root, w, h, R, F)
        t0 = time.perf_counter()
        result = generate_job(
            root,
            RunOptions(backend="oracle", monitors=False, frames_per_round=F, size=(w, h), rounds=R),
        )(JobContext())
        total = time.perf_counter() - t0
        run = RunFolder(result.run_dir)
        infos = [run.read_round(r) for r in range(R)]
        files = [run.static_base_ply] + [run.static_added_ply(r) for r in range(R)]
        sizes = [os.path.getsize(f) for f in files]
        base_points = json.loads(run.static_base_json.read_text())["points"]
        second, last = run.read_static(1), run.read_static(R - 1)
        baked = bake_path(ProjectFolder(root).load().camera_path, n_frames=R * F)
        idx = np.arange((R - 1) * F, R * F)
        K = np.stack([intrinsics_from_fov(float(baked.fov[k]), h, w) for k in idx])
        render_second = best_render(second, baked.c2w[idx], K, h, w, args.repeats, args.device)
        render_last = best_render(last, baked.c2w[idx], K, h, w, args.repeats, args.device)

    def own(info) -> float:
        t = info["timings"]
        return t["render"] + t["lift"] + t["persist"]

    print(
        f"setting:  demo project (oracle backend), {R} rounds x {F} frames at {w}x{h}, closed orbit "
        f"(a loop every 1.8 rounds), monitors off; whole run {total:.1f} s"
    )
    print("round  static points  added   engine s (render+lift+persist)  backend s")
    for r, info in enumerate(infos):
        print(
            f"{r + 1:5d}  {info['static_points']:13d}  {info['static_points_added']:6d}   "
            f"{own(info):10.3f}                    {info['timings']['backend']:8.3f}"
        )
    print(f"base:     {base_points} points before round 1")
    print(
        f"disk:     static world {sum(sizes)} bytes in {len(files)} files, largest {max(sizes)}: "
        f"{sum(sizes) / max(sizes):.2f}x (bar < 2.5x)"
    )
    ratio_points = infos[-1]["static_points"] / infos[1]["static_points"]
    ratio_engine = own(infos[-1]) / own(infos[1])
    ratio_render = render_last / render_second
    print(f"points:   round {R} / round 2 = {ratio_points:.3f}")
    print(
        f"engine:   round {R} / round 2 = {ratio_engine:.3f} ({own(infos[-1]):.3f} s / {own(infos[1]):.3f} s)"
    )
    print(
        f"render:   world after round {R} / after round 2, along round {R}'s {F} poses, best of "
        f"{args.repeats} = {ratio_render:.3f} ({render_last * 1e3:.1f} ms / {render_second * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
