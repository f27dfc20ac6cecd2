"""Run folders (FORMATS.md): ``runs/<run_id>/`` inside a project. This module is the one place
that knows their layout; the engine writes them through :class:`~.run_writer.RunWriter`, and
exports, the CLI and the studio read them through :class:`RunFolder`.

Layout::

    runs/<run_id>/
      run.json                 settings, seeds, backend, model id, lifter, status, rounds done,
                               parent run + from_round (branches), the project as it was run
      round_XXX/
        observer.npy           (F, H, W, 3) uint8, lossless: what the next round conditions on
        observer.mp4           the same frames, H.264
        renders.mp4            the observer's conditioning renders (holes black)
        coverage.npy           (F, H, W) bool: True where the render drew a point
        monitors/<id>.npy      (F, H, W, 3) uint8 monitor clip, and <id>.mp4
        static_added.ply       the points this round added to the static world (binary PLY;
                               may hold none)
        entities/<id>.npz      per-frame entity points (xyz, rgb, offsets, times) and the state
                               carried to the next round (state_xyz, state_rgb, state_time)
        conditioning/<camera>_control.mp4, <camera>_mask.mp4
                               the exact control video and mask (white: generate) each model
                               call received, leading context frames included; <camera> is
                               "observer" or "monitor-<id>"
        context/<camera>.npz   the scene and foreground projections (scene_rgb, fg_rgb,
                               fg_labels) of the camera's last context frames, which the next
                               round's call gets beside those frames; <camera> as above
        views.npz              observer frames kept as scene references for later rounds: frame
                               index, camera, a subsample of the static points each showed,
                               entity masks (bit-packed)
        round.json             seeds, prompts, what each call was given, per-entity render
                               statistics; "complete": true is written last, atomically: a round
                               without it is not finished
      static_base.ply          the static world before round 0 (written once; a branch copies its
                               parent's): the static world after round r is this cloud followed
                               by round 0 .. r's static_added.ply, in order (existing points
                               never change, so this is exact)
      static_base.json         {"voxel_size": ..., "points": ...}: the edge of the voxel grid in
                               which the static world grows (one point per voxel)
      observer_path.npz        the observer's poses (c2w (N, 4, 4), fov (N,)) of a run not made
                               from the project's camera path (a play session): a resume follows
                               them; run.json's cameras.observer.source says where they came from
      final.mp4                every observer frame
      final_combined.mp4       observer beside the monitors (same height), side by side
      preview.png              the latest live preview (CLI only)

Runs written before the static world was stored incrementally hold a whole ``static.ply`` per
round instead; they are read (exports, the studio) but not resumed or branched.

A folder under ``runs/`` is a run when it holds a run.json of format ``worldstudio.run``.
Nothing is pickled: arrays are .npy/.npz loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.fileio import atomic_write, atomic_write_bytes, parse_json

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.pointcloud import PointCloud
    from worldstudio.core.project.store import ProjectFolder

RUN_FILE = "run.json"
ROUND_FILE = "round.json"
RUN_FORMAT = "worldstudio.run"
RUN_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ROUND_DIR = re.compile(r"^round_(\d+)$")


class RunError(WorldStudioError):
    """A run folder that cannot be found, read, resumed or branched."""


class Points(Protocol):
    """Anything with ``xyz`` (N, 3) and ``rgb`` (N, 3) arrays (an entity's cloud at one time)."""

    xyz: np.ndarray
    rgb: np.ndarray


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def safe_name(name: str, what: str) -> str:
    """``name`` if it can be a file name inside a run folder (ids of monitors and entities)."""
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise RunError(
            f"{what} {name!r} cannot be used as a file name (letters, digits, '_', '-', '.')"
        )
    return name


def round_dir_name(r: int) -> str:
    return f"round_{r:03d}"


# ------------------------------------------------------------------------------- files
def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(
        path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    data = parse_json(text, str(path), RunError)
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object")
    return data


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save (no pickle), atomically."""
    with atomic_write(path) as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez, atomically."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stubs fear allow_pickle here


def save_npz_compressed(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed, atomically (for arrays that are mostly black, e.g. projections)."""
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # as in save_npz


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot be read ({exc})") from exc


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot be read ({exc})") from exc


def pack_clouds(clouds: Sequence[Points]) -> dict[str, np.ndarray]:
    """Per-frame clouds as flat arrays: xyz, rgb and offsets (F + 1,) (frame i is
    ``xyz[offsets[i]:offsets[i + 1]]``)."""
    counts = np.array([len(c.xyz) for c in clouds], np.int64)
    offsets = np.zeros(len(clouds) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    xyz = np.concatenate([c.xyz for c in clouds]) if clouds else np.zeros((0, 3), np.float32)
    rgb = np.concatenate([c.rgb for c in clouds]) if clouds else np.zeros((0, 3), np.uint8)
    return {"xyz": xyz.astype(np.float32), "rgb": rgb.astype(np.uint8), "offsets": offsets}


def unpack_clouds(
    xyz: np.ndarray, rgb: np.ndarray, offsets: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The inverse of :func:`pack_clouds`: (xyz, rgb) per frame."""
    return [
        (xyz[offsets[i] : offsets[i + 1]], rgb[offsets[i] : offsets[i + 1]])
        for i in range(len(offsets) - 1)
    ]


# ------------------------------------------------------------------------------- run.json
@dataclass
class RunRecord:
    """What run.json says about a run: how it was made (fixed when it starts) and where it
    stands (``status``: running, complete, failed or cancelled; ``rounds_done``; ``error``)."""

    id: str
    created: str
    backend: str
    model_id: str | None
    profile: str | None
    lifter: str
    settings: dict[str, Any]
    rounds_total: int
    parent: dict[str, Any] | None  # {"run": id, "from_round": k} for a branch
    seeds: dict[str, Any]
    cameras: dict[str, Any]
    entities: list[dict[str, str]]
    project: dict[str, Any]  # the project as it was run (a resume reads it back)
    status: str = "running"
    rounds_done: int = 0
    error: str | None = None
    # the process writing the run (core.jobs.process.ProcessStamp as JSON): a "running" run
    # whose writer is gone was interrupted (:func:`run_status`)
    writer: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "format": RUN_FORMAT,
            "version": RUN_VERSION,
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "created": self.created,
            "backend": self.backend,
            "model_id": self.model_id,
            "profile": self.profile,
            "lifter": self.lifter,
            "settings": self.settings,
            "rounds_total": self.rounds_total,
            "rounds_done": self.rounds_done,
            "writer": self.writer,
            "parent": self.parent,
            "seeds": self.seeds,
            "cameras": self.cameras,
            "entities": self.entities,
            "project": self.project,
        }
        if self.status == "complete":
            meta["outputs"] = {"final": "final.mp4", "final_combined": "final_combined.mp4"}
        return meta


INTERRUPTED = "interrupted"
"""The status a run has when run.json says "running" and the process writing it is gone."""


def run_status(meta: dict[str, Any]) -> str:
    """What run.json's status means now: "running", "complete", "failed", "cancelled", or
    :data:`INTERRUPTED` for a run that says "running" while the process that wrote it no longer
    runs (it crashed or was killed; the run can be resumed after its last complete round)."""
    from worldstudio.core.jobs.process import ProcessStamp, is_alive

    status = str(meta.get("status") or "?")
    if status == "running" and is_alive(ProcessStamp.from_json(meta.get("writer"))) is False:
        return INTERRUPTED
    return status


def check_not_written(run: RunFolder, meta: dict[str, Any]) -> None:
    """RunError when another job (in this or another process) is writing ``run`` now."""
    from worldstudio.core.jobs.process import ProcessStamp, is_alive, this_process

    if meta.get("status") != "running":
        return
    writer = ProcessStamp.from_json(meta.get("writer"))
    if writer is not None and is_alive(writer):
        who = "this process" if writer == this_process() else writer.where()
        raise RunError(
            f"run {run.id} is being written by {who}: wait for that job to end or cancel it, "
            "then resume"
        )


# ------------------------------------------------------------------------------- one run
class RunFolder:
    """One run's folder: run.json, the round folders and the final videos."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def final_mp4(self) -> Path:
        return self.path / "final.mp4"

    @property
    def final_combined_mp4(self) -> Path:
        return self.path / "final_combined.mp4"

    @property
    def preview_png(self) -> Path:
        return self.path / "preview.png"

    def exists(self) -> bool:
        return self.run_file.is_file()

    # -- run.json --------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        meta = read_json(self.run_file)
        if meta.get("format") != RUN_FORMAT:
            raise RunError(
                f"{self.run_file}: not a World Studio run (format {meta.get('format')!r})"
            )
        return meta

    def status(self) -> str:
        """:func:`run_status` of run.json ("?" when it cannot be read)."""
        try:
            return run_status(self.read_meta())
        except RunError:
            return "?"

    def write_meta(self, meta: dict[str, Any]) -> None:
        meta["updated"] = now_iso()
        write_json(self.run_file, meta)

    def fps(self) -> float | None:
        """The run's video frame rate (run.json settings), None when run.json does not say."""
        try:
            fps = self.read_meta().get("settings", {}).get("fps")
        except (RunError, AttributeError):
            return None
        if isinstance(fps, int | float) and not isinstance(fps, bool) and 0 < fps <= 240:
            return float(fps)
        return None

    # -- rounds --------------------------------------------------------------------------
    def round_dir(self, r: int) -> Path:
        return self.path / round_dir_name(r)

    def round_file(self, r: int) -> Path:
        return self.round_dir(r) / ROUND_FILE

    def round_indices(self) -> list[int]:
        """The rounds that have a folder (complete or not), in order."""
        if not self.path.is_dir():
            return []
        found = []
        for p in self.path.iterdir():
            m = _ROUND_DIR.match(p.name)
            if m and p.is_dir():
                found.append(int(m.group(1)))
        return sorted(found)

    def round_complete(self, r: int) -> bool:
        try:
            return read_json(self.round_file(r)).get("complete") is True
        except RunError:
            return False

    def completed_rounds(self) -> int:
        """How many rounds from round 0 on are complete (a gap ends the count)."""
        r = 0
        while self.round_complete(r):
            r += 1
        return r

    def read_round(self, r: int) -> dict[str, Any]:
        return read_json(self.round_file(r))

    def clear_round(self, r: int) -> None:
        d = self.round_dir(r)
        if d.exists():
            shutil.rmtree(d)

    # -- the files of a round ------------------------------------------------------------
    def observer_npy(self, r: int) -> Path:
        return self.round_dir(r) / "observer.npy"

    def observer_mp4(self, r: int) -> Path:
        return self.round_dir(r) / "observer.mp4"

    def renders_mp4(self, r: int) -> Path:
        return self.round_dir(r) / "renders.mp4"

    def coverage_npy(self, r: int) -> Path:
        return self.round_dir(r) / "coverage.npy"

    def monitor_npy(self, r: int, monitor_id: str) -> Path:
        return self.round_dir(r) / "monitors" / f"{monitor_id}.npy"

    def monitor_mp4(self, r: int, monitor_id: str) -> Path:
        return self.round_dir(r) / "monitors" / f"{monitor_id}.mp4"

    def conditioning_dir(self, r: int) -> Path:
        return self.round_dir(r) / "conditioning"

    def conditioning_mp4(self, r: int, camera: str, kind: str) -> Path:
        """The control (``kind`` "control") or mask ("mask") video of ``camera`` ("observer" or
        "monitor-<id>") in round r."""
        if kind not in ("control", "mask"):
            raise ValueError(f"conditioning video kind must be control or mask, got {kind!r}")
        return self.conditioning_dir(r) / f"{camera}_{kind}.mp4"

    def conditioning_cameras(self, r: int) -> list[str]:
        """The cameras whose conditioning videos round r holds (observer first)."""
        d = self.conditioning_dir(r)
        if not d.is_dir():
            return []
        names = {p.name[: -len("_control.mp4")] for p in d.glob("*_control.mp4")}
        return sorted(names, key=lambda n: (n != "observer", n))

    def context_npz(self, r: int, camera: str) -> Path:
        """The projections of the last context frames of ``camera`` ("observer" or
        "monitor-<id>") in round r."""
        return self.round_dir(r) / "context" / f"{camera}.npz"

    @property
    def observer_path_npz(self) -> Path:
        """The observer's poses of a run not made from the project's path (c2w, fov)."""
        return self.path / "observer_path.npz"

    def views_npz(self, r: int) -> Path:
        return self.round_dir(r) / "views.npz"

    def static_ply(self, r: int) -> Path:
        """The whole static cloud after round r, in runs written before incremental storage."""
        return self.round_dir(r) / "static.ply"

    def static_added_ply(self, r: int) -> Path:
        return self.round_dir(r) / "static_added.ply"

    @property
    def static_base_ply(self) -> Path:
        return self.path / "static_base.ply"

    @property
    def static_base_json(self) -> Path:
        return self.path / "static_base.json"

    def incremental_static(self) -> bool:
        """Whether the run stores its static world as a base and per-round additions."""
        return self.static_base_ply.is_file()

    def read_static(self, r: int) -> PointCloud:
        """The static world after round r: the base followed by the additions of rounds 0 .. r
        (or a legacy run's whole static.ply of round r)."""
        from worldstudio.core.pointcloud import PointCloud, read_ply

        if not self.incremental_static():
            path = self.static_ply(r)
            if not path.is_file():
                raise RunError(f"{path}: missing (and the run has no {self.static_base_ply.name})")
            cloud = read_ply(path)
            return PointCloud(cloud.xyz, cloud.rgb)
        parts = [read_ply(self.static_base_ply)]
        for k in range(r + 1):
            path = self.static_added_ply(k)
            if not path.is_file():
                raise RunError(f"{path}: missing: the static world after round {r} is incomplete")
            parts.append(read_ply(path))
        return PointCloud(
            np.concatenate([c.xyz for c in parts]), np.concatenate([c.rgb for c in parts])
        )

    def static_voxel_size(self) -> float:
        """The voxel edge the run's static world grows in (static_base.json)."""
        data = read_json(self.static_base_json)
        size = data.get("voxel_size")
        if not isinstance(size, int | float) or isinstance(size, bool) or not size > 0:
            raise RunError(f"{self.static_base_json}: no valid voxel_size")
        return float(size)

    def entity_npz(self, r: int, entity_id: str) -> Path:
        return self.round_dir(r) / "entities" / f"{entity_id}.npz"

    def read_entity_track(self, r: int, entity_id: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """An entity's points in each frame of round r: (xyz, rgb) per frame."""
        z = load_npz(self.entity_npz(r, entity_id))
        return unpack_clouds(z["xyz"], z["rgb"], z["offsets"])

    def round_cloud(self, r: int) -> PointCloud | None:
        """The clouds of round r, concatenated: the static world after it (:meth:`read_static`)
        and any other ``*.ply`` in its folder; None when there is none."""
        from worldstudio.core.pointcloud import PointCloud, read_ply

        added = self.static_added_ply(r)
        files = sorted(f for f in self.round_dir(r).glob("*.ply") if f != added)
        clouds = [read_ply(f) for f in files]
        if self.incremental_static() and added.is_file():
            clouds.insert(0, self.read_static(r))
        if not clouds:
            return None
        return PointCloud.concat(clouds)

    # -- what a run holds ----------------------------------------------------------------
    def has_video(self) -> bool:
        """A final video, or an observer clip in some round."""
        return self.final_mp4.is_file() or any(
            self.observer_mp4(r).is_file() for r in self.round_indices()
        )

    def has_clouds(self) -> bool:
        return any(any(self.round_dir(r).glob("*.ply")) for r in self.round_indices())


# ------------------------------------------------------------------------------- a project's runs
def new_run_id(runs_dir: Path) -> str:
    """``YYYYmmdd-HHMMSS`` (local time), with ``-2``, ``-3``... when taken."""
    base = datetime.now().strftime("%Y%m%d-%H%M%S")
    name, k = base, 1
    while (runs_dir / name).exists():
        k += 1
        name = f"{base}-{k}"
    return name


def list_runs(folder: ProjectFolder) -> list[RunFolder]:
    """The project's runs, oldest first (by creation time recorded in run.json, then name)."""
    if not folder.runs_dir.is_dir():
        return []
    runs = []
    for d in folder.runs_dir.iterdir():
        rf = RunFolder(d)
        if d.is_dir() and rf.exists():
            try:
                created = str(rf.read_meta().get("created", ""))
            except RunError:
                continue
            runs.append((created, d.name, rf))
    return [rf for _, _, rf in sorted(runs, key=lambda t: (t[0], t[1]))]


def _known(folder: ProjectFolder) -> str:
    names = [r.id for r in list_runs(folder)]
    return f"runs: {', '.join(names)}" if names else "the project has no runs yet"


def run_by_id(folder: ProjectFolder, run_id: str) -> RunFolder:
    """The run ``runs/<run_id>`` (a plain folder name, not a path); RunError naming the project's
    runs when there is no such run."""
    if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", ".."):
        raise RunError(f"{run_id!r} is not a run id (a folder name under runs/)")
    run = RunFolder(folder.runs_dir / run_id)
    if not run.exists():
        raise RunError(f"{run.path}: no such run; {_known(folder)}")
    return run


def resolve_run(folder: ProjectFolder, name: str | os.PathLike[str] | None) -> RunFolder:
    """A run by id (a folder name under runs/), by path, or the latest one when ``name`` is None."""
    if name is None:
        runs = list_runs(folder)
        if not runs:
            raise RunError(f"{folder.runs_dir}: the project has no runs yet")
        return runs[-1]
    p = Path(name)
    candidates = [folder.runs_dir / p] if not p.is_absolute() else []
    candidates.append(p)
    for c in candidates:
        if (c / RUN_FILE).is_file():
            return RunFolder(c)
    raise RunError(f"run {str(name)!r}: not found in {folder.runs_dir} (no {RUN_FILE})")
