"""The Training panel in the real window on the tiny Wan VACE model (a fake hub cache under the
real repo id, tests/training/conftest.py): a few steps driving the live loss curve through
the trainer's events (sent from the worker thread), pause and resume through the panel's job
handle, the sample clip in the player, the LoRA in the Generate panel, cancel."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import Qt

from tests.conftest import TINY

TIMEOUT = 90000


def set_up(w, clips, steps: int, **extra):
    tp = w.training_panel
    tp.clips.setText(str(clips))
    tp.steps.setValue(steps)
    tp.rank.setValue(4)
    tp.lr.setText("1e-3")
    tp.width_spin.setValue(TINY["width"])
    tp.height_spin.setValue(TINY["height"])
    tp.frames.setValue(TINY["frames"])
    tp.name.setText("squares")
    tp.extra_settings = dict(checkpoint_every=0, **extra)
    return tp


def test_train_with_live_loss_curve_pause_resume_sample_and_lora(
    make_window, demo_folder, qtbot, train_env, clip_dir
):
    w = make_window(demo_folder)
    tp = set_up(w, clip_dir, steps=6, sample_steps=2)
    tp.sample_every.setValue(6)
    tp.eval_every.setValue(3)
    threads = set()

    # Pause right away: the trainer holds before its first optimizer step.
    qtbot.mouseClick(tp.header.start_button, Qt.MouseButton.LeftButton)
    tp.job.event.connect(lambda name, data: threads.add(threading.get_ident()))
    assert (
        tp.running and tp.header.pause_button.isEnabled() and not tp.header.start_button.isEnabled()
    )
    qtbot.mouseClick(tp.header.pause_button, Qt.MouseButton.LeftButton)
    assert tp.header.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: tp.paused, timeout=TIMEOUT)
    assert "paused at step 0" in tp.header.status.text()
    time.sleep(0.3)
    qtbot.wait(50)
    assert [d for n, d in tp.events if n == "metrics" and "loss" in d] == [] and w.runner.busy
    assert tp.job.state == "paused"
    qtbot.mouseClick(tp.header.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=TIMEOUT)
    assert tp.last_result is not None, tp.last_error

    # The curve: one point per optimizer step, eval points at 0, 3 and 6; delivered in the GUI
    # thread although the trainer reports from the worker.
    xs, ys = tp.loss_curve.getData()
    assert list(xs) == [1, 2, 3, 4, 5, 6] and len(ys) == 6
    assert len(tp.smooth_curve.getData()[0]) == 6
    assert list(tp.eval_points.getData()[0]) == [0, 3, 6]
    assert threads == {threading.get_ident()}
    names = ["train" if n == "metrics" and "loss" in d else n for n, d in tp.events]
    assert names.index("paused") < names.index("resumed") < names.index("train")
    assert tp.job.state == "finished"
    assert "done" in tp.header.status.text()

    # The sample clip went to the player; the LoRA joined the Generate panel's list.
    assert tp.last_sample is not None and str(w.player.path) == tp.last_sample
    gp = w.generate_panel
    names = [gp.loras.table.item(r, 0).text() for r in range(gp.loras.table.rowCount())]
    assert names == ["squares"]
    gp.loras.set_lora("squares", strength=0.8)
    assert gp.loras.selected() == [(str(tp.last_result.adapter), 0.8)]

    # Training again under the same name asks first.
    asked = []
    tp.ask_overwrite = lambda name: asked.append(name) or False
    assert not tp.start() and asked == ["squares"] and not w.runner.busy


def test_cancel_training(make_window, demo_folder, qtbot, train_env, clip_dir):
    w = make_window(demo_folder)
    tp = set_up(w, clip_dir, steps=500)
    tp.sample_every.setValue(0)
    tp.eval_every.setValue(0)
    assert tp.start()
    qtbot.waitUntil(
        lambda: (
            len(tp.loss_curve.getData()[0] if tp.loss_curve.getData()[0] is not None else []) >= 2
        ),
        timeout=TIMEOUT,
    )
    qtbot.mouseClick(tp.header.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=TIMEOUT)
    assert tp.header.status.text() == "cancelled" and tp.last_result is None
    assert 2 <= len(tp.loss_curve.getData()[0]) < 500
    assert tp.header.start_button.isEnabled() and not tp.header.pause_button.isEnabled()


def test_bad_settings_are_reported_without_starting(make_window, demo_folder, tmp_path):
    w = make_window(demo_folder)
    tp = w.training_panel
    assert not tp.start()
    assert "clips" in tp.header.status.text()
    tp.clips.setText(str(tmp_path))
    tp.lr.setText("fast")
    assert not tp.start() and "learning rate" in tp.header.status.text()
    tp.lr.setText("1e-4")
    tp.frames.setValue(8)
    assert not tp.start() and "--frames must be 4k+1" in tp.header.status.text()
    assert not w.runner.busy


def test_a_training_is_a_queue_entry_that_waits_for_the_gpu(
    make_window, demo_folder, qtbot, train_env, clip_dir
):
    from worldstudio.core.jobs.queue import JobQueue

    w = make_window(demo_folder)
    tp = set_up(w, clip_dir, steps=2)
    tp.sample_every.setValue(0)
    tp.eval_every.setValue(0)
    release = threading.Event()
    other = w.runner.start(lambda ctx: release.wait(30), "Generate")  # holds the GPU
    assert tp.header.start_button.isEnabled()  # Start queues behind it
    assert tp.start() and tp.job is None and tp.queued is not None
    assert "queued" in tp.header.status.text()
    (entry,) = JobQueue().entries()
    assert entry.command == "train" and entry.state == "queued"
    assert entry.args[:2] == ["--clips", str(clip_dir)] and "--name" in entry.args
    release.set()
    qtbot.waitUntil(lambda: tp.job is not None, timeout=10000)  # it starts once the GPU is free
    assert other.ended
    qtbot.waitUntil(lambda: not tp.running, timeout=TIMEOUT)
    assert tp.last_result is not None, tp.last_error
    assert list(tp.loss_curve.getData()[0]) == [1, 2]
    assert JobQueue().get(entry.id).state == "done"
