"""Run folders (docs/FORMATS.md): ``runs/<run_id>/`` inside a project.

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
        static.ply             the static cloud after this round (binary PLY)
        entities/<id>.npz      per-frame entity points (xyz, rgb, offsets, times) and the state
                               carried to the next round (state_xyz, state_rgb, state_time)
        round.json             seeds, prompts, per-entity render statistics; "complete": true is
                               written last, atomically: a round without it is not finished
      final.mp4                every observer frame
      final_combined.mp4       observer beside the monitors (same height), side by side
      preview.png              the latest live preview (CLI only)

Nothing is pickled: arrays are .npy/.npz loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.fileio import atomic_write
from worldstudio.core.project import ProjectFolder, atomic_write_bytes

RUN_FILE = "run.json"
ROUND_FILE = "round.json"
RUN_FORMAT = "worldstudio.run"
RUN_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RunError(WorldStudioError):
    """A run folder that cannot be found, read, resumed or branched."""


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(
        path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object")
    return data


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save (no pickle), atomically."""
    with atomic_write(path) as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


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


class RunFolder:
    """One run's folder: run.json, the round folders and the final videos."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

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

    def read_meta(self) -> dict[str, Any]:
        meta = read_json(self.run_file)
        if meta.get("format") != RUN_FORMAT:
            raise RunError(
                f"{self.run_file}: not a World Studio run (format {meta.get('format')!r})"
            )
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        meta["updated"] = now_iso()
        write_json(self.run_file, meta)

    def round_dir(self, r: int) -> Path:
        return self.path / round_dir_name(r)

    def round_file(self, r: int) -> Path:
        return self.round_dir(r) / ROUND_FILE

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


def resolve_run(folder: ProjectFolder, name: str | os.PathLike | None) -> RunFolder:
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
