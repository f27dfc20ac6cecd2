"""The Generate panel's GPU count: one (disabled, with the reason in its tooltip) on a machine
with fewer than two CUDA GPUs; with several, the count chosen makes the run a multi-GPU job
(core.generation.parallel) for Generate and Resume alike, and what cannot run split is refused
in the status bar before any worker starts."""

from __future__ import annotations

from pathlib import Path

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

TIMEOUT = 120000


def failing_job(calls, *recorded):
    calls.append(recorded)

    def job(ctx):
        raise WorldStudioError("no run here")

    return job


def test_one_gpu_here_the_count_is_one_and_says_why(make_window, demo_folder, qtbot, monkeypatch):
    from worldstudio.core.runtime.launch import visible_gpu_count

    assert visible_gpu_count() == 0  # the tests' machine: no NVIDIA GPU
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.ask_save = lambda: True
    spin = gp.form.gpus
    assert not spin.isEnabled() and spin.value() == 1 and gp.form.gpu_count() == 1
    assert "This machine has no CUDA GPU, so runs use one." in spin.toolTip()
    calls = []
    monkeypatch.setattr(
        "worldstudio.core.generation.engine.generate_job",
        lambda folder, options: failing_job(calls, folder, options),
    )
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    assert len(calls) == 1  # the one-process job


def test_several_gpus_make_a_multi_gpu_job(make_window, demo_folder, qtbot, monkeypatch):
    monkeypatch.setattr("worldstudio.core.runtime.launch.visible_gpu_count", lambda: 4)
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.ask_save = lambda: True
    spin = gp.form.gpus
    assert spin.isEnabled() and (spin.minimum(), spin.maximum(), spin.value()) == (1, 4, 1)
    assert "This machine has 4 CUDA GPUs." in spin.toolTip()
    form = gp.form
    form.backend.setCurrentIndex(form.backend.findData("wan-vace"))
    form.set_profile("gpu")
    spin.setValue(2)
    calls = []
    monkeypatch.setattr(  # (a queued Generate also names the split mode: auto)
        "worldstudio.core.generation.parallel.parallel_generate_job",
        lambda folder, options, gpus, mode="auto": failing_job(calls, folder, options, gpus),
    )
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    assert gp.resume(demo_folder / "runs" / "earlier")
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    # the panel's check before it queues the run, the queued run, then the resume
    (_checked, _o, _g), (folder, options, gpus), (_f, resumed, gpus_resumed) = calls
    assert Path(folder) == w.doc.folder and (gpus, gpus_resumed) == (2, 2)
    assert options.profile == "gpu" and resumed.resume.endswith("earlier")
    # back to one: the ordinary job
    spin.setValue(1)
    one = []
    monkeypatch.setattr(
        "worldstudio.core.generation.engine.generate_job",
        lambda folder, options: failing_job(one, folder, options),
    )
    assert gp.generate()
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    assert len(one) == 1 and len(calls) == 3


def test_a_backend_that_runs_in_one_process_is_refused(make_window, demo_folder, monkeypatch):
    monkeypatch.setattr("worldstudio.core.runtime.launch.visible_gpu_count", lambda: 2)
    # the real check; the machine is told it has the GPUs the count asks for
    monkeypatch.setattr(
        "worldstudio.core.runtime.launch.check_worker_count", lambda count, flag="--gpus": "cuda"
    )
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.ask_save = lambda: True
    messages = []
    gp.message.connect(lambda text, error: messages.append((text, error)))
    form = gp.form
    form.backend.setCurrentIndex(form.backend.findData("geometry"))
    form.gpus.setValue(2)
    assert not gp.generate()
    assert messages[-1] == (
        "--gpus 2: backend geometry runs in one process; several GPUs work with wan-vace and "
        "wan-i2v",
        True,
    )
    assert not gp.running and list_runs(ProjectFolder(demo_folder)) == []
