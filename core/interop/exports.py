"""Exports: point clouds as PLY (optionally with the camera path drawn in), the baked path as
JSON or CSV, and mp4 videos of generation runs (``worldstudio export``,
:mod:`worldstudio.core.cli.export_cmd`).

PLY (:func:`export_scene_ply`, :func:`export_run_ply`)
    The scene cloud (``scene.points_file``) or a run's per-round clouds (every
    ``runs/<id>/round_XXX/*.ply`` of a round, concatenated). With ``with_path`` the camera path
    and the cameras are added as coloured points (entity id -1): the baked path as a polyline
    (yellow, turning red towards its end), each keyframe's frustum (orange; at most 64, evenly
    picked, for dense paths) and each monitor's frustum (cyan; grey when disabled). Frustums are drawn as their 8 edges with a depth of 5%
    of the cloud's extent (2nd to 98th percentile box diagonal), points every 1/40 of that.

Baked path (:func:`baked_path_records`, :func:`export_path_json`, :func:`export_path_csv`)
    One record per frame: ``index``, ``time`` (s), ``c2w`` (16 numbers, row-major, OpenCV
    camera axes, camera-to-world), ``position`` (3), ``quaternion_wxyz`` (4), ``fov`` (vertical,
    degrees), ``fx``, ``fy``, ``cx``, ``cy`` (pixels), ``width``, ``height`` (the project's video
    size). ``frames="video"`` (the default) gives one record per frame of the generated video
    (``bake_path(path, n_frames=rounds * frames_per_round)``: the path held on its last pose
    or cut), so record i goes with frame i of a run's mp4; ``frames="path"`` gives the path
    at its own length. The CSV has the columns index, time, m00..m33, px, py, pz, qw, qx, qy,
    qz, fov, fx, fy, cx, cy, width, height; floats are written with full precision.

Runs (:func:`export_run_mp4`, :func:`export_run_ply`) are read through
:class:`~worldstudio.core.project.runs.RunFolder` (the layout is defined there): each round's
``observer.mp4``, ``renders.mp4`` and ``monitors/<id>.mp4``, its clouds (``*.ply``), and
``final.mp4`` (the observer layout falls back to it when no round has an observer clip). The
video runs at the run's own fps (run.json settings), else the project's.

Rounds are concatenated as they are (no frame is dropped at round boundaries). Layouts:
``observer`` (the observer's frames), ``combined`` (the observer with the monitors stacked in a
column on its right, each labelled with its name, black while a monitor has no frame; disabled
monitors only when they have clips in the run) and ``conditioning`` (the observer with the
conditioning renders on its right).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import Project, ProjectFolder, atomic_write_bytes
from worldstudio.core.project.runs import RunFolder, run_by_id

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.pointcloud import PointCloud

Layout = Literal["observer", "combined", "conditioning"]
LAYOUTS: tuple[str, ...] = ("observer", "combined", "conditioning")
FrameSelection = Literal["video", "path"]

PATH_COLOR_START = (255, 220, 0)
PATH_COLOR_END = (255, 40, 0)
KEYFRAME_COLOR = (255, 130, 0)
MONITOR_COLOR = (0, 200, 255)
MONITOR_OFF_COLOR = (140, 140, 140)
MAX_KEYFRAME_FRUSTUMS = 64
"""Paths with more keyframes (e.g. one per frame after an import) get every k-th drawn."""


def _job(ctx: JobContext | None) -> JobContext:
    return ctx if ctx is not None else JobContext()


# --------------------------------------------------------------------------------------------
# Point clouds
# --------------------------------------------------------------------------------------------


def _make_cloud(xyz: np.ndarray, rgb: np.ndarray) -> PointCloud:
    """A cloud of overlay points: entity id -1 (static world) on every point."""
    from worldstudio.core.pointcloud.cloud import STATIC_ENTITY, PointCloud

    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    return PointCloud(xyz, rgb, np.full(len(xyz), STATIC_ENTITY, np.int32))


def _concat(clouds: list[PointCloud]) -> PointCloud:
    from worldstudio.core.pointcloud.cloud import PointCloud

    return PointCloud.concat(clouds)


def segment_points(a: np.ndarray, b: np.ndarray, spacing: float) -> np.ndarray:
    """Points from a to b (both included) no further apart than ``spacing``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = max(1, int(math.ceil(float(np.linalg.norm(b - a)) / spacing)))
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    return a + t * (b - a)


def frustum_points(
    c2w: np.ndarray, fov_deg: float, aspect: float, depth: float, spacing: float
) -> np.ndarray:
    """Points (M, 3) along the 8 edges of a camera's viewing pyramid (apex at the camera,
    base ``depth`` ahead along +z, OpenCV axes, vertical ``fov_deg``, width/height ``aspect``)."""
    c2w = np.asarray(c2w, np.float64)
    ty = math.tan(math.radians(fov_deg) / 2.0) * depth
    tx = ty * aspect
    corners_cam = np.array([[-tx, -ty, depth], [tx, -ty, depth], [tx, ty, depth], [-tx, ty, depth]])
    corners = corners_cam @ c2w[:3, :3].T + c2w[:3, 3]
    apex = c2w[:3, 3]
    parts = [segment_points(apex, c, spacing) for c in corners]
    parts += [segment_points(corners[i], corners[(i + 1) % 4], spacing) for i in range(4)]
    return np.concatenate(parts)


def _scene_scale(xyz: np.ndarray, fallback: np.ndarray) -> float:
    pts = xyz if len(xyz) >= 2 else fallback
    if len(pts) < 2:
        return 1.0
    lo, hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)
    d = float(np.linalg.norm(hi - lo))
    return d if d > 1e-9 and math.isfinite(d) else 1.0


def camera_overlay(project: Project, scale: float) -> PointCloud:
    """The camera path and frustums of a project as a coloured PointCloud (entity id -1)."""
    from worldstudio.core.geometry.path import bake_path
    from worldstudio.core.geometry.transforms import pose_matrix

    depth = 0.05 * scale
    spacing = depth / 40.0
    aspect = project.generation.width / project.generation.height
    xyz_parts: list[np.ndarray] = []
    rgb_parts: list[np.ndarray] = []

    def add(points: np.ndarray, color: tuple[int, int, int]) -> None:
        xyz_parts.append(points)
        rgb_parts.append(np.broadcast_to(np.asarray(color, np.uint8), (len(points), 3)))

    path = project.camera_path
    if path.keyframes:
        baked = bake_path(path)
        pos = baked.positions
        if len(pos) == 1:
            add(pos, PATH_COLOR_START)
        for i in range(len(pos) - 1):
            pts = segment_points(pos[i], pos[i + 1], spacing)
            t = (i + np.linspace(0, 1, len(pts))) / max(1, len(pos) - 1)
            start, end = np.array(PATH_COLOR_START, float), np.array(PATH_COLOR_END, float)
            xyz_parts.append(pts)
            rgb_parts.append(np.round(start + t[:, None] * (end - start)).astype(np.uint8))
        step = max(1, math.ceil(len(path.keyframes) / MAX_KEYFRAME_FRUSTUMS))
        for k, kf in enumerate(path.keyframes):
            if k % step and k != len(path.keyframes) - 1:
                continue
            frame = baked.keyframe_frames[k] if k < len(baked.keyframe_frames) else None
            pose = (
                baked.c2w[frame]
                if path.settings.look_at is not None and frame is not None and frame < len(baked)
                else pose_matrix(kf.position, kf.orientation)
            )
            add(frustum_points(pose, kf.fov, aspect, depth, spacing), KEYFRAME_COLOR)
    for m in project.monitors:
        pose = pose_matrix(m.pose.position, m.pose.orientation)
        add(
            frustum_points(pose, m.fov, aspect, depth * 1.5, spacing),
            MONITOR_COLOR if m.enabled else MONITOR_OFF_COLOR,
        )
    if not xyz_parts:
        return _make_cloud(np.zeros((0, 3)), np.zeros((0, 3)))
    return _make_cloud(np.concatenate(xyz_parts), np.concatenate(rgb_parts))


def with_camera_overlay(cloud: PointCloud, project: Project) -> PointCloud:
    """``cloud`` plus :func:`camera_overlay` scaled to it."""
    from worldstudio.core.geometry.path import bake_path

    xyz = np.asarray(cloud.xyz, np.float64)
    fallback = (
        bake_path(project.camera_path).positions
        if project.camera_path.keyframes
        else np.zeros((0, 3))
    )
    return _concat([cloud, camera_overlay(project, _scene_scale(xyz, fallback))])


def _write_ply(path: Path, cloud: PointCloud) -> None:
    from worldstudio.core.pointcloud.ply import write_ply

    write_ply(path, cloud)  # creates the folder, with a clear error when it cannot


def export_scene_ply(
    project_dir: str | os.PathLike, out: str | os.PathLike, with_path: bool = False
) -> tuple[Path, int]:
    """The scene cloud (plus the cameras with ``with_path``) as binary PLY: (path, points)."""
    folder = ProjectFolder(project_dir)
    project = folder.load()
    cloud = folder.read_cloud(project)
    if with_path:
        cloud = with_camera_overlay(cloud, project)
    out = Path(out)
    _write_ply(out, cloud)
    return out, len(cloud.xyz)


def export_run_ply(
    project_dir: str | os.PathLike,
    run_id: str,
    out: str | os.PathLike,
    round_index: int | None = None,
    with_path: bool = False,
) -> list[tuple[Path, int]]:
    """A run's per-round clouds as PLY: one round (``round_index``) to ``out``, or every round
    with clouds to ``<out stem>_round_XXX.ply`` beside ``out``. Returns [(path, points)]."""
    folder = ProjectFolder(project_dir)
    project = folder.load()
    run = run_by_id(folder, run_id)
    rounds = run.round_indices()
    if round_index is not None:
        if round_index not in rounds:
            raise WorldStudioError(f"{run.path}: no {run.round_dir(round_index).name} folder")
        rounds = [round_index]
    out = Path(out)
    results = []
    for i in rounds:
        cloud = run.round_cloud(i)
        if cloud is None:
            if round_index is not None:
                raise WorldStudioError(f"{run.round_dir(i)}: the round has no point cloud (*.ply)")
            continue
        if with_path:
            cloud = with_camera_overlay(cloud, project)
        target = (
            out
            if round_index is not None
            else out.with_name(f"{out.stem}_round_{i:03d}{out.suffix or '.ply'}")
        )
        _write_ply(target, cloud)
        results.append((target, len(cloud.xyz)))
    if not results:
        raise WorldStudioError(f"{run.path}: no round has a point cloud (round_XXX/*.ply)")
    return results


# --------------------------------------------------------------------------------------------
# The baked path as JSON / CSV
# --------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    ["index", "time"]
    + [f"m{r}{c}" for r in range(4) for c in range(4)]
    + ["px", "py", "pz", "qw", "qx", "qy", "qz", "fov", "fx", "fy", "cx", "cy", "width", "height"]
)


def baked_path_records(project: Project, frames: FrameSelection = "video") -> list[dict[str, Any]]:
    """One record per frame (see the module docstring)."""
    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.geometry.path import bake_path
    from worldstudio.core.geometry.transforms import pose_from_matrix

    if frames not in ("video", "path"):
        raise WorldStudioError(f"frames must be 'video' or 'path', got {frames!r}")
    path = project.camera_path
    if not path.keyframes:
        raise WorldStudioError("the camera path has no keyframes to export")
    baked = bake_path(path, n_frames=project.total_frames if frames == "video" else None)
    w, h = project.generation.width, project.generation.height
    out = []
    for i, (m, fov, t) in enumerate(zip(baked.c2w, baked.fov, baked.times, strict=True)):
        p, q = pose_from_matrix(m)
        K = intrinsics_from_fov(float(fov), h, w)
        out.append(
            {
                "index": i,
                "time": float(t),
                "c2w": [float(v) for v in m.reshape(16)],
                "position": [float(v) for v in p],
                "quaternion_wxyz": [float(v) for v in q],
                "fov": float(fov),
                "fx": float(K[0, 0]),
                "fy": float(K[1, 1]),
                "cx": float(K[0, 2]),
                "cy": float(K[1, 2]),
                "width": int(w),
                "height": int(h),
            }
        )
    return out


def export_path_json(
    project_dir: str | os.PathLike, out: str | os.PathLike, frames: FrameSelection = "video"
) -> tuple[Path, int]:
    project = ProjectFolder(project_dir).load()
    records = baked_path_records(project, frames)
    data = {
        "format": "worldstudio.baked_path",
        "version": 1,
        "project": project.name,
        "convention": "OpenCV camera axes (x right, y down, z forward); c2w camera-to-world, "
        "row-major; fov vertical in degrees; intrinsics in pixels for width x height",
        "fps": project.camera_path.settings.fps,
        "frames_of": frames,
        "width": project.generation.width,
        "height": project.generation.height,
        "frames": records,
    }
    out = Path(out)
    atomic_write_bytes(out, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    return out, len(records)


def export_path_csv(
    project_dir: str | os.PathLike, out: str | os.PathLike, frames: FrameSelection = "video"
) -> tuple[Path, int]:
    project = ProjectFolder(project_dir).load()
    records = baked_path_records(project, frames)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow(
            [r["index"], repr(r["time"])]
            + [repr(v) for v in r["c2w"]]
            + [repr(v) for v in r["position"] + r["quaternion_wxyz"]]
            + [repr(r[k]) for k in ("fov", "fx", "fy", "cx", "cy")]
            + [r["width"], r["height"]]
        )
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue().encode("utf-8"))
    return out, len(records)


# --------------------------------------------------------------------------------------------
# Runs as mp4
# --------------------------------------------------------------------------------------------


def clip_frames(path: Path | None) -> Iterator[np.ndarray]:
    """The frames of a run's mp4 (nothing for None or a missing file)."""
    if path is None or not path.is_file():
        return iter(())
    from worldstudio.core.media import read_frames

    return read_frames(path)


def _resize(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    if frame.shape[:2] == (h, w):
        return frame
    import cv2

    interp = cv2.INTER_AREA if frame.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    tile = np.array(tile, dtype=np.uint8, copy=True)  # decoded frames are read-only
    scale = max(0.3, tile.shape[0] / 400.0)
    thick = max(1, int(round(scale * 1.5)))
    org = (4, 4 + int(14 * scale))
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(
        tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
    )
    return tile


def compose_combined(
    observer: np.ndarray, monitors: list[tuple[str, np.ndarray | None]], aspect: float
) -> np.ndarray:
    """The observer frame with the monitors stacked in a column on its right."""
    h, w = observer.shape[:2]
    n = max(1, len(monitors))
    th = h // n
    tw = max(2, int(round(th * aspect)))
    panel = np.zeros((h, tw, 3), np.uint8)
    for i, (name, frame) in enumerate(monitors):
        tile = np.zeros((th, tw, 3), np.uint8) if frame is None else _resize(frame, th, tw)
        panel[i * th : (i + 1) * th] = _label(tile, name)
    return np.concatenate([observer, panel], axis=1)


def compose_side_by_side(left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
    h, w = left.shape[:2]
    r = np.zeros_like(left) if right is None else _resize(right, h, w)
    return np.concatenate([left, r], axis=1)


def run_frames(
    project: Project, run: RunFolder, layout: Layout, ctx: JobContext | None = None
) -> Iterator[np.ndarray]:
    """The composed frames of a run for a layout (see the module docstring)."""
    ctx = _job(ctx)
    if layout not in LAYOUTS:
        raise WorldStudioError(f"--layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    rounds = run.round_indices()
    observers = [r for r in rounds if run.observer_mp4(r).is_file()]
    if not observers:
        if layout == "observer" and run.final_mp4.is_file():
            yield from clip_frames(run.final_mp4)
            return
        raise WorldStudioError(f"{run.path}: no observer frames (expected round_000/observer.mp4)")
    # enabled monitors, and disabled ones that still have clips in this run
    monitors = [
        m
        for m in project.monitors
        if m.enabled or any(run.monitor_mp4(r, m.id).is_file() for r in rounds)
    ]
    for k, r in enumerate(observers):
        ctx.check_cancelled()
        ctx.progress(k, len(observers), f"round {r}")
        if layout == "observer":
            yield from clip_frames(run.observer_mp4(r))
            continue
        if layout == "conditioning":
            if not run.renders_mp4(r).is_file():
                raise WorldStudioError(f"{run.round_dir(r)}: no conditioning renders (renders.mp4)")
            others = [clip_frames(run.renders_mp4(r))]
        else:
            if not monitors:
                raise WorldStudioError("the project has no monitors to show beside the observer")
            others = [clip_frames(run.monitor_mp4(r, m.id)) for m in monitors]
        for frame in clip_frames(run.observer_mp4(r)):
            extra = [next(it, None) for it in others]
            if layout == "conditioning":
                yield compose_side_by_side(frame, extra[0])
            else:
                gen = project.generation
                yield compose_combined(
                    frame,
                    [(m.name, f) for m, f in zip(monitors, extra, strict=True)],
                    gen.width / gen.height,
                )
    ctx.progress(len(observers), len(observers), "done")


def export_run_mp4(
    project_dir: str | os.PathLike,
    run_id: str,
    out: str | os.PathLike,
    layout: Layout = "observer",
    ctx: JobContext | None = None,
) -> tuple[Path, int]:
    """Write a run as an H.264 mp4 (nothing is left behind on failure): (path, frames)."""
    from worldstudio.core.media import VideoWriter

    folder = ProjectFolder(project_dir)
    project = folder.load()
    run = run_by_id(folder, run_id)
    fps = run.fps() or float(project.generation.fps)
    with VideoWriter(out, fps=fps) as writer:
        for frame in run_frames(project, run, layout, ctx):
            writer.write(frame)
        n = writer.frames
    return Path(out), n


def export_run_mp4_job(
    project_dir: str | os.PathLike, run_id: str, out: str | os.PathLike, layout: Layout = "observer"
) -> Callable[[JobContext], tuple[Path, int]]:
    return lambda ctx: export_run_mp4(project_dir, run_id, out, layout, ctx)


__all__ = [
    "CSV_COLUMNS",
    "LAYOUTS",
    "baked_path_records",
    "camera_overlay",
    "clip_frames",
    "compose_combined",
    "compose_side_by_side",
    "export_path_csv",
    "export_path_json",
    "export_run_mp4",
    "export_run_mp4_job",
    "export_run_ply",
    "export_scene_ply",
    "frustum_points",
    "run_frames",
    "segment_points",
    "with_camera_overlay",
]
