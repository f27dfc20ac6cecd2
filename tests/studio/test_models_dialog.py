"""Models ▸ Manage models…: the catalogue with what is here, downloads through the worker with
progress and Cancel, the offline failure, and local folders (tiny models in a fake hub cache)."""

from __future__ import annotations

import json
import threading

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tests import tiny_models
from worldstudio.core import models


def cell(dlg, name: str, col: int) -> str:
    for row in range(dlg.table.rowCount()):
        if dlg.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == name:
            return dlg.table.item(row, col).text()
    raise KeyError(name)


def wait_idle(qtbot, w, timeout=15000):
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=timeout)


def test_the_table_shows_the_catalogue_with_status_sizes_memory_and_licences(
    make_window, models_env, qtbot
):
    w = make_window()
    assert w.act_models in w.menuBar().actions()[-2].menu().actions()  # Models ▸ Manage models…
    dlg = w.show_models()
    qtbot.waitExposed(dlg)
    assert dlg.table.rowCount() == len(models.CATALOGUE)
    assert [dlg.table.horizontalHeaderItem(c).text() for c in range(7)] == [
        "Model",
        "Kind",
        "Status",
        "Size",
        "Memory",
        "Licence",
        "Hub repository",
    ]
    # the tiny models are in the fake cache under their real repo ids; the 14B VACE never is
    # (the session's fake hub may also hold the tiny Wan 1.3B pipelines the generation tests add)
    assert cell(dlg, "depth-anything-v2-small", 2) == "✓ downloaded"
    assert cell(dlg, "depth-anything-v2-small", 0) == "depth-anything-v2-small  (default)"
    assert cell(dlg, "sam2.1-tiny", 2) == "✓ downloaded"
    assert cell(dlg, "wan2.1-vace-14b", 2) == "not downloaded"
    assert (
        cell(dlg, "wan2.1-vace-14b", 3) == "~75 GB" and cell(dlg, "wan2.1-vace-14b", 4) == "40 GB"
    )
    assert (
        cell(dlg, "sam2.1-tiny", 6) == "facebook/sam2.1-hiera-tiny"
        and cell(dlg, "sam2.1-tiny", 1) == "segmentation"
    )
    # Depth Pro's research licence is visible in its row and spelled out under the table
    assert cell(dlg, "depth-pro", 5) == "apple-amlr — research use only"
    assert cell(dlg, "depth-anything-v2-small", 5) == "Apache-2.0"
    assert dlg.notes.isVisible() and "not for commercial use" in dlg.notes.text()
    assert "depth-pro" in dlg.notes.text()
    # present models need no download; missing ones offer it; offline is said up front
    assert not dlg.download_buttons["depth-pro"].isEnabled()
    assert dlg.download_buttons["wan2.1-vace-14b"].isEnabled()
    assert dlg.offline_label.isVisible() and "HF_HUB_OFFLINE" in dlg.offline_label.text()


def test_download_offline_fails_at_once_with_one_clear_message(make_window, models_env, qtbot):
    w = make_window()
    dlg = w.show_models()
    qtbot.mouseClick(dlg.download_buttons["sam2.1-large"], Qt.MouseButton.LeftButton)
    wait_idle(qtbot, w)
    text = dlg.message.text()
    assert text.startswith(
        "cannot download model sam2.1-large (facebook/sam2.1-hiera-large, 898 MB)"
    )
    assert "HF_HUB_OFFLINE is set" in text and "\n" not in text
    assert dlg.message.property("error") is True
    assert w.status_label.text().endswith(text)  # the status bar says the same
    assert dlg.job.state == "failed" and not dlg.job_row.isVisible()
    assert dlg.download_buttons["sam2.1-large"].text() == "Download"
    assert dlg.download_buttons["sam2.1-large"].isEnabled()


def test_download_shows_byte_progress_and_cancel_stops_it(
    make_window, models_env, qtbot, monkeypatch
):
    """The dialog's progress and Cancel, with a stand-in for the network transfer."""
    w = make_window()
    release = threading.Event()
    started = []

    def fake_download_job(name, force=False):
        def job(ctx):
            ctx.progress(0, 156_000_000, name)
            started.append(name)
            while not release.wait(0.01):  # the hub client reports as chunks arrive
                ctx.check_cancelled()
                ctx.progress(39_000_000, 156_000_000, name)
            return tiny_models.tiny_model_folder(tiny_models.SAM21_TINY)

        return job

    monkeypatch.setattr(models, "download_job", fake_download_job)
    dlg = w.show_models()
    assert dlg.download("sam2.1-small")
    qtbot.waitUntil(lambda: bool(started) and dlg.progress.value() == 250, timeout=5000)
    assert dlg.job_row.isVisible() and dlg.progress.format() == "39 MB of 156 MB"
    assert dlg.download_buttons["sam2.1-small"].text() == "Downloading…"
    assert not dlg.download_buttons["wan2.1-vace-14b"].isEnabled()  # one job at a time
    assert w.progress.isVisible()  # the status bar shows it too
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, w)
    assert "cancelled" in dlg.message.text() and not dlg.job_row.isVisible()
    # a download that completes refreshes the table
    release.set()
    assert dlg.download("sam2.1-small")
    wait_idle(qtbot, w)
    assert dlg.message.text().startswith("sam2.1-small is ready")


def test_use_local_folder_records_it_and_forget_removes_it(
    make_window, fake_hub, no_models_env, qtbot, monkeypatch, tmp_path
):
    w = make_window()
    dlg = w.show_models()
    assert cell(dlg, "depth-anything-v2-metric-outdoor-small", 2) == "not downloaded"
    folder = tiny_models.tiny_model_folder(tiny_models.DA_OUTDOOR)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    assert dlg.choose_local_dir("depth-anything-v2-metric-outdoor-small") == folder
    assert cell(dlg, "depth-anything-v2-metric-outdoor-small", 2) == "✓ local folder"
    cfg = json.loads(models.config_file().read_text())
    assert cfg["local_dirs"]["depth-anything-v2-metric-outdoor-small"] == str(folder.resolve())
    assert models.model_status("depth-anything-v2-metric-outdoor-small").path == folder.resolve()
    assert "now loads from" in dlg.message.text()
    # a folder without a model is recorded but said to be unusable
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(empty))
    dlg.choose_local_dir("sam2.1-tiny")
    assert cell(dlg, "sam2.1-tiny", 2) == "⚠ local folder has no model"
    assert dlg.message.property("error") is True and "config.json" in dlg.message.text()
    dlg.forget_local_dir("sam2.1-tiny")
    assert cell(dlg, "sam2.1-tiny", 2) == "not downloaded"
    assert "sam2.1-tiny" not in json.loads(models.config_file().read_text())["local_dirs"]
    # cancelling the folder dialog changes nothing
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    assert dlg.choose_local_dir("sam2.1-small") is None


@pytest.fixture(autouse=True)
def _close_dialogs(qtbot):
    yield
    from PySide6.QtWidgets import QApplication

    for top in QApplication.topLevelWidgets():
        if top.objectName() == "modelsDialog":
            top.close()
