"""The geometry-preview backend: no model, the "generated" frames are the renders themselves.

Holes (pixels no point reached) stay visible. It is how a user checks a path and the world
engine's loop before spending GPU minutes, and how the whole loop is tested on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldstudio.core.generation.backends.base import BackendError, GenerationRequest
from worldstudio.core.jobs import JobContext


class GeometryBackend:
    """Returns ``request.control_rgb`` unchanged (black where nothing was rendered)."""

    name = "geometry"
    lifter = "render"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def required_models(self) -> list[str]:
        return []  # the frames are the renders

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        ctx.check_cancelled()
        shape = (request.num_frames, request.height, request.width, 3)
        if request.control_rgb is None:
            raise BackendError("backend 'geometry' needs conditioning renders (control_rgb)")
        frames = np.asarray(request.control_rgb)
        if frames.shape != shape or frames.dtype != np.uint8:
            raise BackendError(
                f"backend 'geometry': control_rgb is {frames.dtype} {frames.shape}, expected uint8 {shape}"
            )
        frames = frames.copy()
        ctx.progress(1, 1, "rendered")
        ctx.preview(frames[-1], f"{request.camera_id}: round {request.round_index + 1}")
        return frames

    def close(self) -> None:
        pass
