"""A play session as a job: the world engine driven chunk by chunk by actions.

``play_job(project, PlayOptions(actions="(FN)(FN)(fLN)"))`` plays an action string headless
(DeepVerse's ``run.py`` in the studio's terms); ``PlayOptions(keys=KeyState(), pacer=Pacer())``
plays live from the keys until :meth:`PlaySession.stop`. Either way the session is an ordinary
run of the engine (a chunk is a round of ``chunk_frames`` = 4k+1 frames, monitors and all):
frames, the world state per chunk, resumable with ``generate --resume``; its poses are recorded
beside run.json, and its outputs (:mod:`.outputs`) and ``play.json`` go to ``out`` (default
``<run>/play/``).

Each chunk is also told to the front end as a ``play_chunk`` event (round, first_frame, frames,
steps, latency, fps) as soon as its frames are generated, before the world grows from them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.backends import Backend
from worldstudio.core.generation.engine import RunOptions, RunResult, generate_job
from worldstudio.core.jobs import JobContext, Report
from worldstudio.core.play.backends import chunk_frames_for, run_fields
from worldstudio.core.play.controls import (
    KeyState,
    Motion,
    PlayStep,
    StepPath,
    format_steps,
    steps_from_actions,
)
from worldstudio.core.play.outputs import PLY_EVERY, PlayOutputs
from worldstudio.core.play.sources import LiveObserver, Pacer, PlannedObserver, PlayChunk
from worldstudio.core.project import Project, ProjectFolder

PLAY_FILE = "play.json"
FRAMES_PER_ACTION = 8
STEP_LENGTH = 0.25  # world units per 8 frames (``path --actions``'s step at 8 frames a step)
TURN_DEGREES = 15.0  # degrees per 8 frames


@dataclass
class PlayOptions:
    """A session. Headless: ``actions`` (an action string or steps). Live: ``keys`` (and a
    ``pacer`` when a screen plays the chunks). Motion: ``step_length`` and ``turn_degrees`` per
    step (default: 0.25 units and 15 degrees per 8 frames, so the speed does not depend on
    ``frames_per_action``). Backend settings left None come from :mod:`.backends` and the
    project."""

    actions: str | Sequence[PlayStep] | None = None
    keys: KeyState | None = None
    pacer: Pacer | None = None
    frames_per_action: int = FRAMES_PER_ACTION
    step_length: float | None = None
    turn_degrees: float | None = None
    start_c2w: np.ndarray | None = (
        None  # default: the path's first keyframe, else the source camera
    )
    fov: float | None = None
    chunk_frames: int | None = None  # default: the backend's (9 or 17)
    # a name (default: the project's), or a loaded Backend object (the caller closes it: a front
    # end keeps a model loaded from one session to the next)
    backend: str | Backend | None = None
    model: str | None = None
    # a quality preset: "full", "fast" or "draft" (default: the backend's play quality, else
    # the project's; :mod:`.backends`)
    quality: str | None = None
    steps: int | None = None
    guidance: float | None = None
    loras: list[tuple[str, float]] | None = None
    profile: str | None = None
    size: tuple[int, int] | None = None
    seed: int | None = None
    monitors: bool = True
    lifter: str | None = None
    out: str | os.PathLike[str] | None = None  # default: <run>/play
    depth: bool = True
    ply_every: int = PLY_EVERY  # 0: no world snapshots
    overlay: bool = False
    on_chunk: Callable[[PlayChunk], None] | None = None  # called in the engine's thread
    # fit keyframes to the played poses at the end (PlayResult.keyframes), in the job's thread
    fit_keyframes: bool = False
    fit_tolerance: float = 0.01  # world units (and degrees / 20) a fitted path may be off

    def motion(self, project: Project) -> Motion:
        fpa = int(self.frames_per_action)
        if fpa < 1:
            raise WorldStudioError(f"--frames-per-action must be at least 1, got {fpa}")
        per = fpa / FRAMES_PER_ACTION
        settings = project.camera_path.settings
        return Motion(
            step_length=STEP_LENGTH * per if self.step_length is None else self.step_length,
            turn_degrees=TURN_DEGREES * per if self.turn_degrees is None else self.turn_degrees,
            frames_per_action=fpa,
            fps=settings.fps,
            tension=settings.tension,
        )


@dataclass
class PlayResult:
    """What a session made: the run, the output folder, its actions and its timings."""

    run: RunResult
    out: Path
    actions: str  # the DeepVerse action string of every step
    extras: list[str]  # per step: "U"/"D" (rise) and "^"/"v" (pitch), "" for none
    frames: int
    c2w: np.ndarray  # (frames, 4, 4) the camera of each frame played
    fov: np.ndarray  # (frames,)
    chunk_latencies: list[float]
    first_chunk_seconds: float  # from the session's start (loading included) to the first chunk
    sustained_fps: float | None  # frames after the first chunk per second of wall time
    files: dict[str, Any] = field(default_factory=dict)
    keyframes: list[Any] | None = None  # fitted to the played poses (PlayOptions.fit_keyframes)


def start_pose(project: Project) -> tuple[np.ndarray, float]:
    """Where a session starts: the camera path's first keyframe (as ``path --actions``), else the
    source camera (the identity pose, the source image's fov)."""
    from worldstudio.core.geometry.path import keyframe_pose

    if project.camera_path.keyframes:
        kf = project.camera_path.keyframes[0]
        return keyframe_pose(kf), float(kf.fov)
    return np.eye(4), source_fov(project)


def source_fov(project: Project) -> float:
    from worldstudio.core.geometry.camera import fov_from_intrinsics

    if project.intrinsics is None:
        return 60.0
    return float(fov_from_intrinsics(np.array(project.intrinsics.K), project.intrinsics.height))


class _Stats:
    """Chunk latencies and the sustained frame rate."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.latencies: list[float] = []
        self.done_at: list[float] = []
        self.frames: list[int] = []

    def add(self, chunk: PlayChunk) -> None:
        self.latencies.append(chunk.latency)
        self.done_at.append(chunk.done_at)
        self.frames.append(len(chunk.frames))

    @property
    def first_chunk_seconds(self) -> float:
        return self.done_at[0] - self.t0 if self.done_at else 0.0

    @property
    def sustained_fps(self) -> float | None:
        """Frames of the chunks after the first over the time they took."""
        if len(self.done_at) < 2 or self.done_at[-1] <= self.done_at[0]:
            return None
        return sum(self.frames[1:]) / (self.done_at[-1] - self.done_at[0])


class PlaySession:
    """One session (a job: ``session(ctx) -> PlayResult``). :meth:`stop` ends a live one at the
    next chunk boundary."""

    def __init__(self, project_folder: str | os.PathLike[str], options: PlayOptions):
        self.folder = ProjectFolder(project_folder)
        self.options = options
        if (options.actions is None) == (options.keys is None):
            raise WorldStudioError("a play session needs either actions or live keys")
        self.project = self.folder.load()
        o = options
        given = o.backend or self.project.generation.backend
        self.backend = given if isinstance(given, str) else given.name
        self.chunk_frames = o.chunk_frames or chunk_frames_for(self.backend)
        self.fields = run_fields(
            self.backend, o.quality, o.model, o.steps, o.guidance, o.loras, o.profile
        )
        # a session is a new run: the project's quality unless the session names one
        self.quality: str = self.fields.get("quality") or self.project.generation.quality
        start, fov = start_pose(self.project)
        if o.start_c2w is not None:
            start = np.asarray(o.start_c2w, np.float64)
        if o.fov is not None:
            fov = float(o.fov)
        self.path = StepPath(start, fov, o.motion(self.project))
        if o.actions is not None:
            steps = steps_from_actions(o.actions) if isinstance(o.actions, str) else list(o.actions)
            if not steps:
                raise WorldStudioError("play: no actions to play")
            self.path.extend(steps)
            self.source: PlannedObserver | LiveObserver = PlannedObserver(
                self.path, self.chunk_frames, self._on_chunk, on_frames=self._on_frames
            )
        else:
            assert o.keys is not None
            self.source = LiveObserver(
                self.path, o.keys, self._on_chunk, o.pacer, on_frames=self._on_frames
            )
        if o.out is not None:
            out = Path(o.out)
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise WorldStudioError(
                    f"--out {out}: exists and is not an empty folder (choose a new one)"
                )
        self.stats = _Stats()
        self.outputs: PlayOutputs | None = None
        self.run_dir: Path | None = None
        self.ctx: JobContext | None = None

    def stop(self) -> None:
        """A live session ends after the chunk under way (a headless one plays to its end)."""
        if isinstance(self.source, LiveObserver):
            self.source.stop()

    # -- the engine's reports ------------------------------------------------------------
    def _forward(self, report: Report) -> None:
        ctx = self.ctx
        assert ctx is not None
        if report.kind == "event":
            if report.message == "run_started":
                self._open_outputs(Path(report.data["run_dir"]))
            ctx.event(report.message, **report.data)
        elif report.kind == "progress":
            ctx.progress(report.done, report.total, report.message)
        elif report.kind == "preview":
            ctx.preview(report.payload, report.message)
        else:
            ctx.log(report.message)

    def _open_outputs(self, run_dir: Path) -> None:
        o = self.options
        self.run_dir = run_dir
        out = Path(o.out) if o.out is not None else run_dir / "play"
        self.outputs = PlayOutputs(
            out,
            self.project.generation.fps,
            [e.id for e in self.project.entities],
            ply_every=o.ply_every,
            depth=o.depth,
            overlay=o.overlay,
        )

    def _on_chunk(self, chunk: PlayChunk) -> None:
        """(the engine's thread) A chunk's round is written: its outputs."""
        if self.outputs is not None:
            self.outputs.add(chunk)
        if self.options.on_chunk is not None:
            self.options.on_chunk(chunk)

    def _on_frames(self, chunk: PlayChunk) -> None:
        """(the engine's thread) A chunk's frames are generated: the stats and the front end."""
        self.stats.add(chunk)
        assert self.ctx is not None
        self.ctx.event(
            "play_chunk",
            round=chunk.round,
            first_frame=chunk.first_frame,
            frames=chunk.frames,
            steps=[s.text + s.extras for s in chunk.steps],
            latency=chunk.latency,
            fps=self.stats.sustained_fps,
        )

    # -- the job -------------------------------------------------------------------------
    def __call__(self, ctx: JobContext) -> PlayResult:
        self.ctx = ctx
        self.stats = _Stats()
        o = self.options
        options = RunOptions(
            backend=o.backend or self.backend,
            frames_per_round=self.chunk_frames,
            size=o.size,
            seed=o.seed,
            monitors=o.monitors,
            lifter=o.lifter,
            observer=self.source,
            inspection_videos=False,
            **self.fields,
        )
        try:
            result = generate_job(self.folder.root, options)(ctx.child(self._forward))
        except BaseException:
            if self.outputs is not None:
                self.outputs.abort()
            raise
        assert self.outputs is not None, "the engine names its run before any chunk"
        files = self.outputs.finish(result.final_mp4)
        played_cams = self.source.played(result.rounds_done)
        steps = self.path.steps
        played = PlayResult(
            run=result,
            out=self.outputs.out,
            actions=format_steps(steps),
            extras=[s.extras for s in steps],
            frames=result.rounds_done * self.chunk_frames,
            c2w=played_cams.c2w,
            fov=played_cams.fov,
            chunk_latencies=list(self.stats.latencies),
            first_chunk_seconds=self.stats.first_chunk_seconds,
            sustained_fps=self.stats.sustained_fps,
            files=files,
        )
        if o.fit_keyframes and len(played.c2w) >= 2:
            from worldstudio.core.geometry.path import fit_keyframes

            ctx.progress(0, 1, "fitting keyframes to the played camera")
            played.keyframes = fit_keyframes(
                played.c2w,
                played.fov,
                self.path.motion.fps,
                tolerance_pos=o.fit_tolerance,
                tolerance_deg=o.fit_tolerance * 50.0,
                tension=self.path.motion.tension,
            )
        self._write_record(played)
        ctx.event("output", path=str(played.out / PLAY_FILE), what="play session")
        return played

    def _write_record(self, played: PlayResult) -> None:
        from worldstudio.core.project.runs import write_json

        m = self.path.motion
        write_json(
            played.out / PLAY_FILE,
            {
                "format": "worldstudio.play",
                "version": 1,
                "run": played.run.run_id,
                "run_dir": str(played.run.run_dir),
                "mode": "live" if isinstance(self.source, LiveObserver) else "actions",
                "backend": self.backend,
                "quality": self.quality,
                "actions": played.actions,
                "extras": played.extras if any(played.extras) else None,
                "frames_per_action": m.frames_per_action,
                "step_length": m.step_length,
                "turn_degrees": m.turn_degrees,
                "fps": m.fps,
                "chunk_frames": self.chunk_frames,
                "chunks": len(played.chunk_latencies),
                "frames": played.frames,
                "frame_actions": [
                    self.path.step_of_frame(k).text + self.path.step_of_frame(k).extras
                    for k in range(played.frames)
                ],
                "entities": [e.id for e in self.project.entities],
                "timings": {
                    "chunk_latency_s": [round(v, 4) for v in played.chunk_latencies],
                    "first_chunk_s": round(played.first_chunk_seconds, 4),
                    "sustained_fps": None
                    if played.sustained_fps is None
                    else round(played.sustained_fps, 3),
                },
                "files": played.files,
            },
        )


def play_job(project_folder: str | os.PathLike[str], options: PlayOptions) -> PlaySession:
    """A play session as a job (see :class:`PlaySession`; keep it to :meth:`~PlaySession.stop`
    a live one)."""
    return PlaySession(project_folder, options)
