"""The geometry-preview backend: no model, the "generated" frames are the renders themselves:
the foreground projection over the scene projection (pinholes filled, as a model would see them),
for the observer and the monitors alike (a monitor's foreground is its entities' last state).

Holes (pixels no point reached) stay visible. It is how a user checks a path and the world
engine's loop before spending GPU minutes, and how the whole loop is tested on a CPU. It uses no
previous frames (``context_frames = 0``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldstudio.core.generation.backends.base import (
    BackendError,
    BaseBackend,
    GenerationRequest,
)
from worldstudio.core.jobs import JobContext


class GeometryBackend(BaseBackend):
    """Returns the request's renders, the foreground over ``control_rgb`` (black where nothing
    was rendered)."""

    name = "geometry"
    lifter = "render"
    context_frames = 0

    def __init__(self, **options: Any) -> None:
        self.options = options

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        ctx.check_cancelled()
        shape = (request.num_frames, request.height, request.width, 3)
        frames = request.composite()
        if frames is None:
            raise BackendError("backend 'geometry' needs conditioning renders (control_rgb)")
        control = np.asarray(request.control_rgb)
        if control.shape != shape or control.dtype != np.uint8:
            raise BackendError(
                f"backend 'geometry': control_rgb is {control.dtype} {control.shape}, expected uint8 {shape}"
            )
        ctx.progress(1, 1, "rendered")
        ctx.preview(frames[-1], f"{request.camera_id}: round {request.round_index + 1}")
        return frames
