"""LoRA fine-tuning of the Wan video backbone on the user's clips.

Importing this package imports no torch: the heavy parts load when a training starts.

    from worldstudio.core.training import TrainConfig, train_job
    job = train_job("my.wsproj", clips="clips/", steps=500, rank=16)
    result = job(ctx)            # ctx: core.jobs.JobContext (the CLI and the studio make one)

The job reports its loss curve, checkpoints and samples as typed events on ``ctx`` and pauses
through ``ctx``'s pause token (core.jobs).

See :mod:`worldstudio.core.training.trainer` for what a run writes and reports, :mod:`worldstudio.core.training.dataset`
for the clip folder and caption formats, :mod:`worldstudio.core.training.model` for what is trained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worldstudio.core.training.config import (
    DEFAULT_TARGET_MODULES,
    TrainConfig,
    TrainingError,
    parse_size,
)

if TYPE_CHECKING:
    from worldstudio.core.training.trainer import TrainResult, train, train_job

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "list_adapters",
    "parse_size",
    "train",
    "train_job",
]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "train", "train_job"):
        from worldstudio.core.training import trainer

        return getattr(trainer, name)
    raise AttributeError(name)


def list_adapters(loras_dir) -> list[dict]:
    """The trained adapters of a project's ``loras/`` folder: each adapter JSON's content plus
    ``"path"`` (the .safetensors file), sorted by name. Adapters without a JSON are listed with
    just their name and path."""
    import json
    from pathlib import Path

    folder = Path(loras_dir)
    out: list[dict[str, Any]] = []
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.safetensors")):
        info: dict = {"name": f.stem}
        meta = f.with_suffix(".json")
        if meta.is_file():
            try:
                loaded = json.loads(meta.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    info.update(loaded)
            except (OSError, ValueError):
                pass
        info["path"] = str(f)
        out.append(info)
    return out
