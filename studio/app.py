"""Starting the studio: ``python -m worldstudio.studio [PROJECT]`` or the ``worldstudio-studio`` launcher.

With no project argument the studio opens the last project; on first launch (or when that is
gone) it opens the demo project: a per-user copy (in ``~/WorldStudio``, where new projects go
too) of ``projects/demo.wsproj`` from the repository,
or one created with ``worldstudio.core.oracle.demo_project.create_demo_project`` when the repository's copy
is missing. torch and the model libraries are not imported here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from worldstudio.studio import settings as app_settings
from worldstudio.studio.util import REPO_ROOT, RESOURCES

BUNDLED_DEMO = REPO_ROOT / "projects" / "demo.wsproj"


def demo_project_folder() -> Path:
    """The user's copy of the demo project, ``~/WorldStudio/demo.wsproj``, made on first use
    (edits never touch the bundle)."""
    target = app_settings.projects_dir() / "demo.wsproj"
    if (target / "project.json").is_file():
        return target
    if (BUNDLED_DEMO / "project.json").is_file():
        shutil.copytree(BUNDLED_DEMO, target, dirs_exist_ok=True)
    else:
        from worldstudio.core.oracle.demo_project import create_demo_project

        create_demo_project(target)
    return target


def initial_project(argument: str | None) -> Path:
    if argument:
        return Path(argument)
    last = app_settings.settings().value("last_project")
    if last and (Path(str(last)) / "project.json").is_file():
        return Path(str(last))
    return demo_project_folder()


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor(30, 33, 39), QColor(40, 44, 52), QColor(222, 226, 232)
    for role, color in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor(36, 40, 47)),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, QColor(50, 55, 64)),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.Highlight, QColor(64, 120, 200)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.ToolTipBase, QColor(50, 55, 64)),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.PlaceholderText, QColor(130, 136, 148)),
        (QPalette.ColorRole.Link, QColor(110, 170, 255)),
    ):
        pal.setColor(role, color)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(110, 114, 122))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(110, 114, 122))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(110, 114, 122))
    app.setPalette(pal)
    qss = RESOURCES / "style.qss"
    if qss.is_file():
        icons = (RESOURCES / "icons").as_posix()
        app.setStyleSheet(qss.read_text(encoding="utf-8").replace("@ICONS@", icons))


def make_app(argv: Sequence[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("World Studio")
    app.setOrganizationName("WorldStudio")
    # the window icon, and the desktop entry `worldstudio install-desktop` writes (Wayland
    # compositors match windows to their entry by this name)
    app.setWindowIcon(app_icon())
    app.setDesktopFileName("worldstudio")
    apply_style(app)
    return app


def app_icon() -> QIcon:
    """World Studio's icon, studio/resources/worldstudio.svg: scalable, so the window system gets
    it at each size it asks for (its 256 px PNG where Qt has no SVG support)."""
    icon = QIcon(str(RESOURCES / "worldstudio.svg"))
    if icon.pixmap(64, 64).isNull():
        icon = QIcon(str(RESOURCES / "worldstudio.png"))
    return icon


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="worldstudio-studio", description="The World Studio desktop app."
    )
    parser.add_argument(
        "project",
        nargs="?",
        help="a project folder to open (default: the last one, "
        "or the demo project on first launch)",
    )
    parser.add_argument(
        "--no-viewport", action="store_true", help="start without the 3D view (no OpenGL)"
    )
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    from worldstudio.core.runtime.threads import apply_thread_policy

    # before torch loads: the UI thread and the encoders keep their share (core.runtime.threads)
    apply_thread_policy("studio")
    app = make_app()

    from worldstudio.studio.main_window import MainWindow

    window = MainWindow(viewport=not args.no_viewport)
    folder = initial_project(args.project)
    window.show()
    window.open_project(folder)
    _close_on_ctrl_c(app, window)
    return app.exec()


def _close_on_ctrl_c(app: QApplication, window) -> None:
    """Ctrl+C in the terminal closes the window the normal way (with the unsaved-changes question)."""
    import signal

    from PySide6.QtCore import QTimer

    signal.signal(signal.SIGINT, lambda *_: window.close())
    # Qt's event loop runs C++ code; a periodic no-op lets Python run its signal handlers.
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
