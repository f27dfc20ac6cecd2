"""Screenshots of the Generate and Training panels:
``python -m worldstudio.studio.screenshots_generation [OUT_DIR [SHOT ...]]`` (default:
resources/screenshots; shots: generate, conditioning, training, jobs, preflight).

Run it under a display, e.g.::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m worldstudio.studio.screenshots_generation

generate-panel.png: a copy of the demo project generating with the oracle backend, taken while
round 2 generates (the live preview, the stage text, round 1 on the timeline's Run row).
conditioning-settings.png, monitor-inspector.png, conditioning-video.png: a run of the demo with
the ideal backend, then the Generate panel's conditioning settings and runs box, the monitor
inspector with the monitor's own scene text, and the player playing the observer's control video
of round 2 (what the model was told) beside its mask.
training-panel.png: a LoRA trained on synthetic clips with the tiny random Wan VACE model of the
test suite (tests/tiny_wan.py, in a private fake hub cache: nothing is downloaded), its loss
curve and the last sample clip in the player. Needs the repository's tests/ folder.
jobs-panel.png: the Jobs dock while a generation runs,
with an export that ran beside it and two jobs waiting for the GPU (a queue file of its own).
preflight-dialog.png: Generate with Wan VACE offline without its models, without a GPU and with a
camera path out of the room: the refused run's problems, each with its fix.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import Qt
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


def generate_shot(app, out: Path, work: Path) -> None:
    from worldstudio.core.generation.backends.oracle import OracleBackend
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.studio.main_window import MainWindow

    project = work / "demo.wsproj"
    create_demo_project(project, width=416, height=240)
    # Slow the oracle down a little so the shot catches a run in the middle of round 2.
    original = OracleBackend.generate

    def paced(self, request, ctx):
        frames = original(self, request, ctx)
        if request.round_index >= 1:
            time.sleep(0.8)
        return frames

    OracleBackend.generate = paced
    w = MainWindow(start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1920, 1080)
    w.show()
    w.open_project(project)
    gp = w.generate_panel
    w.generate_dock.raise_()
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("oracle"))
    gp.form.frames_spin.setValue(33)
    w.timeline.fit()
    gp.generate()
    _wait(
        app,
        60,
        lambda: w.run_track.rounds_done >= 1 and "round 2/2 observer" in gp.header.status.text(),
    )
    _wait(app, 0.3)
    w.grab().save(str(out / "generate-panel.png"))
    _wait(app, 60, lambda: not gp.running)
    OracleBackend.generate = original
    w.ask_unsaved = lambda: "discard"
    w.close()


def jobs_shot(app, out: Path, work: Path) -> None:
    """jobs-panel.png: the Jobs dock while a generation runs (elapsed, time left), an export that
    ran beside it, and two jobs waiting for the GPU."""
    from worldstudio.core.generation.backends.oracle import OracleBackend
    from worldstudio.core.jobs.queue import JobQueue
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.studio.main_window import MainWindow

    project = work / "jobs-demo.wsproj"
    create_demo_project(project, width=416, height=240)
    original = OracleBackend.generate

    def paced(self, request, ctx):  # slow enough that the shot catches it running
        for step in range(8):
            ctx.check_cancelled()
            ctx.progress(step, 8, f"round {request.round_index + 1} {request.role}")
            time.sleep(0.25)
        return original(self, request, ctx)

    OracleBackend.generate = paced
    w = MainWindow(start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1920, 1080)
    w.show()
    w.open_project(project)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("oracle"))
    gp.form.frames_spin.setValue(17)
    w.generate()
    queue = JobQueue()
    queue.add("export", project, ["--ply", str(work / "scene.ply")], "Export the scene as PLY")
    queue.add("generate", project, ["--rounds", "4", "--seed", "7"], "Generate 4 rounds, seed 7")
    queue.add("train", project, ["--clips", str(work / "clips"), "--steps", "500"], "Train LoRA")
    w.queue_driver.refresh()
    w.jobs_dock.show()
    w.jobs_dock.raise_()
    _wait(app, 0.3)
    w.resizeDocks([w.jobs_dock], [300], Qt.Orientation.Vertical)
    _wait(
        app,
        60,
        lambda: (
            queue.entries()[1].state == "done" and "left" in w.jobs_panel.table.item(0, 4).text()
        ),
    )
    _wait(app, 1.2)
    w.queue_driver.refresh()
    _wait(app, 0.3)
    w.jobs_dock.grab().save(str(out / "jobs-panel.png"))
    w.queue_driver.run_queue(False)
    gp.header.cancel()
    _wait(app, 30, lambda: not w.runner.busy)
    OracleBackend.generate = original
    w.ask_unsaved = lambda: "discard"
    w.close()


def preflight_shot(app, out: Path, work: Path) -> None:
    """preflight-dialog.png: Generate with Wan VACE on a machine without its models (offline),
    without a GPU, and with a camera path that leaves the room: the run is refused before it
    starts and every problem is listed with its fix."""
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.core.project import ProjectFolder
    from worldstudio.studio.main_window import MainWindow

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = str(work / "empty-hub")
    os.environ.pop("WORLDSTUDIO_DEVICE", None)
    project = work / "preflight-demo.wsproj"
    create_demo_project(project, width=416, height=240)
    folder = ProjectFolder(project)
    p = folder.load()
    for k in p.camera_path.keyframes[1:]:  # the path flies out through the back wall
        k.position = (k.position[0], k.position[1], k.position[2] - 40.0)
    folder.save(p)
    w = MainWindow(start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1920, 1080)
    w.show()
    w.open_project(project)
    gp = w.generate_panel
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("wan-vace"))
    gp.generate()
    _wait(app, 120, lambda: gp.preflight_dialog is not None and gp.preflight_dialog.isVisible())
    _wait(app, 0.5)
    gp.preflight_dialog.grab().save(str(out / "preflight-dialog.png"))
    gp.preflight_dialog.close()
    w.ask_unsaved = lambda: "discard"
    w.close()


def conditioning_shot(app, out: Path, work: Path) -> None:
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.core.project.runs import RunFolder
    from worldstudio.studio.document import Selection
    from worldstudio.studio.main_window import MainWindow

    project = work / "ideal.wsproj"
    create_demo_project(project, width=416, height=240)
    w = MainWindow(viewport=False, start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1600, 1000)
    w.show()
    w.open_project(project)
    gp = w.generate_panel
    w.generate_dock.raise_()
    gp.form.backend.setCurrentIndex(gp.form.backend.findData("ideal"))
    gp.form.frames_spin.setValue(17)
    gp.ask_save = lambda: True
    gp.generate()
    _wait(app, 120, lambda: not gp.running and gp.last_result is not None)
    _wait(app, 0.5)
    # the settings and the runs box, scrolled so the conditioning group shows
    from PySide6.QtWidgets import QScrollArea

    scroll = gp.findChild(QScrollArea)
    if scroll is not None:
        scroll.ensureWidgetVisible(gp.form.negative)
    w.resizeDocks([w.generate_dock], [480], Qt.Orientation.Horizontal)
    _wait(app, 0.3)
    gp.grab().save(str(out / "conditioning-settings.png"))
    if scroll is not None:
        scroll.ensureWidgetVisible(gp.runs.play_mask)
    _wait(app, 0.3)
    gp.grab().save(str(out / "conditioning-runs.png"))

    m = w.doc.project.monitors[0]
    w.inspector_dock.raise_()
    w.doc.set_selection(Selection("monitor", m.id))
    w.inspector.m_scene.setPlainText("the room seen from the doorway: wooden floor, boxes")
    w.inspector.m_scene.committed.emit(w.inspector.m_scene.toPlainText())
    _wait(app, 0.3)
    w.inspector_dock.grab().save(str(out / "monitor-inspector.png"))

    run = RunFolder(gp.last_result.run_dir)
    w.generate_dock.raise_()
    gp.runs.cond_round.setValue(2)
    gp.runs.cond_camera.setCurrentIndex(0)
    frames = {}
    for kind in ("control", "mask"):
        gp.runs.play_control.click() if kind == "control" else gp.runs.play_mask.click()
        _wait(app, 20, lambda: w.player.complete)
        w.player.pause()
        w.player.seek(len(w.player.frames) // 2)
        _wait(app, 0.3)
        frames[kind] = w.player.screen.grab()
    w.player.load(run.conditioning_mp4(1, "observer", "control"), autoplay=False)
    _wait(app, 20, lambda: w.player.complete)
    w.player.seek(len(w.player.frames) // 2)
    _wait(app, 0.3)
    w.grab().save(str(out / "conditioning-video.png"))
    from PySide6.QtGui import QPainter, QPixmap

    a, b = frames["control"], frames["mask"]
    side = QPixmap(a.width() + b.width(), max(a.height(), b.height()))
    painter = QPainter(side)
    painter.drawPixmap(0, 0, a)
    painter.drawPixmap(a.width(), 0, b)
    painter.end()
    side.save(str(out / "conditioning-control-and-mask.png"))
    w.ask_unsaved = lambda: "discard"
    w.close()


def training_shot(app, out: Path, work: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from tests import tiny_wan
    from tests.conftest import COLOURS, square_clip
    from worldstudio.core.media import write_mp4
    from worldstudio.core.oracle.demo_project import create_demo_project
    from worldstudio.studio.main_window import MainWindow

    hub = work / "hub"
    tiny_wan.install_in_fake_hub(
        hub, tiny_wan.WAN_VACE_REPO, tiny_wan.build_tiny_wan_vace(work / "vace")
    )
    os.environ.update(
        HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", WORLDSTUDIO_CONFIG=str(work / "config")
    )
    clips = work / "clips"
    clips.mkdir()
    for name, colour in COLOURS.items():
        write_mp4(clips / f"{name}.mp4", square_clip(colour), 16)
        (clips / f"{name}.txt").write_text(f"a {name} square slides to the right\n")
    project = work / "train.wsproj"
    create_demo_project(project, width=160, height=96)

    w = MainWindow(start_renders_after_ms=None, autosave_seconds=0)
    w.resize(1920, 1080)
    w.show()
    w.open_project(project)
    tp = w.training_panel
    w.training_dock.raise_()
    tp.clips.setText(str(clips))
    tp.name.setText("squares")
    tp.steps.setValue(120)
    tp.rank.setValue(8)
    tp.lr.setText("1e-2")
    tp.width_spin.setValue(32)
    tp.height_spin.setValue(32)
    tp.frames.setValue(9)
    tp.sample_every.setValue(60)
    tp.eval_every.setValue(10)
    tp.extra_settings = {"sample_steps": 4, "checkpoint_every": 0}
    tp.start()
    _wait(app, 300, lambda: not tp.running)
    _wait(app, 10, lambda: w.player.complete)
    _wait(app, 0.5)
    w.grab().save(str(out / "training-panel.png"))
    w.ask_unsaved = lambda: "discard"
    w.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else REPO_ROOT / "resources" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WORLDSTUDIO_CONFIG_DIR", tempfile.mkdtemp(prefix="ws-shots-"))
    # a queue of its own: the user's job queue is never touched
    os.environ["WORLDSTUDIO_QUEUE"] = str(Path(tempfile.mkdtemp(prefix="ws-shots-")) / "queue.json")
    from worldstudio.studio.app import make_app

    app = make_app()
    only = (
        argv[1:] if len(argv) > 1 else ["generate", "conditioning", "training", "jobs", "preflight"]
    )
    shots = {
        "jobs": jobs_shot,
        "preflight": preflight_shot,
        "generate": generate_shot,
        "conditioning": conditioning_shot,
        "training": training_shot,
    }
    with tempfile.TemporaryDirectory(prefix="ws-shots-") as tmp:
        for name in only:
            shots[name](app, out, Path(tmp))
    print(f"wrote {out}: {', '.join(only)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
