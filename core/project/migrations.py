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
    and called the keyframe transition ``duration``. Parts of the wrong type are left as they
    are: validation then names the field."""
    out = dict(raw)
    gen = out.get("generation", {})
    if isinstance(gen, dict):
        gen = dict(gen)
        if "resolution" in gen:
            text = gen.pop("resolution")
            try:
                w, h = (int(v) for v in str(text).lower().split("x"))
            except ValueError as exc:
                raise ProjectError(
                    f"generation.resolution: expected 'WxH', got {str(text)[:40]!r}"
                ) from exc
            gen["width"], gen["height"] = w, h
        out["generation"] = gen
    prompts = out.pop("prompts", None)
    if isinstance(prompts, list):
        out["rounds"] = [{"scene_text": t if isinstance(t, str) else str(t)} for t in prompts]
    elif prompts is not None:
        raise ProjectError(f"prompts: expected a list of scene texts, got {type(prompts).__name__}")
    path = out.get("camera_path", {})
    if isinstance(path, dict) and isinstance(path.get("keyframes"), list):
        path = dict(path)
        kfs = []
        for kf in path["keyframes"]:
            if isinstance(kf, dict) and "duration" in kf:
                kf = dict(kf)
                kf["transition"] = kf.pop("duration")
            kfs.append(kf)
        path["keyframes"] = kfs
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
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProjectError(f"schema_version: expected an integer, got {str(version)[:40]!r}")
    if version > target:
        raise ProjectError(
            f"schema_version: the project is version {str(version)[:20]}, newer than this studio "
            f"understands ({target}); update World Studio"
        )
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ProjectError(f"schema_version: no migration from version {str(version)[:20]}")
        raw = step(raw)
        version = raw["schema_version"]
    return raw
