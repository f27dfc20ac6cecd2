"""Lifting generated frames to 3D: per frame, a depth map in world units and a mask per entity.

A :class:`Lifter` answers, for F frames seen from known cameras, where each pixel is (depth) and
which pixels belong to which entity (masks). The engine unprojects entity pixels into per-entity,
per-frame clouds (monitor clips) and grows the static world from the other pixels (observer
rounds). Three lifters:

- :class:`RenderLifter` (geometry backend): the frames ARE the renders, so the render's own depth
  and entity pixels are exact.
- :class:`OracleLifter` (oracle backend): exact depth and entity masks from the oracle scene.
- :class:`IdealLifter` (ideal backend): exactly what the ideal backend drew in the frames it is
  given (never the oracle's state).
- :class:`ModelLifter` (diffusion backends): a depth model aligned to the rendered static depth
  in the model's own space (:func:`align_prediction`: a relative model's disparity against
  inverse depth, a metric model's depth against depth; a robust fit on background pixels), its
  unreliable pixels removed (:func:`clean_lifted_depth`), plus SAM 2 tracking seeded from each
  entity's points rendered into the view.

A lifter says where depth is unknown with 0: such pixels never become points (sky and far
background, depth edges, the outline of an entity, stray points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.backends.ideal import IdealBackend
from worldstudio.core.generation.backends.oracle import OracleBackend
from worldstudio.core.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.reconstruct.depth import DepthEstimator


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
    ``frames_from``: the run's oracle backend, whose latest frames are these very frames (its
    ``frame(c2w, K, H, W, t)`` draws a frame only once).
    """

    name = "oracle"

    def __init__(
        self,
        project=None,
        scene=None,
        entity_map: dict[str, bool] | None = None,
        frames_from: OracleBackend | None = None,
    ):
        from worldstudio.core.oracle import OracleScene

        self.scene = scene or (frames_from.scene if frames_from else None) or OracleScene.demo()
        self.frames_from = frames_from
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
            if self.frames_from is not None:
                fr = self.frames_from.frame(data.c2w[i], data.K[i], H, W, float(data.times[i]))
            else:
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


# ---------------------------------------------------------------------------------- ideal
class IdealLifter:
    """What the ideal backend (:mod:`.backends.ideal`) drew: the depth and entity pixels it
    recorded for these very frames (found by camera and content). Frames it did not draw are an
    error: this lifter knows nothing else."""

    name = "ideal"

    def required_models(self) -> list[str]:
        return []

    def __init__(self, backend: IdealBackend) -> None:
        self.backend = backend

    def prepare(self, ctx: JobContext) -> None:
        pass  # needs no model

    def lift(self, data: LiftInput, ctx: JobContext) -> LiftResult:
        record = self.backend.take_record(data.camera_id, data.frames)
        if record is None:
            raise WorldStudioError(
                f"the ideal lifter: the ideal backend drew no such frames for {data.camera_id!r}"
            )
        shape = data.frames.shape[:3]
        masks = {
            eid: record.masks[eid].copy() if eid in record.masks else np.zeros(shape, bool)
            for eid in data.entity_ids
        }
        return LiftResult(record.depth.copy(), masks)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------- model
FAR_FACTOR = 4.0
"""Aligned depth farther than this multiple of the farthest rendered background depth (99.5th
percentile) is unknown: sky and far background, where a fitted inverse depth nears 0 and its
inverse explodes, never become points."""

EDGE_REL_THRESHOLD = 0.05
"""Depth edges (core.pointcloud.ops.remove_depth_edges) of lifted and reference depth."""

ENTITY_BORDER = 2
"""Pixels on either side of an entity's outline whose depth a model lift leaves unknown: depth
models smear the outline between the entity and what is behind it."""


def fit_affine(
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    *,
    inlier_sigmas: float = 3.0,
    iterations: int = 10,
) -> tuple[float, float, int] | None:
    """Robust ``a, b`` with ``a * x + b ~= y`` over ``mask`` pixels (x and y finite there).

    A start from medians and median absolute deviations (which assumes a > 0), then
    iteratively reweighted least squares with 0/1 weights: each refit uses the pixels within
    ``inlier_sigmas`` robust sigmas (1.4826 MAD of the residuals) of the previous fit, until that
    set stops changing. Outliers (an entity that moved, a wrong surface) get no say at all, even
    far out in x: Huber weights bound an outlier's residual but not its leverage, and a few
    percent of pixels at extreme disparities pull a Huber fit off the rest. Returns (a, b, pixels
    used), or None when fewer than 8 pixels are usable or the fit is not finite.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    sel = np.asarray(mask, bool) & np.isfinite(x) & np.isfinite(y)
    x, y = x[sel], y[sel]
    if x.size < 8:
        return None
    mx, my = float(np.median(x)), float(np.median(y))
    sx, sy = float(np.median(np.abs(x - mx))), float(np.median(np.abs(y - my)))
    a = sy / sx if sx > 0 and sy > 0 else 1.0
    b = my - a * mx
    tiny = 1e-9 * max(sy, abs(my), 1e-12)
    used = x.size
    keep = None
    for _ in range(max(1, iterations)):
        r = a * x + b - y
        sigma = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        now = np.abs(r) <= inlier_sigmas * sigma + tiny
        if now.sum() < 8 or (keep is not None and np.array_equal(now, keep)):
            break
        keep = now
        A = np.stack([x[keep], np.ones(int(keep.sum()))], axis=1)
        (a_fit, b_fit), *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        a, b, used = float(a_fit), float(b_fit), int(keep.sum())
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    return a, b, used


def fit_scale_shift(
    pred: np.ndarray, ref: np.ndarray, mask: np.ndarray
) -> tuple[float, float, int] | None:
    """Depth against depth (metric models): robust ``scale, shift`` with ``scale * pred + shift
    ~= ref`` over ``mask`` pixels where both are finite and > 0 (:func:`fit_affine`). None when
    fewer than 8 pixels are usable or the scale is not positive."""
    pred = np.asarray(pred, np.float64)
    ref = np.asarray(ref, np.float64)
    ok = np.asarray(mask, bool) & (pred > 0) & (ref > 0)
    fit = fit_affine(pred, ref, ok)
    if fit is None or not fit[0] > 0:
        return None
    return fit


def fit_disparity(
    disparity: np.ndarray, ref_depth: np.ndarray, mask: np.ndarray
) -> tuple[float, float, int] | None:
    """Disparity against inverse depth (relative models): robust ``a, b`` with ``a * disparity
    + b ~= 1 / ref_depth`` over ``mask`` pixels where the reference depth is > 0
    (:func:`fit_affine`). None when fewer than 8 pixels are usable or a is not positive (a
    disparity grows as things come nearer)."""
    ref = np.asarray(ref_depth, np.float64)
    ok = np.asarray(mask, bool) & np.isfinite(ref) & (ref > 0)
    inverse = np.divide(1.0, ref, out=np.zeros_like(ref), where=ok)
    fit = fit_affine(disparity, inverse, ok)
    if fit is None or not fit[0] > 0:
        return None
    return fit


def alignment_pixels(ref_depth: np.ndarray, entities: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the background pixels an alignment trusts: rendered static depth known, off
    its depth edges, and ``ENTITY_BORDER`` pixels away from any entity (``entities`` (H, W))."""
    from worldstudio.core.pointcloud.ops import dilate_mask, remove_depth_edges

    ok = remove_depth_edges(ref_depth, EDGE_REL_THRESHOLD)
    if entities is not None and entities.any():
        ok &= ~dilate_mask(entities, ENTITY_BORDER)
    return ok


def align_prediction(
    native: np.ndarray, space: str, ref_depth: np.ndarray, background: np.ndarray
) -> np.ndarray | None:
    """A prediction in its own ``space`` ("disparity" or "depth", see
    :meth:`~worldstudio.core.reconstruct.depth.DepthPrediction.native`) aligned to the reference
    depth on ``background`` pixels: float32 (H, W) depth, 0 where unknown.

    Disparity: ``a * disparity + b`` is the inverse depth; where it is at most 1 / far (far:
    :data:`FAR_FACTOR` times the farthest background depth) the depth is unknown, so that sky and
    far background (disparity near the model's own zero) never become finite points. Depth:
    ``scale * depth + shift``, unknown beyond far. None when no fit can be made.
    """
    ref = np.asarray(ref_depth, np.float64)
    bg = np.asarray(background, bool) & np.isfinite(ref) & (ref > 0)
    if bg.sum() < 8:
        return None
    far = FAR_FACTOR * float(np.percentile(ref[bg], 99.5))
    x = np.asarray(native, np.float64)
    if space == "disparity":
        fit = fit_disparity(x, ref, bg)
        if fit is None:
            return None
        a, b, _ = fit
        inverse = a * x + b
        ok = np.isfinite(inverse) & (inverse > 1.0 / far)
        depth = np.divide(1.0, inverse, out=np.zeros_like(inverse), where=ok)
    elif space == "depth":
        fit = fit_scale_shift(x, ref, bg)
        if fit is None:
            return None
        s, b, _ = fit
        depth = s * x + b
        depth = np.where(np.isfinite(depth) & (depth > 0) & (depth <= far), depth, 0.0)
    else:
        raise ValueError(f"unknown prediction space {space!r}; use disparity or depth")
    return depth.astype(np.float32)


def clean_lifted_depth(
    depth: np.ndarray, K: np.ndarray, masks: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """One frame's estimated depth (H, W) with its unreliable pixels set to 0 (unknown): depth
    edges (flying pixels between surfaces), ``ENTITY_BORDER`` pixels on either side of each
    entity's outline (``masks``: entity id -> (H, W) bool), and each entity's statistical
    outliers (core.pointcloud.ops.statistical_outliers on its remaining pixels)."""
    from worldstudio.core.pointcloud.ops import (
        dilate_mask,
        erode_mask,
        remove_depth_edges,
        statistical_outliers,
    )

    out = np.where(remove_depth_edges(depth, EDGE_REL_THRESHOLD), depth, 0.0).astype(np.float32)
    for m in (masks or {}).values():
        if not m.any():
            continue
        inner = erode_mask(m, ENTITY_BORDER)
        out[dilate_mask(m, ENTITY_BORDER) & ~inner] = 0.0
        out[statistical_outliers(out, K, inner)] = 0.0
    return out


class ModelLifter:
    """Depth model + SAM 2 tracking (core.reconstruct), for frames from a generative model.

    Depth: per frame the depth model's prediction is aligned to the rendered static depth in
    its own space (:func:`align_prediction`) on the trusted background pixels
    (:func:`alignment_pixels`); a frame with too little rendered background keeps the raw depth
    when the model is metric and gets no depth otherwise. Masks: each entity is tracked with
    SAM 2 from the first frame where its points were rendered into the view (its last known
    state), seeded with that render. Then :func:`clean_lifted_depth` leaves the unreliable
    pixels' depth unknown (the masks stay as tracked: they still keep the static world from
    growing there).
    """

    name = "model"

    def __init__(self, depth_model: str | None = None, segmentation_model: str | None = None):
        self.depth_model = depth_model
        self.segmentation_model = segmentation_model
        self._estimator: DepthEstimator | None = None

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
        rendered = np.zeros((F, H, W), bool)
        for m in data.render_entities.values():
            rendered |= m
        depth = np.zeros((F, H, W), np.float32)
        for i in range(F):
            ctx.check_cancelled()
            pred = est.predict(np.ascontiguousarray(data.frames[i]))
            native = pred.native(focal_px=float(data.K[i][0, 0]))
            background = alignment_pixels(static_ref[i], rendered[i])
            aligned = align_prediction(native, pred.space, static_ref[i], background)
            if aligned is not None:
                depth[i] = aligned
            elif pred.metric:
                depth[i] = native
        masks = self.track(data, ctx)
        for i in range(F):
            depth[i] = clean_lifted_depth(depth[i], data.K[i], {e: m[i] for e, m in masks.items()})
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
    """``render``, ``oracle``, ``ideal`` (option: backend, the run's ideal backend) or ``model``
    (options: depth_model, segmentation_model)."""
    if name == "render":
        return RenderLifter()
    if name == "oracle":
        backend = options.get("backend")
        frames_from = backend if isinstance(backend, OracleBackend) else None
        return OracleLifter(project=project, frames_from=frames_from)
    if name == "ideal":
        backend = options.get("backend")
        if not isinstance(backend, IdealBackend):
            raise WorldStudioError(
                "the ideal lifter lifts only the ideal backend's frames; use it with --backend ideal"
            )
        return IdealLifter(backend)
    if name == "model":
        return ModelLifter(options.get("depth_model"), options.get("segmentation_model"))
    raise WorldStudioError(f"unknown lifter {name!r}; use render, oracle, ideal or model")


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
