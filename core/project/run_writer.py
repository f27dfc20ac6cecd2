"""Writing a run folder (layout in :mod:`worldstudio.core.project.runs`) while the engine
generates it.

- run.json (:class:`~worldstudio.core.project.runs.RunRecord`) when the run starts, after each
  round, and with its final status (complete, failed, cancelled);
- each round's lossless state (frames, coverage, the points it added to the static world, entity
  tracks) before the round counts; the static world before round 0 once, beside run.json;
- the round's videos, then round.json with ``"complete": true`` (atomically, last), in one
  background thread, so that ffmpeg encodes while the next round generates;
- the final videos, fed as the rounds finish (temp names until the run completes);
- reading a round's state back, to resume or branch a run.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.project.runs import (
    Points,
    RunError,
    RunFolder,
    RunRecord,
    load_npy,
    load_npz,
    pack_clouds,
    save_npy,
    save_npz,
    save_npz_compressed,
    write_json,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.media import VideoWriter
    from worldstudio.core.pointcloud import PointCloud


@dataclass
class ContextProjections:
    """The projections of a camera's last P frames of a round, frame for frame: what the next
    round's call of that camera gets beside those frames (its ``previous_control_rgb``,
    ``previous_foreground_rgb`` and ``previous_foreground_labels``)."""

    scene_rgb: np.ndarray  # (P, H, W, 3) uint8: the scene projection
    fg_rgb: np.ndarray  # (P, H, W, 3) uint8: the foreground projection, black where no entity
    fg_labels: np.ndarray  # (P, H, W) int16: >= 0 where an entity is, -1 elsewhere

    def __len__(self) -> int:
        return len(self.scene_rgb)

    def last(self, n: int) -> ContextProjections:
        """The last ``n`` frames (copies)."""
        return ContextProjections(
            self.scene_rgb[-n:].copy(), self.fg_rgb[-n:].copy(), self.fg_labels[-n:].copy()
        )


@dataclass
class RoundState:
    """What round r leaves behind, losslessly: what the next round and a resume need."""

    observer: np.ndarray  # (F, H, W, 3) uint8
    coverage: np.ndarray  # (F, H, W) bool: where the conditioning render drew a point
    monitors: dict[str, np.ndarray]  # monitor id -> (F, H, W, 3) uint8
    static: PointCloud  # the static cloud after the round
    tracks: dict[str, Sequence[Points]]  # entity id -> its cloud in each frame
    state: dict[str, Points]  # entity id -> its cloud carried to the next round
    state_time: dict[str, float]  # entity id -> world time of that state
    times: np.ndarray  # (F,) world seconds of the round's frames
    # how many points at the end of ``static`` the round added; the rest is the static world
    # before it (before round 0: the run's base, written once)
    static_added: int = 0
    voxel_size: float | None = None  # the voxel edge the static world grows in
    # camera ("observer" or "monitor-<id>") -> the control video (N, H, W, 3) uint8 and mask
    # (N, H, W) bool its model received (N may exceed F: leading context frames)
    conditioning: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    views: dict[str, np.ndarray] | None = None  # packed reference views (views.npz)
    # camera ("observer" or "monitor-<id>") -> the projections of its last context frames
    context: dict[str, ContextProjections] = field(default_factory=dict)


@dataclass
class SavedRound:
    """The world as a round left it (what a resume or a branch starts from)."""

    static: PointCloud
    entities: dict[str, tuple[np.ndarray, np.ndarray, float]]  # id -> xyz, rgb, state time
    observer: np.ndarray | None  # the round's last ``context`` observer frames
    monitors: dict[str, np.ndarray]  # monitor id -> its last ``context`` frames
    voxel_size: float  # the voxel edge the static world grows in
    # camera ("observer" or "monitor-<id>") -> the projections of its last ``context`` frames
    # (none in runs written before they were kept)
    context: dict[str, ContextProjections] = field(default_factory=dict)


class RunWriter:
    """Writes one run. ``monitor_ids``: the run's monitors, in the order of the combined video;
    ``on_round_written(r)`` is called (in the background thread) once round r is complete on
    disk. ``inspection_videos=False`` leaves out the videos that only show what each call was
    given (renders.mp4 and conditioning/), as a play session does to keep up with real time.
    :meth:`check` and :meth:`drain` re-raise a background task's failure."""

    def __init__(
        self,
        run: RunFolder,
        record: RunRecord,
        fps: int,
        monitor_ids: Sequence[str],
        on_round_written: Callable[[int], None] | None = None,
        inspection_videos: bool = True,
    ):
        from worldstudio.core.jobs.process import this_process

        self.run = run
        self.inspection_videos = inspection_videos
        self.record = record
        record.writer = this_process().to_json()  # a run left "running" by a dead writer shows so
        self.fps = fps
        self.monitor_ids = list(monitor_ids)
        self.on_round_written = on_round_written
        self.video_seconds = 0.0  # time spent encoding round and final videos
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldstudio-persist")
        self._futures: list[Future[None]] = []
        self._finals: tuple[VideoWriter, VideoWriter] | None = None
        self._last_preview = -1e9
        self._static_points: int | None = None  # points of the static world on disk

    # -- starting ------------------------------------------------------------------------
    def copy_rounds(self, source: RunFolder, rounds: int) -> None:
        """A branch: rounds 0 .. rounds - 1 copied from its parent run."""
        self.run.path.mkdir(parents=True)
        if rounds > 0:
            self._require_incremental(source)
            for path in (source.static_base_ply, source.static_base_json):
                shutil.copy2(path, self.run.path / path.name)
        for r in range(rounds):
            shutil.copytree(source.round_dir(r), self.run.round_dir(r))

    @staticmethod
    def _require_incremental(run: RunFolder) -> None:
        if not (run.incremental_static() and run.static_base_json.is_file()):
            raise RunError(
                f"{run.path}: the run was written by an older World Studio (a whole static.ply "
                "per round); it can be viewed and exported, not resumed or branched"
            )

    def restore(self, k: int, entity_ids: Sequence[str], context: int) -> SavedRound:
        """The world after round k - 1 as persisted: the static cloud (the base and the
        additions of rounds 0 .. k - 1) and its voxel size, each entity's state, and the last
        ``context`` frames of the observer and of each of the run's monitors."""
        run, r = self.run, k - 1
        self._require_incremental(run)
        static = run.read_static(r)
        expected = run.read_round(r).get("static_points")
        if isinstance(expected, int) and expected != len(static):
            raise RunError(
                f"{run.path}: the static world after round {r + 1} has {len(static)} points on "
                f"disk, round.json says {expected}"
            )
        self._static_points = len(static)
        entities: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        for eid in entity_ids:
            path = run.entity_npz(r, eid)
            if path.is_file():
                z = load_npz(path)
                entities[eid] = (z["state_xyz"], z["state_rgb"], float(z["state_time"]))
        observer = load_npy(run.observer_npy(r))
        monitors = {}
        projections = {}
        if context > 0:
            for mid in self.monitor_ids:
                path = run.monitor_npy(r, mid)
                if path.is_file():
                    monitors[mid] = load_npy(path)[-context:]
            for camera in ["observer"] + [f"monitor-{mid}" for mid in self.monitor_ids]:
                path = run.context_npz(r, camera)
                if path.is_file():
                    z = load_npz(path)
                    projections[camera] = ContextProjections(
                        z["scene_rgb"], z["fg_rgb"], z["fg_labels"]
                    ).last(context)
        return SavedRound(
            static=static,
            entities=entities,
            observer=observer[-context:] if context > 0 else None,
            monitors=monitors,
            voxel_size=run.static_voxel_size(),
            context=projections,
        )

    def begin(self, start: int) -> None:
        """run.json says "running" with ``start`` rounds done; the final videos open and get the
        rounds already on disk (a resume or a branch) first."""
        from worldstudio.core.media import VideoWriter

        self.run.path.mkdir(parents=True, exist_ok=True)
        self._write_status("running", start)
        self._finals = (
            VideoWriter(self.run.final_mp4, self.fps),
            VideoWriter(self.run.final_combined_mp4, self.fps),
        )
        self.submit(self._feed_finals_from_disk, range(start))

    def clear_round(self, r: int) -> None:
        """Leftovers of an unfinished round r go (a crash or a cancel mid-round)."""
        self.run.clear_round(r)

    # -- each round ----------------------------------------------------------------------
    def save_state(self, r: int, state: RoundState) -> None:
        """What the next round and a resume need, losslessly (before the round counts as done)."""
        self.check()
        run = self.run
        run.clear_round(r)
        run.round_dir(r).mkdir(parents=True)
        save_npy(run.observer_npy(r), state.observer)
        save_npy(run.coverage_npy(r), state.coverage)
        for mid, frames in state.monitors.items():
            save_npy(run.monitor_npy(r, mid), frames)
        for camera, projections in state.context.items():
            path = run.context_npz(r, camera)
            path.parent.mkdir(exist_ok=True)
            save_npz_compressed(
                path,
                scene_rgb=projections.scene_rgb,
                fg_rgb=projections.fg_rgb,
                fg_labels=projections.fg_labels,
            )
        self._save_static(r, state)
        for eid, track in state.tracks.items():
            packed = pack_clouds(track)
            save_npz(
                run.entity_npz(r, eid),
                xyz=packed["xyz"],
                rgb=packed["rgb"],
                offsets=packed["offsets"],
                times=np.asarray(state.times, np.float64),
                state_xyz=state.state[eid].xyz,
                state_rgb=state.state[eid].rgb,
                state_time=np.asarray(state.state_time[eid], np.float64),
            )

    def _save_static(self, r: int, state: RoundState) -> None:
        """Round r's additions to the static world; before round 0's, the base (the static
        world before the run) and its voxel size. The static world only grows at its end, so the
        points before the additions must be those on disk."""
        from worldstudio.core.pointcloud import PointCloud, write_ply

        run, static = self.run, state.static
        before = len(static) - int(state.static_added)
        if not 0 <= before <= len(static):
            raise ValueError(
                f"round {r + 1}: {state.static_added} added static points of {len(static)}"
            )
        if r == 0:
            write_json(
                run.static_base_json,
                {"voxel_size": state.voxel_size, "points": before},
            )
            write_ply(run.static_base_ply, static.select(np.arange(before)))
            self._static_points = before
        elif self._static_points is None:
            raise RunError(f"{run.path}: round {r + 1} is written before the world was restored")
        if before != self._static_points:
            raise ValueError(
                f"round {r + 1}: the static world had {self._static_points} points on disk and "
                f"{before} before the round's additions (existing points must never change)"
            )
        added = static.select(np.arange(before, len(static)))
        write_ply(run.static_added_ply(r), PointCloud(added.xyz, added.rgb))
        self._static_points = len(static)

    def submit_round(
        self, r: int, state: RoundState, renders: np.ndarray, info: dict[str, Any]
    ) -> None:
        """In the background: the round's videos, then round.json (``info``, which says
        "complete"), then run.json; the frames also go on into the final videos."""
        self.submit(self._finish_round, r, state, renders, info)

    def _finish_round(
        self, r: int, state: RoundState, renders: np.ndarray, info: dict[str, Any]
    ) -> None:
        from worldstudio.core.media import VideoWriter

        t0 = time.perf_counter()
        run = self.run
        clips = [(run.observer_mp4(r), state.observer)]
        clips += [(run.monitor_mp4(r, mid), frames) for mid, frames in state.monitors.items()]
        if self.inspection_videos:
            clips.append((run.renders_mp4(r), renders))
            for camera, (video, mask) in state.conditioning.items():
                clips.append((run.conditioning_mp4(r, camera, "control"), video))
                clips.append((run.conditioning_mp4(r, camera, "mask"), _mask_video(mask)))
        for path, _ in clips[1:]:
            path.parent.mkdir(parents=True, exist_ok=True)
        if state.views is not None:
            save_npz(run.views_npz(r), **state.views)
        # every video's ffmpeg encodes at the same time: frames are handed round, then all close
        writers = [VideoWriter(path, self.fps) for path, _ in clips]
        try:
            for i in range(max(len(clip) for _, clip in clips)):
                for w, (_, clip) in zip(writers, clips, strict=True):
                    if i < len(clip):
                        w.write(clip[i])
            self._feed_finals(state.observer, state.monitors)
            for w in writers:
                w.close()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        info["timings"]["videos"] = round(time.perf_counter() - t0, 4)
        write_json(run.round_file(r), info)
        self._write_status("running", r + 1)
        if self.on_round_written is not None:
            self.on_round_written(r)
        self.video_seconds += time.perf_counter() - t0

    def save_preview(self, image: Any) -> None:
        """The latest live preview as preview.png (at most twice a second; best effort)."""
        now = time.monotonic()
        if now - self._last_preview < 0.5:
            return
        self._last_preview = now
        try:
            from PIL import Image

            img = np.asarray(image)
            if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
                tmp = self.run.preview_png.with_name(".preview.tmp.png")
                Image.fromarray(img).save(tmp)
                os.replace(tmp, self.run.preview_png)
        except (OSError, ValueError):
            pass

    # -- the final videos ----------------------------------------------------------------
    def _feed_finals(self, frames: np.ndarray, monitor_frames: dict[str, np.ndarray]) -> None:
        assert self._finals is not None, "begin() opens the final videos"
        final, combined = self._finals
        black = np.zeros_like(frames)
        side = np.concatenate(
            [frames] + [monitor_frames.get(mid, black) for mid in self.monitor_ids], axis=2
        )
        for i in range(frames.shape[0]):
            final.write(frames[i])
            combined.write(side[i])

    def _feed_finals_from_disk(self, rounds: range) -> None:
        run = self.run
        for r in rounds:
            monitors = {}
            for mid in self.monitor_ids:
                path = run.monitor_npy(r, mid)
                if path.is_file():
                    monitors[mid] = load_npy(path)
            self._feed_finals(load_npy(run.observer_npy(r)), monitors)

    def _close_finals(self, ok: bool) -> None:
        writers, self._finals = self._finals or (), None
        for w in writers:
            if ok:
                w.close()
            else:
                w.abort()

    # -- ending --------------------------------------------------------------------------
    def finish(self) -> None:
        """Every round is written: wait for the background tasks, close the final videos,
        run.json says "complete"."""
        self.drain()
        self._close_finals(ok=True)
        self._write_status("complete", self.record.rounds_total)

    def stop(self, status: str, error: str | None, log: Callable[[str], None]) -> None:
        """After a failure or a cancel: let the finished rounds reach "complete" on disk, drop
        the unfinished final videos, and record ``status`` (the original error is the one to
        report, so problems here only go to ``log``)."""
        try:
            self.drain()
        except BaseException as exc:  # noqa: BLE001 - the original error is the one to report
            log(f"while stopping: {type(exc).__name__}: {exc}")
        self._close_finals(ok=False)
        try:
            self._write_status(status, self.run.completed_rounds(), error)
        except (OSError, WorldStudioError) as exc:
            log(f"while stopping: run.json: {exc}")

    def close(self) -> None:
        """Stop the background thread (after :meth:`finish` or :meth:`stop`)."""
        self._pool.shutdown(wait=True)

    # -- background tasks ----------------------------------------------------------------
    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.check()
        self._futures.append(self._pool.submit(fn, *args))

    def check(self) -> None:
        pending = []
        for f in self._futures:
            if f.done():
                f.result()  # raises the task's error
            else:
                pending.append(f)
        self._futures = pending

    def drain(self) -> None:
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001 - keep waiting for the others, then raise
                error = error or exc
        if error is not None:
            raise error

    def _write_status(self, status: str, rounds_done: int, error: str | None = None) -> None:
        self.record.status = status
        self.record.rounds_done = rounds_done
        self.record.error = error
        self.run.write_meta(self.record.to_json())


def _mask_video(mask: np.ndarray) -> np.ndarray:
    """A bool mask video as RGB frames: white where the model generates, black where it keeps."""
    return np.repeat(np.where(np.asarray(mask, bool), 255, 0).astype(np.uint8)[..., None], 3, -1)
