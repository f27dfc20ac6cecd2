"""The dialog for an internal error (a bug, not something the user did): what failed in one
line, where the crash log is, and the log's text (traceback, versions) with a button that copies
it for a bug report. :mod:`worldstudio.core.jobs.crash` writes the log."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget

from worldstudio.studio.dialogs.report_box import add_report_box


class CrashDialog(QDialog):
    """``CrashDialog(parent, what, message, details).open()``: ``what`` failed with
    ``message`` (one line that names the crash log); ``details`` is the log's text."""

    def __init__(self, parent: QWidget | None, what: str, message: str, details: str):
        super().__init__(parent)
        self.setWindowTitle("Internal error")
        self.details = details
        lay = QVBoxLayout(self)
        head = QLabel(f"<b>{_escape(what)} failed because of a bug in World Studio.</b>")
        head.setWordWrap(True)
        lay.addWidget(head)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.message_label)
        hint = QLabel(
            "This is not something you did. Please report it with the details below (Copy "
            "details puts them on the clipboard); the crash log holds them too."
        )
        hint.setWordWrap(True)
        lay.addWidget(hint)
        self.text, self.copy_button = add_report_box(
            self,
            lay,
            details,
            copy_label="Copy details",
            copied_text=lambda: f"{self.message_label.text()}\n\n{self.details}",
            min_size=(640, 260),
        )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
