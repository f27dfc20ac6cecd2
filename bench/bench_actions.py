"""Benchmark: action strings to keyframes, and the bounded trajectory fit of the importers.

    python bench/bench_actions.py

Prints, for 1,000 and 10,000 steps (the cap), the time of each stage (parse, poses, keyframes,
the CameraPath's validation), the time per step and the ratio between the two lengths (about 10
when the work is linear); the poses are timed against the step-by-step ``apply_step`` chain they
replace (baseline, same run). Then the importers' ``trajectory_keyframes`` on noisy poses of 1,000
to 50,000 frames (the nerfstudio import's cap): bounded work, about linear.
"""

from __future__ import annotations

import random
import time

import numpy as np

from worldstudio.core.geometry.actions import (
    actions_to_keyframes,
    actions_to_poses,
    apply_step,
    parse_actions,
)
from worldstudio.core.interop.liveworld import trajectory_keyframes
from worldstudio.core.project import CameraPath

CODES = ["(FN)", "(fLL)", "(RR)", "(SN)", "(BN)", "(rRL)"]


def timed(fn, repeats: int = 3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def stages(n: int) -> dict[str, float]:
    rng = random.Random(0)
    text = "".join(rng.choice(CODES) for _ in range(n))
    t_parse, steps = timed(lambda: parse_actions(text))
    t_poses, _ = timed(lambda: actions_to_poses(steps, np.eye(4)))

    def chain():
        poses = [np.eye(4)]
        for s in steps:
            poses.append(apply_step(poses[-1], s))
        return poses

    t_chain, _ = timed(chain, 1)
    t_kfs, kfs = timed(lambda: actions_to_keyframes(steps, np.eye(4)), 1)
    t_path, _ = timed(lambda: CameraPath(keyframes=kfs), 1)
    return {
        "parse": t_parse,
        "poses": t_poses,
        "poses step by step (baseline)": t_chain,
        "keyframes (all)": t_kfs,
        "CameraPath": t_path,
    }


def main() -> None:
    small, large = stages(1_000), stages(10_000)
    print(f"{'stage':<32}{'1,000 steps':>14}{'10,000 steps':>14}{'per step':>12}{'ratio':>8}")
    for key in small:
        a, b = small[key], large[key]
        print(
            f"{key:<32}{a * 1e3:>11.1f} ms{b * 1e3:>11.1f} ms{b / 1e4 * 1e6:>9.1f} us{b / a:>8.1f}"
        )
    base, new = large["poses step by step (baseline)"], large["poses"]
    print(f"poses: vectorised vs step by step at 10,000 steps: {base / new:.0f}x faster")

    print()
    rng = np.random.default_rng(0)
    prev = None
    for n in (1_000, 5_000, 50_000):
        c2w = np.repeat(np.eye(4)[None], n, axis=0)
        c2w[:, :3, 3] = rng.normal(size=(n, 3))
        t, (kfs, how) = timed(lambda c2w=c2w, n=n: trajectory_keyframes(c2w, np.full(n, 50.0)), 1)
        ratio = f"  x{t / prev[1]:.1f} for x{n / prev[0]:.0f} frames" if prev else ""
        print(f"trajectory_keyframes, {n:>6} noisy frames: {t:6.2f} s ({how}){ratio}")
        prev = (n, t)


if __name__ == "__main__":
    main()
