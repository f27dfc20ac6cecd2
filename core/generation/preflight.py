"""Checks before a run spends GPU minutes: everything that would make it fail later, found at once.

The engine runs :func:`check_run` once it knows the run's settings, backend and cameras, before
it downloads a model or creates the run folder. Each check adds :class:`Problem` entries, each with
what is wrong and how to fix it:

- **models**: every model the backend and the lifter load is on this machine or can be downloaded
  now; offline (``HF_HUB_OFFLINE``, no network) a missing model is an error that says so and
  gives the one command that fetches them all; online it is a warning (the run downloads it
  first) so that the studio can offer the download;
- **memory**: the backend's estimate for the chosen profile fits the device's free memory (VRAM
  on a GPU, RAM on the CPU, and the RAM a profile holds on the host); under 10 % to spare is a
  warning; a model backend with no GPU to run on is a warning;
- **disk**: the run's files (:func:`run_bytes`: frames x size x rounds x cameras, plus the clouds)
  fit the project's disk, and the downloads fit the hub cache's disk;
- **camera**: the observer's baked poses stay inside the reconstructed scene: the scene cloud's
  box (the 1st to 99th percentile of its points on each axis, together with the source camera)
  grown by :data:`CAMERA_MARGIN` of its size on each side.

Errors cannot be overridden; warnings can (:attr:`RunOptions.stop_on_warnings`: the studio asks,
the CLI prints them and goes on). :class:`PreflightError` carries the whole list.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from worldstudio.core.errors import WorldStudioError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.generation.backends import Backend
    from worldstudio.core.models.catalogue import ModelInfo

Severity = Literal["error", "warning"]

CAMERA_MARGIN = 0.25
"""How far past the scene's box a camera may go, as a fraction of the box's size per axis."""
TIGHT_MEMORY = 0.9
"""A memory estimate above this fraction of what is free is a warning."""
DISK_RESERVE = 1024**3
"""Free disk a run leaves at least, or it is a warning."""
MP4_RATIO = 20
"""Raw RGB bytes per byte of H.264 (the round's mp4s), roughly."""
GiB = 1024**3


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class Problem:
    """One thing that would make a run fail (``error``) or that the user should know before it
    starts (``warning``), with the way to fix it."""

    check: str  # "models", "memory", "gpu", "disk" or "camera"
    severity: Severity
    text: str
    fix: str
    models: tuple[str, ...] = ()  # catalogue names a models problem asks to download
    profile: str | None = None  # a memory profile that fits, for a memory problem


@dataclass
class Preflight:
    """The outcome of the checks: the problems, and what was found fine (for a report)."""

    problems: list[Problem] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def blocks(self, stop_on_warnings: bool) -> bool:
        """Whether the run may not start: an error, or a warning when warnings stop it."""
        return bool(self.errors) or (stop_on_warnings and bool(self.warnings))

    def summary(self) -> str:
        n_err, n_warn = len(self.errors), len(self.warnings)
        parts = [f"{n_err} error{'s' * (n_err != 1)}"] if n_err else []
        parts += [f"{n_warn} warning{'s' * (n_warn != 1)}"] if n_warn else []
        return ", ".join(parts) or "no problems"

    def text(self) -> str:
        """Every problem with its fix (the CLI's message): one line for one problem, else a
        line per problem and per fix."""
        if len(self.problems) == 1:
            (p,) = self.problems
            return f"{p.text}; {p.fix}"
        lines = [f"the run cannot start ({self.summary()}); nothing was written:"]
        for p in self.problems:
            lines.append(f"  {p.severity}: {p.text}")
            lines.append(f"    fix: {p.fix}")
        return "\n".join(lines)


class PreflightError(WorldStudioError):
    """A run refused before it started: :attr:`preflight` lists every problem."""

    def __init__(self, preflight: Preflight):
        self.preflight = preflight
        super().__init__(preflight.text())


# ------------------------------------------------------------------------------------ models
def model_problems(
    models: Sequence[ModelInfo], command: str, what: str = "the run"
) -> tuple[list[Problem], str]:
    """The missing models of ``models``: an error when they cannot be downloaded now (offline, or
    no network), else a warning (the run downloads them first). ``command`` fetches them all;
    ``what`` names the job. Also returns what passed."""
    from worldstudio.core.models.catalogue import format_bytes
    from worldstudio.core.models.manager import model_status, offline_reason

    if not models:
        return [], "models: none needed"
    missing = [m for m in models if not model_status(m).present]
    if not missing:
        return [], f"models: {', '.join(m.name for m in models)} present"
    total = format_bytes(sum(m.download_bytes for m in missing))
    listed = "; ".join(f"{m.name} ({m.repo_id}, {m.size_text})" for m in missing)
    count = "a model that is" if len(missing) == 1 else f"{len(missing)} models that are"
    names = tuple(m.name for m in missing)
    if len(missing) == 1:  # one model: its own name is the shortest command
        command = f"worldstudio models download {missing[0].name}"
    reason = offline_reason()
    if reason:
        said = reason if reason.startswith("no network") else f"offline: {reason}"
        problem = Problem(
            "models",
            "error",
            f"{what} needs {count} not on this machine: {listed}; {total} in all. "
            f"{'It' if len(missing) == 1 else 'They'} cannot be downloaded now ({said})",
            f"fetch {'it' if len(missing) == 1 else 'them'} with `{command}` on a machine with "
            "internet access (or point --model-dir NAME=PATH, in the studio Models ▸ Manage "
            "models ▸ Use folder, at folders holding them)",
            models=names,
        )
    else:
        problem = Problem(
            "models",
            "warning",
            f"{what} needs {count} not on this machine: {listed}; the run downloads {total} "
            "before it starts",
            f"download now with `{command}` (in the studio: Download), or let the run download",
            models=names,
        )
    return [problem], ""


# ------------------------------------------------------------------------------------ memory
def _estimate(backend: Backend, h: int, w: int, f: int, profile: str, device_type: str, guidance):
    kwargs: dict[str, Any] = {"guidance": guidance}
    if "device_type" in inspect.signature(backend.estimate).parameters:
        kwargs["device_type"] = device_type
    try:
        return backend.estimate(h, w, f, profile, **kwargs)
    except WorldStudioError:
        return None  # a model whose shape is unknown: no estimate


def _device(backend: Backend):
    """The device the backend will run on (its option, $WORLDSTUDIO_DEVICE, else CUDA if any)."""
    from worldstudio.core.generation.backends.wan_common import pick_device

    chosen = getattr(backend, "device", None)
    if chosen is not None:
        return chosen
    return pick_device(getattr(backend, "_device_option", None))


def memory_problems(
    backend: Backend,
    height: int,
    width: int,
    frames: int,
    profile: str | None,
    guidance: float,
    *,
    device=None,
    free_vram: int | None = None,
    free_ram: int | None = None,
) -> tuple[list[Problem], str]:
    """Whether the backend's estimate for ``profile`` fits: on a GPU, its VRAM in the device's
    free memory and its RAM in the host's; on the CPU, all of it in RAM. ``device``,
    ``free_vram`` and ``free_ram`` default to this machine's."""
    import os

    from worldstudio.core.generation import memory

    names = [p for p in getattr(backend, "profiles", ()) if p != "auto"]
    if not names:
        return [], "memory: the backend loads no model"
    device = device if device is not None else _device(backend)
    on_gpu = getattr(device, "type", str(device)) != "cpu"
    if on_gpu and free_vram is None:
        free_vram = memory.device_memory(device)
    if free_ram is None:
        free_ram = memory.host_memory()
    problems: list[Problem] = []
    if (
        not on_gpu
        and not os.environ.get("WORLDSTUDIO_DEVICE")
        and not getattr(backend, "_device_option", None)
    ):
        problems.append(
            Problem(
                "gpu",
                "warning",
                f"no GPU found: {backend.name} runs its model on the CPU, many times slower",
                "check the driver and that torch is a CUDA build (`worldstudio doctor`), or set "
                "WORLDSTUDIO_DEVICE=cpu to run on the CPU on purpose",
            )
        )

    def needs(est) -> tuple[int, int]:
        """(accelerator bytes, host bytes) of an estimate on this device."""
        if not on_gpu:
            return 0, int(est.ram or est.total)
        return int(est.total), int(est.ram)

    def fits(est, share: float = 1.0) -> bool:
        vram, ram = needs(est)
        return (free_vram is None or vram <= share * free_vram) and (
            free_ram is None or not ram or ram <= share * free_ram
        )

    def need_text(est) -> str:
        vram, ram = needs(est)
        parts = [f"~{_gib(vram)} GPU memory"] if vram else []
        parts += [f"~{_gib(ram)} RAM"] if ram else []
        return f"{est.profile} needs " + " and ".join(parts)

    have = []
    if on_gpu:
        have.append(f"{_gib(free_vram)} free on {device}" if free_vram is not None else str(device))
    if free_ram is not None:
        have.append(f"{_gib(free_ram)} RAM available")
    have_text = ", ".join(have) or "free memory unknown"
    chosen = (profile or "auto").strip().lower()
    tried = names if chosen == "auto" else [chosen]
    estimates = {
        p: _estimate(backend, height, width, frames, p, "cuda" if on_gpu else "cpu", guidance)
        for p in names
    }
    if all(e is None for e in estimates.values()):
        return problems, f"memory: no estimate for {backend.name}"
    candidates = [estimates[p] for p in tried if estimates.get(p) is not None]
    use = next((e for e in candidates if fits(e)), None)
    fitting = [p for p in names if estimates[p] is not None and fits(estimates[p])]
    if use is None:
        shown = "; ".join(need_text(e) for e in candidates) or f"profile {chosen}"
        other = [p for p in fitting if p not in tried]
        fix = (
            f"choose the memory profile {other[0]} (it fits), or lower the video size or the "
            "frames per round"
            if other
            else "lower the video size or the frames per round, or free memory (close other "
            f"programs using the {'GPU' if on_gpu else 'RAM'})"
        )
        problems.append(
            Problem(
                "memory",
                "error",
                f"not enough memory for {backend.name} at {width}x{height}, {frames} frames a "
                f"call: {shown}; {have_text}",
                fix,
                profile=other[0] if other else None,
            )
        )
        return problems, ""
    if not fits(use, TIGHT_MEMORY):
        problems.append(
            Problem(
                "memory",
                "warning",
                f"memory is tight: {need_text(use)}; {have_text}; the estimate is rough, the "
                "run may run out of memory",
                (
                    "close other programs using the GPU, or choose a lighter memory profile or a "
                    "smaller video"
                )
                if on_gpu
                else "close other programs, or make the video smaller",
            )
        )
        return problems, ""
    skipped = "" if on_gpu else "VRAM check skipped (no GPU), "
    return problems, f"memory: {skipped}{need_text(use)}; {have_text}"


# ------------------------------------------------------------------------------------ disk
def run_bytes(
    width: int,
    height: int,
    frames_per_round: int,
    rounds: int,
    monitors: int,
    entities: int,
    context_frames: int = 0,
    inspection_videos: bool = True,
) -> int:
    """Roughly how many bytes ``rounds`` rounds of a run write (run_writer's layout): per round
    the lossless frames (observer and monitors, (F, H, W, 3) uint8) and the observer's coverage,
    the videos (observer, monitors, renders, each call's control and mask: about raw / 20), the
    context projections, the static points added (up to an eighth of the round's pixels, 15
    bytes a point) and each entity's points (a tenth of the pixels a frame); then the two final
    videos. A quarter more for what this leaves out."""
    F, px = int(frames_per_round), int(width) * int(height)
    cams = 1 + int(monitors)
    raw = F * px * 3
    per_round = cams * raw + F * px  # .npy frames + coverage
    videos = cams + (1 + 2 * cams if inspection_videos else 0)
    per_round += videos * (raw + int(context_frames) * px * 3) // MP4_RATIO
    per_round += cams * int(context_frames) * px * 7 // 4  # context projections, compressed
    per_round += F * px * 15 // 8  # static points added
    per_round += int(entities) * F * px * 15 // 10
    finals = rounds * (raw + cams * raw) // MP4_RATIO
    return int((rounds * per_round + finals) * 1.25)


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the disk that holds ``path`` (or its nearest existing folder)."""
    for p in (path, *path.parents):
        if p.exists():
            try:
                return int(shutil.disk_usage(p).free)
            except OSError:
                return None
    return None


def disk_problems(
    runs_dir: Path, need: int, hub_dir: Path | None = None, download: int = 0
) -> tuple[list[Problem], str]:
    """Whether ``need`` bytes fit next to the runs and ``download`` bytes in the hub cache."""
    problems: list[Problem] = []
    free = _free_bytes(runs_dir)
    if free is not None and need > free:
        problems.append(
            Problem(
                "disk",
                "error",
                f"not enough disk space for the run: it writes ~{_gib(need)}, {_gib(free)} free "
                f"on the disk of {runs_dir}",
                "free disk space (delete old runs in the project's runs/ folder), or fewer "
                "rounds, frames or a smaller video",
            )
        )
    elif free is not None and free - need < DISK_RESERVE:
        problems.append(
            Problem(
                "disk",
                "warning",
                f"the run leaves under 1 GiB free: it writes ~{_gib(need)}, {_gib(free)} free on "
                f"the disk of {runs_dir}",
                "free disk space (delete old runs in the project's runs/ folder)",
            )
        )
    if hub_dir is not None and download:
        hub_free = _free_bytes(hub_dir)
        if hub_free is not None and download > hub_free:
            problems.append(
                Problem(
                    "disk",
                    "error",
                    f"the models to download (~{_gib(download)}) do not fit in the hub cache "
                    f"{hub_dir} ({_gib(hub_free)} free)",
                    "free disk space there, or point HF_HUB_CACHE at a larger disk",
                )
            )
    passed = "" if problems else f"disk: ~{_gib(need)} to write, {_gib(free or 0)} free"
    return problems, passed


# ------------------------------------------------------------------------------------ camera
def scene_box(xyz: np.ndarray, margin: float = CAMERA_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The box a camera may move in: the cloud's 1st to 99th percentile per axis together with
    the source camera (the origin), grown by ``margin`` of its size on each side."""
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    lo = np.minimum(np.percentile(xyz, 1, axis=0), 0.0)
    hi = np.maximum(np.percentile(xyz, 99, axis=0), 0.0)
    grow = margin * np.maximum(hi - lo, 1e-6)
    return lo - grow, hi + grow


def camera_problems(
    positions: np.ndarray, xyz: np.ndarray, first_frame: int = 0
) -> tuple[list[Problem], str]:
    """Whether every camera position (N, 3) lies in :func:`scene_box` of the cloud ``xyz``;
    ``first_frame`` numbers the first position (for the message)."""
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    if len(xyz) < 10 or not len(positions):
        return [], "camera: nothing to check"
    lo, hi = scene_box(xyz)
    outside = np.any((positions < lo) | (positions > hi), axis=1)
    if not outside.any():
        return [], f"camera: the path's {len(positions)} poses stay inside the scene"
    frames = np.flatnonzero(outside) + first_frame
    size = hi - lo
    over = np.max(np.maximum(lo - positions, positions - hi) / size, axis=1)[outside]
    worst = frames[int(np.argmax(over))]
    where = (
        f"frame {frames[0]}"
        if len(frames) == 1
        else f"{len(frames)} frames ({frames[0]} to {frames[-1]})"
    )
    return [
        Problem(
            "camera",
            "error",
            f"the camera path leaves the reconstructed scene in {where}: frame {worst} is "
            f"{over.max() * 100:.0f}% of the scene's size outside it, where nothing was "
            "reconstructed to condition on",
            "move those keyframes back into the scene (Camera ▸ Frame the scene, then place "
            "them from inside it), or apply the path preset from the source camera's view",
        )
    ], ""
