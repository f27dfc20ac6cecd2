"""The job queue on disk: generations, trainings, preview renders and exports wait their turn here,
survive a crash or a restart, and are driven alike by ``worldstudio queue run`` and the studio.

The queue is one JSON file (:func:`queue_path`: ``$WORLDSTUDIO_QUEUE``, else
``$XDG_DATA_HOME/worldstudio/queue.json``, else ``~/.local/share/worldstudio/queue.json``)::

    {"format": "worldstudio.queue", "version": 1, "entries": [ENTRY, ...]}

in queue order. An entry is a ``worldstudio`` command line on a project (:class:`QueueEntry`:
``command`` is ``generate``, ``train``, ``preview`` or ``export``, ``args`` what follows the
project) with its state: ``queued``, ``running``, then ``done``, ``failed`` or ``cancelled``;
``interrupted`` when the process running it has gone (a crash, a kill, a reboot: its
:class:`~.process.ProcessStamp` is ``owner``). An interrupted entry runs again when its turn
comes; a generation continues its run (``run``, from the job's ``run_started`` event) after the
last finished round.

Every change is a read-modify-write under an exclusive lock (``queue.json.lock``, ``flock``) and
an atomic replace, so two processes (the studio and a CLI) never lose each other's changes.
Commands belong to *lanes*: ``gpu`` (generate, train) runs one entry at a time across every
process sharing the queue; ``light`` (preview, export) runs beside it.

A running entry is cancelled through the file (``cancel``: true); the process running it sees it
through :class:`EntryTracker`, which also records the entry's progress, elapsed time and ETA.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.fileio import atomic_write_bytes
from worldstudio.core.jobs.context import Report
from worldstudio.core.jobs.process import ProcessStamp, is_alive, this_process
from worldstudio.core.jobs.progress import Eta
from worldstudio.core.user_dirs import app_dir

FORMAT = "worldstudio.queue"
VERSION = 1

GPU_LANE = "gpu"
LIGHT_LANE = "light"
LANES = {"generate": GPU_LANE, "train": GPU_LANE, "preview": LIGHT_LANE, "export": LIGHT_LANE}
"""The commands a queue takes, and the lane each runs in."""

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
WAITING = ("queued", "interrupted")
ENDED = ("done", "failed", "cancelled")


class QueueError(WorldStudioError):
    pass


def queue_path() -> Path:
    env = os.environ.get("WORLDSTUDIO_QUEUE")
    if env:
        return Path(env).expanduser()
    return app_dir("data") / "queue.json"


@dataclass
class QueueEntry:
    """One job in the queue (times are seconds since the epoch)."""

    id: str
    command: str
    project: str
    args: list[str] = field(default_factory=list)
    title: str = ""
    state: str = "queued"
    added: float = 0.0
    started: float | None = None
    ended: float | None = None
    done: int = 0  # the latest progress report
    total: int = 0
    message: str = ""
    eta: float | None = None  # seconds left at ``updated``
    updated: float | None = None
    run: str | None = None  # a generation's run folder, once it has one
    error: str = ""
    cancel: bool = False  # asked to stop (a running entry)
    owner: dict[str, Any] | None = None  # ProcessStamp.to_json() of the process running it

    @property
    def lane(self) -> str:
        return LANES.get(self.command, GPU_LANE)

    @property
    def argv(self) -> list[str]:
        """The ``worldstudio`` command line that runs it."""
        return [self.command, self.project, *self.args]

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else (now or time.time())
        return max(0.0, end - self.started)

    def eta_now(self, now: float | None = None) -> float | None:
        """Seconds left now: the last estimate less the time since it was made."""
        if self.state != "running" or self.eta is None or self.updated is None:
            return None
        return max(0.0, self.eta - ((now or time.time()) - self.updated))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> QueueEntry | None:
        """The entry in ``data``; None for what is not one (a hand-edited file keeps the rest)."""
        if not isinstance(data, dict):
            return None
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in data.items() if k in names}
        try:
            entry = cls(**kept)
        except TypeError:
            return None
        if (
            not isinstance(entry.id, str)
            or entry.command not in LANES
            or not isinstance(entry.project, str)
            or not isinstance(entry.args, list)
            or not all(isinstance(a, str) for a in entry.args)
            or entry.state not in STATES
        ):
            return None
        return entry


class JobQueue:
    """The queue file at ``path`` (default :func:`queue_path`). Each method reads the file afresh;
    the changing ones hold the lock from read to write."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else queue_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    # ------------------------------------------------------------------ reading and writing
    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: one process at a time is assumed
            fcntl = None  # type: ignore[assignment]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise QueueError(
                f"{self.path}: cannot open the job queue ({exc.strerror or exc})"
            ) from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> list[QueueEntry]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise QueueError(
                f"{self.path}: cannot read the job queue ({exc.strerror or exc})"
            ) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise QueueError(f"{self.path}: not a job queue ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise QueueError(f"{self.path}: not a job queue (format is not {FORMAT!r})")
        entries = data.get("entries")
        if not isinstance(entries, list):
            raise QueueError(f"{self.path}: the job queue has no list of entries")
        return [e for e in map(QueueEntry.from_json, entries) if e is not None]

    def _write(self, entries: list[QueueEntry]) -> None:
        data = {"format": FORMAT, "version": VERSION, "entries": [e.to_json() for e in entries]}
        atomic_write_bytes(self.path, (json.dumps(data, indent=1) + "\n").encode())

    @staticmethod
    def _mark_gone(entries: list[QueueEntry]) -> bool:
        """Running entries whose process has gone become interrupted; True if any did."""
        changed = False
        for e in entries:
            if e.state == "running" and is_alive(ProcessStamp.from_json(e.owner)) is False:
                e.state, e.owner, e.cancel, e.eta = "interrupted", None, False, None
                changed = True
        return changed

    @contextmanager
    def _editing(self) -> Iterator[list[QueueEntry]]:
        with self._locked():
            entries = self._read()
            self._mark_gone(entries)
            yield entries
            self._write(entries)

    def entries(self) -> list[QueueEntry]:
        """Every entry in queue order (a running entry of a gone process shows interrupted)."""
        entries = self._read()
        self._mark_gone(entries)
        return entries

    def get(self, entry_id: str) -> QueueEntry:
        return self._find(self.entries(), entry_id)

    @staticmethod
    def _find(entries: list[QueueEntry], entry_id: str) -> QueueEntry:
        """The entry ``entry_id`` names: its id, or the id's last part (the 6 letters after the
        time) when one entry has it."""
        for e in entries:
            if e.id == entry_id:
                return e
        tail = [e for e in entries if entry_id and e.id.endswith(f"-{entry_id}")]
        if len(tail) == 1:
            return tail[0]
        raise QueueError(f"no job {entry_id!r} in the queue")

    # ------------------------------------------------------------------ changes
    def add(
        self, command: str, project: str | os.PathLike[str], args=(), title: str = ""
    ) -> QueueEntry:
        """Queue ``worldstudio COMMAND PROJECT ARGS...`` at the end."""
        if command not in LANES:
            raise QueueError(f"the queue takes {', '.join(LANES)} jobs, not {command!r}")
        project = str(Path(project).expanduser().absolute())
        now = time.time()
        entry = QueueEntry(
            id=f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
            command=command,
            project=project,
            args=[str(a) for a in args],
            title=title or f"{command} {Path(project).name}",
            added=now,
        )
        with self._editing() as entries:
            entries.append(entry)
        return entry

    def move(self, entry_id: str, to: int) -> None:
        """Put the entry at index ``to`` of the queue (clamped)."""
        with self._editing() as entries:
            e = self._find(entries, entry_id)
            entries.remove(e)
            entries.insert(max(0, min(int(to), len(entries))), e)

    def cancel(self, entry_id: str) -> QueueEntry:
        """A waiting entry is cancelled now; a running one is asked to stop (its runner ends it at
        the job's next step boundary)."""
        with self._editing() as entries:
            e = self._find(entries, entry_id)
            if e.state in WAITING:
                e.state, e.ended = "cancelled", time.time()
            elif e.state == "running":
                e.cancel = True
            return e

    def remove(self, entry_id: str) -> None:
        """Take an entry out of the queue (not while it runs: cancel it first)."""
        with self._editing() as entries:
            e = self._find(entries, entry_id)
            if e.state == "running":
                raise QueueError(f"job {e.title!r} is running: cancel it first")
            entries.remove(e)

    def clear_ended(self) -> int:
        """Remove the done, failed and cancelled entries; how many went."""
        with self._editing() as entries:
            gone = [e for e in entries if e.state in ENDED]
            for e in gone:
                entries.remove(e)
            return len(gone)

    def retry(self, entry_id: str) -> None:
        """Queue a failed or cancelled entry again (a generation continues its run)."""
        with self._editing() as entries:
            e = self._find(entries, entry_id)
            if e.state in ("failed", "cancelled"):
                e.state, e.ended, e.error, e.cancel = (
                    "interrupted" if e.run else "queued",
                    None,
                    "",
                    False,
                )

    def claim(self, lanes: tuple[str, ...] = (GPU_LANE, LIGHT_LANE)) -> QueueEntry | None:
        """The first waiting entry of a lane in ``lanes`` that no process is running now, marked
        running by this process; None when there is none."""
        me = this_process().to_json()
        with self._editing() as entries:
            busy = {e.lane for e in entries if e.state == "running"}
            for e in entries:
                if e.state in WAITING and e.lane in lanes and e.lane not in busy:
                    e.state, e.owner, e.cancel, e.error = "running", me, False, ""
                    e.started, e.ended, e.eta, e.updated = time.time(), None, None, None
                    return e
            return None

    def update(self, entry_id: str, **changes: Any) -> QueueEntry:
        with self._editing() as entries:
            e = self._find(entries, entry_id)
            for k, v in changes.items():
                setattr(e, k, v)
            return e

    def finish(self, entry_id: str, state: str, error: str = "") -> None:
        """The entry's job ended: ``done``, ``failed``, ``cancelled`` or ``interrupted`` (it
        waits for its next turn)."""
        assert state in (*ENDED, "interrupted")
        with self._editing() as entries:
            e = self._find(entries, entry_id)
            e.state, e.error, e.owner, e.cancel, e.eta = state, error, None, False, None
            e.ended = None if state == "interrupted" else time.time()


class EntryTracker:
    """Follows the job of a running entry for its runner: ``on_report`` records the run of a
    generation at once and the progress at most every ``interval`` seconds; ``cancel_requested``
    reads the file's cancel flag (at most every ``interval`` seconds)."""

    def __init__(self, queue: JobQueue, entry: QueueEntry, interval: float = 1.0):
        self.queue = queue
        self.entry = entry
        self.interval = interval
        self.eta = Eta()
        self._written = 0.0
        self._checked = 0.0
        self._cancel = False

    def on_report(self, report: Report) -> None:
        if report.kind == "event" and report.message == "run_started":
            self.entry = self.queue.update(self.entry.id, run=str(report.data.get("run_dir")))
        elif report.kind == "progress":
            self.progress(report.done, report.total, report.message)

    def progress(self, done: int, total: int, message: str = "") -> None:
        eta = self.eta.update(done, total)
        now = time.monotonic()
        final = total > 0 and done >= total
        if final or now - self._written >= self.interval:
            self._written = now
            self.entry = self.queue.update(
                self.entry.id,
                done=int(done),
                total=int(total),
                message=message,
                eta=eta,
                updated=time.time(),
            )

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._checked >= self.interval:
            self._checked = now
            try:
                self._cancel = self.queue.get(self.entry.id).cancel
            except QueueError:  # removed by hand: stop
                self._cancel = True
        return self._cancel
