"""Monocular depth: Depth Anything V2 (relative or metric) and Depth Pro, through transformers.

Images are preprocessed by hand (resize + normalise with the values in the model's
``preprocessor_config.json``): transformers' Depth Pro processor needs torchvision, which the
CPU environment cannot have (docs/STACK.md), and doing it by hand for every model keeps one
code path.

What the models give, and what the studio makes of it. A :class:`DepthPrediction` exposes the
model's own quantity (:meth:`DepthPrediction.native`): *disparity* for relative models, *depth*
for metric ones. Aligning a prediction to a known scene (the world engine's lifting,
:mod:`worldstudio.core.generation.lift`) fits the unknowns in that space.

- Depth Anything V2 *relative* (``Depth-Anything-V2-Small-hf``) predicts an affine-invariant
  inverse depth (disparity): ``disparity = alpha / depth + beta`` with unknown alpha > 0 and beta.
  Only a new project from a photograph, which has nothing to align to, needs a depth from it
  without a reference: :func:`disparity_to_depth` maps the disparity linearly onto inverse depth
  so that its 98th percentile (the nearest surfaces) lands at :data:`RELATIVE_NEAR` = 1 unit and
  its 2nd percentile (the farthest, often the sky) at :data:`RELATIVE_FAR` = 10 units, then
  inverts it (:meth:`DepthPrediction.depth`). The scene is then not metric
  (``scene.metric = False``); its unit is roughly a metre for a typical indoor or street photo.
- Depth Anything V2 *metric* (indoor/outdoor) predicts depth in metres directly.
- Depth Pro predicts a canonical inverse depth and a horizontal field of view; metric depth is
  ``f_px / (W * inverse)``, with the focal length chosen by :mod:`worldstudio.core.reconstruct.focal`
  (EXIF first, else the model's own estimate, ...).

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from worldstudio.core.models import ModelError, default_model, find_model
from worldstudio.core.models.catalogue import Kind, ModelInfo

if TYPE_CHECKING:
    from worldstudio.core.jobs import JobContext

RELATIVE_NEAR = 1.0
RELATIVE_FAR = 10.0
MAX_DEPTH = 1000.0  # world units; anything farther is clamped (sky, infinite disparity)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- helpers
def torch_device() -> str:
    """``$WORLDSTUDIO_DEVICE`` if set, else "cuda" when available, else "cpu"."""
    env = os.environ.get("WORLDSTUDIO_DEVICE")
    if env:
        return env
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_type(folder: Path) -> str:
    cfg = folder / "config.json"
    data = read_json(cfg)
    if "model_type" not in data:
        raise ModelError(f"{cfg}: missing or not a model config (no model_type)")
    return str(data["model_type"])


_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def load_pretrained(cls_name: str, folder: Path, device: str):
    """``transformers.<cls_name>.from_pretrained(folder)`` in eval mode on ``device``, kept in a
    small in-process cache so that repeated calls (clicks in the studio) do not reload."""
    key = (cls_name, str(folder), device)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    import transformers
    from transformers.utils import logging as hf_logging

    cls = getattr(transformers, cls_name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        model, info = cls.from_pretrained(str(folder), output_loading_info=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{folder}: cannot load the model as {cls_name} ({first})") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys") or ())
    if missing:  # random weights in place of missing ones would give silent garbage
        raise ModelError(
            f"{folder}: the weights do not fit {cls_name}: {len(missing)} tensors missing "
            f"(e.g. {missing[0]}); is this the right model?"
        )
    model = model.to(device).eval()
    with _CACHE_LOCK:
        _CACHE[key] = model
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def resolve_model_folder(
    name: str | os.PathLike | None, kind: Kind, ctx: JobContext | None = None
) -> tuple[Path, ModelInfo | None]:
    """A catalogue name, a hub repo id or a local folder -> (folder, catalogue entry or None)."""
    from worldstudio.core.models import resolve_with_context

    if name is None:
        info = default_model(kind)
    else:
        found = find_model(str(name))
        if found is None:
            folder = Path(name).expanduser()
            if folder.is_dir():
                if not (folder / "config.json").is_file():
                    raise ModelError(f"{folder}: not a model folder (no config.json)")
                return folder, None
            from worldstudio.core.models.catalogue import names

            raise ModelError(
                f"unknown {kind} model {str(name)!r}: use one of {', '.join(names(kind))} "
                f"or a folder holding a transformers model"
            )
        if found.kind != kind:
            raise ModelError(f"model {found.name} is a {found.kind} model, not a {kind} model")
        info = found
    return resolve_with_context(info, ctx), info


# ----------------------------------------------------------------------------- conversions
def disparity_to_depth(disparity: np.ndarray) -> np.ndarray:
    """Relative disparity -> plausible depth (module docstring): float32, > 0 everywhere."""
    d = np.asarray(disparity, dtype=np.float64)
    finite = np.isfinite(d)
    if not finite.any():
        return np.full(d.shape, 0.5 * (RELATIVE_NEAR + RELATIVE_FAR), dtype=np.float32)
    lo, hi = np.percentile(d[finite], [2.0, 98.0])
    if not hi - lo > 1e-6 * max(abs(hi), abs(lo), 1e-12):
        # a flat disparity map (or a model with no signal): a plane in the middle distance
        return np.full(d.shape, 0.5 * (RELATIVE_NEAR + RELATIVE_FAR), dtype=np.float32)
    t = np.clip((np.where(finite, d, lo) - lo) / (hi - lo), 0.0, 1.0)
    inv = 1.0 / RELATIVE_FAR + t * (1.0 / RELATIVE_NEAR - 1.0 / RELATIVE_FAR)
    return (1.0 / inv).astype(np.float32)


def dpt_resize_shape(
    height: int, width: int, size: tuple[int, int], keep_aspect: bool, multiple: int
) -> tuple[int, int]:
    """(h, w) the Depth Anything processor resizes an image to: the side whose scale is closer
    to 1 sets the scale when ``keep_aspect``; both sides rounded to ``multiple``."""
    out_h, out_w = size
    sh, sw = out_h / height, out_w / width
    if keep_aspect:
        if abs(1 - sw) < abs(1 - sh):
            sh = sw
        else:
            sw = sh

    def constrain(v: float) -> int:
        x = round(v / multiple) * multiple
        if x < multiple:
            x = math.ceil(v / multiple) * multiple
        return max(int(x), multiple)

    return constrain(sh * height), constrain(sw * width)


# ----------------------------------------------------------------------------- estimator
@dataclass
class DepthPrediction:
    """A model's raw answer for one image, at the image's size.

    ``kind``: "relative" (values are disparity), "metric" (metres) or "inverse" (Depth Pro's
    canonical inverse depth, needing a focal length). ``fov_h_deg``: the model's own horizontal
    field-of-view estimate, if it makes one.
    """

    kind: Literal["relative", "metric", "inverse"]
    values: np.ndarray  # float32 (H, W)
    fov_h_deg: float | None = None

    @property
    def metric(self) -> bool:
        return self.kind in ("metric", "inverse")

    @property
    def space(self) -> Literal["disparity", "depth"]:
        """The quantity the model predicts: "disparity" (relative models: known up to a positive
        scale and a shift) or "depth" (metric models)."""
        return "depth" if self.metric else "disparity"

    def native(self, focal_px: float | None = None) -> np.ndarray:
        """The prediction in its own :attr:`space`, float32 (H, W): the disparity as the model
        gave it (NaN where it is not finite), or the metric depth (:meth:`depth`)."""
        if self.metric:
            return self.depth(focal_px)
        v = np.asarray(self.values, np.float32)
        return np.where(np.isfinite(v), v, np.float32(np.nan)).astype(np.float32)

    def depth(self, focal_px: float | None = None) -> np.ndarray:
        """Depth (float32 (H, W), world units, > 0). Depth Pro needs ``focal_px``: the focal
        length in pixels of this image (its fov estimate is used when None). A relative model's
        depth is :func:`disparity_to_depth`'s choice of scale (for a scene with nothing to align
        to); alignment to a known scene fits the :meth:`native` disparity instead."""
        v = self.values
        if self.kind == "relative":
            out = disparity_to_depth(v)
        elif self.kind == "metric":
            out = np.where(np.isfinite(v), v, 0.0).astype(np.float32)
        else:
            w = v.shape[1]
            if focal_px is None:
                if self.fov_h_deg is None:
                    raise ValueError("Depth Pro depth needs a focal length")
                focal_px = 0.5 * w / math.tan(math.radians(self.fov_h_deg) / 2.0)
            inv = np.nan_to_num(v.astype(np.float64), nan=0.0) * (w / float(focal_px))
            out = (1.0 / np.clip(inv, 1e-4, 1e4)).astype(np.float32)  # as Depth Pro does
        return np.clip(out, 0.0, MAX_DEPTH).astype(np.float32)


class DepthEstimator:
    """A loaded depth model. ``predict(rgb)`` -> :class:`DepthPrediction`."""

    def __init__(self, folder: Path, info: ModelInfo | None = None, device: str | None = None):
        self.folder = Path(folder)
        self.info = info
        self.device = device or torch_device()
        self.arch = model_type(self.folder)
        self.preprocess = read_json(self.folder / "preprocessor_config.json")
        if self.arch == "depth_anything":
            self.model = load_pretrained(
                "DepthAnythingForDepthEstimation", self.folder, self.device
            )
            self.kind: Literal["relative", "metric", "inverse"] = (
                "metric" if self.model.config.depth_estimation_type == "metric" else "relative"
            )
        elif self.arch == "depth_pro":
            self.model = load_pretrained("DepthProForDepthEstimation", self.folder, self.device)
            self.kind = "inverse"
        else:
            raise ModelError(
                f"{self.folder}: a {self.arch!r} model is not a depth model World Studio can use "
                f"(Depth Anything or Depth Pro)"
            )

    @property
    def name(self) -> str:
        """What the project records as ``scene.depth_model``: the repo id, or the folder."""
        return self.info.repo_id if self.info is not None else str(self.folder)

    @property
    def metric(self) -> bool:
        return self.kind != "relative"

    # -- preprocessing by hand ---------------------------------------------------------------
    def _mean_std(self, default_mean, default_std):
        mean = self.preprocess.get("image_mean", default_mean)
        std = self.preprocess.get("image_std", default_std)
        return np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def _input_size(self, default: int) -> tuple[int, int]:
        size = self.preprocess.get("size") or {}
        if isinstance(size, int):
            return size, size
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        if "shortest_edge" in size:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
        return default, default

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the tensor the model sees for an image of height x width."""
        if self.arch == "depth_anything":
            cfg = self.preprocess
            return dpt_resize_shape(
                height,
                width,
                self._input_size(518),
                bool(cfg.get("keep_aspect_ratio", True)),
                int(cfg.get("ensure_multiple_of", 14) or 1),
            )
        c = self.model.config
        default = int(round(c.patch_size / min(c.scaled_images_ratios)))
        return self._input_size(default)

    def pixel_values(self, rgb: np.ndarray):
        """The normalised (1, 3, h, w) float tensor for ``rgb`` (H, W, 3) uint8."""
        import torch
        import torch.nn.functional as F
        from PIL import Image

        h, w = self.input_shape(rgb.shape[0], rgb.shape[1])
        if self.arch == "depth_anything":
            resample = int(self.preprocess.get("resample", 3))
            img = Image.fromarray(rgb).resize((w, h), Image.Resampling(resample))
            x = np.asarray(img, dtype=np.float32) / 255.0
            mean, std = self._mean_std(IMAGENET_MEAN, IMAGENET_STD)
            x = (x - mean) / std
            return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(
                self.device
            )
        # Depth Pro: rescale and normalise first, then resize (bilinear, no antialias), as its
        # processor does.
        mean, std = self._mean_std((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        x = (rgb.astype(np.float32) / 255.0 - mean) / std
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)
        if t.shape[-2:] != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
        return t

    def forward(self, pixel_values):
        """The model alone (for benchmarks): the raw output object."""
        import torch

        with torch.inference_mode():
            return self.model(pixel_values=pixel_values)

    def predict(self, rgb: np.ndarray) -> DepthPrediction:
        import torch
        import torch.nn.functional as F

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"predict: expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}"
            )
        H, W = rgb.shape[:2]
        out = self.forward(self.pixel_values(rgb))
        pred = out.predicted_depth
        if pred.dim() == 3:
            pred = pred[:, None]
        with torch.inference_mode():
            pred = F.interpolate(pred.float(), size=(H, W), mode="bilinear", align_corners=False)
        values = pred[0, 0].cpu().numpy().astype(np.float32)
        fov = None
        if self.kind == "inverse":
            fv = getattr(out, "field_of_view", None)
            if fv is not None:
                fov = float(fv.reshape(-1)[0].item())
                if not math.isfinite(fov):
                    fov = None
        return DepthPrediction(self.kind, values, fov)


def load_depth_estimator(
    name: str | os.PathLike | None = None, ctx: JobContext | None = None
) -> DepthEstimator:
    """The depth model ``name`` (catalogue name, repo id or local folder; default: the catalogue's
    default depth model), downloaded first when missing and this machine is online."""
    folder, info = resolve_model_folder(name, "depth", ctx)
    return DepthEstimator(folder, info)
