"""The project folder on disk (docs/FORMATS.md): reading, validating and atomic writing, the
scene cloud, autosave and recovery, and saving a copy under another folder ("Save As").

Layout::

    project.json                 the model
    .project.autosave.json       unsaved changes of an editing session (the studio's autosave)
    source.png                   the cropped source image
    scene/                       points.ply, depth.npy, masks/
    runs/<id>/                   generation runs (:mod:`worldstudio.core.project.runs`)
    loras/                       fine-tuned adapters
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from pydantic import BaseModel, ValidationError

from worldstudio.core.errors import ProjectError, WorldStudioError
from worldstudio.core.fileio import (
    atomic_write_bytes,
    clean_leftovers,
    is_foreign_leftover,
    is_leftover,
    parse_json,
    read_regular_file,
)
from worldstudio.core.project.migrations import migrate
from worldstudio.core.project.model import PATH_FIELD, SCHEMA_VERSION, Project

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.pointcloud import PointCloud

PROJECT_FILE = "project.json"
PROJECT_SUFFIX = ".wsproj"
AUTOSAVE_FILE = ".project.autosave.json"
MAX_PROJECT_JSON_BYTES = 128 * 1024 * 1024


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        part = part if isinstance(part, int) else str(part)[:60]
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out[:200] or "(top level)"


def project_from_json(text: str | bytes, source: str = PROJECT_FILE) -> Project:
    """Parse, migrate and validate project JSON; errors name ``source`` and the field."""
    raw = parse_json(text, source, ProjectError)
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
        first = exc.errors(include_url=False, include_input=False)[0]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        msg = " ".join(str(first["msg"]).removeprefix("Value error, ").split())[:300]
        raise ProjectError(f"{source}: field '{_field_path(first['loc'])}': {msg}{more}") from None
    except (RecursionError, MemoryError) as exc:
        raise ProjectError(f"{source}: too deeply nested or too large to read") from exc


def project_to_json(project: Project) -> str:
    return json.dumps(project.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Recovery:
    """Unsaved changes that an earlier editing session left in the autosave file."""

    project: Project
    saved_at: datetime  # when the autosave was written
    path: Path


class ProjectFolder:
    """Paths inside a project folder; load and save; the scene cloud; autosave and recovery."""

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
        """A file the project refers to; refuses paths that leave the project folder, also
        through a symbolic link."""
        from worldstudio.core.project.model import check_project_path

        try:
            check_project_path(relative)
        except ValueError as exc:
            raise ProjectError(f"{self.project_file}: {exc}") from None
        p = self.root / relative
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, os.path.realpath(p)]) != root:
            raise ProjectError(
                f"{self.project_file}: path {relative!r} leads outside the project folder "
                "(through a symbolic link)"
            )
        return p

    def exists(self) -> bool:
        return self.project_file.is_file()

    def clean_leftovers(self) -> list[str]:
        """Clean what interrupted writes left in the project folder, in every folder under it
        and beside it (an interrupted save of the whole folder), as
        :func:`worldstudio.core.fileio.clean_leftovers` does before each write. Returns one line
        per thing done (for a log)."""
        done = clean_leftovers(self.root.absolute().parent)
        for dirpath, dirnames, _files in os.walk(self.root):
            done += clean_leftovers(dirpath)
            try:  # listed again: a folder may have been restored under its own name
                dirnames[:] = sorted(
                    e.name
                    for e in os.scandir(dirpath)
                    if e.is_dir(follow_symlinks=False) and not is_leftover(e.name)
                )
            except OSError:
                dirnames[:] = []
        return done

    def load(self) -> Project:
        """The model in project.json, with every path it holds checked to stay inside the
        folder."""
        parts = self.root.absolute().parts
        leftover = next((part for part in parts if is_foreign_leftover(part)), None)
        if leftover is not None:
            raise ProjectError(
                f"{self.root}: not a project: {leftover} is an unfinished copy left by an "
                "interrupted save or import"
            )
        if not self.root.exists():
            raise ProjectError(f"{self.root}: no such project folder")
        if not self.project_file.exists():
            raise ProjectError(f"{self.root}: not a project (no {PROJECT_FILE} inside)")
        data = read_regular_file(
            self.project_file, MAX_PROJECT_JSON_BYTES, ProjectError, "project file"
        )
        project = project_from_json(data, str(self.project_file))
        for _where, relative in project_paths(project):
            self.path(relative)
        return project

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

    def save_as(self, project: Project, target: str | os.PathLike[str]) -> ProjectFolder:
        """Save ``project`` into another folder, with this folder's files (source image, scene,
        adapters; not its runs, its autosave or other hidden files) so that the new folder is a
        complete project. Files already in ``target`` are kept. Returns the new folder."""
        new = ProjectFolder(target)
        if new.root.resolve() != self.root.resolve():
            try:
                new.root.mkdir(parents=True, exist_ok=True)
                for item in self.root.iterdir():
                    if item.name in (PROJECT_FILE, "runs") or item.name.startswith("."):
                        continue
                    dest = new.root / item.name
                    if dest.exists():
                        continue
                    if item.is_dir():
                        shutil.copytree(item, dest)
                    else:
                        shutil.copy2(item, dest)
            except OSError as exc:
                raise ProjectError(
                    f"{new.root}: cannot copy the project's files ({exc.strerror or exc})"
                ) from exc
        new.save(project)
        return new

    # -- the scene cloud ---------------------------------------------------------------------
    @overload
    def read_cloud(
        self, project: Project | None = None, *, missing_ok: Literal[False] = False
    ) -> PointCloud: ...

    @overload
    def read_cloud(
        self, project: Project | None = None, *, missing_ok: bool
    ) -> PointCloud | None: ...

    def read_cloud(
        self, project: Project | None = None, *, missing_ok: bool = False
    ) -> PointCloud | None:
        """The scene's point cloud (numpy only), for ``project`` (default: project.json's model).
        A project with no reconstructed scene yet, or whose points file is missing, is a
        ProjectError, or None with ``missing_ok``."""
        from worldstudio.core.pointcloud import read_ply

        project = project if project is not None else self.load()
        if project.scene is None or project.scene.pending:
            if missing_ok:
                return None
            raise ProjectError(f"{self.root}: the project has no reconstructed scene yet")
        path = self.path(project.scene.points_file)
        if not path.is_file():
            if missing_ok:
                return None
            raise ProjectError(f"{path}: the scene's point cloud is missing")
        return read_ply(path)

    # -- autosave and recovery ---------------------------------------------------------------
    @property
    def autosave_file(self) -> Path:
        return self.root / AUTOSAVE_FILE

    def autosave(self, project: Project) -> Path:
        """Write an unsaved model beside project.json (never over it), atomically."""
        try:
            atomic_write_bytes(self.autosave_file, project_to_json(project).encode("utf-8"))
        except WorldStudioError as exc:
            raise ProjectError(f"autosave failed: {exc}") from exc
        return self.autosave_file

    def discard_autosave(self) -> None:
        """Drop the autosave (after a save, or when its changes are not wanted)."""
        self.autosave_file.unlink(missing_ok=True)

    def recovery(self, saved: Project) -> Recovery | None:
        """The changes an earlier session autosaved and never saved, when there are any: the
        autosave is newer than project.json and differs from ``saved`` (the model in
        project.json). A stale autosave is removed; an unreadable one raises ProjectError and
        stays where it is."""
        path = self.autosave_file
        if not path.is_file():
            return None
        text = read_regular_file(path, MAX_PROJECT_JSON_BYTES, ProjectError, "autosave file")
        try:
            written = path.stat().st_mtime
            saved_at = self.project_file.stat().st_mtime
        except OSError as exc:
            raise ProjectError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        project = project_from_json(text, str(path))
        if project == saved or written < saved_at:
            self.discard_autosave()
            return None
        return Recovery(project, datetime.fromtimestamp(written), path)


def project_paths(model: BaseModel, where: str = "") -> Iterator[tuple[str, str]]:
    """(field, relative path) for every path the model holds (fields named as
    :data:`~worldstudio.core.project.model.PATH_FIELD` says), at any depth."""
    for name, value in model.__dict__.items():
        here = f"{where}.{name}" if where else name
        items = value if isinstance(value, list | tuple) else [value]
        for i, item in enumerate(items):
            at = f"{here}[{i}]" if isinstance(value, list | tuple) else here
            if isinstance(item, BaseModel):
                yield from project_paths(item, at)
            elif isinstance(item, str) and PATH_FIELD.match(name):
                yield at, item


def load_project(root: str | os.PathLike) -> Project:
    return ProjectFolder(root).load()


def save_project(project: Project, root: str | os.PathLike) -> None:
    ProjectFolder(root).save(project)
