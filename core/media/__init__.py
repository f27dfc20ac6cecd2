"""Video in and out: H.264 mp4 writing, decoding and probing (FORMATS.md).

Every domain that reads or writes video (generation, interop, training, the studio's player)
goes through here, so none of them needs another for it.
"""

from worldstudio.core.media.video import (
    VideoInfo,
    VideoReader,
    VideoWriter,
    ffmpeg_exe,
    ffmpeg_version,
    probe_video,
    read_frames,
    write_mp4,
)

__all__ = [
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "ffmpeg_exe",
    "ffmpeg_version",
    "probe_video",
    "read_frames",
    "write_mp4",
]
