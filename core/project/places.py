"""Where projects go on this machine: a visible folder without spaces in the user's home,
``~/WorldStudio``, for new projects and the demo copy alike (the studio and ``worldstudio new``
both use it).

``WORLDSTUDIO_PROJECTS_DIR`` moves it; with ``WORLDSTUDIO_CONFIG_DIR`` (tests, portable installs,
where everything of World Studio lives in one folder) it is ``<config>/WorldStudio``.
"""

from __future__ import annotations

import os
from pathlib import Path


def projects_dir(create: bool = True) -> Path:
    """The folder new projects go in unless the user picks another one (made when ``create``)."""
    root = os.environ.get("WORLDSTUDIO_PROJECTS_DIR")
    if root:
        path = Path(root).expanduser()
    elif os.environ.get("WORLDSTUDIO_CONFIG_DIR"):
        path = Path(os.environ["WORLDSTUDIO_CONFIG_DIR"]) / "WorldStudio"
    else:
        path = Path.home() / "WorldStudio"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def free_folder(path: str | os.PathLike) -> Path:
    """``path``, or ``name-2.wsproj``, ``name-3.wsproj``… when it exists."""
    path = Path(path)
    if not path.exists():
        return path
    stem, suffix = path.stem, path.suffix
    for i in range(2, 10_000):
        candidate = path.with_name(f"{stem}-{i}{suffix}")
        if not candidate.exists():
            return candidate
    return path
