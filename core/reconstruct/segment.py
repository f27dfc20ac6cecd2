"""Entity masks with SAM 2.1 (transformers' ``Sam2Model``): clicks or a box -> mask -> entity.

The image is preprocessed by hand (the SAM 2 processors need torchvision, docs/STACK.md): resized to
the model's square input (1024 for the released models), scaled to [0, 1] and normalised with
the ImageNet mean and std (or the values in the repo's preprocessor config). Click points and
boxes are given in the image's pixels and scaled to the model's input. The low-resolution mask
logits are upsampled to the image size and thresholded at 0, as the SAM 2 processor does.

An entity made from a mask gets a 3D anchor: the per-axis median of the masked pixels'
points, unprojected with the project's depth and intrinsics from the source camera (the
identity pose). Its mask is saved as an 8-bit PNG (0 / 255) in ``scene/masks/<entity id>.png``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.reconstruct.depth import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_pretrained,
    read_json,
    resolve_model_folder,
    torch_device,
)

if TYPE_CHECKING:
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.project import Entity, Project


class SegmentationError(WorldStudioError):
    """Prompts or masks that cannot make an entity."""


def sam_preprocess_values(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) from the repo's (video) preprocessor config, else ImageNet's."""
    cfg = read_json(folder / "preprocessor_config.json") or read_json(
        folder / "video_preprocessor_config.json"
    )
    mean = np.asarray(cfg.get("image_mean", IMAGENET_MEAN), np.float32)
    std = np.asarray(cfg.get("image_std", IMAGENET_STD), np.float32)
    return mean, std


def sam_pixel_values(rgb: np.ndarray, size: int, mean: np.ndarray, std: np.ndarray, device: str):
    """(1, 3, size, size) float tensor: bilinear resize, [0, 1], normalise."""
    import torch
    from PIL import Image

    img = Image.fromarray(rgb)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(device)


def upsample_logits(logits, height: int, width: int):
    """(N, 1, h, w) mask logits -> (N, height, width) bool numpy masks (logit > 0)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        up = F.interpolate(
            logits.float(), size=(height, width), mode="bilinear", align_corners=False
        )
    return (up[:, 0] > 0).cpu().numpy()


def segmentation_models(model=None, **_options) -> list[str]:
    """The model masks and tracking load (default: the catalogue's default segmentation
    model). For :mod:`worldstudio.core.models.requirements`."""
    from worldstudio.core.models import default_model

    return [str(model) if model else default_model("segmentation").name]


@dataclass
class MaskResult:
    mask: np.ndarray  # (H, W) bool
    score: float  # the model's predicted IoU of the mask


class Sam2Segmenter:
    """Masks from clicks and boxes on one image; the image embedding is computed once
    (:meth:`set_image`), so each further click costs only the small mask decoder."""

    def __init__(self, model: str | os.PathLike | None = None, ctx: JobContext | None = None):
        self.folder, self.info = resolve_model_folder(model, "segmentation", ctx)
        self.device = torch_device()
        self.model = load_pretrained("Sam2Model", self.folder, self.device)
        self.size = int(self.model.config.prompt_encoder_config.image_size)
        self.mean, self.std = sam_preprocess_values(self.folder)
        self._embeddings = None
        self._hw: tuple[int, int] | None = None

    def set_image(self, rgb: np.ndarray) -> None:
        import torch

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise SegmentationError(
                f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}"
            )
        pv = sam_pixel_values(rgb, self.size, self.mean, self.std, self.device)
        with torch.inference_mode():
            self._embeddings = self.model.get_image_embeddings(pv)
        self._hw = (int(rgb.shape[0]), int(rgb.shape[1]))

    def predict(
        self,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        box: Sequence[float] | None = None,
    ) -> MaskResult:
        """The best mask for click ``points`` ((x, y) image pixels; ``labels`` 1 = on the thing,
        0 = not on it; default all 1) and/or a ``box`` (x0, y0, x1, y1)."""
        import torch

        if self._embeddings is None or self._hw is None:
            raise SegmentationError("set_image() first")
        H, W = self._hw
        sx, sy = self.size / W, self.size / H
        pts = [] if points is None else [tuple(float(v) for v in p) for p in points]
        if not pts and box is None:
            raise SegmentationError("give at least one click point or a box")
        for x, y in pts:
            if not (0 <= x <= W and 0 <= y <= H):
                raise SegmentationError(f"click point ({x:g}, {y:g}) is outside the {W}x{H} image")
        if labels is None:
            labs = [1] * len(pts)
        else:
            labs = [int(v) for v in labels]
            if len(labs) != len(pts):
                raise SegmentationError(f"{len(pts)} click points but {len(labs)} labels")
            if any(v not in (0, 1) for v in labs):
                raise SegmentationError("click labels must be 1 (on the thing) or 0 (not on it)")
        kwargs = {}
        if pts:
            kwargs["input_points"] = torch.tensor(
                [[[[x * sx, y * sy] for x, y in pts]]], dtype=torch.float32, device=self.device
            )
            kwargs["input_labels"] = torch.tensor([[labs]], dtype=torch.int64, device=self.device)
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in box)
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise SegmentationError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty")
            kwargs["input_boxes"] = torch.tensor(
                [[[x0 * sx, y0 * sy, x1 * sx, y1 * sy]]], dtype=torch.float32, device=self.device
            )
        multimask = box is None and len(pts) == 1  # one click is ambiguous: pick the best of 3
        with torch.inference_mode():
            out = self.model(
                image_embeddings=self._embeddings, multimask_output=multimask, **kwargs
            )
        logits = out.pred_masks[0, 0]  # (K, h, w)
        scores = out.iou_scores[0, 0]  # (K,)
        best = int(torch.argmax(scores).item())
        mask = upsample_logits(logits[best : best + 1, None], H, W)[0]
        return MaskResult(mask=mask, score=float(scores[best].item()))


def segment_image(
    rgb: np.ndarray,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
    box: Sequence[float] | None = None,
    *,
    model: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
) -> np.ndarray:
    """One mask (H, W) bool for clicks and/or a box on ``rgb``."""
    seg = Sam2Segmenter(model, ctx)
    seg.set_image(rgb)
    return seg.predict(points, labels, box).mask


# ----------------------------------------------------------------------------- entities
def mask_anchor(mask: np.ndarray, depth: np.ndarray, K: np.ndarray, c2w: np.ndarray | None = None):
    """Per-axis median of the masked pixels' unprojected points (world units), or None when no
    masked pixel has a depth."""
    from worldstudio.core.pointcloud.ops import unproject_depth

    mask = np.asarray(mask, dtype=bool)
    depth = np.asarray(depth, dtype=np.float32)
    if mask.shape != depth.shape:
        raise SegmentationError(
            f"the mask is {mask.shape[::-1]} but the depth map is {depth.shape[::-1]}"
        )
    sel = mask & np.isfinite(depth) & (depth > 0)
    if not sel.any():
        return None
    cloud = unproject_depth(
        depth, np.asarray(K, np.float64), np.eye(4) if c2w is None else c2w, mask=sel
    )
    med = np.median(cloud.xyz.astype(np.float64), axis=0)
    return (float(med[0]), float(med[1]), float(med[2]))


def anchor_from_depth(
    project_root: str | os.PathLike, project: Project, u: float, v: float
) -> tuple[float, float, float] | None:
    """The 3D point seen at pixel (u, v) of the project's source image, from its depth map, or
    None where the depth is unknown (or the project has no reconstruction). The source camera
    sits at the identity pose (docs/CONVENTIONS.md), so the point is in world units."""
    from worldstudio.core.geometry.camera import point_at_pixel

    if project.intrinsics is None or project.scene is None or not project.scene.depth_file:
        return None
    from worldstudio.core.project import ProjectFolder

    path = ProjectFolder(project_root).path(project.scene.depth_file)  # refuses paths outside
    if not path.is_file():
        return None
    depth = np.load(path, allow_pickle=False)
    H, W = project.intrinsics.height, project.intrinsics.width
    source = (project.source.height, project.source.width) if project.source else (H, W)
    K = np.asarray(project.intrinsics.K, np.float64)
    return point_at_pixel(depth, K, H, W, u, v, image_size=source)


def fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` resized (nearest) to ``shape`` = (H, W) when the source image and the depth map
    differ in size."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask
    from PIL import Image

    img = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (shape[1], shape[0]), Image.Resampling.NEAREST
    )
    return np.asarray(img) > 127


def mask_png_bytes(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255, "L").save(
        buf, format="PNG"
    )
    return buf.getvalue()


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask PNG (any mode) -> (H, W) bool (nonzero = in the mask)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L")) > 127
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise SegmentationError(f"{path}: not a readable mask image ({exc})") from exc


def _project_arrays(root: Path, project: Project):
    """(project folder, depth map, K, the image height K is tied to) of a reconstructed project."""
    from worldstudio.core.project import ProjectFolder

    pf = ProjectFolder(root)
    if project.intrinsics is None or project.scene is None or not project.scene.depth_file:
        raise SegmentationError(
            f"{pf.project_file}: the project has no reconstruction (intrinsics and depth)"
        )
    depth_path = pf.path(project.scene.depth_file)
    try:
        depth = np.load(depth_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SegmentationError(f"{depth_path}: cannot read the depth map ({exc})") from exc
    if depth.ndim != 2:
        raise SegmentationError(
            f"{depth_path}: expected an (H, W) depth map, got shape {depth.shape}"
        )
    K = np.asarray(project.intrinsics.K, np.float64)
    return pf, depth.astype(np.float32), K, project.intrinsics.height


def entity_from_mask(
    project_root: str | os.PathLike,
    project: Project,
    name: str,
    mask: np.ndarray,
    *,
    entity_id: str | None = None,
) -> Entity:
    """An :class:`~core.project.Entity` for ``mask`` (on the project's source image): writes
    ``scene/masks/<id>.png`` and returns the entity (with its 3D anchor) for the caller to add
    to the project (as an undoable edit in the studio). project.json is not touched."""
    from worldstudio.core.geometry.camera import fov_from_intrinsics
    from worldstudio.core.project import Entity, Pose, atomic_write_bytes
    from worldstudio.core.project.model import new_id

    root = Path(project_root)
    pf, depth, K, height = _project_arrays(root, project)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != depth.shape:
        raise SegmentationError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but the project's image is "
            f"{depth.shape[1]}x{depth.shape[0]}"
        )
    if not mask.any():
        raise SegmentationError(f"the mask for entity {name!r} is empty: click on the thing itself")
    anchor = mask_anchor(mask, depth, K)
    eid = entity_id or new_id("ent")
    rel = f"scene/masks/{eid}.png"
    try:
        atomic_write_bytes(pf.path(rel), mask_png_bytes(mask))
    except OSError as exc:
        raise SegmentationError(
            f"{pf.path(rel)}: cannot write the mask ({exc.strerror or exc})"
        ) from exc
    fov = float(fov_from_intrinsics(K, height))
    return Entity(
        id=eid,
        name=name,
        mask_file=rel,
        anchor=anchor,
        defined_from=Pose(position=(0.0, 0.0, 0.0)),
        defined_fov=fov,
    )


def entity_from_prompt(
    project_root: str | os.PathLike,
    project: Project,
    name: str,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
    box: Sequence[float] | None = None,
    *,
    model: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
) -> Entity:
    """Clicks and/or a box on the project's source image -> SAM 2 mask -> entity."""
    from PIL import Image

    from worldstudio.core.project import ProjectFolder

    pf = ProjectFolder(project_root)
    if project.source is None:
        raise SegmentationError(f"{pf.project_file}: the project has no source image")
    src = pf.path(project.source.file)
    try:
        with Image.open(src) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise SegmentationError(f"{src}: cannot read the source image ({exc})") from exc
    if ctx is not None:
        ctx.progress(0, 2, "segmenting")
    mask = segment_image(rgb, points, labels, box, model=model, ctx=ctx)
    if ctx is not None:
        ctx.check_cancelled()
        ctx.progress(1, 2, "saving the mask")
    entity = entity_from_mask(project_root, project, name, mask)
    if ctx is not None:
        ctx.progress(2, 2, f"{int(mask.sum())} pixels")
    return entity


def entity_job(
    project_root: str | os.PathLike,
    name: str,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
    box: Sequence[float] | None = None,
    *,
    model: str | os.PathLike | None = None,
) -> Callable[[JobContext], Entity]:
    """A job for the studio: ``job(ctx) -> Entity`` (the project is read from its folder)."""
    from worldstudio.core.project import ProjectFolder

    def job(ctx: JobContext) -> Entity:
        project = ProjectFolder(project_root).load()
        return entity_from_prompt(
            project_root, project, name, points, labels, box, model=model, ctx=ctx
        )

    return job
