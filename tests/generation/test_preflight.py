"""The checks before a run (core.generation.preflight): each check alone, and the engine refusing a
run with every problem listed before a run folder exists."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.cli import main
from worldstudio.core.generation import preflight as pf
from worldstudio.core.generation.backends import BaseBackend
from worldstudio.core.generation.engine import RunOptions, generate_job
from worldstudio.core.generation.memory import GiB, VramEstimate
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import ProjectFolder

from .engine_support import NoisyBackend, demo_project


class ProfiledBackend(BaseBackend):
    """A backend with two memory profiles and a fixed estimate per profile."""

    name = "profiled"
    lifter = "render"
    profiles = ("auto", "gpu", "low-vram")
    needs = {"gpu": (12 * GiB, 4 * GiB), "low-vram": (3 * GiB, 20 * GiB)}

    def estimate(self, height, width, frames, profile=None, *, guidance=5.0):
        vram, ram = self.needs[profile]
        return VramEstimate(profile, vram, vram, 0, 0, ram=ram)


# ------------------------------------------------------------------------------------ memory
def test_a_profile_that_does_not_fit_names_one_that_does():
    problems, passed = pf.memory_problems(
        ProfiledBackend(),
        480,
        832,
        33,
        "gpu",
        5.0,
        device="cuda:0",
        free_vram=8 * GiB,
        free_ram=64 * GiB,
    )
    (p,) = problems
    assert p.check == "memory" and p.severity == "error" and passed == ""
    assert "12.0 GiB GPU memory" in p.text and "8.0 GiB free on cuda:0" in p.text
    assert p.profile == "low-vram" and "low-vram" in p.fix


def test_auto_takes_the_first_profile_that_fits_and_tight_memory_warns():
    backend = ProfiledBackend()
    problems, passed = pf.memory_problems(
        backend, 480, 832, 33, "auto", 5.0, device="cuda:0", free_vram=40 * GiB, free_ram=64 * GiB
    )
    assert problems == [] and passed.startswith("memory: gpu needs ~12.0 GiB GPU memory")
    problems, _ = pf.memory_problems(
        backend, 480, 832, 33, "gpu", 5.0, device="cuda:0", free_vram=13 * GiB, free_ram=64 * GiB
    )
    (p,) = problems
    assert p.severity == "warning" and "tight" in p.text


def test_nothing_fits_says_to_lower_the_size():
    problems, _ = pf.memory_problems(
        ProfiledBackend(), 480, 832, 33, "auto", 5.0, device="cuda:0", free_vram=GiB, free_ram=GiB
    )
    (p,) = problems
    assert p.severity == "error" and p.profile is None and "lower the video size" in p.fix


def test_on_the_cpu_the_vram_check_is_skipped_and_ram_is_checked(monkeypatch):
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")  # on purpose: no "no GPU" warning
    backend = ProfiledBackend()
    problems, passed = pf.memory_problems(
        backend, 480, 832, 33, "gpu", 5.0, device="cpu", free_ram=64 * GiB
    )
    assert problems == [] and "VRAM check skipped (no GPU)" in passed
    problems, _ = pf.memory_problems(
        backend, 480, 832, 33, "gpu", 5.0, device="cpu", free_ram=2 * GiB
    )
    (p,) = problems
    assert p.severity == "error" and "RAM" in p.text


def test_a_model_backend_without_a_gpu_warns_unless_the_cpu_was_asked_for(monkeypatch):
    monkeypatch.delenv("WORLDSTUDIO_DEVICE", raising=False)
    problems, _ = pf.memory_problems(
        ProfiledBackend(), 48, 64, 9, "gpu", 5.0, device="cpu", free_ram=64 * GiB
    )
    assert [p.check for p in problems] == ["gpu"]
    assert "no GPU found" in problems[0].text and "worldstudio doctor" in problems[0].fix


def test_a_backend_without_profiles_needs_no_memory_check():
    problems, passed = pf.memory_problems(NoisyBackend(), 48, 64, 9, None, 5.0)
    assert problems == [] and "loads no model" in passed


# ------------------------------------------------------------------------------------ disk
def test_run_bytes_grows_with_size_rounds_and_cameras():
    one = pf.run_bytes(832, 480, 33, 1, 0, 0)
    assert pf.run_bytes(832, 480, 33, 4, 0, 0) > 3.9 * one
    assert pf.run_bytes(832, 480, 33, 1, 2, 0) > 2 * one
    assert one > 33 * 832 * 480 * 3  # at least the lossless frames


def test_a_run_that_does_not_fit_on_disk_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "_free_bytes", lambda path: 2 * GiB)
    problems, _ = pf.disk_problems(tmp_path / "runs", 3 * GiB, tmp_path / "hub", 5 * GiB)
    assert [(p.check, p.severity) for p in problems] == [("disk", "error"), ("disk", "error")]
    assert "3.0 GiB" in problems[0].text and "HF_HUB_CACHE" in problems[1].fix
    problems, _ = pf.disk_problems(tmp_path / "runs", int(1.5 * GiB))
    assert [p.severity for p in problems] == ["warning"]
    problems, passed = pf.disk_problems(tmp_path / "runs", GiB // 2)
    assert problems == [] and passed.startswith("disk: ")


# ------------------------------------------------------------------------------------ camera
def test_cameras_outside_the_scene_box_are_named():
    rng = np.random.default_rng(0)
    cloud = rng.uniform([-1, -1, 1], [1, 1, 3], (2000, 3))
    inside = np.array([[0, 0, 0], [0.2, 0, 1.5], [0, 0.3, 2.5]])
    assert pf.camera_problems(inside, cloud)[0] == []
    outside = np.concatenate([inside, [[0, 0, -5.0], [9, 0, 2]]])
    (p,) = pf.camera_problems(outside, cloud, first_frame=10)[0]
    assert p.check == "camera" and p.severity == "error"
    assert "2 frames (13 to 14)" in p.text and "frame 14" in p.text  # x=9 is the farthest out


# ------------------------------------------------------------------------------------ the engine
@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


def _runs(project) -> list[str]:
    runs = ProjectFolder(project).runs_dir
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


def _camera_far_outside(project) -> None:
    folder = ProjectFolder(project)
    p = folder.load()
    p.camera_path.keyframes[-1].position = (0.0, 0.0, -500.0)
    folder.save(p)


def test_the_engine_lists_every_problem_before_a_run_folder_exists(project, monkeypatch):
    _camera_far_outside(project)
    monkeypatch.setattr(pf, "_free_bytes", lambda path: 1024)  # a full disk
    before = _runs(project)
    job = generate_job(project, RunOptions(backend=NoisyBackend(), rounds=2))
    with pytest.raises(pf.PreflightError) as exc:
        job(JobContext())
    report = exc.value.preflight
    assert sorted(p.check for p in report.errors) == ["camera", "disk"]
    text = str(exc.value)
    assert text.startswith("the run cannot start (2 errors); nothing was written:")
    assert text.count("fix: ") == 2
    assert _runs(project) == before


def test_the_cli_refuses_with_one_message_and_exit_2(project, monkeypatch, capsys):
    _camera_far_outside(project)
    before = _runs(project)
    rc = main(["generate", str(project), "--backend", "geometry", "--rounds", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("error: the camera path leaves the reconstructed scene")
    assert "fix: " not in err and "move those keyframes back into the scene" in err
    assert _runs(project) == before


def test_warnings_stop_the_run_only_when_asked(project, monkeypatch):
    monkeypatch.setattr(pf, "_free_bytes", lambda path: pf.DISK_RESERVE)  # under 1 GiB left
    before = _runs(project)
    with pytest.raises(pf.PreflightError) as exc:
        generate_job(project, RunOptions(backend=NoisyBackend(), rounds=1, stop_on_warnings=True))(
            JobContext()
        )
    assert [p.check for p in exc.value.preflight.warnings] == ["disk"]
    assert _runs(project) == before
    logs: list[str] = []
    ctx = JobContext(lambda r: r.kind == "log" and logs.append(r.message))
    result = generate_job(project, RunOptions(backend=NoisyBackend(), rounds=1))(ctx)
    assert result.status == "complete"
    assert any(line.startswith("warning: the run leaves under 1 GiB free") for line in logs)
    (passed,) = [line for line in logs if line.startswith("checks passed: ")]
    assert "models: none needed" in passed and "camera: the path's" in passed
