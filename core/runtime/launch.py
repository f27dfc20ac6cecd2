"""Multi-process runs: a command that uses several GPUs starts one worker process per GPU with
``torchrun`` and follows them as an ordinary job.

The launcher side (:func:`run_workers`, called inside a job, so the CLI's progress bar and the
studio's worker thread follow it like any other job) and the worker side (:func:`worker_main`,
the ``__main__`` of the module the workers run) talk through a private folder:

- ``spec.json``: what the workers run (written by the launcher, read by every worker);
- ``reports.jsonl``: the main worker's reports, one JSON object a line: the job's progress,
  log lines, events and previews (an image as base64 bytes), then one outcome: ``result`` (its
  data), ``error`` (one line for the user) or ``cancelled``;
- ``control``: ``run``, ``pause`` or ``cancel``, written by the launcher as the job's own pause
  and cancel tokens change; a thread in each worker turns it into that worker's tokens;
- ``workers.log``: torchrun's and the workers' output (its last lines are quoted when the
  workers fail without an outcome; the folder is kept then).

Child processes start with ``start_new_session=True`` (never ``preexec_fn``: docs/STACK.md), so
a terminal's Ctrl+C reaches only the launcher: it asks the workers to stop (``cancel``: they stop
at their next step, leaving their work on disk as a cancel does) and waits for them; a second
Ctrl+C, or workers that do not end within :data:`GRACE_SECONDS`, end the process group
(SIGTERM, then SIGKILL). Workers turn SIGTERM into KeyboardInterrupt, so their ``finally``
blocks still run.

Workers on one machine only (``torchrun --standalone``): a run's files are on a local disk that
every worker reads.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import CancelToken, JobContext, PauseToken, Report
from worldstudio.core.runtime.threads import apply_thread_policy, child_environment

SPEC = "spec.json"
REPORTS = "reports.jsonl"
CONTROL = "control"
LOG = "workers.log"
GRACE_SECONDS = 60.0  # how long workers may take to end after an outcome or a cancel
POLL_SECONDS = 0.05


class LaunchError(WorldStudioError):
    """Workers that could not start or failed without saying why (one line, the log's path)."""


# --------------------------------------------------------------------------- messages
def _plain(value: Any) -> Any:
    """``value`` with paths as strings and numpy scalars as numbers (JSON's types)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def report_to_json(report: Report) -> dict[str, Any]:
    """A job's report as a JSON object (a preview image as shape and base64 bytes)."""
    out: dict[str, Any] = {"kind": report.kind, "message": report.message}
    if report.kind == "progress":
        out.update(done=int(report.done), total=int(report.total))
    elif report.kind == "event":
        out["data"] = _plain(dict(report.data))
    elif report.kind == "preview":
        import numpy as np

        image = np.ascontiguousarray(report.payload, dtype=np.uint8)
        out.update(shape=list(image.shape), image=base64.b64encode(image.tobytes()).decode())
    return out


def replay_report(data: dict[str, Any], ctx: JobContext) -> None:
    """Hand one decoded report line to ``ctx`` (outcome lines are the caller's)."""
    kind = data.get("kind")
    message = str(data.get("message", ""))
    if kind == "progress":
        ctx.progress(int(data.get("done", 0)), int(data.get("total", 0)), message)
    elif kind == "log":
        ctx.log(message)
    elif kind == "event":
        ctx.event(message, **dict(data.get("data") or {}))
    elif kind == "preview":
        import numpy as np

        shape = tuple(int(n) for n in data["shape"])
        image = np.frombuffer(base64.b64decode(data["image"]), np.uint8).reshape(shape)
        ctx.preview(image, message)


class _LineReader:
    """The complete lines appended to a file since the last read."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8") for line in complete if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the launcher
def cuda_device_count() -> int:
    """The CUDA GPUs this process sees (0 without torch's CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def visible_gpu_count() -> int:
    """The CUDA GPUs this process would see, without importing torch (the studio asks when its
    window opens): torch's count once torch is imported; before, the NVIDIA driver's GPUs
    narrowed by ``CUDA_VISIBLE_DEVICES`` (CUDA reads that list up to its first invalid entry)."""
    if "torch" in sys.modules:
        return cuda_device_count()
    try:
        found = len(os.listdir(NVIDIA_GPUS))
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    listed = 0
    for item in visible.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        listed += 1
    return min(found, listed)


def check_worker_count(count: int | None, flag: str = "--gpus") -> str:
    """The device type N workers run on ("cuda": one GPU each; "cpu": no CUDA GPU here, the
    workers share the CPU with gloo), or a :class:`LaunchError` (one line) for a count below 1
    or above what this machine has: its CUDA GPUs, or without one its usable cores."""
    from worldstudio.core.runtime.threads import usable_cores

    if count is None or int(count) < 1:
        raise LaunchError(f"{flag} must be at least 1, got {count}")
    count = int(count)
    import torch

    if torch.cuda.is_available():
        have = torch.cuda.device_count()
        if count > have:
            raise LaunchError(
                f"{flag} {count}: this machine has {have} CUDA GPU{'s' if have != 1 else ''}"
            )
        return "cuda"
    cores = usable_cores()
    if count > 1 and count > cores:
        raise LaunchError(
            f"{flag} {count}: this machine has no CUDA GPU, and its CPU has {cores} usable "
            f"core{'s' if cores != 1 else ''} for worker processes"
        )
    return "cpu"


@dataclass
class Outcome:
    kind: str  # "result", "error" or "cancelled"
    data: dict[str, Any]


def torchrun_command(module: str, folder: Path, processes: int) -> list[str]:
    """``python -m torch.distributed.run`` for ``processes`` workers on this machine, each running
    ``python -m module folder``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={int(processes)}",
        "-m",
        module,
        str(folder),
    ]


def _end_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the workers' process group, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


def run_workers(
    module: str,
    spec: dict[str, Any],
    processes: int,
    ctx: JobContext,
    *,
    what: str = "workers",
    command: Callable[[Path], list[str]] | None = None,
) -> dict[str, Any]:
    """Run ``processes`` workers of ``module`` (whose ``__main__`` calls :func:`worker_main`)
    with ``spec``, replaying the main worker's reports into ``ctx``; returns its result's data.

    Raises the worker's error as a :class:`WorldStudioError` (its own line), :class:`Cancelled`
    when the job was cancelled (or Ctrl+C), and :class:`LaunchError` when the workers end
    without an outcome. ``command(folder)``: another launcher than torchrun (tests)."""
    folder = Path(tempfile.mkdtemp(prefix="worldstudio-workers-"))
    keep = False
    try:
        _write_atomic(folder / SPEC, json.dumps(_plain(spec)))
        _write_atomic(folder / CONTROL, "run")
        env = child_environment(processes)
        cmd = command(folder) if command else torchrun_command(module, folder, processes)
        with open(folder / LOG, "wb") as log:
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # no preexec_fn (docs/STACK.md)
                )
            except OSError as exc:
                raise LaunchError(f"cannot start the {what}: {exc}") from exc
            ctx.log(f"started {processes} {what} (pid {proc.pid}; files in {folder})")
            try:
                outcome = _follow(proc, folder, ctx)
            finally:
                _end_group(proc)
        if outcome is not None and outcome.kind == "cancelled" and not ctx.cancelled:
            # the main worker was stopped by torchrun because another worker failed
            outcome = None
        if outcome is None and ctx.cancelled:
            raise Cancelled("cancelled (the workers were ended)")
        if outcome is None or outcome.kind == "error" and outcome.data.get("crash"):
            keep = True
        return _settle(outcome, proc.returncode, folder, what)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _follow(proc: subprocess.Popen, folder: Path, ctx: JobContext) -> Outcome | None:
    """Replay reports until the workers end; the outcome the main worker reported, if any."""
    reader = _LineReader(folder / REPORTS)
    outcome: Outcome | None = None
    control = "run"
    ended_at: float | None = None  # when the outcome came or the cancel was sent

    def drain() -> None:
        nonlocal outcome, ended_at
        for line in reader.lines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if data.get("kind") in ("result", "error", "cancelled"):
                outcome = Outcome(data["kind"], dict(data.get("data") or {}))
                ended_at = ended_at or time.monotonic()
            else:
                replay_report(data, ctx)

    def send(state: str) -> None:
        nonlocal control, ended_at
        if state != control:
            _write_atomic(folder / CONTROL, state)
            control = state
            if state == "cancel":
                ended_at = ended_at or time.monotonic()

    interrupted = False
    while True:
        try:
            drain()
            if proc.poll() is not None:
                drain()
                break
            if ended_at is not None and time.monotonic() - ended_at > GRACE_SECONDS:
                ctx.log(
                    f"the workers did not end {GRACE_SECONDS:.0f} s after stopping: ending them"
                )
                break
            if ctx.cancelled:
                send("cancel")
            else:
                send("pause" if ctx.pause_token.paused else "run")
            time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl+C: no more waiting
                raise Cancelled("interrupted") from None
            interrupted = True
            ctx.log("stopping the workers at their next step (Ctrl+C again to end them now)")
            ctx.cancel_token.cancel()
            send("cancel")
    if interrupted and (outcome is None or outcome.kind != "error"):
        raise Cancelled("interrupted")
    return outcome


def _settle(outcome: Outcome | None, returncode: int | None, folder: Path, what: str) -> dict:
    if outcome is not None and outcome.kind == "result":
        return outcome.data
    if outcome is not None and outcome.kind == "cancelled":
        raise Cancelled("cancelled")
    if outcome is not None and not outcome.data.get("crash"):
        raise WorldStudioError(str(outcome.data.get("message", "the workers failed")))
    detail = f": {outcome.data.get('message')}" if outcome is not None else ""
    tail = _log_tail(folder / LOG)
    raise LaunchError(
        f"the {what} failed (exit status {returncode}){detail}; their log: {folder / LOG}"
        + (f"\n{tail}" if tail else "")
    )


# --------------------------------------------------------------------------- the workers
def rank() -> int:
    """This worker's rank among all workers (0 outside a multi-process launch)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


class WorkerChannel:
    """A worker's side of the folder: a :class:`JobContext` whose pause and cancel tokens follow
    the launcher's ``control`` file, and (on the main worker) whose reports go to
    ``reports.jsonl``."""

    def __init__(self, folder: str | os.PathLike[str], main: bool):
        self.folder = Path(folder)
        self.main = main
        self.cancel = CancelToken()
        self.pause = PauseToken()
        self._lock = threading.Lock()
        self._out = open(self.folder / REPORTS, "a", encoding="utf-8") if main else None
        self.ctx = JobContext(self._sink if main else None, self.cancel, self.pause)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="control", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        path = self.folder / CONTROL
        while not self._stop.wait(0.1):
            try:
                state = path.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if state == "cancel":
                self.cancel.cancel()
                self.pause.resume()  # a paused job notices the cancel at once
            elif state == "pause":
                self.pause.pause()
            else:
                self.pause.resume()

    def _write(self, data: dict[str, Any]) -> None:
        if self._out is None:
            return
        line = json.dumps(data) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def _sink(self, report: Report) -> None:
        self._write(report_to_json(report))

    def outcome(self, kind: str, **data: Any) -> None:
        self._write({"kind": kind, "data": _plain(data)})

    def close(self) -> None:
        self._stop.set()
        if self._out is not None:
            self._out.close()
            self._out = None


def _sigterm_as_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def worker_main(
    argv: list[str] | None,
    body: Callable[[dict[str, Any], WorkerChannel], dict[str, Any] | None],
) -> int:
    """A worker's ``main``: ``argv`` = [folder]. Applies the thread policy for its share of the
    cores, reads the spec and runs ``body(spec, channel)`` (every worker), the main worker (rank
    0) reporting its outcome: the result's data, an error a user caused (one line), a cancel,
    or a crash (its traceback goes to the log). Returns the process's exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m MODULE LAUNCH_FOLDER", file=sys.stderr)
        return 2
    apply_thread_policy("worker", processes=world_size())
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    folder = Path(args[0])
    channel = WorkerChannel(folder, main=rank() == 0)
    try:
        spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
        result = body(spec, channel)
        channel.outcome("result", **(result or {}))
        return 0
    except (Cancelled, KeyboardInterrupt):
        channel.outcome("cancelled")
        return 0
    except WorldStudioError as exc:
        channel.outcome("error", message=str(exc))
        return 0
    except Exception as exc:  # noqa: BLE001 - a crash: its traceback to the log, one line up
        traceback.print_exc()
        channel.outcome("error", message=f"{type(exc).__name__}: {exc}", crash=True)
        return 1
    finally:
        channel.close()


def init_process_group() -> tuple[int, int]:
    """Join the workers' process group (NCCL on CUDA GPUs, one GPU per worker; gloo on the
    CPU); returns (rank, world size)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
            dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank()))
        else:
            dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()
