"""Who is writing: a process's identity on disk, and whether that process still runs.

A run folder (run.json) and the job queue (queue.json) record the process that works on them
as a :class:`ProcessStamp`: its pid and host, and on Linux the boot it runs in and its start
time, so that a pid reused after a reboot or by a later process is not taken for the writer.
:func:`is_alive` answers True, False, or None when it cannot tell (the writer runs on another
host, as with a project on a network share).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldstudio.core.fileio import process_alive


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        return int(text[text.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


@dataclass(frozen=True)
class ProcessStamp:
    """A process, as recorded by the files it writes."""

    pid: int
    host: str
    boot: str | None = None  # Linux boot id
    start: int | None = None  # Linux start time of the process, clock ticks since boot

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "boot": self.boot, "start": self.start}

    @classmethod
    def from_json(cls, data: Any) -> ProcessStamp | None:
        """The stamp in ``data`` (a dict from a JSON file); None when it holds none."""
        if not isinstance(data, dict):
            return None
        pid, host = data.get("pid"), data.get("host")
        if (
            not isinstance(pid, int)
            or isinstance(pid, bool)
            or pid <= 0
            or not isinstance(host, str)
        ):
            return None
        boot, start = data.get("boot"), data.get("start")
        return cls(
            pid,
            host,
            boot if isinstance(boot, str) else None,
            start if isinstance(start, int) and not isinstance(start, bool) else None,
        )

    def where(self) -> str:
        """ "process 1234 on HOST", for messages."""
        return f"process {self.pid} on {self.host}"


def this_process() -> ProcessStamp:
    pid = os.getpid()
    return ProcessStamp(pid, socket.gethostname(), _boot_id(), _start_ticks(pid))


def is_alive(stamp: ProcessStamp | None) -> bool | None:
    """Whether the stamped process still runs: True, False, or None when this machine cannot tell
    (no stamp, or another host)."""
    if stamp is None:
        return None
    if stamp.host != socket.gethostname():
        return None
    boot = _boot_id()
    if stamp.boot is not None and boot is not None and stamp.boot != boot:
        return False  # the machine has restarted since
    if not process_alive(stamp.pid):
        return False
    if stamp.start is not None:
        start = _start_ticks(stamp.pid)
        if start is not None and start != stamp.start:
            return False  # another process got the pid
    return True
