"""Headless and live play sessions on the demo project (64x48, CPU backends): the poses of an
action string, the outputs and their counts, a session as a resumable run."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.geometry.path import bake_path
from worldstudio.core.jobs import JobContext
from worldstudio.core.media import probe_video, read_frames
from worldstudio.core.oracle import OracleScene
from worldstudio.core.play import KeyState, PlayOptions, play_job
from worldstudio.core.play.outputs import DEPTH_SCALE
from worldstudio.core.pointcloud import read_ply
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, list_runs, load_npz

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

ACTIONS = "(FN)(fLN)(SR)(SR)(BN)(rRN)(SL)"  # 7 steps: 57 frames -> 7 chunks of 9 (63 frames)
SIZE = f"{W}x{H}"


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


def _only_run(project) -> RunFolder:
    (run,) = list_runs(ProjectFolder(project))
    return run


def _observer(run: RunFolder) -> np.ndarray:
    return np.concatenate([np.load(run.observer_npy(r)) for r in range(run.completed_rounds())])


def test_an_action_string_gives_the_poses_and_frames_of_path_actions(project, tmp_path, capsys):
    play_args = ["play", str(project), "--actions", ACTIONS, "--backend", "geometry"]
    args = [*play_args, "--size", SIZE, "--no-depth", "--ply-every", "0", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"actions: {ACTIONS}" in out and "63 frames in 7 chunks" in out
    run = _only_run(project)
    meta = run.read_meta()
    assert meta["status"] == "complete" and meta["rounds_total"] == 7
    assert meta["cameras"]["observer"]["source"] == "play"
    played = load_npz(run.observer_path_npz)

    # the same steps as a camera path, through `worldstudio path --actions`
    other = tmp_path / "other.wsproj"
    shutil.copytree(project, other, ignore=shutil.ignore_patterns("runs"))
    assert main(["path", str(other), "--actions", ACTIONS]) == 0
    baked = bake_path(ProjectFolder(other).load().camera_path)
    assert len(baked) == 7 * 8 + 1
    np.testing.assert_allclose(played["c2w"][: len(baked)], baked.c2w, atol=1e-12)
    np.testing.assert_allclose(played["fov"], baked.fov)
    # (the last chunk's 6 frames past the path's end hold its last pose)

    # and the engine generated exactly what an ordinary run of that path generates
    capsys.readouterr()
    gen = ["generate", str(other), "--backend", "geometry", "--size", SIZE]
    assert main([*gen, "--frames-per-round", "9", "--rounds", "7", "--quiet"]) == 0
    assert np.array_equal(_observer(_only_run(other)), _observer(run))


def test_the_outputs_have_a_frame_each_and_a_world_every_8_frames(project):
    scene = OracleScene.demo()
    options = PlayOptions(
        actions="(FN)(SL)(fRN)", backend="oracle", size=(W, H), overlay=True, seed=3
    )
    res = play_job(project, options)(JobContext())
    run = RunFolder(res.run.run_dir)
    n = 27  # 3 steps: 25 frames -> 3 chunks of 9
    assert res.frames == n and len(res.chunk_latencies) == 3
    assert res.out == run.path / "play"
    for name in ("video.mp4", "depth.mp4", "video_actions.mp4"):
        info = probe_video(res.out / name)
        assert (info.frames, info.width, info.height) == (n, W, H), name
    pngs = sorted((res.out / "depth").glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{k:06d}.png" for k in range(n)]
    plys = sorted((res.out / "world").glob("frame_*.ply"))
    assert [p.name for p in plys] == [f"frame_{k:06d}.ply" for k in range(0, n, 8)]
    assert len(plys) == math.ceil(n / 8) == 4

    # the 16-bit depth is the world's depth, aligned with the frames: the oracle's truth
    from PIL import Image

    scale = json.loads((res.out / "depth" / "scale.json").read_text())
    assert scale["png"]["scale"] == DEPTH_SCALE
    errors = []
    for k in (0, 13, 26):
        png = np.asarray(Image.open(pngs[k]))
        assert png.dtype == np.uint16 and png.shape == (H, W)
        truth = scene.render(res.c2w[k], intrinsics_from_fov(res.fov[k], H, W), H, W, k / 16)
        known = png > 0
        assert known.mean() > 0.95
        rel = np.abs(png[known] * DEPTH_SCALE - truth.depth[known]) / truth.depth[known]
        errors.append(float(np.median(rel)))
    assert max(errors) < 0.03, errors
    # the colour-mapped depth video: near is bright, unknown black
    first = next(iter(read_frames(res.out / "depth.mp4")))
    assert first.shape == (H, W, 3) and first.std() > 10

    # a world snapshot: the static world after its chunk, and the ball where it is at that frame
    cloud = read_ply(plys[1])  # frame 8, in chunk 0
    static = run.read_static(0)
    assert cloud.entity_id is not None
    assert int((cloud.entity_id == -1).sum()) == len(static)
    ball = cloud.xyz[cloud.entity_id == 0]
    assert len(ball) > 0
    centre = scene.entity_position(8 / 16)
    assert np.linalg.norm(ball.mean(axis=0) - centre) < scene.entity_radius

    # the overlay draws each frame's action over the frame
    plain = next(iter(read_frames(res.out / "video.mp4")))
    drawn = next(iter(read_frames(res.out / "video_actions.mp4")))
    assert np.abs(drawn.astype(int) - plain.astype(int)).max() > 60
    record = json.loads((res.out / "play.json").read_text())
    assert record["actions"] == "(FN)(SL)(fRN)" and record["chunks"] == 3
    assert record["frame_actions"][:9] == ["(FN)"] * 8 + ["(SL)"]
    assert record["frame_actions"][25:] == ["(SN)", "(SN)"]  # past the end: the camera stays
    assert record["files"]["ply_snapshots"] == 4 and record["files"]["depth_frames"] == n


def test_a_cancelled_session_resumes_as_a_run_with_its_poses(project):
    full = play_job(project, PlayOptions(actions=ACTIONS, backend="oracle", size=(W, H)))(
        JobContext()
    )
    ctx = JobContext()

    def cancel_after_two(chunk):
        if chunk.round == 1:
            ctx.cancel_token.cancel()

    with pytest.raises(Cancelled):
        play_job(
            project,
            PlayOptions(actions=ACTIONS, backend="oracle", size=(W, H), on_chunk=cancel_after_two),
        )(ctx)
    runs = list_runs(ProjectFolder(project))
    (cut,) = [r for r in runs if r.path != full.run.run_dir]
    assert cut.read_meta()["status"] == "cancelled" and cut.completed_rounds() == 2
    assert main(["generate", str(project), "--resume", cut.id, "--quiet"]) == 0
    meta = cut.read_meta()
    assert meta["status"] == "complete" and meta["rounds_done"] == 7
    assert meta["cameras"]["observer"]["source"] == "play"  # still says where its poses came from
    assert np.array_equal(_observer(cut), _observer(RunFolder(full.run.run_dir)))


def test_a_live_session_is_its_action_string_and_a_stopped_one_resumes(project, tmp_path):
    keys = KeyState()
    session = play_job(
        project,
        PlayOptions(
            keys=keys, backend="geometry", size=(W, H), monitors=False, depth=False, ply_every=0
        ),
    )

    def steer(chunk):  # called in the engine's thread, before it asks for the next chunk
        if chunk.round == 0:
            keys.press("W")
        elif chunk.round == 2:
            keys.release("W")
            keys.press("LEFT")
            keys.press("A")
        elif chunk.round == 4:
            keys.release_all()
            keys.tap("RIGHT")
        elif chunk.round == 5:
            session.stop()

    session.options.on_chunk = steer
    res = session(JobContext())
    assert res.frames == 6 * 9 and res.run.rounds_done == 6
    assert "(FN)" in res.actions and "(LL)" in res.actions and "(SR)" in res.actions
    run = RunFolder(res.run.run_dir)
    assert run.read_meta()["status"] == "complete"
    # every session is also an action string: path --actions of its actions gives its poses
    other = tmp_path / "other.wsproj"
    shutil.copytree(project, other, ignore=shutil.ignore_patterns("runs"))
    assert main(["path", str(other), "--actions", res.actions]) == 0
    baked = bake_path(ProjectFolder(other).load().camera_path)
    assert len(baked) >= res.frames
    np.testing.assert_allclose(res.c2w, baked.c2w[: res.frames], atol=1e-12)
    np.testing.assert_allclose(load_npz(run.observer_path_npz)["c2w"], res.c2w)

    # the stopped session goes on as a run: the camera holds its last pose
    assert main(["generate", str(project), "--resume", run.id, "--rounds", "8", "--quiet"]) == 0
    meta = run.read_meta()
    assert meta["status"] == "complete" and meta["rounds_done"] == 8
    last = np.load(run.observer_npy(7))
    assert np.array_equal(last[0], last[-1])  # a still camera on a frozen world
    assert not np.array_equal(np.load(run.observer_npy(0))[0], last[0])


def test_a_live_session_stopped_before_it_began_plays_one_chunk(project):
    session = play_job(
        project, PlayOptions(keys=KeyState(), backend="geometry", size=(W, H), ply_every=0)
    )
    session.stop()
    res = session(JobContext())
    assert res.frames == 9 and res.run.rounds_done == 1 and res.actions == "(SN)(SN)"
    assert RunFolder(res.run.run_dir).read_meta()["status"] == "complete"
    assert probe_video(res.out / "depth.mp4").frames == 9


def test_bad_play_input_fails_with_one_line(project, tmp_path, capsys):
    def fails(*args):
        assert main(["play", str(project), *args]) == 2
        return capsys.readouterr().err.strip()

    assert "step 2" in fails("--actions", "(FN)(SX)")
    assert "--chunk-frames" in fails("--actions", "(FN)", "--chunk-frames", "0")
    assert "--threads" in fails("--actions", "(FN)", "--threads", "0")
    assert "4k+1" in fails("--actions", "(FN)", "--chunk-frames", "8", "--backend", "geometry")
    with pytest.raises(SystemExit) as info:  # argparse: its usage and one line
        main(["play", str(project), "--actions", "(FN)", "--quality", "best"])
    assert info.value.code == 2
    assert "--quality: invalid choice: 'best'" in capsys.readouterr().err
    with pytest.raises(WorldStudioError, match="quality 'best': expected one of full, fast, draft"):
        play_job(project, PlayOptions(actions="(FN)", quality="best"))
    assert "no such file" in fails("--actions", "(FN)", "--lora", str(tmp_path / "x.safetensors"))
    assert "unknown backend" in fails("--actions", "(FN)", "--backend", "nope")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert "not an empty folder" in fails("--actions", "(FN)", "--out", str(tmp_path / "full"))
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    bad = tmp_path / "a.txt"
    bad.write_text("FN\nQQ\n")
    assert "line 2" in fails("--actions-file", str(bad))
    assert list_runs(ProjectFolder(project)) == []  # nothing started


def test_an_actions_file_plays_one_action_a_frame(project, tmp_path):
    f = tmp_path / "actions.txt"
    f.write_text("\n".join(["FN"] * 10 + ["SL"] * 8) + "\n")
    args = ["play", str(project), "--actions-file", str(f), "--backend", "geometry"]
    args += ["--out", str(tmp_path / "out")]
    assert main([*args, "--size", SIZE, "--no-depth", "--ply-every", "0", "--quiet"]) == 0
    run = _only_run(project)
    assert not (run.path / "play").exists()
    record = json.loads((tmp_path / "out" / "play.json").read_text())
    assert (tmp_path / "out" / "video.mp4").is_file()
    assert record["frames_per_action"] == 1 and record["frames"] == 27
    assert record["frame_actions"][:18] == ["(FN)"] * 10 + ["(SL)"] * 8
    c2w = load_npz(run.observer_path_npz)["c2w"]
    # the default speed is per 8 frames: 10 forward frames move 10/8 of a 0.25 step
    assert np.linalg.norm(c2w[10, :3, 3] - c2w[0, :3, 3]) == pytest.approx(0.25 * 10 / 8, rel=1e-6)
