"""The oracle backend: the procedural demo scene's ground-truth frames (tests and the demo).

It ignores the conditioning and ray-casts :class:`worldstudio.core.oracle.OracleScene` for the request's
cameras (``camera_c2w``, ``camera_K``) at its world times (``times``). Only the demo project is
the oracle world; any other project is refused with a clear error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldstudio.core.generation.backends.base import BackendError, GenerationRequest
from worldstudio.core.jobs import JobContext

ORACLE_DEPTH_MODEL = "oracle (exact depth)"


def is_oracle_project(project) -> bool:
    """True for a project whose scene is the oracle (demo) world."""
    scene = getattr(project, "scene", None)
    return scene is not None and (scene.depth_model or "").startswith("oracle")


class OracleBackend:
    """Ground truth of the oracle scene for every requested camera and time."""

    name = "oracle"
    lifter = "oracle"

    def __init__(self, project=None, project_folder=None, scene=None, **options: Any) -> None:
        from worldstudio.core.oracle import OracleScene

        if scene is None:
            if project is not None and not is_oracle_project(project):
                where = getattr(project_folder, "root", None) or getattr(
                    project, "name", "the project"
                )
                raise BackendError(
                    f"backend 'oracle': {where} is not the demo (oracle) scene; the oracle backend only "
                    "renders the procedural demo world (`worldstudio new --demo`): use 'geometry' or a "
                    "model backend for this project"
                )
            scene = OracleScene.demo()
        self.scene = scene

    def required_models(self) -> list[str]:
        return []  # the scene is procedural

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        F, H, W = request.num_frames, request.height, request.width
        if request.camera_c2w is None or request.camera_K is None or request.times is None:
            raise BackendError(
                "backend 'oracle' needs the request's cameras (camera_c2w, camera_K) and times"
            )
        c2w = np.asarray(request.camera_c2w, dtype=np.float64)
        K = np.asarray(request.camera_K, dtype=np.float64)
        times = np.asarray(request.times, dtype=np.float64)
        if c2w.shape != (F, 4, 4) or K.shape != (F, 3, 3) or times.shape != (F,):
            raise BackendError(
                f"backend 'oracle': expected {F} cameras and times, got c2w {c2w.shape}, K {K.shape}, "
                f"times {times.shape}"
            )
        out = np.empty((F, H, W, 3), np.uint8)
        for i in range(F):
            ctx.check_cancelled()
            try:
                out[i] = self.scene.render(c2w[i], K[i], H, W, float(times[i])).rgb
            except ValueError as exc:
                raise BackendError(
                    f"backend 'oracle': frame {i} of {request.camera_id}: {exc}"
                ) from exc
            ctx.progress(i + 1, F, f"frame {i + 1}/{F}")
        ctx.preview(out[-1], f"{request.camera_id}: round {request.round_index + 1}")
        return out

    def close(self) -> None:
        pass
