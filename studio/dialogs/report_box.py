"""A read-only text in a fixed-width font with Close and a Copy button, the part that the
dialogs made for bug reports share (:mod:`.crash`, :mod:`.system_report`)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QPushButton, QVBoxLayout


def add_report_box(
    dialog: QDialog,
    layout: QVBoxLayout,
    text: str,
    *,
    copy_label: str,
    copied_text: Callable[[], str],
    min_size: tuple[int, int],
    wrap: bool = True,
) -> tuple[QPlainTextEdit, QPushButton]:
    """Add the text box and the Close / Copy row to ``layout``; Copy puts ``copied_text()`` on
    the clipboard and says "Copied". Returns (text box, Copy button)."""
    box = QPlainTextEdit(text)
    box.setReadOnly(True)
    if not wrap:
        box.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    box.setMinimumSize(*min_size)
    layout.addWidget(box)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    copy = QPushButton(copy_label)
    buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)

    def on_copy() -> None:
        QGuiApplication.clipboard().setText(copied_text())
        copy.setText("Copied")

    copy.clicked.connect(on_copy)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    return box, copy
