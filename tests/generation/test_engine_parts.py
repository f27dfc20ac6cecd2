"""The world engine's parts: backends registry, world rendering and growth, lifting, run folders."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.backends import (
    BackendError,
    GenerationRequest,
    backend_names,
    get_backend,
)
from worldstudio.core.generation.lift import (
    LiftInput,
    OracleLifter,
    RenderLifter,
    entity_clouds,
    fit_scale_shift,
    make_lifter,
)
from worldstudio.core.generation.world import (
    EntityCloud,
    VoxelGrid,
    add_static,
    grow_static,
    initial_world,
    render_world,
    splat_small,
)
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.jobs import JobContext
from worldstudio.core.oracle import OracleScene
from worldstudio.core.pointcloud.cloud import PointCloud
from worldstudio.core.project import ProjectFolder

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

K = intrinsics_from_fov(60.0, H, W)


def _plane(z: float, colour, n: int = 120, half: float = 3.0) -> PointCloud:
    xs, ys = np.meshgrid(np.linspace(-half, half, n), np.linspace(-half, half, n))
    xyz = np.stack([xs.ravel(), ys.ravel(), np.full(n * n, z)], axis=1).astype(np.float32)
    return PointCloud(xyz, np.tile(np.asarray(colour, np.uint8), (n * n, 1)))


def _request(**kw) -> GenerationRequest:
    base = dict(
        prompt="scene: x; foreground: y",
        num_frames=2,
        height=H,
        width=W,
        steps=2,
        guidance=5.0,
        seed=1,
        control_rgb=np.full((2, H, W, 3), 9, np.uint8),
        control_mask=np.zeros((2, H, W), bool),
        previous_frames=None,
        reference_images=[],
    )
    base.update(kw)
    return GenerationRequest(**base)


# ------------------------------------------------------------------------------- backends
def test_registry_names_and_errors():
    assert {"geometry", "oracle", "wan-vace", "wan-i2v"} <= set(backend_names())
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        get_backend("nope")


def test_geometry_and_oracle_do_not_import_diffusion_libraries():
    code = (
        "import sys; from worldstudio.core.generation.backends import get_backend; "
        "get_backend('geometry'); get_backend('oracle'); import worldstudio.core.generation.engine; "
        "bad = [m for m in ('diffusers', 'transformers', 'peft') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_geometry_backend_returns_the_renders():
    b = get_backend("geometry")
    reports = []
    out = b.generate(_request(), JobContext(reports.append))
    assert out.shape == (2, H, W, 3) and (out == 9).all()
    assert any(r.kind == "progress" for r in reports) and any(r.kind == "preview" for r in reports)


def test_oracle_backend_renders_the_ground_truth_at_the_request_times():
    scene = OracleScene.demo()
    b = get_backend("oracle")
    c2w = np.repeat(np.eye(4)[None], 2, axis=0)
    out = b.generate(
        _request(camera_c2w=c2w, camera_K=np.stack([K, K]), times=np.array([0.0, 1.0])),
        JobContext(),
    )
    assert np.array_equal(out[1], scene.render(np.eye(4), K, H, W, 1.0).rgb)
    assert not np.array_equal(out[0], out[1])  # the ball moved
    with pytest.raises(BackendError, match="needs the request's cameras"):
        b.generate(_request(), JobContext())


def test_oracle_backend_refuses_other_projects(tmp_path_factory, tmp_path):
    folder = ProjectFolder(demo_project(tmp_path_factory, tmp_path / "p"))
    p = folder.load()
    get_backend("oracle", project=p, project_folder=folder)
    p.scene.depth_model = "some depth model"
    with pytest.raises(BackendError, match="not the demo"):
        get_backend("oracle", project=p, project_folder=folder)


# ------------------------------------------------------------------------------- world
def test_render_world_nearest_point_wins_and_reports_entities():
    static = _plane(5.0, (10, 20, 30))
    front = EntityCloud(np.array([[0.0, 0.0, 2.0]], np.float32), np.array([[200, 0, 0]], np.uint8))
    behind = EntityCloud(np.array([[0.5, 0.0, 8.0]], np.float32), np.array([[0, 200, 0]], np.uint8))
    c2w = np.stack([np.eye(4), np.eye(4)])
    r = render_world(
        static, [{"a": front, "b": behind}, {}], c2w, np.stack([K, K]), H, W, ["a", "b"]
    )
    assert r.pixels["a"].tolist() == [1, 0] and r.pixels["b"].tolist() == [0, 0]
    assert np.allclose(r.centroids["a"][0], [0.0, 0.0, 2.0]) and np.isnan(r.centroids["a"][1]).all()
    v, u = np.argwhere(r.entity_mask("a")[0])[0]
    assert tuple(r.rgb[0, v, u]) == (200, 0, 0) and r.depth[0, v, u] == pytest.approx(2.0)
    assert r.static_depth[0, v, u] == 0.0 and r.any_entity[0].sum() == 1
    assert not r.entity_mask("b").any()  # behind the wall
    assert (r.entity[1] == -1).all()


@pytest.mark.parametrize("radius", [0, 1])
def test_splat_small_agrees_with_the_renderer(radius):
    from worldstudio.core.pointcloud.render import render_points

    rng = np.random.default_rng(1)
    xyz = (rng.normal(size=(2000, 3)) * [1.5, 1.0, 1.0] + [0.0, 0.0, 4.0]).astype(np.float32)
    xyz[:5, 2] = -1.0  # behind the camera
    c2w = np.eye(4)
    c2w[:3, 3] = [0.1, -0.2, 0.3]
    ref = render_points(xyz, None, c2w, K, H, W, radius=radius)
    pix, z, idx = splat_small(xyz, c2w, K, H, W, radius)
    mask = np.zeros(H * W, bool)
    mask[pix] = True
    assert (mask == ref.mask[0].numpy().reshape(-1)).mean() > 0.995
    both = mask[pix] & ref.mask[0].numpy().reshape(-1)[pix]
    agree = ref.index[0].numpy().reshape(-1)[pix][both] == idx[both]
    assert agree.mean() > 0.99
    assert np.allclose(z[both], ref.depth[0].numpy().reshape(-1)[pix][both], rtol=1e-5)


def test_grow_static_fills_holes_once_and_skips_entities():
    frames = np.full((2, H, W, 3), 77, np.uint8)
    depth = np.full((2, H, W), 4.0, np.float32)
    c2w = np.stack([np.eye(4), np.eye(4)])
    holes = np.zeros((2, H, W), bool)
    holes[:, :10, :10] = True
    exclude = np.zeros((2, H, W), bool)
    exclude[:, :5, :5] = True
    # voxels smaller than a pixel's footprint (4 / 41.6 here): one point per pixel
    new = grow_static(frames, depth, c2w, np.stack([K, K]), holes, exclude, VoxelGrid(0.05))
    assert len(new) == 100 - 25  # the second frame sees the same hole, already filled
    assert (new.rgb == 77).all() and np.allclose(new.xyz[:, 2], 4.0)
    grown = add_static(_plane(5.0, (1, 1, 1), n=3), new)
    assert len(grown) == 9 + 75 and grown.entity_id is None


def test_initial_world_takes_the_entity_out_of_the_static_cloud(tmp_path_factory, tmp_path):
    folder = ProjectFolder(demo_project(tmp_path_factory, tmp_path / "p"))
    p = folder.load()
    static, states = initial_world(folder, p)
    ball = states["ent-ball"]
    assert len(ball) > 20 and len(static) + len(ball) == p.scene.point_count
    centre = OracleScene.demo().entity_position(0.0)
    assert np.linalg.norm(ball.xyz - centre, axis=1).max() < OracleScene.demo().entity_radius + 0.05
    assert static.entity_id is None


# ------------------------------------------------------------------------------- lifting
def test_fit_scale_shift_recovers_an_affine_depth_despite_outliers():
    rng = np.random.default_rng(0)
    ref = rng.uniform(1.0, 6.0, (H, W))
    pred = (ref - 0.4) / 2.5
    pred[:3] = 50.0  # garbage rows
    s, b, n = fit_scale_shift(pred, ref, np.ones((H, W), bool))
    assert (
        s == pytest.approx(2.5, rel=1e-6)
        and b == pytest.approx(0.4, abs=1e-6)
        and n <= H * W - 3 * W
    )
    assert fit_scale_shift(pred, ref, np.zeros((H, W), bool)) is None
    assert (
        fit_scale_shift(10.0 - ref, ref, np.ones((H, W), bool)) is None
    )  # an inverted depth is refused


def test_render_and_oracle_lifters(tmp_path_factory, tmp_path):
    folder = ProjectFolder(demo_project(tmp_path_factory, tmp_path / "p"))
    p = folder.load()
    scene = OracleScene.demo()
    gt = scene.render(np.eye(4), K, H, W, 0.5)
    data = LiftInput(
        frames=gt.rgb[None],
        c2w=np.eye(4)[None],
        K=K[None],
        times=np.array([0.5]),
        render_depth=np.full((1, H, W), 3.0, np.float32),
        render_entities={"ent-ball": gt.entity_mask[None]},
        entity_ids=["ent-ball"],
    )
    lifted = OracleLifter(project=p).lift(data, JobContext())
    assert np.array_equal(lifted.depth[0], gt.depth) and np.array_equal(
        lifted.masks["ent-ball"][0], gt.entity_mask
    )
    clouds = entity_clouds(data.frames, lifted.depth, lifted.masks["ent-ball"], data.c2w, data.K)
    assert np.linalg.norm(clouds[0].centroid - scene.entity_position(0.5)) < scene.entity_radius
    same = RenderLifter().lift(data, JobContext())
    assert (same.depth == 3.0).all() and np.array_equal(
        same.masks["ent-ball"], data.render_entities["ent-ball"]
    )
    assert isinstance(make_lifter("model"), object)
    with pytest.raises(WorldStudioError, match="unknown lifter"):
        make_lifter("magic")
