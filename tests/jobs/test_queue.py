"""The job queue on disk (core.jobs.queue): order, lanes, cancel and remove, and a queue that
survives its process (a new JobQueue on the same file is a restart)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from worldstudio.core.jobs import Report
from worldstudio.core.jobs.process import this_process
from worldstudio.core.jobs.queue import EntryTracker, JobQueue, QueueError


@pytest.fixture
def queue(tmp_path):
    return JobQueue(tmp_path / "queue.json")


def _dead_owner() -> dict:
    """The stamp of a process that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stamp = this_process().to_json()
    stamp.update(pid=int(proc.stdout), start=None)
    return stamp


def test_entries_keep_their_order_and_survive_a_restart(queue, tmp_path):
    a = queue.add("generate", tmp_path / "p", ["--rounds", "2"])
    b = queue.add("export", tmp_path / "p", ["--ply", "x.ply"], title="export the cloud")
    c = queue.add("train", tmp_path / "q", ["--clips", "clips"])
    queue.move(c.id, 0)
    again = JobQueue(queue.path)  # a restart: a new queue object on the same file
    got = again.entries()
    assert [e.id for e in got] == [c.id, a.id, b.id]
    assert got[1].args == ["--rounds", "2"] and got[1].project == str(tmp_path / "p")
    assert got[2].title == "export the cloud" and got[2].lane == "light"
    assert all(e.state == "queued" for e in got)
    data = json.loads(queue.path.read_text())
    assert data["format"] == "worldstudio.queue" and len(data["entries"]) == 3


def test_only_the_queue_commands_are_taken(queue, tmp_path):
    with pytest.raises(QueueError, match="not 'play'"):
        queue.add("play", tmp_path)


def test_the_gpu_lane_runs_one_job_while_a_light_job_runs_beside_it(queue, tmp_path):
    g1 = queue.add("generate", tmp_path)
    g2 = queue.add("train", tmp_path)
    ex = queue.add("export", tmp_path)
    assert queue.claim().id == g1.id
    assert queue.claim().id == ex.id  # the gpu lane is busy: the light job goes
    assert queue.claim() is None  # train waits for the generation
    queue.finish(g1.id, "done")
    assert queue.claim(("gpu",)).id == g2.id
    states = {e.id: e.state for e in queue.entries()}
    assert states == {g1.id: "done", g2.id: "running", ex.id: "running"}


def test_cancel_and_remove(queue, tmp_path):
    running = queue.add("generate", tmp_path)
    waiting = queue.add("generate", tmp_path)
    queue.claim()
    assert queue.cancel(waiting.id).state == "cancelled"
    e = queue.cancel(running.id)
    assert e.state == "running" and e.cancel  # its runner stops it at the next step
    with pytest.raises(QueueError, match="cancel it first"):
        queue.remove(running.id)
    queue.remove(waiting.id)
    assert [e.id for e in queue.entries()] == [running.id]
    queue.finish(running.id, "cancelled")
    assert queue.clear_ended() == 1 and queue.entries() == []


def test_a_running_entry_of_a_gone_process_is_interrupted_and_runs_again(queue, tmp_path):
    e = queue.add("generate", tmp_path)
    queue.claim()
    queue.update(e.id, owner=_dead_owner(), run=str(tmp_path / "runs" / "r1"))
    again = JobQueue(queue.path)
    (got,) = again.entries()
    assert got.state == "interrupted" and got.run.endswith("r1")
    claimed = again.claim()
    assert claimed.id == e.id and claimed.state == "running" and claimed.run.endswith("r1")
    assert claimed.owner == this_process().to_json()


def test_changes_from_two_threads_are_all_kept(queue, tmp_path):
    def add(n: int) -> None:
        for i in range(n):
            JobQueue(queue.path).add("export", tmp_path, [str(i)])

    threads = [threading.Thread(target=add, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(queue.entries()) == 40


def test_a_broken_file_is_said_plainly(queue):
    queue.path.parent.mkdir(parents=True, exist_ok=True)
    queue.path.write_text("{not json")
    with pytest.raises(QueueError, match="not a job queue"):
        queue.entries()


def test_the_tracker_records_the_run_progress_and_a_cancel(queue, tmp_path):
    e = queue.add("generate", tmp_path)
    e = queue.claim()
    now = [0.0]
    tracker = EntryTracker(queue, e, interval=0.0)
    tracker.eta.clock = lambda: now[0]
    tracker.on_report(Report("event", message="run_started", data={"run_dir": "/runs/r7"}))
    tracker.on_report(Report("progress", done=0, total=10, message="round 1/2"))
    now[0] = 10.0
    tracker.on_report(Report("progress", done=5, total=10, message="round 2/2"))
    got = queue.get(e.id)
    assert got.run == "/runs/r7" and (got.done, got.total) == (5, 10)
    assert got.message == "round 2/2" and got.eta == pytest.approx(10.0)
    assert got.eta_now(got.updated + 4) == pytest.approx(6.0)
    assert not tracker.cancel_requested()
    queue.cancel(e.id)
    assert tracker.cancel_requested()
