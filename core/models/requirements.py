"""Which models a job needs, which of them are missing, and one command that fetches them.

A job checks its models before it starts work: :func:`check_models` lists every model that is
not on this machine (name, repo id, download size, total) in one :class:`MissingModelsError`
when they cannot be downloaded now, with the command that fetches them all::

    worldstudio models download --for generate --backend wan-vace

Each job kind declares what it needs where it is implemented (a generation backend and its
lifter, the reconstruction's depth model, the fine-tuning's video model); :data:`JOBS` maps a
job kind to that declaration, by name, imported only when asked (like the backend registry), so
that this package stays below the packages that run the models. :func:`required_models` and
:func:`missing_models` are what a front end needs for a pre-flight check (the CLI's
``models download --for``, a dialog in the studio).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from worldstudio.core.models.catalogue import CATALOGUE, ModelInfo, find_model, format_bytes
from worldstudio.core.models.manager import (
    ModelError,
    ModelMissingError,
    missing_message,
    model_status,
    offline_reason,
)

JOBS: dict[str, str] = {
    "generate": "worldstudio.core.generation.requirements:generation_models",
    "new": "worldstudio.core.reconstruct.new_project:reconstruction_models",
    "segment": "worldstudio.core.reconstruct.segment:segmentation_models",
    "train": "worldstudio.core.training.model:training_models",
}
"""Job kind -> ``"module:function"``; the function takes the job's options as keywords and
returns model names, repo ids or local folders (None entries are ignored)."""

# How the options of each job kind are spelled on the command line (`models download --for`)
_FLAGS = {
    "backend": "--backend",
    "model": "--model",
    "lifter": "--lifter",
    "depth_model": "--depth-model",
    "project": "--project",
}


class MissingModelsError(ModelMissingError):
    """Models a job needs that are not on this machine and cannot be downloaded now."""

    def __init__(self, models: list[ModelInfo], command: str, reason: str, what: str = "this job"):
        self.models = models
        self.command = command
        self.reason = reason
        if len(models) == 1:  # the manager's own line for one model (with its command)
            super().__init__(missing_message(models[0], reason))
        else:
            super().__init__(missing_text(models, reason, command, what))


def models_for(ids: Iterable[str | ModelInfo | os.PathLike | None]) -> list[ModelInfo]:
    """Catalogue entries for model names, repo ids or entries, in order, each once. A local
    folder (an existing path) needs nothing; an id that is neither is a ModelError."""
    out: list[ModelInfo] = []
    for item in ids:
        if item is None:
            continue
        found = item if isinstance(item, ModelInfo) else find_model(str(item))
        if found is None:
            if Path(str(item)).expanduser().is_dir():
                continue
            known = ", ".join(m.name for m in CATALOGUE)
            raise ModelError(
                f"unknown model {str(item)!r} (not a local folder either); known models: {known}"
            )
        info: ModelInfo = found
        if info not in out:
            out.append(info)
    return out


def required_models(job: str, **options: Any) -> list[ModelInfo]:
    """Every catalogue model the job ``job`` (a key of :data:`JOBS`) needs with ``options``
    (e.g. ``backend="wan-vace"``, ``project=folder``), present or not. Never touches the
    network and loads nothing."""
    try:
        target = JOBS[job]
    except KeyError:
        raise ModelError(f"unknown job {job!r}; use one of {', '.join(JOBS)}") from None
    module, name = target.split(":")
    declare = getattr(importlib.import_module(module), name)
    return models_for(declare(**options))


def missing_models(models: Iterable[ModelInfo]) -> list[ModelInfo]:
    """The models of ``models`` that are not on this machine (neither in the hub cache nor in
    a local folder)."""
    return [m for m in models if not model_status(m).present]


def fetch_command(job: str, **options: Any) -> str:
    """The one command that downloads everything ``job`` needs with ``options``."""
    words = ["worldstudio models download --for", job]
    for key, value in options.items():
        if value is None or key not in _FLAGS:
            continue
        if key in ("model", "depth_model"):
            info = find_model(str(value))
            value = info.name if info is not None else value
        text = str(value)
        words += [_FLAGS[key], f"'{text}'" if any(c.isspace() for c in text) else text]
    return " ".join(words)


def missing_text(models: list[ModelInfo], reason: str, command: str, what: str = "this job") -> str:
    """One line: ``what`` needs the missing models (name, repo id, size), their total, why they
    cannot be downloaded now and the command that fetches them."""
    total = sum(m.download_bytes for m in models)
    listed = "; ".join(f"{m.name} ({m.repo_id}, {m.size_text})" for m in models)
    count = "a model that is" if len(models) == 1 else f"{len(models)} models that are"
    return (
        f"{what} needs {count} not on this machine: {listed}; {format_bytes(total)} in all. "
        f"They cannot be downloaded now ({reason}): fetch them with `{command}` on a machine "
        "with internet access (or point --model-dir NAME=PATH at folders holding them)"
    )


def check_models(
    models: Iterable[ModelInfo], command: str, what: str = "this job"
) -> list[ModelInfo]:
    """Before a job starts: raise :class:`MissingModelsError` naming every missing model when
    any is missing and downloads are impossible now (``what`` names the job in the message);
    else return the missing ones, for the job to download before it starts."""
    missing = missing_models(models)
    if missing:
        reason = offline_reason()
        if reason:
            if len(missing) == 1:  # one model: its own name is the shortest command
                command = f"worldstudio models download {missing[0].name}"
            raise MissingModelsError(missing, command, reason, what)
    return missing


def check_job_models(job: str, **options: Any) -> list[ModelInfo]:
    """:func:`check_models` for ``required_models(job, **options)``, with the command that
    fetches them."""
    return check_models(required_models(job, **options), fetch_command(job, **options), job)
