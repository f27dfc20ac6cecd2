"""Play's observer sources (:mod:`worldstudio.core.generation.observer`): the engine asks them
for each chunk's cameras, hands them the chunk's frames as soon as they are generated (they go on
to ``on_frames``, to be shown) and what the chunk made once its round is written (``on_chunk``,
for the outputs).

:class:`PlannedObserver` (headless play): every step is known up front; the poses are the path's
baked frames, held on the last pose past its end, exactly as ``worldstudio path --actions``
bakes them.

:class:`LiveObserver` (the studio): the poses are decided chunk by chunk from the player's keys
(:class:`~worldstudio.core.play.controls.KeyState`).

Chunk r covers frames r*F .. r*F + F - 1. When the engine asks the live source for it, the
source adds steps (each the keys held, or tapped, at that moment) until those frames' poses are
final (:meth:`StepPath.final_frames`) and hands them over, so a live session's poses are those of
its action string baked as a whole.

Pacing: with a :class:`Pacer`, chunk r is decided only once chunk r - 1 has started playing, so
the next chunk is prepared while the current one plays and the keys pressed during a chunk steer
the next; a fast backend never runs ahead of the screen. Headless play has no pacer. :meth:`stop`
ends the session at the next chunk boundary (the chunk under way finishes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from worldstudio.core.generation.observer import ObserverCameras, RoundOutcome
from worldstudio.core.jobs import JobContext
from worldstudio.core.play.controls import KeyState, PlayStep, StepPath


class Pacer:
    """How far the screen has played: the front end says when a chunk starts playing
    (:meth:`playing`); the source waits for it (:meth:`wait_for`)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._playing = -1
        self._woken = False

    def playing(self, chunk: int) -> None:
        """Chunk ``chunk`` has started playing."""
        with self._cond:
            self._playing = max(self._playing, int(chunk))
            self._cond.notify_all()

    @property
    def chunk_playing(self) -> int:
        with self._cond:
            return self._playing

    def wake(self) -> None:
        """Let a waiting source go (a stop or a cancel)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def wait_for(self, chunk: int, ctx: JobContext, poll: float = 0.05) -> None:
        """Block until chunk ``chunk`` has started playing (or the job is cancelled, or woken)."""
        with self._cond:
            while self._playing < chunk and not self._woken and not ctx.cancelled:
                self._cond.wait(poll)


@dataclass
class PlayChunk:
    """One generated chunk, as a front end shows it: its frames and cameras, each frame's step,
    and how long it took (``latency``: from its cameras being decided to its frames being
    generated); ``outcome``: what the round made, once it is written."""

    round: int
    first_frame: int
    frames: np.ndarray  # (F, H, W, 3) uint8
    c2w: np.ndarray  # (F, 4, 4)
    steps: list[PlayStep]  # one per frame
    latency: float
    done_at: float  # perf_counter when it was ready
    outcome: RoundOutcome | None = field(default=None, repr=False)


class _ChunkSource:
    """What both sources share: the step path, and each chunk's reports: ``on_frames(chunk)`` as
    soon as its frames are generated (to show them), ``on_chunk(chunk)`` once the round is written
    (``chunk.outcome`` then holds the world's depth and state)."""

    kind = "play"

    def __init__(
        self,
        path: StepPath,
        on_chunk: Callable[[PlayChunk], None] | None,
        on_frames: Callable[[PlayChunk], None] | None = None,
    ):
        self.path = path
        self.on_chunk = on_chunk
        self.on_frames = on_frames
        self._decided: dict[int, float] = {}
        self._chunks: dict[int, PlayChunk] = {}
        self.handed: dict[int, ObserverCameras] = {}  # chunk -> the cameras it was given

    def _hand(self, r: int, cams: ObserverCameras) -> ObserverCameras:
        self._decided[r] = time.perf_counter()
        self.handed[r] = cams
        return cams

    def played(self, chunks: int) -> ObserverCameras:
        """The cameras of the first ``chunks`` chunks, frame by frame."""
        cams = [self.handed[r] for r in range(chunks)]
        if not cams:
            return ObserverCameras(np.zeros((0, 4, 4)), np.zeros(0))
        return ObserverCameras(
            np.concatenate([c.c2w for c in cams]), np.concatenate([c.fov for c in cams])
        )

    def first_fov(self) -> float:
        return self.path.fov

    def frames_ready(self, r: int, frames: np.ndarray) -> None:
        now = time.perf_counter()
        first = r * len(frames)
        chunk = PlayChunk(
            round=r,
            first_frame=first,
            frames=frames,
            c2w=self.handed[r].c2w,
            steps=[self.path.step_of_frame(first + i) for i in range(len(frames))],
            latency=now - self._decided.get(r, now),
            done_at=now,
        )
        self._chunks[r] = chunk
        if self.on_frames is not None:
            self.on_frames(chunk)

    def round_done(self, outcome: RoundOutcome) -> None:
        chunk = self._chunks.pop(outcome.round, None)
        if chunk is None:
            self.frames_ready(outcome.round, outcome.frames)
            chunk = self._chunks.pop(outcome.round)
        chunk.outcome = outcome
        if self.on_chunk is not None:
            self.on_chunk(chunk)


class PlannedObserver(_ChunkSource):
    """Every step known up front (headless play): the path's frames, then its last pose held,
    over ``rounds`` chunks (default: enough for every frame of the path)."""

    def __init__(
        self,
        path: StepPath,
        frames_per_chunk: int,
        on_chunk: Callable[[PlayChunk], None] | None = None,
        rounds: int | None = None,
        on_frames: Callable[[PlayChunk], None] | None = None,
    ):
        super().__init__(path, on_chunk, on_frames)
        self.c2w, self.fov = path.bake()
        self.rounds: int | None = (
            rounds if rounds is not None else -(-len(self.c2w) // int(frames_per_chunk))
        )

    def cameras(self, r: int, frames: int, ctx: JobContext) -> ObserverCameras | None:
        if self.rounds is not None and r >= self.rounds:
            return None
        idx = np.minimum(r * frames + np.arange(frames), len(self.c2w) - 1)
        return self._hand(r, ObserverCameras(self.c2w[idx].copy(), self.fov[idx].copy()))

    def known(self) -> ObserverCameras:
        return ObserverCameras(self.c2w, self.fov)


class LiveObserver(_ChunkSource):
    """Poses from the keys, chunk by chunk (module docstring); the session is open until
    :meth:`stop`."""

    rounds: int | None = None

    def __init__(
        self,
        path: StepPath,
        keys: KeyState,
        on_chunk: Callable[[PlayChunk], None] | None = None,
        pacer: Pacer | None = None,
        on_frames: Callable[[PlayChunk], None] | None = None,
    ):
        super().__init__(path, on_chunk, on_frames)
        self.keys = keys
        self.pacer = pacer
        self.given = 0  # frames handed to the engine
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the session at the next chunk boundary."""
        self._stop.set()
        if self.pacer is not None:
            self.pacer.wake()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def cameras(self, r: int, frames: int, ctx: JobContext) -> ObserverCameras | None:
        if self.pacer is not None and r >= 1:
            self.pacer.wait_for(r - 1, ctx)
        if self._stop.is_set() and self.handed:
            return None  # (a session stopped before it began still plays its first chunk)
        ctx.check_cancelled()
        end = (r + 1) * frames
        while self.path.final_frames() < end:
            self.path.add(self.keys.take_step())
        c2w, fov = self.path.bake()
        self.given = max(self.given, end)
        return self._hand(
            r, ObserverCameras(c2w[r * frames : end].copy(), fov[r * frames : end].copy())
        )

    def known(self) -> ObserverCameras:
        c2w, fov = self.path.bake()
        n = max(1, self.given)
        return ObserverCameras(c2w[:n], fov[:n])
