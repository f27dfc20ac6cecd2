"""The job protocol: reports and typed events reach the sink, cancellation stops the job between
steps, pause holds it at its next checkpoint."""

from __future__ import annotations

import threading
import time

import pytest

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import CancelToken, JobContext, PauseToken, run_in_terminal


def counting_job(n, started=None, proceed=None):
    def job(ctx: JobContext):
        for i in range(n):
            ctx.check_cancelled()
            if i == 1 and started is not None:
                started.set()
                proceed.wait(5)
            ctx.progress(i + 1, n, f"step {i + 1}")
        ctx.log("finished")
        return n

    return job


def test_reports_arrive_in_order():
    reports = []
    assert counting_job(3)(JobContext(reports.append)) == 3
    assert [(r.kind, r.done, r.total) for r in reports] == [
        ("progress", 1, 3),
        ("progress", 2, 3),
        ("progress", 3, 3),
        ("log", 0, 0),
    ]


def test_cancel_from_another_thread_stops_the_job():
    token = CancelToken()
    started, proceed = threading.Event(), threading.Event()
    reports, errors = [], []

    def run():
        try:
            counting_job(10, started, proceed)(JobContext(reports.append, token))
        except Cancelled as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    started.wait(5)
    token.cancel()
    proceed.set()
    t.join(5)
    assert len(errors) == 1
    assert max(r.done for r in reports) == 2  # stopped at the next check, not at the end


def test_run_in_terminal_returns_the_result(capsys):
    assert run_in_terminal(counting_job(4), "work") == 4
    assert "finished" in capsys.readouterr().out
    with pytest.raises(ZeroDivisionError):
        run_in_terminal(lambda ctx: 1 / 0)


def test_pause_token():
    token = PauseToken()
    assert not token.paused and token.wait() is False
    token.pause()
    cancel = CancelToken()
    cancel.cancel()
    assert token.paused and token.wait(cancel, poll=0.01) is True  # returns on cancel
    token.resume()
    assert not token.paused


def test_events_carry_a_name_and_data():
    reports = []
    JobContext(reports.append).event("round_finished", run_id="r1", round=0)
    [r] = reports
    assert (r.kind, r.message, r.data) == ("event", "round_finished", {"run_id": "r1", "round": 0})


def test_checkpoint_holds_while_paused_and_reports_it():
    pause, cancel = PauseToken(), CancelToken()
    reports, steps_done = [], []
    held = threading.Event()

    def sink(report):
        reports.append(report)
        if report.kind == "event" and report.message == "paused":
            held.set()

    def job(ctx):
        for step in range(3):
            ctx.checkpoint(step)
            steps_done.append(step)

    pause.pause()
    t = threading.Thread(target=job, args=(JobContext(sink, cancel, pause),))
    t.start()
    assert held.wait(5)
    time.sleep(0.2)
    assert steps_done == [] and t.is_alive()  # holding before the first step
    pause.resume()
    t.join(5)
    assert not t.is_alive() and steps_done == [0, 1, 2]
    assert [(r.message, r.data) for r in reports] == [
        ("paused", {"step": 0}),
        ("resumed", {"step": 0}),
    ]


def test_cancel_while_paused_raises_at_the_checkpoint():
    pause, cancel = PauseToken(), CancelToken()
    pause.pause()
    reports, errors = [], []
    ctx = JobContext(reports.append, cancel, pause)

    def run():
        try:
            ctx.checkpoint(7)
        except Cancelled as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    threading.Timer(0.1, cancel.cancel).start()
    t.join(5)
    assert not t.is_alive() and len(errors) == 1
    assert [r.message for r in reports] == ["paused"]  # no "resumed": it never went on


def test_a_child_context_shares_cancel_and_pause():
    parent_reports, child_reports = [], []
    ctx = JobContext(parent_reports.append)
    child = ctx.child(child_reports.append)
    child.log("inner")
    assert [r.message for r in child_reports] == ["inner"] and parent_reports == []
    ctx.pause_token.pause()
    assert child.pause_token.paused
    ctx.cancel_token.cancel()
    with pytest.raises(Cancelled):
        child.checkpoint()
    assert not isinstance(Cancelled("x"), WorldStudioError)
