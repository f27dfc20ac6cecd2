"""A worker module for the launcher's tests: ``python -m tests.runtime.fake_worker FOLDER`` runs
what the spec's ``"do"`` says, through the real :func:`worker_main` (no torch, so it starts in
a blink)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.runtime.launch import worker_main


def body(spec, channel):
    ctx = channel.ctx
    do = spec["do"]
    if do == "work":
        ctx.log("hello from the worker")
        ctx.event("round_finished", run_dir=str(channel.folder), round=0)
        image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
        ctx.preview(image, "a preview")
        for step in range(3):
            ctx.progress(step + 1, 3, f"step {step + 1}")
        return {"answer": 42, "folder": channel.folder}
    if do == "wait":  # until cancelled, reporting its pauses
        (channel.folder / "waiting").write_text(str(os.getpid()))
        step = 0
        while True:
            ctx.checkpoint(step)
            ctx.progress(step, 0, "waiting")
            step += 1
            time.sleep(0.05)
    if do == "error":
        raise WorldStudioError("the spec asks for an error")
    if do == "crash":
        print("about to crash", file=sys.stderr)
        raise ZeroDivisionError("boom")
    if do == "hang":  # ignores cancels: the launcher must end it
        (channel.folder / "waiting").write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)
    raise ValueError(do)


if __name__ == "__main__":
    raise SystemExit(worker_main(None, body))
