"""The README's screenshot of play mode: ``python -m worldstudio.studio.play.screenshot [OUT_DIR]``.

Run it under a display, e.g.::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m worldstudio.studio.play.screenshot

It makes a copy of the demo project (``--size WxH``, default 416x240), opens it in the real main
window, starts play mode with the geometry backend, walks forward and turns a step, and
writes play-mode.png (default: resources/screenshots); then it stops the session.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from worldstudio.studio.util import REPO_ROOT


def _wait(app: QApplication, seconds: float, until=None) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.01)
    return until is None


def _key(app: QApplication, widget, key: Qt.Key, press: bool) -> None:
    kind = QKeyEvent.Type.KeyPress if press else QKeyEvent.Type.KeyRelease
    app.sendEvent(widget, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldstudio.studio.play.screenshot")
    parser.add_argument("out", nargs="?", default=str(REPO_ROOT / "resources" / "screenshots"))
    parser.add_argument("--size", default="416x240")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("WORLDSTUDIO_CONFIG_DIR", tempfile.mkdtemp(prefix="ws-shots-"))
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.studio.app import make_app
    from worldstudio.studio.main_window import MainWindow

    folder = Path(tempfile.mkdtemp(prefix="ws-play-")) / "demo.wsproj"
    create_demo_project(folder, width=width, height=height)
    app = make_app()
    w = MainWindow(start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1560, 960)
    w.show()
    w.open_project(folder)
    w.start_renders()
    _wait(app, 3.0)
    mode = w.play_mode
    w.act_play_world.trigger()  # ready: the strip's settings, then Enter
    mode.view.backend_box.setCurrentText("geometry")
    view = mode.view
    _key(app, view, Qt.Key.Key_Return, True)
    if not _wait(app, 120, lambda: view.frames_shown >= 9):
        print("play mode showed no frame")
        return 1
    _key(app, view, Qt.Key.Key_W, True)
    _wait(app, 120, lambda: view.frames_shown >= 40)
    _key(app, view, Qt.Key.Key_Right, True)
    _key(app, view, Qt.Key.Key_Right, False)  # one step's turn
    _wait(app, 120, lambda: view.frames_shown >= 80)
    w.grab().save(str(out / "play-mode.png"))
    _key(app, view, Qt.Key.Key_W, False)
    mode.stop()
    _wait(app, 120, lambda: not mode.running)
    print(f"wrote {out}/play-mode.png")
    w.ask_unsaved = lambda: "discard"
    w.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
