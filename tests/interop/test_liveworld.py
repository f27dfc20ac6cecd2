"""LiveWorld samples: export, import, round trips and malformed input."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import yaml
from PIL import Image

from worldstudio.core.errors import Cancelled, FormatError, WorldStudioError
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.interop.liveworld import (
    export_liveworld,
    import_liveworld,
    join_fg_prompts,
    read_liveworld,
    resample_rounds,
    trajectory_keyframes,
)
from worldstudio.core.project import Entity, ProjectFolder

from .helpers import make_project, smooth_trajectory, tree, write_sample


def load_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------------------------- export


def test_export_writes_yaml_npz_and_image(tmp_path):
    project = make_project(tmp_path / "p", rounds=2, fpr=65)
    result = export_liveworld(tmp_path / "p", tmp_path / "lw")
    data = yaml.safe_load(result.yaml_path.read_text())
    assert data["geometry_file_name"] == "geometry.npz"
    assert (tmp_path / "lw" / data["first_frame_image"]).read_bytes() == (
        tmp_path / "p" / "source.png"
    ).read_bytes()
    assert list(data["iter_input"]) == ["0", "1"]
    assert data["iter_input"]["0"] == {
        "scene_text": "scene text of round 0",
        "fg_text": "a dog runs, round 0. a cat sleeps",
    }
    assert data["iter_input"]["1"]["fg_text"] == "a dog runs, round 1"
    assert data["runtime"] == {"seed": 7}
    arrays = load_npz(tmp_path / "lw" / "geometry.npz")
    assert arrays["poses_c2w"].shape == (130, 4, 4) and arrays["poses_c2w"].dtype == np.float32
    assert arrays["intrinsics"].shape == (130, 3, 3)
    baked = bake_path(project.camera_path, n_frames=130)
    np.testing.assert_allclose(arrays["poses_c2w"], baked.c2w, atol=1e-6)
    np.testing.assert_allclose(
        arrays["intrinsics"][0], intrinsics_from_fov(50.0, 480, 832), rtol=1e-6
    )
    # the 160x96 project is not LiveWorld's size: said, not hidden
    assert any("832x480" in w for w in result.warnings)
    assert not any("resampled" in w for w in result.warnings)


def test_export_warns_about_empty_prompts_and_creates_its_folder(tmp_path):
    """The cat has no prompt in round 2 and round 2 loses its scene text: both are said. The
    sample's folder (two levels deep) does not exist yet: it is made."""
    make_project(tmp_path / "p", rounds=2, fpr=65)
    folder = ProjectFolder(tmp_path / "p")
    project = folder.load()
    project.rounds[1].scene_text = "  "
    folder.save(project)
    out = tmp_path / "new" / "lw"
    result = export_liveworld(tmp_path / "p", out)
    assert result.yaml_path == out / "sample.yaml" and result.yaml_path.is_file()
    assert "round 2 of 2 has no scene text (an empty scene_text)" in result.warnings
    assert any(w.startswith("entity 'cat' has no prompt in round 2") for w in result.warnings)
    assert not any("'dog'" in w for w in result.warnings)


def test_export_resamples_other_round_lengths_and_says_so(tmp_path):
    project = make_project(tmp_path / "p", rounds=3, fpr=33)
    result = export_liveworld(tmp_path / "p", tmp_path / "lw")
    assert any("resampled" in w and "33" in w for w in result.warnings)
    poses = load_npz(tmp_path / "lw" / "geometry.npz")["poses_c2w"]
    assert poses.shape == (195, 4, 4)
    baked = bake_path(project.camera_path, n_frames=99)
    for r in range(3):  # round boundaries stay aligned with the project's rounds
        np.testing.assert_allclose(poses[r * 65], baked.c2w[r * 33], atol=1e-6)
        np.testing.assert_allclose(poses[r * 65 + 64], baked.c2w[r * 33 + 32], atol=1e-6)
        # frame 2 of the round lies half way between baked frames 1 and... r*33 + 1.0
        np.testing.assert_allclose(
            poses[r * 65 + 2, :3, 3], baked.c2w[r * 33 + 1, :3, 3], atol=1e-6
        )
    R = poses[:, :3, :3].astype(np.float64)
    np.testing.assert_allclose(
        np.swapaxes(R, 1, 2) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-5
    )


def test_resample_slerps_between_frames():
    from worldstudio.core.geometry.transforms import rotation_about_axis

    c2w = np.stack([np.eye(4), np.eye(4)])
    c2w[1, :3, :3] = rotation_about_axis((0, -1, 0), 90)
    c2w[1, :3, 3] = (2, 0, 0)
    out, fov = resample_rounds(c2w, np.array([40.0, 60.0]), 1, 2, 3)
    np.testing.assert_allclose(out[1, :3, 3], (1, 0, 0))
    np.testing.assert_allclose(out[1, :3, :3], rotation_about_axis((0, -1, 0), 45), atol=1e-12)
    np.testing.assert_allclose(fov, [40, 50, 60])


def test_join_fg_prompts():
    assert join_fg_prompts(["a dog runs", " ", "a cat sleeps."]) == "a dog runs. a cat sleeps."
    assert join_fg_prompts(["only one"]) == "only one"
    assert join_fg_prompts([]) == ""


# ---------------------------------------------------------------------------------------- round trips


def test_studio_round_trip_keeps_poses_and_prompts(tmp_path):
    make_project(tmp_path / "p", rounds=2, fpr=65)
    first = export_liveworld(tmp_path / "p", tmp_path / "lw1")
    imported = import_liveworld(first.yaml_path, tmp_path / "q", reconstruct=False)
    assert imported.pending and imported.project.scene.pending
    second = export_liveworld(tmp_path / "q", tmp_path / "lw2")
    a, b = load_npz(tmp_path / "lw1" / "geometry.npz"), load_npz(tmp_path / "lw2" / "geometry.npz")
    assert np.max(np.abs(a["poses_c2w"].astype(float) - b["poses_c2w"])) < 1e-5
    assert np.max(np.abs(a["intrinsics"].astype(float) - b["intrinsics"]) / 400) < 1e-5
    y1, y2 = (
        yaml.safe_load(first.yaml_path.read_text()),
        yaml.safe_load(second.yaml_path.read_text()),
    )
    assert y1["iter_input"] == y2["iter_input"]
    assert y2["runtime"] == {"seed": 7}
    p = imported.project
    assert [r.scene_text for r in p.rounds] == ["scene text of round 0", "scene text of round 1"]
    assert [e.name for e in p.entities] == ["foreground"]
    assert p.entities[0].prompts == ["a dog runs, round 0. a cat sleeps", "a dog runs, round 1"]
    assert (
        p.generation.width,
        p.generation.height,
        p.generation.fps,
        p.generation.frames_per_round,
    ) == (832, 480, 16, 65)
    # the sidecar brings the original, editable keyframes back
    original = ProjectFolder(tmp_path / "p").load().camera_path
    assert [k.id for k in p.camera_path.keyframes] == [k.id for k in original.keyframes]
    assert p.camera_path == original


def test_a_stale_or_broken_sidecar_is_ignored(tmp_path):
    make_project(tmp_path / "p", rounds=2, fpr=65)
    first = export_liveworld(tmp_path / "p", tmp_path / "lw")
    side = tmp_path / "lw" / "geometry.worldstudio.json"
    assert side in first.files
    arrays = load_npz(tmp_path / "lw" / "geometry.npz")
    arrays["poses_c2w"][50:, 0, 3] += 0.01  # the poses were edited after the export
    np.savez(tmp_path / "lw" / "geometry.npz", **arrays)
    result = import_liveworld(first.yaml_path, tmp_path / "q", reconstruct=False)
    assert any("no longer matches" in w for w in result.warnings)
    baked = bake_path(result.project.camera_path, n_frames=130)
    assert np.max(np.abs(baked.c2w - arrays["poses_c2w"])) < 1e-5
    side.write_text("{ not json")
    result = import_liveworld(first.yaml_path, tmp_path / "q2", reconstruct=False)
    assert any("geometry.worldstudio.json: ignored" in w for w in result.warnings)


def test_foreign_trajectory_round_trips_to_1e5(tmp_path):
    poses = smooth_trajectory(130)
    yaml_path = write_sample(tmp_path / "s", poses=poses)
    imported = import_liveworld(yaml_path, tmp_path / "q", reconstruct=False)
    out = export_liveworld(tmp_path / "q", tmp_path / "lw")
    again = load_npz(tmp_path / "lw" / "geometry.npz")
    assert np.max(np.abs(again["poses_c2w"] - poses)) < 1e-5
    np.testing.assert_allclose(
        again["intrinsics"], load_npz(tmp_path / "s" / "geometry.npz")["intrinsics"], rtol=1e-5
    )
    data = yaml.safe_load(out.yaml_path.read_text())
    assert data["iter_input"] == yaml.safe_load(yaml_path.read_text())["iter_input"]
    assert imported.project.name == "sample"
    assert imported.project.source.width == 832


def test_trajectory_keyframes_reproduce_any_poses():
    poses = smooth_trajectory(40, seed=3)
    fov = np.linspace(40, 50, 40)
    kfs, how = trajectory_keyframes(poses, fov, 16)
    from worldstudio.core.project import CameraPath, PathSettings

    baked = bake_path(CameraPath(keyframes=kfs, settings=PathSettings(fps=16)), n_frames=40)
    assert np.max(np.abs(baked.c2w - poses)) < 1e-5
    assert np.max(np.abs(baked.fov - fov)) < 1e-5
    assert how in ("fitted", "per-frame")


def test_extra_poses_are_dropped_and_pose_zero_is_kept_or_rebased(tmp_path):
    from worldstudio.core.geometry.transforms import invert_pose, pose_matrix, quat_from_axis_angle

    base = pose_matrix((1.0, 2.0, 3.0), quat_from_axis_angle((0, 1, 0), 0.3))
    poses = base[None] @ smooth_trajectory(140)
    yaml_path = write_sample(tmp_path / "s", poses=poses, rounds=2)
    kept = import_liveworld(yaml_path, tmp_path / "kept", reconstruct=False)
    assert any("dropped" in w for w in kept.warnings)
    assert any("not the identity" in w and "--rebase" in w for w in kept.warnings)
    baked = bake_path(kept.project.camera_path, n_frames=130)
    assert np.max(np.abs(baked.c2w - poses[:130])) < 1e-5
    imported = import_liveworld(yaml_path, tmp_path / "q", reconstruct=False, rebase=True)
    assert any("re-expressed" in w for w in imported.warnings)
    baked = bake_path(imported.project.camera_path, n_frames=130)
    expected = invert_pose(poses[0])[None] @ poses[:130]
    assert np.max(np.abs(baked.c2w - expected)) < 1e-5
    np.testing.assert_allclose(baked.c2w[0], np.eye(4), atol=1e-6)


def test_paths_resolve_against_parent_folders_and_cwd(tmp_path):
    root = tmp_path / "bench"
    write_sample(root / "processed")
    scripts = root / "processed" / "kid" / "infer_scripts"
    scripts.mkdir(parents=True)
    data = yaml.safe_load((root / "processed" / "sample.yaml").read_text())
    data["geometry_file_name"] = "processed/geometry.npz"
    data["first_frame_image"] = "processed/image.png"
    (scripts / "case.yaml").write_text(yaml.safe_dump(data))
    sample = read_liveworld(scripts / "case.yaml")  # three levels up: bench/
    assert sample.geometry_path == root / "processed" / "geometry.npz"
    data["first_frame_image"] = "image.png"
    (tmp_path / "elsewhere.yaml").write_text(
        yaml.safe_dump(data | {"geometry_file_name": "bench/processed/geometry.npz"})
    )
    with pytest.raises(FormatError, match="first_frame_image"):
        read_liveworld(tmp_path / "elsewhere.yaml")
    sample = read_liveworld(tmp_path / "elsewhere.yaml", cwd=root / "processed")
    assert sample.image_path == root / "processed" / "image.png"


def test_generation_overrides_are_read(tmp_path):
    yaml_path = write_sample(
        tmp_path / "s",
        extra={"runtime": {"seed": 42}, "observer": {"infer_steps": 12, "guidance_scale": 3.5}},
    )
    p = import_liveworld(yaml_path, tmp_path / "q", reconstruct=False).project
    assert (p.generation.seed, p.generation.steps, p.generation.guidance) == (42, 12, 3.5)


def test_no_fg_text_means_no_entity_and_no_intrinsics_means_default_fov(tmp_path):
    ii = {"0": {"scene_text": "a", "fg_text": ""}}
    yaml_path = write_sample(tmp_path / "s", rounds=1, iter_input=ii, intrinsics=None)
    result = import_liveworld(yaml_path, tmp_path / "q", reconstruct=False)
    assert result.project.entities == []
    assert any("no intrinsics" in w for w in result.warnings)
    assert all(kf.fov == pytest.approx(60.0) for kf in result.project.camera_path.keyframes)


def test_an_image_of_another_size_is_cropped_and_said(tmp_path):
    yaml_path = write_sample(tmp_path / "s", image_size=(1000, 480))
    result = import_liveworld(yaml_path, tmp_path / "q", reconstruct=False)
    assert any("crops" in w for w in result.warnings)
    src = result.project.source
    assert (src.width, src.height, src.original_size) == (832, 480, (480, 1000))
    assert (src.crop.x, src.crop.width) == (84, 832)
    assert Image.open(tmp_path / "q" / "source.png").size == (832, 480)


# ---------------------------------------------------------------------------------------- reconstruction


def _fake_reconstruct(monkeypatch, fn):
    mod = types.ModuleType("worldstudio.core.reconstruct.new_project")
    mod.new_project_from_image = fn
    pkg = types.ModuleType("worldstudio.core.reconstruct")
    pkg.new_project = mod
    monkeypatch.setitem(sys.modules, "worldstudio.core.reconstruct", pkg)
    monkeypatch.setitem(sys.modules, "worldstudio.core.reconstruct.new_project", mod)


def test_missing_depth_model_leaves_the_reconstruction_pending(tmp_path, monkeypatch):
    def no_model(image, out, **kw):
        out.mkdir(parents=True)
        (out / "junk").write_text("half-made")
        raise WorldStudioError("depth model 'depth-anything' is not downloaded")

    _fake_reconstruct(monkeypatch, no_model)
    result = import_liveworld(write_sample(tmp_path / "s"), tmp_path / "q")
    assert result.pending and result.project.scene.pending
    assert any("pending" in w and "not downloaded" in w for w in result.warnings)
    assert not (tmp_path / "q" / "junk").exists()
    assert ProjectFolder(tmp_path / "q").load().scene.pending


def test_a_reconstruction_is_used_when_a_model_is_there(tmp_path, monkeypatch):
    seen = {}

    def reconstruct(image, out, *, depth_model=None, fov=None, size=None, crop=None, ctx=None):
        seen.update(fov=fov, size=size, depth_model=depth_model)
        p = make_project(out, rounds=1)
        p.scene.pending = False
        p.scene.point_count = 1234
        ProjectFolder(out).save(p)
        return p

    _fake_reconstruct(monkeypatch, reconstruct)
    result = import_liveworld(write_sample(tmp_path / "s"), tmp_path / "q", depth_model="m")
    assert not result.pending and result.project.scene.point_count == 1234
    assert seen["size"] == (832, 480) and seen["depth_model"] == "m"
    assert abs(seen["fov"] - 48.0) < 1e-4
    loaded = ProjectFolder(tmp_path / "q").load()
    assert len(loaded.rounds) == 2 and loaded.entities[0].name == "foreground"


def test_cancelling_during_reconstruction_leaves_nothing(tmp_path, monkeypatch):
    def cancelled(image, out, **kw):
        out.mkdir(parents=True)
        raise Cancelled("cancelled")

    _fake_reconstruct(monkeypatch, cancelled)
    yaml_path = write_sample(tmp_path / "s")
    before = tree(tmp_path)
    with pytest.raises(Cancelled):
        import_liveworld(yaml_path, tmp_path / "q")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------------------- malformed


def _rejects(tmp_path, yaml_path, match):
    before = tree(tmp_path)
    with pytest.raises(FormatError, match=match) as info:
        import_liveworld(yaml_path, tmp_path / "out", reconstruct=False)
    assert tree(tmp_path) == before
    return str(info.value)


@pytest.mark.parametrize("key", ["geometry_file_name", "first_frame_image", "iter_input"])
def test_missing_keys(tmp_path, key):
    yaml_path = write_sample(tmp_path / "s")
    data = yaml.safe_load(yaml_path.read_text())
    del data[key]
    yaml_path.write_text(yaml.safe_dump(data))
    msg = _rejects(tmp_path, yaml_path, key)
    assert "sample.yaml" in msg and "missing" in msg


def test_non_string_iter_input_keys(tmp_path):
    text = (
        "geometry_file_name: geometry.npz\nfirst_frame_image: image.png\niter_input:\n"
        "  0: {scene_text: a, fg_text: ''}\n  1: {scene_text: b, fg_text: ''}\n"
    )
    yaml_path = write_sample(tmp_path / "s", yaml_text=text)
    msg = _rejects(tmp_path, yaml_path, "iter_input")
    assert "must be a string" in msg and "'0'" in msg


def test_non_contiguous_iter_input_keys(tmp_path):
    ii = {"0": {"scene_text": "a", "fg_text": ""}, "2": {"scene_text": "b", "fg_text": ""}}
    yaml_path = write_sample(tmp_path / "s", iter_input=ii)
    _rejects(tmp_path, yaml_path, "without gaps.*'2'")


def test_missing_scene_text(tmp_path):
    ii = {"0": {"fg_text": "x"}}
    yaml_path = write_sample(tmp_path / "s", iter_input=ii, rounds=1)
    _rejects(tmp_path, yaml_path, "iter_input.'0'.scene_text' is missing")


def test_wrong_pose_shape(tmp_path):
    yaml_path = write_sample(tmp_path / "s", poses=np.zeros((130, 3, 4)))
    _rejects(tmp_path, yaml_path, r"poses_c2w' must have shape \(F, 4, 4\), got \(130, 3, 4\)")


def test_too_few_poses(tmp_path):
    yaml_path = write_sample(tmp_path / "s", poses=smooth_trajectory(100), rounds=2)
    _rejects(tmp_path, yaml_path, "poses_c2w' has 100 poses.*2 rounds.*130")


def test_nan_poses(tmp_path):
    poses = smooth_trajectory(130)
    poses[17, 0, 3] = np.nan
    yaml_path = write_sample(tmp_path / "s", poses=poses)
    _rejects(tmp_path, yaml_path, "pose 17 has NaN")


def test_non_rotation_poses(tmp_path):
    poses = smooth_trajectory(130)
    poses[5, :3, :3] *= 2.0
    yaml_path = write_sample(tmp_path / "s", poses=poses)
    _rejects(tmp_path, yaml_path, "pose 5's 3x3 block is not a rotation")
    poses = smooth_trajectory(130)
    poses[6, :3, 0] *= -1  # a reflection
    yaml_path = write_sample(tmp_path / "s", poses=poses)
    _rejects(tmp_path, yaml_path, "pose 6's 3x3 block is not a rotation")


def test_wrong_intrinsics_shape(tmp_path):
    yaml_path = write_sample(tmp_path / "s", intrinsics=np.zeros((130, 3, 4), np.float32))
    _rejects(tmp_path, yaml_path, "intrinsics' must have shape")


def test_missing_poses_array(tmp_path):
    yaml_path = write_sample(tmp_path / "s")
    np.savez(tmp_path / "s" / "geometry.npz", other=np.zeros(3))
    _rejects(tmp_path, yaml_path, "'poses_c2w' is missing")


def test_pickled_arrays_are_not_loaded(tmp_path):
    yaml_path = write_sample(tmp_path / "s")
    np.savez(tmp_path / "s" / "geometry.npz", poses_c2w=np.array([{"evil": 1}], dtype=object))
    _rejects(tmp_path, yaml_path, "geometry.npz: holds pickled")


def test_not_an_npz(tmp_path):
    yaml_path = write_sample(tmp_path / "s")
    (tmp_path / "s" / "geometry.npz").write_text("nope")
    _rejects(tmp_path, yaml_path, "geometry.npz: not a readable npz")


def test_bad_yaml_and_missing_files(tmp_path):
    yaml_path = write_sample(tmp_path / "s", yaml_text="iter_input: [unclosed\n")
    _rejects(tmp_path, yaml_path, "not valid YAML.*line")
    yaml_path = write_sample(tmp_path / "s")
    (tmp_path / "s" / "image.png").unlink()
    _rejects(tmp_path, yaml_path, "first_frame_image.*not found")


def test_a_non_empty_target_is_refused(tmp_path):
    yaml_path = write_sample(tmp_path / "s")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "x").write_text("keep me")
    with pytest.raises(WorldStudioError, match="not empty"):
        import_liveworld(yaml_path, tmp_path / "q", reconstruct=False)
    assert [p.name for p in (tmp_path / "q").iterdir()] == ["x"]


def test_export_needs_a_source_image(tmp_path):
    project = make_project(tmp_path / "p")
    (tmp_path / "p" / "source.png").unlink()
    with pytest.raises(WorldStudioError, match="source image"):
        export_liveworld(tmp_path / "p", tmp_path / "lw")
    assert project.source is not None


def test_export_without_a_path_holds_the_source_view(tmp_path):
    make_project(tmp_path / "p", keyframes=[], entities=[Entity(name="x")])
    result = export_liveworld(tmp_path / "p", tmp_path / "lw")
    assert any("no camera path" in w for w in result.warnings)
    poses = load_npz(tmp_path / "lw" / "geometry.npz")["poses_c2w"]
    np.testing.assert_allclose(poses, np.broadcast_to(np.eye(4), poses.shape))


def test_demo_round_trip_against_the_projects_own_bake(tmp_path):
    """The demo starts slightly off the source view and eases: still the same poses."""
    from worldstudio.core.oracle.demo_project import create_demo_project

    demo = create_demo_project(tmp_path / "demo", width=160, height=96)
    result = export_liveworld(tmp_path / "demo", tmp_path / "lw")
    imported = import_liveworld(result.yaml_path, tmp_path / "q", reconstruct=False)
    a = bake_path(demo.camera_path, n_frames=demo.total_frames)
    b = bake_path(imported.project.camera_path, n_frames=imported.project.total_frames)
    assert len(a) == len(b) == 130
    assert np.max(np.abs(a.c2w - b.c2w)) < 1e-5
    assert np.max(np.abs(a.fov - b.fov)) < 1e-5
    assert [r.scene_text for r in imported.project.rounds] == [r.scene_text for r in demo.rounds]
    assert imported.project.entities[0].prompts == demo.entities[0].prompts


def test_a_monitors_scene_text_rides_in_the_storyline(tmp_path):
    """Export writes LiveWorld's preset storyline from the monitor (its own scene text, its
    entities and their prompts per round); import brings it back as a monitor's scene text."""
    import json

    project = make_project(tmp_path / "p", rounds=2, fpr=65, monitors=True)
    folder = ProjectFolder(tmp_path / "p")
    project.monitors[0].scene_text = "the street seen from the corner"
    folder.save(project)
    result = export_liveworld(tmp_path / "p", tmp_path / "lw")
    data = yaml.safe_load(result.yaml_path.read_text())
    assert data["storyline_file"] == "storyline.json"
    story = json.loads((tmp_path / "lw" / "storyline.json").read_text())
    assert story["scene_text"] == "the street seen from the corner"
    assert story["entities"] == ["dog"]  # the monitor watches the dog only
    assert story["steps"] == {"0": "a dog runs, round 0", "1": "a dog runs, round 1"}
    assert tmp_path / "lw" / "storyline.json" in result.files

    imported = import_liveworld(result.yaml_path, tmp_path / "q", reconstruct=False).project
    (m,) = imported.monitors
    assert m.scene_text == "the street seen from the corner"
    assert m.entity_ids == [imported.entities[0].id] and m.pose.position == (0.0, 0.0, 0.0)
    again = export_liveworld(tmp_path / "q", tmp_path / "lw2")
    assert json.loads((tmp_path / "lw2" / "storyline.json").read_text())["scene_text"] == (
        "the street seen from the corner"
    )
    assert yaml.safe_load(again.yaml_path.read_text())["iter_input"] == data["iter_input"]


def test_a_monitor_without_its_own_text_writes_the_rounds_and_no_monitor_no_storyline(tmp_path):
    make_project(tmp_path / "p", rounds=2, fpr=65, monitors=True)
    export_liveworld(tmp_path / "p", tmp_path / "lw")
    import json

    story = json.loads((tmp_path / "lw" / "storyline.json").read_text())
    assert story["scene_text"] == "scene text of round 0"
    make_project(tmp_path / "n", rounds=1, fpr=65)
    result = export_liveworld(tmp_path / "n", tmp_path / "lw_n")
    assert "storyline_file" not in yaml.safe_load(result.yaml_path.read_text())
    assert not (tmp_path / "lw_n" / "storyline.json").exists()


def test_a_liveworld_storyline_gives_the_entity_and_its_event_camera(tmp_path):
    """LiveWorld's own samples leave fg_text empty and describe the entity in the storyline."""
    import json

    ii = {str(r): {"scene_text": f"the stall, view {r}", "fg_text": ""} for r in range(2)}
    story = {
        "entities": ["person"],
        "scene_text": "a wooden stall under a striped canopy",
        "steps": {"0": "the boy walks to the books", "1": "the boy rests a hand on a cup"},
    }
    folder = tmp_path / "s"
    yaml_path = write_sample(
        folder, rounds=2, iter_input=ii, extra={"storyline_file": "story.json"}
    )
    (folder / "story.json").write_text(json.dumps(story))
    p = import_liveworld(yaml_path, tmp_path / "q", reconstruct=False).project
    (e,) = p.entities
    assert e.name == "person" and e.prompts == list(story["steps"].values())
    (m,) = p.monitors
    assert m.scene_text == story["scene_text"] and m.entity_ids == [e.id]
    assert m.fov == pytest.approx(48.0, abs=1e-3)  # the source camera's
    # a broken storyline is one clear line naming the file and key
    (folder / "story.json").write_text(json.dumps({"steps": {}}))
    with pytest.raises(FormatError, match="story.json: key 'scene_text' is missing"):
        import_liveworld(yaml_path, tmp_path / "r", reconstruct=False)
    (folder / "story.json").write_text("{not json")
    with pytest.raises(FormatError, match="story.json: not a readable storyline"):
        import_liveworld(yaml_path, tmp_path / "r2", reconstruct=False)
