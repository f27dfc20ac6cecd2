"""The project model: everything a World Studio project is, as pydantic v2 models.

This module is pure data. It imports neither torch nor any UI toolkit, so the studio and the CLI
can load a project in milliseconds. Conventions (camera axes, quaternions, fov) are in
docs/CONVENTIONS.md: OpenCV axes, c2w poses, quaternions (w, x, y, z), vertical fov in degrees.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import secrets
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[3] = 3

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Easing = Literal["linear", "ease_in", "ease_out", "ease_in_out"]
Fov = Annotated[float, Field(gt=0.0, lt=180.0, description="vertical field of view, degrees")]
PromptEntities = Literal["visible", "all"]
# the accelerations of the model backends (worldstudio.core.generation.acceleration)
Quality = Literal["full", "fast", "draft"]
CacheName = Literal["auto", "none", "taylorseer", "first-block", "pab"]
Precision = Literal["auto", "fp8", "int8", "nf4"]

WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
    "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
    "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
"""Wan 2.1's standard negative prompt (its shared config's ``sample_neg_prompt``), the default of
:attr:`GenerationSettings.negative_prompt`: with classifier-free guidance an empty negative
prompt pushes away from nothing."""


def parse_size(text: str, option: str = "--size", multiple: int = 1) -> tuple[int, int]:
    """'832x480' -> (832, 480); an error naming ``option`` otherwise. Video sizes for the models
    must be multiples of 16 (``multiple=16``)."""
    from worldstudio.core.errors import WorldStudioError

    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise WorldStudioError(
            f"{option}: expected WIDTHxHEIGHT such as 832x480, got {text!r}"
        ) from None
    if w <= 0 or h <= 0 or w % multiple or h % multiple:
        what = f"positive multiples of {multiple}" if multiple > 1 else "positive"
        raise WorldStudioError(f"{option}: width and height must be {what}, got {text!r}")
    return w, h


# Ids are a random 64-bit start, drawn once per process (and again in a forked child), plus a
# counter: ids made by one process never repeat, so a path of any length gets distinct keyframe
# ids, and two processes collide only if their starts fall within a few million of each other.
_ID_MASK = (1 << 64) - 1
_id_base = secrets.randbits(64)
_id_counter = itertools.count()


def _reseed_ids() -> None:
    global _id_base, _id_counter
    _id_base, _id_counter = secrets.randbits(64), itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


def new_id(prefix: str) -> str:
    """An id unique within a project (``kf-3fa2c1d04b6e9a07``): never repeated by this process."""
    return f"{prefix}-{(_id_base + next(_id_counter)) & _ID_MASK:016x}"


# Fields whose value is a file or folder inside the project folder are recognised by name, so a
# field added later is checked without being listed: ``file``, ``*_file``, ``*_path``, ``*_dir``.
PATH_FIELD = re.compile(r"^(file|.+_file|.+_path|.+_dir)$")
_INT64 = 1 << 63


def check_project_path(value: str) -> str:
    """``value`` as a relative path that stays inside the project folder (a ValueError saying
    why not). Symbolic links inside the folder are checked when the folder loads
    (:meth:`worldstudio.core.project.ProjectFolder.path`)."""
    if not value or not value.strip():
        raise ValueError("a path inside the project must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"path {value!r} contains a control character")
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith("~"):
        raise ValueError(f"path {value!r} must be a relative path inside the project folder")
    if ".." in posix.parts or ".." in windows.parts:
        raise ValueError(f"path {value!r} must stay inside the project folder (no '..')")
    return value


def _check_plain(value: Any, where: str) -> None:
    """Integers must fit in 64 bits (a 400-digit number is a corrupt file, not a setting);
    text must be valid Unicode (a lone surrogate from a JSON escape cannot be saved)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where}: the number {str(value)[:20]}... is too large")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: the text is not valid Unicode (a lone surrogate)") from None
    elif isinstance(value, tuple | list):
        for i, v in enumerate(value):
            if not isinstance(v, BaseModel):
                _check_plain(v, f"{where}[{i}]")


class _Model(BaseModel):
    """Every model of the project. Checks that apply to all fields, including fields added
    later: unknown keys are errors (a typo in a hand-edited project.json is not silence),
    every float is finite (no NaN or Infinity anywhere), every integer fits in 64 bits, and every
    path field (:data:`PATH_FIELD`) is a relative path inside the project folder."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _every_field(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if PATH_FIELD.match(name):
            for path in value if isinstance(value, tuple | list) else [value]:
                if isinstance(path, str):
                    check_project_path(path)
        _check_plain(value, name)
        return value


def _finite(values: tuple[float, ...], what: str) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers, got {list(values)}")
    return values


def _unit_quat(q: tuple[float, float, float, float]) -> Quat:
    _finite(q, "orientation")
    values = list(q)
    n = math.sqrt(sum(v * v for v in values))
    if not 1e-100 < n < 1e100:  # the squares may over- or underflow: scale first
        big = max(abs(v) for v in values)
        if big < 1e-8:
            raise ValueError("orientation quaternion (w, x, y, z) must not be zero")
        values = [v / big for v in values]
        n = math.sqrt(sum(v * v for v in values))
    if n < 1e-8:
        raise ValueError("orientation quaternion (w, x, y, z) must not be zero")
    return tuple(v / n for v in values)  # type: ignore[return-value]


class CropBox(_Model):
    """The rectangle of the original image that became source.png (original pixels)."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class SourceImage(_Model):
    file: str = "source.png"
    original_name: str | None = None
    original_size: tuple[int, int] | None = Field(
        default=None, description="(height, width) of the image before cropping"
    )
    crop: CropBox | None = None
    height: int = Field(gt=0)
    width: int = Field(gt=0)


class Intrinsics(_Model):
    """A pinhole camera: K in pixels, valid for images of exactly (height, width)."""

    K: tuple[Vec3, Vec3, Vec3]
    height: int = Field(gt=0)
    width: int = Field(gt=0)

    @field_validator("K")
    @classmethod
    def _check_k(cls, K: tuple[Vec3, Vec3, Vec3]) -> tuple[Vec3, Vec3, Vec3]:
        for row in K:
            _finite(row, "K")
        if K[0][0] <= 0 or K[1][1] <= 0:
            raise ValueError(f"K's focal lengths must be positive, got fx={K[0][0]}, fy={K[1][1]}")
        if tuple(K[2]) != (0.0, 0.0, 1.0) or K[1][0] != 0.0:
            raise ValueError("K must be upper triangular with last row (0, 0, 1)")
        return K


class Scene(_Model):
    """The reconstruction, as files inside the project folder."""

    points_file: str = "scene/points.ply"
    depth_file: str | None = "scene/depth.npy"
    point_count: int = Field(default=0, ge=0)
    metric: bool = Field(default=False, description="True when the depth is in metres")
    depth_model: str | None = None
    pending: bool = Field(
        default=False, description="True while the reconstruction is still to be done"
    )


class Keyframe(_Model):
    """A camera keyframe. ``transition`` is the seconds from this keyframe to the next one."""

    id: str = Field(default_factory=lambda: new_id("kf"))
    position: Vec3
    orientation: Quat = (1.0, 0.0, 0.0, 0.0)
    fov: Fov = 60.0
    transition: float = Field(default=1.0, gt=0.0, le=3600.0)
    easing: Easing = "linear"

    _check_position = field_validator("position")(lambda v: _finite(v, "position"))
    _check_orientation = field_validator("orientation")(lambda v: _unit_quat(v))


class PathSettings(_Model):
    fps: int = Field(default=16, gt=0, le=240)
    tension: float = Field(
        default=0.0, ge=-1.0, le=1.0, description="Kochanek-Bartels tension; 0 is Catmull-Rom"
    )
    loop: bool = False
    look_at: Vec3 | None = Field(
        default=None, description="when set, every baked pose is turned to face this point"
    )


class CameraPath(_Model):
    keyframes: list[Keyframe] = Field(default_factory=list)
    settings: PathSettings = Field(default_factory=PathSettings)

    @field_validator("keyframes")
    @classmethod
    def _unique_ids(cls, kfs: list[Keyframe]) -> list[Keyframe]:
        ids = [k.id for k in kfs]
        if len(set(ids)) != len(ids):
            raise ValueError("keyframe ids must be unique")
        return kfs

    def keyframe(self, kf_id: str) -> Keyframe:
        for kf in self.keyframes:
            if kf.id == kf_id:
                return kf
        raise KeyError(kf_id)


class Round(_Model):
    scene_text: str = ""


class Pose(_Model):
    position: Vec3
    orientation: Quat = (1.0, 0.0, 0.0, 0.0)

    _check_position = field_validator("position")(lambda v: _finite(v, "position"))
    _check_orientation = field_validator("orientation")(lambda v: _unit_quat(v))


class Entity(_Model):
    """Something that moves on its own. ``prompts[r]`` says what it does in round r."""

    id: str = Field(default_factory=lambda: new_id("ent"))
    name: str = Field(min_length=1)
    mask_file: str | None = None
    anchor: Vec3 | None = None
    prompts: list[str] = Field(default_factory=list)
    defined_from: Pose | None = Field(
        default=None, description="the observer's camera when the entity was defined"
    )
    defined_fov: Fov | None = None

    def prompt(self, round_index: int) -> str:
        return self.prompts[round_index] if round_index < len(self.prompts) else ""


class Monitor(_Model):
    """A stationary camera that keeps its entities alive while the observer looks away."""

    id: str = Field(default_factory=lambda: new_id("mon"))
    name: str = Field(min_length=1)
    pose: Pose
    fov: Fov = 60.0
    entity_ids: list[str] = Field(default_factory=list)
    enabled: bool = True
    scene_text: str | None = Field(
        default=None,
        description="the scene as this monitor sees it (its prompt's 'scene:' part); "
        "None: the round's scene text",
    )


class GenerationSettings(_Model):
    backend: str = "geometry"
    model_id: str | None = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    width: int = Field(default=832, gt=0, le=4096)
    height: int = Field(default=480, gt=0, le=4096)
    fps: int = Field(default=16, gt=0, le=240)
    frames_per_round: int = 65
    steps: int = Field(default=30, gt=0, le=1000)
    guidance: float = Field(default=5.0, ge=0.0, le=50.0)
    seed: int = Field(default=0, ge=0, lt=2**63)
    # conditioning (docs/METHOD.md): how strongly each role follows the world's renders
    observer_strength: float = Field(default=1.0, ge=0.0, le=2.0)
    monitor_strength: float = Field(default=0.4, ge=0.0, le=2.0)
    negative_prompt: str = WAN_NEGATIVE_PROMPT
    flow_shift: float | None = Field(
        default=None, gt=0.0, le=20.0, description="the sampler's flow shift; None: the backend's"
    )
    context_frames: int | None = Field(
        default=None,
        ge=0,
        le=32,
        description="previous frames each call continues from; None: the backend's default",
    )
    prompt_entities: PromptEntities = Field(
        default="visible",
        description="which entities the observer's prompt names: those its renders show, or all",
    )
    # speed and memory of the model backends (worldstudio.core.generation.acceleration)
    attention: str = Field(
        default="auto",
        pattern=r"^[a-z0-9-]+$",
        description="attention backend (auto: the best this machine runs)",
    )
    compile: bool = Field(
        default=False, description="compile the transformer's repeated blocks (torch.compile)"
    )
    quality: Quality = Field(
        default="full",
        description="full; fast (a cache); draft (a step-distillation LoRA, 4-8 steps)",
    )
    cache: CacheName = Field(default="auto", description="denoising cache (auto: the quality's)")
    precision: Precision = Field(
        default="auto", description="the transformer's weights: auto (bf16), fp8, int8, nf4"
    )
    vae_tiling: bool | None = Field(
        default=None, description="VAE tiling and slicing (None: the memory profile's)"
    )
    colour_match: bool = Field(
        default=True,
        description="match each call's colours to the frames it continues (against drift)",
    )

    @field_validator("frames_per_round")
    @classmethod
    def _four_k_plus_one(cls, f: int) -> int:
        if f < 5 or (f - 1) % 4 != 0:
            raise ValueError(
                f"frames per round must be 4k+1 and at least 5 (5, 9, ..., 65, ...), got {f}"
            )
        return f

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16 != 0:
            raise ValueError(f"the video size must be a multiple of 16 pixels, got {v}")
        return v


class Project(_Model):
    schema_version: Literal[3] = SCHEMA_VERSION
    name: str = "Untitled"
    source: SourceImage | None = None
    intrinsics: Intrinsics | None = None
    scene: Scene | None = None
    camera_path: CameraPath = Field(default_factory=CameraPath)
    rounds: list[Round] = Field(default_factory=lambda: [Round()])
    entities: list[Entity] = Field(default_factory=list)
    monitors: list[Monitor] = Field(default_factory=list)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)

    @model_validator(mode="after")
    def _references(self) -> Project:
        ids = [e.id for e in self.entities]
        if len(set(ids)) != len(ids):
            raise ValueError("entity ids must be unique")
        mids = [m.id for m in self.monitors]
        if len(set(mids)) != len(mids):
            raise ValueError("monitor ids must be unique")
        known = set(ids)
        for m in self.monitors:
            missing = [e for e in m.entity_ids if e not in known]
            if missing:
                raise ValueError(f"monitor {m.name!r} watches unknown entities {missing}")
        for e in self.entities:
            if len(e.prompts) > max(len(self.rounds), 1):
                raise ValueError(
                    f"entity {e.name!r} has {len(e.prompts)} prompts for {len(self.rounds)} rounds"
                )
        return self

    @property
    def total_frames(self) -> int:
        """Frames of the whole video: rounds x frames per round."""
        return len(self.rounds) * self.generation.frames_per_round

    def entity(self, entity_id: str) -> Entity:
        for e in self.entities:
            if e.id == entity_id:
                return e
        raise KeyError(entity_id)

    def monitor(self, monitor_id: str) -> Monitor:
        for m in self.monitors:
            if m.id == monitor_id:
                return m
        raise KeyError(monitor_id)
