"""A bug in a job opens the internal-error dialog (what failed, the crash log, Copy details);
an error the user caused does not. Opening a project cleans what killed writes left in it."""

from __future__ import annotations

import subprocess
import sys

from PySide6.QtGui import QGuiApplication

from worldstudio.core.errors import WorldStudioError


def test_a_bug_in_a_job_opens_the_crash_dialog(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)

    def buggy(ctx):
        return {}["missing key"]

    handle = w.run_job(buggy, "Render preview")
    with qtbot.waitSignal(handle.failed, timeout=5000):
        pass
    qtbot.waitUntil(lambda: getattr(w, "crash_dialog", None) is not None)
    dlg = w.crash_dialog
    assert dlg.isVisible() and dlg.windowTitle() == "Internal error"
    message = dlg.message_label.text()
    assert message.startswith("KeyError: 'missing key' (an internal error; details in ")
    log = message.split("details in ", 1)[1].rstrip(")")
    text = open(log, encoding="utf-8").read()
    assert "the job 'Render preview'" in text and "Traceback" in text and "numpy:" in text
    assert dlg.text.toPlainText() == text == handle.traceback
    assert handle.crash_log == log
    assert "Render preview failed: KeyError" in w.status_label.text()
    dlg.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert message in copied and "Traceback" in copied
    assert dlg.isVisible()  # copying does not close it
    dlg.reject()


def test_a_users_error_gets_no_crash_dialog(make_window, demo_folder, qtbot):
    w = make_window(demo_folder)

    def refused(ctx):
        raise WorldStudioError("source.png: not an image")

    handle = w.run_job(refused, "Import")
    with qtbot.waitSignal(handle.failed, timeout=5000):
        pass
    assert not handle.internal_error and handle.crash_log == ""
    assert getattr(w, "crash_dialog", None) is None
    assert "not an image" in w.status_label.text()


def test_opening_a_project_cleans_its_leftovers(make_window, demo_folder):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = demo_folder / f".project.json.{proc.pid}.abcdefgh.tmp"
    stale.write_text("half written")
    aside = demo_folder / "scene" / f".masks.old-{proc.pid}"
    (demo_folder / "scene" / "masks").rename(aside)  # killed in the middle of a swap
    w = make_window(demo_folder)
    assert not stale.exists() and not aside.exists()
    assert (demo_folder / "scene" / "masks" / "ball.png").is_file()
    log = w.log_view.toPlainText()
    assert "removed (left by an interrupted write)" in log and "restored" in log
