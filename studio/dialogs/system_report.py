"""Help ▸ System report…: the report of ``worldstudio doctor`` (:mod:`worldstudio.core.system`)
with what only the running studio knows, the OpenGL renderer and Qt's platform, and a button that
copies it for a bug report."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget

from worldstudio.core.system import format_report, system_report
from worldstudio.studio.dialogs.report_box import add_report_box

GL_VENDOR, GL_RENDERER, GL_VERSION = 0x1F00, 0x1F01, 0x1F02


def gl_renderer() -> str | None:
    """ "RENDERER, OpenGL VERSION" of a context made the way the viewport's is (None: no
    OpenGL here, e.g. on the offscreen platform)."""
    context = QOpenGLContext()
    if not context.create():
        return None
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        if not surface.isValid() or not context.makeCurrent(surface):
            return None
        gl = context.functions()
        renderer, version = gl.glGetString(GL_RENDERER), gl.glGetString(GL_VERSION)
        context.doneCurrent()
    finally:
        surface.destroy()
    if not renderer:
        return None
    return f"{renderer}, OpenGL {version}" if version else str(renderer)


def studio_report_text() -> str:
    """The doctor's report plus the studio's OpenGL renderer and Qt platform."""
    report = system_report()
    opengl = report.get("opengl", {})
    if "error" not in opengl:
        opengl["renderer"] = gl_renderer() or "none (no OpenGL context could be made)"
        opengl["qt_platform"] = QGuiApplication.platformName()
    return format_report(report)


class SystemReportDialog(QDialog):
    """``SystemReportDialog(parent, text).open()``: the report, read-only, with Copy."""

    def __init__(self, parent: QWidget | None, text: str):
        super().__init__(parent)
        self.setWindowTitle("System report")
        self.report = text
        lay = QVBoxLayout(self)
        hint = QLabel(
            "This machine as World Studio sees it. Paste it into a bug report "
            "(the command line gives the same: worldstudio doctor)."
        )
        hint.setWordWrap(True)
        lay.addWidget(hint)
        self.text, self.copy_button = add_report_box(
            self,
            lay,
            text,
            copy_label="Copy",
            copied_text=lambda: self.report,
            min_size=(900, 380),
            wrap=False,
        )
