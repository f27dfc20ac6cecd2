"""``worldstudio queue``: the job queue on disk (:mod:`worldstudio.core.jobs.queue`), headless.

``queue add PROJECT -- generate ...`` queues a command line; ``queue list`` shows the queue with
each job's state, elapsed time and time left; ``queue run`` runs the waiting jobs in order (the
gpu lane one at a time, previews and exports beside it) until none is left; ``queue cancel``,
``queue remove`` and ``queue move`` change it. The studio's Jobs panel drives the same file.

A queued job runs as its own ``worldstudio`` command would (:func:`entry_job`), reporting to the
queue instead of a progress bar; an interrupted generation continues its run (``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import threading
import time
from collections.abc import Callable
from typing import Any

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import CancelToken, JobContext, hosted_by
from worldstudio.core.jobs.progress import format_elapsed, format_seconds_left
from worldstudio.core.jobs.queue import (
    GPU_LANE,
    LANES,
    LIGHT_LANE,
    EntryTracker,
    JobQueue,
    QueueEntry,
    QueueError,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "queue",
        help="queue generations, trainings, previews and exports and run them in order",
        description=(
            "The job queue (a file in the user data folder, or $WORLDSTUDIO_QUEUE), shared with "
            "the studio's Jobs panel. It survives a crash or a restart: an interrupted "
            "generation continues from its last finished round."
        ),
    )
    qsub = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    q = qsub.add_parser(
        "add",
        help="queue a command: worldstudio queue add PROJECT -- generate --rounds 4",
    )
    q.add_argument("project", metavar="PROJECT")
    q.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND ...",
        help=f"the command ({', '.join(LANES)}) and its options, after --",
    )
    q.add_argument("--title", help="the name the queue shows (default: command and project)")
    q.set_defaults(handler=cmd_add)
    q = qsub.add_parser("list", help="the queue: state, elapsed time and time left per job")
    q.set_defaults(handler=cmd_list)
    q = qsub.add_parser(
        "run",
        help="run the waiting jobs until none is left (exit status 1 when one failed)",
    )
    q.add_argument("--quiet", action="store_true", help="only a line per job started and ended")
    q.set_defaults(handler=cmd_run)
    for name, what in (
        ("cancel", "cancel a waiting job, or stop a running one at its next step"),
        ("remove", "take a job that is not running out of the queue"),
        ("retry", "queue a failed or cancelled job again (a generation continues its run)"),
    ):
        q = qsub.add_parser(name, help=what)
        q.add_argument("id", metavar="ID", help="the job's id (queue list), or its last 6 letters")
        q.set_defaults(handler=cmd_change)
    q = qsub.add_parser("move", help="put a job at a place in the queue (1: first)")
    q.add_argument("id", metavar="ID")
    q.add_argument("position", type=int, metavar="N")
    q.set_defaults(handler=cmd_change)
    q = qsub.add_parser("clear", help="remove the done, failed and cancelled jobs")
    q.set_defaults(handler=cmd_clear)


# ------------------------------------------------------------------------------------ jobs
def parse_command(argv: list[str]) -> argparse.Namespace:
    """``argv`` (``[COMMAND, PROJECT, ...]``) parsed as the ``worldstudio`` command line; a bad
    option is a :class:`QueueError` with argparse's own message."""
    from worldstudio.core.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(argv)
    except SystemExit:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        said = lines[-1].split(": error: ", 1)[-1] if lines else "not a valid command"
        raise QueueError(f"{argv[0]}: {said}") from None


def _argv(entry: QueueEntry) -> list[str]:
    """The command line that runs ``entry`` now: an interrupted generation that has a run
    continues it."""
    if entry.command == "generate" and entry.run:
        # the run keeps its own settings (run.json); how many GPUs it runs on is this call's
        keep = []
        for flag in ("--gpus", "--parallel"):
            for i, arg in enumerate(entry.args):
                if arg == flag and i + 1 < len(entry.args):
                    keep += [flag, entry.args[i + 1]]
                elif arg.startswith(f"{flag}="):
                    keep.append(arg)
        return ["generate", entry.project, "--resume", entry.run, *keep]
    return entry.argv


def entry_job(entry: QueueEntry) -> Callable[[JobContext], Any]:
    """The job ``fn(ctx)`` of a queue entry: its command run in this thread with ``ctx`` in place
    of a progress bar (:func:`worldstudio.core.jobs.hosted_by`); it returns what the command's
    job returned."""
    args = parse_command(_argv(entry))
    if hasattr(args, "quiet"):
        args.quiet = True

    def job(ctx: JobContext) -> Any:
        """What the command's last job returned (a generation's RunResult), else its status."""
        with hosted_by(ctx) as results:  # what the command prints goes to stdout as ever
            status = args.handler(args)
        return results[-1] if results else status

    return job


def tracked_job(
    queue: JobQueue, entry: QueueEntry, poll: float = 1.0, stop: CancelToken | None = None
) -> Callable[[JobContext], Any]:
    """:func:`entry_job` that records its progress and run in the queue, stops when the queue
    asks (``queue cancel``, checked every ``poll`` seconds, also while the job is between
    reports) or ``stop`` is set, and marks the entry done, failed, or cancelled when it ends. A
    command that cannot be built fails the entry at once."""
    try:
        job = entry_job(entry)
    except WorldStudioError as exc:
        queue.finish(entry.id, "failed", str(exc))
        raise
    tracker = EntryTracker(queue, entry, interval=poll)

    def run(ctx: JobContext) -> Any:
        ended = threading.Event()

        def watch() -> None:
            while not ended.wait(poll):
                if tracker.cancel_requested() or (stop is not None and stop.cancelled):
                    ctx.cancel_token.cancel()
                    return

        def sink(report) -> None:
            tracker.on_report(report)
            ctx.send(report)

        watcher = threading.Thread(target=watch, name=f"queue-{entry.id}", daemon=True)
        watcher.start()
        try:
            result = job(ctx.child(sink))
        except (Cancelled, KeyboardInterrupt):
            queue.finish(entry.id, "cancelled")
            raise
        except BaseException as exc:
            queue.finish(entry.id, "failed", str(exc) or type(exc).__name__)
            raise
        finally:
            ended.set()
        queue.finish(entry.id, "cancelled" if ctx.cancelled else "done")
        return result

    return run


# ------------------------------------------------------------------------------------ commands
def cmd_add(args: argparse.Namespace) -> int:
    from worldstudio.core.project import ProjectFolder

    rest, title = list(args.rest), args.title
    if "--" in rest:  # what comes before -- (after PROJECT) may only be --title
        cut = rest.index("--")
        before, rest = rest[:cut], rest[cut + 1 :]
        if len(before) == 2 and before[0] == "--title":
            title = before[1]
        elif before:
            raise QueueError(
                f"queue add: {' '.join(before)!r} before --: put the command and its options "
                "after --"
            )
    if not rest:
        raise QueueError(f"queue add: name the command after --, one of {', '.join(LANES)}")
    command, options = rest[0], rest[1:]
    if command not in LANES:
        raise QueueError(f"queue add: the queue takes {', '.join(LANES)} jobs, not {command!r}")
    if not ProjectFolder(args.project).exists():
        raise QueueError(f"{args.project}: not a project folder (no project.json)")
    parse_command([command, args.project, *options])  # a bad option is said now, not at its turn
    queue = JobQueue()
    entry = queue.add(command, args.project, options, title or "")
    place = [e.id for e in queue.entries()].index(entry.id) + 1
    print(f"queued {entry.id}: {entry.title} (number {place} in {queue.path})")
    return 0


def _row(e: QueueEntry, now: float) -> str:
    elapsed = format_elapsed(e.elapsed(now))
    left = format_seconds_left(e.eta_now(now))
    progress = f"{e.done}/{e.total}" if e.total else ""
    bits = [b for b in (progress, elapsed and f"{elapsed} elapsed", left) if b]
    detail = e.error if e.state == "failed" else e.message
    line = f"{e.id}  {e.state:<11}  {e.title}"
    if bits:
        line += f"  [{', '.join(bits)}]"
    if detail:
        line += f"  {detail}"
    if e.run and e.state == "interrupted":
        line += "  (continues its run)"
    return line


def cmd_list(args: argparse.Namespace) -> int:
    queue = JobQueue()
    entries = queue.entries()
    if not entries:
        print(f"the queue is empty ({queue.path})")
        return 0
    now = time.time()
    for e in entries:
        print(_row(e, now))
    return 0


def cmd_change(args: argparse.Namespace) -> int:
    queue = JobQueue()
    action = args.queue_command
    entry_id = queue.get(args.id).id  # the whole id (ID may be its last part)
    if action == "cancel":
        e = queue.cancel(entry_id)
        said = "stops at its next step" if e.state == "running" else e.state
        print(f"{e.id}: {said}")
    elif action == "remove":
        queue.remove(entry_id)
        print(f"{entry_id}: removed")
    elif action == "retry":
        queue.retry(entry_id)
        print(f"{entry_id}: {queue.get(entry_id).state}")
    else:
        queue.move(entry_id, args.position - 1)
        place = [e.id for e in queue.entries()].index(entry_id) + 1
        print(f"{entry_id}: number {place}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    print(f"removed {JobQueue().clear_ended()} ended jobs")
    return 0


def run_queue(
    queue: JobQueue, cancel: CancelToken, say: Callable[[str], None], verbose: bool = True
) -> dict[str, int]:
    """Run waiting entries until none is left or ``cancel`` is set: one thread per lane (the gpu
    lane one job at a time, light jobs beside it). Returns how many ended in each state."""
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def lane(name: str) -> None:
        while not cancel.cancelled:
            entry = queue.claim((name,))
            if entry is None:
                return
            say(f"started {entry.id}: {entry.title}")

            def sink(report, entry=entry) -> None:
                if verbose and report.kind == "log":
                    say(f"  [{entry.id}] {report.message}")

            try:
                tracked_job(queue, entry, stop=cancel)(JobContext(sink))
            except (Cancelled, KeyboardInterrupt):
                pass
            except WorldStudioError:
                pass
            except Exception as exc:  # noqa: BLE001 - a bug in one job does not stop the queue
                from worldstudio.core.jobs.crash import report_crash

                report = report_crash(exc, f"the queued job '{entry.title}'")
                queue.update(entry.id, error=f"{report.error}; {report.note}")
            e = queue.get(entry.id)
            tail = f": {e.error}" if e.error else ""
            say(f"{e.state} {e.id}: {e.title} ({format_elapsed(e.elapsed())}){tail}")
            with lock:
                counts[e.state] = counts.get(e.state, 0) + 1

    threads = [
        threading.Thread(target=lane, args=(name,), name=f"queue-{name}")
        for name in (GPU_LANE, LIGHT_LANE)
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
    except KeyboardInterrupt:
        cancel.cancel()
        for t in threads:
            t.join()
        raise
    return counts


def cmd_run(args: argparse.Namespace) -> int:
    queue = JobQueue()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    counts = run_queue(queue, CancelToken(), say, verbose=not args.quiet)
    if not counts:
        print("nothing to run: no job is waiting")
        return 0
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 1 if counts.get("failed") else 0
