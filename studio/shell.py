"""The window as the file and interop actions see it: a small interface instead of the main
window's internals (so :mod:`worldstudio.studio.interop_actions` does not import the window).

:class:`~worldstudio.studio.main_window.MainWindow` provides it; a test can hand the actions any
object with these members.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.worker import JobHandle


@runtime_checkable
class Shell(Protocol):
    doc: ProjectDocument  # the open project

    def widget(self) -> QWidget:
        """The parent for dialogs and message boxes (they are only shown while it is visible)."""
        ...

    def run_job(
        self,
        job: Callable[..., Any],
        description: str,
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        lane: str | None = "gpu",
    ) -> JobHandle | None:
        """Start a core job (progress and Cancel in the status bar) in ``lane`` (default: the
        GPU's; ``"light"`` for exports, which may run beside a generation); None when it cannot
        start now (the user has been told why)."""
        ...

    def show_message(self, text: str, error: bool = False) -> None: ...

    def log(self, text: str) -> None: ...

    def open_project(self, folder: str | Path, offer_recovery: bool = True) -> bool: ...

    def save(self) -> bool:
        """Save the project (asking for a folder when it has none); False when it was not."""
        ...

    def ensure_saved(self) -> bool:
        """Before the open project is replaced: True when nothing unsaved would be lost (it was
        saved, or the user chose to save or to discard the changes), False when they cancelled."""
        ...

    def add_action(
        self,
        text: str,
        slot: Callable[[], Any],
        shortcut: Any = None,
        tip: str | None = None,
        name: str | None = None,
    ) -> QAction:
        """A window-wide action (its shortcut works wherever the focus is)."""
        ...
