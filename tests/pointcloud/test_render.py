"""The torch splatting renderer: exact pixels, z-order, culling, splats, batching, devices."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldstudio.core.pointcloud import render as render_module
from worldstudio.core.pointcloud.render import RenderResult, render_points

H, W = 48, 64
# Non-square pixels: fx != fy.
K = np.array([[100.0, 0.0, 32.0], [0.0, 80.0, 24.0], [0.0, 0.0, 1.0]])
EYE = np.eye(4)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def render1(xyz, rgb=None, c2w=EYE, k=K, **kw) -> RenderResult:
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    if rgb is not None:
        rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
    return render_points(xyz, rgb, c2w, k, H, W, **kw)


def covered(r: RenderResult, b: int = 0) -> list[tuple[int, int]]:
    return [tuple(p) for p in torch.nonzero(r.mask[b]).tolist()]


def test_point_lands_on_the_hand_computed_pixel():
    # u = 100 * 0.31 / 2 + 32 = 47.5 -> 47; v = 80 * -0.21 / 2 + 24 = 15.6 -> 15.
    r = render1([0.31, -0.21, 2.0], [RED], background=(1, 2, 3))
    assert r.rgb.shape == (1, H, W, 3) and r.rgb.dtype == torch.uint8
    assert r.depth.shape == (1, H, W) and r.depth.dtype == torch.float32
    assert r.mask.dtype == torch.bool and r.index.dtype == torch.int64
    assert covered(r) == [(15, 47)]
    assert r.depth[0, 15, 47] == 2.0 and r.index[0, 15, 47] == 0
    assert r.rgb[0, 15, 47].tolist() == list(RED)
    assert r.rgb[0, 0, 0].tolist() == [1, 2, 3] and r.depth[0, 0, 0] == 0 and r.index[0, 0, 0] == -1
    assert r.mask.sum() == 1


def test_camera_pose_is_applied():
    # Camera at (1, 2, 3) looking along world +x (its x axis is world -z, y is world +y).
    c2w = np.array([[0, 0, 1, 1], [0, 1, 0, 2], [-1, 0, 0, 3], [0, 0, 0, 1]], float)
    # World (3, 1.79, 2.69) is camera (0.31, -0.21, 2): the pixel of the previous test.
    r = render1([3.0, 1.79, 2.69], [GREEN], c2w=c2w)
    assert covered(r) == [(15, 47)]
    assert r.depth[0, 15, 47].item() == pytest.approx(2.0, rel=1e-6)
    # From the identity camera the same point is far right of the image (u = 143.5): unseen.
    assert not render1([3.0, 1.79, 2.69], [GREEN]).mask.any()


def test_nearest_point_wins_whatever_the_order():
    near, far = [0.31, -0.21, 2.0], [0.465, -0.315, 3.0]  # same pixel (15, 47), z = 2 and 3
    for pts, cols, winner in (([near, far], [RED, BLUE], 0), ([far, near], [BLUE, RED], 1)):
        r = render1(pts, cols)
        assert covered(r) == [(15, 47)]
        assert r.depth[0, 15, 47] == 2.0
        assert r.rgb[0, 15, 47].tolist() == list(RED)
        assert r.index[0, 15, 47] == winner


def test_equal_depths_go_to_the_lowest_index():
    # (0.315, -0.215, 2) lands on pixel (15, 47) too: u = 47.75, v = 15.4.
    r = render1([[0.31, -0.21, 2.0], [0.315, -0.215, 2.0], [0.31, -0.21, 2.0]], [BLUE, GREEN, RED])
    assert covered(r) == [(15, 47)]
    assert r.index[0, 15, 47] == 0 and r.rgb[0, 15, 47].tolist() == list(BLUE)


def test_points_behind_the_camera_and_off_image_are_dropped():
    pts = [
        [0.31, -0.21, -2.0],  # behind
        [0.0, 0.0, 0.0],  # at the camera centre
        [0.0, 0.0, 5e-5],  # in front, but nearer than near=1e-4
        [-0.65, 0.0, 2.0],  # u = -0.5 -> pixel -1: off the left edge
        [0.64, 0.0, 2.0],  # u = 64 exactly: off the right edge
        [0.0, 0.61, 2.0],  # v = 48.4: below the bottom
        [0.0, -0.601, 2.0],  # v = -0.04: above the top
        [np.nan, 0.0, 2.0],  # not finite
        [0.0, np.inf, 2.0],
    ]
    r = render1(pts)
    assert not r.mask.any()
    assert (r.index == -1).all() and (r.depth == 0).all() and (r.rgb == 0).all()
    # Just inside: pixels (0, 0) and (47, 63).
    r = render1([[-0.639, -0.599, 2.0], [0.639, 0.599, 2.0]])
    assert covered(r) == [(0, 0), (47, 63)]


def test_non_finite_points_keep_input_indices():
    r = render1([[np.nan, 0, 1], [0.31, -0.21, 2.0]], [RED, GREEN])
    assert covered(r) == [(15, 47)] and r.index[0, 15, 47] == 1
    assert r.rgb[0, 15, 47].tolist() == list(GREEN)


def test_empty_cloud():
    r = render_points(
        np.zeros((0, 3), np.float32),
        np.zeros((0, 3), np.uint8),
        np.stack([EYE] * 3),
        K,
        H,
        W,
        background=9,
    )
    assert r.rgb.shape == (3, H, W, 3)
    assert (
        not r.mask.any() and (r.rgb == 9).all() and (r.index == -1).all() and (r.depth == 0).all()
    )
    r = render_points(np.zeros((0, 3), np.float32), None, EYE, K, H, W, radius=2)
    assert not r.mask.any()


def test_radius_splats_a_clipped_square():
    # The point of the first test, pixel (15, 47): a 5 x 5 square around it.
    r = render1([0.31, -0.21, 2.0], [RED], radius=2)
    expected = torch.zeros((H, W), dtype=torch.bool)
    expected[13:18, 45:50] = True
    assert torch.equal(r.mask[0], expected)
    assert (r.depth[0][expected] == 2.0).all() and (r.index[0][expected] == 0).all()
    assert (r.rgb[0][expected] == torch.tensor(RED, dtype=torch.uint8)).all()
    # At the top-left corner, pixel (0, 0): clipped to 3 x 3.
    r = render1([-0.639, -0.599, 2.0], radius=2)
    assert covered(r) == [(y, x) for y in range(3) for x in range(3)]
    # Just off the left edge (pixel column -1): still covers column 0 with radius 1.
    r = render1([-0.65, 0.0, 2.0], radius=1)
    assert covered(r) == [(23, 0), (24, 0), (25, 0)]
    # Further off (columns -3, -10 and 1000, row -3): nothing reaches the image with radius 2.
    far_off = [[-0.69, 0.0, 2.0], [-0.84, 0.0, 2.0], [19.36, 0.0, 2.0], [0.0, -0.675, 2.0]]
    assert not render1(far_off, radius=2).mask.any()
    # Points behind the camera never splat, wherever their (meaningless) projection falls.
    behind = np.random.default_rng(0).uniform(-5, 5, (2000, 3)).astype(np.float32)
    behind[:, 2] = -np.abs(behind[:, 2])
    assert not render1(behind, radius=3).mask.any() and not render1(behind).mask.any()


def test_radius_splats_are_z_buffered():
    near = [0.31, -0.21, 2.0]  # pixel (15, 47)
    far = [0.49, -0.315, 3.0]  # u = 48.33, v = 15.6: pixel (15, 48)
    r = render1([far, near], [BLUE, RED], radius=1)
    assert r.rgb[0, 15, 48].tolist() == list(RED) and r.depth[0, 15, 48] == 2.0  # near splat wins
    assert r.rgb[0, 15, 49].tolist() == list(BLUE) and r.depth[0, 15, 49] == 3.0  # only far
    assert r.mask[0].sum() == 9 + 3


def random_scene(n=3000, b=5, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-2, 2, (n, 3)).astype(np.float32)
    xyz[:, 2] += 4
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    poses = np.stack([np.eye(4)] * b)
    for i in range(b):
        a = 0.2 * i
        poses[i, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        poses[i, :3, 3] = [0.3 * i, -0.1 * i, -0.5 * i]
    return xyz, rgb, poses


def assert_same(a: RenderResult, b: RenderResult) -> None:
    for name in RenderResult._fields:
        x, y = getattr(a, name).cpu(), getattr(b, name).cpu()
        assert torch.equal(x, y), name


@pytest.mark.parametrize("radius", [0, 1])
def test_batched_poses_equal_per_pose_calls(radius):
    xyz, rgb, poses = random_scene()
    batch = render_points(xyz, rgb, poses, K, H, W, radius=radius)
    assert batch.mask.shape == (5, H, W) and batch.mask.sum() > 1000
    for i in range(len(poses)):
        one = render_points(xyz, rgb, poses[i], K, H, W, radius=radius)
        assert_same(RenderResult(*(t[i : i + 1] for t in batch)), one)


def test_one_K_per_pose():
    xyz, rgb, poses = random_scene(b=3)
    Ks = np.stack([K, K * [[0.5], [0.7], [1]], K * [[2], [1], [1]]])
    Ks[1, 0, 2] = 20.0
    batch = render_points(xyz, rgb, poses, Ks, H, W)
    for i in range(3):
        assert_same(
            RenderResult(*(t[i : i + 1] for t in batch)),
            render_points(xyz, rgb, poses[i], Ks[i], H, W),
        )
    assert not torch.equal(batch.mask[0], batch.mask[2])


def test_small_blocks_and_pose_chunks_give_the_same_images(monkeypatch):
    xyz, rgb, poses = random_scene(n=2000, b=7)
    reference = render_points(xyz, rgb, poses, K, H, W, radius=1)
    # Several poses per GEMM block (the CUDA layout) and several chunks of poses.
    monkeypatch.setattr(render_module, "_CPU_BLOCK_ELEMS", 3 * 2000 + 5)
    monkeypatch.setattr(render_module, "_CHUNK_BYTES", H * W * 24 * 4)
    monkeypatch.setattr(render_module, "_CPU_CHUNK_BYTES", H * W * 24 * 4)
    assert_same(render_points(xyz, rgb, poses, K, H, W, radius=1), reference)
    # Many small point blocks, one pose each.
    monkeypatch.setattr(render_module, "_CPU_BLOCK_ELEMS", 333)
    assert_same(render_points(xyz, rgb, poses, K, H, W, radius=1), reference)


@pytest.mark.parametrize("radius", [0, 2])
def test_pixel_sorting_of_points_does_not_change_the_images(monkeypatch, radius):
    xyz, rgb, poses = random_scene(n=5000, b=6, seed=2)
    xyz[::97] = np.nan  # dropped points shift the ids that the keys carry
    xyz[1::50] = xyz[0::50]  # exact duplicates: ties go to the lower input index
    monkeypatch.setattr(render_module, "_SORT_MIN_POINTS", 10**9)
    plain = render_points(xyz, rgb, poses, K, H, W, radius=radius)
    monkeypatch.setattr(render_module, "_SORT_MIN_POINTS", 1)
    monkeypatch.setattr(render_module, "_CPU_BLOCK_ELEMS", 1000)
    assert_same(render_points(xyz, rgb, poses, K, H, W, radius=radius), plain)
    assert plain.mask.sum() > 2000 and not np.isin(np.arange(0, 5000, 97), plain.index).any()


def test_torch_inputs_and_editable_outputs():
    xyz, rgb, poses = random_scene(b=2)
    a = render_points(xyz, rgb, poses, K, H, W)
    b = render_points(
        torch.from_numpy(xyz).double(),
        torch.from_numpy(rgb),
        torch.from_numpy(poses),
        torch.from_numpy(K),
        H,
        W,
    )
    assert_same(a, b)
    assert not a.rgb.is_inference()
    a.rgb[a.mask] = 0  # callers may edit results in place


def test_grey_default_colour_and_background_triplet():
    r = render1([0.31, -0.21, 2.0], None, background=(7, 8, 9))
    assert r.rgb[0, 15, 47].tolist() == [128, 128, 128] and r.rgb[0, 0, 0].tolist() == [7, 8, 9]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(xyz=np.zeros((2, 2))), "xyz"),
        (dict(rgb=np.zeros((1, 3), np.float32)), "uint8"),
        (dict(rgb=np.zeros((2, 3), np.uint8)), "shape"),
        (dict(c2w=np.eye(3)), "c2w"),
        (dict(c2w=np.zeros((4, 4))), "invertible"),
        (dict(K=np.eye(4)), "K"),
        (dict(K=np.stack([K, K])), "one a pose"),
        (dict(K=np.ones((3, 3))), "last row"),
        (dict(radius=-1), "radius"),
        (dict(height=0), "image size"),
        (dict(background=(1, 2)), "background"),
        (dict(background=300), "background"),
    ],
)
def test_invalid_arguments(kwargs, words):
    args = dict(xyz=np.zeros((1, 3), np.float32), rgb=None, c2w=EYE, K=K, height=H, width=W)
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        render_points(**args)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, core.pointcloud; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- property test: a reference z-buffer -----------------------------------------------------

FX, FY, CX, CY = 10.0, 8.0, 4.0, 3.0
KP = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
HP, WP = 6, 8


@st.composite
def pixel_points(draw):
    """Points built from (pixel, sub-pixel offset away from the borders, depth from a small set
    so that ties happen), so the expected pixel of each is known exactly."""
    n = draw(st.integers(0, 40))
    u = np.array(draw(st.lists(st.integers(-1, WP), min_size=n, max_size=n)), float)
    v = np.array(draw(st.lists(st.integers(-1, HP), min_size=n, max_size=n)), float)
    fu = np.array(draw(st.lists(st.floats(0.1, 0.9), min_size=n, max_size=n)))
    fv = np.array(draw(st.lists(st.floats(0.1, 0.9), min_size=n, max_size=n)))
    z = np.array(
        draw(st.lists(st.sampled_from([-1.0, 0.5, 1.0, 2.0, 4.0]), min_size=n, max_size=n))
    )
    xyz = np.stack([(u + fu - CX) * z / FX, (v + fv - CY) * z / FY, z], 1).astype(np.float32)
    perm = draw(st.permutations(range(n)))
    return xyz, u.astype(int), v.astype(int), perm


def reference(u, v, z):
    depth = np.zeros((HP, WP), np.float32)
    index = np.full((HP, WP), -1)
    for i in range(len(z)):
        if z[i] <= 0 or not (0 <= u[i] < WP and 0 <= v[i] < HP):
            continue
        if index[v[i], u[i]] < 0 or z[i] < depth[v[i], u[i]]:  # ties keep the lower index
            depth[v[i], u[i]], index[v[i], u[i]] = z[i], i
    return depth, index


@settings(max_examples=60, deadline=None)
@given(pixel_points())
def test_matches_a_reference_z_buffer_and_ignores_point_order(data):
    xyz, u, v, perm = data
    n = len(xyz)
    rgb = np.random.default_rng(n).integers(0, 256, (n, 3), dtype=np.uint8)
    r = render_points(xyz, rgb, EYE, KP, HP, WP)
    depth, index = reference(u, v, xyz[:, 2])
    np.testing.assert_array_equal(r.depth[0].numpy(), depth)
    np.testing.assert_array_equal(r.index[0].numpy(), index)
    np.testing.assert_array_equal(r.rgb[0].numpy()[index >= 0], rgb[index[index >= 0]])
    # Shuffled input: the same depth and coverage; the winners are the same points up to ties.
    p = np.array(perm, dtype=int)
    rp = render_points(xyz[p], rgb[p], EYE, KP, HP, WP)
    np.testing.assert_array_equal(rp.depth[0].numpy(), depth)
    np.testing.assert_array_equal(rp.mask[0].numpy(), index >= 0)
    _, index_p = reference(u[p], v[p], xyz[p, 2])
    np.testing.assert_array_equal(rp.index[0].numpy(), index_p)


# ---- CUDA -------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("radius", [0, 2])
def test_cuda_agrees_with_cpu(radius):
    xyz, rgb, poses = random_scene(n=200_000, b=6, seed=5)
    cpu = render_points(xyz, rgb, poses, K, H, W, radius=radius)
    gpu = render_points(xyz, rgb, poses, K, H, W, radius=radius, device="cuda")
    assert gpu.rgb.device.type == "cuda"
    gpu = RenderResult(*(t.cpu() for t in gpu))
    # Float32 roundings may differ between the devices' GEMMs: allow a few border flips.
    same = (cpu.index == gpu.index).float().mean().item()
    assert same > 0.999
    both = cpu.mask & gpu.mask
    torch.testing.assert_close(cpu.depth[both], gpu.depth[both], rtol=1e-5, atol=0)
    assert (cpu.mask != gpu.mask).float().mean().item() < 1e-3
    # Points built to sit mid-pixel land identically.
    ys, xs = np.mgrid[0:H, 0:W]
    z = np.random.default_rng(0).uniform(1, 5, (H, W))
    cam = np.stack([(xs + 0.5 - 32) * z / 100, (ys + 0.5 - 24) * z / 80, z], -1).reshape(-1, 3)
    assert_same(render1(cam), RenderResult(*(t.cpu() for t in render1(cam, device="cuda"))))
