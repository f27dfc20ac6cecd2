"""Where the observer's cameras come from, round by round.

The world engine asks its *observer source* for each round's cameras when the round starts
(:meth:`ObserverSource.cameras`), and tells it the round's frames as soon as they are generated
and what the round made once it is written (``frames_ready`` and ``round_done``, optional).
Three sources:

- :class:`PathObserver`: the project's camera path, baked to one pose per frame (an ordinary run);
- :class:`PosesObserver`: poses given up front (a headless play session, or the resume of a run
  whose poses were recorded), held on the last pose past their end;
- a live source (:mod:`worldstudio.core.play`): poses decided chunk by chunk from the player's
  keys; its ``rounds`` is None and the run ends when it returns None.

A run made from any source but the project's path writes the poses known so far beside run.json
(``observer_path.npz``: ``c2w`` (N, 4, 4), ``fov`` (N,)), so that ``generate --resume`` follows
the same poses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from worldstudio.core.errors import WorldStudioError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.generation.world import EntityCloud
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.pointcloud import PointCloud
    from worldstudio.core.project import CameraPath


@dataclass(frozen=True)
class ObserverCameras:
    """One round's observer cameras: c2w (F, 4, 4) float64, fov (F,) vertical degrees."""

    c2w: np.ndarray
    fov: np.ndarray

    def __post_init__(self) -> None:
        c2w, fov = np.asarray(self.c2w), np.asarray(self.fov)
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or fov.shape != (len(c2w),):
            raise WorldStudioError(
                f"observer cameras: expected c2w (F, 4, 4) and fov (F,), got {c2w.shape} and {fov.shape}"
            )


@dataclass
class RoundOutcome:
    """What one round made, as the observer source sees it.

    ``frames`` (F, H, W, 3) uint8 are the observer's frames; ``depth`` (F, H, W) float32 is the
    world's depth in each frame (the conditioning render of the static world and the entities,
    and, where that render had no point, the depth the frame was lifted with; 0 where unknown);
    ``static`` the static world after the round; ``entities`` each entity's cloud in each frame.
    """

    round: int
    frame_indices: np.ndarray  # (F,) run frame numbers
    times: np.ndarray  # (F,) world seconds
    c2w: np.ndarray  # (F, 4, 4)
    K: np.ndarray  # (F, 3, 3)
    frames: np.ndarray
    depth: np.ndarray
    static: PointCloud
    entities: dict[str, list[EntityCloud]] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the round, from asking for its cameras to now


@runtime_checkable
class ObserverSource(Protocol):
    """The observer's cameras, asked for round by round.

    ``kind`` is recorded in run.json (``cameras.observer.source``); ``rounds`` is how many rounds
    the source has (None: it decides, returning None from :meth:`cameras` to end the run).
    Optional, called in the engine's thread: ``frames_ready(r, frames)`` as soon as round r's
    observer frames are generated (before the world grows from them), and ``round_done(outcome)``
    once the round is written.
    """

    kind: str
    rounds: int | None

    def first_fov(self) -> float:
        """The vertical fov of the first frame (it sizes the world's voxels)."""
        ...

    def cameras(self, r: int, frames: int, ctx: JobContext) -> ObserverCameras | None:
        """Round r's ``frames`` cameras (frames r*frames ... r*frames + frames - 1), or None
        when the session is over. May wait (honouring ``ctx``'s cancel)."""
        ...

    def known(self) -> ObserverCameras:
        """Every pose known so far (written beside the run for a resume)."""
        ...


class PosesObserver:
    """Poses given up front; past their end the last pose holds. ``rounds``: how many rounds
    the run has (default: enough for every pose)."""

    def __init__(
        self,
        c2w: np.ndarray,
        fov: np.ndarray | float,
        frames_per_round: int,
        rounds: int | None = None,
        kind: str = "poses",
    ):
        c2w = np.asarray(c2w, np.float64)
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) == 0:
            raise WorldStudioError(f"observer poses: expected (N, 4, 4), got {c2w.shape}")
        self.c2w = c2w
        self.fov = np.broadcast_to(np.asarray(fov, np.float64), (len(c2w),)).copy()
        self.kind = kind
        self.rounds: int | None = (
            rounds if rounds is not None else -(-len(c2w) // int(frames_per_round))
        )

    def first_fov(self) -> float:
        return float(self.fov[0])

    def cameras(self, r: int, frames: int, ctx: JobContext) -> ObserverCameras | None:
        if self.rounds is not None and r >= self.rounds:
            return None
        idx = np.minimum(r * frames + np.arange(frames), len(self.c2w) - 1)
        return ObserverCameras(self.c2w[idx].copy(), self.fov[idx].copy())

    def known(self) -> ObserverCameras:
        return ObserverCameras(self.c2w, self.fov)


class PathObserver(PosesObserver):
    """The project's camera path baked to ``rounds * frames_per_round`` frames (cut, or held on
    its last pose)."""

    def __init__(self, path: CameraPath, frames_per_round: int, rounds: int):
        from worldstudio.core.geometry.path import bake_path

        baked = bake_path(path, n_frames=rounds * frames_per_round)
        super().__init__(baked.c2w, baked.fov, frames_per_round, rounds, kind="path")
