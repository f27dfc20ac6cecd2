"""Internal errors: a bug, not something the user did. The user sees one line naming what
failed and where the details are; the details (traceback, versions, command) go to a crash log
that can be attached to a report.

Errors a user can cause are :class:`worldstudio.core.errors.WorldStudioError` (one line, exit
status 2 in the CLI); anything else that escapes a command or a job is an internal error (exit
status 1). Crash logs live in ``$WORLDSTUDIO_CRASH_DIR``, else ``$XDG_STATE_HOME/worldstudio/
crashes``, else ``~/.local/state/worldstudio/crashes``.
"""

from __future__ import annotations

import os
import platform
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from worldstudio.core.user_dirs import app_dir

# Distributions whose versions help to reproduce a bug (read from their metadata: nothing is
# imported, so writing a crash log never pulls in torch).
_PACKAGES = (
    "world-studio",
    "numpy",
    "pydantic",
    "torch",
    "diffusers",
    "transformers",
    "huggingface_hub",
    "PySide6-Essentials",
    "vispy",
    "pillow",
    "imageio-ffmpeg",
)


def crash_dir() -> Path:
    env = os.environ.get("WORLDSTUDIO_CRASH_DIR")
    if env:
        return Path(env).expanduser()
    return app_dir("state") / "crashes"


def versions() -> dict[str, str]:
    """Python, the platform and the installed versions of the packages that matter."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def summary(exc: BaseException) -> str:
    """The exception in one short line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:200] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class CrashReport:
    """An internal error, written down: ``error`` (its type and first line), ``details`` (the
    crash log's whole text: traceback, versions, command line) and ``log`` (the crash log's
    path, None when it could not be written; ``note`` then says why)."""

    error: str
    details: str
    log: Path | None
    note: str  # "details in PATH", or why there is no crash log

    @property
    def message(self) -> str:
        """One line for a user: what failed and where the details are."""
        return f"{self.error} (an internal error; {self.note})"


def report_crash(exc: BaseException, doing: str) -> CrashReport:
    """Write a crash log for ``exc``, raised while ``doing`` (e.g. "`worldstudio generate`" or
    "the job 'Generate'"), and return what to show. Never raises: a log that cannot be written
    is said in the note."""
    stamp = datetime.now()
    details = "\n".join(
        [
            f"World Studio crash report, {stamp.isoformat(timespec='seconds')}",
            f"while: {doing}",
            f"command: {' '.join(sys.argv)}",
            "",
            *(f"{k}: {v}" for k, v in versions().items()),
            "",
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(),
            "",
        ]
    )
    log: Path | None = None
    try:
        from worldstudio.core.fileio import atomic_write_bytes

        path = crash_dir() / f"crash-{stamp:%Y%m%d-%H%M%S}-{os.getpid()}.log"
        atomic_write_bytes(path, details.encode("utf-8", "replace"))
        log, note = path, f"details in {path}"
    except Exception as err:  # noqa: BLE001 - the report must not fail in its turn
        note = f"the crash log could not be written: {summary(err)}"
    return CrashReport(error=summary(exc), details=details, log=log, note=note)
