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
tie break at once. Each pose's buffer has a one-pixel guard ring around the image that takes
the culled and off-image points, so the hot loop needs no validity masks.

Determinism: the projection is plain float32 multiplies, adds and divides in a fixed order (no
GEMM, whose roundings depend on shapes and devices), so an image does not depend on how poses
and points are batched, and CPU and CUDA give the same bits.

Speed: work is split into blocks of (points x poses) so that scratch memory stays bounded (and
cache-sized on CPU, in buffers reused by every block; on CUDA a block holds several poses, to
amortise kernel launches); the point indices of the keys are written once per call and each pose
only writes the z half of them; culling uses arithmetic and clamping instead of boolean masks;
when a call renders several poses of a large cloud, the points are first sorted by their pixel
in the first pose, so that the scatters of a block hit a cache-sized band of the z-buffer.

This module imports torch at import time: import it explicitly (``worldstudio.core.pointcloud`` does not).
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
_CUDA_BLOCK_ELEMS = 1 << 23
# Points are sorted by pixel first when a call renders at least this many poses and points.
_SORT_MIN_POSES = 4
_SORT_MIN_POINTS = 1 << 16
# Bound on the z-buffer and decoding scratch of one chunk of poses (about 24 bytes a pixel).
_CHUNK_BYTES = 1_500_000_000
_CPU_CHUNK_BYTES = 24 << 20


class RenderResult(NamedTuple):
    """Rendered images as torch tensors on the render device; B is the number of poses."""

    rgb: torch.Tensor
    """(B, H, W, 3) uint8; the background colour where nothing was drawn."""
    depth: torch.Tensor
    """(B, H, W) float32 z-depth along the camera's +z axis; 0 where nothing was drawn."""
    mask: torch.Tensor
    """(B, H, W) bool, True where a point was drawn."""
    index: torch.Tensor  # type: ignore[assignment]  # a field, shadowing tuple.index on purpose
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
    proj_all = _projections(c2w, K)
    B = proj_all.shape[0]
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
        _render_into(out, pts, cols, proj_all, bg, radius, near)
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
    k_t = _cpu_float64(K, "K")
    if c2w_t.shape == (4, 4):
        c2w_t = c2w_t[None]
    if c2w_t.ndim != 3 or c2w_t.shape[1:] != (4, 4):
        raise ValueError(f"c2w must have shape (4, 4) or (B, 4, 4), got {tuple(c2w_t.shape)}")
    if k_t.shape == (3, 3):
        k_t = k_t[None]
    if k_t.ndim != 3 or k_t.shape[1:] != (3, 3):
        raise ValueError(f"K must have shape (3, 3) or (B, 3, 3), got {tuple(k_t.shape)}")
    B = c2w_t.shape[0]
    if k_t.shape[0] not in (1, B):
        raise ValueError(f"K holds {k_t.shape[0]} matrices for {B} poses; give one or one a pose")
    if not bool(torch.isfinite(c2w_t).all()) or not bool(torch.isfinite(k_t).all()):
        raise ValueError("c2w and K must be finite")
    if not bool((k_t[:, 2] == torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).all()):
        raise ValueError("K's last row must be (0, 0, 1)")
    try:
        w2c = torch.linalg.inv(c2w_t)
    except RuntimeError as exc:  # torch.linalg.LinAlgError
        raise ValueError(f"c2w is not invertible: {exc}") from None
    return k_t @ w2c[:, :3, :]


def _background(background, device: torch.device) -> torch.Tensor:
    bg = torch.as_tensor(np.asarray(background, dtype=np.float64)).reshape(-1)
    if bg.numel() == 1:
        bg = bg.expand(3)
    if bg.numel() != 3:
        raise ValueError("background must be one grey level or an (r, g, b) triple")
    if not bool(((bg >= 0) & (bg <= 255)).all()):
        raise ValueError("background values must be in 0..255")
    return bg.round().to(device=device, dtype=torch.uint8)


def _render_into(out: RenderResult, pts, cols, proj_all, bg, radius: int, near: float) -> None:
    dev = pts.device
    B, H, W = out.depth.shape
    # `ids` are the input indices of the points as processed: non-finite points are dropped,
    # the rest may be reordered; the z-buffer keys carry these ids, so neither changes results.
    ids = None
    # One sum finds any NaN or infinity (and rarely overflows, which only costs the exact test).
    if pts.shape[0] and not bool(torch.isfinite(pts.sum())) and not bool(torch.isfinite(pts).all()):
        ids = torch.isfinite(pts).all(dim=1).nonzero().squeeze(1)
        pts = pts[ids]
    n_pts = pts.shape[0]
    if ids is None:
        ids = torch.arange(n_pts, device=dev)
    # Coordinate-major points (3, n): contiguous rows for the elementwise projection.
    pts_t = pts.t().contiguous()
    # Colours packed as one int32 a point, after the background colour: decoding gathers 1-D
    # at index + 1 instead of (N, 3) at index.
    packed = torch.zeros((cols.shape[0] + 1, 4), dtype=torch.uint8, device=dev)
    packed[0, :3] = bg
    packed[1:, :3] = cols
    packed = packed.view(torch.int32).view(-1)

    block_elems = _CUDA_BLOCK_ELEMS if dev.type == "cuda" else _CPU_BLOCK_ELEMS
    # The z-buffer of a pose is (H + 2) x (W + 2): the image plus a one-pixel guard ring that
    # takes every culled or off-image point, so no point needs a validity mask.
    Hp, Wp = H + 2, W + 2
    hw_pad = Hp * Wp
    if B >= _SORT_MIN_POSES and n_pts >= _SORT_MIN_POINTS:
        # Points in the pixel order of the first pose: each block's scatter then touches a
        # band of the z-buffer that stays in cache (nearby poses keep most of that locality).
        perm = _pixel_order(proj_all[0].to(device=dev, dtype=torch.float32), pts_t, H, W, near)
        pts_t = torch.index_select(pts_t, 1, perm)
        ids = torch.index_select(ids, 0, perm)
    # Pixel ids are int32 within a chunk of poses. On CPU a chunk's z-buffer and decoding
    # scratch stay small (a few MB), so that the allocator reuses them without page faults.
    chunk_bytes = _CHUNK_BYTES if dev.type == "cuda" else _CPU_CHUNK_BYTES
    pose_chunk = max(1, min(B, chunk_bytes // (hw_pad * 24), (2**31 - 1) // hw_pad))
    poses_per_block = max(1, min(pose_chunk, block_elems // max(1, n_pts)))
    pts_per_block = max(1, block_elems // poses_per_block)
    # Keys (poses_per_block, n_pts): the id halves are written once, here; each pose then
    # writes only the z halves.
    keys = torch.empty((poses_per_block, n_pts), dtype=torch.int64, device=dev)
    key_halves = keys.view(torch.int32).view(poses_per_block, n_pts, 2)
    key_halves[..., _LO] = ids.to(torch.int32)
    key_z = key_halves[..., _HI]

    ws = _Workspace(poses_per_block * min(n_pts, pts_per_block), dev)
    zbuf = torch.empty(pose_chunk * hw_pad, dtype=torch.int64, device=dev)
    scratch = torch.empty((2, pose_chunk * H * W), dtype=torch.int32, device=dev)
    for b0 in range(0, B, pose_chunk):
        b1 = min(B, b0 + pose_chunk)
        nb = b1 - b0
        P = proj_all[b0:b1].to(device=dev, dtype=torch.float32)
        M = P[:, :, :3].reshape(nb * 3, 3)
        t = P[:, :, 3].reshape(nb * 3, 1)
        zb = zbuf[: nb * hw_pad].fill_(_EMPTY_KEY)
        for p0 in range(0, nb, poses_per_block):
            p1 = min(nb, p0 + poses_per_block)
            # Flat id of image pixel (0, 0) of each pose.
            base = torch.arange(p0, p1, dtype=torch.int32, device=dev)[:, None] * hw_pad + Wp + 1
            for s in range(0, n_pts, pts_per_block):
                e = min(n_pts, s + pts_per_block)
                Mp, tp = M[p0 * 3 : p1 * 3], t[p0 * 3 : p1 * 3]
                z, u, v = _project(Mp, tp, pts_t[:, s:e], H, W, near, radius, ws)
                key_z[: p1 - p0, s:e].copy_(z.view(torch.int32))
                _scatter(zb, keys[: p1 - p0, s:e], u, v, base, H, W, radius, ws)
        _decode(out, b0, zb.view(nb, Hp, Wp)[:, 1:-1, 1:-1], packed, scratch)


class _Workspace:
    """Scratch buffers reused by every block of a call: fresh multi-megabyte allocations
    would page-fault on each block (CPU allocators hand them back to the system)."""

    def __init__(self, elems: int, dev: torch.device) -> None:
        self.f = torch.empty((7, elems), dtype=torch.float32, device=dev)
        self.i = torch.empty((2, elems), dtype=torch.int32, device=dev)
        self.pix = torch.empty(elems, dtype=torch.int64, device=dev)


def _project(M, t, pts_t, H: int, W: int, near: float, radius: int, ws: _Workspace):
    """z, and floor(u), floor(v) clamped to [-1 - radius, W + radius] x [-1 - radius, H + radius]
    (culled points at the low bounds), each (poses, points), for the (3 poses, 3) M and t.
    The results live in ``ws`` until its next use."""
    nb, n = M.shape[0] // 3, pts_t.shape[1]
    m = nb * n
    flat = ws.f.view(-1)
    proj = flat[: 3 * m].view(3 * nb, n)
    tmp = flat[3 * m : 6 * m].view(3 * nb, n)
    zc = flat[6 * m : 7 * m].view(nb, n)
    # ((P0 x + P1 y) + P2 z) + P3 with one rounding per operation, elementwise rather than a
    # GEMM: GEMM kernels round differently with the matrix shapes and the device, and the
    # images must not depend on how poses and points are batched, nor on the device.
    torch.mul(M[:, 0:1], pts_t[0], out=proj)
    torch.mul(M[:, 1:2], pts_t[1], out=tmp)
    proj += tmp
    torch.mul(M[:, 2:3], pts_t[2], out=tmp)
    proj += tmp
    proj += t
    proj = proj.view(nb, 3, n)
    z = proj[:, 2]
    # Culling without boolean masks (slow on CPU): dividing by z * clamp(sign(z - near), 0)
    # divides by z where z > near and by 0 (or NaN) elsewhere, and the resulting infinities
    # and NaNs all become the low bound; clamping then sends every point off the image onto the
    # guard ring.
    torch.sub(z, near, out=zc).sign_().clamp_(min=0.0)
    zc *= z
    lo = -1.0 - radius
    u = tmp[:nb]  # tmp is free again
    v = tmp[nb : 2 * nb]
    torch.div(proj[:, 0], zc, out=u)
    torch.nan_to_num_(u, nan=lo, posinf=lo, neginf=lo).clamp_(lo, W + radius).floor_()
    torch.div(proj[:, 1], zc, out=v)
    torch.nan_to_num_(v, nan=lo, posinf=lo, neginf=lo).clamp_(lo, H + radius).floor_()
    return z, u, v


def _pixel_order(P, pts_t, H: int, W: int, near: float) -> torch.Tensor:
    """A permutation of the points sorting them by their pixel in the camera P (3, 4)."""
    n = pts_t.shape[1]
    pix = torch.empty(n, dtype=torch.int32, device=pts_t.device)
    step = min(n, _CUDA_BLOCK_ELEMS if pts_t.device.type == "cuda" else _CPU_BLOCK_ELEMS)
    ws = _Workspace(step, pts_t.device)
    for s in range(0, n, step):
        e = min(n, s + step)
        _, u, v = _project(P[:, :3], P[:, 3:], pts_t[:, s:e], H, W, near, 0, ws)
        row = pix[s:e].view(1, -1)
        row.copy_(v)
        row *= W + 2
        tmp = ws.i[0, : e - s].view(1, -1)
        tmp.copy_(u)
        row += tmp
    return torch.sort(pix).indices


def _scatter(zbuf, keys, u, v, base, H: int, W: int, radius: int, ws: _Workspace) -> None:
    """Scatter-min the (poses, points) keys at pixels (u, v) (floats from _project)."""
    Wp = W + 2
    nb, n = keys.shape
    if radius == 0:
        m = nb * n
        pix = ws.i[0, :m].view(nb, n)
        col = ws.i[1, :m].view(nb, n)
        pix.copy_(v)  # exact: whole numbers in int32 range
        pix *= Wp
        col.copy_(u)
        pix += col
        pix += base
        pix64 = ws.pix[:m]
        pix64.copy_(pix.view(-1))
        zbuf.scatter_reduce_(0, pix64, keys.reshape(-1), "amin")
        return
    # Splats: keep the points whose square reaches the image (the clamp bounds fail this
    # test), then one scatter per offset, clamping rows and columns onto the guard ring.
    reach = (u >= -radius) & (u < W + radius) & (v >= -radius) & (v < H + radius)
    sel = reach.view(-1).nonzero().squeeze(1)
    if sel.numel() == 0:
        return
    ui = u.reshape(-1)[sel].to(torch.int64)
    vi = v.reshape(-1)[sel].to(torch.int64)
    k = keys.reshape(-1)[sel]
    b = base.to(torch.int64).expand(nb, n).reshape(-1)[sel]
    for dy in range(-radius, radius + 1):
        row = (vi + dy).clamp_(-1, H) * Wp + b
        for dx in range(-radius, radius + 1):
            zbuf.scatter_reduce_(0, row + (ui + dx).clamp_(-1, W), k, "amin")


def _decode(out: RenderResult, b0: int, zkeys, packed, scratch) -> None:
    """Write a chunk's z-buffer keys out as images (no boolean selects: an empty key's halves
    read as a NaN depth and a -1 index). ``scratch``: (2, >= pixels) int32."""
    nb, H, W = zkeys.shape
    b1 = b0 + nb
    halves = zkeys.view(torch.int32).view(nb, H, W, 2)
    torch.ne(zkeys, _EMPTY_KEY, out=out.mask[b0:b1])
    torch.nan_to_num(halves[..., _HI].view(torch.float32), nan=0.0, out=out.depth[b0:b1])
    winner = scratch[0, : nb * H * W]
    torch.add(halves[..., _LO], 1, out=winner.view(nb, H, W))  # input index + 1; 0 if empty
    out.index[b0:b1] = winner.view(nb, H, W)
    out.index[b0:b1] -= 1
    # packed[0] is the background colour.
    colour = torch.index_select(packed, 0, winner, out=scratch[1, : nb * H * W])
    out.rgb[b0:b1] = colour.view(torch.uint8).view(nb, H, W, 4)[..., :3]
