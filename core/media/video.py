"""H.264 mp4 through the ffmpeg binary that imageio-ffmpeg ships (FORMATS.md): yuv420p and
faststart, so browsers and every player open the files; decoding to RGB uint8 frames; probing.

Every ffmpeg is started by :func:`_spawn`: a plain ``subprocess.Popen`` in a new session, never
with a ``preexec_fn``. A ``preexec_fn`` makes Python really ``fork()``; OpenBLAS's fork handler
then shuts its thread pool down under a matrix product running in another thread, and that
product never returns (STACK.md, "Threads and child processes"). imageio-ffmpeg's
``write_frames`` and ``read_frames`` start ffmpeg exactly that way, so only its
``get_ffmpeg_exe`` is used here.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from worldstudio.core.errors import FormatError, WorldStudioError
from worldstudio.core.fileio import check_output_path, clean_leftovers, temp_prefix

_VIDEO_LINE = re.compile(r"Video: (\w+)[^,]*, (\w+)[^,]*(?:\([^)]*\))?, (\d+)x(\d+).*?([\d.]+) fps")
_RATE = re.compile(r" ([0-9]+\.?[0-9]*) (fps|tbr)")


def ffmpeg_exe() -> str:
    """The ffmpeg binary: imageio-ffmpeg's bundled one (or ``IMAGEIO_FFMPEG_EXE``)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ffmpeg_version(timeout: float = 10.0) -> str:
    """The first line of ``ffmpeg -version`` without its copyright (e.g. "ffmpeg version 7.0.2"),
    read by a child started like every other ffmpeg here (imageio-ffmpeg's ``get_ffmpeg_version``
    uses a ``preexec_fn``)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-version"],
        capture_output=True,
        timeout=timeout,
        start_new_session=True,
        check=True,
    )
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0].split(" Copyright")[0].strip() if lines else "no version line"


def _spawn(
    args: Sequence[str],
    *,
    stdin: int | IO[bytes] = subprocess.DEVNULL,
    stdout: int | IO[bytes] = subprocess.DEVNULL,
    stderr: int | IO[bytes] = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """ffmpeg with ``args``. Its own session keeps a Ctrl+C in the terminal away from it (the
    job then closes or kills it itself); no ``preexec_fn`` (see the module docstring)."""
    return subprocess.Popen(
        [ffmpeg_exe(), *args],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def _log_text(log: IO[bytes], limit: int = 400) -> str:
    """The last lines ffmpeg wrote to ``log`` (a temp file), on one line."""
    log.flush()
    log.seek(0)
    lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines()]
    text = " | ".join(ln for ln in lines if ln)
    return text[-limit:] if text else "no message"


def _rate(fps: float) -> str:
    """fps as ffmpeg's rational (29.97 -> 2997/100), so it is not rounded."""
    return str(Fraction(fps).limit_denominator())


_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
"""ffmpeg's container for a video's suffix (mp4 for any other)."""


class VideoWriter:
    """Write RGB uint8 frames one at a time to an H.264 yuv420p faststart mp4.

    The file appears under its name only when :meth:`close` succeeds (written to a temp name
    first), so a failed or cancelled render never leaves a half-written video behind.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, quality: int = 18):
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.frames = 0
        # our temporary name (with this process's id): a killed render's file is removed by
        # the next write into the folder; the container is named with -f, not by the suffix
        self._tmp = self.path.with_name(
            f"{temp_prefix(self.path.name)}{secrets.token_hex(4)}.partial"
        )
        self._format = _CONTAINERS.get(self.path.suffix.lower(), "mp4")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._size: tuple[int, int] | None = None
        check_output_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            clean_leftovers(self.path.parent)
            self._tmp.touch()
        except OSError as exc:
            raise WorldStudioError(
                f"{self.path}: cannot write here ({exc.strerror or exc})"
            ) from exc

    def _start(self, h: int, w: int) -> subprocess.Popen[bytes]:
        # yuv420p needs even sizes: odd ones are padded by one pixel.
        pad = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
        args = [
            "-y",
            "-f",
            "rawvideo",
            "-vcodec",
            "rawvideo",
            "-s",
            f"{w}x{h}",
            "-pix_fmt",
            "rgb24",
            "-r",
            _rate(self.fps),
            "-i",
            "-",
            "-an",
            "-vcodec",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-v",
            "error",
            "-crf",
            str(self.quality),
            # veryfast: about 3x faster than x264's default at the same CRF, for files a
            # little larger; encoding otherwise rivals a small model's generation time
            "-preset",
            "veryfast",
            "-vf",
            pad,
            "-movflags",
            "+faststart",
            "-f",
            self._format,
            str(self._tmp),
        ]
        self._log = tempfile.TemporaryFile()
        self._size = (h, w)
        self._proc = _spawn(args, stdin=subprocess.PIPE, stderr=self._log)
        return self._proc

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        proc = self._proc
        if proc is None:
            proc = self._start(h, w)
        elif (h, w) != self._size:
            sh, sw = self._size or (0, 0)
            raise ValueError(f"frame {self.frames} is {w}x{h}, the video is {sw}x{sh}")
        assert proc.stdin is not None
        try:
            proc.stdin.write(np.ascontiguousarray(frame).data)
        except OSError as exc:  # ffmpeg stopped (a full disk, say): its message says why
            proc.wait()
            raise WorldStudioError(f"{self.path}: ffmpeg stopped ({self._message()})") from exc
        self.frames += 1

    def _message(self) -> str:
        return _log_text(self._log) if self._log is not None else "no message"

    def close(self) -> Path:
        proc = self._proc
        if proc is None:
            self.abort()
            raise WorldStudioError(f"{self.path}: no frames to write")
        self._proc = None
        assert proc.stdin is not None
        try:
            proc.stdin.close()
        except OSError:
            pass  # ffmpeg already stopped: its exit status says how
        status = proc.wait()
        if status != 0:
            message = self._message()
            self._discard()
            raise WorldStudioError(f"{self.path}: ffmpeg failed ({message})")
        self._close_log()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass  # the pipe is broken: ffmpeg is gone anyway
            proc.wait()
        self._discard()

    def _discard(self) -> None:
        self._close_log()
        self._tmp.unlink(missing_ok=True)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_mp4(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float) -> Path:
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def _header(path: Path) -> str:
    """What ``ffmpeg -i`` says about a file (its stream lines)."""
    with tempfile.TemporaryFile() as log:
        _spawn(["-hide_banner", "-nostdin", "-i", str(path)], stderr=log).wait()
        log.seek(0)
        return log.read().decode("utf-8", "replace")


def _video_line(path: Path, header: str) -> str:
    for line in header.splitlines():
        if " Video: " in line:
            return line
    raise FormatError(f"{path}: not a readable video")


class VideoReader:
    """Decode a video to RGB uint8 ``(H, W, 3)`` frames, in order::

        with VideoReader(path) as video:
            for frame in video: ...

    ``fps`` (0.0 when the file does not say) is known on opening. Frames have the decoded size,
    after any rotation the file asks for. Stopping early (leaving the ``with``) stops ffmpeg.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"{self.path}: no such video")
        line = _video_line(self.path, _header(self.path))
        m = _RATE.search(line)
        self.fps = float(m.group(1)) if m else 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        # PPM frames carry their own size, so nothing has to be parsed from ffmpeg's log
        args = ["-v", "error", "-nostdin", "-i", str(self.path), "-map", "0:v:0"]
        args += ["-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "-"]
        with tempfile.TemporaryFile() as log:
            proc = self._proc = _spawn(args, stdout=subprocess.PIPE, stderr=log)
            assert proc.stdout is not None
            try:
                while (frame := self._read_ppm(proc.stdout)) is not None:
                    yield frame
                if proc.wait() != 0:
                    raise FormatError(f"{self.path}: decoding failed ({_log_text(log)})")
            finally:
                self.close()

    def _read_ppm(self, stream: IO[bytes]) -> np.ndarray | None:
        magic = stream.readline()
        if not magic:
            return None
        dims = stream.readline().split()
        maxval = stream.readline().strip()
        if magic != b"P6\n" or len(dims) != 2 or maxval != b"255":
            raise FormatError(f"{self.path}: unexpected frame data from ffmpeg")
        w, h = int(dims[0]), int(dims[1])
        data = stream.read(w * h * 3)
        if len(data) != w * h * 3:
            raise FormatError(f"{self.path}: a frame is cut short")
        return np.frombuffer(data, np.uint8).reshape(h, w, 3)

    def close(self) -> None:
        """Stop decoding (ffmpeg is killed when it is still running)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Decode a video to RGB uint8 frames (ffmpeg stops when the iterator is closed)."""
    with VideoReader(path) as video:
        yield from video


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    frames: int
    faststart: bool


def _count_frames(path: Path) -> int:
    """The number of video frames, by reading every packet (no decoding)."""
    with tempfile.TemporaryFile() as log:
        args = ["-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
        if _spawn(args, stderr=log).wait() != 0:
            raise FormatError(f"{path}: not a readable video ({_log_text(log)})")
        log.seek(0)
        counts = re.findall(rb"frame=\s*(\d+)", log.read())
    if not counts:
        raise FormatError(f"{path}: ffmpeg did not report a frame count")
    return int(counts[-1])


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Codec, pixel format, size, fps and the exact number of frames."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such video")
    m = _VIDEO_LINE.search(_header(path))
    if not m:
        raise FormatError(f"{path}: not a readable video")
    with open(path, "rb") as f:
        head = f.read(4096)
    # faststart puts the 'moov' atom before 'mdat'.
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    return VideoInfo(
        codec=m.group(1),
        pix_fmt=m.group(2),
        width=int(m.group(3)),
        height=int(m.group(4)),
        fps=float(m.group(5)),
        frames=_count_frames(path),
        faststart=moov != -1 and (mdat == -1 or moov < mdat),
    )
