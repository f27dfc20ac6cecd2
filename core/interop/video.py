"""H.264 mp4 writing and probing through imageio-ffmpeg's bundled ffmpeg (docs/FORMATS.md):
yuv420p and faststart, so browsers and every player open the files."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldstudio.core.errors import FormatError, WorldStudioError
from worldstudio.core.fileio import check_output_path


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class VideoWriter:
    """Write RGB uint8 frames one at a time to an H.264 yuv420p faststart mp4.

    The file appears under its name only when :meth:`close` succeeds (written to a temp name
    first), so a failed or cancelled render never leaves a half-written video behind.
    """

    def __init__(self, path: str | os.PathLike, fps: float, quality: int = 18):
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self._gen = None
        self._size: tuple[int, int] | None = None
        check_output_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.touch()
        except OSError as exc:
            raise WorldStudioError(
                f"{self.path}: cannot write here ({exc.strerror or exc})"
            ) from exc

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        if self._gen is None:
            import imageio_ffmpeg

            self._size = (h, w)
            # yuv420p needs even sizes: odd ones are padded by one pixel.
            pad = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
            self._gen = imageio_ffmpeg.write_frames(
                str(self._tmp),
                (w, h),
                fps=self.fps,
                codec="libx264",
                pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p",
                quality=None,
                macro_block_size=1,
                ffmpeg_log_level="error",
                # veryfast: about 3x faster than x264's default at the same CRF, for files a
                # little larger; encoding otherwise rivals a small model's generation time
                output_params=[
                    "-crf",
                    str(self.quality),
                    "-preset",
                    "veryfast",
                    "-vf",
                    pad,
                    "-movflags",
                    "+faststart",
                ],
            )
            self._gen.send(None)
        elif (h, w) != self._size:
            raise ValueError(
                f"frame {self.frames} is {w}x{h}, the video is {self._size[1]}x{self._size[0]}"
            )
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> Path:
        if self._gen is None:
            self.abort()
            raise WorldStudioError(f"{self.path}: no frames to write")
        self._gen.close()
        self._gen = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._gen is not None:
            try:
                self._gen.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                pass
            self._gen = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> Path:
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    frames: int
    faststart: bool


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Codec, pixel format, size, fps and the exact number of decoded frames."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such video")
    proc = subprocess.run(
        [_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    m = re.search(
        r"Video: (\w+)[^,]*, (\w+)[^,]*(?:\([^)]*\))?, (\d+)x(\d+).*?([\d.]+) fps", proc.stderr
    )
    if not m:
        raise FormatError(f"{path}: not a readable video")
    frames, _secs = imageio_ffmpeg.count_frames_and_secs(str(path))
    head = path.read_bytes()[:4096]
    # faststart puts the 'moov' atom before 'mdat'.
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    return VideoInfo(
        codec=m.group(1),
        pix_fmt=m.group(2),
        width=int(m.group(3)),
        height=int(m.group(4)),
        fps=float(m.group(5)),
        frames=int(frames),
        faststart=moov != -1 and (mdat == -1 or moov < mdat),
    )


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode an mp4 to RGB uint8 frames."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    w, h = meta["size"]
    for buf in reader:
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
