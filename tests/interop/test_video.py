"""mp4 writing: H.264, yuv420p, faststart, exact frame counts, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.interop.video import VideoWriter, probe_video, read_frames, write_mp4


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
