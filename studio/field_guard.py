"""Two rules for every form field of the studio, kept by an event filter on each field.

The mouse wheel over a spin box, combo box or slider that does not have the keyboard focus never
changes it: the wheel scrolls the panel underneath instead (scrolling the Generate panel once
turned 65 frames per round into 5). The fields take the focus by a click or Tab only
(``Qt.StrongFocus``, not the wheel).

Ctrl+Z / Ctrl+Shift+Z go to the project's undo stack even while a field has the focus. Only a
field that is *being edited* keeps them for its own text undo: a line edit (or a spin box's)
with typed, uncommitted text, or a multi-line text being typed. A field counts as committed
again once Enter is pressed in it or it gets the focus anew.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QScrollBar,
    QTextEdit,
    QWidget,
)

_UNDO_KEYS = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo)
_WHEEL_FIELDS = (QAbstractSpinBox, QComboBox, QAbstractSlider)
_ENTER = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


def _line_edit(widget: QObject) -> QLineEdit | None:
    if isinstance(widget, QLineEdit):
        return widget
    if isinstance(widget, QAbstractSpinBox):
        return widget.lineEdit()
    return None


def being_edited(widget: QWidget) -> bool:
    """Whether ``widget`` has the focus and holds text the user is typing and has not committed
    yet."""
    if not widget.hasFocus():
        return False
    edit = _line_edit(widget)
    if edit is not None:
        return edit.isModified() and edit.isUndoAvailable()
    if isinstance(widget, QPlainTextEdit | QTextEdit):
        return widget.document().isModified()
    return False


def _wheel_field(obj: QObject) -> QWidget | None:
    """The form field a wheel event over ``obj`` would change (also through a combo's or spin
    box's inner line edit), or None."""
    for w in (obj, obj.parent() if isinstance(obj, QLineEdit) else None):
        if isinstance(w, _WHEEL_FIELDS) and not isinstance(w, QScrollBar):
            return w
    return None


class FieldGuard(QObject):
    """The event filter, installed on each form field (:func:`guard`, :func:`guard_fields`),
    never on the application: a Python filter there would take the GIL for every event of the
    studio and stall the event loop while a Python job runs."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.Wheel:
            field = _wheel_field(obj)
            if field is not None and not field.hasFocus():
                event.ignore()  # not handled here: the parent (a scroll area) gets the wheel
                return True
            return False
        if kind == QEvent.Type.ShortcutOverride:
            if any(event.matches(k) for k in _UNDO_KEYS) and not being_edited(obj):
                return True  # not accepted: the window's Undo / Redo action takes the key
            return False
        if kind == QEvent.Type.FocusIn:
            _mark_committed(obj)
        elif kind == QEvent.Type.KeyPress and event.key() in _ENTER and isinstance(obj, QLineEdit):
            # After the field has handled Enter (and committed): what it holds is committed.
            QTimer.singleShot(0, lambda e=obj: _mark_committed(e))
        return False


def _mark_committed(obj: QObject) -> None:
    try:
        edit = _line_edit(obj)
        if edit is not None:
            edit.setModified(False)
        elif isinstance(obj, QPlainTextEdit | QTextEdit):
            obj.document().setModified(False)
    except RuntimeError:  # deleted meanwhile (an inline editor closes on Enter)
        pass


_guard: FieldGuard | None = None


def _the_guard() -> FieldGuard:
    global _guard
    app = QApplication.instance()
    if _guard is None or _guard.parent() is not app:
        _guard = FieldGuard(app)
    return _guard


def _is_field(widget: QWidget) -> bool:
    if isinstance(widget, QScrollBar):
        return False
    if isinstance(widget, QLineEdit):  # a spin box's or combo box's own line edit: its owner
        return not isinstance(widget.parent(), QAbstractSpinBox | QComboBox)
    return isinstance(widget, (*_WHEEL_FIELDS, QPlainTextEdit, QTextEdit))


def guard(widget: QWidget) -> QWidget:
    """Put the two rules on one field (spin box, combo box, slider, line or text edit); it takes
    the focus by click or Tab only. Returns the widget."""
    if isinstance(widget, _WHEEL_FIELDS) and widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.installEventFilter(_the_guard())  # installing it again replaces it
    return widget


def guard_fields(root: QWidget) -> None:
    """:func:`guard` every field in ``root`` (a window, panel or dialog, once it is built)."""
    for widget in [root, *root.findChildren(QWidget)]:
        if _is_field(widget):
            guard(widget)
