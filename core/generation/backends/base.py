"""The backend protocol: conditioning in, F frames out.

A backend turns one :class:`GenerationRequest` (renders, coverage mask, previous frames, prompt,
seed, reference images, cameras) into ``(F, H, W, 3)`` uint8 frames. It reports each denoising
step through ``ctx.progress(step, steps, message)``, may show a cheap preview with
``ctx.preview(image)`` (an ``(H, W, 3)`` uint8 frame or strip of thumbnails), and calls
``ctx.check_cancelled()`` between steps (which raises :class:`worldstudio.core.errors.Cancelled`).

Backends are created by name through :func:`worldstudio.core.generation.backends.get_backend`. Heavy
libraries (torch, diffusers, transformers) are imported inside the backend modules that need them,
never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.jobs import JobContext


class BackendError(WorldStudioError):
    """A backend that cannot be created or cannot serve a request (names the backend and why)."""


@dataclass
class GenerationRequest:
    """Everything one generation call (observer round or monitor clip) is conditioned on."""

    prompt: str  # "scene: ...; foreground: ..."
    num_frames: int
    height: int
    width: int
    steps: int
    guidance: float
    seed: int
    control_rgb: np.ndarray | None  # (F, H, W, 3) uint8: the scene projection (static world)
    # (F, H, W) bool: True where the model must generate: where NOTHING was rendered and, for a
    # monitor, where its entities were last seen (control_rgb there holds that last state as a
    # hint a model may use or ignore; the geometry backend shows it as is).
    control_mask: np.ndarray | None
    previous_frames: np.ndarray | None  # (P, H, W, 3) uint8: last frames of the previous round
    reference_images: list[
        np.ndarray
    ]  # (H, W, 3) uint8 each: scene references (entities blacked out)
    negative_prompt: str = ""
    # The foreground projection (LiveWorld keeps it apart from the scene projection): the
    # entities' points z-tested against the static world, black elsewhere (F, H, W, 3) uint8;
    # labels (F, H, W) int16 index into foreground_ids, -1 where no entity. None for a call that
    # has no foreground target (monitors).
    foreground_rgb: np.ndarray | None = None
    foreground_labels: np.ndarray | None = None
    foreground_ids: list[str] = field(default_factory=list)
    control_depth: np.ndarray | None = None  # (F, H, W) float32 depth of the renders, 0 in holes
    instance_references: list[np.ndarray] = field(default_factory=list)  # one crop per entity
    strength: float = 1.0  # conditioning strength of this call's role (observer 1.0, monitor 0.4)
    flow_shift: float | None = None  # the sampler's flow shift; None: the backend's default
    role: str = "observer"  # or "monitor"
    camera_c2w: np.ndarray | None = None  # (F, 4, 4) OpenCV camera-to-world per frame
    camera_K: np.ndarray | None = None  # (F, 3, 3) intrinsics in pixels for (height, width)
    times: np.ndarray | None = None  # (F,) seconds of world time per frame
    loras: list[tuple[str, float]] = field(default_factory=list)  # (.safetensors path, strength)
    camera_id: str = "observer"  # "observer" or the monitor's id (for logs and previews)
    round_index: int = 0


@runtime_checkable
class Backend(Protocol):
    """A video generator the world engine calls once per camera per round.

    ``lifter`` says how the engine lifts this backend's frames to 3D (a run may override it):
    ``"render"`` (the frames are the renders: the render's own depth and entity pixels),
    ``"oracle"`` (exact depth and masks from the oracle scene) or ``"model"`` (a depth model
    aligned to the rendered static depth, plus SAM 2 tracking; :mod:`..lift`).
    """

    name: str
    lifter: str

    def required_models(self) -> list[str]:
        """The models ``generate`` will load (catalogue names, hub repo ids or local folders),
        known before anything is loaded, so a job can name every missing model at once."""
        ...

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        """Return ``(request.num_frames, request.height, request.width, 3)`` uint8 frames."""
        ...

    def close(self) -> None:
        """Release models and memory; the backend is not used afterwards."""
        ...


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
