"""Upgrades of project.json written by older versions of the studio.

Each step takes the raw dict of version N and returns the dict of version N + 1. They run on
plain dicts before validation, so an old file never needs old model classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worldstudio.core.errors import ProjectError

Raw = dict[str, Any]


def _v1_to_v2(raw: Raw) -> Raw:
    """Version 1 kept the video size as a "WxH" string and the rounds as a list of scene texts,
    and called the keyframe transition ``duration``."""
    out = dict(raw)
    gen = dict(out.get("generation", {}))
    if "resolution" in gen:
        text = str(gen.pop("resolution"))
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError as exc:
            raise ProjectError(f"generation.resolution: expected 'WxH', got {text!r}") from exc
        gen["width"], gen["height"] = w, h
    out["generation"] = gen
    if "prompts" in out:
        out["rounds"] = [{"scene_text": str(t)} for t in out.pop("prompts")]
    path = dict(out.get("camera_path", {}))
    kfs = []
    for kf in path.get("keyframes", []):
        kf = dict(kf)
        if "duration" in kf:
            kf["transition"] = kf.pop("duration")
        kfs.append(kf)
    if kfs:
        path["keyframes"] = kfs
    if path:
        out["camera_path"] = path
    out["schema_version"] = 2
    return out


def _v2_to_v3(raw: Raw) -> Raw:
    """Version 3 added the conditioning settings (per-role strengths, negative prompt, flow
    shift, context frames, which entities the prompt names) and a monitor's own scene text. A
    version 2 file has none of them: each takes its default (the negative prompt becomes Wan's
    standard one instead of the empty prompt version 2 runs used)."""
    out = dict(raw)
    out["schema_version"] = 3
    return out


MIGRATIONS: dict[int, Callable[[Raw], Raw]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(raw: Raw, target: int) -> Raw:
    """Bring ``raw`` up to schema version ``target``, one step at a time."""
    version = raw.get("schema_version")
    if not isinstance(version, int):
        raise ProjectError(f"schema_version: expected an integer, got {version!r}")
    if version > target:
        raise ProjectError(
            f"schema_version: the project is version {version}, newer than this studio "
            f"understands ({target}); update World Studio"
        )
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ProjectError(f"schema_version: no migration from version {version}")
        raw = step(raw)
        version = raw["schema_version"]
    return raw
