"""mp4 writing: H.264, yuv420p, faststart, exact frame counts, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.media import VideoWriter, probe_video, read_frames, write_mp4


def ramp(n, h=48, w=64):
    return [np.full((h, w, 3), (i * 20) % 256, np.uint8) for i in range(n)]


def test_h264_yuv420p_faststart_with_every_frame(tmp_path):
    out = write_mp4(tmp_path / "a.mp4", ramp(17), fps=16)
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, info.faststart) == ("h264", "yuv420p", True)
    assert (info.width, info.height, info.frames, info.fps) == (64, 48, 17, 16.0)


def test_frames_decode_close_to_what_was_written(tmp_path):
    frames = ramp(5)
    write_mp4(tmp_path / "a.mp4", frames, fps=8)
    back = list(read_frames(tmp_path / "a.mp4"))
    assert len(back) == 5
    for a, b in zip(frames, back, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_odd_sizes_are_padded_to_even(tmp_path):
    info = probe_video(write_mp4(tmp_path / "odd.mp4", ramp(3, 31, 45), fps=16))
    assert (info.width, info.height) == (46, 32)


def test_failure_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(target, fps=16) as w:
            w.write(ramp(1)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_partial_video_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from worldstudio.core.fileio import is_foreign_leftover

    # a process that started a video and was killed before it closed it
    child = (
        "import sys, numpy as np, os\n"
        "from worldstudio.core.media import VideoWriter\n"
        "w = VideoWriter(sys.argv[1], fps=16)\n"
        "w.write(np.zeros((16, 16, 3), np.uint8))\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", child, str(tmp_path / "killed.mp4")], check=False)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and is_foreign_leftover(left[0]), left
    write_mp4(tmp_path / "next.mp4", ramp(2), fps=16)
    assert [p.name for p in tmp_path.iterdir()] == ["next.mp4"]


def test_mismatched_frame_size_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="frame 1 is 32x16"):
        with VideoWriter(tmp_path / "x.mp4", fps=16) as w:
            w.write(ramp(1)[0])
            w.write(np.zeros((16, 32, 3), np.uint8))


def test_unwritable_target_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WorldStudioError, match="cannot write here"):
        VideoWriter(blocker / "x.mp4", fps=16)


def test_reader_gives_fps_and_decoded_frames_and_stops_early(tmp_path):
    from worldstudio.core.media import VideoReader

    write_mp4(tmp_path / "a.mp4", ramp(6, 31, 45), fps=12)
    with VideoReader(tmp_path / "a.mp4") as video:
        assert video.fps == 12.0
        first = next(iter(video))
    assert first.shape == (32, 46, 3) and first.dtype == np.uint8
    assert video._proc is None  # leaving the with stopped ffmpeg


def test_reading_a_file_that_is_not_a_video_is_a_format_error(tmp_path):
    from worldstudio.core.errors import FormatError

    (tmp_path / "x.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(FormatError, match="not a readable video"):
        list(read_frames(tmp_path / "x.mp4"))
    with pytest.raises(FormatError, match="no such video"):
        probe_video(tmp_path / "missing.mp4")


def test_ffmpeg_is_started_without_preexec_fn(tmp_path, monkeypatch):
    """A preexec_fn makes Python fork for real, which deadlocks OpenBLAS (STACK.md)."""
    import subprocess

    from worldstudio.core.media import ffmpeg_exe

    ffmpeg_exe()  # imageio-ffmpeg checks its binary once (without a preexec_fn either)
    seen = []
    real = subprocess.Popen

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)
    write_mp4(tmp_path / "a.mp4", ramp(2), fps=8)
    list(read_frames(tmp_path / "a.mp4"))
    probe_video(tmp_path / "a.mp4")
    assert len(seen) >= 4  # encode, header, decode, count
    assert all(k.get("preexec_fn") is None and k.get("start_new_session") for k in seen)


# The child encodes videos from a thread while its main thread multiplies (400000, 3) arrays with
# OpenBLAS. With ffmpeg started through imageio-ffmpeg (preexec_fn=os.setpgrp) this hung within
# seconds; it must finish.
_ENCODE_WHILE_BLAS = """
import sys, tempfile, threading, time
from pathlib import Path
import numpy as np
from worldstudio.core.media import VideoWriter

seconds = float(sys.argv[1])
stop = threading.Event()
videos = []
errors = []

def encode(folder):
    frame = np.zeros((32, 48, 3), np.uint8)
    try:
        while not stop.is_set():
            with VideoWriter(Path(folder) / f"v{len(videos) % 4}.mp4", fps=8) as w:
                for i in range(3):
                    frame[:] = 40 * i
                    w.write(frame)
            videos.append(1)
    except BaseException as exc:
        errors.append(repr(exc))

with tempfile.TemporaryDirectory() as folder:
    t = threading.Thread(target=encode, args=(folder,))
    t.start()
    A = np.random.default_rng(0).random((400000, 3))
    v = np.ones(3)
    products = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        A @ v
        products += 1
    stop.set()
    t.join()
print(len(videos), products, errors)
"""


def test_encoding_in_a_thread_while_blas_runs_does_not_hang():
    import os
    import subprocess
    import sys

    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")  # a thread pool that a fork would stop
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _ENCODE_WHILE_BLAS, "5"],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("encoding while OpenBLAS computes hung (ffmpeg started with a real fork?)")
    assert proc.returncode == 0, proc.stderr
    videos, products, errors = proc.stdout.strip().split(" ", 2)
    assert errors == "[]" and int(videos) >= 3 and int(products) > 10
