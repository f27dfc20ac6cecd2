"""Benchmark: the torch z-buffer splatting renderer against a plain numpy z-buffer.

    python bench/bench_renderer.py [--points 2000000] [--poses 65] [--width 832] [--height 480]
                                   [--device cpu|cuda] [--baseline-poses 6] [--repeats 3]
                                   [--threads N] [--background-load N] [--no-policy]

A random cloud fills the view of a 60-degree camera (about 5 points a pixel at the default size,
depths 2-10) and 65 poses orbit its start on a small circle, like one generation round. The torch
renderer draws all poses in one batched call (best of ``--repeats``, after a warm-up; CUDA is
synchronised around the timing). The numpy baseline, in the same run, does per pose: project,
stable argsort by depth, keep the first point of each pixel with np.unique; it is timed on the
first ``--baseline-poses`` poses and its per-frame time scaled to all poses (the output says so).
Both compute the projection with the same float32 operations, so their depth and winning-point
images must be identical: the script asserts it on the baseline poses.

The script runs under the app's CPU thread policy (worldstudio.core.runtime.threads, role "cli";
``--no-policy``: torch's defaults, as before the policy). ``--background-load N`` then times the
renderer again while N busy processes (pure Python loops, one core each) compete for the CPU,
and prints the quiet and the loaded time (medians of ``--repeats``) and their ratio; the policy's
goal is a ratio of 2 or less.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NEAR = 1e-4


def intrinsics(height: int, width: int, fov_deg: float = 60.0) -> np.ndarray:
    f = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def make_cloud(n: int, K: np.ndarray, height: int, width: int, seed: int = 0):
    """Points seen by the identity camera (a margin of 10% around the image), depths 2 to 10."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-0.1 * width, 1.1 * width, n)
    v = rng.uniform(-0.1 * height, 1.1 * height, n)
    z = rng.uniform(2.0, 10.0, n)
    xyz = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], 1)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return xyz.astype(np.float32), rgb


def orbit_poses(count: int, radius: float = 0.3, target=(0.0, 0.0, 6.0)) -> np.ndarray:
    """Camera-to-world poses on a horizontal circle through the origin, looking at ``target``
    (OpenCV axes: x right, y down, z forward; world up is -y)."""
    poses = np.zeros((count, 4, 4))
    target = np.asarray(target, float)
    for i in range(count):
        a = 2.0 * math.pi * i / count
        eye = np.array([radius * math.sin(a), 0.0, radius * (1.0 - math.cos(a))])
        fwd = target - eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, -1.0, 0.0])  # forward x up
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        poses[i, :3, 0], poses[i, :3, 1], poses[i, :3, 2] = right, down, fwd
        poses[i, :3, 3] = eye
        poses[i, 3, 3] = 1.0
    return poses


def projection(c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """float32 K @ inverse(c2w)[:3], as the renderer computes it."""
    return (K @ np.linalg.inv(c2w)[:3]).astype(np.float32)


def numpy_zbuffer(xyz_t: np.ndarray, P: np.ndarray, height: int, width: int):
    """The baseline: project, sort by depth (stable), keep each pixel's first point.

    Returns (depth (H, W) float32 with 0 where empty, index (H, W) int64 with -1 where empty)."""
    x, y, z3 = xyz_t
    rows = [((P[r, 0] * x + P[r, 1] * y) + P[r, 2] * z3) + P[r, 3] for r in range(3)]
    z = rows[2]
    u = rows[0] / z
    v = rows[1] / z
    ok = (z > NEAR) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    idx = np.flatnonzero(ok)
    pix = v[idx].astype(np.int64) * width + u[idx].astype(np.int64)
    zz = z[idx]
    order = np.argsort(zz, kind="stable")
    _, first = np.unique(pix[order], return_index=True)
    win = order[first]
    depth = np.zeros(height * width, np.float32)
    index = np.full(height * width, -1, np.int64)
    depth[pix[win]] = zz[win]
    index[pix[win]] = idx[win]
    return depth.reshape(height, width), index.reshape(height, width)


@contextmanager
def background_load(count: int):
    """``count`` busy processes (a pure Python loop each) for the duration of the block."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]
    try:
        time.sleep(0.5)  # let them get going
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--poses", type=int, default=65)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--baseline-poses", type=int, default=6, help="poses the numpy baseline runs")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of the torch renderer")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: the thread policy's)"
    )
    ap.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="also time the renderer while N busy processes run, and print the ratio",
    )
    ap.add_argument(
        "--no-policy", action="store_true", help="torch's thread defaults instead of the policy"
    )
    args = ap.parse_args(argv)

    policy = None
    if not args.no_policy:
        from worldstudio.core.runtime.threads import apply_thread_policy

        # before torch loads: OpenMP reads its wait policy when it starts
        policy = apply_thread_policy("cli", threads=args.threads or None)

    import torch

    if args.no_policy and args.threads > 0:
        torch.set_num_threads(args.threads)

    from worldstudio.core.pointcloud.render import render_points

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    H, W, B = args.height, args.width, args.poses
    K = intrinsics(H, W)
    xyz, rgb = make_cloud(args.points, K, H, W)
    poses = orbit_poses(B)
    print(
        f"torch {torch.__version__}, device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
        + f", {torch.get_num_threads()} CPU threads"
        + (f" (policy: {policy.text()})" if policy else " (no thread policy: torch's defaults)")
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.points:,} points, {B} poses, {W}x{H}; 1-minute load average {load:.2f}")

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    # Torch: inputs already on the device (as the app keeps them), one batched call.
    dev = torch.device(args.device)
    xyz_d, rgb_d = torch.from_numpy(xyz).to(dev), torch.from_numpy(rgb).to(dev)
    render_points(xyz_d, rgb_d, poses[:2], K, H, W)  # warm-up
    sync()

    def timed_runs():
        times, result = [], None
        for _ in range(max(1, args.repeats)):
            sync()
            t0 = time.perf_counter()
            result = render_points(xyz_d, rgb_d, poses, K, H, W)
            sync()
            times.append(time.perf_counter() - t0)
        return times, result

    times, result = timed_runs()
    t_torch = min(times)
    coverage = result.mask.float().mean().item()
    print(
        f"torch renderer: {t_torch * 1e3:.0f} ms for all {B} frames, "
        f"{t_torch / B * 1e3:.1f} ms/frame (best of {len(times)}: "
        + ", ".join(f"{t * 1e3:.0f}" for t in times)
        + f" ms); coverage {coverage:.1%}"
    )

    if args.background_load > 0:
        with background_load(args.background_load):
            loaded, _ = timed_runs()
        quiet_ms, loaded_ms = statistics.median(times) * 1e3, statistics.median(loaded) * 1e3
        print(
            f"under load ({args.background_load} busy processes): "
            + ", ".join(f"{t * 1e3:.0f}" for t in loaded)
            + f" ms; median quiet {quiet_ms:.0f} ms, loaded {loaded_ms:.0f} ms, "
            f"ratio {loaded_ms / quiet_ms:.2f} (goal <= 2)"
        )

    # Numpy baseline on a subset of the poses.
    nb = max(1, min(B, args.baseline_poses))
    xyz_t = np.ascontiguousarray(xyz.T)
    t_base = []
    checked = 0
    for i in range(nb):
        P = projection(poses[i], K)
        t0 = time.perf_counter()
        depth, index = numpy_zbuffer(xyz_t, P, H, W)
        t_base.append(time.perf_counter() - t0)
        if i < 2:
            assert np.array_equal(depth, result.depth[i].cpu().numpy()), f"depth differs, pose {i}"
            assert np.array_equal(index, result.index[i].cpu().numpy()), f"index differs, pose {i}"
            checked += 1
    per_base = float(np.mean(t_base))
    scaled = "" if nb == B else f", timed on {nb} of {B} poses and scaled to {B}"
    print(
        f"numpy baseline: {per_base * 1e3:.0f} ms/frame, {per_base * B * 1e3:.0f} ms "
        f"for {B} frames{scaled}"
    )
    print(f"identical depth and winning-point images on {checked} poses: yes")
    print(f"speed-up: {per_base / (t_torch / B):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
