"""`worldstudio` (no arguments) and `worldstudio studio PROJECT` start the real studio through
the CLI; the window carries the application icon; Help ▸ System report… shows the doctor's
report with the OpenGL renderer and copies it."""

from __future__ import annotations

import signal

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from tests.studio.conftest import gl_available
from worldstudio.core.cli import main
from worldstudio.studio import settings as app_settings


def _run_studio_from_the_cli(argv: list[str]) -> tuple[int, dict]:
    """Run ``worldstudio ARGV``; once its window is up, note what it shows and close it."""
    from worldstudio.studio.main_window import MainWindow

    seen: dict = {}

    def look_and_close(tries: int = 100) -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        shown = [w for w in windows if w.isVisible() and w.doc.folder is not None]
        if not shown:
            if tries:
                QTimer.singleShot(50, lambda: look_and_close(tries - 1))
            else:
                QApplication.quit()
            return
        (w,) = shown
        seen.update(
            folder=w.doc.folder,
            viewport=w.viewport is not None,
            icon=QApplication.windowIcon().pixmap(64, 64).toImage(),
            desktop_file=QGuiApplication.desktopFileName(),
        )
        w.ask_unsaved = lambda: "discard"
        w.close()
        w.deleteLater()
        QApplication.quit()

    QTimer.singleShot(0, look_and_close)
    handler = signal.getsignal(signal.SIGINT)  # the studio closes its window on Ctrl+C
    try:
        code = main(argv)
    finally:
        signal.signal(signal.SIGINT, handler)
    return code, seen


def test_worldstudio_studio_opens_the_project_given(demo_folder, qapp):
    code, seen = _run_studio_from_the_cli(["studio", str(demo_folder), "--no-viewport"])
    assert code == 0
    assert seen["folder"] == demo_folder and seen["viewport"] is False
    icon = seen["icon"]  # the app icon drawn at 64 px: the dark tile with the blue world
    assert icon.width() == 64 and icon.pixelColor(32, 32).blue() > 150
    assert icon.pixelColor(0, 0).alpha() == 0 and icon.pixelColor(4, 32).alpha() == 255
    assert seen["desktop_file"] == "worldstudio"  # the entry install-desktop writes


def test_worldstudio_alone_opens_the_studio_on_the_last_project(demo_folder, qapp):
    if not gl_available():
        pytest.skip("the studio opens with its 3D view, which needs OpenGL (offscreen platform)")
    app_settings.settings().setValue("last_project", str(demo_folder))
    code, seen = _run_studio_from_the_cli([])
    assert code == 0
    assert seen["folder"] == demo_folder and seen["viewport"] is True


def test_help_system_report_shows_the_doctors_report_and_copies_it(make_window, demo_folder):
    w = make_window(demo_folder)
    assert w.act_system_report in w.menuBar().actions()[-1].menu().actions()
    w.act_system_report.trigger()
    dlg = w.system_report_dialog
    assert dlg.isVisible() and dlg.windowTitle() == "System report"
    text = dlg.text.toPlainText()
    labels = [line.split("  ")[0] for line in text.splitlines()[1:] if not line.startswith(" ")]
    for label in ("OS", "torch", "NVIDIA driver", "Attention", "RAM", "Hub cache", "Models"):
        assert label in labels
    lines = text.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("OpenGL")]
    assert f"Qt platform {QGuiApplication.platformName()}" in lines[at]
    renderer = lines[at + 1].strip()
    if gl_available():  # the renderer of a real context, e.g. "llvmpipe (LLVM 15...), OpenGL 4.5"
        assert renderer.startswith("renderer: ") and not renderer.startswith("renderer: none")
        assert ", OpenGL " in renderer
    else:
        assert renderer == "renderer: none (no OpenGL context could be made)"
    dlg.copy_button.click()
    assert QGuiApplication.clipboard().text() == text
    assert dlg.copy_button.text() == "Copied" and dlg.isVisible()
    dlg.reject()
