"""The Generate panel with the tiny Wan VACE pipeline (a fake hub cache under the real repo id,
the real loading code): each denoising step's thumbnail strip reaches the live preview, with the
step in the text; Cancel stops the model run."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from worldstudio.core.generation.live_preview import preview_shape


def test_wan_vace_denoising_steps_reach_the_live_preview(make_window, demo_folder, qtbot, wan_env):
    w = make_window(demo_folder)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("wan-vace"))
    gp.form.width_spin.setValue(64)
    gp.form.height_spin.setValue(48)
    gp.form.frames_spin.setValue(9)
    gp.form.steps_spin.setValue(3)
    gp.form.set_profile("gpu")
    assert gp.form.vram.text().endswith("GiB (gpu)")  # the tiny model's own configs
    previews = []
    assert gp.generate()
    gp.job.preview.connect(lambda image, msg: previews.append((np.asarray(image).shape, msg)))
    qtbot.waitUntil(
        lambda: gp.screen.image is not None and "step" in gp.header.status.text(), timeout=120000
    )
    qtbot.mouseClick(gp.header.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not gp.running, timeout=120000)

    # A strip of latent-decoded thumbnails of the round's frames, one per denoising step.
    strip = preview_shape(48, 64, 9)
    assert previews and all(shape == strip for shape, _ in previews), previews
    assert any("step 1/3" in message for _, message in previews)
    assert gp.screen.image.shape == strip
    assert not gp.screen.pixmap().isNull()
    assert "cancelled" in gp.header.status.text() and gp.last_error == ""
