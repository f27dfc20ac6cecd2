"""The models a generation run needs: its backend's and its lifter's declarations
(``required_models()`` on :class:`~.backends.base.Backend` and :class:`~.lift.Lifter`), read
without loading anything. :func:`worldstudio.core.models.requirements.required_models` finds
this function under the job kind ``"generate"``."""

from __future__ import annotations

import os
from typing import Any

from worldstudio.core.generation.backends import Backend, get_backend
from worldstudio.core.generation.lift import Lifter, make_lifter
from worldstudio.core.project import GenerationSettings, Project, ProjectFolder


def generation_models(
    project: Project | str | os.PathLike | None = None,
    backend: str | Backend | None = None,
    model: str | None = None,
    lifter: str | Lifter | None = None,
    **_options: Any,
) -> list[str]:
    """Model names, repo ids or folders a run of ``backend`` (default: the project's backend)
    with ``model`` (default: the project's model when it suits the backend, else the backend's
    default) and ``lifter`` (default: the backend's) loads. ``project`` is a model, a project
    folder or None (default settings)."""
    from worldstudio.core.generation.engine import project_model_for

    if project is not None and not isinstance(project, Project):
        project = ProjectFolder(project).load()
    settings = project.generation if project is not None else GenerationSettings()
    chosen = backend if backend is not None else settings.backend
    if isinstance(chosen, str):
        model_id = model if model is not None else project_model_for(chosen, settings)
        made = get_backend(chosen, model_id=model_id, profile=None, project=project)
        try:
            ids = list(made.required_models())
            default_lifter = made.lifter
        finally:
            made.close()
    else:
        ids = list(getattr(chosen, "required_models", list)())
        default_lifter = chosen.lifter
    if lifter is None or isinstance(lifter, str):
        made_lifter = make_lifter(lifter or default_lifter, project=project)
        try:
            ids += made_lifter.required_models()
        finally:
            made_lifter.close()
    else:
        ids += list(getattr(lifter, "required_models", list)())
    return ids
