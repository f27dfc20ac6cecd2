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
    assert gp.form.vram.text().endswith("GiB (gpu)")  # from the tiny T2V repo's own configs
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
