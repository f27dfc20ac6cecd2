"""The Generate panel's speed and memory settings: undoable project edits that the VRAM estimate
and the run follow; a compiled run shows "compiling…" while its first call compiles."""

from __future__ import annotations

from worldstudio.core.project.runs import RunFolder

TIMEOUT = 120000


def wan_panel(w):
    gp = w.generate_panel
    form = gp.form
    form.backend.setCurrentIndex(form.backend.findData("wan-vace"))
    form.model.setCurrentIndex(form.model.findData("Wan-AI/Wan2.1-VACE-1.3B-diffusers"))
    form.width_spin.setValue(64)
    form.height_spin.setValue(48)
    form.frames_spin.setValue(5)
    form.steps_spin.setValue(2)
    form.set_profile("gpu")
    gp.ask_save = lambda: True
    return gp


def choose(combo, value):
    combo.setCurrentIndex(combo.findData(value))


def test_speed_settings_are_undoable_edits_the_estimate_follows(make_window, demo_folder):
    w = make_window(demo_folder)
    gp = wan_panel(w)
    form = gp.form
    plain = form.vram.text()
    assert plain.endswith("GiB (gpu)")
    before = w.doc.undo_stack.count()
    choose(form.precision, "fp8")
    assert w.doc.project.generation.precision == "fp8"
    assert form.vram.text().endswith("(gpu, fp8)")
    assert float(form.vram.text()[1:].split()[0]) < float(plain[1:].split()[0])
    choose(form.quality, "fast")
    assert form.vram.text().endswith("(gpu, fp8, taylorseer)")
    assert "taylorseer" in form.quality_info.text()
    choose(form.quality, "draft")
    assert "causvid-lora-wan2.1-1.3b" in form.quality_info.text()
    assert "8 steps" in form.quality_info.text()
    choose(form.cache, "pab")
    choose(form.attention, "native-math")
    form.compile.setChecked(True)
    choose(form.vae_tiling, "on")
    form.colour_match.setChecked(False)
    g = w.doc.project.generation
    assert (g.quality, g.cache, g.attention, g.compile) == ("draft", "pab", "native-math", True)
    assert g.vae_tiling is True and g.colour_match is False
    assert "compiled" in form.vram.text() and "VAE tiling" in form.vram.text()
    # (fast then draft merge into one edit of the quality)
    assert w.doc.undo_stack.count() == before + 7
    for _ in range(7):
        w.doc.undo_stack.undo()
    g = w.doc.project.generation
    assert (g.precision, g.quality, g.cache, g.attention, g.compile) == (
        "auto",
        "full",
        "auto",
        "auto",
        False,
    )
    assert g.vae_tiling is None and g.colour_match is True
    assert form.vram.text() == plain and form.precision.currentData() == "auto"
    # a model-free backend has none of them
    choose(form.backend, "geometry")
    assert not form.quality.isEnabled() and not form.compile.isEnabled()


def test_a_compiled_run_says_compiling_while_its_first_call_compiles(
    make_window, demo_folder, qtbot, wan_env, monkeypatch
):
    # the eager dynamo backend: the same tracing without inductor's C++ build on this CPU
    monkeypatch.setenv("WORLDSTUDIO_COMPILE_BACKEND", "eager")
    w = make_window(demo_folder)
    gp = wan_panel(w)
    gp.form.compile.setChecked(True)
    statuses: list[str] = []
    assert gp.generate()
    gp.job.progress.connect(lambda _d, _t, message: statuses.append(message))
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    assert gp.last_error == "", gp.last_error
    assert any("compiling the transformer" in m and "…" in m for m in statuses), statuses
    settings = RunFolder(gp.last_result.run_dir).read_meta()["settings"]
    assert settings["compile"] is True
    assert gp.last_result.rounds_done == gp.last_result.rounds_total


def test_a_branch_takes_the_speed_settings(make_window, demo_folder, qtbot, monkeypatch):
    from worldstudio.core.errors import WorldStudioError

    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.ask_save = lambda: True
    choose(gp.form.quality, "draft")
    choose(gp.form.attention, "native")
    calls = []

    def fake_generate_job(folder, options):
        calls.append(options)

        def job(ctx):
            raise WorldStudioError("no run here")

        return job

    monkeypatch.setattr("worldstudio.core.generation.engine.generate_job", fake_generate_job)
    assert gp.branch(0, demo_folder / "runs" / "nothing")
    qtbot.waitUntil(lambda: not gp.running, timeout=TIMEOUT)
    (options,) = calls
    assert (options.quality, options.attention, options.colour_match) == ("draft", "native", True)
    # the draft preset decides the sampling: the project's steps are not forced on it
    assert options.steps is None and options.guidance is None and options.flow_shift is None
