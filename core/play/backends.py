"""Which backend plays, and how: chunk sizes, quality presets, models and LoRAs.

- ``geometry``, ``oracle`` and ``ideal`` run in real time on a CPU (9-frame chunks);
- ``wan-vace`` plays with the "draft" quality preset (its model's step-distillation LoRA with
  the steps, guidance and flow shift it is made for:
  :func:`worldstudio.core.generation.acceleration.draft_recipe`) and 17-frame chunks;
  ``liveworld`` with its few-step model (``liveworld-4step``), 17-frame chunks.

The quality presets are the generation engine's ("full", "fast", "draft":
:data:`worldstudio.core.generation.acceleration.QUALITIES`); a session names one, or plays with
its backend's (:data:`PLAY_QUALITY`), else the project's. Steps, guidance and LoRAs given
explicitly win over the preset's steps and guidance; a draft run applies its LoRA beside theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.acceleration import check_quality

CHUNK_FRAMES = {"geometry": 9, "oracle": 9, "ideal": 9}
"""Frames per chunk by backend (4k+1); others: :data:`DEFAULT_CHUNK_FRAMES`."""
DEFAULT_CHUNK_FRAMES = 17
PLAY_QUALITY = {"wan-vace": "draft"}
"""The quality preset a backend plays with when none is named (others: the project's)."""
PLAY_MODEL = {"liveworld": "liveworld-4step"}
"""The model a backend plays with when none is named (LiveWorld's few-step variant)."""


def chunk_frames_for(backend: str) -> int:
    return CHUNK_FRAMES.get(backend, DEFAULT_CHUNK_FRAMES)


def play_quality(backend: str, quality: str | None = None) -> str | None:
    """The quality preset a session on ``backend`` plays with: ``quality`` when named (checked:
    one line naming the choices), else the backend's play quality, else None (the project's)."""
    if quality is not None:
        return check_quality(quality)
    return PLAY_QUALITY.get(backend)


def run_fields(
    backend: str,
    quality: str | None = None,
    model: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    loras: list[tuple[str, float]] | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """The :class:`~worldstudio.core.generation.engine.RunOptions` fields a play session on
    ``backend`` sets (those left out come from the project)."""
    given = {
        "quality": play_quality(backend, quality),
        "model": model if model is not None else PLAY_MODEL.get(backend),
        "steps": steps,
        "guidance": guidance,
        "loras": loras,
        "profile": profile,
    }
    for path, _strength in loras or []:
        if not Path(path).is_file():
            raise WorldStudioError(f"LoRA {path}: no such file")
    return {k: v for k, v in given.items() if v is not None}


def parse_lora(text: str) -> tuple[str, float]:
    """``PATH`` or ``PATH:STRENGTH`` (default 1.0) -> (path, strength)."""
    path, sep, strength = text.rpartition(":")
    if not sep or not path or "/" in strength or "\\" in strength:
        return text, 1.0
    try:
        return path, float(strength)
    except ValueError:
        raise WorldStudioError(
            f"--lora {text!r}: the strength after ':' must be a number"
        ) from None
