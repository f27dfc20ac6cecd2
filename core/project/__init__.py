"""The project model and its folder on disk: project.json, the scene cloud, autosave, and the
runs (:mod:`.runs`, written by :mod:`.run_writer`)."""

from worldstudio.core.fileio import atomic_write_bytes
from worldstudio.core.project.model import (
    SCHEMA_VERSION,
    CameraPath,
    CropBox,
    Entity,
    GenerationSettings,
    Intrinsics,
    Keyframe,
    Monitor,
    PathSettings,
    Pose,
    Project,
    Round,
    Scene,
    SourceImage,
)
from worldstudio.core.project.runs import RunError, RunFolder, list_runs, resolve_run, run_by_id
from worldstudio.core.project.store import ProjectFolder, Recovery, load_project, save_project

__all__ = [
    "SCHEMA_VERSION",
    "CameraPath",
    "CropBox",
    "Entity",
    "GenerationSettings",
    "Intrinsics",
    "Keyframe",
    "Monitor",
    "PathSettings",
    "Pose",
    "Project",
    "ProjectFolder",
    "Recovery",
    "Round",
    "RunError",
    "RunFolder",
    "Scene",
    "SourceImage",
    "atomic_write_bytes",
    "list_runs",
    "load_project",
    "resolve_run",
    "run_by_id",
    "save_project",
]
