"""The little form helpers every panel uses: spin boxes that edit once per commit (and ignore the
wheel until they have the focus, :mod:`worldstudio.studio.field_guard`), showing a model value
without echoing it back as an edit, hint labels, rows, columns, a scrolling column and a text
field that commits when it loses focus."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from worldstudio.studio.field_guard import being_edited, guard


def int_spin(lo: int, hi: int, step: int = 1, value: int | None = None, tip: str = "") -> QSpinBox:
    """An integer field that reports one edit on Enter / focus-out / arrows, not per keystroke."""
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    if value is not None:
        s.setValue(value)
    s.setKeyboardTracking(False)
    s.setAlignment(Qt.AlignmentFlag.AlignRight)
    if tip:
        s.setToolTip(tip)
    return guard(s)


def float_spin(
    lo: float,
    hi: float,
    decimals: int = 2,
    step: float = 0.1,
    value: float | None = None,
    tip: str = "",
    suffix: str = "",
    compact: bool = False,
) -> QDoubleSpinBox:
    """A float field like :func:`int_spin`; ``compact`` ones shrink with their form (three in a
    row for x, y, z)."""
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    if value is not None:
        s.setValue(value)
    s.setKeyboardTracking(False)
    s.setSuffix(suffix)
    s.setAlignment(Qt.AlignmentFlag.AlignRight)
    if tip:
        s.setToolTip(tip)
    if compact:
        s.setMinimumWidth(40)
        s.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return guard(s)


def show_value(widget: QWidget, value, keep_focused: bool = False) -> None:
    """Show a model value without echoing it back as an edit. ``keep_focused``: leave a field the
    user is typing in alone (uncommitted text, :func:`~studio.field_guard.being_edited`); a
    focused field that holds no typing is updated (an undo shows at once). A combo box shows
    the item whose data is ``value``, or else whose text is."""
    if keep_focused and being_edited(widget):
        return
    widget.blockSignals(True)
    try:
        if isinstance(widget, QSpinBox | QDoubleSpinBox):
            widget.setValue(value)
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            i = widget.findData(value)
            if i < 0 and isinstance(value, str):
                i = widget.findText(value)
            if i >= 0:
                widget.setCurrentIndex(i)
        elif isinstance(widget, QLineEdit):
            if widget.text() != value:
                widget.setText(value)
        elif isinstance(widget, QPlainTextEdit):
            if widget.toPlainText() != value:
                widget.setPlainText(value)
    finally:
        widget.blockSignals(False)


def hint(text: str = "") -> QLabel:
    """A quiet, wrapping explanation under a field (styled by ``#hint`` in style.qss)."""
    label = QLabel(text)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label


def row(*widgets: QWidget) -> QWidget:
    """Widgets side by side, the first one taking the spare width."""
    w = QWidget()
    layout = QHBoxLayout(w)
    layout.setContentsMargins(0, 0, 0, 0)
    for i, x in enumerate(widgets):
        layout.addWidget(x, 1 if i == 0 else 0)
    return w


def column(*widgets: QWidget) -> QWidget:
    """Widgets stacked tightly."""
    w = QWidget()
    layout = QVBoxLayout(w)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    for x in widgets:
        layout.addWidget(x)
    return w


def size_row(width: QSpinBox, height: QSpinBox) -> QWidget:
    """``[width] × [height]``."""
    w = QWidget()
    layout = QHBoxLayout(w)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(width, 1)
    layout.addWidget(QLabel("×"))
    layout.addWidget(height, 1)
    return w


def scroll_column(*widgets: QWidget) -> QScrollArea:
    """Widgets (group boxes) stacked at the top of a vertically scrolling area."""
    inner = QWidget()
    layout = QVBoxLayout(inner)
    layout.setContentsMargins(6, 0, 6, 6)
    for x in widgets:
        layout.addWidget(x)
    layout.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(inner)
    return scroll


class CommitTextEdit(QPlainTextEdit):
    """A multi-line text field that commits when it loses focus (or on Ctrl+Enter)."""

    committed = Signal(str)

    def focusOutEvent(self, event) -> None:
        self.committed.emit(self.toPlainText())
        super().focusOutEvent(event)

    def keyPressEvent(self, event) -> None:
        if (
            event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.committed.emit(self.toPlainText())
            return
        super().keyPressEvent(event)
