"""The user's folders of the XDG Base Directory spec, and World Studio's folders in them.

A variable that is unset, empty or not an absolute path is ignored (the spec says so), leaving
its default under the home folder: ``XDG_CACHE_HOME`` ``~/.cache``, ``XDG_DATA_HOME``
``~/.local/share``, ``XDG_STATE_HOME`` ``~/.local/state``. Read at call time, so tests and
portable installs can move them.
"""

from __future__ import annotations

import os
from pathlib import Path

_BASES = {
    "cache": ("XDG_CACHE_HOME", (".cache",)),
    "data": ("XDG_DATA_HOME", (".local", "share")),
    "state": ("XDG_STATE_HOME", (".local", "state")),
}


def base_dir(kind: str) -> Path:
    """The user's ``kind`` folder: "cache", "data" or "state"."""
    variable, default = _BASES[kind]
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home().joinpath(*default)


def app_dir(kind: str) -> Path:
    """World Studio's folder in the user's ``kind`` folder (``<base>/worldstudio``)."""
    return base_dir(kind) / "worldstudio"


def cache_dir() -> Path:
    """World Studio's caches: ``$WORLDSTUDIO_CACHE``, else ``app_dir("cache")``."""
    env = os.environ.get("WORLDSTUDIO_CACHE")
    return Path(env).expanduser() if env else app_dir("cache")
