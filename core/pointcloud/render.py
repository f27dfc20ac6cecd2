"""The z-buffered point splatting renderer: torch, one implementation for CPU and CUDA.

``render_points`` draws a coloured point cloud from a batch of cameras (docs/CONVENTIONS.md:
OpenCV axes, camera-to-world 4x4 poses, 3x3 K in pixels for an explicit height and width).

Projection: a point with camera coordinates (x, y, z) lands on pixel
``(floor(fx * x / z + cx), floor(fy * y / z + cy))``, computed in float32 as
``(P @ [X, 1]) / z`` with ``P = K @ inverse(c2w)[:3]``; it is kept when ``z > near`` and the pixel
lies inside the image. ``radius = r > 0`` splats a point onto the (2r + 1) x (2r + 1) square of
pixels centred on its pixel, clipped to the image, every pixel of it at the point's depth (so a
point just outside the image still covers the border pixels within r of it).

Visibility: per pixel the point with the smallest z wins; ties go to the lowest point index. The
z-buffer holds one int64 key per pixel, ``(float32 bits of z) << 32 | point index``: positive
float32 values order like their bit patterns read as integers, so one
``scatter_reduce_(..., "amin")`` over a flat (poses x H x W) buffer does the depth test and the
tie break at once. Culled and off-image points scatter into one extra dummy slot.

Speed: work is split into blocks of (points x poses) so that scratch memory stays bounded (and
cache-sized on CPU); the point indices of the keys are written once per call and each pose only
writes the z half of them; poses are batched into one GEMM per block on CUDA.

This module imports torch at import time: import it explicitly (``core.pointcloud`` does not).
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["RenderResult", "render_points"]

_EMPTY_KEY = torch.iinfo(torch.int64).max
# Which int32 half of an int64 key holds the z bits (the high 32 bits) in memory.
_HI = 1 if sys.byteorder == "little" else 0
_LO = 1 - _HI

# Elements (points x poses) per block, about 50 bytes of scratch each. On CPU a block that stays
# in the caches is fastest; on CUDA big blocks amortise kernel launches.
_CPU_BLOCK_ELEMS = 1 << 17
_CUDA_BLOCK_ELEMS = 1 << 24
# Bound on the z-buffer and decoding scratch of one chunk of poses (about 24 bytes a pixel).
_CHUNK_BYTES = 1_500_000_000


class RenderResult(NamedTuple):
    """Rendered images as torch tensors on the render device; B is the number of poses."""

    rgb: torch.Tensor
    """(B, H, W, 3) uint8; the background colour where nothing was drawn."""
    depth: torch.Tensor
    """(B, H, W) float32 z-depth along the camera's +z axis; 0 where nothing was drawn."""
    mask: torch.Tensor
    """(B, H, W) bool, True where a point was drawn."""
    index: torch.Tensor
    """(B, H, W) int64 index of the winning point in the input arrays; -1 where empty."""


def render_points(
    xyz,
    rgb,
    c2w,
    K,
    height: int,
    width: int,
    radius: int = 0,
    device=None,
    background=0,
    *,
    near: float = 1e-4,
) -> RenderResult:
    """Render a point cloud from B cameras with a z-buffer.

    xyz: (N, 3) float, numpy or torch (computed in float32). rgb: (N, 3) uint8, or None for grey.
    c2w: (4, 4) or (B, 4, 4) camera-to-world poses. K: (3, 3) or (B, 3, 3) intrinsics in pixels
    for an image of ``height`` x ``width``; its last row must be (0, 0, 1). radius: splat
    half-size in pixels (0 draws one pixel a point). device: where to render (default: xyz's
    device, else CPU). background: grey level or (r, g, b) of empty pixels. Points with
    ``z <= near`` or non-finite coordinates are dropped. Returns a RenderResult on ``device``.
    """
    height, width, radius = int(height), int(width), int(radius)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    near = float(near)
    if not (near > 0.0 and math.isfinite(near)):
        raise ValueError(f"near must be a positive finite number, got {near}")
    if isinstance(device, str | torch.device):
        dev = torch.device(device)
    elif device is None:
        dev = xyz.device if isinstance(xyz, torch.Tensor) else torch.device("cpu")
    else:
        raise ValueError(f"device must be a torch device or its name, got {device!r}")
    P_all = _projections(c2w, K)
    B = P_all.shape[0]
    bg = _background(background, dev)

    pts = _as_tensor(xyz, dev, torch.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"xyz must have shape (N, 3), got {tuple(pts.shape)}")
    N = pts.shape[0]
    if N >= 2**31:
        raise ValueError(f"at most 2**31 - 1 points can be rendered, got {N}")
    if rgb is None:
        cols = torch.full((N, 3), 128, dtype=torch.uint8, device=dev)
    else:
        cols = _as_tensor(rgb, dev)
        if cols.dtype != torch.uint8:
            raise ValueError(f"rgb must be uint8, got {cols.dtype}")
        if tuple(cols.shape) != (N, 3):
            raise ValueError(f"rgb must have shape ({N}, 3) like xyz, got {tuple(cols.shape)}")

    # Outputs are allocated outside inference mode so that callers may edit them in place.
    out = RenderResult(
        rgb=torch.empty((B, height, width, 3), dtype=torch.uint8, device=dev),
        depth=torch.empty((B, height, width), dtype=torch.float32, device=dev),
        mask=torch.empty((B, height, width), dtype=torch.bool, device=dev),
        index=torch.empty((B, height, width), dtype=torch.int64, device=dev),
    )
    with torch.inference_mode():
        _render_into(out, pts, cols, P_all, bg, radius, near)
    return out


def _as_tensor(a, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = a.detach() if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device=device, dtype=dtype or t.dtype)


def _cpu_float64(a, name: str) -> torch.Tensor:
    t = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    if t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name} must be a real matrix, got {t.dtype}")
    return t.to(torch.float64)


def _projections(c2w, K) -> torch.Tensor:
    """(B, 3, 4) float64 CPU matrices ``K @ inverse(c2w)[:3]``."""
    c2w_t = _cpu_float64(c2w, "c2w")
    K_t = _cpu_float64(K, "K")
    if c2w_t.shape == (4, 4):
        c2w_t = c2w_t[None]
    if c2w_t.ndim != 3 or c2w_t.shape[1:] != (4, 4):
        raise ValueError(f"c2w must have shape (4, 4) or (B, 4, 4), got {tuple(c2w_t.shape)}")
    if K_t.shape == (3, 3):
        K_t = K_t[None]
    if K_t.ndim != 3 or K_t.shape[1:] != (3, 3):
        raise ValueError(f"K must have shape (3, 3) or (B, 3, 3), got {tuple(K_t.shape)}")
    B = c2w_t.shape[0]
    if K_t.shape[0] not in (1, B):
        raise ValueError(f"K holds {K_t.shape[0]} matrices for {B} poses; give one or one a pose")
    if not bool(torch.isfinite(c2w_t).all()) or not bool(torch.isfinite(K_t).all()):
        raise ValueError("c2w and K must be finite")
    if not bool((K_t[:, 2] == torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).all()):
        raise ValueError("K's last row must be (0, 0, 1)")
    try:
        w2c = torch.linalg.inv(c2w_t)
    except RuntimeError as exc:  # torch.linalg.LinAlgError
        raise ValueError(f"c2w is not invertible: {exc}") from None
    return K_t @ w2c[:, :3, :]


def _background(background, device: torch.device) -> torch.Tensor:
    bg = torch.as_tensor(np.asarray(background, dtype=np.float64)).reshape(-1)
    if bg.numel() == 1:
        bg = bg.expand(3)
    if bg.numel() != 3:
        raise ValueError("background must be one grey level or an (r, g, b) triple")
    if not bool(((bg >= 0) & (bg <= 255)).all()):
        raise ValueError("background values must be in 0..255")
    return bg.round().to(device=device, dtype=torch.uint8)


def _render_into(out: RenderResult, pts, cols, P_all, bg, radius: int, near: float) -> None:
    dev = pts.device
    B, H, W = out.depth.shape
    HW = H * W
    # Non-finite points never reach the z-buffer; `order` maps kept points to input indices.
    order = None
    if pts.shape[0] and not bool(torch.isfinite(pts).all()):
        order = torch.isfinite(pts).all(dim=1).nonzero().squeeze(1)
        pts = pts[order]
        cols = cols[order]
    n_pts = pts.shape[0]
    # Coordinate-major points (3, n): a block's projection is one small GEMM whose output rows
    # (u, v and z numerators of each pose) are contiguous.
    pts_t = pts.t().contiguous()
    # Colours packed as one int32 a point: decoding gathers 1-D instead of (N, 3).
    packed = torch.zeros((n_pts, 4), dtype=torch.uint8, device=dev)
    packed[:, :3] = cols
    packed = packed.view(torch.int32).view(-1)
    bg_packed = torch.zeros(4, dtype=torch.uint8, device=dev)
    bg_packed[:3] = bg
    bg_packed = bg_packed.view(torch.int32)

    block_elems = _CUDA_BLOCK_ELEMS if dev.type == "cuda" else _CPU_BLOCK_ELEMS
    # Pixel ids are int32 within a chunk of poses.
    pose_chunk = max(1, min(B, _CHUNK_BYTES // (HW * 24), (2**31 - 2) // HW))
    poses_per_block = max(1, min(pose_chunk, block_elems // max(1, n_pts)))
    pts_per_block = max(1, block_elems // poses_per_block)
    # Keys (poses_per_block, n_pts): the point-index halves are written once, here.
    keys = torch.empty((poses_per_block, n_pts), dtype=torch.int64, device=dev)
    key_halves = keys.view(torch.int32).view(poses_per_block, n_pts, 2)
    key_halves[..., _LO] = torch.arange(n_pts, dtype=torch.int32, device=dev)
    key_z = key_halves[..., _HI]

    for b0 in range(0, B, pose_chunk):
        b1 = min(B, b0 + pose_chunk)
        nb = b1 - b0
        P = P_all[b0:b1].to(device=dev, dtype=torch.float32)
        M = P[:, :, :3].reshape(nb * 3, 3)
        t = P[:, :, 3].reshape(nb * 3, 1)
        zbuf = torch.full((nb * HW + 1,), _EMPTY_KEY, dtype=torch.int64, device=dev)
        for p0 in range(0, nb, poses_per_block):
            p1 = min(nb, p0 + poses_per_block)
            base = torch.arange(p0, p1, dtype=torch.int32, device=dev)[:, None] * HW
            for s in range(0, n_pts, pts_per_block):
                e = min(n_pts, s + pts_per_block)
                _splat_block(
                    zbuf,
                    M[p0 * 3 : p1 * 3],
                    t[p0 * 3 : p1 * 3],
                    pts_t[:, s:e],
                    keys[: p1 - p0, s:e],
                    key_z[: p1 - p0, s:e],
                    base,
                    H,
                    W,
                    near,
                    radius,
                )
        _decode(out, b0, zbuf[: nb * HW].view(nb, H, W), packed, bg_packed, order)


def _splat_block(zbuf, M, t, pts_t, keys, key_z, base, H, W, near, radius) -> None:
    """Project one block of points with a few poses and scatter-min their keys into zbuf."""
    nb, n = keys.shape
    dummy = zbuf.shape[0] - 1
    # ((P0 x + P1 y) + P2 z) + P3 with one rounding per operation, elementwise rather than a
    # GEMM: GEMM kernels round differently with the matrix shapes and the device, and the
    # images must not depend on how poses and points are batched, nor on the device.
    proj = torch.mul(M[:, 0:1], pts_t[0])
    tmp = torch.mul(M[:, 1:2], pts_t[1])
    proj += tmp
    torch.mul(M[:, 2:3], pts_t[2], out=tmp)
    proj += tmp
    proj += t
    proj = proj.view(nb, 3, n)
    z = proj[:, 2]
    u = proj[:, 0] / z
    v = proj[:, 1] / z
    key_z.copy_(z.view(torch.int32))
    if radius == 0:
        ok = z > near
        ok &= u >= 0
        ok &= u < W
        ok &= v >= 0
        ok &= v < H
        # Truncation is floor for the kept, non-negative coordinates.
        pix = v.to(torch.int32)
        pix *= W
        pix += u.to(torch.int32)
        pix += base
        pix = torch.where(ok, pix, dummy)
        zbuf.scatter_reduce_(0, pix.view(-1).to(torch.int64), keys.reshape(-1), "amin")
        return
    ok = z > near
    ok &= u >= -radius
    ok &= u < W + radius
    ok &= v >= -radius
    ok &= v < H + radius
    sel = ok.view(-1).nonzero().squeeze(1)
    if sel.numel() == 0:
        return
    ui = u.reshape(-1)[sel].floor_().to(torch.int64)
    vi = v.reshape(-1)[sel].floor_().to(torch.int64)
    k = keys.reshape(-1)[sel]
    b = base.to(torch.int64).expand(nb, n).reshape(-1)[sel]
    for dy in range(-radius, radius + 1):
        vv = vi + dy
        row_ok = (vv >= 0) & (vv < H)
        row = vv * W + b
        for dx in range(-radius, radius + 1):
            uu = ui + dx
            inside = row_ok & (uu >= 0) & (uu < W)
            zbuf.scatter_reduce_(0, torch.where(inside, row + uu, dummy), k, "amin")


def _decode(out: RenderResult, b0: int, zkeys, packed, bg_packed, order) -> None:
    """Write a chunk's z-buffer keys out as images."""
    nb, H, W = zkeys.shape
    b1 = b0 + nb
    halves = zkeys.view(torch.int32).view(nb, H, W, 2)
    covered = zkeys != _EMPTY_KEY
    out.mask[b0:b1] = covered
    out.depth[b0:b1] = torch.where(covered, halves[..., _HI].view(torch.float32), 0.0)
    winner = torch.where(covered, halves[..., _LO], 0)  # int32 index into the kept points
    if packed.numel():
        colour = torch.where(covered, packed[winner], bg_packed)
        out.rgb[b0:b1] = colour.view(torch.uint8).view(nb, H, W, 4)[..., :3]
    else:
        out.rgb[b0:b1] = bg_packed.view(torch.uint8)[:3]
    if order is not None:
        winner = order[winner]
    out.index[b0:b1] = torch.where(covered, winner, -1)
