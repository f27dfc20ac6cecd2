"""The project folder on disk (docs/FORMATS.md): reading, validating and atomic writing.

Layout::

    project.json   the model
    source.png     the cropped source image
    scene/         points.ply, depth.npy, masks/
    runs/<id>/     generation runs
    loras/         fine-tuned adapters
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from worldstudio.core.errors import ProjectError, WorldStudioError
from worldstudio.core.fileio import atomic_write_bytes
from worldstudio.core.project.migrations import migrate
from worldstudio.core.project.model import SCHEMA_VERSION, Project

PROJECT_FILE = "project.json"
PROJECT_SUFFIX = ".wsproj"


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def project_from_json(text: str, source: str = PROJECT_FILE) -> Project:
    """Parse, migrate and validate project JSON; errors name ``source`` and the field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(raw, dict):
        raise ProjectError(f"{source}: expected a JSON object at the top level")
    if "schema_version" not in raw:
        raise ProjectError(f"{source}: field 'schema_version' is missing")
    try:
        raw = migrate(raw, SCHEMA_VERSION)
    except ProjectError as exc:
        raise ProjectError(f"{source}: {exc}") from exc
    try:
        return Project.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ProjectError(
            f"{source}: field '{_field_path(first['loc'])}': {first['msg']}{more}"
        ) from exc


def project_to_json(project: Project) -> str:
    return json.dumps(project.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


class ProjectFolder:
    """Paths inside a project folder, plus load and save."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def project_file(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def scene_dir(self) -> Path:
        return self.root / "scene"

    @property
    def masks_dir(self) -> Path:
        return self.scene_dir / "masks"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def loras_dir(self) -> Path:
        return self.root / "loras"

    def path(self, relative: str) -> Path:
        """A file the project refers to; refuses paths that leave the project folder."""
        p = Path(relative)
        if p.is_absolute() or ".." in p.parts:
            raise ProjectError(
                f"{self.project_file}: path {relative!r} must stay inside the project"
            )
        return self.root / p

    def exists(self) -> bool:
        return self.project_file.is_file()

    def load(self) -> Project:
        if not self.root.exists():
            raise ProjectError(f"{self.root}: no such project folder")
        if not self.project_file.is_file():
            raise ProjectError(f"{self.root}: not a project (no {PROJECT_FILE} inside)")
        try:
            text = self.project_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{self.project_file}: cannot be read ({exc})") from exc
        return project_from_json(text, str(self.project_file))

    def save(self, project: Project) -> None:
        """Atomically replace project.json (folders created as needed)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for d in (self.scene_dir, self.runs_dir, self.loras_dir):
                d.mkdir(exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"{self.root}: cannot be written ({exc.strerror or exc})") from exc
        try:
            atomic_write_bytes(self.project_file, project_to_json(project).encode("utf-8"))
        except WorldStudioError as exc:
            raise ProjectError(str(exc)) from exc


def load_project(root: str | os.PathLike) -> Project:
    return ProjectFolder(root).load()


def save_project(project: Project, root: str | os.PathLike) -> None:
    ProjectFolder(root).save(project)
