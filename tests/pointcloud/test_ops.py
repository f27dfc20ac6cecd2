"""Voxel downsampling, depth unprojection, depth-edge masks, mask morphology and outliers, on
hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.pointcloud import (
    PointCloud,
    remove_depth_edges,
    unproject_depth,
    voxel_downsample,
)
from worldstudio.core.pointcloud.ops import dilate_mask, erode_mask, statistical_outliers

# ---- voxel_downsample ------------------------------------------------------------------------


def hand_cloud() -> PointCloud:
    pts = [
        # xyz, rgb, entity id; voxel size 1
        ((0.1, 0.2, 0.3), (10, 10, 10), 2),  # voxel (0, 0, 0)
        ((0.9, 0.8, 0.7), (20, 30, 41), 2),  # voxel (0, 0, 0)
        ((0.5, 0.5, 0.5), (30, 50, 40), -1),  # voxel (0, 0, 0)
        ((1.5, 0.5, 0.5), (0, 0, 204), 7),  # voxel (1, 0, 0)
        ((-0.1, 0.5, 0.5), (100, 0, 0), 5),  # voxel (-1, 0, 0): floor, not truncation
        ((1.2, 0.1, 0.9), (0, 0, 100), 3),  # voxel (1, 0, 0): ids 7 and 3 tie -> 3
        ((0.5, 1.5, 0.5), (1, 2, 3), 0),  # voxel (0, 1, 0)
        ((np.nan, 0.0, 0.0), (9, 9, 9), 9),  # dropped
        ((0.5, 0.5, 1.5), (4, 5, 6), 0),  # voxel (0, 0, 1)
    ]
    return PointCloud(
        np.array([p[0] for p in pts], np.float32),
        np.array([p[1] for p in pts], np.uint8),
        np.array([p[2] for p in pts], np.int32),
    )


def test_voxel_downsample_hand_computed():
    out = voxel_downsample(hand_cloud(), 1.0)
    # Sorted by voxel: (-1,0,0), (0,0,0), (0,0,1), (0,1,0), (1,0,0).
    assert len(out) == 5
    np.testing.assert_allclose(
        out.xyz,
        [[-0.1, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 1.5], [0.5, 1.5, 0.5], [1.35, 0.3, 0.7]],
        rtol=1e-6,
    )
    # Means: (60/3, 90/3, 91/3) -> (20, 30, 30); (0, 0, (204 + 100)/2) -> 152.
    np.testing.assert_array_equal(
        out.rgb, [[100, 0, 0], [20, 30, 30], [4, 5, 6], [1, 2, 3], [0, 0, 152]]
    )
    np.testing.assert_array_equal(out.entity_id, [5, 2, 0, 0, 3])


def test_voxel_downsample_is_deterministic_and_order_independent():
    c = hand_cloud()
    perm = np.random.default_rng(0).permutation(len(c))
    a, b = voxel_downsample(c, 1.0), voxel_downsample(c.select(perm), 1.0)
    np.testing.assert_allclose(a.xyz, b.xyz, rtol=1e-6)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.entity_id, b.entity_id)


def test_voxel_downsample_sizes_and_edge_cases():
    c = hand_cloud()
    big = voxel_downsample(c, 10.0)
    assert len(big) == 2  # cells (-1, 0, 0) and (0, 0, 0) of a 10-unit grid
    no_ids = PointCloud(c.xyz, c.rgb)
    assert voxel_downsample(no_ids, 1.0).entity_id is None
    assert len(voxel_downsample(PointCloud.empty(), 0.1)) == 0
    assert voxel_downsample(PointCloud.empty(True), 0.1).entity_id is not None
    rng = np.random.default_rng(1)
    many = PointCloud(
        rng.random((10_000, 3), np.float32), rng.integers(0, 256, (10_000, 3), dtype=np.uint8)
    )
    out = voxel_downsample(many, 0.25)
    assert len(out) == 64  # a 4 x 4 x 4 grid, every cell hit
    for bad in (0, -1, np.nan, np.inf):
        with pytest.raises(ValueError, match="voxel size"):
            voxel_downsample(c, bad)


# ---- unproject_depth ------------------------------------------------------------------------

K_SMALL = np.array([[2.0, 0.0, 2.0], [0.0, 4.0, 1.5], [0.0, 0.0, 1.0]])  # for H=3, W=4
# Camera at (1, 2, 3); its x axis is world -z, y is world +y, z (forward) is world +x.
C2W = np.array([[0, 0, 1, 1], [0, 1, 0, 2], [-1, 0, 0, 3], [0, 0, 0, 1]], float)
DEPTH = np.array(
    [[2.0, 0.0, -1.0, np.nan], [np.inf, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0]], np.float32
)


def test_unproject_hand_computed_points():
    # Pixel (u=0, v=0), centre (0.5, 0.5), z=2: camera (-1.5, -0.5, 2) -> world (3, 1.5, 4.5).
    # Pixel (u=1, v=1), centre (1.5, 1.5), z=1: camera (-0.25, 0, 1) -> world (2, 2, 3.25).
    # Pixel (u=3, v=2), centre (3.5, 2.5), z=4: camera (3, 1, 4) -> world (5, 3, 0).
    c = unproject_depth(DEPTH, K_SMALL, C2W)
    np.testing.assert_allclose(c.xyz, [[3, 1.5, 4.5], [2, 2, 3.25], [5, 3, 0]], atol=1e-6)
    np.testing.assert_array_equal(c.rgb, np.full((3, 3), 128))
    assert c.entity_id is None


def test_unproject_mask_colours_and_entity_ids():
    rgb = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    mask = np.ones((3, 4), bool)
    mask[1, 1] = False
    c = unproject_depth(DEPTH, K_SMALL, C2W, rgb=rgb, mask=mask, entity_id=7)
    np.testing.assert_allclose(c.xyz, [[3, 1.5, 4.5], [5, 3, 0]], atol=1e-6)
    np.testing.assert_array_equal(c.rgb, [rgb[0, 0], rgb[2, 3]])
    np.testing.assert_array_equal(c.entity_id, [7, 7])
    ids = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(
        unproject_depth(DEPTH, K_SMALL, C2W, entity_id=ids).entity_id, [0, 5, 11]
    )


def test_unproject_rejects_bad_inputs():
    with pytest.raises(ValueError, match="depth"):
        unproject_depth(np.zeros(4), K_SMALL, C2W)
    with pytest.raises(ValueError, match="K"):
        unproject_depth(DEPTH, np.eye(4), C2W)
    with pytest.raises(ValueError, match="c2w"):
        unproject_depth(DEPTH, K_SMALL, np.eye(3))
    with pytest.raises(ValueError, match="mask"):
        unproject_depth(DEPTH, K_SMALL, C2W, mask=np.ones((3, 4), np.uint8))
    with pytest.raises(ValueError, match="rgb"):
        unproject_depth(DEPTH, K_SMALL, C2W, rgb=np.zeros((3, 4, 3), np.float32))
    with pytest.raises(ValueError, match="entity_id"):
        unproject_depth(DEPTH, K_SMALL, C2W, entity_id=np.zeros((2, 2), int))


def random_pose(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    T = np.eye(4)
    T[:3, :3] = q
    T[:3, 3] = rng.normal(size=3) * 3
    return T


def test_render_of_unprojection_reproduces_the_depth():
    from worldstudio.core.pointcloud.render import render_points

    rng = np.random.default_rng(3)
    H, W = 24, 32
    K = np.array([[30.0, 0, 16.0], [0, 28.0, 12.0], [0, 0, 1]])
    depth = rng.uniform(1.0, 5.0, (H, W)).astype(np.float32)
    depth[5, 7] = 0.0  # a hole
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    c2w = random_pose(rng)
    cloud = unproject_depth(depth, K, c2w, rgb=rgb)
    assert len(cloud) == H * W - 1
    r = render_points(cloud.xyz, cloud.rgb, c2w, K, H, W)
    np.testing.assert_array_equal(r.mask[0].numpy(), depth > 0)
    np.testing.assert_allclose(r.depth[0].numpy(), depth, rtol=1e-5)
    np.testing.assert_array_equal(r.rgb[0].numpy()[depth > 0], rgb[depth > 0])
    np.testing.assert_array_equal(r.index[0].numpy()[depth > 0], np.arange(H * W - 1))


# ---- remove_depth_edges ---------------------------------------------------------------------


def test_depth_edges_on_a_step():
    depth = np.ones((5, 6), np.float32)
    depth[:, 3:] = 2.0
    keep = remove_depth_edges(depth, 0.1)
    expected = np.ones((5, 6), bool)
    expected[:, 2:4] = False  # both sides of the jump
    np.testing.assert_array_equal(keep, expected)
    assert remove_depth_edges(depth, 1.5).all()  # a jump of 1 is not > 1.5 * 1
    assert not remove_depth_edges(depth, 0.99)[:, 2:4].any()


def test_depth_edges_neighbourhoods_and_invalid_pixels():
    depth = np.ones((5, 5), np.float32)
    depth[2, 2] = 5.0
    keep8 = remove_depth_edges(depth, 0.5)
    keep4 = remove_depth_edges(depth, 0.5, neighbors=4)
    expected8 = np.ones((5, 5), bool)
    expected8[1:4, 1:4] = False
    expected4 = np.ones((5, 5), bool)
    expected4[[1, 2, 2, 2, 3], [2, 1, 2, 3, 2]] = False
    np.testing.assert_array_equal(keep8, expected8)
    np.testing.assert_array_equal(keep4, expected4)
    holes = np.ones((3, 3), np.float32)
    holes[0, 0], holes[1, 1], holes[2, 2] = 0.0, np.nan, -2.0
    keep = remove_depth_edges(holes, 0.01)
    np.testing.assert_array_equal(keep, holes > 0)  # holes dropped, their neighbours kept
    with pytest.raises(ValueError):
        remove_depth_edges(depth, 0.1, neighbors=6)
    with pytest.raises(ValueError):
        remove_depth_edges(depth, -1)


# ---- masks and outliers ----------------------------------------------------------------------


def test_dilate_and_erode_masks():
    m = np.zeros((7, 9), bool)
    m[2:5, 3:6] = True
    grown = dilate_mask(m, 1)
    assert grown.sum() == 25 and grown[1:6, 2:7].all()
    shrunk = erode_mask(m, 1)
    assert shrunk.sum() == 1 and shrunk[3, 4]
    # a mask touching the image border keeps its border pixels (the border is not an outline)
    edge = np.zeros((5, 5), bool)
    edge[:, :3] = True
    assert erode_mask(edge, 1)[:, :2].all() and not erode_mask(edge, 1)[:, 2].any()
    stack = np.stack([m, np.zeros_like(m)])
    assert np.array_equal(dilate_mask(stack, 1), np.stack([grown, np.zeros_like(m)]))
    assert np.array_equal(dilate_mask(m, 0), m)
    with pytest.raises(ValueError):
        erode_mask(m, -1)


def test_statistical_outliers_finds_stray_depths_on_a_surface():
    K = np.array([[50.0, 0.0, 20.0], [0.0, 50.0, 15.0], [0.0, 0.0, 1.0]])
    depth = np.full((30, 40), 4.0) + np.linspace(0.0, 0.5, 40)[None, :]  # a slanted wall
    mask = np.zeros((30, 40), bool)
    mask[5:25, 5:35] = True
    depth[12, 20] = 6.0  # a spike
    depth[18, 10] = 2.5  # a hole punched towards the camera
    mask[2, 2] = True  # a lonely pixel far from the rest
    out = statistical_outliers(depth, K, mask)
    assert out[12, 20] and out[18, 10] and out[2, 2]
    assert out.sum() == 3  # their neighbours on the wall are not outliers
    assert not out[~mask].any()
    assert not statistical_outliers(depth, K, np.zeros_like(mask)).any()
