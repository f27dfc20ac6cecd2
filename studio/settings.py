"""Where the studio keeps its settings and data: recent projects, window layout, the demo copy.

``WORLDSTUDIO_CONFIG_DIR`` moves everything (settings file and data) to one folder, which tests
and portable installs use; otherwise Qt's standard per-user locations apply.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

MAX_RECENT = 10


def settings() -> QSettings:
    root = os.environ.get("WORLDSTUDIO_CONFIG_DIR")
    if root:
        return QSettings(str(Path(root) / "worldstudio.studio.ini"), QSettings.Format.IniFormat)
    return QSettings("WorldStudio", "World Studio")


def data_dir() -> Path:
    root = os.environ.get("WORLDSTUDIO_CONFIG_DIR")
    if root:
        path = Path(root) / "data"
    else:
        loc = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        path = Path(loc) if loc else Path.home() / ".local" / "share" / "worldstudio"
    path.mkdir(parents=True, exist_ok=True)
    return path


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
