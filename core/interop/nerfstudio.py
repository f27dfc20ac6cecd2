"""nerfstudio camera paths (``camera_path.json``, docs/FORMATS.md), both ways.

Matrices are 4x4 camera-to-world, flattened ROW-major (as nerfstudio's viser viewer writes and
``ns-render`` reads them), with OpenGL camera axes (x right, y up, z back): the studio's OpenCV
poses are converted with ``c2w @ diag(1, -1, -1, 1)`` both ways. ``fov`` is the vertical field
of view in degrees in both programs.

Export (:func:`nerfstudio_dict`)
    - ``keyframes``: one per studio keyframe: ``matrix``, ``fov``, ``aspect`` (render width /
      height), ``override_transition_enabled`` / ``override_transition_sec``. nerfstudio stores
      on keyframe i the time taken to REACH it from keyframe i-1 (keyframe 0 holds the loop's
      closing segment); the studio stores on keyframe i the time to LEAVE it. So
      ``override_transition_sec[i] = transition[i - 1]`` and ``[0] = transition[-1]``;
      ``default_transition_sec`` is the most common of these and the override is enabled
      where a value differs from it.
    - ``camera_path``: the baked path at its own length (``bake_path(path)``), one entry per
      frame: ``camera_to_world``, ``fov``, ``aspect``.
    - ``render_height`` / ``render_width``: the project's video size; ``fps``: the path's;
      ``seconds`` = frames / fps (so ``ns-render`` plays every baked frame at the path's fps);
      ``is_cycle``: the path's loop flag; ``default_fov``: the first keyframe's fov;
      ``camera_type``: "perspective".
    - ``smoothness_value``: nerfstudio's spline is a Kochanek-Bartels spline whose tension is
      its "smoothness" slider (0 = Catmull-Rom, 1 = tight), the same parameter as the studio's
      ``PathSettings.tension``: written as it is; a negative tension (which nerfstudio's
      slider cannot express) is written as 0, with a warning.
    - ``worldstudio``: an extension object nerfstudio ignores, holding what its format cannot
      say (keyframe ids and easings, the exact tension, the look-at point), so a round trip
      through the studio is lossless. Easing and look-at are warned about: nerfstudio's own
      interpolation ignores them (the baked ``camera_path`` is exact either way; with a
      look-at point the keyframe matrices are the baked poses at the keyframes, facing it).

Import (:func:`import_nerfstudio`) into an existing project replaces its camera path:
    - keyframes from ``keyframes`` (matrix, fov, override transitions, as above), with
      ``fps``, ``is_cycle`` and ``smoothness_value`` as path settings (and the ``worldstudio``
      extension when present and consistent). A missing ``default_transition_sec`` is 0.5 s,
      as in nerfstudio's loader. Keyframe matrices written column-major (by nerfstudio's
      legacy three.js viewer) are recognised by their bottom row and transposed.
    - a file with only a baked ``camera_path`` gets keyframes fitted to it (reproducing every
      pose to 1e-5, see :func:`worldstudio.core.interop.liveworld.trajectory_keyframes`).
    - when both are present and the studio's bake of the keyframes differs from the file's
      baked path (nerfstudio's spline timing is not the studio's), the keyframes win and the
      warning gives the largest difference.
    - malformed input (missing keys, matrices without 16 finite numbers, non-rigid matrices,
      fov outside (0, 180), non-positive transitions) is a FormatError naming the file and the
      entry, e.g. ``keyframes[2].matrix``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from worldstudio.core.errors import FormatError, WorldStudioError
from worldstudio.core.fileio import parse_json, read_regular_file
from worldstudio.core.project import (
    CameraPath,
    Keyframe,
    PathSettings,
    Project,
    ProjectFolder,
    atomic_write_bytes,
)

EXTENSION_KEY = "worldstudio"
DEFAULT_TRANSITION_SEC = 0.5  # nerfstudio's loader default
_BOTTOM = np.array([0.0, 0.0, 0.0, 1.0])
_ROT_TOL = 1e-3
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 50_000  # keyframes or baked frames: 52 minutes at 16 fps


def _flat(m: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(m, dtype=np.float64).reshape(16)]


def nerfstudio_dict(project: Project) -> tuple[dict[str, Any], list[str]]:
    """The camera_path.json content for a project, and warnings (see the module docstring)."""
    from worldstudio.core.geometry.path import bake_path, keyframe_pose
    from worldstudio.core.geometry.transforms import opencv_to_opengl

    path = project.camera_path
    if not path.keyframes:
        raise WorldStudioError("the camera path has no keyframes to export")
    s = path.settings
    kfs = path.keyframes
    warnings: list[str] = []
    w, h = project.generation.width, project.generation.height
    aspect = w / h
    baked = bake_path(path)

    into = [float(kfs[-1].transition)] + [float(k.transition) for k in kfs[:-1]]
    default_transition = Counter(into).most_common(1)[0][0]
    keyframes = []
    for i, kf in enumerate(kfs):
        pose = keyframe_pose(kf)
        if (
            s.look_at is not None
            and i < len(baked.keyframe_frames)
            and baked.keyframe_frames[i] < len(baked)
        ):
            pose = baked.c2w[baked.keyframe_frames[i]]
        keyframes.append(
            {
                "matrix": _flat(opencv_to_opengl(pose)),
                "fov": float(kf.fov),
                "aspect": aspect,
                "override_transition_enabled": into[i] != default_transition,
                "override_transition_sec": into[i],
            }
        )
    if s.tension < 0:
        warnings.append(
            f"the path's tension {s.tension:g} is negative; nerfstudio's smoothness goes from 0 "
            "to 1, so 0 is written (the baked camera_path is exact)"
        )
    if any(k.easing != "linear" for k in kfs):
        warnings.append(
            "nerfstudio ignores keyframe easing; the baked camera_path keeps its timing"
        )
    if s.look_at is not None:
        warnings.append(
            "nerfstudio has no look-at point; keyframes are written facing it and the baked "
            "camera_path is exact"
        )
    frames = [
        {"camera_to_world": _flat(m), "fov": float(f), "aspect": aspect}
        for m, f in zip(opencv_to_opengl(baked.c2w), baked.fov, strict=True)
    ]
    data = {
        "camera_type": "perspective",
        "render_height": int(h),
        "render_width": int(w),
        "fps": int(s.fps),
        "seconds": len(baked) / s.fps,
        "is_cycle": bool(s.loop),
        "smoothness_value": float(max(0.0, s.tension)),
        "default_fov": float(kfs[0].fov),
        "default_transition_sec": float(default_transition),
        "keyframes": keyframes,
        "camera_path": frames,
        EXTENSION_KEY: {
            "version": 1,
            "convention": "studio poses are OpenCV c2w; matrices here are OpenGL, row-major",
            "tension": float(s.tension),
            "look_at": None if s.look_at is None else [float(v) for v in s.look_at],
            "keyframes": [{"id": k.id, "easing": k.easing} for k in kfs],
        },
    }
    return data, warnings


def export_nerfstudio(
    project_dir: str | os.PathLike, out_json: str | os.PathLike
) -> tuple[Path, list[str]]:
    """Write the project's camera path as a nerfstudio camera_path.json (atomically)."""
    project = ProjectFolder(project_dir).load()
    data, warnings = nerfstudio_dict(project)
    out = Path(out_json)
    try:
        atomic_write_bytes(out, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    except OSError as exc:
        raise WorldStudioError(f"{out}: cannot be written ({exc.strerror or exc})") from exc
    return out, warnings


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _number(path: Path, value: Any, where: str) -> float:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1e300:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        shown = f"{value!r}"[:40] if not isinstance(value, int) else "a huge integer"
        raise FormatError(f"{path}: '{where}' must be a finite number, got {shown}")
    return value


def _matrix(path: Path, value: Any, where: str, warnings: list[str]) -> np.ndarray:
    """An OpenCV c2w 4x4 from a flattened OpenGL matrix; FormatError naming ``where``."""
    from worldstudio.core.geometry.transforms import opengl_to_opencv

    if not isinstance(value, list) or len(value) != 16:
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise FormatError(
            f"{path}: '{where}' must be a list of 16 numbers (a flattened 4x4), got {n}"
        )
    vals = [_number(path, v, f"{where}[{i}]") for i, v in enumerate(value)]
    m = np.array(vals, dtype=np.float64).reshape(4, 4)
    if np.max(np.abs(m[3] - _BOTTOM)) > 1e-6:
        if np.max(np.abs(m[:, 3] - _BOTTOM)) <= 1e-6:
            m = m.T.copy()
            msg = f"{path}: matrices stored column-major (legacy nerfstudio viewer) were transposed"
            if msg not in warnings:
                warnings.append(msg)
        else:
            raise FormatError(
                f"{path}: '{where}' is not a camera pose (bottom row {m[3].tolist()})"
            )
    R = m[:3, :3]
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: refused just below
        ortho = float(np.max(np.abs(R.T @ R - np.eye(3))))
        det = float(np.linalg.det(R))
    if not (ortho <= _ROT_TOL and abs(det - 1.0) <= _ROT_TOL):  # NaN fails too
        raise FormatError(
            f"{path}: '{where}' is not a rigid camera pose (rotation determinant {det:.4g}, "
            f"orthonormality error {ortho:.2g})"
        )
    return opengl_to_opencv(m)


def _fov(path: Path, value: Any, where: str) -> float:
    v = _number(path, value, where)
    if not 0.0 < v < 180.0:
        raise FormatError(
            f"{path}: '{where}' must be a field of view between 0 and 180 degrees, got {v:g}"
        )
    return v


def read_nerfstudio(json_path: str | os.PathLike) -> tuple[CameraPath, list[str]]:
    """The camera path described by a nerfstudio camera_path.json, and warnings. The path is
    baked once before it is returned, so a path the studio cannot use is refused here."""
    json_path = Path(json_path)
    return _camera_path(_read_json(json_path), json_path)


def _read_json(json_path: Path) -> Any:
    raw = read_regular_file(json_path, MAX_FILE_BYTES, FormatError, "camera path file")
    return parse_json(raw, str(json_path), FormatError)


def _camera_path(data: Any, json_path: Path) -> tuple[CameraPath, list[str]]:
    try:
        path, warnings = _parse(data, json_path)
    except RecursionError:
        raise FormatError(f"{json_path}: nested too deeply") from None
    except MemoryError:
        raise FormatError(f"{json_path}: too large to read") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])[:100]
        raise FormatError(f"{json_path}: {where}: {first['msg'][:200]}") from None
    from worldstudio.core.geometry.path import bake_path

    try:  # what `info` and the preview will do: a path they refuse is refused here
        bake_path(path)
    except WorldStudioError as exc:
        raise FormatError(f"{json_path}: {exc}") from None
    return path, warnings


def _parse(data: Any, json_path: Path) -> tuple[CameraPath, list[str]]:
    from worldstudio.core.geometry.path import bake_path, keyframe_from_pose

    if not isinstance(data, dict):
        raise FormatError(f"{json_path}: expected a JSON object at the top level")
    warnings: list[str] = []

    # settings
    if "fps" not in data:
        raise FormatError(f"{json_path}: key 'fps' is missing")
    fps_f = _number(json_path, data["fps"], "fps")
    fps = int(round(fps_f))
    if not 1 <= fps <= 240:
        raise FormatError(f"{json_path}: 'fps' must be between 1 and 240, got {fps_f:g}")
    if abs(fps - fps_f) > 1e-9:
        warnings.append(
            f"{json_path}: fps {fps_f:g} rounded to {fps} (the studio uses whole frame rates)"
        )
    loop = data.get("is_cycle", False)
    if not isinstance(loop, bool):
        raise FormatError(f"{json_path}: 'is_cycle' must be true or false, got {loop!r}")
    tension = _number(json_path, data.get("smoothness_value", 0.0), "smoothness_value")
    if not -1.0 <= tension <= 1.0:
        raise FormatError(
            f"{json_path}: 'smoothness_value' must be between 0 and 1, got {tension:g}"
        )
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        warnings.append(
            f"{json_path}: camera_type {camera_type!r}: the studio renders perspective cameras"
        )
    default_fov = data.get("default_fov")
    default_transition = _number(
        json_path,
        data.get("default_transition_sec", DEFAULT_TRANSITION_SEC),
        "default_transition_sec",
    )
    look_at = None

    raw_kfs = data.get("keyframes", [])
    if not isinstance(raw_kfs, list):
        raise FormatError(f"{json_path}: 'keyframes' must be a list")
    raw_frames = data.get("camera_path")
    if raw_frames is not None and not isinstance(raw_frames, list):
        raise FormatError(f"{json_path}: 'camera_path' must be a list")
    if not raw_kfs and not raw_frames:
        raise FormatError(
            f"{json_path}: key 'keyframes' is missing or empty (and there is no camera_path)"
        )
    for key, items in (("keyframes", raw_kfs), ("camera_path", raw_frames or [])):
        if len(items) > MAX_ENTRIES:
            raise FormatError(
                f"{json_path}: '{key}' has {len(items)} entries, more than the {MAX_ENTRIES} "
                "the studio imports"
            )

    baked_file: tuple[np.ndarray, np.ndarray] | None = None
    if raw_frames:
        mats: list[np.ndarray] = []
        fovs: list[float] = []
        for i, fr in enumerate(raw_frames):
            where = f"camera_path[{i}]"
            if not isinstance(fr, dict):
                raise FormatError(f"{json_path}: '{where}' must be an object")
            if "camera_to_world" not in fr:
                raise FormatError(f"{json_path}: '{where}.camera_to_world' is missing")
            mats.append(
                _matrix(json_path, fr["camera_to_world"], f"{where}.camera_to_world", warnings)
            )
            fv = fr.get("fov", default_fov)
            if fv is None:
                raise FormatError(f"{json_path}: '{where}.fov' is missing")
            fovs.append(_fov(json_path, fv, f"{where}.fov"))
        baked_file = (np.stack(mats), np.array(fovs))

    ext = data.get(EXTENSION_KEY) if isinstance(data.get(EXTENSION_KEY), dict) else None

    if raw_kfs:
        poses, kfovs, into = [], [], []
        for i, kf in enumerate(raw_kfs):
            where = f"keyframes[{i}]"
            if not isinstance(kf, dict):
                raise FormatError(f"{json_path}: '{where}' must be an object")
            if "matrix" not in kf:
                raise FormatError(f"{json_path}: '{where}.matrix' is missing")
            poses.append(_matrix(json_path, kf["matrix"], f"{where}.matrix", warnings))
            fv = kf.get("fov", default_fov)
            if fv is None:
                raise FormatError(f"{json_path}: '{where}.fov' is missing")
            kfovs.append(_fov(json_path, fv, f"{where}.fov"))
            enabled = kf.get("override_transition_enabled", False)
            sec = kf.get("override_transition_sec")
            t = default_transition
            if enabled and sec is not None:
                t = _number(json_path, sec, f"{where}.override_transition_sec")
            into.append(t)
        K = len(poses)
        # studio transition i = time from keyframe i to i+1 = nerfstudio's "into" of i+1
        leave = [into[(i + 1) % K] for i in range(K)]
        for i, t in enumerate(leave):
            if not 0.0 < t <= 3600.0:
                j = (i + 1) % K
                raise FormatError(
                    f"{json_path}: 'keyframes[{j}].override_transition_sec' (or default_transition_sec) "
                    f"must be between 0 and 3600 seconds, got {t:g}"
                )
        keyframes = [
            keyframe_from_pose(p, fv, transition=t)
            for p, fv, t in zip(poses, kfovs, leave, strict=True)
        ]
        if ext is not None:
            tension, look_at = _apply_extension(json_path, ext, keyframes, tension, warnings)
        path = CameraPath(
            keyframes=keyframes,
            settings=PathSettings(fps=fps, tension=tension, loop=loop, look_at=look_at),
        )
        if baked_file is not None:
            ours = bake_path(path)
            c2w, baked_fov = baked_file
            if len(ours) != len(c2w):
                warnings.append(
                    f"{json_path}: the keyframes bake to {len(ours)} frames in the studio, the file's "
                    f"camera_path has {len(c2w)}; the keyframes were kept"
                )
            else:
                diff = float(
                    max(
                        np.max(np.abs(ours.c2w - c2w)), np.max(np.abs(ours.fov - baked_fov)) / 180.0
                    )
                )
                if diff > 1e-4:
                    warnings.append(
                        f"{json_path}: the studio's spline differs from the file's baked camera_path "
                        f"(by up to {diff:.3g} in a pose matrix entry); the keyframes were kept"
                    )
        return path, warnings

    from worldstudio.core.interop.liveworld import trajectory_keyframes

    assert baked_file is not None  # no keyframes and no camera_path was refused above
    c2w, baked_fov = baked_file
    kfs, how = trajectory_keyframes(c2w, baked_fov, fps)
    warnings.append(
        f"{json_path}: no keyframes; {len(kfs)} keyframes were fitted to the {len(c2w)} baked poses"
        + (" (one per frame)" if how == "per-frame" else "")
    )
    if loop:
        warnings.append(f"{json_path}: is_cycle ignored: the fitted path is open")
    return CameraPath(
        keyframes=kfs, settings=PathSettings(fps=fps, tension=0.0, loop=False)
    ), warnings


def _apply_extension(
    json_path: Path, ext: dict, keyframes: list[Keyframe], tension: float, warnings: list[str]
) -> tuple[float, tuple[float, float, float] | None]:
    """Restore what nerfstudio's format cannot hold; ignored (warned) when inconsistent."""
    from worldstudio.core.geometry.path import EASINGS

    def bad(why: str) -> tuple[float, None]:
        warnings.append(f"{json_path}: the '{EXTENSION_KEY}' section was ignored ({why})")
        return tension, None

    items = ext.get("keyframes")
    if not isinstance(items, list) or len(items) != len(keyframes):
        return bad("its keyframes do not match the file's")
    if not all(isinstance(it, dict) for it in items):
        return bad("its keyframes must be objects")
    ids = [it.get("id") for it in items]
    if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
        return bad("keyframe ids must be unique non-empty strings")
    easings = [it.get("easing", "linear") for it in items]
    if not all(e in EASINGS for e in easings):
        return bad(f"easings must be one of {', '.join(EASINGS)}")
    t = ext.get("tension", tension)
    if isinstance(t, bool) or not isinstance(t, int | float) or not -1.0 <= t <= 1.0:
        return bad("tension must be a number between -1 and 1")
    la = ext.get("look_at")
    look_at = None
    if la is not None:
        if not (
            isinstance(la, list)
            and len(la) == 3
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e300
                for v in la
            )
        ):
            return bad("look_at must be 3 numbers")
        look_at = (float(la[0]), float(la[1]), float(la[2]))
    for kf, kid, easing in zip(keyframes, ids, easings, strict=True):
        kf.id = kid
        kf.easing = easing
    return float(t), look_at


def import_nerfstudio(
    json_path: str | os.PathLike, project_dir: str | os.PathLike
) -> tuple[Project, list[str]]:
    """Replace the camera path of the project in ``project_dir`` with the file's; saves the
    project (atomically) and returns (project, warnings)."""
    folder = ProjectFolder(project_dir)
    project = folder.load()
    json_path = Path(json_path)
    data = _read_json(json_path)
    path, warnings = _camera_path(data, json_path)
    rw, rh = data.get("render_width"), data.get("render_height")
    gen = project.generation
    try:
        rw_f, rh_f = _number(json_path, rw, "render_width"), _number(json_path, rh, "render_height")
    except FormatError:
        rw_f = rh_f = 0.0  # the size only informs a warning
    if rw_f > 0 and rh_f > 0 and abs(rw_f / rh_f - gen.width / gen.height) > 1e-3:
        warnings.append(
            f"{json_path}: rendered at {rw_f:g}x{rh_f:g}; the project's video is "
            f"{gen.width}x{gen.height} (vertical fov kept, so the horizontal view differs)"
        )
    project.camera_path = path
    folder.save(project)
    return project, warnings
