"""PLY, baked-path and run-video exports."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.geometry.transforms import pose_matrix
from worldstudio.core.interop.exports import (
    CSV_COLUMNS,
    KEYFRAME_COLOR,
    MONITOR_COLOR,
    MONITOR_OFF_COLOR,
    baked_path_records,
    camera_overlay,
    compose_combined,
    export_path_csv,
    export_path_json,
    export_run_mp4,
    export_run_ply,
    export_scene_ply,
    frustum_points,
)
from worldstudio.core.media import probe_video, read_frames, write_mp4
from worldstudio.core.oracle.demo_project import create_demo_project
from worldstudio.core.pointcloud import PointCloud, read_ply, write_ply
from worldstudio.core.project import ProjectFolder

from .helpers import empty_run, make_project


@pytest.fixture(scope="module")
def demo_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo.wsproj"
    create_demo_project(root, width=160, height=96)
    return root


@pytest.fixture
def demo(tmp_path, demo_src):
    import shutil

    shutil.copytree(demo_src, tmp_path / "demo.wsproj")
    return tmp_path / "demo.wsproj"


# ---------------------------------------------------------------------------------------- PLY


def test_scene_ply_is_the_scene_cloud(tmp_path, demo):
    out, n = export_scene_ply(demo, tmp_path / "scene.ply")
    cloud = read_ply(out)
    src = read_ply(demo / "scene" / "points.ply")
    assert n == len(cloud) == len(src)
    np.testing.assert_array_equal(cloud.xyz, src.xyz)
    assert out.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")


def test_scene_ply_with_path_adds_coloured_cameras(tmp_path, demo):
    project = ProjectFolder(demo).load()
    _, n_plain = export_scene_ply(demo, tmp_path / "a.ply")
    out, n = export_scene_ply(demo, tmp_path / "b.ply", with_path=True)
    cloud = read_ply(out)
    assert n > n_plain
    extra = cloud.select(np.arange(n_plain, n))
    assert np.all(extra.entity_id == -1)
    colours = {tuple(c) for c in extra.rgb}
    assert tuple(KEYFRAME_COLOR) in colours and tuple(MONITOR_COLOR) in colours
    # every baked camera position lies on the drawn polyline
    baked = bake_path(project.camera_path)
    d = np.linalg.norm(
        extra.xyz[None, :, :] - baked.positions[:, None, :].astype(np.float32), axis=2
    )
    assert float(d.min(axis=1).max()) < 1e-5
    # the original points come first, unchanged
    np.testing.assert_array_equal(cloud.xyz[:n_plain], read_ply(tmp_path / "a.ply").xyz)


def test_frustum_points_lie_on_the_pyramid():
    c2w = pose_matrix((1.0, 2.0, 3.0), (1.0, 0.0, 0.0, 0.0))
    pts = frustum_points(c2w, 60.0, 2.0, depth=1.0, spacing=0.05)
    local = pts - (1.0, 2.0, 3.0)
    assert np.all(local[:, 2] >= -1e-12) and np.all(local[:, 2] <= 1 + 1e-12)
    ty = np.tan(np.radians(30.0))
    far = local[np.isclose(local[:, 2], 1.0)]
    assert np.max(np.abs(far[:, 1])) == pytest.approx(ty)
    assert np.max(np.abs(far[:, 0])) == pytest.approx(2 * ty)
    gaps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert np.median(gaps) <= 0.05 + 1e-9


def test_disabled_monitors_are_grey(tmp_path):
    project = make_project(tmp_path / "p", monitors=True)
    overlay = camera_overlay(project, 10.0)
    colours = {tuple(c) for c in overlay.rgb}
    assert tuple(MONITOR_OFF_COLOR) in colours and tuple(MONITOR_COLOR) in colours


def _write_round_clouds(demo, run_id="r1"):
    run = empty_run(demo, run_id).path
    for r, n in ((0, 10), (1, 20)):
        d = run / f"round_{r:03d}"
        d.mkdir(parents=True)
        xyz = np.full((n, 3), float(r), np.float32)
        write_ply(d / "world.ply", PointCloud(xyz, np.zeros((n, 3), np.uint8)))
        write_ply(
            d / "entity.ply",
            PointCloud(xyz + 1, np.zeros((n, 3), np.uint8), np.full(n, 3, np.int32)),
        )
    return run


def test_run_clouds_one_per_round_or_one_round(tmp_path, demo):
    _write_round_clouds(demo)
    results = export_run_ply(demo, "r1", tmp_path / "clouds.ply")
    assert [(p.name, n) for p, n in results] == [
        ("clouds_round_000.ply", 20),
        ("clouds_round_001.ply", 40),
    ]
    one = read_ply(tmp_path / "clouds_round_001.ply")
    assert sorted(set(one.entity_id.tolist())) == [-1, 3]
    ((path, n),) = export_run_ply(demo, "r1", tmp_path / "r0.ply", round_index=0, with_path=True)
    assert n > 20
    with pytest.raises(WorldStudioError, match="round_005"):
        export_run_ply(demo, "r1", tmp_path / "x.ply", round_index=5)
    with pytest.raises(WorldStudioError, match="no such run.*r1"):
        export_run_ply(demo, "nope", tmp_path / "x.ply")
    with pytest.raises(WorldStudioError, match="not a run id"):
        export_run_ply(demo, "../r1", tmp_path / "x.ply")


def test_a_pending_scene_has_no_ply(tmp_path):
    make_project(tmp_path / "p")
    with pytest.raises(WorldStudioError, match="no reconstructed scene"):
        export_scene_ply(tmp_path / "p", tmp_path / "x.ply")
    assert not (tmp_path / "x.ply").exists()


# ---------------------------------------------------------------------------------------- baked path


def test_path_records_match_the_bake_and_intrinsics(tmp_path, demo):
    project = ProjectFolder(demo).load()
    records = baked_path_records(project)
    baked = bake_path(project.camera_path, n_frames=project.total_frames)
    assert len(records) == project.total_frames == len(baked)
    for i in (0, 37, len(records) - 1):
        r = records[i]
        assert r["index"] == i and r["time"] == pytest.approx(i / 16)
        np.testing.assert_allclose(np.reshape(r["c2w"], (4, 4)), baked.c2w[i])
        np.testing.assert_allclose(
            pose_matrix(r["position"], r["quaternion_wxyz"]), baked.c2w[i], atol=1e-12
        )
        K = intrinsics_from_fov(baked.fov[i], 96, 160)
        assert (r["fx"], r["fy"], r["cx"], r["cy"]) == pytest.approx((K[0, 0], K[1, 1], 80.0, 48.0))
        assert (r["width"], r["height"]) == (160, 96)
    own = baked_path_records(project, frames="path")
    assert len(own) == len(bake_path(project.camera_path))


def test_path_json_and_csv_agree(tmp_path, demo):
    jpath, n = export_path_json(demo, tmp_path / "path.json")
    cpath, m = export_path_csv(demo, tmp_path / "path.csv")
    assert n == m == 130
    data = json.loads(jpath.read_text())
    assert data["format"] == "worldstudio.baked_path" and "OpenCV" in data["convention"]
    with open(cpath, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_COLUMNS
    for rec, row in zip(data["frames"], rows[1:], strict=True):
        values = dict(zip(rows[0], row, strict=True))
        assert int(values["index"]) == rec["index"]
        assert [float(values[f"m{r}{c}"]) for r in range(4) for c in range(4)] == rec[
            "c2w"
        ]  # full precision
        assert float(values["qw"]) == rec["quaternion_wxyz"][0]
        assert float(values["fov"]) == rec["fov"] and int(values["height"]) == 96


def test_path_export_needs_keyframes(tmp_path):
    make_project(tmp_path / "p", keyframes=[])
    with pytest.raises(WorldStudioError, match="no keyframes"):
        export_path_json(tmp_path / "p", tmp_path / "x.json")


# ---------------------------------------------------------------------------------------- run mp4


def frames(n, value, h=96, w=160):
    return [np.full((h, w, 3), (value + 10 * i) % 256, np.uint8) for i in range(n)]


def make_run(demo, *, monitors=True, renders=True, rounds=2, n=5):
    """Each round: observer.mp4 (round 0 at 40, round 1 at 100), renders.mp4 and a monitor
    clip two frames short; run.json says 8 fps."""
    run = empty_run(demo, "gen1", fps=8)
    for r in range(rounds):
        run.round_dir(r).mkdir()
        write_mp4(run.observer_mp4(r), frames(n, 40 + 60 * r), fps=16)
        if renders:
            write_mp4(run.renders_mp4(r), frames(n, 200), fps=16)
        if monitors:
            write_mp4(run.monitor_mp4(r, "mon-ball"), frames(n - 2, 250), fps=16)
    return run.path


def test_observer_layout_concatenates_rounds(tmp_path, demo):
    make_run(demo)
    out, n = export_run_mp4(demo, "gen1", tmp_path / "obs.mp4")
    info = probe_video(out)
    assert (n, info.frames, info.width, info.height, info.fps) == (10, 10, 160, 96, 8.0)
    got = list(read_frames(out))
    assert abs(int(got[0].mean()) - 40) < 4 and abs(int(got[5].mean()) - 100) < 4


def test_combined_layout_puts_monitors_on_the_right(tmp_path, demo):
    make_run(demo)
    out, n = export_run_mp4(demo, "gen1", tmp_path / "comb.mp4", layout="combined")
    info = probe_video(out)
    assert (info.width, info.height, n) == (320, 96, 10)  # one monitor: a full-size tile
    got = list(read_frames(out))
    right = got[0][40:, 200:]  # below the label
    assert abs(int(right.mean()) - 250) < 6
    assert (
        int(got[4][40:, 170:].max()) < 40
    )  # the monitor clip is 2 frames short: black below the label


def test_compose_combined_stacks_monitor_tiles():
    obs = np.zeros((96, 160, 3), np.uint8)
    out = compose_combined(
        obs, [("a", np.full((96, 160, 3), 255, np.uint8)), ("b", None)], 160 / 96
    )
    assert out.shape == (96, 160 + 80, 3)
    assert out[40, 200].min() == 255 and out[90, 200].max() == 0


def test_conditioning_layout(tmp_path, demo):
    make_run(demo)
    out, n = export_run_mp4(demo, "gen1", tmp_path / "cond.mp4", layout="conditioning")
    info = probe_video(out)
    assert (info.width, info.height, n) == (320, 96, 10)
    got = list(read_frames(out))
    assert abs(int(got[0][:, 160:].mean()) - 200) < 4


def test_missing_pieces_are_clear_errors(tmp_path, demo):
    make_run(demo, renders=False)
    with pytest.raises(WorldStudioError, match="conditioning renders"):
        export_run_mp4(demo, "gen1", tmp_path / "c.mp4", layout="conditioning")
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))
    with pytest.raises(WorldStudioError, match="no such run"):
        export_run_mp4(demo, "other", tmp_path / "c.mp4")
    empty_run(demo, "empty")
    with pytest.raises(WorldStudioError, match="no observer frames"):
        export_run_mp4(demo, "empty", tmp_path / "c.mp4")


def test_final_mp4_is_the_observer_fallback(tmp_path, demo):
    run = empty_run(demo, "old")
    write_mp4(run.final_mp4, frames(7, 10), fps=16)
    out, n = export_run_mp4(demo, "old", tmp_path / "o.mp4")
    assert n == 7 and probe_video(out).fps == 16.0
