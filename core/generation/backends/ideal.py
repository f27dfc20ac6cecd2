"""The ``ideal`` backend: what a perfect conditional model would do with the conditioning.

It knows the static world (the oracle scene with the ball taken out) but learns where the
entities are only from its inputs, like a model that obeys its mask and control video:

- pixels the request marks **keep** (mask False) are copied from the control video: the
  foreground projection over the scene projection, as VACE would see it;
- pixels it **generates** show the oracle's static scene for that camera, except where the
  observer's foreground projection shows an entity: there it draws the foreground pixel (the
  hint it was given);
- a **monitor** call is where entity motion is generated (from the prompt): it also draws its
  watched entities where the oracle's motion puts them at each frame's time, but only inside the
  pixels its mask lets it generate (it cannot paint over "keep"). It draws no hints.

An observer call never reads the entities' true state. Each call records what it drew: the depth
of every pixel (the oracle's static or entity depth where it generated, the request's depths
where it kept) and, per entity, the pixels it drew of it. The ``ideal`` lifter
(:class:`worldstudio.core.generation.lift.IdealLifter`) returns exactly that record for the
frames it is asked to lift, so the engine's state comes from what was drawn, never from the
oracle. Runs on the demo (oracle) project only, and uses no previous frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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


@dataclass
class DrawnRecord:
    """What one call drew: depth (F, H, W) float32 and, per entity id, (F, H, W) bool."""

    depth: np.ndarray
    masks: dict[str, np.ndarray]


def frames_key(camera_id: str, frames: np.ndarray) -> tuple[str, bytes]:
    """How a record is found again: the camera and a digest of the frames drawn."""
    return camera_id, hashlib.sha1(np.ascontiguousarray(frames).tobytes()).digest()


def ball_entities(project, scene) -> list[str]:
    """The project entities that are the oracle's ball: the one named like it, else the only one."""
    if project is None:
        return []
    named = [e.id for e in project.entities if e.name == scene.entity_name]
    if not named and len(project.entities) == 1:
        named = [project.entities[0].id]
    return named[:1]


class IdealBackend(BaseBackend):
    """A perfect conditional model of the oracle world (see the module docstring)."""

    name = "ideal"
    lifter = "ideal"
    context_frames = 0

    def __init__(
        self,
        project: Project | None = None,
        project_folder: ProjectFolder | None = None,
        scene=None,
        ball_ids: list[str] | None = None,
        **options: Any,
    ) -> None:
        from worldstudio.core.generation.backends.oracle import is_oracle_project, project_place
        from worldstudio.core.oracle import OracleScene

        if scene is None:
            if project is not None and not is_oracle_project(project):
                where = project_place(project, project_folder)
                raise BackendError(
                    f"backend 'ideal': {where} is not the demo (oracle) scene; the ideal backend "
                    "knows only the procedural demo world (`worldstudio new --demo`)"
                )
            scene = OracleScene.demo()
        self.scene = scene
        self.ball_ids = list(ball_ids) if ball_ids is not None else ball_entities(project, scene)
        self.records: dict[tuple[str, bytes], DrawnRecord] = {}

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        F, H, W = request.num_frames, request.height, request.width
        if request.camera_c2w is None or request.camera_K is None or request.times is None:
            raise BackendError(
                "backend 'ideal' needs the request's cameras (camera_c2w, camera_K) and times"
            )
        c2w = np.asarray(request.camera_c2w, np.float64)
        K = np.asarray(request.camera_K, np.float64)
        times = np.asarray(request.times, np.float64)
        if c2w.shape != (F, 4, 4) or K.shape != (F, 3, 3) or times.shape != (F,):
            raise BackendError(
                f"backend 'ideal': expected {F} cameras and times, got c2w {c2w.shape}, "
                f"K {K.shape}, times {times.shape}"
            )
        ids = list(request.foreground_ids)
        # what it keeps: the control video as VACE sees it (the observer's: the foreground over
        # the scene projection; a monitor's: the scene projection alone), with its depths
        hint = request.role == "observer" and request.foreground_labels is not None
        shown = request.composite() if hint else None
        out = shown if shown is not None else _array(request.control_rgb, (F, H, W, 3), np.uint8)
        fg_rgb = _array(request.foreground_rgb, (F, H, W, 3), np.uint8) if hint else None
        fg_depth = _array(request.foreground_depth, (F, H, W), np.float32) if hint else None
        depth = _array(request.control_depth, (F, H, W), np.float32)
        labels = np.full((F, H, W), -1, np.int16)
        hints = np.full((F, H, W), -1, np.int16)
        if hint:
            hints = np.array(request.foreground_labels, np.int16, copy=True)
            labels = hints.copy()
            on = labels >= 0
            if fg_depth is not None:
                depth[on] = fg_depth[on]
        mask = request.control_mask
        generate = np.ones((F, H, W), bool) if mask is None else np.asarray(mask, bool)
        drawn_ids = (
            [eid for eid in ids if eid in self.ball_ids] if request.role == "monitor" else []
        )
        for i in range(F):
            ctx.check_cancelled()
            gen = generate[i]
            try:
                static = self.scene.render(c2w[i], K[i], H, W, float(times[i]), entity=False)
                moving = (
                    self.scene.render(c2w[i], K[i], H, W, float(times[i])) if drawn_ids else None
                )
            except ValueError as exc:
                raise BackendError(
                    f"backend 'ideal': frame {i} of {request.camera_id}: {exc}"
                ) from exc
            # the static world wherever it generates (the foreground there was only a hint) ...
            kept_fg = labels[i] >= 0
            out[i][gen] = static.rgb[gen]
            depth[i][gen] = static.depth[gen]
            labels[i][gen] = -1
            # ... the observer draws the entities its hint shows ...
            if fg_rgb is not None and fg_depth is not None:
                drawn = gen & kept_fg
                out[i][drawn] = fg_rgb[i][drawn]
                depth[i][drawn] = fg_depth[i][drawn]
                labels[i][drawn] = hints[i][drawn]
            # ... and a monitor draws its entities where their motion puts them
            if moving is not None:
                ball = gen & moving.entity_mask
                out[i][ball] = moving.rgb[ball]
                depth[i][ball] = moving.depth[ball]
                labels[i][ball] = ids.index(drawn_ids[0])
            ctx.progress(i + 1, F, f"frame {i + 1}/{F}")
        masks = {eid: labels == k for k, eid in enumerate(ids)}
        self.records[frames_key(request.camera_id, out)] = DrawnRecord(depth, masks)
        ctx.preview(out[-1], f"{request.camera_id}: round {request.round_index + 1}")
        return out

    def take_record(self, camera_id: str, frames: np.ndarray) -> DrawnRecord | None:
        """The record of the call that drew ``frames`` for ``camera_id`` (removed: a record is
        lifted once), None when this backend drew no such frames."""
        return self.records.pop(frames_key(camera_id, frames), None)

    def close(self) -> None:
        self.records.clear()


def _array(a, shape, dtype) -> np.ndarray:
    if a is None:
        return np.zeros(shape, dtype)
    a = np.array(a, dtype, copy=True)
    if a.shape != shape:
        raise BackendError(f"backend 'ideal': an input is {a.shape}, expected {shape}")
    return a
