"""Run folders: the layout (RunFolder), run.json (RunRecord), and writing a run (RunWriter)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.world import EntityCloud
from worldstudio.core.media import probe_video, read_frames
from worldstudio.core.pointcloud import PointCloud, write_ply
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.run_writer import RoundState, RunWriter
from worldstudio.core.project.runs import (
    RunError,
    RunFolder,
    RunRecord,
    list_runs,
    new_run_id,
    pack_clouds,
    resolve_run,
    run_by_id,
    safe_name,
    unpack_clouds,
)

F, H, W = 4, 16, 24


def test_run_folders(tmp_path):
    folder = ProjectFolder(tmp_path / "p")
    folder.runs_dir.mkdir(parents=True)
    with pytest.raises(RunError, match="no runs yet"):
        resolve_run(folder, None)
    rid = new_run_id(folder.runs_dir)
    (folder.runs_dir / rid).mkdir()
    assert new_run_id(folder.runs_dir) == f"{rid}-2"
    run = RunFolder(folder.runs_dir / rid)
    assert run.completed_rounds() == 0 and not run.round_complete(0)
    run.round_dir(0).mkdir()
    run.round_file(0).write_text('{"complete": false}')
    assert run.completed_rounds() == 0
    run.round_file(0).write_text('{"complete": true}')
    assert run.completed_rounds() == 1
    with pytest.raises(RunError, match="not found"):
        resolve_run(folder, rid)  # no run.json yet
    assert safe_name("mon-ball", "monitor id") == "mon-ball"
    with pytest.raises(RunError):
        safe_name("../x", "entity id")


def test_pack_and_unpack_frames():
    frames = [EntityCloud.empty(), EntityCloud(np.ones((3, 3)), np.zeros((3, 3), np.uint8))]
    packed = pack_clouds(frames)
    assert packed["offsets"].tolist() == [0, 0, 3]
    back = [EntityCloud(*c) for c in unpack_clouds(packed["xyz"], packed["rgb"], packed["offsets"])]
    assert [len(c) for c in back] == [0, 3] and back[1].centroid.tolist() == [1.0, 1.0, 1.0]


def record(run_id: str, created: str = "2026-01-01T00:00:00+00:00", fps: int = 8) -> RunRecord:
    return RunRecord(
        id=run_id,
        created=created,
        backend="geometry",
        model_id=None,
        profile=None,
        lifter="render",
        settings={"fps": fps, "frames_per_round": F},
        rounds_total=2,
        parent=None,
        seeds={"run": 1, "rounds": []},
        cameras={"observer": {"frames": 2 * F}, "monitors": []},
        entities=[{"id": "e1", "name": "ball"}],
        project={},
    )


def test_runs_are_listed_oldest_first_and_found_by_id(tmp_path):
    folder = ProjectFolder(tmp_path / "p")
    for rid, created in (("b", "2026-01-02T00:00:00+00:00"), ("a", "2026-01-03T00:00:00+00:00")):
        run = RunFolder(folder.runs_dir / rid)
        run.path.mkdir(parents=True)
        run.write_meta(record(rid, created, fps=12).to_json())
    (folder.runs_dir / "preview-1").mkdir()  # no run.json: not a run
    (folder.runs_dir / "broken").mkdir()
    (folder.runs_dir / "broken" / "run.json").write_text('{"format": "something else"}')
    assert [r.id for r in list_runs(folder)] == ["b", "a"]
    assert resolve_run(folder, None).id == "a"
    assert run_by_id(folder, "b").fps() == 12.0
    with pytest.raises(RunError, match="not a run id"):
        run_by_id(folder, "../b")
    with pytest.raises(RunError, match="no such run; runs: b, a"):
        run_by_id(folder, "preview-1")
    meta = run_by_id(folder, "a").read_meta()
    assert meta["format"] == "worldstudio.run" and meta["status"] == "running"
    assert "outputs" not in meta and meta["updated"]


STATIC = PointCloud(
    np.random.default_rng(9).random((70, 3)).astype(np.float32),
    np.arange(210, dtype=np.uint8).reshape(70, 3),
)


def _state(seed: int, monitors: tuple[str, ...] = ("m1",)) -> RoundState:
    """Round ``seed``: the static world is STATIC's first 50 points after round 0, all 70 after
    round 1 (it only grows at its end)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    track = [
        EntityCloud(rng.random((i + 1, 3)), np.full((i + 1, 3), 9, np.uint8)) for i in range(F)
    ]
    return RoundState(
        observer=frames,
        coverage=rng.random((F, H, W)) > 0.5,
        monitors={mid: rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8) for mid in monitors},
        static=STATIC.select(np.arange(50 + 20 * seed)),
        tracks={"e1": track},
        state={"e1": track[-1]},
        state_time={"e1": 0.25},
        times=np.arange(F) / 8.0,
        static_added=(10, 20)[seed],
        voxel_size=0.25,
    )


def _info(r: int) -> dict:
    return {"round": r, "timings": {}, "complete": True}


def test_a_written_round_reads_back_losslessly_and_the_run_completes(tmp_path):
    run = RunFolder(tmp_path / "runs" / "r1")
    finished = []
    writer = RunWriter(
        run, record("r1"), fps=8, monitor_ids=["m1"], on_round_written=finished.append
    )
    try:
        writer.begin(0)
        assert run.read_meta()["status"] == "running"
        states = [_state(0), _state(1)]
        for r, state in enumerate(states):
            writer.clear_round(r)
            writer.save_state(r, state)
            assert not run.round_complete(r)  # complete only once its videos are written
            writer.submit_round(r, state, state.observer[::-1].copy(), _info(r))
        writer.finish()
    finally:
        writer.close()
    assert finished == [0, 1] and run.completed_rounds() == 2
    meta = run.read_meta()
    assert (meta["status"], meta["rounds_done"], meta["error"]) == ("complete", 2, None)
    assert meta["outputs"]["final"] == "final.mp4"
    assert run.round_indices() == [0, 1] and run.has_video() and run.has_clouds()
    assert "videos" in run.read_round(1)["timings"] and writer.video_seconds > 0
    assert np.array_equal(np.load(run.observer_npy(1)), states[1].observer)
    assert np.array_equal(np.load(run.coverage_npy(0)), states[0].coverage)
    assert np.array_equal(np.load(run.monitor_npy(0, "m1")), states[0].monitors["m1"])
    track = run.read_entity_track(1, "e1")
    assert [len(xyz) for xyz, _ in track] == [1, 2, 3, 4]
    np.testing.assert_array_equal(track[2][0], states[1].tracks["e1"][2].xyz)
    assert len(run.round_cloud(0)) == 50
    assert probe_video(run.final_mp4).frames == 2 * F
    combined = probe_video(run.final_combined_mp4)
    assert (combined.frames, combined.width, combined.height) == (2 * F, 2 * W, H)
    for path in (run.observer_mp4(0), run.renders_mp4(1), run.monitor_mp4(1, "m1")):
        assert len(list(read_frames(path))) == F

    again = RunWriter(run, record("r1"), fps=8, monitor_ids=["m1"])
    try:
        saved = again.restore(2, ["e1", "gone"], context=3)
    finally:
        again.close()
    np.testing.assert_array_equal(saved.observer, states[1].observer[-3:])
    np.testing.assert_array_equal(saved.monitors["m1"], states[1].monitors["m1"][-3:])
    np.testing.assert_array_equal(saved.static.xyz, states[1].static.xyz)
    np.testing.assert_array_equal(saved.static.rgb, states[1].static.rgb)
    assert saved.voxel_size == 0.25
    xyz, rgb, t = saved.entities["e1"]
    np.testing.assert_array_equal(xyz, states[1].state["e1"].xyz)
    assert t == 0.25 and "gone" not in saved.entities


def test_a_branch_copies_the_parents_rounds(tmp_path):
    parent = RunFolder(tmp_path / "runs" / "parent")
    parent.round_dir(0).mkdir(parents=True)
    parent.round_file(0).write_text(json.dumps({"complete": True}))
    three = PointCloud(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint8))
    write_ply(parent.static_base_ply, three)
    parent.static_base_json.write_text(json.dumps({"voxel_size": 0.1, "points": 3}))
    write_ply(parent.static_added_ply(0), three)
    child = RunFolder(tmp_path / "runs" / "child")
    writer = RunWriter(child, record("child"), fps=8, monitor_ids=[])
    try:
        writer.copy_rounds(parent, 1)
    finally:
        writer.close()
    assert child.completed_rounds() == 1 and child.static_added_ply(0).is_file()
    assert len(child.read_static(0)) == 6 and child.static_voxel_size() == 0.1


def test_a_run_with_a_whole_static_cloud_per_round_is_read_but_not_continued(tmp_path):
    """Runs written before incremental storage: round_XXX/static.ply holds the whole cloud."""
    old = RunFolder(tmp_path / "runs" / "old")
    old.round_dir(0).mkdir(parents=True)
    old.round_file(0).write_text(json.dumps({"complete": True}))
    write_ply(
        old.static_ply(0), PointCloud(np.ones((4, 3), np.float32), np.zeros((4, 3), np.uint8))
    )
    assert len(old.read_static(0)) == 4 and len(old.round_cloud(0)) == 4
    writer = RunWriter(RunFolder(tmp_path / "runs" / "child"), record("c"), fps=8, monitor_ids=[])
    try:
        with pytest.raises(RunError, match="older World Studio.*not resumed or branched"):
            writer.copy_rounds(old, 1)
    finally:
        writer.close()
    again = RunWriter(old, record("old"), fps=8, monitor_ids=[])
    try:
        with pytest.raises(RunError, match="older World Studio"):
            again.restore(1, [], context=0)
    finally:
        again.close()


def test_the_static_world_only_grows_at_its_end(tmp_path):
    run = RunFolder(tmp_path / "runs" / "r1")
    writer = RunWriter(run, record("r1"), fps=8, monitor_ids=[])
    try:
        writer.save_state(0, _state(0, monitors=()))
        changed = _state(1, monitors=())
        changed.static_added = 25  # says 45 points came before: round 0 left 50
        with pytest.raises(ValueError, match="existing points must never change"):
            writer.save_state(1, changed)
    finally:
        writer.close()
    assert run.static_base_ply.is_file() and len(run.read_static(0)) == 50


def test_a_stopped_run_records_why_and_leaves_no_final_video(tmp_path):
    run = RunFolder(tmp_path / "runs" / "r1")
    writer = RunWriter(run, record("r1"), fps=8, monitor_ids=[])
    logged: list[str] = []
    try:
        writer.begin(0)

        def boom() -> None:
            raise OSError("disk full")

        writer.submit(boom)
        writer.stop("failed", "RuntimeError: out of memory", logged.append)
    finally:
        writer.close()
    meta = run.read_meta()
    assert (meta["status"], meta["error"], meta["rounds_done"]) == (
        "failed",
        "RuntimeError: out of memory",
        0,
    )
    assert logged == ["while stopping: OSError: disk full"]
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json"]


def test_a_background_failure_surfaces_at_the_next_check(tmp_path):
    writer = RunWriter(RunFolder(tmp_path / "r"), record("r"), fps=8, monitor_ids=[])
    try:

        def boom() -> None:
            raise WorldStudioError("encoder failed")

        writer.submit(boom)
        with pytest.raises(WorldStudioError, match="encoder failed"):
            writer.drain()
    finally:
        writer.close()
