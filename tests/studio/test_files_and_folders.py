"""Where the studio puts and looks for files: new projects and the demo copy in a visible
~/WorldStudio, file dialogs in the project's folder or the last one used, a bundle checked
before a destination is asked for, exports with ordinary permissions."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from worldstudio.studio import settings as app_settings

from .test_import_export import finish


def test_projects_and_the_demo_copy_go_to_a_visible_folder_in_home(monkeypatch, tmp_path):
    from worldstudio.studio.app import demo_project_folder

    monkeypatch.delenv("WORLDSTUDIO_CONFIG_DIR", raising=False)
    monkeypatch.delenv("WORLDSTUDIO_PROJECTS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert app_settings.projects_dir() == tmp_path / "home" / "WorldStudio"
    demo = demo_project_folder()
    assert demo == tmp_path / "home" / "WorldStudio" / "demo.wsproj"
    assert (demo / "project.json").is_file()
    rel = demo.relative_to(tmp_path / "home")
    assert not any(part.startswith(".") or " " in part for part in rel.parts)
    monkeypatch.setenv("WORLDSTUDIO_PROJECTS_DIR", str(tmp_path / "mine"))
    assert app_settings.projects_dir() == tmp_path / "mine" and (tmp_path / "mine").is_dir()


def test_new_projects_are_proposed_in_the_projects_folder(make_window, demo_folder, monkeypatch):
    w = make_window(demo_folder)
    asked = {}

    def save(parent, title, start, filt):
        asked[title] = start
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save)
    w.new_demo_project()
    projects = app_settings.projects_dir()
    assert asked["New demo project (a folder)"] == str(projects / "demo.wsproj")
    w.doc.folder = None  # a project never saved: Save as proposes the projects folder too
    w.save_as()
    assert asked["Save project as (a folder)"] == str(projects / "Demo-room.wsproj")
    w.doc.folder = demo_folder


def test_export_and_import_dialogs_open_in_the_project_folder_then_the_last_one(
    make_window, demo_folder, monkeypatch, qtbot, tmp_path
):
    w = make_window(demo_folder)
    starts: list[str] = []
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()

    def save(parent, title, start, filt):
        starts.append(start)
        return str(elsewhere / "scene.ply"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save)
    assert w.interop.export_scene_ply()
    finish(qtbot, w)
    assert Path(starts[0]).parent == demo_folder.parent  # where the project is
    assert w.interop.export_path("json")
    finish(qtbot, w)
    assert Path(starts[1]).parent == elsewhere  # the last folder used
    # Imports remember their own folder.
    opened: list[str] = []
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda p, t, start, f: opened.append(start) or ("", "")
    )
    w.interop.import_nerfstudio()
    assert opened == [str(demo_folder.parent)]


def test_a_bad_bundle_is_refused_before_a_destination_is_asked_for(
    make_window, demo_folder, monkeypatch, qtbot, tmp_path
):
    w = make_window(demo_folder)
    bad = tmp_path / "not-a-bundle.zip"
    bad.write_bytes(b"this is no zip")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("project.json", (demo_folder / "project.json").read_text())
        zf.writestr("../escape.txt", "gotcha")
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        lambda *a: pytest.fail("a destination was asked for an invalid bundle"),
    )
    for path, says in ((bad, "not a zip archive"), (evil, "../escape.txt")):
        monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, p=path: (str(p), ""))
        assert not w.interop.import_bundle()
        assert says in w.status_label.text() and w.status_label.property("error")
        assert not w.runner.busy and w.doc.folder == demo_folder
    # A good bundle: the destination is proposed in the projects folder, named after it.
    from worldstudio.core.interop.bundle import export_bundle

    good, _ = export_bundle(demo_folder, tmp_path / "good.zip")
    proposed = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: (str(good), ""))
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda p, t, start, f: proposed.append(start) or ("", "")
    )
    assert not w.interop.import_bundle()  # cancelled at the destination
    assert proposed == [str(app_settings.projects_dir() / "good.wsproj")]


def test_exported_files_get_ordinary_permissions(
    make_window, demo_folder, monkeypatch, qtbot, tmp_path, no_models_env
):
    w = make_window(demo_folder)
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        targets = {
            "bundle": out / "demo.zip",
            "ply": out / "scene.ply",
            "json": out / "path.json",
            "csv": out / "path.csv",
            "nerfstudio": out / "camera_path.json",
            "liveworld": out / "lw",
        }
        for kind, target in targets.items():
            monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, t=target: (str(t), ""))
            started = {
                "bundle": w.interop.export_bundle,
                "ply": w.interop.export_scene_ply,
                "json": lambda: w.interop.export_path("json"),
                "csv": lambda: w.interop.export_path("csv"),
                "nerfstudio": w.interop.export_nerfstudio,
                "liveworld": w.interop.export_liveworld,
            }[kind]()
            assert started, kind
            finish(qtbot, w)
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) >= 8
        modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files}
        assert all(m == 0o644 for m in modes.values()), modes
    finally:
        os.umask(old)
