"""Fixtures for the studio tests: a small demo project and the real main window.

pytest-xvfb runs the whole session under Xvfb; GL tests are marked ``gl`` and skip themselves on
the offscreen Qt platform only. Settings and data go to a temporary folder, never the user's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import use_models_from


@pytest.fixture(autouse=True)
def _studio_config_dir(tmp_path_factory, monkeypatch):
    """Keep QSettings (recent projects, layout, remembered panel settings) and the demo copy out
    of the user's home, and each test's settings out of the next test's."""
    monkeypatch.setenv("WORLDSTUDIO_CONFIG_DIR", str(tmp_path_factory.mktemp("studio-config")))


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo project at 160x96, created once per session."""
    from worldstudio.core.oracle.demo_project import create_demo_project

    folder = tmp_path_factory.mktemp("demo-template") / "demo.wsproj"
    create_demo_project(folder, width=160, height=96)
    return folder


@pytest.fixture
def demo_folder(demo_template, tmp_path) -> Path:
    """A fresh copy of the small demo project for one test."""
    folder = tmp_path / "demo.wsproj"
    shutil.copytree(demo_template, folder)
    return folder


def gl_available() -> bool:
    from PySide6.QtWidgets import QApplication

    return QApplication.platformName() not in ("offscreen", "minimal")


@pytest.fixture
def make_window(qtbot):
    """``make_window(folder, viewport=False)``: the real MainWindow, shown, with the project open.

    Questions the window asks (unsaved changes, recovery) are answered by plain attributes that a
    test may change: ``window.ask_unsaved`` returns "discard" unless told otherwise."""
    from worldstudio.studio.app import apply_style
    from worldstudio.studio.main_window import MainWindow

    windows = []

    def make(folder: Path | None = None, viewport: bool = False, **kwargs):
        from PySide6.QtWidgets import QApplication

        apply_style(QApplication.instance())
        kwargs.setdefault("autosave_seconds", 0)
        kwargs.setdefault("start_renders_after_ms", None)
        w = MainWindow(viewport=viewport, **kwargs)
        w.ask_unsaved = lambda: "discard"
        w.ask_recover = lambda when: True
        qtbot.addWidget(w)
        w.resize(1400, 900)
        w.show()
        qtbot.waitExposed(w)
        qtbot.wait(20)  # the first layout's dock sizes apply once the window is shown
        if folder is not None:
            assert w.open_project(folder)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.ask_unsaved = lambda: "discard"
        w.close()


@pytest.fixture
def no_models_env(monkeypatch, tmp_path):
    """An empty hub cache, offline: every model is missing and cannot be downloaded."""
    hub = tmp_path / "empty-hub"
    hub.mkdir()
    yield use_models_from(hub, monkeypatch, tmp_path)
    from worldstudio.core.models import clear_local_dirs

    clear_local_dirs()
