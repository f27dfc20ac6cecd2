"""What a play session writes beside its run (DeepVerse's outputs, in the studio's terms).

In the output folder (default ``<run>/play/``)::

    video.mp4            every frame of the session (a copy of the run's final.mp4)
    depth.mp4            the world's depth in each frame, colour-mapped (inverse depth: near is
                         bright; black: unknown), frame for frame with video.mp4
    depth/frame_XXXXXX.png
                         the same depth as 16-bit greyscale PNGs: depth = value * scale world
                         units, 0 unknown (``depth/scale.json`` says the scale and the colour range)
    world/frame_XXXXXX.ply
                         the world every ``ply_every`` frames (frames 0, N, 2N, ...): the static
                         world after that frame's chunk and each entity's points at that frame
                         (binary PLY, ``entity_id`` -1 for the static world, else the entity's
                         index in play.json's ``entities``)
    video_actions.mp4    (optional) the video with each frame's action drawn on it
    play.json            the session: actions, frames, chunk latencies, FPS, the files

The world's depth per frame is :attr:`worldstudio.core.generation.observer.RoundOutcome.depth`.
Everything is written in one background thread, chunk by chunk, so the engine goes on meanwhile.
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worldstudio.core.play.overlay import draw_action

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.media import VideoWriter
    from worldstudio.core.play.sources import PlayChunk

DEPTH_SCALE = 0.001
"""World units per count of the 16-bit depth PNGs (a millimetre in a metric world; the largest
depth they hold is 65.535 units)."""
PLY_EVERY = 8

# the depth video's colour map: inverse depth 0 (far) .. 1 (near) through these colours
_MAP_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_MAP_COLOURS = np.array(
    [[20, 12, 60], [70, 40, 150], [40, 130, 190], [120, 210, 110], [250, 240, 90]], np.float64
)


def depth_to_png(depth: np.ndarray, scale: float = DEPTH_SCALE) -> np.ndarray:
    """(H, W) float depth -> uint16 counts of ``scale`` (0: unknown, clipped at 65535)."""
    d = np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    counts = np.rint(np.where(d > 0, d / scale, 0.0))
    return np.clip(counts, 0, 65535).astype(np.uint16)


def colour_range(depth: np.ndarray) -> tuple[float, float]:
    """(near, far) for the colour map: the 2nd and 98th percentiles of the known depth."""
    d = np.asarray(depth)
    known = d[np.isfinite(d) & (d > 0)]
    if known.size == 0:
        return 0.1, 100.0
    near, far = np.percentile(known, [2.0, 98.0])
    near = max(float(near), 1e-3)
    return near, max(float(far), near * 1.5)


def _colour_table() -> np.ndarray:
    """(257, 3) uint8: the map at 256 steps of inverse depth, then black (unknown)."""
    t = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(t, _MAP_STOPS, _MAP_COLOURS[:, c]) for c in range(3)], axis=-1)
    return np.concatenate([table.round().astype(np.uint8), np.zeros((1, 3), np.uint8)])


_TABLE = _colour_table()


def colour_depth(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """(..., H, W) depth -> (..., H, W, 3) uint8: inverse depth between ``far`` and ``near``
    through a dark-blue-to-yellow map (256 steps); black where the depth is unknown."""
    d = np.asarray(depth, np.float32)
    known = np.isfinite(d) & (d > 0)
    inv = 1.0 / np.where(known, d, np.float32(far))
    t = (inv - np.float32(1.0 / far)) * np.float32(255.0 / (1.0 / near - 1.0 / far))
    index = np.clip(np.rint(t), 0, 255).astype(np.int16)
    index[~known] = 256
    return _TABLE[index]


class PlayOutputs:
    """Writes a session's outputs (module docstring) as its chunks arrive (:meth:`add`, from the
    engine's thread), in a background thread. ``entity_ids`` fixes the PLY's entity indices."""

    def __init__(
        self,
        out: str | Path,
        fps: int,
        entity_ids: list[str],
        ply_every: int = PLY_EVERY,
        depth: bool = True,
        overlay: bool = False,
    ):
        self.out = Path(out)
        self.fps = fps
        self.entity_ids = list(entity_ids)
        self.ply_every = int(ply_every)
        self.depth = depth
        self.overlay = overlay
        self.range: tuple[float, float] | None = None
        self.frames = 0
        self.ply_files: list[Path] = []
        self.depth_pngs = 0
        self._videos: dict[str, VideoWriter] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldstudio-play")
        self._futures: list[Future[None]] = []
        self.out.mkdir(parents=True, exist_ok=True)

    @property
    def depth_dir(self) -> Path:
        return self.out / "depth"

    @property
    def world_dir(self) -> Path:
        return self.out / "world"

    def add(self, chunk: PlayChunk) -> None:
        """Queue one chunk's outputs (a background task's failure surfaces here or at finish)."""
        self._check()
        self._futures.append(self._pool.submit(self._write_chunk, chunk))

    def _check(self) -> None:
        pending = []
        for f in self._futures:
            if f.done():
                f.result()
            else:
                pending.append(f)
        self._futures = pending

    def _video(self, name: str) -> VideoWriter:
        from worldstudio.core.media import VideoWriter

        if name not in self._videos:
            self._videos[name] = VideoWriter(self.out / name, self.fps)
        return self._videos[name]

    def _write_chunk(self, chunk: PlayChunk) -> None:
        from PIL import Image

        from worldstudio.core.pointcloud import PointCloud, write_ply

        outcome = chunk.outcome
        assert outcome is not None, "a play chunk carries the round's outcome"
        if self.depth:
            if self.range is None:
                self.range = colour_range(outcome.depth)
            self.depth_dir.mkdir(exist_ok=True)
            coloured = colour_depth(outcome.depth, *self.range)
            video = self._video("depth.mp4")
            for i, k in enumerate(outcome.frame_indices):
                Image.fromarray(depth_to_png(outcome.depth[i])).save(
                    self.depth_dir / f"frame_{int(k):06d}.png", compress_level=1
                )
                self.depth_pngs += 1
                video.write(coloured[i])
        if self.overlay:
            video = self._video("video_actions.mp4")
            for i in range(len(chunk.frames)):
                video.write(draw_action(chunk.frames[i], chunk.steps[i]))
        if self.ply_every > 0:
            self.world_dir.mkdir(exist_ok=True)
            for i, k in enumerate(outcome.frame_indices):
                if int(k) % self.ply_every:
                    continue
                clouds = [outcome.static]
                for j, eid in enumerate(self.entity_ids):
                    ent = outcome.entities.get(eid)
                    if ent is not None and len(ent[i]):
                        clouds.append(
                            PointCloud(ent[i].xyz, ent[i].rgb, np.full(len(ent[i]), j, np.int32))
                        )
                path = self.world_dir / f"frame_{int(k):06d}.ply"
                write_ply(path, PointCloud.concat(clouds))
                self.ply_files.append(path)
        self.frames += len(chunk.frames)

    def _drain(self) -> None:
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001 - wait for the others, then raise
                error = error or exc
        if error is not None:
            raise error

    def finish(self, final_mp4: Path | None) -> dict[str, Any]:
        """Every chunk written: the videos close, the run's video is copied in; returns the files
        (for play.json)."""
        from worldstudio.core.project.runs import write_json

        try:
            self._drain()
            for video in self._videos.values():
                video.close()
        except BaseException:
            self.abort()
            raise
        finally:
            self._pool.shutdown(wait=True)
        files: dict[str, Any] = {}
        if final_mp4 is not None and Path(final_mp4).is_file():
            shutil.copyfile(final_mp4, self.out / "video.mp4")
            files["video"] = "video.mp4"
        if self.depth and self.range is not None:
            write_json(
                self.depth_dir / "scale.json",
                {
                    "png": {"scale": DEPTH_SCALE, "unit": "world units per count", "unknown": 0},
                    "video": {
                        "near": self.range[0],
                        "far": self.range[1],
                        "mapping": "inverse depth from far (dark) to near (bright); black: unknown",
                    },
                },
            )
            files.update(depth_video="depth.mp4", depth_pngs="depth/", depth_frames=self.depth_pngs)
        if self.ply_every > 0:
            files.update(
                world_plys="world/", ply_every=self.ply_every, ply_snapshots=len(self.ply_files)
            )
        if self.overlay:
            files["video_actions"] = "video_actions.mp4"
        return files

    def abort(self) -> None:
        """A failed or cancelled session: the unfinished videos go (the PNGs and PLYs stay)."""
        for f in self._futures:
            f.cancel()
        self._pool.shutdown(wait=True)
        for video in self._videos.values():
            video.abort()
        self._videos.clear()
