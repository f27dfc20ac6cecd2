"""The project model and its folder on disk."""

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
from worldstudio.core.project.store import ProjectFolder, load_project, save_project

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
    "Round",
    "Scene",
    "SourceImage",
    "atomic_write_bytes",
    "load_project",
    "save_project",
]
