"""Which backend plays, and how: chunk sizes, presets and LoRAs.

- ``geometry``, ``oracle`` and ``ideal`` run in real time on a CPU (9-frame chunks);
- ``wan-vace`` plays with a step-distillation preset (few steps, no guidance, its LoRA) and
  17-frame chunks; ``liveworld`` with its few-step model (``liveworld-4step``), 17-frame chunks.

A *preset* is a named set of run settings (:class:`~worldstudio.core.generation.engine.RunOptions`
fields: ``steps``, ``guidance``, ``loras``, ``model``, ``flow_shift``, ``profile``). Presets are
registered by name (:func:`register_preset`); a backend's play preset (:data:`PLAY_PRESET`) is
used when registered and no preset is named. Settings given explicitly win over the preset's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldstudio.core.errors import WorldStudioError

CHUNK_FRAMES = {"geometry": 9, "oracle": 9, "ideal": 9}
"""Frames per chunk by backend (4k+1); others: :data:`DEFAULT_CHUNK_FRAMES`."""
DEFAULT_CHUNK_FRAMES = 17
PLAY_PRESET = {"wan-vace": "draft"}
"""The preset a backend plays with when it is registered and none is named."""
PLAY_MODEL = {"liveworld": "liveworld-4step"}
"""The model a backend plays with when none is named (LiveWorld's few-step variant)."""

_PRESET_FIELDS = ("steps", "guidance", "loras", "model", "flow_shift", "profile")
_PRESETS: dict[str, dict[str, Any]] = {}


def chunk_frames_for(backend: str) -> int:
    return CHUNK_FRAMES.get(backend, DEFAULT_CHUNK_FRAMES)


def register_preset(name: str, **fields: Any) -> None:
    """Register (or replace) the preset ``name``: RunOptions fields among steps, guidance, loras
    ([(path, strength)]), model, flow_shift and profile."""
    unknown = set(fields) - set(_PRESET_FIELDS)
    if unknown:
        raise ValueError(f"preset {name!r}: unknown fields {sorted(unknown)}")
    _PRESETS[name] = dict(fields)


def unregister_preset(name: str) -> None:
    _PRESETS.pop(name, None)


def preset_names() -> list[str]:
    return sorted(_PRESETS)


def run_fields(
    backend: str,
    preset: str | None = None,
    model: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    loras: list[tuple[str, float]] | None = None,
    profile: str | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The RunOptions fields a play session on ``backend`` runs with, and the preset used (None:
    none). A named preset must exist; the backend's play preset is used when it exists."""
    if preset is not None and preset not in _PRESETS:
        known = ", ".join(preset_names()) or "none are installed"
        raise WorldStudioError(f"--preset: unknown preset {preset!r} ({known})")
    if preset is None and PLAY_PRESET.get(backend) in _PRESETS:
        preset = PLAY_PRESET[backend]
    fields: dict[str, Any] = dict(_PRESETS.get(preset, {})) if preset else {}
    given = {
        "model": model,
        "steps": steps,
        "guidance": guidance,
        "loras": loras,
        "profile": profile,
    }
    fields.update({k: v for k, v in given.items() if v is not None})
    if fields.get("model") is None and backend in PLAY_MODEL:
        fields["model"] = PLAY_MODEL[backend]
    for path, _strength in fields.get("loras") or []:
        if not Path(path).is_file():
            raise WorldStudioError(f"LoRA {path}: no such file")
    return fields, preset


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
