"""The clip folder: captions in every documented format, frame sampling by timestamp, resizing,
broken and short clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldstudio.core.media import write_mp4
from worldstudio.core.training.config import TrainingError
from worldstudio.core.training.dataset import (
    ClipError,
    decode_windows,
    list_clips,
    resize_center_crop,
    source_indices,
)


def _clip(path, frames=12, fps=16, size=(32, 32)):
    """Frame k is filled with grey level 10 * k (so a decoded frame tells its source index)."""
    h, w = size
    write_mp4(path, [np.full((h, w, 3), 10 * k, np.uint8) for k in range(frames)], fps)
    return path


def test_same_name_txt_captions(tmp_path):
    _clip(tmp_path / "a.mp4")
    (tmp_path / "a.txt").write_text("  a caption \n")
    [clip] = list_clips(tmp_path)
    assert clip.caption == "a caption" and clip.caption_source == "txt" and clip.rel == "a.mp4"


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "captions.jsonl",
            '{"file": "a.mp4", "caption": "first"}\n\n{"file": "sub/b.webm", "caption": "second"}\n',
        ),
        ("captions.csv", 'caption,file\n"first",a.mp4\n"second, with a comma",sub/b.webm\n'),
        ("captions.tsv", "file\tcaption\n# a comment\na.mp4\tfirst\nsub/b.webm\tsecond\n"),
    ],
)
def test_captions_files(tmp_path, name, text):
    _clip(tmp_path / "a.mp4")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.webm").write_bytes(b"not decoded here")
    (tmp_path / name).write_text(text)
    clips = {c.rel: c for c in list_clips(tmp_path)}
    assert set(clips) == {"a.mp4", "sub/b.webm"}
    assert clips["a.mp4"].caption == "first" and clips["a.mp4"].caption_source == name
    assert clips["sub/b.webm"].caption.startswith("second")


def test_bare_file_names_match_in_captions_file_and_txt_wins(tmp_path):
    (tmp_path / "sub").mkdir()
    _clip(tmp_path / "sub" / "a.mov")
    _clip(tmp_path / "b.mp4")
    (tmp_path / "b.txt").write_text("from txt")
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"file": "a.mov", "caption": "bare"})
        + "\n"
        + json.dumps({"file": "b.mp4", "caption": "file"})
        + "\n"
    )
    clips = {c.rel: c.caption for c in list_clips(tmp_path)}
    assert clips == {"sub/a.mov": "bare", "b.mp4": "from txt"}


def test_missing_captions_are_an_error_naming_the_clips(tmp_path):
    for n in ("a", "b"):
        _clip(tmp_path / f"{n}.mp4")
    (tmp_path / "a.txt").write_text("ok")
    with pytest.raises(TrainingError, match=r"1 clip\(s\).*b\.mp4.*--caption"):
        list_clips(tmp_path)
    clips = {c.rel: (c.caption, c.caption_source) for c in list_clips(tmp_path, default_caption="")}
    assert clips == {"a.mp4": ("ok", "txt"), "b.mp4": ("", "default")}


def test_folder_errors(tmp_path):
    with pytest.raises(TrainingError, match="not a folder"):
        list_clips(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    _clip(tmp_path / ".hidden" / "x.mp4")
    with pytest.raises(TrainingError, match="no clips"):
        list_clips(tmp_path)
    (tmp_path / "captions.jsonl").write_text("{broken\n")
    _clip(tmp_path / "a.mp4")
    with pytest.raises(TrainingError, match="captions.jsonl: line 1"):
        list_clips(tmp_path)


def test_source_indices_follow_timestamps():
    assert source_indices(5, 16, 16) == [0, 1, 2, 3, 4]
    assert source_indices(5, 16, 16, window=1) == [5, 6, 7, 8, 9]
    # 30 fps source at 16 fps: frame k shows the source frame at t = k / 16
    assert source_indices(5, 16, 30) == [0, 1, 3, 5, 7]
    # 8 fps source at 16 fps: frames repeat
    assert source_indices(5, 16, 8) == [0, 0, 1, 1, 2]


def test_resize_center_crop():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, 20:60] = 255  # the centre half is white
    out = resize_center_crop(frame, 32, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.min() > 200  # the crop kept only the white centre
    up = resize_center_crop(np.zeros((8, 8, 3), np.uint8), 32, 16)
    assert up.shape == (16, 32, 3)


def test_decode_windows_resamples_by_timestamp(tmp_path):
    path = _clip(tmp_path / "c.mp4", frames=20, fps=32)
    [window] = decode_windows(path, frames=5, fps=16, width=16, height=16)
    assert window.shape == (5, 16, 16, 3)
    levels = window.reshape(5, -1).mean(1) / 10
    np.testing.assert_allclose(levels, [0, 2, 4, 6, 8], atol=0.6)  # every second source frame
    windows = decode_windows(path, frames=5, fps=16, width=16, height=16, windows=3)
    assert len(windows) == 2  # 0.625 s hold two 5-frame windows at 16 fps, not three


def test_broken_and_short_clips(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ClipError, match="broken.mp4: not a readable video"):
        decode_windows(tmp_path / "broken.mp4", frames=5, fps=16, width=16, height=16)
    short = _clip(tmp_path / "short.mp4", frames=3, fps=16)
    with pytest.raises(ClipError, match=r"short.mp4: too short \(3 frames"):
        decode_windows(short, frames=5, fps=16, width=16, height=16)
