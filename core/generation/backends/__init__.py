"""Backends by name. Modules are imported lazily, so ``geometry``, ``oracle`` and ``ideal`` never
pull in torch-heavy libraries such as diffusers.

A registry entry is ``"package.module:factory"``; the factory is called with the options given to
:func:`get_backend` and returns a :class:`Backend`. Diffusion backends expose
``create_backend(**options)`` in their module.

The world engine calls every factory with these keyword options (a factory takes ``**options``
and ignores what it does not use): ``model_id`` (str | None: hub repo id or local folder),
``profile`` (str | None: memory profile name), ``project`` (the :class:`worldstudio.core.project.Project`),
``project_folder`` (the :class:`worldstudio.core.project.ProjectFolder`).
"""

from __future__ import annotations

import importlib
from typing import Any

from worldstudio.core.generation.backends.base import (
    CONTEXT_FRAMES,
    Backend,
    BackendError,
    BaseBackend,
    GenerationRequest,
    ModelChoice,
    check_frames,
    request_conditioning,
)

_REGISTRY: dict[str, str] = {
    "geometry": "worldstudio.core.generation.backends.geometry:GeometryBackend",
    "oracle": "worldstudio.core.generation.backends.oracle:OracleBackend",
    "ideal": "worldstudio.core.generation.backends.ideal:IdealBackend",
    "wan-vace": "worldstudio.core.generation.backends.wan_vace:create_backend",
    "wan-i2v": "worldstudio.core.generation.backends.wan_i2v:create_backend",
    "liveworld": "worldstudio.core.generation.backends.liveworld.backend:create_backend",
}


def register_backend(name: str, target: str) -> None:
    """Register (or replace) a backend factory by ``"module:attribute"`` path."""
    if ":" not in target:
        raise ValueError(f"backend target {target!r} must look like 'package.module:factory'")
    _REGISTRY[name] = target


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str, **options: Any) -> Backend:
    """Create the backend called ``name`` with ``options`` (e.g. model_id, profile, project)."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise BackendError(
            f"unknown backend {name!r}; known: {', '.join(backend_names())}"
        ) from None
    module_name, attr = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise BackendError(
                f"backend {name!r} is not available in this installation ({module_name} is missing)"
            ) from exc
        raise BackendError(
            f"backend {name!r} needs the Python package {exc.name!r}, which is not installed"
        ) from exc
    factory = getattr(module, attr)
    return factory(**options)


__all__ = [
    "CONTEXT_FRAMES",
    "Backend",
    "BackendError",
    "BaseBackend",
    "GenerationRequest",
    "ModelChoice",
    "backend_names",
    "check_frames",
    "get_backend",
    "register_backend",
    "request_conditioning",
]
