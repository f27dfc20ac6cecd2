"""The job protocol: reports reach the sink, cancellation stops the job between steps."""

from __future__ import annotations

import threading

import pytest

from worldstudio.core.errors import Cancelled
from worldstudio.core.jobs import CancelToken, JobContext, run_in_terminal


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
