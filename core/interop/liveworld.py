"""LiveWorld inference samples (docs/FORMATS.md): a YAML file, a ``geometry.npz`` and the source image.

Export (:func:`export_liveworld`) writes into a folder::

    sample.yaml         geometry_file_name, first_frame_image, iter_input, runtime.seed
    geometry.npz        poses_c2w (F, 4, 4) float32 OpenCV c2w; intrinsics (F, 3, 3) float32,
                        pixels of 832x480, from each frame's vertical fov (square pixels, centred)
    source_image.png    the project's source image (copied as it is)
    geometry.worldstudio.json
                        the studio's editable camera path (keyframes and settings); LiveWorld
                        never reads it, the studio's import uses it when it still reproduces
                        geometry.npz's poses (so a round trip keeps the original keyframes)
    storyline.json      (when the project has a monitor) LiveWorld's preset storyline, what its
                        event cameras generate from: ``scene_text`` (the monitor's own scene
                        text, else round 0's), ``entities`` (the monitor's entities' names) and
                        ``steps`` ('0'..'R-1': its entities' prompts per round); the YAML names it
                        as ``storyline_file`` (LiveWorld reads it with
                        ``event.evolution.use_preset_storyline``)

- F = rounds x 65. The poses are the baked path held/cut to the project's video length
  (``bake_path(path, n_frames=rounds * frames_per_round)``). A project whose rounds are not
  65 frames long is resampled round by round: frame j of round r (0..64) sits at project frame
  ``r * fpr + j * (fpr - 1) / 64``, between two baked poses, positions and fov linear and
  rotations slerped; the warning says so. Round boundaries stay aligned, so each round's
  prompts describe the same stretch of the path.
- ``iter_input['r'] = {scene_text: rounds[r].scene_text, fg_text: ...}`` where fg_text joins
  the entities' prompts for round r (stripped, in entity order; a prompt followed by another
  one gets a full stop if it has no final punctuation; separated by a space).
- Only ``runtime.seed`` is written among LiveWorld's system keys: step counts and guidance are
  tuned per backbone, and the studio's values would override the reference's tuned ones.

Import (:func:`import_liveworld`) builds a new project folder:

- The YAML (a regular file of at most 1 MiB) is read with PyYAML's safe loader (libyaml's
  ``CSafeLoader`` when installed) and the npz's arrays with numpy's .npy reader, no pickle.
  Relative paths are resolved against the YAML's folder, then its parents (up to three
  levels), then the working directory.
- Checked, each failure a FormatError naming the file and the key: the required keys, that
  ``iter_input`` keys are strings ``'0'..'R-1'`` without gaps, scene_text/fg_text are strings,
  poses_c2w is (F, 4, 4) with F >= R x 65, finite, bottom row (0, 0, 0, 1), its 3x3 blocks
  rotations (orthonormal within 1e-3, determinant +1); intrinsics (F, 3, 3) (or one (3, 3))
  finite with positive focal lengths.
- The project: 832x480, 16 fps, 65-frame rounds, one round per iter_input key with its
  scene_text; the observer's prompt names every entity (``prompt_entities`` "all"), as
  LiveWorld's observer prompt always carries the round's fg_text. fg_text: when any round has one, the project gets ONE entity named
  "foreground" whose prompt for round r is fg_text of round r (so exporting again writes the
  same fg_text). A ``storyline_file`` (JSON: ``scene_text``, optional ``entities`` and ``steps``)
  gives the event camera's scene text: the project gets one monitor at the source camera with
  that scene text, watching the entity (named after the storyline's entities when iter_input
  has no fg_text, its prompts then the storyline's steps). ``entities_file`` is not read.
- The trajectory: the first R x 65 poses (extra ones are dropped, with a warning). Pose 0 is
  the source image's camera and the studio's reconstruction puts that camera at the
  identity, so the two worlds agree when pose 0 is the identity (LiveWorld's trajectories
  start there). When it is not, the poses are kept as they are by default (the studio's own
  paths may start slightly off the source view, e.g. the demo's, and must round-trip) and a
  warning says so; ``rebase=True`` (``--rebase``) re-expresses every pose relative to pose 0
  instead, for samples whose poses live in another world frame.
  The fov per frame comes from the intrinsics (fy at a height of 480 pixels); without
  intrinsics, from the reconstruction's focal estimate (or 60 degrees when pending).
- Exact poses, one representation: the project keeps its trajectory only as keyframes (every
  consumer, preview, generation and the studio's timeline, bakes keyframes; a side file of
  poses would be ignored by them and go stale at the first edit). When the sample carries the
  sidecar ``<npz stem>.worldstudio.json`` (written by the studio's export) and its camera
  path bakes to the npz's poses and fov within 5e-6, that path is used as it is (original
  keyframes, easing, ids). Otherwise the keyframes are fitted
  with ``fit_keyframes`` at tolerances just above float32 noise, then the fitted path is
  re-baked and compared with the imported poses; if any matrix entry or fov differs by more
  than 5e-6, the fit is replaced by one keyframe per frame, which the bake reproduces exactly
  (the spline passes through its keyframes). Export after import therefore gives the same
  poses to 1e-5 whatever the input.
- The cloud is reconstructed from the image with ``new_project_from_image`` (the studio crops
  the image to 832x480 where LiveWorld stretches it; the warning says so). When no depth model
  is available the project is created with ``Scene(pending=True)`` and the result says so.
- The project folder is built in a temporary folder beside the target and renamed at the end.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.errors import Cancelled, FormatError, WorldStudioError
from worldstudio.core.fileio import parse_json, read_regular_file
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import (
    CameraPath,
    CropBox,
    Entity,
    Intrinsics,
    Keyframe,
    Monitor,
    PathSettings,
    Pose,
    Project,
    ProjectFolder,
    Round,
    Scene,
    SourceImage,
    atomic_write_bytes,
)

ROUND_FRAMES = 65
FPS = 16
WIDTH = 832
HEIGHT = 480
YAML_NAME = "sample.yaml"
STORYLINE_NAME = "storyline.json"
GEOMETRY_NAME = "geometry.npz"
IMAGE_NAME = "source_image.png"
SIDECAR_SUFFIX = ".worldstudio.json"

# Fitting tolerances just above float32 noise; the fit is verified against VERIFY_TOL.
FIT_TOL_POS = 1e-6  # world units, scaled by the path's extent when it exceeds 1
FIT_TOL_DEG = 5e-5
VERIFY_TOL = 5e-6
MAX_YAML_BYTES = 1024 * 1024  # a sample's YAML is a few KB; 500 rounds of prompts fit
MAX_NPZ_BYTES = 1024 * 1024 * 1024
MAX_ARRAY_BYTES = 256 * 1024 * 1024
MAX_IMAGE_BYTES = 512 * 1024 * 1024
MAX_ROUNDS = 500  # 500 rounds of 65 frames: 34 minutes of video
MAX_FIT_FRAMES = 20 * ROUND_FRAMES  # longer trajectories get one keyframe per frame
MAX_FIT_KEYFRAMES = 48
_DEFAULT_FOV = 60.0
_ROT_TOL = 1e-3


@dataclass
class LiveWorldSample:
    """A checked LiveWorld sample."""

    yaml_path: Path
    geometry_path: Path
    image_path: Path
    poses_c2w: np.ndarray  # (F, 4, 4) float64
    intrinsics: np.ndarray | None  # (F, 3, 3) float64
    scene_texts: list[str]
    fg_texts: list[str]
    config: dict[str, Any]
    storyline: dict[str, Any] | None = None  # checked: scene_text str, entities, steps

    @property
    def rounds(self) -> int:
        return len(self.scene_texts)


@dataclass
class LiveWorldExport:
    yaml_path: Path
    files: list[Path]
    warnings: list[str] = field(default_factory=list)


@dataclass
class LiveWorldImport:
    project: Project
    folder: Path
    pending: bool
    warnings: list[str] = field(default_factory=list)


def _job(ctx: JobContext | None) -> JobContext:
    return ctx if ctx is not None else JobContext()


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def join_fg_prompts(prompts: list[str]) -> str:
    """Entity prompts of one round -> one fg_text (see the module docstring)."""
    parts = [p.strip() for p in prompts if p and p.strip()]
    out = []
    for i, p in enumerate(parts):
        if i < len(parts) - 1 and p[-1] not in ".!?;:":
            p += "."
        out.append(p)
    return " ".join(out)


def resample_rounds(
    c2w: np.ndarray, fov: np.ndarray, rounds: int, from_frames: int, to_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame poses of ``rounds`` rounds of ``from_frames`` frames -> ``to_frames`` frames
    per round (positions and fov linear, rotations slerped, round boundaries aligned)."""
    from worldstudio.core.geometry.transforms import (
        make_sign_continuous,
        matrix_to_quat,
        quat_to_matrix,
        slerp,
    )

    c2w = np.asarray(c2w, dtype=np.float64)
    fov = np.asarray(fov, dtype=np.float64)
    n = len(c2w)
    if from_frames == to_frames:
        return c2w.copy(), fov.copy()
    j = np.arange(to_frames, dtype=np.float64) * (from_frames - 1) / (to_frames - 1)
    s = (np.arange(rounds)[:, None] * from_frames + j[None, :]).reshape(-1)
    i0 = np.clip(np.floor(s).astype(int), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    t = np.clip(s - i0, 0.0, 1.0)
    t = np.where(t < 1e-12, 0.0, np.where(t > 1 - 1e-12, 1.0, t))
    q = make_sign_continuous(matrix_to_quat(c2w[:, :3, :3]))
    out = np.zeros((len(s), 4, 4))
    out[:, :3, :3] = quat_to_matrix(slerp(q[i0], q[i1], t))
    out[:, :3, 3] = (1 - t)[:, None] * c2w[i0, :3, 3] + t[:, None] * c2w[i1, :3, 3]
    out[:, 3, 3] = 1.0
    # exact copies where a target frame lands on a baked frame
    on = t == 0.0
    out[on] = c2w[i0[on]]
    return out, (1 - t) * fov[i0] + t * fov[i1]


def liveworld_poses(project: Project) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(poses (R*65, 4, 4) float64, vertical fov (R*65,), warnings) for a project."""
    from worldstudio.core.geometry.path import bake_path

    warnings: list[str] = []
    R = len(project.rounds)
    fpr = project.generation.frames_per_round
    n = R * fpr
    if project.camera_path.keyframes:
        baked = bake_path(project.camera_path, n_frames=n)
        c2w, fov = baked.c2w, baked.fov
    else:
        c2w = np.repeat(np.eye(4)[None], n, axis=0)
        fov = np.full(n, _source_fov(project))
        warnings.append("the project has no camera path: the camera stays at the source view")
    if fpr != ROUND_FRAMES:
        c2w, fov = resample_rounds(c2w, fov, R, fpr, ROUND_FRAMES)
        warnings.append(
            f"the project's rounds are {fpr} frames, LiveWorld's are {ROUND_FRAMES}: the camera "
            f"path was resampled to {ROUND_FRAMES} frames per round "
            "(positions linear, rotations slerped)"
        )
    if np.max(np.abs(c2w[0] - np.eye(4))) > 1e-6:
        warnings.append(
            "the path does not start at the source image's camera (identity): LiveWorld takes "
            "pose 0 to be the camera of the source image"
        )
    return c2w, fov, warnings


def _source_fov(project: Project) -> float:
    from worldstudio.core.geometry.camera import fov_from_intrinsics

    if project.intrinsics is None:
        return 60.0
    return float(fov_from_intrinsics(np.array(project.intrinsics.K), project.intrinsics.height))


def liveworld_config(project: Project) -> dict[str, Any]:
    """The YAML content (a plain dict) for a project."""
    iter_input = {}
    for r, rnd in enumerate(project.rounds):
        fg = join_fg_prompts([e.prompt(r) for e in project.entities])
        iter_input[str(r)] = {"scene_text": rnd.scene_text, "fg_text": fg}
    config: dict[str, Any] = {
        "geometry_file_name": GEOMETRY_NAME,
        "first_frame_image": IMAGE_NAME,
        "iter_input": iter_input,
        "runtime": {"seed": int(project.generation.seed)},
    }
    if liveworld_storyline(project) is not None:
        config["storyline_file"] = STORYLINE_NAME
    return config


def liveworld_storyline(project: Project, warnings: list[str] | None = None):
    """LiveWorld's preset storyline for the project's (first) monitor, None without one: the
    scene as the monitor sees it, its entities and their prompts per round."""
    monitors = [m for m in project.monitors if m.enabled] or list(project.monitors)
    if not monitors:
        return None
    m = next((x for x in monitors if x.scene_text is not None), monitors[0])
    texts = {x.scene_text for x in monitors if x.scene_text is not None}
    if len(texts) > 1 and warnings is not None:
        warnings.append(
            "LiveWorld's storyline has one scene text for every event camera: the one of "
            f"monitor {m.name!r} was written"
        )
    known = {e.id: e for e in project.entities}
    watched = [known[e] for e in m.entity_ids if e in known]
    scene = (
        m.scene_text
        if m.scene_text is not None
        else (project.rounds[0].scene_text if project.rounds else "")
    )
    return {
        "entities": [e.name for e in watched],
        "max_steps": len(project.rounds),
        "scene_text": scene,
        "steps": {
            str(r): join_fg_prompts([e.prompt(r) for e in watched])
            for r in range(len(project.rounds))
        },
    }


def empty_prompt_warnings(project: Project) -> list[str]:
    """Rounds without a scene text and entities without a prompt in some round: LiveWorld
    generates those from an empty (or shorter) prompt."""
    n = len(project.rounds)
    out = []
    empty = [str(r + 1) for r, rnd in enumerate(project.rounds) if not rnd.scene_text.strip()]
    if empty:
        out.append(f"round {', '.join(empty)} of {n} has no scene text (an empty scene_text)")
    for e in project.entities:
        missing = [str(r + 1) for r in range(n) if not e.prompt(r).strip()]
        if missing:
            out.append(
                f"entity {e.name!r} has no prompt in round {', '.join(missing)}: it is left out "
                "of that round's fg_text"
            )
    return out


def export_liveworld(
    project_dir: str | os.PathLike, out_dir: str | os.PathLike, ctx: JobContext | None = None
) -> LiveWorldExport:
    """Write a LiveWorld sample for the project into ``out_dir`` (see the module docstring)."""
    import yaml

    from worldstudio.core.geometry.camera import intrinsics_from_fov

    ctx = _job(ctx)
    folder = ProjectFolder(project_dir)
    project = folder.load()
    if project.source is None:
        raise WorldStudioError(f"{folder.root}: the project has no source image to export")
    src = folder.path(project.source.file)
    if not src.is_file():
        raise WorldStudioError(f"{src}: the project's source image is missing")
    c2w, fov, warnings = liveworld_poses(project)
    ctx.check_cancelled()
    gen = project.generation
    if (gen.width, gen.height) != (WIDTH, HEIGHT):
        warnings.append(
            f"the project's video is {gen.width}x{gen.height}; LiveWorld renders {WIDTH}x{HEIGHT} "
            "and stretches the source image to it (the intrinsics are written for 832x480)"
        )
    if gen.fps != FPS:
        warnings.append(f"the project plays at {gen.fps} fps; LiveWorld plays at {FPS} fps")
    warnings += empty_prompt_warnings(project)
    K = np.stack([intrinsics_from_fov(float(f), HEIGHT, WIDTH) for f in fov])

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorldStudioError(f"{out}: cannot create the folder ({exc.strerror or exc})") from exc
    buf = io.BytesIO()
    np.savez(buf, poses_c2w=c2w.astype(np.float32), intrinsics=K.astype(np.float32))
    image_name = IMAGE_NAME if src.suffix.lower() == ".png" else f"source_image{src.suffix.lower()}"
    config = liveworld_config(project)
    config["first_frame_image"] = image_name
    header = (
        f"# LiveWorld inference sample written by World Studio from project {project.name!r}\n"
        f"# {len(project.rounds)} rounds x {ROUND_FRAMES} frames, {WIDTH}x{HEIGHT} @ {FPS} fps\n"
    )
    text = header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    files = [out / GEOMETRY_NAME, out / image_name, out / YAML_NAME]
    atomic_write_bytes(files[0], buf.getvalue())
    atomic_write_bytes(files[1], src.read_bytes())
    atomic_write_bytes(files[2], text.encode("utf-8"))
    storyline = liveworld_storyline(project, warnings)
    if storyline is not None:
        import json

        files.append(out / STORYLINE_NAME)
        body = json.dumps({"image_stem": project.name, **storyline}, indent=2, ensure_ascii=False)
        atomic_write_bytes(files[-1], (body + "\n").encode("utf-8"))
    if project.camera_path.keyframes:
        import json

        side = {
            "format": "worldstudio.liveworld_path",
            "version": 1,
            "note": "World Studio's editable camera path; LiveWorld ignores this file",
            "camera_path": project.camera_path.model_dump(mode="json"),
        }
        files.append(sidecar_path(files[0]))
        atomic_write_bytes(files[-1], (json.dumps(side, indent=1) + "\n").encode("utf-8"))
    ctx.progress(1, 1, "written")
    return LiveWorldExport(yaml_path=files[2], files=files, warnings=warnings)


def export_liveworld_job(
    project_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> Callable[[JobContext], LiveWorldExport]:
    return lambda ctx: export_liveworld(project_dir, out_dir, ctx)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def resolve_path(value: str, yaml_path: Path, key: str, cwd: Path | None = None) -> Path:
    """A path from the YAML: absolute as it is; relative against the YAML's folder, then its
    parents up to three levels, then the working directory. FormatError when none exists."""
    if not value or "\x00" in value:
        raise FormatError(f"{yaml_path}: key '{key}': {value[:80]!r} is not a file name")
    p = Path(value)
    if p.is_absolute():
        if p.is_file():  # a regular file: not a folder, device (/dev/zero) or FIFO
            return p
        what = "is not a regular file" if p.exists() else "does not exist"
        raise FormatError(f"{yaml_path}: key '{key}': {value[:200]!r} {what}")
    base = yaml_path.absolute().parent
    candidates = [base, *list(base.parents)[:3], (cwd or Path.cwd()).absolute()]
    for c in candidates:
        if (c / p).is_file():
            return c / p
    tried = ", ".join(str(c) for c in candidates)
    raise FormatError(
        f"{yaml_path}: key '{key}': {value[:200]!r} not found as a regular file (looked in {tried})"
    )


def _check_size(path: Path, limit: int) -> None:
    """A plausible size: not empty (also what /proc and /sys files report, whatever they
    stream) and at most ``limit`` bytes."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise FormatError(f"{path}: the file is empty (or a stream of the system, not a file)")
    if size > limit:
        raise FormatError(f"{path}: {size} bytes, more than the {limit >> 20} MiB the studio reads")


def _require_str(yaml_path: Path, data: dict, key: str, where: str = "") -> str:
    if key not in data:
        raise FormatError(f"{yaml_path}: key '{where}{key}' is missing")
    return _text(yaml_path, data[key], f"{where}{key}")


def _text(yaml_path: Path, v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise FormatError(f"{yaml_path}: key '{key}' must be a string, got {type(v).__name__}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{yaml_path}: key '{key}' is not valid Unicode text") from None
    return v


def _read_iter_input(yaml_path: Path, data: dict) -> tuple[list[str], list[str]]:
    if "iter_input" not in data:
        raise FormatError(f"{yaml_path}: key 'iter_input' is missing")
    ii = data["iter_input"]
    if not isinstance(ii, dict) or not ii:
        raise FormatError(f"{yaml_path}: key 'iter_input' must be a non-empty map of rounds")
    if len(ii) > MAX_ROUNDS:
        raise FormatError(
            f"{yaml_path}: key 'iter_input' has {len(ii)} rounds, more than the {MAX_ROUNDS} "
            "the studio imports"
        )
    for k in ii:
        if not isinstance(k, str):
            shown = repr(k)[:40]
            raise FormatError(
                f"{yaml_path}: key 'iter_input': round key {shown} is a {type(k).__name__}, "
                f"it must be a string (write '{shown}')"
            )
    expected = [str(i) for i in range(len(ii))]
    if set(ii) != set(expected):
        bad = sorted(set(ii) - set(expected))
        raise FormatError(
            f"{yaml_path}: key 'iter_input': round keys must be '0' to '{len(ii) - 1}' without "
            f"gaps, got unexpected {', '.join(repr(b[:40]) for b in bad[:5])}"
        )
    scenes, fgs = [], []
    for k in expected:
        entry = ii[k]
        where = f"iter_input.'{k}'."
        if not isinstance(entry, dict):
            raise FormatError(
                f"{yaml_path}: key 'iter_input.'{k}'' must be a map with scene_text and fg_text"
            )
        scenes.append(_require_str(yaml_path, entry, "scene_text", where))
        fg = entry.get("fg_text", "")
        fgs.append(_text(yaml_path, "" if fg is None else fg, f"{where}fg_text"))
    return scenes, fgs


def _load_npz(path: Path, yaml_path: Path) -> dict[str, np.ndarray]:
    """The arrays the studio reads (poses_c2w, intrinsics) from the npz, each checked from its
    header (a plain numeric dtype, at most ``MAX_ARRAY_BYTES``) before it is decompressed."""
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on damaged archives
        raise FormatError(
            f"{path}: not a readable npz file (not a zip archive of .npy arrays: {exc})"
        ) from None
    out: dict[str, np.ndarray] = {}
    with zf:
        names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        if "poses_c2w" not in names:
            raise FormatError(
                f"{path}: array 'poses_c2w' is missing (has {', '.join(sorted(names))[:200] or 'nothing'})"
            )
        for key in ("poses_c2w", "intrinsics"):
            if key in names:
                out[key] = _read_npy(zf, names[key], path, key)
    return out


def _read_npy(zf, member: str, path: Path, key: str) -> np.ndarray:
    where = f"{path}: array '{key}'"
    try:
        with zf.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise FormatError(f"{where}: unsupported .npy version {version}")
            if dtype.hasobject:
                raise FormatError(
                    f"{path}: holds pickled (object) arrays, which are never loaded; store "
                    f"plain numeric arrays ('{key}' holds {dtype} values)"
                )
            if dtype.kind not in "biuf" or dtype.fields is not None:
                raise FormatError(f"{where} must hold real numbers, got dtype {dtype}")
            count = int(np.prod(shape, dtype=object)) if shape else 1
            if count * dtype.itemsize > MAX_ARRAY_BYTES:
                raise FormatError(
                    f"{where}: shape {shape} is larger than the {MAX_ARRAY_BYTES >> 20} MiB "
                    "the studio reads"
                )
            data = f.read(count * dtype.itemsize + 1)
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged headers or data, of any kind
        raise FormatError(f"{where}: cannot be read ({type(exc).__name__}: {exc})"[:300]) from None
    if len(data) != count * dtype.itemsize:
        raise FormatError(f"{where}: the data does not match its shape {shape}")
    a = np.frombuffer(data, dtype=dtype, count=count)
    return a.reshape(shape, order="F" if fortran else "C")


def _check_poses(path: Path, poses: Any, rounds: int) -> np.ndarray:
    key = f"{path}: array 'poses_c2w'"
    a = np.asarray(poses)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise FormatError(f"{key} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 3 or a.shape[1:] != (4, 4):
        raise FormatError(f"{key} must have shape (F, 4, 4), got {a.shape}")
    a = a.astype(np.float64)
    need = rounds * ROUND_FRAMES
    if len(a) < need:
        raise FormatError(
            f"{key} has {len(a)} poses; iter_input has {rounds} rounds, which need at least "
            f"{rounds} x {ROUND_FRAMES} = {need}"
        )
    bad = ~np.all(np.isfinite(a), axis=(1, 2))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise FormatError(f"{key}: pose {i} has NaN or infinite values")
    bottom = np.max(np.abs(a[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])), axis=1)
    if np.any(bottom > 1e-4):
        i = int(np.argmax(bottom > 1e-4))
        raise FormatError(
            f"{key}: pose {i}'s bottom row must be (0, 0, 0, 1), got {a[i, 3].tolist()}"
        )
    R = a[:, :3, :3]
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries give inf/NaN: bad below
        ortho = np.max(np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)), axis=(1, 2))
        det = np.linalg.det(R)
    bad = ~((ortho <= _ROT_TOL) & (np.abs(det - 1.0) <= _ROT_TOL))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise FormatError(
            f"{key}: pose {i}'s 3x3 block is not a rotation (determinant {det[i]:.4g}, "
            f"orthonormality error {ortho[i]:.2g})"
        )
    # float32 rotations are orthonormal to ~1e-7: snap to the nearest rotation.
    U, _, Vt = np.linalg.svd(R)
    a[:, :3, :3] = U @ Vt
    a[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
    return a


def _check_intrinsics(path: Path, K: Any, frames: int) -> np.ndarray:
    key = f"{path}: array 'intrinsics'"
    a = np.asarray(K)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise FormatError(f"{key} must hold real numbers, got dtype {a.dtype}")
    if a.shape == (3, 3):
        a = np.repeat(a[None], frames, axis=0)
    if a.ndim != 3 or a.shape[1:] != (3, 3) or len(a) < frames:
        raise FormatError(
            f"{key} must have shape (F, 3, 3) with F = {frames} like poses_c2w, got {a.shape}"
        )
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        i = int(np.argmax(~np.all(np.isfinite(a), axis=(1, 2))))
        raise FormatError(f"{key}: matrix {i} has NaN or infinite values")
    bad = (a[:, 0, 0] <= 0) | (a[:, 1, 1] <= 0)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise FormatError(f"{key}: matrix {i} has non-positive focal lengths")
    return a


def read_liveworld(
    yaml_path: str | os.PathLike, cwd: str | os.PathLike | None = None
) -> LiveWorldSample:
    """Read and check a LiveWorld sample; FormatError naming the file and key on any problem."""
    import yaml

    yaml_path = Path(yaml_path)
    raw = read_regular_file(yaml_path, MAX_YAML_BYTES, FormatError, "LiveWorld YAML file")
    try:
        # libyaml's parser when present: fast, and it refuses deep nesting at once; the
        # constructor is the safe one either way
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(raw.decode("utf-8"), Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise FormatError(
            f"{yaml_path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{yaml_path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:
        raise FormatError(f"{yaml_path}: not valid YAML (nested too deeply)") from None
    except (ValueError, OverflowError, TypeError) as exc:  # a date like 2024-99-99, a huge int
        raise FormatError(f"{yaml_path}: a value cannot be read ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{yaml_path}: expected a map of keys at the top level")
    geo_name = _require_str(yaml_path, data, "geometry_file_name")
    img_name = _require_str(yaml_path, data, "first_frame_image")
    scenes, fgs = _read_iter_input(yaml_path, data)
    cwd_path = Path(cwd) if cwd is not None else None
    geo = resolve_path(geo_name, yaml_path, "geometry_file_name", cwd_path)
    image = resolve_path(img_name, yaml_path, "first_frame_image", cwd_path)
    _check_size(geo, MAX_NPZ_BYTES)
    _check_size(image, MAX_IMAGE_BYTES)
    arrays = _load_npz(geo, yaml_path)
    poses = _check_poses(geo, arrays["poses_c2w"], len(scenes))
    K = _check_intrinsics(geo, arrays["intrinsics"], len(poses)) if "intrinsics" in arrays else None
    storyline = None
    if data.get("storyline_file") is not None:
        name = _require_str(yaml_path, data, "storyline_file")
        storyline = _read_storyline(resolve_path(name, yaml_path, "storyline_file", cwd_path))
    return LiveWorldSample(
        yaml_path=yaml_path,
        geometry_path=geo,
        image_path=image,
        poses_c2w=poses,
        intrinsics=K,
        scene_texts=scenes,
        fg_texts=fgs,
        config=data,
        storyline=storyline,
    )


def _read_storyline(path: Path) -> dict[str, Any]:
    """A storyline JSON: ``scene_text`` (str), ``entities`` (list of str, optional), ``steps``
    (map of round keys to str, optional); FormatError naming the file and key otherwise."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not a readable storyline JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object")
    scene = _require_str(path, data, "scene_text")
    entities = data.get("entities") or []
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise FormatError(f"{path}: key 'entities' must be a list of names")
    steps = data.get("steps") or {}
    if not isinstance(steps, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in steps.items()
    ):
        raise FormatError(f"{path}: key 'steps' must map round keys ('0', '1', ...) to texts")
    return {"scene_text": scene, "entities": entities, "steps": steps}


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _generation_overrides(sample: LiveWorldSample) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cfg = sample.config

    def get(section: str, key: str, types: tuple[type, ...]):
        sec = cfg.get(section)
        if sec is None:
            return None
        if not isinstance(sec, dict):
            raise FormatError(f"{sample.yaml_path}: key '{section}' must be a map")
        v = sec.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, types):
            raise FormatError(
                f"{sample.yaml_path}: key '{section}.{key}' must be a number, got {v!r}"
            )
        return v

    seed = get("runtime", "seed", (int,))
    if seed is not None:
        out["seed"] = seed
    steps = get("observer", "infer_steps", (int,))
    if steps is not None:
        out["steps"] = steps
    guidance = get("observer", "guidance_scale", (int, float))
    if guidance is not None:
        out["guidance"] = float(guidance)
    return out


def trajectory_keyframes(c2w: np.ndarray, fov: np.ndarray, fps: int = FPS) -> tuple[list, str]:
    """Keyframes whose bake reproduces every pose and fov to ``VERIFY_TOL`` (see the module
    docstring). Returns (keyframes, how): how is 'fitted' or 'per-frame'.

    The fit is tried on trajectories of at most ``MAX_FIT_FRAMES`` frames and gives up as soon
    as it needs more than ``MAX_FIT_KEYFRAMES`` keyframes (poses that are not a smooth spline,
    e.g. noisy or float32-rounded tracking), so its cost is bounded; the answer is then one
    keyframe per frame, in time linear in the number of frames.
    """
    from worldstudio.core.geometry.path import fit_keyframes

    c2w = np.asarray(c2w, dtype=np.float64)
    fov = np.asarray(fov, dtype=np.float64)
    extent = float(np.max(np.abs(c2w[:, :3, 3]))) if len(c2w) else 1.0
    tol_pos = FIT_TOL_POS * max(1.0, extent)
    settings = PathSettings(fps=fps)
    if len(c2w) <= MAX_FIT_FRAMES:
        try:
            kfs = fit_keyframes(
                c2w,
                fov,
                fps,
                tolerance_pos=tol_pos,
                tolerance_deg=FIT_TOL_DEG,
                max_keyframes=MAX_FIT_KEYFRAMES,
            )
            if _reproduces(CameraPath(keyframes=kfs, settings=settings), c2w, fov):
                return kfs, "fitted"
        except WorldStudioError:
            pass
    kfs = _keyframe_per_frame(c2w, fov, fps)
    path = CameraPath(keyframes=kfs, settings=settings)
    if not _reproduces(path, c2w, fov):
        raise FormatError("the imported trajectory cannot be represented by keyframes")
    return kfs, "per-frame"


def _keyframe_per_frame(c2w: np.ndarray, fov: np.ndarray, fps: int) -> list[Keyframe]:
    """One keyframe on every pose, 1 / fps seconds apart (all poses converted at once)."""
    from worldstudio.core.geometry.transforms import matrix_to_quat

    if not (np.all(np.isfinite(c2w)) and np.all(np.isfinite(fov))):
        raise FormatError("the trajectory has NaN or infinite values")
    U, _, Vt = np.linalg.svd(c2w[:, :3, :3])  # the nearest rotations (float32 input drifts)
    quats = matrix_to_quat(U @ Vt)
    dt = 1.0 / fps
    return [
        Keyframe(
            position=(float(p[0]), float(p[1]), float(p[2])),
            orientation=(float(q[0]), float(q[1]), float(q[2]), float(q[3])),
            fov=float(f),
            transition=dt,
        )
        for p, q, f in zip(c2w[:, :3, 3], quats, fov, strict=True)
    ]


def _reproduces(path: CameraPath, c2w: np.ndarray, fov: np.ndarray) -> bool:
    from worldstudio.core.geometry.path import bake_path

    baked = bake_path(path, n_frames=len(c2w))
    return bool(
        np.max(np.abs(baked.c2w - c2w)) <= VERIFY_TOL
        and np.max(np.abs(baked.fov - fov)) <= VERIFY_TOL
    )


def _fov_per_frame(sample: LiveWorldSample, n: int, warnings: list[str]) -> np.ndarray | None:
    from worldstudio.core.geometry.camera import focal_to_fov

    if sample.intrinsics is None:
        return None
    K = sample.intrinsics[:n]
    fov = np.array([focal_to_fov(float(k[1, 1]), HEIGHT) for k in K])
    if np.max(np.abs(K[:, 0, 0] - K[:, 1, 1]) / K[:, 1, 1]) > 5e-3:
        warnings.append(
            f"{sample.geometry_path}: intrinsics have fx != fy; the studio uses square pixels (fy kept)"
        )
    if (
        np.max(np.abs(K[:, 0, 2] - WIDTH / 2)) > 1.0
        or np.max(np.abs(K[:, 1, 2] - HEIGHT / 2)) > 1.0
    ):
        warnings.append(
            f"{sample.geometry_path}: intrinsics are not centred on 832x480; the studio assumes a centred camera"
        )
    if not (np.all(fov > 0) and np.all(fov < 180)):
        raise FormatError(
            f"{sample.geometry_path}: array 'intrinsics' gives a field of view outside (0, 180) degrees"
        )
    return fov


def _center_crop_box(h: int, w: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the largest centred box of aspect out_w/out_h."""
    if w * out_h > h * out_w:  # too wide
        cw = max(1, int(round(h * out_w / out_h)))
        return (w - cw) // 2, 0, cw, h
    ch = max(1, int(round(w * out_h / out_w)))
    return 0, (h - ch) // 2, w, ch


def _pending_project(image: Path, inner: Path, name: str, fov: float) -> Project:
    """A project whose reconstruction is still to be done: the cropped image and intrinsics."""
    from PIL import Image, UnidentifiedImageError

    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.geometry.transforms import mat3_tuple
    from worldstudio.core.reconstruct.image_io import MAX_PIXELS

    try:
        with Image.open(image) as im:
            if im.width * im.height > MAX_PIXELS:
                raise FormatError(
                    f"{image}: {im.width}x{im.height} pixels, more than the "
                    f"{MAX_PIXELS / 1e6:.0f} megapixels the studio decodes"
                )
            im.load()
            rgb = im.convert("RGB")
    except FormatError:
        raise
    except (
        OSError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
        ValueError,
        SyntaxError,
        EOFError,
        MemoryError,
    ) as exc:
        raise FormatError(f"{image}: not a readable image ({str(exc)[:200]})") from None
    w, h = rgb.size
    x, y, cw, ch = _center_crop_box(h, w, HEIGHT, WIDTH)
    out = rgb.crop((x, y, x + cw, y + ch))
    if out.size != (WIDTH, HEIGHT):
        out = out.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    inner.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    atomic_write_bytes(inner / "source.png", buf.getvalue())
    K = intrinsics_from_fov(fov, HEIGHT, WIDTH)
    return Project(
        name=name,
        source=SourceImage(
            file="source.png",
            original_name=image.name,
            original_size=(h, w),
            crop=CropBox(x=x, y=y, width=cw, height=ch) if (cw, ch) != (w, h) else None,
            height=HEIGHT,
            width=WIDTH,
        ),
        intrinsics=Intrinsics(K=mat3_tuple(K), height=HEIGHT, width=WIDTH),
        scene=Scene(pending=True, depth_file=None),
    )


def import_liveworld(
    yaml_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    depth_model: str | None = None,
    reconstruct: bool = True,
    rebase: bool = False,
    cwd: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
) -> LiveWorldImport:
    """Make a new project folder ``out_dir`` from a LiveWorld sample (module docstring).

    ``reconstruct=False`` skips the reconstruction (the project is created pending);
    ``rebase=True`` re-expresses the poses relative to pose 0.
    """
    from worldstudio.core.interop.bundle import check_target_free, staged_folder

    ctx = _job(ctx)
    sample = read_liveworld(yaml_path, cwd=cwd)
    check_target_free(out_dir)
    warnings: list[str] = []
    R = sample.rounds
    n = R * ROUND_FRAMES
    poses = sample.poses_c2w
    if len(poses) > n:
        warnings.append(
            f"{sample.geometry_path}: poses_c2w has {len(poses)} poses; the {R} rounds use the "
            f"first {n}, the other {len(poses) - n} were dropped"
        )
    poses = poses[:n]
    if np.max(np.abs(poses[0] - np.eye(4))) > 1e-6:
        if rebase:
            from worldstudio.core.geometry.transforms import invert_pose

            poses = invert_pose(poses[0])[None] @ poses
            poses[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
            warnings.append(
                "pose 0 (the source image's camera) is not the identity: the trajectory was "
                "re-expressed relative to it, as the studio places the source camera at the identity"
            )
        else:
            warnings.append(
                "pose 0 is not the identity (the studio's source camera): the poses are kept as "
                "they are, so the path does not start at the source view; use --rebase to "
                "re-express them relative to pose 0"
            )
    fov = _fov_per_frame(sample, n, warnings)
    overrides = _generation_overrides(sample)
    ctx.check_cancelled()

    from PIL import Image

    try:
        with Image.open(sample.image_path) as im:
            img_w, img_h = im.size
    except Exception as exc:
        raise FormatError(f"{sample.image_path}: not a readable image ({exc})") from exc
    if (img_w, img_h) != (WIDTH, HEIGHT):
        warnings.append(
            f"{sample.image_path.name} is {img_w}x{img_h}: the studio crops and scales it to {WIDTH}x{HEIGHT} "
            "(the reference implementation stretches it)"
        )

    pending = True
    name = sample.yaml_path.stem
    with staged_folder(out_dir) as inner:
        project = None
        if reconstruct:
            project, reason = _try_reconstruct(sample.image_path, inner, depth_model, fov, ctx)
            if project is None:
                warnings.append(
                    f"the reconstruction is pending ({reason}); run it later from the studio"
                )
                shutil.rmtree(inner, ignore_errors=True)
            else:
                pending = bool(project.scene is None or project.scene.pending)
        if project is None:
            project = _pending_project(
                sample.image_path, inner, name, float(fov[0]) if fov is not None else _DEFAULT_FOV
            )
            if fov is None:
                warnings.append(
                    f"{sample.geometry_path}: no intrinsics; the field of view is set to {_DEFAULT_FOV:g} degrees"
                )
        ctx.check_cancelled()
        camera_path = _studio_path(sample, poses, fov, warnings)
        if camera_path is None:
            if fov is None:
                fov = np.full(n, _source_fov(project))
            kfs, how = trajectory_keyframes(poses, fov, FPS)
            if len(kfs) > n // 2:
                warnings.append(
                    f"the trajectory is kept exactly as {len(kfs)} keyframes (about one per frame): "
                    "its poses are not a smooth spline, and no smaller set reproduced them within 1e-5"
                )
            camera_path = CameraPath(keyframes=kfs, settings=PathSettings(fps=FPS))
        project.name = name
        project.rounds = [Round(scene_text=s) for s in sample.scene_texts]
        project.entities = []
        project.monitors = []
        story = sample.storyline
        if any(f.strip() for f in sample.fg_texts):
            project.entities = [Entity(name="foreground", prompts=list(sample.fg_texts))]
        elif story is not None and any(v.strip() for v in story["steps"].values()):
            steps = [story["steps"].get(str(r), "") for r in range(sample.rounds)]
            project.entities = [
                Entity(name=", ".join(story["entities"]) or "foreground", prompts=steps)
            ]
        if story is not None and project.entities:
            project.monitors = [
                Monitor(
                    name="event camera",
                    pose=Pose(position=(0.0, 0.0, 0.0)),
                    fov=float(fov[0]) if fov is not None else _source_fov(project),
                    entity_ids=[project.entities[0].id],
                    scene_text=story["scene_text"],
                )
            ]
        project.camera_path = camera_path
        gen = project.generation.model_dump()
        gen.update(
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
            frames_per_round=ROUND_FRAMES,
            prompt_entities="all",
            **overrides,
        )
        try:
            project.generation = type(project.generation).model_validate(gen)
        except Exception as exc:
            raise FormatError(
                f"{sample.yaml_path}: a runtime/observer override is invalid ({exc})"
            ) from exc
        ProjectFolder(inner).save(project)
    return LiveWorldImport(
        project=project, folder=Path(out_dir), pending=pending, warnings=warnings
    )


def sidecar_path(geometry_path: Path) -> Path:
    """Where the studio's own camera path rides along with a geometry npz."""
    return geometry_path.with_name(geometry_path.stem + SIDECAR_SUFFIX)


def _studio_path(
    sample: LiveWorldSample, poses: np.ndarray, fov: np.ndarray | None, warnings: list[str]
) -> CameraPath | None:
    """The camera path from the sidecar an export wrote, when it reproduces the npz's poses
    (and fov) to ``VERIFY_TOL``; None otherwise (the keyframes are then fitted)."""

    from pydantic import ValidationError

    from worldstudio.core.geometry.path import bake_path

    side = sidecar_path(sample.geometry_path)
    if not side.is_file():
        return None
    try:
        data = parse_json(
            read_regular_file(side, MAX_YAML_BYTES, FormatError), str(side), FormatError
        )
        path = CameraPath.model_validate(data["camera_path"])
        if not path.keyframes:
            raise ValueError("it has no keyframes")
        baked = bake_path(path, n_frames=len(poses))
    except (OSError, ValueError, KeyError, TypeError, ValidationError, WorldStudioError) as exc:
        warnings.append(f"{side}: ignored ({exc}); keyframes were fitted to the poses instead")
        return None
    ok = np.max(np.abs(baked.c2w - poses)) <= VERIFY_TOL
    if fov is not None:
        ok = ok and np.max(np.abs(baked.fov - fov)) <= VERIFY_TOL
    if not ok:
        warnings.append(
            f"{side}: its camera path no longer matches {sample.geometry_path.name}; keyframes "
            "were fitted to the poses instead"
        )
        return None
    return path


def _try_reconstruct(
    image: Path, inner: Path, depth_model: str | None, fov: np.ndarray | None, ctx: JobContext
) -> tuple[Project | None, str]:
    """(project, '') after a reconstruction, or (None, why) when no depth model is available."""
    try:
        from worldstudio.core.reconstruct.new_project import new_project_from_image
    except ImportError as exc:
        return None, f"the reconstruction module is not available: {exc}"
    try:
        project = new_project_from_image(
            image,
            inner,
            depth_model=depth_model,
            fov=float(fov[0]) if fov is not None and 1.0 <= fov[0] <= 170.0 else None,
            size=(WIDTH, HEIGHT),
            crop=None,
            ctx=ctx,
        )
    except Cancelled:
        raise
    except WorldStudioError as exc:
        return None, str(exc)
    if not isinstance(project, Project):
        project = ProjectFolder(inner).load()
    return project, ""


def import_liveworld_job(
    yaml_path: str | os.PathLike, out_dir: str | os.PathLike, **kwargs
) -> Callable[[JobContext], LiveWorldImport]:
    return lambda ctx: import_liveworld(yaml_path, out_dir, ctx=ctx, **kwargs)


__all__ = [
    "FPS",
    "HEIGHT",
    "ROUND_FRAMES",
    "WIDTH",
    "LiveWorldExport",
    "LiveWorldImport",
    "LiveWorldSample",
    "export_liveworld",
    "export_liveworld_job",
    "import_liveworld",
    "import_liveworld_job",
    "empty_prompt_warnings",
    "join_fg_prompts",
    "liveworld_config",
    "liveworld_poses",
    "read_liveworld",
    "resample_rounds",
    "resolve_path",
    "trajectory_keyframes",
]
