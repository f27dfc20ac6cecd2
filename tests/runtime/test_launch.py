"""The launcher and the worker side (core.runtime.launch) with a torch-free fake worker module
(tests/runtime/fake_worker.py) run through the real worker_main: reports replayed into the job
context, the outcomes (result, error a user caused, crash with the log's tail), cancel, pause,
Ctrl+C and workers that ignore a cancel."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.jobs import JobContext
from worldstudio.core.runtime import launch

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)


class Recorder:
    def __init__(self):
        self.reports = []

    def __call__(self, report):
        self.reports.append(report)

    def of(self, kind):
        return [r for r in self.reports if r.kind == kind]


def fake(folder: Path) -> list[str]:
    return [sys.executable, "-m", "tests.runtime.fake_worker", str(folder)]


def run(do: str, ctx: JobContext, **kw):
    return launch.run_workers("unused", {"do": do}, 1, ctx, command=fake, **kw)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of an ended child still answers: look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_reports_come_back_and_the_result_is_returned():
    rec = Recorder()
    data = run("work", JobContext(rec))
    assert data["answer"] == 42
    folder = Path(data["folder"])
    assert not folder.exists()  # the launch folder is removed after a clean end
    assert any(r.message == "hello from the worker" for r in rec.of("log"))
    (event,) = rec.of("event")
    assert event.message == "round_finished" and event.data == {"run_dir": str(folder), "round": 0}
    (preview,) = rec.of("preview")
    expected = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    assert preview.message == "a preview" and np.array_equal(preview.payload, expected)
    assert [(r.done, r.total, r.message) for r in rec.of("progress")] == [
        (1, 3, "step 1"),
        (2, 3, "step 2"),
        (3, 3, "step 3"),
    ]


def test_an_error_a_user_caused_is_one_line():
    with pytest.raises(WorldStudioError, match="^the spec asks for an error$"):
        run("error", JobContext())


def test_a_crash_names_the_log_and_quotes_it(tmp_path):
    with pytest.raises(launch.LaunchError) as info:
        run("crash", JobContext(), what="test workers")
    text = str(info.value)
    assert text.startswith("the test workers failed (exit status 1): ZeroDivisionError: boom")
    assert "about to crash" in text and "ZeroDivisionError" in text.splitlines()[-1]
    log = Path(text.split("their log: ")[1].split("\n")[0])
    assert log.is_file()  # kept for the user
    import shutil

    shutil.rmtree(log.parent)


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


class ActOnProgress(Recorder):
    """Records, and calls ``act(self)`` at each progress report (the launcher's thread)."""

    def __init__(self, act):
        super().__init__()
        self.act = act
        self.ctx = JobContext(self)

    def __call__(self, report):
        super().__call__(report)
        if report.kind == "progress":
            self.act(self)


def test_cancel_stops_the_worker_at_its_next_step():
    rec = ActOnProgress(lambda r: len(r.of("progress")) >= 3 and r.ctx.cancel_token.cancel())
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        run("wait", rec.ctx)
    assert time.monotonic() - t0 < 30


def test_pause_and_resume_reach_the_worker():
    def act(r):
        n = len(r.of("progress"))
        paused = [e for e in r.of("event") if e.message == "paused"]
        resumed = [e for e in r.of("event") if e.message == "resumed"]
        if n == 2 and not paused:
            r.ctx.pause_token.pause()
        elif resumed and n > 4:
            r.ctx.cancel_token.cancel()

    rec = ActOnProgress(act)

    def watch(report):
        rec(report)
        if report.kind == "event" and report.message == "paused":
            rec.ctx.pause_token.resume()  # the worker held: let it go on

    rec.ctx = JobContext(watch, rec.ctx.cancel_token, rec.ctx.pause_token)
    with pytest.raises(Cancelled):
        run("wait", rec.ctx)
    names = [e.message for e in rec.of("event")]
    assert names[:2] == ["paused", "resumed"]
    # the worker held between the reports around its pause
    paused_at = next(e.data["step"] for e in rec.of("event") if e.message == "paused")
    assert paused_at >= 1


def test_ctrl_c_asks_the_workers_to_stop_and_waits_for_them():
    def interrupt(r):
        if len(r.of("progress")) == 2:
            raise KeyboardInterrupt

    rec = ActOnProgress(interrupt)
    with pytest.raises(Cancelled, match="interrupted"):
        run("wait", rec.ctx)
    assert rec.ctx.cancelled
    assert any("Ctrl+C again" in r.message for r in rec.of("log"))


def test_workers_that_ignore_a_cancel_are_ended(monkeypatch):
    monkeypatch.setattr(launch, "GRACE_SECONDS", 1.0)
    pids = []

    def cancel_when_waiting(report):
        if report.kind == "log" and report.message.startswith("started") and not pids:
            folder = Path(report.message.split("files in ")[1].rstrip(")"))
            _wait_for(folder / "waiting")
            pids.append(int((folder / "waiting").read_text()))
            ctx.cancel_token.cancel()

    ctx = JobContext(cancel_when_waiting)
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        run("hang", ctx)
    assert time.monotonic() - t0 < 30
    assert pids and gone(pids[0])


def test_the_gpu_count_before_torch_reads_the_driver_and_cuda_visible_devices(
    tmp_path, monkeypatch
):
    gpus = tmp_path / "gpus"
    for bus in ("0000:01:00.0", "0000:41:00.0", "0000:81:00.0"):
        (gpus / bus).mkdir(parents=True)
    monkeypatch.setattr(launch, "NVIDIA_GPUS", gpus)
    monkeypatch.delitem(
        sys.modules, "torch", raising=False
    )  # as in a studio that has not imported it yet
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert launch.visible_gpu_count() == 3
    for visible, count in (("1", 1), ("0,2", 2), ("", 0), ("-1", 0), ("0,-1,1", 1), ("0,1,2,3", 3)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert launch.visible_gpu_count() == count, visible
    monkeypatch.setattr(launch, "NVIDIA_GPUS", tmp_path / "no-driver")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert launch.visible_gpu_count() == 0
