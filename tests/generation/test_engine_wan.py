"""`worldstudio generate` with the diffusion backends on tiny random-weight pipelines placed in a
fake hub cache under the real repo ids (the app's real loading code), 2 rounds, 1 monitor; the
model lifter runs on the tiny depth and SAM 2 models of the same cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.generation.engine_support import H, W, cancel_at_round, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.errors import Cancelled
from worldstudio.core.generation.engine import RunOptions, generate_job
from worldstudio.core.jobs import CancelToken, JobContext
from worldstudio.core.media import probe_video
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import RunFolder, list_runs

F = 5
_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


@pytest.mark.parametrize(
    ("backend", "repo"),
    [
        ("wan-vace", "Wan-AI/Wan2.1-VACE-1.3B-diffusers"),
        ("wan-i2v", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"),
    ],
)
def test_generate_with_a_diffusion_backend(project, wan_env, backend, repo):
    args = [
        "generate",
        str(project),
        "--backend",
        backend,
        "--steps",
        "2",
        "--frames-per-round",
        str(F),
        "--size",
        f"{W}x{H}",
        "--profile",
        "gpu",
        "--quiet",
    ]
    if backend == "wan-i2v":
        args += ["--model", repo]  # the project's model is the VACE one
    assert main(args) == 0
    (run,) = list_runs(ProjectFolder(project))
    meta = json.loads(run.run_file.read_text())
    assert meta["status"] == "complete" and meta["backend"] == backend and meta["lifter"] == "model"
    assert meta["model_id"] == repo
    for r in range(2):
        rd = run.round_dir(r)
        for name in ("observer.mp4", "renders.mp4", "monitors/mon-ball.mp4"):
            info = probe_video(rd / name)
            assert (info.codec, info.frames, info.width, info.height) == ("h264", F, W, H)
        assert np.load(rd / "observer.npy").shape == (F, H, W, 3)
    # run.json says what every call got: the backend's context frames, Wan's flow shift at this
    # size, the project's negative prompt and role strengths
    s = meta["settings"]
    context = {"wan-vace": 4, "wan-i2v": 1}[backend]
    assert s["context_frames"] == context and s["flow_shift"] == 3.0
    assert s["negative_prompt"].startswith("色调艳丽") and s["monitor_strength"] == 0.4
    # and each round holds the exact control and mask videos the model received
    for r in range(2):
        assert run.conditioning_cameras(r) == ["observer", "monitor-mon-ball"]
        inputs = run.read_round(r)["inputs"]
        for camera in ("observer", "monitor-mon-ball"):
            control = probe_video(run.conditioning_mp4(r, camera, "control"))
            mask = probe_video(run.conditioning_mp4(r, camera, "mask"))
            if backend == "wan-vace":  # the round, after 4 context frames from round 1 on
                expected = F + (4 if r else 0)
            else:  # the one image the model starts from
                expected = 1
            assert control.frames == mask.frames == expected == inputs[camera]["control_frames"]
            assert inputs[camera]["context_frames"] == (context if r else 0)
    for path, width in ((run.final_mp4, W), (run.final_combined_mp4, 2 * W)):
        info = probe_video(path)
        assert (info.codec, info.frames, info.width) == ("h264", 2 * F, width)


def test_wan_vace_resume_after_a_cancel_matches(project, wan_env, vace_backend):
    # one loaded pipeline for the three jobs (the engine does not close a backend it was given)
    opts = dict(backend=vace_backend, steps=2, frames_per_round=F, size=(W, H), seed=5)
    full = RunFolder(generate_job(project, RunOptions(**opts))(JobContext()).run_dir)
    token = CancelToken()
    with pytest.raises(Cancelled, match="cancelled"):
        generate_job(project, RunOptions(**opts))(
            JobContext(cancel_at_round(token, 2), cancel=token)
        )
    cut = list_runs(ProjectFolder(project))[1]
    assert cut.completed_rounds() == 1
    generate_job(project, RunOptions(resume=cut.id, backend=vace_backend))(JobContext())
    for r in range(2):
        for name in ("observer.npy", "monitors/mon-ball.npy"):
            assert np.array_equal(
                np.load(full.round_dir(r) / name), np.load(cut.round_dir(r) / name)
            ), (r, name)
