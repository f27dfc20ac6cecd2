"""The geometry preview: the scene cloud rendered along the baked camera path, no model.

It is how a user checks a path before spending GPU minutes. The render size defaults to the
project's generation size; every baked pose gives one frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from worldstudio.core.jobs import JobContext
from worldstudio.core.project import Project, ProjectFolder


def frame_intrinsics(fov: np.ndarray, height: int, width: int) -> np.ndarray:
    """One K per frame, (B, 3, 3), from per-frame vertical fields of view."""
    from worldstudio.core.geometry.camera import intrinsics_from_fov

    return np.stack([intrinsics_from_fov(float(f), height, width) for f in fov])


def render_preview_job(
    project_folder: str | os.PathLike,
    out_mp4: str | os.PathLike,
    width: int | None = None,
    height: int | None = None,
    radius: int = 0,
    batch: int = 8,
    project: Project | None = None,
) -> Callable[[JobContext], Path]:
    """A job that writes the geometry preview of a project to ``out_mp4``.

    ``project`` is the model to render (the studio passes its in-memory one, unsaved edits
    included); by default the project is read from its folder.
    """

    def job(ctx: JobContext) -> Path:
        from worldstudio.core.geometry.path import bake_path
        from worldstudio.core.media import VideoWriter
        from worldstudio.core.pointcloud.render import render_points

        folder = ProjectFolder(project_folder)
        model = project if project is not None else folder.load()
        w = width or model.generation.width
        h = height or model.generation.height
        cloud = folder.read_cloud(model)
        baked = bake_path(model.camera_path)
        n = len(baked.c2w)
        with VideoWriter(out_mp4, fps=model.camera_path.settings.fps) as writer:
            ctx.progress(0, n, "rendering")
            for start in range(0, n, batch):
                ctx.check_cancelled()
                stop = min(start + batch, n)
                K = frame_intrinsics(baked.fov[start:stop], h, w)
                result = render_points(
                    cloud.xyz, cloud.rgb, baked.c2w[start:stop], K, h, w, radius=radius
                )
                frames = result.rgb.cpu().numpy()
                for i, frame in enumerate(frames):
                    writer.write(frame)
                    if i == len(frames) - 1:
                        ctx.preview(frame, f"frame {stop}/{n}")
                ctx.progress(stop, n, f"frame {stop}/{n}")
        return Path(out_mp4)

    return job
