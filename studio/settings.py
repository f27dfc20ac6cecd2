"""Where the studio keeps its settings and data: recent projects, window layout, the folders
last used, and where new projects go (``~/WorldStudio``, the demo copy too).

``WORLDSTUDIO_CONFIG_DIR`` moves everything (settings file and data) to one folder, which tests
and portable installs use; otherwise Qt's standard per-user locations apply.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

# where new projects go (``~/WorldStudio``): shared with `worldstudio new`
from worldstudio.core.project.places import free_folder as free_folder
from worldstudio.core.project.places import projects_dir as projects_dir

MAX_RECENT = 10


def settings() -> QSettings:
    root = os.environ.get("WORLDSTUDIO_CONFIG_DIR")
    if root:
        return QSettings(str(Path(root) / "worldstudio.studio.ini"), QSettings.Format.IniFormat)
    return QSettings("WorldStudio", "World Studio")


def last_dir(kind: str, s: QSettings | None = None) -> Path | None:
    """The folder the user last chose a file of ``kind`` in ("import", "export", "image"), if it
    still exists."""
    value = (s or settings()).value(f"paths/{kind}")
    if value and Path(str(value)).is_dir():
        return Path(str(value))
    return None


def remember_dir(kind: str, path: str | Path, s: QSettings | None = None) -> None:
    """Remember the folder of ``path`` (a file, or a folder to be created) for :func:`last_dir`."""
    p = Path(path).expanduser().absolute()
    folder = p if p.is_dir() else p.parent
    (s or settings()).setValue(f"paths/{kind}", str(folder))


def recent_projects(s: QSettings | None = None) -> list[str]:
    s = s or settings()
    value = s.value("recent", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or [])]


def add_recent(path: str | Path, s: QSettings | None = None) -> list[str]:
    s = s or settings()
    p = str(Path(path).resolve())
    items = [p] + [r for r in recent_projects(s) if r != p]
    items = items[:MAX_RECENT]
    s.setValue("recent", items)
    s.setValue("last_project", p)
    return items


def clear_recent(s: QSettings | None = None) -> None:
    s = s or settings()
    s.setValue("recent", [])
