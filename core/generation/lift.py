"""Lifting generated frames to 3D: per frame, a depth map in world units and a mask per entity.

A :class:`Lifter` answers, for F frames seen from known cameras, where each pixel is (depth) and
which pixels belong to which entity (masks). The engine unprojects entity pixels into per-entity,
per-frame clouds (monitor clips) and grows the static world from the other pixels (observer
rounds). Three lifters:

- :class:`RenderLifter` (geometry backend): the frames ARE the renders, so the render's own depth
  and entity pixels are exact.
- :class:`OracleLifter` (oracle backend): exact depth and entity masks from the oracle scene.
- :class:`ModelLifter` (diffusion backends): a depth model, aligned to the rendered static depth
  by a least-squares scale and shift fitted on background pixels, plus SAM 2 tracking seeded from
  each entity's points rendered into the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.jobs import JobContext


@dataclass
class LiftInput:
    """F generated frames and what the engine knows about their cameras and the world.

    frames (F, H, W, 3) uint8; c2w (F, 4, 4); K (F, 3, 3); times (F,) seconds of world time;
    render_depth (F, H, W) float32: the depth of the conditioning render (static world and
    entities), 0 where nothing was drawn; render_entities: {entity id: (F, H, W) bool} where each
    entity's points won the render; entity_ids: the entities to find in the frames.
    """

    frames: np.ndarray
    c2w: np.ndarray
    K: np.ndarray
    times: np.ndarray
    render_depth: np.ndarray
    render_entities: dict[str, np.ndarray]
    entity_ids: list[str]
    role: str = "observer"
    camera_id: str = "observer"

    @property
    def static_depth(self) -> np.ndarray:
        """Rendered depth where the static world won (0 elsewhere)."""
        d = self.render_depth.copy()
        for m in self.render_entities.values():
            d[m] = 0.0
        return d


@dataclass
class LiftResult:
    """depth (F, H, W) float32 world-unit z-depth, 0 where unknown; masks {entity id: (F, H, W)
    bool} for every requested entity (all False where it is not seen)."""

    depth: np.ndarray
    masks: dict[str, np.ndarray]

    def any_entity(self, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, bool)
        for m in self.masks.values():
            out |= m
        return out


@runtime_checkable
class Lifter(Protocol):
    name: str

    def required_models(self) -> list[str]:
        """The models ``prepare`` and ``lift`` load (catalogue names or local folders), known
        before anything is loaded."""
        ...

    def prepare(self, ctx: JobContext) -> None:
        """Load or find the models it needs, before the run writes anything (a missing model is
        an error before any generation starts)."""
        ...

    def lift(self, data: LiftInput, ctx: JobContext) -> LiftResult: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------- render
class RenderLifter:
    """For frames that are the renders themselves (the geometry backend)."""

    name = "render"

    def required_models(self) -> list[str]:
        return []

    def prepare(self, ctx: JobContext) -> None:
        pass  # needs no model

    def lift(self, data: LiftInput, ctx: JobContext) -> LiftResult:
        shape = data.frames.shape[:3]
        masks = {
            eid: np.asarray(data.render_entities.get(eid, np.zeros(shape, bool)), bool).copy()
            for eid in data.entity_ids
        }
        return LiftResult(np.asarray(data.render_depth, np.float32).copy(), masks)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------- oracle
class OracleLifter:
    """Exact depth and entity masks of the oracle scene (for frames of the oracle backend).

    The oracle's one entity (the ball) is the project entity named like it, else the project's
    only entity; ``entity_map`` overrides that (project entity id -> True for the ball).
    """

    name = "oracle"

    def __init__(self, project=None, scene=None, entity_map: dict[str, bool] | None = None):
        from worldstudio.core.oracle import OracleScene

        self.scene = scene or OracleScene.demo()
        if entity_map is None:
            entity_map = {}
            if project is not None:
                named = [e.id for e in project.entities if e.name == self.scene.entity_name]
                if not named and len(project.entities) == 1:
                    named = [project.entities[0].id]
                entity_map = {eid: True for eid in named[:1]}
        self.ball_ids = [eid for eid, is_ball in entity_map.items() if is_ball]

    def required_models(self) -> list[str]:
        return []

    def prepare(self, ctx: JobContext) -> None:
        pass  # the scene is procedural: no model

    def lift(self, data: LiftInput, ctx: JobContext) -> LiftResult:
        F, H, W = data.frames.shape[:3]
        depth = np.zeros((F, H, W), np.float32)
        ball = np.zeros((F, H, W), bool)
        for i in range(F):
            ctx.check_cancelled()
            fr = self.scene.render(data.c2w[i], data.K[i], H, W, float(data.times[i]))
            depth[i] = fr.depth
            ball[i] = fr.entity_mask
        masks = {
            eid: (ball.copy() if eid in self.ball_ids else np.zeros((F, H, W), bool))
            for eid in data.entity_ids
        }
        return LiftResult(depth, masks)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------- model
def fit_scale_shift(
    pred: np.ndarray,
    ref: np.ndarray,
    mask: np.ndarray,
    *,
    outlier_mad: float = 3.0,
    iterations: int = 3,
) -> tuple[float, float, int] | None:
    """Least-squares ``scale, shift`` with ``scale * pred + shift ~= ref`` over ``mask`` pixels
    (pred and ref finite and > 0 there), robust to outliers: a start from medians and median
    absolute deviations, then a few least-squares refits on the pixels whose residual is within
    ``outlier_mad`` MADs. Returns (scale, shift, pixels used), or None when fewer than 8 pixels
    are usable or the fit has a non-positive scale."""
    pred = np.asarray(pred, np.float64)
    ref = np.asarray(ref, np.float64)
    sel = np.asarray(mask, bool) & np.isfinite(pred) & np.isfinite(ref) & (pred > 0) & (ref > 0)
    x = pred[sel]
    y = ref[sel]
    if x.size < 8:
        return None
    mx, my = float(np.median(x)), float(np.median(y))
    sx, sy = float(np.median(np.abs(x - mx))), float(np.median(np.abs(y - my)))
    if sx > 0 and sy > 0:
        s = sy / sx
        b = my - s * mx
    else:
        s, b = 1.0, my - mx
    used = x.size
    for _ in range(max(1, iterations)):
        r = np.abs(s * x + b - y)
        mad = float(np.median(r))
        keep = r <= outlier_mad * 1.4826 * mad + 1e-9 * max(1.0, abs(my))
        if keep.sum() < 8:
            break
        A = np.stack([x[keep], np.ones(int(keep.sum()))], axis=1)
        (s_new, b_new), *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        s, b, used = float(s_new), float(b_new), int(keep.sum())
    if not (s > 0 and math.isfinite(s) and math.isfinite(b)):
        return None
    return s, b, used


class ModelLifter:
    """Depth model + SAM 2 tracking (core.reconstruct), for frames from a generative model.

    Depth: per frame the depth model's estimate is aligned to the rendered static depth by a
    scale and shift (:func:`fit_scale_shift`) on pixels where the static world was rendered; a
    frame with too little rendered background keeps the raw depth when the model is metric and
    gets no depth otherwise. Masks: each entity is tracked with SAM 2 from the first frame where
    its points were rendered into the view (its last known state), seeded with that render.
    """

    name = "model"

    def __init__(self, depth_model: str | None = None, segmentation_model: str | None = None):
        self.depth_model = depth_model
        self.segmentation_model = segmentation_model
        self._estimator = None

    def required_models(self) -> list[str]:
        from worldstudio.core.models import default_model

        return [
            str(self.depth_model) if self.depth_model else default_model("depth").name,
            str(self.segmentation_model)
            if self.segmentation_model
            else default_model("segmentation").name,
        ]

    def prepare(self, ctx: JobContext) -> None:
        """Load the depth model and find the SAM 2 model now, so that a missing model is an error
        before any generation starts."""
        from worldstudio.core.reconstruct.depth import resolve_model_folder

        self._depth_estimator(ctx)
        resolve_model_folder(self.segmentation_model, "segmentation", ctx)

    def _depth_estimator(self, ctx: JobContext):
        if self._estimator is None:
            from worldstudio.core.reconstruct.depth import load_depth_estimator

            self._estimator = load_depth_estimator(self.depth_model, ctx)
        return self._estimator

    def lift(self, data: LiftInput, ctx: JobContext) -> LiftResult:
        F, H, W = data.frames.shape[:3]
        est = self._depth_estimator(ctx)
        static_ref = data.static_depth
        depth = np.zeros((F, H, W), np.float32)
        for i in range(F):
            ctx.check_cancelled()
            pred = est.predict(np.ascontiguousarray(data.frames[i]))
            raw = pred.depth(focal_px=float(data.K[i][0, 0]))
            fit = fit_scale_shift(raw, static_ref[i], static_ref[i] > 0)
            if fit is not None:
                s, b, _n = fit
                depth[i] = np.maximum(s * raw + b, 0.0).astype(np.float32)
            elif est.metric:
                depth[i] = raw
        masks = self.track(data, ctx)
        return LiftResult(depth, masks)

    def track(self, data: LiftInput, ctx: JobContext) -> dict[str, np.ndarray]:
        from worldstudio.core.reconstruct.track import track_masks

        F, H, W = data.frames.shape[:3]
        masks = {eid: np.zeros((F, H, W), bool) for eid in data.entity_ids}
        # group the entities by the first frame where their render is not empty
        starts: dict[int, dict[str, np.ndarray]] = {}
        for eid in data.entity_ids:
            seed = data.render_entities.get(eid)
            if seed is None:
                continue
            seen = np.flatnonzero(seed.reshape(F, -1).any(axis=1))
            if seen.size:
                k = int(seen[0])
                starts.setdefault(k, {})[eid] = seed[k]
        for k, seeds in sorted(starts.items()):
            tracks = track_masks(
                list(data.frames[k:]), seeds, model=self.segmentation_model, ctx=ctx
            )
            for eid, tr in tracks.items():
                masks[eid][k:] = tr
        return masks

    def close(self) -> None:
        self._estimator = None


def make_lifter(name: str, project=None, **options) -> Lifter:
    """``render``, ``oracle`` or ``model`` (options: depth_model, segmentation_model)."""
    if name == "render":
        return RenderLifter()
    if name == "oracle":
        return OracleLifter(project=project)
    if name == "model":
        return ModelLifter(options.get("depth_model"), options.get("segmentation_model"))
    raise WorldStudioError(f"unknown lifter {name!r}; use render, oracle or model")


def entity_clouds(
    frames: np.ndarray, depth: np.ndarray, mask: np.ndarray, c2w: np.ndarray, K: np.ndarray
):
    """Per frame, the entity's pixels (``mask`` (F, H, W), where the depth is known) unprojected
    to world points: a list of F :class:`~core.generation.world.EntityCloud`."""
    from worldstudio.core.generation.world import EntityCloud
    from worldstudio.core.pointcloud.ops import unproject_depth

    out = []
    for i in range(frames.shape[0]):
        m = mask[i] & np.isfinite(depth[i]) & (depth[i] > 0)
        if not m.any():
            out.append(EntityCloud.empty())
            continue
        pc = unproject_depth(depth[i], K[i], c2w[i], rgb=frames[i], mask=m)
        out.append(EntityCloud(pc.xyz, pc.rgb))
    return out
