"""Take the README's screenshots of the studio: ``python -m worldstudio.studio.screenshots [OUT_DIR] [PROJECT]``.

Run it under a display with OpenGL, e.g.::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m worldstudio.studio.screenshots

It opens the demo project (or PROJECT) in the real main window at 1920x1080, waits for the
background renders, and writes main-window.png, keyframe-inspector.png, gizmo.png,
monitor-inspector.png, timeline.png, path-dialog.png and preview-player.png (default:
resources/screenshots).

``python -m worldstudio.studio.screenshots --dialogs [OUT_DIR] [IMAGE]`` writes models-dialog.png (the
models found through the environment: HF_HUB_CACHE, models.json) and new-from-image.png (IMAGE,
default tests/data/coffee.jpg, with a crop chosen on it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from worldstudio.studio.util import REPO_ROOT


def _wait(app: QApplication, seconds: float, until=None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.01)


def dialogs(argv: list[str]) -> int:
    """Screenshots of the Models dialog and the New from image dialog."""
    out = Path(argv[0]) if argv else REPO_ROOT / "resources" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    image = Path(argv[1]) if len(argv) > 1 else REPO_ROOT / "tests" / "data" / "coffee.jpg"
    os.environ.setdefault("WORLDSTUDIO_CONFIG_DIR", tempfile.mkdtemp(prefix="ws-shots-"))
    os.environ["WORLDSTUDIO_QUEUE"] = str(Path(tempfile.mkdtemp(prefix="ws-shots-")) / "queue.json")
    from worldstudio.studio.app import make_app
    from worldstudio.studio.main_window import MainWindow

    app = make_app()
    w = MainWindow(viewport=False, start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1400, 900)
    w.show()
    _wait(app, 0.3)
    dlg = w.show_models()
    _wait(app, 0.5)
    dlg.grab().save(str(out / "models-dialog.png"))
    dlg.close()

    dlg = w.new_from_image()
    dlg.set_image(image)
    dlg.out_edit.setText(str(Path(tempfile.gettempdir()) / f"{image.stem}.wsproj"))
    dlg.fov_check.setChecked(True)
    dlg.fov_spin.setValue(55.0)
    cv = dlg.crop_view
    iw, ih = cv.image_size
    cv.set_crop((0.12 * iw, 0.2 * ih, 0.7 * iw, 0))
    _wait(app, 0.5)
    dlg.grab().save(str(out / "new-from-image.png"))
    dlg.reject()
    w.ask_unsaved = lambda: "discard"
    w.close()
    print(f"wrote {out}/models-dialog.png, new-from-image.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--dialogs":
        return dialogs(argv[1:])
    out = Path(argv[0]) if argv else REPO_ROOT / "resources" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    # A private settings folder: no saved layout, recent list or demo copy of the user's leaks in;
    # a job queue of its own.
    os.environ.setdefault("WORLDSTUDIO_CONFIG_DIR", tempfile.mkdtemp(prefix="ws-shots-"))
    os.environ["WORLDSTUDIO_QUEUE"] = str(Path(tempfile.mkdtemp(prefix="ws-shots-")) / "queue.json")
    from worldstudio.studio.app import demo_project_folder, make_app
    from worldstudio.studio.document import Selection
    from worldstudio.studio.main_window import MainWindow

    app = make_app()
    project = Path(argv[1]) if len(argv) > 1 else demo_project_folder()
    w = MainWindow(start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1920, 1080)
    w.show()
    w.open_project(project)
    w.doc.set_playhead(40)
    w.start_renders()
    _wait(app, 30, lambda: w.camera_view.shown_frame == 40)
    _wait(app, 0.5)
    w.grab().save(str(out / "main-window.png"))

    kf = w.doc.project.camera_path.keyframes[1]
    w.doc.set_selection(Selection("keyframe", kf.id))
    w.doc.set_playhead(w.doc.keyframe_frames()[1])
    _wait(app, 30, lambda: w.camera_view.shown_frame == w.doc.playhead)
    _wait(app, 0.5)
    w.grab().save(str(out / "keyframe-inspector.png"))
    gizmo_shot(app, w, kf, out / "gizmo.png")

    m = w.doc.project.monitors[0]
    w.doc.set_selection(Selection("monitor", m.id))
    _wait(app, 0.3)
    w.inspector_dock.grab().save(str(out / "monitor-inspector.png"))

    w.doc.set_selection(None)
    w.timeline_dock.grab().save(str(out / "timeline.png"))

    dlg = w.path_dialog(preset="actions")
    dlg.set_option("text", "(FN)(FN)(fLN)(SR)")
    _wait(app, 0.3)
    dlg.grab().save(str(out / "path-dialog.png"))
    dlg.reject()

    # Render the preview through the worker and show it playing.
    done = []
    w.preview_ready.connect(done.append)
    w.render_preview(width=416, height=240)
    _wait(app, 120, lambda: bool(done) and w.player.complete)
    w.player.pause()
    w.player.show_frame(len(w.player.frames) // 3)
    _wait(app, 0.3)
    w.grab().save(str(out / "preview-player.png"))
    w.ask_unsaved = lambda: "discard"
    w.close()
    print(
        f"wrote {out}/main-window.png, keyframe-inspector.png, gizmo.png, monitor-inspector.png, "
        "timeline.png, path-dialog.png, preview-player.png"
    )
    return 0


def gizmo_shot(app: QApplication, w, kf, path: Path) -> None:
    """The 3D view close to the selected keyframe: its gizmo, the X arrow under the mouse."""
    import numpy as np

    from worldstudio.core.geometry.transforms import look_at

    vp = w.viewport
    if vp is None:
        return
    target = np.array(kf.position, dtype=np.float64)
    eye = target + np.array([1.2, -0.9, -1.6])  # right, above and behind the keyframe
    size = vp.point_size
    vp.set_point_size(3.0)
    vp.set_frustum_size(0.5 * vp.frustum_size)  # smaller camera glyphs: the gizmo stands out
    vp.set_view(look_at(eye, target), 50.0)
    _wait(app, 0.3)
    g = vp.gizmo
    if g is not None:  # hover the X arrow, as a user about to drag it
        tip = vp._project_px(g.shaft(0).mean(axis=0)[None])[0]
        vp._update_hover(tip)
    _wait(app, 0.5)
    image = vp.grab()
    if g is not None:  # the part of the view around the gizmo
        cx, cy = vp._project_px(g.center[None])[0]
        w, h = min(960, image.width()), min(600, image.height())
        x = int(min(max(cx - w / 2, 0), image.width() - w))
        y = int(min(max(cy - h / 2, 0), image.height() - h))
        image = image.copy(x, y, w, h)
    image.save(str(path))
    vp.set_point_size(size)
    vp.set_frustum_size(None)
    vp.overview()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
