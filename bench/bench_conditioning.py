"""Benchmark: the cost of building an observer round's conditioning (pinhole filling, the mask,
its cleaning) against the render it is built from, same frames.

    python bench/bench_conditioning.py [--size 832x480] [--frames 65] [--repeats 2]
        [--threads N]

The demo project (oracle scene) is made at the size given; the observer dollies 25 % of the
scene's median depth in over ``frames`` frames (the worst case for pinholes), with the ball's
points drawn at their t = 0 place. Timed, best of ``--repeats``: the baseline ``render_world``
of the static cloud and the ball into the F poses (what the engine did before), then
``layers_from_render`` + ``observer_mask`` on that render. Ratio = conditioning / render. Also
printed: the isolated-spot fractions of the old mask (every uncovered pixel) and the new one.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="832x480")
    ap.add_argument("--frames", type=int, default=65)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from worldstudio.core.generation.conditioning import (
        isolated_fraction,
        layers_from_render,
        observer_mask,
    )
    from worldstudio.core.generation.world import initial_world, render_world
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.core.project import ProjectFolder
    from worldstudio.core.project.model import parse_size

    W, H = parse_size(args.size, multiple=16)
    F = args.frames
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        root = Path(tmp) / "demo.wsproj"
        create_demo_project(root, W, H)
        folder = ProjectFolder(root)
        p = folder.load()
        static, states = initial_world(folder, p)
    K = np.asarray(p.intrinsics.K)
    depth = float(np.median(static.xyz[:, 2]))
    c2w = np.repeat(np.eye(4)[None], F, axis=0)
    c2w[:, 2, 3] = np.linspace(0.0, 0.25 * depth, F)
    Ks = np.repeat(K[None], F, axis=0)
    ids = list(states)
    per_frame = [dict(states) for _ in range(F)]

    render_s, cond_s = [], []
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        render = render_world(static, per_frame, c2w, Ks, H, W, ids)
        render_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        layers = layers_from_render(render)
        built = observer_mask(layers)
        cond_s.append(time.perf_counter() - t0)
    r, c = min(render_s), min(cond_s)
    print(
        f"{F} frames at {W}x{H}, {len(static):,} static points, torch threads {torch.get_num_threads()}"
    )
    print(f"render (baseline)      {r:7.3f} s  ({1000 * r / F:.1f} ms a frame)")
    print(f"conditioning           {c:7.3f} s  ({1000 * c / F:.1f} ms a frame)")
    print(f"ratio conditioning / render: {c / r:.2f}")
    print(
        f"isolated spots over the dolly-in: old mask {isolated_fraction(~render.covered):.1%}, "
        f"new mask {isolated_fraction(built.mask):.2%}; new mask generates {built.mask.mean():.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
