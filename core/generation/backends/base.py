"""The backend protocol: conditioning in, F frames out.

A backend (:class:`Backend`, most built on :class:`BaseBackend`) turns one
:class:`GenerationRequest` (the scene and foreground projections, the mask, previous frames and
their projections, prompt, seed, reference images, cameras) into ``(F, H, W, 3)`` uint8 frames.
It reports each denoising step through ``ctx.progress(step, steps, message)``, may show a cheap
preview with ``ctx.preview(image)`` (an ``(H, W, 3)`` uint8 frame or strip of thumbnails), and
calls ``ctx.check_cancelled()`` between steps (which raises
:class:`worldstudio.core.errors.Cancelled`).

Backends are created by name through :func:`worldstudio.core.generation.backends.get_backend`. Heavy
libraries (torch, diffusers, transformers) are imported inside the backend modules that need them,
never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.jobs import JobContext

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.generation.acceleration import DraftRecipe
    from worldstudio.core.generation.memory import VramEstimate


class BackendError(WorldStudioError):
    """A backend that cannot be created or cannot serve a request (names the backend and why)."""


@dataclass
class GenerationRequest:
    """Everything one generation call (observer round or monitor clip) is conditioned on.

    The world's render into the call's cameras comes as two layers (LiveWorld's State Adapter
    keeps them apart): the **scene projection** (``control_rgb``, ``control_depth``: the static
    world, pinholes filled, black / 0 in holes) and the **foreground projection**
    (``foreground_rgb``, ``foreground_depth``, ``foreground_labels``: the entities' points
    z-tested against the static world). For the observer the foreground is the target: where the
    monitors put the entities at each frame's time. For a monitor it is its entities' last known
    state, given for backends that show the renders (geometry) and for the lifter's tracker; a
    model generates a monitor's entities from the prompt and never sees it (see each backend's
    mapping).
    """

    prompt: str  # "scene: ...; foreground: ..."
    num_frames: int
    height: int
    width: int
    steps: int
    guidance: float
    seed: int
    control_rgb: np.ndarray | None  # (F, H, W, 3) uint8: the scene projection
    # (F, H, W) bool: True where the model generates, False: keep the control pixel. The
    # observer's: holes, sparse regions, depth discontinuities and entity regions, cleaned
    # (:mod:`worldstudio.core.generation.conditioning`); a monitor's: the whole frame.
    control_mask: np.ndarray | None
    previous_frames: np.ndarray | None  # (P, H, W, 3) uint8: the last P frames of the camera
    # (H, W, 3) uint8 each: scene references (the source image and retrieved earlier frames,
    # entities blacked out)
    reference_images: list[np.ndarray]
    negative_prompt: str = ""
    foreground_rgb: np.ndarray | None = None  # (F, H, W, 3) uint8, black where no entity
    foreground_labels: np.ndarray | None = None  # (F, H, W) int16: index in foreground_ids, -1
    foreground_ids: list[str] = field(default_factory=list)  # the call's entities
    foreground_depth: np.ndarray | None = None  # (F, H, W) float32, 0 where no entity
    control_depth: np.ndarray | None = None  # (F, H, W) float32 depth of control_rgb, 0 in holes
    instance_references: list[np.ndarray] = field(default_factory=list)  # one per visible entity
    # the projections of the previous frames, frame for frame (the same camera's call in the
    # previous round, its last P frames; None in a first round): the scene projection (P, H, W, 3)
    # uint8, the foreground projection (P, H, W, 3) uint8 and its labels (P, H, W) int16
    previous_control_rgb: np.ndarray | None = None
    previous_foreground_rgb: np.ndarray | None = None
    previous_foreground_labels: np.ndarray | None = None
    # (H, W, 3) uint8: the source image as it is (entities in it), fitted to the video size: the
    # frame an image-to-video model starts from when there are no previous frames
    source_image: np.ndarray | None = None
    strength: float = 1.0  # conditioning strength of this call's role (observer 1.0, monitor 0.4)
    flow_shift: float | None = None  # the sampler's flow shift; None: the backend's default
    role: str = "observer"  # or "monitor"
    camera_c2w: np.ndarray | None = None  # (F, 4, 4) OpenCV camera-to-world per frame
    camera_K: np.ndarray | None = None  # (F, 3, 3) intrinsics in pixels for (height, width)
    times: np.ndarray | None = None  # (F,) seconds of world time per frame
    loras: list[tuple[str, float]] = field(default_factory=list)  # (.safetensors path, strength)
    camera_id: str = "observer"  # "observer" or the monitor's id (for logs and previews)
    round_index: int = 0

    def composite(self) -> np.ndarray | None:
        """The foreground projection over the scene projection (None without control_rgb)."""
        if self.control_rgb is None:
            return None
        out = np.array(self.control_rgb, np.uint8, copy=True)
        if self.foreground_rgb is not None and self.foreground_labels is not None:
            on = np.asarray(self.foreground_labels) >= 0
            out[on] = np.asarray(self.foreground_rgb)[on]
        return out


CONTEXT_FRAMES = 5
"""The previous frames a backend call continues from when neither the project nor the backend
says otherwise (:class:`BaseBackend`'s ``context_frames``)."""


@dataclass(frozen=True)
class ModelChoice:
    """One model a backend runs, as the studio offers it: ``model_id`` is what the run's
    ``model_id`` is set to; ``needs`` are the catalogue entries (names) it downloads."""

    model_id: str
    label: str
    needs: tuple[str, ...]
    description: str = ""


@runtime_checkable
class Backend(Protocol):
    """A video generator the world engine calls once per camera per round.

    What it declares (:class:`BaseBackend` has the defaults most backends share):

    - ``lifter``: how the engine lifts its frames to 3D (a run may override it): ``"render"``
      (the frames are the renders: the render's own depth and entity pixels), ``"oracle"``
      (exact depth and masks from the oracle scene), ``"ideal"`` (what the ideal backend drew;
      the ideal lifter takes the :class:`~.ideal.IdealBackend` itself) or ``"model"`` (a depth
      model aligned to the rendered static depth, plus SAM 2 tracking; :mod:`..lift`);
    - ``context_frames``: the previous frames a call continues from when the project does not
      say; the engine passes exactly that many (``previous_frames`` and their projections);
    - ``flow_shift_for(height, width)``: the sampler's flow shift when the project does not say
      (None: it has no sampler);
    - ``conditioning(request)``: the exact control video (N, H, W, 3) uint8 and mask (N, H, W)
      bool the model is fed for ``request`` (leading context frames included), which the engine
      writes beside the round;
    - ``profiles``: the memory profiles it takes (empty: it needs no accelerator memory), and
      ``estimate(height, width, frames, profile)``: the accelerator (and main) memory one call
      needs (:class:`~worldstudio.core.generation.memory.VramEstimate`; None: no estimate);
    - ``models()``: the models it runs, for the studio's model box (empty: it uses none).
    """

    name: str
    lifter: str
    context_frames: int
    profiles: tuple[str, ...]

    def flow_shift_for(self, height: int, width: int) -> float | None: ...

    def conditioning(self, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray]: ...

    def estimate(
        self,
        height: int,
        width: int,
        frames: int,
        profile: str | None = None,
        *,
        guidance: float = 5.0,
    ) -> VramEstimate | None: ...

    def models(self) -> list[ModelChoice]: ...

    def required_models(self) -> list[str]:
        """The models ``generate`` will load (catalogue names, hub repo ids or local folders),
        known before anything is loaded, so a job can name every missing model at once."""
        ...

    def draft_recipe(self) -> DraftRecipe | None:
        """The "draft" quality preset of this backend's model (a step-distillation LoRA and the
        sampling it is made for), or None when it has none."""
        ...

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        """Return ``(request.num_frames, request.height, request.width, 3)`` uint8 frames."""
        ...

    def close(self) -> None:
        """Release models and memory; the backend is not used afterwards."""
        ...


class BaseBackend:
    """The defaults most backends share: :data:`CONTEXT_FRAMES` previous frames, no sampler (no
    flow shift), the request's own conditioning (:func:`request_conditioning`), no memory
    profiles or estimate, no model (and no draft preset), nothing to release. A subclass sets ``name`` and ``lifter``
    and writes ``generate``."""

    name: str
    lifter: str
    context_frames: int = CONTEXT_FRAMES
    profiles: tuple[str, ...] = ()

    def flow_shift_for(self, height: int, width: int) -> float | None:
        return None

    def conditioning(self, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray]:
        return request_conditioning(request)

    def estimate(
        self,
        height: int,
        width: int,
        frames: int,
        profile: str | None = None,
        *,
        guidance: float = 5.0,
    ) -> VramEstimate | None:
        return None

    def models(self) -> list[ModelChoice]:
        return []

    def required_models(self) -> list[str]:
        return []

    def draft_recipe(self) -> DraftRecipe | None:
        return None

    def close(self) -> None:
        pass


def check_frames(frames: np.ndarray, request: GenerationRequest, backend: str) -> np.ndarray:
    """Validate a backend's output against its request; returns it as a contiguous uint8 array."""
    frames = np.asarray(frames)
    expected = (request.num_frames, request.height, request.width, 3)
    if frames.shape != expected:
        raise BackendError(
            f"backend {backend!r} returned frames of shape {frames.shape}, expected {expected}"
        )
    if frames.dtype != np.uint8:
        raise BackendError(f"backend {backend!r} returned {frames.dtype} frames, expected uint8")
    return np.ascontiguousarray(frames)


def request_conditioning(request: GenerationRequest) -> tuple[np.ndarray, np.ndarray]:
    """What the request gives every backend: the foreground over the scene projection (black
    without one) and the mask (all True without one)."""
    F, H, W = request.num_frames, request.height, request.width
    video = request.composite()
    if video is None:
        video = np.zeros((F, H, W, 3), np.uint8)
    mask = request.control_mask
    mask = np.ones((F, H, W), bool) if mask is None else np.asarray(mask, bool)
    return video, mask
