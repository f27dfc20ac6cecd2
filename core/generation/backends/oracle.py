"""The oracle backend: the procedural demo scene's ground-truth frames (tests and the demo).

It ignores the conditioning (renders, mask, strength, references, previous frames: it uses
none, ``context_frames = 0``) and ray-casts :class:`worldstudio.core.oracle.OracleScene` for the
request's cameras (``camera_c2w``, ``camera_K``) at its world times (``times``): the truth, to
compare the engine's state with. Only the demo project is the oracle world; any other project is
refused with a clear error. The ``ideal`` backend (:mod:`.ideal`) is the one that obeys the
conditioning.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from worldstudio.core.generation.backends.base import (
    BackendError,
    BaseBackend,
    GenerationRequest,
)
from worldstudio.core.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.project import Project, ProjectFolder

ORACLE_DEPTH_MODEL = "oracle (exact depth)"
RECENT_BYTES = 128 << 20
"""The backend keeps its latest frames up to this size: the oracle lifter asks for the very
frames the backend just drew (same cameras, same times), and ray-casting them again would double
the work of a round."""


def is_oracle_project(project: Project) -> bool:
    """True for a project whose scene is the oracle (demo) world."""
    scene = project.scene
    return scene is not None and (scene.depth_model or "").startswith("oracle")


def project_place(project: Project, project_folder: ProjectFolder | None) -> str:
    """How an error names the project: its folder, else its name."""
    return str(project_folder.root) if project_folder is not None else project.name


class OracleBackend(BaseBackend):
    """Ground truth of the oracle scene for every requested camera and time."""

    name = "oracle"
    lifter = "oracle"
    context_frames = 0

    def __init__(
        self,
        project: Project | None = None,
        project_folder: ProjectFolder | None = None,
        scene=None,
        **options: Any,
    ) -> None:
        from worldstudio.core.oracle import OracleScene

        if scene is None:
            if project is not None and not is_oracle_project(project):
                where = project_place(project, project_folder)
                raise BackendError(
                    f"backend 'oracle': {where} is not the demo (oracle) scene; the oracle backend only "
                    "renders the procedural demo world (`worldstudio new --demo`): use 'geometry' or a "
                    "model backend for this project"
                )
            scene = OracleScene.demo()
        self.scene = scene
        self._recent: OrderedDict[tuple, Any] = OrderedDict()
        self._recent_bytes = 0

    def frame(self, c2w: np.ndarray, K: np.ndarray, H: int, W: int, t: float):
        """The scene's :class:`~worldstudio.core.oracle.OracleFrame` for one camera and time,
        from the latest frames when it was drawn already (the arrays are the caller's own)."""
        c2w = np.asarray(c2w, np.float64)
        K = np.asarray(K, np.float64)
        key = (c2w.tobytes(), K.tobytes(), int(H), int(W), float(t))
        fr = self._recent.get(key)
        if fr is None:
            fr = self.scene.render(c2w, K, H, W, float(t))
            size = fr.rgb.nbytes + fr.depth.nbytes + fr.entity_mask.nbytes + fr.surface.nbytes
            self._recent[key] = (fr, size)
            self._recent_bytes += size
            while self._recent_bytes > RECENT_BYTES and len(self._recent) > 1:
                _, (_, old) = self._recent.popitem(last=False)
                self._recent_bytes -= old
        else:
            self._recent.move_to_end(key)
            fr = fr[0]
        return replace(
            fr,
            rgb=fr.rgb.copy(),
            depth=fr.depth.copy(),
            entity_mask=fr.entity_mask.copy(),
            surface=fr.surface.copy(),
        )

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
                out[i] = self.frame(c2w[i], K[i], H, W, float(times[i])).rgb
            except ValueError as exc:
                raise BackendError(
                    f"backend 'oracle': frame {i} of {request.camera_id}: {exc}"
                ) from exc
            ctx.progress(i + 1, F, f"frame {i + 1}/{F}")
        ctx.preview(out[-1], f"{request.camera_id}: round {request.round_index + 1}")
        return out

    def close(self) -> None:
        self._recent.clear()
        self._recent_bytes = 0
