"""Generation on several processes (core.generation.parallel): diffusers' context parallelism
(Ulysses attention) over 2 CPU worker processes with gloo, launched by `worldstudio generate
--gpus 2` exactly as on GPUs, on the tiny VACE pipeline of the fake hub. The frames must equal a
one-process run's; a cancel stops every worker at the same step; what cannot run split is
refused before any worker starts. Plus the parts: mode, size and attention choices, requests
through files, the mailbox."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.errors import Cancelled
from worldstudio.core.generation import parallel
from worldstudio.core.generation.backends import GenerationRequest
from worldstudio.core.generation.engine import RunOptions
from worldstudio.core.generation.parallel import (
    Mailbox,
    ParallelError,
    check_size,
    choose_attention,
    choose_mode,
    load_request,
    save_request,
)
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

F = 5
_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)
ARGS = ["--backend", "wan-vace", "--steps", "2", "--frames-per-round", str(F), "--size", f"{W}x{H}"]


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


# ------------------------------------------------------------------------------------ the parts
def test_mode_choice():
    assert choose_mode("auto", 12, 2) == "ulysses"
    assert choose_mode("auto", 12, 8) == "ring"  # 8 does not divide the 1.3B's 12 heads
    assert choose_mode("ring", 12, 2) == "ring"
    with pytest.raises(ParallelError, match="8 does not divide 12"):
        choose_mode("ulysses", 12, 8)
    with pytest.raises(ParallelError, match="expected one of auto, ulysses, ring"):
        choose_mode("tensor", 12, 2)


def test_size_check():
    check_size(480, 832, 8)  # 30 x 52 tokens a latent frame
    check_size(H, W, 2)
    with pytest.raises(ParallelError, match=r"80x48 on 2 GPUs: a latent frame has 15 tokens"):
        check_size(48, 80, 2)


def test_attention_choice():
    assert choose_attention("flash", "ring", "cuda") == "flash"
    assert choose_attention("flash3", "ulysses", "cuda") == "native"  # no split flash3
    assert choose_attention("native", "ring", "cuda") == "native-cudnn"  # ring needs the LSE
    assert choose_attention("native", "ulysses", "cpu") == "native"
    with pytest.raises(ParallelError, match="on the CPU use --parallel ulysses"):
        choose_attention("native", "ring", "cpu")


def _request() -> GenerationRequest:
    rng = np.random.default_rng(0)
    return GenerationRequest(
        prompt="scene: a room; foreground: a ball",
        num_frames=5,
        height=H,
        width=W,
        steps=3,
        guidance=4.5,
        seed=2**40 + 7,
        control_rgb=rng.integers(0, 256, (5, H, W, 3), dtype=np.uint8),
        control_mask=rng.random((5, H, W)) > 0.5,
        previous_frames=None,
        reference_images=[rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)],
        foreground_labels=rng.integers(-1, 2, (5, H, W)).astype(np.int16),
        foreground_ids=["ball", "cat"],
        camera_c2w=np.tile(np.eye(4), (5, 1, 1)),
        times=np.arange(5) / 16.0,
        loras=[("/loras/a.safetensors", 0.8)],
        role="monitor",
        camera_id="mon-ball",
        round_index=3,
        flow_shift=None,
    )


def test_a_request_survives_the_trip_through_a_file(tmp_path):
    request = _request()
    save_request(request, tmp_path / "r.npz")
    back = load_request(tmp_path / "r.npz")
    for name in request.__dataclass_fields__:
        a, b = getattr(request, name), getattr(back, name)
        if isinstance(a, np.ndarray):
            assert b.dtype == a.dtype and np.array_equal(a, b), name
        elif isinstance(a, list) and a and isinstance(a[0], np.ndarray):
            assert len(a) == len(b) and all(
                np.array_equal(x, y) for x, y in zip(a, b, strict=True)
            ), name
        else:
            assert a == b, name
    # nothing is unpickled: the file holds plain arrays only
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_the_mailbox_delivers_in_order_and_cleans_up(tmp_path):
    out, inbox = Mailbox(tmp_path / "calls"), Mailbox(tmp_path / "calls")
    # the serving ranks read each message before rank 0 can post the one after next
    out.post({"op": "load", "backend": "wan-vace"})
    assert inbox.receive() == ({"op": "load", "backend": "wan-vace"}, None)
    out.post({"op": "generate"}, _request())
    message, request = inbox.receive()
    assert message == {"op": "generate"} and request.camera_id == "mon-ball"
    out.post({"op": "close"})
    assert inbox.receive()[0] == {"op": "close"}
    # message 1 was removed when message 3 was posted
    assert sorted(p.name for p in (tmp_path / "calls").iterdir()) == [
        "msg-000002.json",
        "msg-000002.npz",
        "msg-000003.json",
    ]


def test_options_go_to_the_workers_as_json():
    options = RunOptions(backend="wan-vace", size=(W, H), loras=[("a.safetensors", 0.5)], rounds=2)
    back = parallel.options_from_json(json.loads(json.dumps(parallel.options_to_json(options))))
    assert back == options
    with pytest.raises(ParallelError, match="backend by name"):
        parallel.options_to_json(RunOptions(backend=object()))


# ---------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gpus", "0"], "--gpus must be at least 1"),
        (["--gpus", "2", "--backend", "geometry"], "backend geometry runs in one process"),
        (["--gpus", "2", "--size", "80x48"], "80x48 on 2 GPUs"),
        (["--gpus", "2", "--profile", "offload"], "profile offload is for one GPU"),
    ],
)
def test_what_cannot_run_split_is_refused_before_any_worker(project, capsys, extra, message):
    assert main(["generate", str(project), *ARGS, "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list_runs(ProjectFolder(project)) == []


# -------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(
    "backend",
    [
        ["--backend", "wan-vace"],  # the VACE plan of core.generation.parallel
        ["--backend", "wan-i2v", "--model", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"],  # diffusers'
    ],
    ids=["wan-vace", "wan-i2v"],
)
def test_two_processes_make_the_frames_one_makes(project, wan_env, capsys, backend):
    common = ["generate", str(project), *ARGS, *backend, "--rounds", "1", "--profile", "gpu"]
    assert main([*common, "--gpus", "2"]) == 0
    out = capsys.readouterr()
    assert f"{backend[1]}: context parallel on 2 cpu processes (ulysses attention" in out.out
    (split,) = list_runs(ProjectFolder(project))
    assert main([*common, "--quiet"]) == 0
    one = next(r for r in list_runs(ProjectFolder(project)) if r.path != split.path)
    for run in (split, one):
        meta = json.loads(run.run_file.read_text())
        assert (meta["status"], meta["backend"]) == ("complete", backend[1])
    # the observer and the monitor: the same frames from 2 processes as from one
    a, b = split.round_dir(0), one.round_dir(0)
    assert np.array_equal(np.load(a / "observer.npy"), np.load(b / "observer.npy"))
    assert np.array_equal(
        np.load(a / "monitors" / "mon-ball.npy"), np.load(b / "monitors" / "mon-ball.npy")
    )


def test_a_cancel_stops_every_worker_at_the_same_step(project, wan_env):
    reports = []

    def sink(report):
        reports.append(report)
        if report.kind == "progress" and "step 1/" in report.message:
            ctx.cancel_token.cancel()

    ctx = JobContext(sink)
    options = RunOptions(
        backend="wan-vace", steps=20, frames_per_round=F, size=(W, H), rounds=2, monitors=False
    )
    job = parallel.parallel_generate_job(project, options, 2)
    with pytest.raises(Cancelled):
        job(ctx)
    (run,) = list_runs(ProjectFolder(project))
    meta = json.loads(run.run_file.read_text())
    assert meta["status"] == "cancelled"
    steps = [r.message for r in reports if r.kind == "progress" and "step " in r.message]
    assert steps and not any("step 20/20" in m for m in steps)


@pytest.mark.parametrize(
    ("gpus", "cuda", "message"),
    [
        (
            "3",
            0,
            "error: --gpus 3: this machine has no CUDA GPU, and its CPU has 2 usable cores for worker processes",
        ),
        ("2", 1, "error: --gpus 2: this machine has 1 CUDA GPU"),
    ],
)
def test_more_gpus_than_the_machine_has_are_refused(
    project, capsys, monkeypatch, gpus, cuda, message
):
    import torch

    from worldstudio.core.runtime import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    assert main(["generate", str(project), *ARGS, "--quiet", "--gpus", gpus]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [message]
    assert list_runs(ProjectFolder(project)) == []
