"""File ▸ Import and File ▸ Export through the menus' code paths: the action handlers run with
the file dialogs patched to return paths, the work goes through the worker, and the results are
checked on disk and in the open document (round trips, warnings, errors, unsaved changes)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from worldstudio.core.geometry.path import bake_path
from worldstudio.core.project import ProjectFolder
from worldstudio.studio import commands


@pytest.fixture
def dialogs(monkeypatch):
    """``dialogs(open=..., save=..., folder=...)``: what the next file dialogs answer."""

    def set_(open=None, save=None, folder=None):  # noqa: A002 - the dialog's name
        if open is not None:
            monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(open), ""))
        if save is not None:
            monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(save), ""))
        if folder is not None:
            monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))

    return set_


def finish(qtbot, w, timeout=30000):
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=timeout)


def menu_texts(menu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def test_the_file_menu_has_import_and_export(make_window, demo_folder):
    w = make_window(demo_folder)
    assert menu_texts(w.import_menu) == [
        "Project bundle (.zip)…",
        "LiveWorld sample (.yaml)…",
        "nerfstudio camera path (.json)…",
    ]
    assert menu_texts(w.export_menu) == [
        "Scene point cloud (PLY)…",
        "Scene with camera path && monitors (PLY)…",
        "Run point clouds (PLY)…",
        "Project bundle (.zip)…",
        "LiveWorld sample…",
        "nerfstudio camera path (.json)…",
        "Baked path as JSON…",
        "Baked path as CSV…",
        "Run video (mp4)…",
        "Last preview video…",
    ]
    w.interop.update_actions()  # what the menu does before it shows
    assert w.interop.act_export_ply.isEnabled() and w.interop.act_export_path_csv.isEnabled()
    assert not w.interop.act_export_mp4.isEnabled() and not w.interop.act_export_run_ply.isEnabled()


def test_bundle_export_saves_first_then_imports_as_a_new_project(
    make_window, demo_folder, dialogs, qtbot, tmp_path
):
    w = make_window(demo_folder)
    commands.rename_project(w.doc, "Renamed before the export")
    assert w.doc.is_modified
    asked = []
    w.interop.ask_save_before_export = lambda what: asked.append(what) or "save"
    dialogs(save=tmp_path / "demo")  # the suffix is added
    assert w.interop.act_export_bundle.isEnabled()
    w.interop.act_export_bundle.trigger()
    finish(qtbot, w)
    zpath = tmp_path / "demo.zip"
    assert asked == ["a bundle"] and not w.doc.is_modified  # saved, then exported
    with zipfile.ZipFile(zpath) as zf:
        assert "project.json" in zf.namelist() and "scene/points.ply" in zf.namelist()
        assert json.loads(zf.read("project.json"))["name"] == "Renamed before the export"
    assert w.status_label.text().startswith(f"Wrote {zpath}")

    out = tmp_path / "imported.wsproj"
    dialogs(open=zpath, save=out)
    w.interop.act_import_bundle.trigger()
    finish(qtbot, w)
    assert w.doc.folder == out and w.doc.project.name == "Renamed before the export"
    assert w.doc.cloud is not None and not w.doc.is_modified
    assert ProjectFolder(out).load() == ProjectFolder(demo_folder).load()


def test_a_malicious_bundle_is_refused_and_nothing_is_written(
    make_window, demo_folder, dialogs, qtbot, tmp_path
):
    w = make_window(demo_folder)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("project.json", (demo_folder / "project.json").read_text())
        zf.writestr("../escape.txt", "gotcha")
    out = tmp_path / "target.wsproj"
    dialogs(open=evil, save=out)
    w.interop.import_bundle()
    finish(qtbot, w)
    assert "../escape.txt" in w.status_label.text() and w.status_label.property("error")
    assert not out.exists() and not (tmp_path / "escape.txt").exists()
    assert w.doc.folder == demo_folder
    # a target that already holds files is refused before anything runs (a good bundle: the bad
    # one is refused before a target is asked for)
    from worldstudio.core.interop.bundle import export_bundle

    good, _ = export_bundle(demo_folder, tmp_path / "good.zip")
    (tmp_path / "full.wsproj").mkdir()
    (tmp_path / "full.wsproj" / "x").write_text("x")
    dialogs(open=good, save=tmp_path / "full.wsproj")
    assert not w.interop.import_bundle()
    assert "full.wsproj" in w.status_label.text() and not w.runner.busy


def test_liveworld_export_then_import_keeps_poses_and_prompts(
    make_window, demo_folder, dialogs, no_models_env, qtbot, tmp_path
):
    w = make_window(demo_folder)
    original = w.doc.project
    sample = tmp_path / "new" / "sample"  # a folder that does not exist yet: created
    dialogs(save=sample)
    w.interop.act_export_liveworld.trigger()
    finish(qtbot, w)
    assert (sample / "sample.yaml").is_file() and (sample / "geometry.npz").is_file()
    # the 160x96 demo is not LiveWorld's 832x480: the user is told, in the log and a message box
    warnings = w.interop.last_warnings
    assert any("832x480" in t for t in warnings)
    assert "warning: " in w.log_view.toPlainText() and "warning" in w.status_label.text()
    assert w.interop.warning_box is not None and w.interop.warning_box.isVisible()
    w.interop.warning_box.close()

    out = tmp_path / "from-liveworld.wsproj"
    dialogs(open=sample / "sample.yaml", save=out)
    w.interop.act_import_liveworld.trigger()
    finish(qtbot, w)
    p = w.doc.project
    assert w.doc.folder == out and p.scene.pending  # no depth model here: reconstruction pending
    assert "pending" in w.status_label.text()
    assert any("pending" in t for t in w.interop.last_warnings)
    assert [r.scene_text for r in p.rounds] == [r.scene_text for r in original.rounds]
    a = bake_path(original.camera_path, n_frames=original.total_frames).c2w
    b = bake_path(p.camera_path, n_frames=p.total_frames).c2w
    assert np.allclose(a, b, atol=1e-5)


def test_nerfstudio_path_round_trip_into_the_open_project_is_undoable(
    make_window, demo_folder, dialogs, qtbot, tmp_path
):
    w = make_window(demo_folder)
    original = w.doc.project.camera_path
    ns = tmp_path / "camera_path.json"
    dialogs(save=ns)
    w.interop.act_export_nerfstudio.trigger()
    finish(qtbot, w)
    data = json.loads(ns.read_text())
    assert len(data["keyframes"]) == len(original.keyframes) and data["render_width"] == 160

    # change the path, then import the file back: the old path returns, as one undo step
    kfs = w.doc.project.camera_path.keyframes
    commands.delete_keyframe(w.doc, kfs[1].id)
    changed = w.doc.project.camera_path
    saved_json = (demo_folder / "project.json").read_bytes()
    dialogs(open=ns)
    assert w.interop.act_import_nerfstudio.isEnabled()
    w.interop.act_import_nerfstudio.trigger()
    got = w.doc.project.camera_path
    assert np.allclose(bake_path(got).c2w, bake_path(original).c2w, atol=1e-5)
    assert [k.id for k in got.keyframes] == [k.id for k in original.keyframes]
    assert w.doc.undo_stack.undoText() == "Import nerfstudio camera path"
    assert (
        demo_folder / "project.json"
    ).read_bytes() == saved_json  # nothing written behind the doc
    w.act_undo.trigger()
    assert w.doc.project.camera_path == changed

    # a broken file: a clear error, the document unchanged
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keyframes": [{"matrix": [1, 2, 3], "fov": 50}]}))
    dialogs(open=bad)
    assert not w.interop.import_nerfstudio()
    assert str(bad) in w.status_label.text() and w.status_label.property("error")
    assert w.doc.project.camera_path == changed


def test_ply_and_baked_path_exports(make_window, demo_folder, dialogs, qtbot, tmp_path):
    from worldstudio.core.pointcloud.ply import read_ply

    w = make_window(demo_folder)
    n_scene = len(w.doc.cloud.xyz)
    dialogs(save=tmp_path / "scene.ply")
    w.interop.act_export_ply.trigger()
    finish(qtbot, w)
    assert len(read_ply(tmp_path / "scene.ply").xyz) == n_scene
    dialogs(save=tmp_path / "scene-path.ply")
    w.interop.act_export_ply_path.trigger()
    finish(qtbot, w)
    assert len(read_ply(tmp_path / "scene-path.ply").xyz) > n_scene  # the path and frustums added

    total = w.doc.project.total_frames
    dialogs(save=tmp_path / "path.json")
    w.interop.act_export_path_json.trigger()
    finish(qtbot, w)
    data = json.loads((tmp_path / "path.json").read_text())
    assert len(data["frames"]) == total and len(data["frames"][0]["c2w"]) == 16
    dialogs(save=tmp_path / "path")  # .csv added
    w.interop.act_export_path_csv.trigger()
    finish(qtbot, w)
    lines = (tmp_path / "path.csv").read_text().splitlines()
    assert lines[0].startswith("index,time,m00") and len(lines) == total + 1
    assert w.status_label.text() == f"Wrote {tmp_path / 'path.csv'} ({total} frames)"


def test_unsaved_changes_cancel_or_export_the_saved_version(
    make_window, demo_folder, dialogs, qtbot, tmp_path
):
    w = make_window(demo_folder)
    commands.rename_project(w.doc, "Not saved")
    dialogs(save=tmp_path / "b.zip")
    w.interop.ask_save_before_export = lambda what: "cancel"
    assert not w.interop.export_bundle()
    assert not (tmp_path / "b.zip").exists() and w.doc.is_modified
    w.interop.ask_save_before_export = lambda what: "saved"
    assert w.interop.export_bundle()
    finish(qtbot, w)
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert json.loads(zf.read("project.json"))["name"] != "Not saved"
    assert w.doc.is_modified  # the edits stay, unsaved


def _fake_run(folder: Path, monitor_id: str, frames: int = 5) -> str:
    """A run in the engine's layout: observer and monitor clips, a round cloud."""
    import shutil

    from tests.interop.helpers import empty_run
    from worldstudio.core.media import write_mp4

    run = empty_run(folder, "run-test")
    run.round_dir(0).mkdir()
    for path, color in (
        (run.observer_mp4(0), (200, 40, 40)),
        (run.monitor_mp4(0, monitor_id), (40, 200, 40)),
    ):
        clip = []
        for i in range(frames):
            img = np.zeros((96, 160, 3), np.uint8)
            img[:, : 20 + 20 * i] = color
            clip.append(img)
        write_mp4(path, clip, fps=16)
    shutil.copy(folder / "scene" / "points.ply", run.static_ply(0))
    return run.id


def test_run_video_with_a_layout_and_run_clouds(make_window, demo_folder, dialogs, qtbot, tmp_path):
    from worldstudio.core.media import probe_video
    from worldstudio.core.pointcloud.ply import read_ply

    w = make_window(demo_folder)
    mon = w.doc.project.monitors[0]
    run = _fake_run(demo_folder, mon.id)
    w.interop.update_actions()
    assert w.interop.act_export_mp4.isEnabled() and w.interop.act_export_run_ply.isEnabled()
    asked = []
    w.interop.ask_run = lambda runs, with_layout: (
        asked.append((runs, with_layout)) or (run, "combined")
    )
    dialogs(save=tmp_path / "run.mp4")
    w.interop.act_export_mp4.trigger()
    finish(qtbot, w, 60000)
    assert asked == [(["run-test"], True)]
    info = probe_video(tmp_path / "run.mp4")
    assert info.frames == 5 and info.width > 160 and info.height == 96  # monitors beside it
    assert "combined" in w.status_label.text()

    w.interop.ask_run = lambda runs, with_layout: (run, "")
    dialogs(save=tmp_path / "clouds.ply")
    w.interop.act_export_run_ply.trigger()
    finish(qtbot, w)
    out = tmp_path / "clouds_round_000.ply"
    assert len(read_ply(out).xyz) == len(w.doc.cloud.xyz)


class BareShell:
    """The least a window must offer the interop actions (studio.shell.Shell): no MainWindow."""

    def __init__(self, folder):
        from PySide6.QtWidgets import QWidget

        from worldstudio.studio.document import ProjectDocument

        self._widget = QWidget()
        self.doc = ProjectDocument()
        self.doc.load(folder)
        self.messages, self.logs, self.jobs, self.actions = [], [], [], []

    def widget(self):
        return self._widget

    def run_job(self, job, description, on_done=None, on_failed=None, lane="gpu"):
        from worldstudio.core.jobs import JobContext

        self.jobs.append(description)
        on_done(job(JobContext()))  # at once, in this thread
        return object()

    def show_message(self, text, error=False):
        self.messages.append((text, error))

    def log(self, text):
        self.logs.append(text)

    def open_project(self, folder, offer_recovery=True):
        raise AssertionError("an export opens nothing")

    def save(self):
        raise AssertionError("nothing to save")

    def ensure_saved(self):
        raise AssertionError("an export replaces nothing")

    def add_action(self, text, slot, shortcut=None, tip=None, name=None):
        from PySide6.QtGui import QAction

        action = QAction(text, self._widget)
        action.triggered.connect(lambda _checked=False: slot())
        self.actions.append(text)
        return action


def test_the_interop_actions_need_only_the_shell(demo_folder, dialogs, qtbot, tmp_path):
    from worldstudio.studio.interop_actions import InteropActions
    from worldstudio.studio.shell import Shell

    shell = BareShell(demo_folder)
    qtbot.addWidget(shell.widget())
    assert isinstance(shell, Shell)
    actions = InteropActions(shell)
    assert "Baked path as JSON…" in shell.actions and len(shell.actions) == 12
    dialogs(save=tmp_path / "path.json")
    actions.act_export_path_json.trigger()
    total = shell.doc.project.total_frames
    assert len(json.loads((tmp_path / "path.json").read_text())["frames"]) == total
    assert shell.jobs == ["Export baked path (JSON)"]
    assert shell.messages == [(f"Wrote {tmp_path / 'path.json'} ({total} frames)", False)]


def test_the_main_window_is_a_shell(make_window):
    from worldstudio.studio.shell import Shell

    w = make_window()
    assert isinstance(w, Shell) and w.interop.shell is w
