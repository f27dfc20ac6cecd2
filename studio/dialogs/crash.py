"""The dialog for an internal error (a bug, not something the user did): what failed in one
line, where the crash log is, and the log's text (traceback, versions) with a button that copies
it for a bug report. :mod:`worldstudio.core.jobs.crash` writes the log."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


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
        self.text = QPlainTextEdit(details)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setMinimumSize(640, 260)
        lay.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("Copy details")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_details)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        lay.addWidget(buttons)

    def copy_details(self) -> None:
        """Put the one-line message and the crash log's text on the clipboard."""
        QGuiApplication.clipboard().setText(f"{self.message_label.text()}\n\n{self.details}")
        self.copy_button.setText("Copied")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
