"""`worldstudio generate` end to end on the demo project (geometry and oracle backends)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.generation.engine_support import F, H, W, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.generation import backends
from worldstudio.core.generation.conditioning import thin_holes
from worldstudio.core.media import probe_video
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

ARGS = ["--frames-per-round", str(F), "--size", f"{W}x{H}", "--quiet"]


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


def _only_run(project) -> RunFolder:
    runs = list_runs(ProjectFolder(project))
    assert len(runs) == 1
    return runs[0]


def _check_video(path, frames, width, height):
    info = probe_video(path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p"), path
    assert (info.frames, info.width, info.height) == (frames, width, height), path


@pytest.mark.parametrize("backend", ["geometry", "oracle"])
def test_generate_writes_the_whole_run_folder(project, backend, capsys):
    before = (project / "project.json").read_bytes()
    assert main(["generate", str(project), "--backend", backend, *ARGS]) == 0
    out = capsys.readouterr().out
    run = _only_run(project)
    assert run.id in out and "final.mp4" in out

    meta = json.loads(run.run_file.read_text())
    assert meta["status"] == "complete" and meta["rounds_done"] == 2 == meta["rounds_total"]
    assert meta["backend"] == backend
    assert meta["lifter"] == {"geometry": "render", "oracle": "oracle"}[backend]
    assert meta["settings"]["frames_per_round"] == F and meta["settings"]["width"] == W
    assert meta["parent"] is None
    assert [m["id"] for m in meta["cameras"]["monitors"]] == ["mon-ball"]
    assert run.static_base_ply.is_file() and run.static_base_json.is_file()

    for r in range(2):
        rd = run.round_dir(r)
        for name in (
            "observer.npy",
            "observer.mp4",
            "renders.mp4",
            "coverage.npy",
            "static_added.ply",
            "round.json",
            "monitors/mon-ball.npy",
            "monitors/mon-ball.mp4",
            "entities/ent-ball.npz",
            "views.npz",
            "conditioning/observer_control.mp4",
            "conditioning/observer_mask.mp4",
            "conditioning/monitor-mon-ball_control.mp4",
            "conditioning/monitor-mon-ball_mask.mp4",
        ):
            assert (rd / name).is_file(), rd / name
        obs = np.load(rd / "observer.npy", allow_pickle=False)
        assert obs.shape == (F, H, W, 3) and obs.dtype == np.uint8
        cov = np.load(rd / "coverage.npy", allow_pickle=False)
        assert cov.shape == (F, H, W) and cov.dtype == bool and 0.3 < cov.mean() <= 1.0
        ent = np.load(rd / "entities/ent-ball.npz", allow_pickle=False)
        assert ent["offsets"].shape == (F + 1,) and ent["xyz"].shape == (ent["offsets"][-1], 3)
        for name in ("observer.mp4", "renders.mp4", "monitors/mon-ball.mp4"):
            _check_video(rd / name, F, W, H)
        # what each call was given, as the studio plays it (no context frames for these backends)
        assert run.conditioning_cameras(r) == ["observer", "monitor-mon-ball"]
        for camera in run.conditioning_cameras(r):
            for kind in ("control", "mask"):
                _check_video(run.conditioning_mp4(r, camera, kind), F, W, H)
        info = json.loads((rd / "round.json").read_text())
        assert info["complete"] is True and info["frames"] == [r * F, r * F + F - 1]
        assert (
            info["prompts"]["observer"].startswith("scene: ")
            and "; foreground: " in info["prompts"]["observer"]
        )

    _check_video(run.final_mp4, 2 * F, W, H)
    _check_video(run.final_combined_mp4, 2 * F, 2 * W, H)  # observer beside the one monitor
    assert (project / "project.json").read_bytes() == before  # the project file is untouched


def test_geometry_frames_are_the_renders_and_the_world_does_not_grow(project):
    assert main(["generate", str(project), "--backend", "geometry", *ARGS]) == 0
    run = _only_run(project)
    for r in range(2):
        info = json.loads(run.round_file(r).read_text())
        assert info["static_points_added"] == 0  # no model: nothing new is seen
        obs = np.load(run.round_dir(r) / "observer.npy")
        cov = np.load(run.round_dir(r) / "coverage.npy")
        # holes stay visible (black), but for the pinholes between the points, which take the
        # colour of a point nearby (filling runs four passes, each from a neighbour; a far point
        # seen through a gap is refilled too, so a few colours come from two steps away)
        real = np.stack([~c & ~thin_holes(c.astype(np.float32)) for c in cov])
        assert (obs[real] == 0).all()
        filled = ~cov & (obs != 0).any(axis=-1)
        assert filled.any()
        found = []
        for i, y, x in zip(*np.nonzero(filled), strict=True):
            y0, x0 = max(0, y - 5), max(0, x - 5)
            near = obs[i, y0 : y + 6, x0 : x + 6][cov[i, y0 : y + 6, x0 : x + 6]]
            found.append((near == obs[i, y, x]).all(axis=1).any())
        assert np.mean(found) > 0.99


def test_oracle_frames_are_the_ground_truth(project):
    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.geometry.path import bake_path
    from worldstudio.core.oracle import OracleScene

    assert main(["generate", str(project), "--backend", "oracle", *ARGS]) == 0
    run = _only_run(project)
    p = ProjectFolder(project).load()
    baked = bake_path(p.camera_path, n_frames=2 * F)
    scene = OracleScene.demo()
    obs = np.load(run.round_dir(1) / "observer.npy")
    for i in (0, F - 1):
        k = F + i
        gt = scene.render(
            baked.c2w[k], intrinsics_from_fov(baked.fov[k], H, W), H, W, k / p.generation.fps
        )
        assert np.array_equal(obs[i], gt.rgb)
    info = json.loads(run.round_file(1).read_text())
    assert info["static_points_added"] > 0  # the oracle sees what the source image did not


def test_no_monitors(project):
    assert main(["generate", str(project), "--backend", "geometry", "--no-monitors", *ARGS]) == 0
    run = _only_run(project)
    assert not (run.round_dir(0) / "monitors").exists()
    _check_video(run.final_combined_mp4, 2 * F, W, H)
    meta = json.loads(run.run_file.read_text())
    assert meta["settings"]["monitors"] is False and meta["cameras"]["monitors"] == []


def test_failure_inside_a_backend_leaves_the_finished_rounds(project, monkeypatch, capsys):
    monkeypatch.setitem(
        backends._REGISTRY, "failing", "tests.generation.engine_support:FailingBackend"
    )
    before = (project / "project.json").read_bytes()
    assert main(["generate", str(project), "--backend", "failing", *ARGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: round 2, observer: backend 'failing' failed: RuntimeError: simulated out of memory"
    )
    run = _only_run(project)
    assert run.round_complete(0) and not run.round_complete(1)
    assert (run.round_dir(0) / "observer.npy").is_file() and (
        run.round_dir(0) / "static_added.ply"
    ).is_file()
    meta = json.loads(run.run_file.read_text())
    assert (
        meta["status"] == "failed"
        and meta["rounds_done"] == 1
        and "simulated out of memory" in meta["error"]
    )
    assert not run.final_mp4.exists()
    assert (project / "project.json").read_bytes() == before


def test_resume_after_a_failure_finishes_the_run(project, monkeypatch):
    monkeypatch.setitem(
        backends._REGISTRY, "failing", "tests.generation.engine_support:FailingBackend"
    )
    assert main(["generate", str(project), "--backend", "failing", *ARGS]) == 2
    run = _only_run(project)
    # the failing backend no longer fails (e.g. the user freed memory)
    monkeypatch.setattr("tests.generation.engine_support.FailingBackend.fail_round", 99)
    assert main(["generate", str(project), "--resume", run.id, "--quiet"]) == 0
    meta = json.loads(run.run_file.read_text())
    assert meta["status"] == "complete" and meta["rounds_done"] == 2
    _check_video(run.final_mp4, 2 * F, W, H)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--size", "50x40"], "multiple of 16"),
        (["--frames-per-round", "8"], "4k+1"),
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--resume", "no-such-run"], "run 'no-such-run': not found"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--monitor-strength", "3"], "monitor_strength"),
        (["--context-frames", "-1"], "context_frames"),
        (["--flow-shift", "0"], "flow_shift"),
    ],
)
def test_bad_arguments_are_one_line_errors(project, extra, message, capsys):
    args = ["generate", str(project), "--backend", "geometry", "--quiet", *extra]
    if "--size" not in extra:
        args += ["--size", f"{W}x{H}"]
    if "--frames-per-round" not in extra:
        args += ["--frames-per-round", str(F)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert list_runs(ProjectFolder(project)) == []  # nothing half-made


def test_conditioning_options_are_recorded(project):
    args = ["--monitor-strength", "0.6", "--context-frames", "2", "--flow-shift", "4"]
    args += ["--negative-prompt", "", "--prompt-entities", "all", "--observer-strength", "0.9"]
    assert main(["generate", str(project), "--backend", "geometry", *args, *ARGS]) == 0
    s = json.loads(_only_run(project).run_file.read_text())["settings"]
    assert (s["monitor_strength"], s["observer_strength"]) == (0.6, 0.9)
    assert (s["context_frames"], s["flow_shift"]) == (2, 4.0)
    assert s["negative_prompt"] == "" and s["prompt_entities"] == "all"
    inputs = _only_run(project).read_round(1)["inputs"]
    assert inputs["observer"]["context_frames"] == 2 and inputs["observer"]["strength"] == 0.9


def test_oracle_refuses_a_project_that_is_not_the_demo(project, capsys):
    folder = ProjectFolder(project)
    p = folder.load()
    p.scene.depth_model = "depth-anything/Depth-Anything-V2-Small-hf"
    folder.save(p)
    assert main(["generate", str(project), "--backend", "oracle", *ARGS]) == 2
    assert "oracle" in capsys.readouterr().err
    assert list_runs(folder) == []


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--backend",
        "--model",
        "--rounds",
        "--steps",
        "--size",
        "--frames-per-round",
        "--seed",
        "--profile",
        "--resume",
        "--from-round",
        "--no-monitors",
    ):
        assert flag in out


def test_a_generated_run_exports_in_every_layout(project, capsys, tmp_path):
    """export reads the engine's own run folders (RunFolder), at the run's fps."""
    assert main(["generate", str(project), "--backend", "geometry", *ARGS]) == 0
    run = _only_run(project)
    fps = run.read_meta()["settings"]["fps"]
    folder = ProjectFolder(project)
    changed = folder.load()
    changed.generation.fps = fps // 2  # the project changes after the run; the run keeps its fps
    folder.save(changed)
    for layout, width in (("observer", W), ("combined", None), ("conditioning", 2 * W)):
        out = tmp_path / f"{layout}.mp4"
        argv = ["export", str(project), "--mp4", str(out), "--run", run.id, "--layout", layout]
        assert main(argv) == 0
        info = probe_video(out)
        assert (info.frames, info.height, info.fps) == (2 * F, H, fps), layout
        assert width is None or info.width == width
    assert probe_video(tmp_path / "combined.mp4").width > W  # the monitor beside the observer
    ply = tmp_path / "clouds.ply"
    assert main(["export", str(project), "--ply", str(ply), "--run", run.id]) == 0
    assert sorted(p.name for p in tmp_path.glob("clouds_round_*.ply")) == [
        "clouds_round_000.ply",
        "clouds_round_001.ply",
    ]
    assert "wrote" in capsys.readouterr().out
