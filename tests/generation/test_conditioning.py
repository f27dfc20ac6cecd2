"""Observer masks and pinhole filling (core.generation.conditioning): the parts on small arrays,
and the bar on the demo scene: a 25 % dolly-in leaves under 1 % of the frame as isolated
"generate" spots, where the old mask (every uncovered pixel) leaves tens of percent."""

from __future__ import annotations

import numpy as np
import pytest

from tests.generation.engine_support import torch_one_thread
from worldstudio.core.generation.conditioning import (
    clean_mask,
    fill_foreground,
    fill_nearest,
    fill_pinholes,
    isolated_fraction,
    layers_from_render,
    mask_parts,
    observer_mask,
    single_pixel_fraction,
    thin_holes,
)

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)


def _plane(h=20, w=30, depth=4.0):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return rgb, np.full((h, w), depth, np.float32)


def test_pinholes_are_filled_from_the_neighbour_nearest_the_median_depth():
    rgb, depth = _plane()
    depth[10, 10] = 0  # a pinhole in a wall ...
    rgb[10, 10] = 0
    depth[9, 9:12] = 4.0
    depth[11, 9] = 1.0  # ... with one neighbour much nearer (another surface)
    truth = rgb.copy()
    filled = fill_pinholes(rgb, depth)
    assert filled[10, 10] and filled.sum() == 1
    assert depth[10, 10] == 4.0  # not the odd near neighbour
    assert any(
        (rgb[10, 10] == truth[10 + dy, 10 + dx]).all() for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    )


def test_a_dolly_in_lattice_is_closed_and_a_real_hole_is_not():
    rgb, depth = _plane(40, 40)
    depth[::3] = 0  # every third row and column lost: a camera 1.5x closer
    depth[:, ::3] = 0
    depth[15:30, 15:30] = 0  # a region the world has nothing for
    assert not thin_holes(depth)[20, 20] and thin_holes(depth)[3, 7]
    fill_pinholes(rgb, depth)
    hole = depth[15:30, 15:30]
    assert (hole[3:-3, 3:-3] == 0).all()  # the real hole stays
    outside = depth.copy()
    outside[13:32, 13:32] = 1  # (its rim may be partly filled)
    assert (outside > 0).all()  # every gap elsewhere is closed


def test_a_far_surface_seen_through_a_gap_is_refilled_from_the_near_one():
    rgb, depth = _plane(12, 12, depth=2.0)
    depth[6, 6] = 9.0  # a wall point between the points of a near box
    rgb[6, 6] = (1, 2, 3)
    filled = fill_pinholes(rgb, depth)
    assert filled[6, 6] and depth[6, 6] == 2.0 and not (rgb[6, 6] == (1, 2, 3)).all()


def test_foreground_gaps_are_filled_only_where_nothing_static_is_in_front():
    h, w = 12, 12
    rgb = np.zeros((h, w, 3), np.uint8)
    depth = np.zeros((h, w), np.float32)
    labels = np.full((h, w), -1, np.int16)
    labels[3:9, 3:9] = 1
    rgb[3:9, 3:9] = (200, 100, 0)
    depth[3:9, 3:9] = 3.0
    labels[5, 5] = labels[5, 7] = -1  # two gaps in the entity's splat
    depth[5, 5] = depth[5, 7] = 0
    scene = np.full((h, w), 8.0, np.float32)
    scene[5, 7] = 1.0  # a static point in front of the entity there
    filled = fill_foreground(rgb, depth, labels, scene)
    assert filled[5, 5] and labels[5, 5] == 1 and depth[5, 5] == 3.0
    assert not filled[5, 7] and labels[5, 7] == -1


def test_nearest_fill_takes_the_closest_covered_pixel():
    rgb = np.zeros((5, 9, 3), np.uint8)
    depth = np.zeros((5, 9), np.float32)
    rgb[:, 0], depth[:, 0] = (10, 10, 10), 1.0
    rgb[:, 8], depth[:, 8] = (90, 90, 90), 2.0
    todo = depth == 0
    fill_nearest(rgb, depth, todo)
    assert (depth[:, 1:4] == 1.0).all() and (depth[:, 5:8] == 2.0).all()
    assert (rgb[:, 2] == 10).all() and (rgb[:, 6] == 90).all()


def test_mask_parts_and_cleaning():
    h, w = 40, 60
    covered = np.ones((h, w), bool)
    depth = np.full((h, w), 5.0, np.float32)
    depth[:, 30:] = 2.0  # a near box on the right: its left edge is a discontinuity
    depth[5:15, 40:55] = 0  # a hole
    covered[5:15, 40:55] = False
    covered[25:40, 0:20:2] = False  # a sparse region (every other column)
    labels = np.full((h, w), -1, np.int16)
    labels[30:34, 40:44] = 0  # an entity
    parts = mask_parts(covered, depth, labels)
    assert parts.holes[10, 45] and not parts.holes[20, 10]
    assert parts.discontinuity[:, 28:30].all() and not parts.discontinuity[:, 31:].any()
    assert parts.sparse[32, 8] and not parts.sparse[5, 8]
    assert parts.entity[29, 39] and parts.entity[35, 45] and not parts.entity[20, 20]

    speckle = np.zeros((h, w), bool)
    speckle[2, 2] = speckle[20, 5] = True  # single pixels: dropped
    speckle[30, 45] = True  # a single pixel touching an entity: kept
    speckle[20:30, 20:30] = True  # a region: kept
    entity = np.zeros((h, w), bool)
    entity[30, 45] = True
    out = clean_mask(speckle, entity, min_region=9)
    assert not out[2, 2] and not out[20, 5]
    assert out[30, 45] and out[20:30, 20:30].all() and out[19, 25]  # dilated by one pixel


def test_isolated_fraction_counts_spots_and_thin_lines():
    m = np.zeros((30, 30), bool)
    m[5, 5] = True  # a single pixel
    m[10, 2:20] = True  # a one-pixel line (no pixel of it is alone)
    m[20:26, 20:26] = True  # a real region
    assert single_pixel_fraction(m) == 1 / 900
    assert isolated_fraction(m) == pytest.approx(19 / 900)
    blob = np.zeros((30, 30), bool)
    blob[1:4, 1:4] = True  # a dilated single pixel: a 3x3 spot
    assert isolated_fraction(blob) == pytest.approx(9 / 900)
    assert isolated_fraction(m[None].repeat(2, axis=0)) == pytest.approx(19 / 900)


def test_a_dolly_in_on_the_demo_leaves_no_salt_and_pepper(tmp_path):
    """The bar: 25 % closer than the source camera (of the scene's median depth), the observer
    mask has under 1 % of isolated spots; the old mask (every uncovered pixel) has over 30 %."""
    from worldstudio.core.generation.world import initial_world, render_world
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.core.project import ProjectFolder

    H, W = 480, 832
    create_demo_project(tmp_path / "demo.wsproj", W, H)
    folder = ProjectFolder(tmp_path / "demo.wsproj")
    p = folder.load()
    static, states = initial_world(folder, p)
    K = np.asarray(p.intrinsics.K)
    c2w = np.eye(4)
    c2w[2, 3] = 0.25 * float(np.median(static.xyz[:, 2]))
    render = render_world(static, [dict(states)], c2w[None], K[None], H, W, list(states))
    old = ~render.covered
    layers = layers_from_render(render)
    new = observer_mask(layers)
    old_spots, new_spots = isolated_fraction(old), isolated_fraction(new.mask)
    print(f"dolly-in 25 %: isolated spots old {old_spots:.1%}, new {new_spots:.2%}")
    assert old_spots > 0.30
    assert new_spots < 0.01
    # the filling closed the gaps: far fewer holes than the splat left
    assert new.holes < 0.25 * old.mean()
    # every pixel the model keeps has a colour
    keep = ~new.mask
    assert (layers.composite_depth[keep] > 0).all()
