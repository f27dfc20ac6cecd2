"""The Generate panel with the ``liveworld`` backend (the tiny LiveWorld model in a fake hub cache
under the real repo ids, the real loading code): a 2-round run with the demo's monitor completes,
each denoising step's thumbnail strip reaches the live preview, the estimate shows."""

from __future__ import annotations

import numpy as np
import pytest

from tests.generation.liveworld.conftest import liveworld_hub
from worldstudio.core.generation.live_preview import preview_shape


@pytest.fixture
def liveworld_studio_env(tmp_path_factory, monkeypatch):
    from worldstudio.core.models import clear_local_dirs

    state = liveworld_hub(tmp_path_factory)
    monkeypatch.setenv("HF_HUB_CACHE", str(state["hub"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CACHE", str(state["cache"]))
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(state["config"]))
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    clear_local_dirs()
    yield state
    clear_local_dirs()


def _liveworld_estimate(h: int, w: int, f: int, profile: str, model: str | None = None) -> str:
    from worldstudio.core.generation.backends import get_backend

    return get_backend("liveworld", model_id=model).estimate(h, w, f, profile).text()


def test_the_model_and_memory_boxes_follow_the_liveworld_backend(
    make_window, demo_folder, liveworld_studio_env
):
    """Choosing liveworld offers its two models (both on this machine: ●) and its profiles, fp8
    among them, with LiveWorld's estimate; back on a Wan backend the boxes are Wan's again."""
    from worldstudio.core.generation.memory import LIVEWORLD_PROFILES, PROFILES

    w = make_window(demo_folder)
    form = w.generate_panel.form
    form.backend.setCurrentIndex(form.backend.findData("wan-vace"))
    form.set_profile("low-vram")
    form.backend.setCurrentIndex(form.backend.findData("liveworld"))
    g = w.doc.project.generation
    assert (g.backend, g.model_id) == ("liveworld", "liveworld")  # one undoable edit
    models = [form.model.itemData(i) for i in range(form.model.count())]
    assert models == ["liveworld", "liveworld-4step"]
    assert [form.model.itemText(i) for i in range(2)] == [
        "● liveworld (full step)",
        "● liveworld-4step",
    ]
    profiles = [form.profile.itemData(i) for i in range(form.profile.count())]
    assert profiles == list(LIVEWORLD_PROFILES) and "fp8" in profiles
    assert form.profile.currentData() == "low-vram"  # kept: LiveWorld has it
    h, wd, f = g.height, g.width, g.frames_per_round
    assert form.vram.text() == _liveworld_estimate(h, wd, f, "low-vram")
    form.set_profile("fp8")
    assert form.vram.text() == _liveworld_estimate(h, wd, f, "fp8") and "fp8" in form.vram.text()
    form.model.setCurrentIndex(form.model.findData("liveworld-4step"))
    assert w.doc.project.generation.model_id == "liveworld-4step"
    assert "auto flow shift" in form.conditioning_info.text()
    assert form.conditioning_info.text().endswith(": 8")  # the 4-step sampler's shift
    assert "auto context: 10 frames" in form.conditioning_info.text()
    form.set_profile("auto")
    assert "all on the GPU" in form.vram.text() and "; RAM ~" in form.vram.text()

    form.backend.setCurrentIndex(form.backend.findData("wan-vace"))
    g = w.doc.project.generation
    assert g.model_id == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"  # liveworld's is not Wan's
    assert [form.profile.itemData(i) for i in range(form.profile.count())] == list(PROFILES)
    form.set_profile("gpu")
    assert "RAM" not in form.vram.text()
    w.doc.undo_stack.undo()  # the backend and its model, together
    g = w.doc.project.generation
    assert (g.backend, g.model_id) == ("liveworld", "liveworld-4step")


def test_a_liveworld_run_from_the_generate_panel(
    make_window, demo_folder, qtbot, liveworld_studio_env
):
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("liveworld"))
    gp.form.width_spin.setValue(64)
    gp.form.height_spin.setValue(48)
    gp.form.frames_spin.setValue(5)
    gp.form.steps_spin.setValue(2)
    gp.form.set_profile("gpu")
    assert w.doc.project.generation.backend == "liveworld"
    # LiveWorld's estimate, GPU and RAM, from the tiny T2V repo's own configs
    assert gp.form.vram.text() == _liveworld_estimate(48, 64, 5, "gpu")
    assert gp.form.vram.text().endswith("GiB RAM)")
    gp.ask_save = lambda: True
    previews = []

    assert gp.generate()
    gp.job.preview.connect(lambda image, msg: previews.append((np.asarray(image).shape, msg)))
    qtbot.waitUntil(lambda: not gp.running, timeout=300000)
    result = gp.last_result
    assert result is not None and result.rounds_done == 2, gp.last_error
    assert result.backend == "liveworld"
    strip = preview_shape(48, 64, 5)
    assert any(shape == strip and "step 2/2" in msg for shape, msg in previews), previews
    assert w.player.path == result.final_mp4
