"""The world engine (docs/METHOD.md): rounds, monitors, out-of-sight evolution.

Per round r (frames r*F ... r*F + F - 1; observer frame i is world time (r*F + i) / fps), the
engine takes five named steps (:meth:`_Engine.run_round`):

1. **evolve the monitors**: every enabled monitor generates F frames of its entities from its
   fixed pose, with the whole frame to generate and the static world rendered from that pose as
   a soft hint (the monitor's conditioning strength), its previous frames and
   ``scene: <its scene text>; foreground: <its entities' prompts>``, so its entities can go
   anywhere plausible; its clip is lifted to 3D (:mod:`worldstudio.core.generation.lift`): per
   frame, per entity, a cloud, at the same world times as the observer's frames;
2. **track the entities**: each entity's cloud in each frame of the round, from the monitor that
   saw it best (an entity no monitor saw keeps its last state);
3. **condition and generate the observer**: for each observer frame i the static cloud and the
   entities' frame-i clouds are rendered into observer pose i (z-buffer): the scene projection
   and the foreground projection, pinholes filled, and the mask of what to generate (holes,
   sparse regions, depth discontinuities, entity regions; :mod:`.conditioning`); the observer's
   round is generated from them, its previous frames (with the projections the previous
   round's call got for them), scene references (the source image and earlier frames retrieved
   by pose, entities blacked out), one instance reference per visible entity and a prompt that
   names the entities its renders show (:mod:`.references`);
4. **grow the world**: the static world grows from the new frames where the render had holes,
   no entity is drawn or tracked, the voxel is free and the round's other frames agree
   (:func:`~worldstudio.core.generation.world.grow_static`; existing points never change); an
   entity no monitor watches takes the state the observer last saw;
5. **write the round** (:class:`worldstudio.core.project.run_writer.RunWriter`): the state now
   (of the static world, only the points the round added); videos (with the exact control and
   mask videos each model call received), then round.json
   ("complete", last), in the background.

The observer's cameras come from an *observer source* (:mod:`.observer`), asked for each
round's cameras as the round starts and told what the round made once it is written: the
project's camera path baked (an ordinary run), poses given up front (headless play; the resume of
a run that recorded its poses), or a live play session (:mod:`worldstudio.core.play`), whose run
grows a round at a time until the session says it is over.

Entities no enabled monitor watches (or every entity, with monitors off) do not evolve: they keep
their last seen state, i.e. their points in the last observer frame that showed them.

With colour matching on (the project's default), every call's frames get the colours of the
previous frames it continued from before anything else uses them (:mod:`.colour`; round.json's
``inputs`` record what was done), against the colour drift of long videos.

Every backend call gets its own seed, :func:`derive_seed` (run seed, round, camera), and its
request from one builder (:meth:`_Engine.request`). Between steps the engine calls
``ctx.checkpoint()``: a paused job holds there, a cancelled one stops. A run can be resumed after its last complete
round, or branched from round K into a new run with the project's current prompts. A failure or
cancel leaves the finished rounds on disk, run.json saying so, and project.json untouched (the
engine never writes it).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.errors import Cancelled, ProjectError, WorldStudioError
from worldstudio.core.generation.acceleration import cache_for, check_attention
from worldstudio.core.generation.backends import (
    CONTEXT_FRAMES,
    Backend,
    GenerationRequest,
    check_frames,
    get_backend,
)
from worldstudio.core.generation.colour import NOTHING as NO_COLOUR_MATCH
from worldstudio.core.generation.colour import match_colours
from worldstudio.core.generation.conditioning import (
    Layers,
    ObserverMask,
    layers_from_render,
    observer_mask,
    repeat_layers,
    select_entities,
)
from worldstudio.core.generation.lift import Lifter, LiftInput, entity_clouds, make_lifter
from worldstudio.core.generation.observer import (
    ObserverCameras,
    ObserverSource,
    PathObserver,
    PosesObserver,
    RoundOutcome,
)
from worldstudio.core.generation.references import (
    HistoryView,
    blackout,
    history_view,
    instance_reference,
    pack_views,
    retrieve,
    unpack_views,
)
from worldstudio.core.generation.world import (
    ENTITY_MARGIN,
    MIN_ENTITY_PIXELS,
    EntityCloud,
    VoxelGrid,
    WorldRender,
    add_static,
    grow_static,
    initial_world,
    render_world,
    voxel_size_for,
    world_holes,
)
from worldstudio.core.jobs import JobContext, Report
from worldstudio.core.pointcloud import PointCloud
from worldstudio.core.project import Entity, GenerationSettings, Monitor, Project, ProjectFolder
from worldstudio.core.project.run_writer import (
    ContextProjections,
    RoundState,
    RunWriter,
    SavedRound,
)
from worldstudio.core.project.runs import (
    RunError,
    RunFolder,
    RunRecord,
    check_not_written,
    load_npz,
    new_run_id,
    now_iso,
    resolve_run,
    safe_name,
    save_npz,
)

HISTORY_PER_ROUND = 4
"""Observer frames per round kept as candidate scene references for later rounds."""
RETRIEVED_REFERENCES = 2
"""Earlier frames retrieved by pose as scene references, at most, per observer call."""


class GenerationError(WorldStudioError):
    """A generation run that cannot start or that failed in a round (names the round and camera)."""


def derive_seed(run_seed: int, round_index: int, camera: str) -> int:
    """The seed of one backend call: a hash of the run seed, the round and the camera
    (``"observer"`` or ``"monitor:<id>"``), in [0, 2**31)."""
    digest = hashlib.sha256(
        f"worldstudio:{int(run_seed)}:{int(round_index)}:{camera}".encode()
    ).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFFFFFF


def compose_prompt(scene_text: str, foreground: list[str]) -> str:
    """``scene: <scene_text>; foreground: <prompts joined by ', '>``."""
    fg = ", ".join(p.strip() for p in foreground if p and p.strip())
    return f"scene: {scene_text.strip()}; foreground: {fg}"


def scene_text(project: Project, r: int) -> str:
    """Round r's scene text; rounds past the project's last reuse its last text."""
    if not project.rounds:
        return ""
    return project.rounds[min(r, len(project.rounds) - 1)].scene_text


def entity_prompt(entity: Entity, r: int) -> str:
    """What the entity does in round r; past its last prompt it goes on doing that."""
    if r < len(entity.prompts) and entity.prompts[r].strip():
        return entity.prompts[r]
    earlier = [p for p in entity.prompts[: r + 1] if p.strip()]
    return earlier[-1] if earlier else ""


@dataclass(frozen=True)
class RunOptions:
    """How to run the engine. A setting left None comes from the project's generation settings
    (a resume or a branch: from the parent run, see :func:`generate_job`)."""

    backend: str | Backend | None = None  # a name, or a Backend object (the caller closes it)
    model: str | None = None  # model repo id or local folder (model backends)
    rounds: int | None = None
    steps: int | None = None
    size: tuple[int, int] | None = None  # (width, height)
    frames_per_round: int | None = None
    seed: int | None = None
    guidance: float | None = None
    profile: str | None = None  # memory profile of the model backends
    lifter: str | Lifter | None = (
        None  # "render", "oracle", "model" or a Lifter; default: the backend's
    )
    loras: list[tuple[str, float]] | None = None  # (.safetensors path, strength)
    context_frames: int | None = None  # default: the project's, else the backend's
    splat_radius: int | None = None  # default 0 (1-pixel points)
    observer_strength: float | None = None  # conditioning strength per role
    monitor_strength: float | None = None
    negative_prompt: str | None = None
    flow_shift: float | None = None  # default: the project's, else the backend's for the size
    prompt_entities: str | None = None  # "visible" or "all"
    monitors: bool = True  # False: every monitor off (entities keep their last seen state)
    resume: str | os.PathLike[str] | None = None  # a run id or folder
    from_round: int | None = None  # branch from this round of ``resume`` (default: the latest run)
    backend_options: dict[str, Any] | None = None  # extra keyword options for the backend factory
    write_preview: bool = False  # keep the latest preview at <run>/preview.png (the CLI's use)
    # speed and memory of the model backends (worldstudio.core.generation.acceleration)
    attention: str | None = None  # an attention backend name or "auto"
    compile: bool | None = None  # regional torch.compile of the transformer's blocks
    quality: str | None = None  # "full", "fast" (a cache) or "draft" (a distillation LoRA)
    cache: str | None = None  # a cache name, "none" or "auto" (the quality's)
    precision: str | None = None  # the transformer's weights: "auto", "fp8", "int8", "nf4"
    vae_tiling: bool | None = None
    colour_match: bool | None = None  # match each call's colours to the frames it continues
    # where the observer's cameras come from, round by round (default: the project's camera path;
    # a resume of a run that recorded its poses: those); see :mod:`.observer`
    observer: ObserverSource | None = None
    # False: no renders.mp4 and conditioning/ videos per round (play keeps up with real time)
    inspection_videos: bool = True
    # the checks before the run (:mod:`.preflight`): errors always stop it; True: warnings too
    # (the studio asks about them), else they are logged and the run goes on (the CLI)
    stop_on_warnings: bool = False

    def overrides(self) -> dict[str, Any]:
        """The :class:`RunSettings` this call sets (None: not set here)."""
        backend, lifter = self.backend, self.lifter
        return {
            "backend": backend if isinstance(backend, str) or backend is None else backend.name,
            "model_id": self.model,
            "profile": self.profile,
            "steps": self.steps,
            "seed": self.seed,
            "guidance": self.guidance,
            "rounds": self.rounds,
            "width": self.size[0] if self.size else None,
            "height": self.size[1] if self.size else None,
            "frames_per_round": self.frames_per_round,
            "context_frames": self.context_frames,
            "splat_radius": self.splat_radius,
            "observer_strength": self.observer_strength,
            "monitor_strength": self.monitor_strength,
            "negative_prompt": self.negative_prompt,
            "flow_shift": self.flow_shift,
            "prompt_entities": self.prompt_entities,
            "lifter": lifter if isinstance(lifter, str) or lifter is None else lifter.name,
            "loras": None
            if self.loras is None
            else [[str(path), float(strength)] for path, strength in self.loras],
            "attention": self.attention,
            "compile": self.compile,
            "quality": self.quality,
            "cache": self.cache,
            "precision": self.precision,
            "vae_tiling": self.vae_tiling,
            "colour_match": self.colour_match,
        }


@dataclass
class RunSettings:
    """What a run was made with (run.json "settings")."""

    backend: str
    model_id: str | None
    profile: str | None
    lifter: str
    width: int
    height: int
    fps: int
    frames_per_round: int
    steps: int
    guidance: float
    seed: int
    rounds: int
    monitors: bool
    # the previous frames every call gets, resolved when the run starts (project, else backend)
    context_frames: int | None = CONTEXT_FRAMES
    splat_radius: int = 0
    # [path to a .safetensors LoRA, strength]; kept so that resume and branch apply the same ones
    loras: list[list[Any]] = field(default_factory=list)
    # conditioning; the defaults are what runs made before these settings existed used
    observer_strength: float = 1.0
    monitor_strength: float = 1.0
    negative_prompt: str = ""
    flow_shift: float | None = None  # resolved when the run starts (None: the backend has none)
    prompt_entities: str = "all"
    # accelerations; the defaults are again what earlier runs used. ``cache`` is resolved (the
    # quality preset's when the project says "auto"); "draft" adds its LoRA to ``loras`` and
    # sets the steps, guidance and flow shift it is made for when the run starts
    attention: str = "auto"
    compile: bool = False
    quality: str = "full"
    cache: str = "none"
    precision: str = "auto"
    vae_tiling: bool | None = None
    colour_match: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSettings:
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise RunError(f"run.json: incomplete settings ({exc})") from exc


@dataclass
class RunResult:
    """What a generation job returns."""

    run_id: str
    run_dir: Path
    status: str  # "complete"
    rounds_done: int
    rounds_total: int
    backend: str
    final_mp4: Path | None = None
    final_combined_mp4: Path | None = None
    seconds: float = 0.0
    backend_seconds: float = 0.0
    backend_calls: int = 0
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- setup
def _first(value: Any, default: Any) -> Any:
    return default if value is None else value


def _validated(project: Project, **fields: Any) -> None:
    """The project's generation settings with ``fields`` set must be valid (one clear line)."""
    from pydantic import ValidationError

    data = project.generation.model_dump()
    data.update({k: v for k, v in fields.items() if v is not None})
    try:
        GenerationSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise GenerationError(
            f"generation settings: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def project_model_for(backend: str, g: GenerationSettings) -> str | None:
    """The project's model id when it suits ``backend`` (None: the backend's default): it does for
    the project's own backend, and for a Wan backend whose kind (VACE, I2V) its name shows."""
    if g.model_id is None:
        return None
    if backend == g.backend:
        return g.model_id
    hint = {"wan-vace": "vace", "wan-i2v": "i2v"}.get(backend)
    return g.model_id if hint and hint in g.model_id.lower() else None


def _fit_image(image: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    """Centre-crop to the target aspect ratio (never stretch), then resize (a mask: ``nearest``)."""
    from PIL import Image

    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    target = width / height
    if w / h > target:
        cw, ch = max(1, round(h * target)), h
    else:
        cw, ch = w, max(1, round(w / target))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    img = Image.fromarray(image[y0 : y0 + ch, x0 : x0 + cw])
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return np.asarray(img.resize((width, height), resample))


# ------------------------------------------------------------------------------------- a round
Sighting = tuple[int, EntityCloud]
"""An entity seen by a monitor in one frame: (its pixels in the clip, its lifted cloud)."""


@dataclass
class _Round:
    """One round in the making: its frames, world times and observer cameras, and the seeds,
    prompts and timings it records."""

    r: int
    idx: np.ndarray  # (F,) observer frame numbers
    times: np.ndarray  # (F,) world seconds
    c2w: np.ndarray  # (F, 4, 4) observer poses
    K: np.ndarray  # (F, 3, 3) observer intrinsics
    text: str  # the round's scene text
    seeds: dict[str, int] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    # per call: the exact control video and mask its backend fed the model (file stem -> both)
    conditioning: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # per call: what it was given (mask statistics, references), for round.json
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, np.ndarray] = field(default_factory=dict)  # entity -> instance reference
    # per call (file stem): the projections of its last context frames, for the next round
    context: dict[str, ContextProjections] = field(default_factory=dict)
    views: list[HistoryView] = field(default_factory=list)  # this round's candidate references
    timings: dict[str, float] = field(
        default_factory=lambda: {"backend": 0.0, "render": 0.0, "lift": 0.0, "persist": 0.0}
    )


@dataclass
class _Tracks:
    """Every entity through one round."""

    clouds: dict[str, list[EntityCloud]]  # entity id -> its cloud in each frame
    state_time: dict[str, float]  # entity id -> world time of its latest state
    sources: dict[str, str]  # where that state comes from: "monitor", "observer" or "frozen"
    seen_frames: dict[str, int]  # entity id -> frames a monitor saw it in


@dataclass
class _Grown:
    """The world after the observer's round: the static cloud (with ``added`` new points) and
    each entity's state for the next round."""

    static: PointCloud
    added: int
    state: dict[str, EntityCloud]
    depth: np.ndarray  # (F, H, W) float32: the depth the frames were lifted with, 0 unknown


class _Engine:
    """One generation job: ``_Engine(folder, options)(ctx) -> RunResult``."""

    def __init__(self, project_folder: str | os.PathLike[str], options: RunOptions):
        self.folder = ProjectFolder(project_folder)
        self.options = options
        self.overrides = options.overrides()
        # a live session: the observer source says when the run ends (its rounds grow till then)
        self.open_ended = options.observer is not None and options.observer.rounds is None
        self.units_done = 0  # progress: denoising steps done of units_total in this call
        self.units_total = 1

    # -- settings ------------------------------------------------------------------------------
    def _fresh_settings(self, project: Project) -> RunSettings:
        g = project.generation
        o = self.overrides
        backend = o["backend"] or g.backend
        width = o["width"] or g.width
        height = o["height"] or g.height
        fpr = o["frames_per_round"] or g.frames_per_round
        _validated(
            project,
            width=width,
            height=height,
            frames_per_round=fpr,
            **{
                k: o[k]
                for k in (
                    "context_frames",
                    "observer_strength",
                    "monitor_strength",
                    "flow_shift",
                    "prompt_entities",
                    "negative_prompt",
                    "attention",
                    "compile",
                    "quality",
                    "cache",
                    "precision",
                    "vae_tiling",
                    "colour_match",
                )
            },
        )
        try:
            attention = check_attention(_first(o["attention"], g.attention))
        except WorldStudioError as exc:
            raise GenerationError(str(exc)) from None
        source = self.options.observer
        if o["rounds"] is not None:
            n_rounds = o["rounds"]
        elif source is not None:
            n_rounds = source.rounds or 0  # an open session: the rounds it plays
        else:
            n_rounds = len(project.rounds)
        if n_rounds < 1 and not self.open_ended:
            raise GenerationError(f"the number of rounds must be at least 1, got {n_rounds}")
        return RunSettings(
            backend=backend,
            model_id=o["model_id"] if o["model_id"] is not None else project_model_for(backend, g),
            profile=o["profile"],
            lifter=o["lifter"] or "",  # "" until the backend says which lifter suits it
            width=width,
            height=height,
            fps=g.fps,
            frames_per_round=fpr,
            steps=o["steps"] or g.steps,
            guidance=o["guidance"] if o["guidance"] is not None else g.guidance,
            seed=o["seed"] if o["seed"] is not None else g.seed,
            rounds=n_rounds,
            monitors=self.options.monitors,
            context_frames=o["context_frames"]
            if o["context_frames"] is not None
            else g.context_frames,
            splat_radius=o["splat_radius"] or 0,
            loras=o["loras"] or [],
            observer_strength=_first(o["observer_strength"], g.observer_strength),
            monitor_strength=_first(o["monitor_strength"], g.monitor_strength),
            negative_prompt=_first(o["negative_prompt"], g.negative_prompt),
            flow_shift=_first(o["flow_shift"], g.flow_shift),
            prompt_entities=_first(o["prompt_entities"], g.prompt_entities),
            attention=attention,
            compile=_first(o["compile"], g.compile),
            quality=_first(o["quality"], g.quality),
            cache=cache_for(_first(o["quality"], g.quality), _first(o["cache"], g.cache)),
            precision=_first(o["precision"], g.precision),
            vae_tiling=_first(o["vae_tiling"], g.vae_tiling),
            colour_match=_first(o["colour_match"], g.colour_match),
        )

    def _inherited_settings(self, old: RunSettings, *, fixed: tuple[str, ...]) -> RunSettings:
        """The parent's settings with this call's overrides; ``fixed`` ones may not change."""
        values = asdict(old)
        for key, value in self.overrides.items():
            if value is None:
                continue
            if key in fixed and value != values[key]:
                flag = "--size" if key in ("width", "height") else "--" + key.replace("_", "-")
                raise GenerationError(
                    f"{flag}: the run was made with {key} = {values[key]!r}; it cannot change to "
                    f"{value!r} here (start a new run instead)"
                )
            values[key] = value
        if self.overrides["quality"] is not None or self.overrides["cache"] is not None:
            values["cache"] = cache_for(values["quality"], self.overrides["cache"])
        if (
            "backend" not in fixed
            and self.overrides["backend"]
            and self.overrides["lifter"] is None
        ):
            values["lifter"] = ""  # chosen by the new backend
        if not self.options.monitors:
            values["monitors"] = False
        return RunSettings(**values)

    # -- the run folder ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Resolve the project, the settings and the run folder (nothing is written yet)."""
        folder = self.folder
        resume, from_round = self.options.resume, self.options.from_round
        self.parent: dict[str, Any] | None = None
        self.copy_from: RunFolder | None = None
        if resume is not None and from_round is None:
            folder.load()  # a clear error when the folder is not a project
            run = resolve_run(folder, resume)
            meta = run.read_meta()
            check_not_written(run, meta)  # two jobs writing one run would garble it
            old = RunSettings.from_json(meta.get("settings", {}))
            # only how fast the frames come may change: the attention kernel and compilation
            fixed = tuple(k for k in asdict(old) if k not in ("rounds", "attention", "compile"))
            self.settings = self._inherited_settings(old, fixed=fixed)
            if not self.options.monitors and old.monitors:
                raise GenerationError(
                    "--no-monitors: the run was made with monitors on; branch with --from-round to change that"
                )
            self.project = self._project_from_meta(run, meta)
            self.run = run
            self.start = run.completed_rounds()
            self.created = meta.get("created") or now_iso()
            self.parent = meta.get("parent")
            if self.settings.rounds < self.start:
                raise GenerationError(
                    f"--rounds {self.settings.rounds}: run {run.id} already has {self.start} complete rounds"
                )
        elif from_round is not None:
            current = folder.load()
            parent = resolve_run(folder, resume)
            pmeta = parent.read_meta()
            old = RunSettings.from_json(pmeta.get("settings", {}))
            done = parent.completed_rounds()
            k = int(from_round)
            if not 0 <= k <= done:
                raise GenerationError(
                    f"--from-round {k}: run {parent.id} has {done} complete rounds; branch from 0 to {done}"
                )
            self.settings = self._inherited_settings(
                old, fixed=("width", "height", "fps", "frames_per_round")
            )
            self.settings.monitors = self.options.monitors  # a branch follows this call's flag
            if self.overrides["rounds"] is None:
                self.settings.rounds = len(current.rounds)
            if self.settings.rounds <= k:
                raise GenerationError(
                    f"--from-round {k}: the branch would have {self.settings.rounds} rounds, so nothing "
                    "is left to regenerate (add rounds to the project or pass --rounds)"
                )
            self.project = current
            self.start = k
            self.copy_from = parent
            self.parent = {"run": parent.id, "from_round": k}
            self.run = RunFolder(folder.runs_dir / new_run_id(folder.runs_dir))
            self.created = now_iso()
        else:
            self.project = folder.load()
            self.settings = self._fresh_settings(self.project)
            self.start = 0
            self.run = RunFolder(folder.runs_dir / new_run_id(folder.runs_dir))
            self.created = now_iso()
        if self.open_ended:
            self.settings.rounds = self.start
        for e in self.project.entities:
            safe_name(e.id, "entity id")
        for m in self.project.monitors:
            safe_name(m.id, "monitor id")

    def _project_from_meta(self, run: RunFolder, meta: dict[str, Any]) -> Project:
        from pydantic import ValidationError

        try:
            return Project.model_validate(meta["project"])
        except (KeyError, ValidationError) as exc:
            raise RunError(
                f"{run.run_file}: the project snapshot is missing or invalid ({exc})"
            ) from None

    def _record(self) -> RunRecord:
        """run.json for this run, as it starts."""
        s = self.settings
        return RunRecord(
            id=self.run.id,
            created=self.created,
            backend=s.backend,
            model_id=s.model_id if s.backend not in ("geometry", "oracle", "ideal") else None,
            profile=s.profile,
            lifter=s.lifter,
            settings=asdict(s),
            rounds_total=s.rounds,
            rounds_done=self.start,
            parent=self.parent,
            seeds={
                "run": s.seed,
                "rounds": [
                    {cam: derive_seed(s.seed, r, cam) for cam in self.cameras}
                    for r in range(s.rounds)
                ],
            },
            cameras={
                "observer": {"frames": s.rounds * s.frames_per_round, **self._observer_record()},
                "monitors": [
                    {"id": m.id, "name": m.name, "entity_ids": list(m.entity_ids), "fov": m.fov}
                    for m in self.monitors
                ],
            },
            entities=[{"id": e.id, "name": e.name} for e in self.project.entities],
            project=self.project.model_dump(mode="json"),
        )

    # -- world -----------------------------------------------------------------------------------
    def _setup_world(self) -> None:
        from worldstudio.core.geometry.camera import intrinsics_from_fov
        from worldstudio.core.geometry.transforms import pose_matrix

        s = self.settings
        p = self.project
        H, W = s.height, s.width
        self.monitors = [m for m in p.monitors if m.enabled] if s.monitors else []
        self.cameras = ["observer"] + [f"monitor:{m.id}" for m in self.monitors]
        self.watched = {eid for m in self.monitors for eid in m.entity_ids}
        self.entity_ids = [e.id for e in p.entities]
        self.entities = {e.id: e for e in p.entities}

        self.observer = self._observer_source()
        self.mon_c2w = {
            m.id: pose_matrix(m.pose.position, m.pose.orientation) for m in self.monitors
        }
        self.mon_K = {m.id: intrinsics_from_fov(m.fov, H, W) for m in self.monitors}

        self._setup_references()
        static0, states0 = initial_world(self.folder, p)
        self.entity_state: dict[str, EntityCloud] = dict(states0)
        self.entity_time: dict[str, float] = {eid: 0.0 for eid in self.entity_ids}
        self.static = static0
        # the static world grows one point per voxel; the voxel is a pixel footprint at the
        # video's resolution, seen from the source camera (resume and branch read it back)
        focal = float(intrinsics_from_fov(self.observer.first_fov(), H, W)[1, 1])
        if p.intrinsics is not None:
            focal = float(p.intrinsics.K[1][1]) * H / p.intrinsics.height
        self.static_grid = VoxelGrid(voxel_size_for(static0, focal))
        self.prev_observer: np.ndarray | None = None
        self.prev_monitor: dict[str, np.ndarray] = {}
        # per call (file stem): the projections of the previous frames it continues from
        self.prev_projections: dict[str, ContextProjections] = {}
        self.history: list[HistoryView] = []  # earlier observer frames, by pose retrieval

    def _observer_source(self) -> ObserverSource:
        """The options' source; else the poses a resumed run recorded; else the project's path."""
        s = self.settings
        if self.options.observer is not None:
            return self.options.observer
        recorded = self.run.observer_path_npz
        if self.start > 0 and recorded.is_file():
            z = load_npz(recorded)
            cameras = self.run.read_meta().get("cameras", {}).get("observer", {})
            kind = str(cameras.get("source") or "recorded")  # where the poses came from first
            return PosesObserver(z["c2w"], z["fov"], s.frames_per_round, s.rounds, kind=kind)
        return PathObserver(self.project.camera_path, s.frames_per_round, s.rounds)

    def _observer_record(self) -> dict[str, Any]:
        """run.json's word on the observer's cameras: where they come from and, unless that is
        the project's path, the file of the poses."""
        if self.observer.kind == "path":
            return {"source": "path"}
        return {"source": self.observer.kind, "poses": self.run.observer_path_npz.name}

    def _save_observer_poses(self) -> None:
        """The poses the source knows, beside run.json (a resume follows them), when they are
        more than last time."""
        if self.observer.kind != "path":
            known = self.observer.known()
            if len(known.c2w) == getattr(self, "_poses_saved", -1):
                return
            self._poses_saved = len(known.c2w)
            save_npz(
                self.run.observer_path_npz,
                c2w=np.asarray(known.c2w, np.float64),
                fov=np.asarray(known.fov, np.float64),
            )

    def _setup_references(self) -> None:
        """The source image as a scene reference with every entity blacked out, and each
        entity's instance reference cut from it (used when no monitor sees the entity)."""
        from worldstudio.core.generation.world import load_mask_png

        s, p = self.settings, self.project
        H, W = s.height, s.width
        self.reference: list[np.ndarray] = []
        self.source_instances: dict[str, np.ndarray] = {}
        self.source_image: np.ndarray | None = None
        if p.source is None or not self.folder.path(p.source.file).is_file():
            return
        from PIL import Image

        with Image.open(self.folder.path(p.source.file)) as img:
            source = np.asarray(img.convert("RGB"))
        fitted = self.source_image = _fit_image(source, H, W)
        masks = {}
        for e in p.entities:
            path = self.folder.path(e.mask_file) if e.mask_file else None
            if path is None or not path.is_file():
                continue
            mask = load_mask_png(path)
            if mask.shape != source.shape[:2]:
                continue  # initial_world names the mismatch
            fit = _fit_image(mask.astype(np.uint8) * 255, H, W, nearest=True) > 127
            masks[e.id] = fit
            crop = instance_reference(fitted, fit, H, W)
            if crop is not None:
                self.source_instances[e.id] = crop
        everything = np.zeros((H, W), bool)
        for m in masks.values():
            everything |= m
        self.reference = [blackout(fitted, everything)]

    def _restore(self, saved: SavedRound) -> None:
        """The world as the run's last complete round left it (resume and branch)."""
        self.static = saved.static
        self.static_grid = VoxelGrid(saved.voxel_size)
        for eid, (xyz, rgb, state_time) in saved.entities.items():
            self.entity_state[eid] = EntityCloud(xyz, rgb)
            self.entity_time[eid] = state_time
        self.prev_observer = saved.observer
        self.prev_monitor.update(saved.monitors)
        self.prev_projections.update(saved.context)
        F = self.settings.frames_per_round
        for r in range(self.start):
            path = self.run.views_npz(r)
            if path.is_file():
                frames = np.load(self.run.observer_npy(r), mmap_mode="r", allow_pickle=False)
                self.history += unpack_views(load_npz(path), frames, r * F)

    def _open_backend(self) -> bool:
        """The backend and the lifter, before anything is written (a refused backend leaves no
        run). True when the engine made the backend, and so closes it."""
        s = self.settings
        given = self.options.backend
        if isinstance(given, str) or given is None:
            options: dict[str, Any] = dict(
                model_id=s.model_id,
                profile=s.profile,
                project=self.project,
                project_folder=self.folder,
                attention=s.attention,
                compile=s.compile,
                cache=s.cache,
                precision=s.precision,
                vae_tiling=s.vae_tiling,
            )
            options.update(self.options.backend_options or {})
            self.backend: Backend = get_backend(s.backend, **options)
            own_backend = True
        else:
            self.backend = given
            own_backend = False
        try:
            if not s.lifter:
                s.lifter = self.backend.lifter
            self._quality_preset()
            if s.context_frames is None:
                s.context_frames = int(self.backend.context_frames)
            if s.flow_shift is None:
                s.flow_shift = self.backend.flow_shift_for(s.height, s.width)
            if s.lifter == "oracle":
                from worldstudio.core.generation.backends.oracle import is_oracle_project

                if not is_oracle_project(self.project):
                    raise GenerationError(
                        f"{self.folder.project_file}: the oracle lifter only works on the demo (oracle) scene"
                    )
            lifter = self.options.lifter
            if isinstance(lifter, str) or lifter is None:
                self.lifter = make_lifter(s.lifter, project=self.project, backend=self.backend)
            else:
                self.lifter = lifter
            self._preflight()
            self._check_models()
            self.ctx.log(
                f"backend {s.backend}, lifter {s.lifter}, {s.rounds} rounds of {s.frames_per_round} frames "
                f"at {s.width}x{s.height}, {len(self.monitors)} monitors"
            )
            self.lifter.prepare(self.ctx)
        except BaseException:
            if own_backend:
                self.backend.close()
            raise
        return own_backend

    def _quality_preset(self) -> None:
        """The "draft" preset: the backend's step-distillation LoRA joins the run's LoRAs (once:
        a resumed run has it already) with the steps, guidance and flow shift it is made for,
        where this call does not set them. Another quality drops that LoRA if the run inherited
        it (a branch of a draft run)."""
        s = self.settings
        if s.quality != "draft":
            if s.loras:
                try:
                    recipe = self.backend.draft_recipe()
                except WorldStudioError:  # a model whose shape is unknown has no preset
                    return
                if recipe is not None:
                    name = Path(recipe.file).name
                    s.loras = [lora for lora in s.loras if Path(lora[0]).name != name]
            return
        recipe = self.backend.draft_recipe()
        if recipe is None:
            self.ctx.log(
                f"backend {s.backend} has no draft preset: quality 'draft' changes nothing"
            )
            return
        from worldstudio.core.generation.acceleration import recipe_lora_path

        path = recipe_lora_path(recipe, self.ctx)
        if any(Path(lora[0]).name == path.name for lora in s.loras):
            return
        s.loras = [*s.loras, [str(path), recipe.strength]]
        o = self.overrides
        s.steps = o["steps"] or recipe.steps
        s.guidance = _first(o["guidance"], recipe.guidance)
        s.flow_shift = _first(o["flow_shift"], recipe.flow_shift)
        self.ctx.log(f"quality draft: {recipe.text()}")

    def _match_colours(
        self, request: GenerationRequest, frames: np.ndarray
    ) -> tuple[np.ndarray, dict]:
        """The call's frames with the colours of the frames it continued from (when the run
        matches colours and the call had previous frames; :mod:`.colour`)."""
        if not self.settings.colour_match or request.previous_frames is None:
            return frames, NO_COLOUR_MATCH.as_dict()
        frames, done = match_colours(frames, request.previous_frames)
        return frames, done.as_dict()

    def _preflight(self) -> None:
        """Every problem that would make the run fail later (models, memory, disk, a camera
        outside the scene), found before anything is downloaded or written
        (:mod:`.preflight`); a :class:`~.preflight.PreflightError` lists them all."""
        from worldstudio.core.generation import preflight as pf
        from worldstudio.core.models.manager import hub_cache_dir
        from worldstudio.core.models.requirements import missing_models, models_for

        s = self.settings
        report = pf.Preflight()

        def add(found: tuple[list[pf.Problem], str]) -> None:
            problems, passed = found
            report.problems += problems
            if passed:
                report.passed.append(passed)

        models = models_for([*self.backend.required_models(), *self.lifter.required_models()])
        what = f"generate with backend {s.backend} and lifter {s.lifter}"
        add(pf.model_problems(models, self._fetch_command(), what))
        guidance = 1.0 if s.quality == "draft" else s.guidance
        add(
            pf.memory_problems(
                self.backend, s.height, s.width, s.frames_per_round, s.profile, guidance
            )
        )
        need = pf.run_bytes(
            s.width,
            s.height,
            s.frames_per_round,
            max(0, s.rounds - self.start),
            len(self.monitors),
            len(self.entity_ids),
            s.context_frames or 0,
            self.options.inspection_videos,
        )
        download = sum(m.download_bytes for m in missing_models(models))
        add(pf.disk_problems(self.folder.runs_dir, need, hub_cache_dir(), download))
        if isinstance(self.observer, PosesObserver):  # poses known up front (not a live session)
            F = s.frames_per_round
            poses = self.observer.c2w[self.start * F : s.rounds * F]
            add(pf.camera_problems(poses[:, :3, 3], self.static.xyz, self.start * F))
        if report.blocks(self.options.stop_on_warnings):
            raise pf.PreflightError(report)
        for p in report.warnings:
            self.ctx.log(f"warning: {p.text} (fix: {p.fix})")
        if report.passed:
            self.ctx.log("checks passed: " + "; ".join(report.passed))

    def _fetch_command(self) -> str:
        """The one command that downloads every model the run needs."""
        from worldstudio.core.models.requirements import fetch_command

        s = self.settings
        return fetch_command(
            "generate",
            project=str(self.folder.root),
            backend=s.backend,
            model=s.model_id,
            lifter=self.options.lifter if isinstance(self.options.lifter, str) else None,
        )

    def _check_models(self) -> None:
        """Every model the backend and the lifter declare, checked before any work: the missing
        ones all named in one error when they cannot be downloaded now (core.models)."""
        from worldstudio.core.models import resolve_with_context
        from worldstudio.core.models.requirements import check_models, models_for

        s = self.settings
        declared = [*self.backend.required_models(), *self.lifter.required_models()]
        command = self._fetch_command()
        what = f"generate with backend {s.backend} and lifter {s.lifter}"
        for info in check_models(models_for(declared), command, what):  # online: fetch them now
            self.ctx.log(f"downloading {info.name} ({info.repo_id}, {info.size_text})")
            resolve_with_context(info, self.ctx)

    # -- backend calls ---------------------------------------------------------------------------
    def request(
        self,
        rnd: _Round,
        camera: str,
        *,
        prompt: str,
        layers: Layers,
        mask: np.ndarray,
        strength: float,
        previous: np.ndarray | None,
        c2w: np.ndarray,
        K: np.ndarray,
        references: list[np.ndarray],
        instance_references: list[np.ndarray] | None = None,
    ) -> GenerationRequest:
        """The backend call of one camera (``"observer"`` or ``"monitor:<id>"``) in a round: its
        seed and prompt are recorded in ``rnd``; ``layers`` are its scene and foreground
        projections (F frames), ``mask`` what it generates, ``previous`` the frames it continues
        from; the projections of those frames are the ones this camera's call of the previous
        round got (kept in ``rnd`` for the next round)."""
        s = self.settings
        r = rnd.r
        seed = rnd.seeds[camera] = derive_seed(s.seed, r, camera)
        rnd.prompts[camera] = prompt
        role, _, monitor_id = camera.partition(":")
        stem = camera.replace(":", "-")
        before = self.prev_projections.get(stem)
        if previous is None or before is None or len(before) != len(previous):
            before = None  # only frame for frame (a first round, or a branch with more context)
        c = s.context_frames or 0
        if c > 0:
            rnd.context[stem] = ContextProjections(
                layers.scene_rgb, layers.fg_rgb, layers.fg_labels
            ).last(c)
        return GenerationRequest(
            prompt=prompt,
            num_frames=s.frames_per_round,
            height=s.height,
            width=s.width,
            steps=s.steps,
            guidance=s.guidance,
            seed=seed,
            control_rgb=layers.scene_rgb,
            control_depth=layers.scene_depth,
            control_mask=mask,
            foreground_rgb=layers.fg_rgb,
            foreground_depth=layers.fg_depth,
            foreground_labels=layers.fg_labels,
            foreground_ids=list(layers.entity_ids),
            previous_frames=previous,
            previous_control_rgb=None if before is None else before.scene_rgb,
            previous_foreground_rgb=None if before is None else before.fg_rgb,
            previous_foreground_labels=None if before is None else before.fg_labels,
            reference_images=list(references),
            instance_references=list(instance_references or []),
            source_image=self.source_image,
            negative_prompt=s.negative_prompt,
            strength=float(strength),
            flow_shift=s.flow_shift,
            role=role,
            camera_c2w=c2w,
            camera_K=K,
            times=rnd.times.copy(),
            loras=[(path, strength) for path, strength in s.loras],
            camera_id=monitor_id or "observer",
            round_index=r,
        )

    def _call(self, request: GenerationRequest, label: str, r: int) -> np.ndarray:
        s = self.settings
        ctx = self.ctx
        base = self.units_done
        total = self.units_total

        def sink(report: Report) -> None:
            if report.kind == "progress":
                frac = report.done / report.total if report.total else 0.0
                done = base + min(s.steps, int(round(frac * s.steps)))
                msg = report.message or f"{report.done}/{report.total}"
                ctx.progress(done, total, f"round {r + 1}/{s.rounds} {label} · {msg}")
            elif report.kind == "preview":
                ctx.preview(report.payload, f"round {r + 1} {label}: {report.message}")
                if self.options.write_preview:
                    self.writer.save_preview(report.payload)
            else:
                ctx.log(report.message)

        ctx.checkpoint()
        t0 = time.perf_counter()
        try:
            frames = self.backend.generate(request, ctx.child(sink))
        except (WorldStudioError, Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise GenerationError(
                f"round {r + 1}, {label}: backend {self.backend.name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        self.backend_seconds += time.perf_counter() - t0
        self.backend_calls += 1
        frames = check_frames(frames, request, self.backend.name)
        self.units_done = base + s.steps
        ctx.progress(self.units_done, total, f"round {r + 1}/{s.rounds} {label} · done")
        return frames

    # -- one round -------------------------------------------------------------------------------
    def run_round(self, r: int, cams: ObserverCameras, asked: float | None = None) -> None:
        """Round r with the observer's cameras ``cams``, in five steps (see the module
        docstring); then the observer source hears what the round made. ``asked``: when the
        cameras were asked for (perf_counter), for the round's wall time."""
        from worldstudio.core.geometry.camera import intrinsics_from_fov

        s = self.settings
        idx = r * s.frames_per_round + np.arange(s.frames_per_round)
        if len(cams.c2w) != s.frames_per_round:
            raise GenerationError(
                f"round {r + 1}: the observer source gave {len(cams.c2w)} cameras for "
                f"{s.frames_per_round} frames"
            )
        asked = time.perf_counter() if asked is None else asked
        rnd = _Round(
            r=r,
            idx=idx,
            times=idx.astype(np.float64) / s.fps,
            c2w=np.asarray(cams.c2w, np.float64),
            K=np.stack([intrinsics_from_fov(float(f), s.height, s.width) for f in cams.fov]),
            text=scene_text(self.project, r),
        )
        backend_before = self.backend_seconds
        clips, sightings = self._evolve_monitors(rnd)
        tracks = self._track_entities(rnd, sightings)
        frames, render = self._generate_observer(rnd, tracks)
        ready = getattr(self.observer, "frames_ready", None)
        if callable(ready):
            ready(r, frames)  # a live session shows them before the world has grown
        grown = self._grow_world(rnd, frames, render, tracks)
        self._write_round(rnd, frames, render, clips, tracks, grown, backend_before)
        done = getattr(self.observer, "round_done", None)
        if callable(done):
            done(
                RoundOutcome(
                    round=r,
                    frame_indices=rnd.idx,
                    times=rnd.times,
                    c2w=rnd.c2w,
                    K=rnd.K,
                    frames=frames,
                    depth=np.where(render.covered, render.depth, grown.depth).astype(np.float32),
                    static=grown.static,
                    entities={eid: list(tracks.clouds[eid]) for eid in self.entity_ids},
                    seconds=time.perf_counter() - asked,
                )
            )

        # the world moves on
        self.static = grown.static
        self.entity_state = grown.state
        self.entity_time = tracks.state_time
        self.history += rnd.views
        c = s.context_frames or 0
        self.prev_observer = frames[-c:].copy() if c > 0 else None
        for mid, clip in clips.items():
            if c > 0:
                self.prev_monitor[mid] = clip[-c:].copy()
        self.prev_projections = dict(rnd.context)

    def _monitor_conditioning(
        self, view: WorldRender, m: Monitor
    ) -> tuple[Layers, np.ndarray, float]:
        """Monitor ``m``'s conditioning for one frame of its fixed view: the layers (the scene
        projection, pinholes filled; its entities' last state as the foreground, which models do
        not see), the mask (the whole frame: its entities may go anywhere plausible) and the
        strength of the world render as a hint (the project's monitor strength)."""
        layers = select_entities(layers_from_render(view), m.entity_ids)
        return layers, np.ones(layers.fg_labels.shape, bool), self.settings.monitor_strength

    def _evolve_monitors(
        self, rnd: _Round
    ) -> tuple[dict[str, np.ndarray], dict[str, list[Sighting | None]]]:
        """Step 1: each monitor's clip of the round, generated from its view of the world and
        lifted to 3D. Returns the clips and, per watched entity and frame, its best sighting;
        each entity's instance reference is cut from the monitor frame that shows most of it."""
        s = self.settings
        F, H, W = s.frames_per_round, s.height, s.width
        best: dict[str, list[Sighting | None]] = {eid: [None] * F for eid in self.watched}
        portrait: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        clips: dict[str, np.ndarray] = {}
        for m in self.monitors:
            t0 = time.perf_counter()
            c2w = np.repeat(self.mon_c2w[m.id][None], F, axis=0)
            K = np.repeat(self.mon_K[m.id][None], F, axis=0)
            view = render_world(
                self.static,
                [dict(self.entity_state)],
                c2w[:1],
                K[:1],
                H,
                W,
                self.entity_ids,
                s.splat_radius,
            )
            layers, mask, strength = self._monitor_conditioning(view, m)
            rnd.timings["render"] += time.perf_counter() - t0
            camera = f"monitor:{m.id}"
            request = self.request(
                rnd,
                camera,
                prompt=compose_prompt(
                    m.scene_text if m.scene_text is not None else rnd.text,
                    [entity_prompt(self.entities[e], rnd.r) for e in m.entity_ids],
                ),
                layers=repeat_layers(layers, F),
                mask=np.repeat(mask, F, axis=0),
                strength=strength,
                previous=self.prev_monitor.get(m.id),
                c2w=c2w,
                K=K,
                references=self.reference,
            )
            frames, colour = self._match_colours(
                request, self._call(request, f"monitor {m.name}", rnd.r)
            )
            self._record_inputs(rnd, f"monitor-{m.id}", request, colour_match=colour)
            clips[m.id] = frames
            t0 = time.perf_counter()
            lifted = self.lifter.lift(
                LiftInput(
                    frames=frames,
                    c2w=c2w,
                    K=K,
                    times=rnd.times,
                    render_depth=np.repeat(view.depth, F, axis=0),
                    render_entities={
                        eid: np.repeat(view.entity_mask(eid), F, axis=0) for eid in m.entity_ids
                    },
                    entity_ids=list(m.entity_ids),
                    role="monitor",
                    camera_id=m.id,
                ),
                self.ctx,
            )
            for eid in m.entity_ids:
                counts = lifted.masks[eid].reshape(F, -1).sum(axis=1)
                clouds = entity_clouds(frames, lifted.depth, lifted.masks[eid], c2w, K)
                for i in range(F):
                    n = int(counts[i])
                    seen = best[eid][i]
                    if n >= MIN_ENTITY_PIXELS and len(clouds[i]) and (seen is None or n > seen[0]):
                        best[eid][i] = (n, clouds[i])
                i = int(np.argmax(counts))
                if counts[i] >= MIN_ENTITY_PIXELS and counts[i] > portrait.get(eid, (0,))[0]:
                    portrait[eid] = (int(counts[i]), frames[i], lifted.masks[eid][i])
            rnd.timings["lift"] += time.perf_counter() - t0
        for eid, (_n, frame, mask) in portrait.items():
            crop = instance_reference(frame, mask, H, W)
            if crop is not None:
                rnd.instances[eid] = crop
        return clips, best

    def _track_entities(self, rnd: _Round, sightings: dict[str, list[Sighting | None]]) -> _Tracks:
        """Step 2: each entity's cloud in each frame: where a monitor saw it, that cloud;
        otherwise its latest state."""
        F = self.settings.frames_per_round
        tracks = _Tracks(clouds={}, state_time=dict(self.entity_time), sources={}, seen_frames={})
        for eid in self.entity_ids:
            watched = eid in self.watched
            cur = self.entity_state[eid]
            seq: list[EntityCloud] = []
            seen = 0
            for i in range(F):
                found = sightings[eid][i] if watched else None
                if found is not None:
                    cur = found[1]
                    seen += 1
                    tracks.state_time[eid] = float(rnd.times[i])
                seq.append(cur)
            tracks.clouds[eid] = seq
            tracks.seen_frames[eid] = seen
            tracks.sources[eid] = "monitor" if watched else "frozen"
            if watched and seen == 0:
                self.ctx.log(
                    f"round {rnd.r + 1}: no monitor saw entity {self.entities[eid].name!r}; it keeps its last state"
                )
        return tracks

    def _generate_observer(self, rnd: _Round, tracks: _Tracks) -> tuple[np.ndarray, WorldRender]:
        """Step 3: the world rendered into each observer pose of the round, the conditioning
        built from it (:mod:`.conditioning`, :mod:`.references`), then the observer's frames."""
        s = self.settings
        F, H, W = s.frames_per_round, s.height, s.width
        ids = self.entity_ids
        t0 = time.perf_counter()
        per_frame = [{eid: tracks.clouds[eid][i] for eid in ids} for i in range(F)]
        render = render_world(self.static, per_frame, rnd.c2w, rnd.K, H, W, ids, s.splat_radius)
        layers, built = self._observer_conditioning(render)
        visible = [eid for eid in ids if render.pixels[eid].max() >= MIN_ENTITY_PIXELS]
        named = visible if s.prompt_entities == "visible" else ids
        retrieved = retrieve(self.history, rnd.c2w, rnd.K, H, W, RETRIEVED_REFERENCES)
        instances = [
            rnd.instances[eid] if eid in rnd.instances else self.source_instances[eid]
            for eid in visible
            if eid in rnd.instances or eid in self.source_instances
        ]
        rnd.timings["render"] += time.perf_counter() - t0
        request = self.request(
            rnd,
            "observer",
            prompt=compose_prompt(
                rnd.text, [entity_prompt(self.entities[e], rnd.r) for e in named]
            ),
            layers=layers,
            mask=built.mask,
            strength=s.observer_strength,
            previous=self.prev_observer,
            c2w=rnd.c2w.copy(),
            K=rnd.K.copy(),
            references=self.reference + [v.image for v in retrieved],
            instance_references=instances,
        )
        frames, colour = self._match_colours(request, self._call(request, "observer", rnd.r))
        self._record_inputs(
            rnd,
            "observer",
            request,
            colour_match=colour,
            holes=built.holes,
            sparse=built.sparse,
            discontinuity=built.discontinuity,
            entity_regions=built.entity,
            filled=float(layers.filled.mean()),
            visible_entities=visible,
            retrieved_frames=[v.index for v in retrieved],
        )
        entity_pixels = layers.fg_labels >= 0
        for i in np.linspace(0, F - 1, min(HISTORY_PER_ROUND, F)).round().astype(int):
            rnd.views.append(
                history_view(
                    int(rnd.idx[i]),
                    frames[i],
                    rnd.c2w[i],
                    rnd.K[i],
                    layers.scene_depth[i],
                    entity_pixels[i],
                )
            )
        return frames, render

    def _observer_conditioning(self, render: WorldRender) -> tuple[Layers, ObserverMask]:
        """The observer's layers (pinholes filled) and its cleaned mask (:mod:`.conditioning`)."""
        layers = layers_from_render(render)
        return layers, observer_mask(layers)

    def _record_inputs(
        self, rnd: _Round, camera: str, request: GenerationRequest, **more: Any
    ) -> None:
        """What the call of ``camera`` was given: the exact control and mask videos its backend
        fed the model (written beside the round) and, for round.json, their statistics."""
        video, mask = self.backend.conditioning(request)
        video, mask = np.asarray(video, np.uint8), np.asarray(mask, bool)
        rnd.conditioning[camera] = (video, mask)
        rnd.inputs[camera] = {
            "generate": round(float(mask.mean()), 6),
            "strength": request.strength,
            "context_frames": 0
            if request.previous_frames is None
            else len(request.previous_frames),
            "context_projections": request.previous_control_rgb is not None,
            "references": len(request.reference_images),
            "instance_references": len(request.instance_references),
            "flow_shift": request.flow_shift,
            "control_frames": int(len(video)),
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in more.items()},
        }

    def _grow_world(
        self, rnd: _Round, frames: np.ndarray, render: WorldRender, tracks: _Tracks
    ) -> _Grown:
        """Step 4: the observer's frames lifted to 3D grow the static world where the render had
        holes, no entity shows (tracked in the frames or drawn in the render, with a margin),
        the voxel is free and the round's other frames confirm a static surface there
        (:func:`~worldstudio.core.generation.world.grow_static`); an entity no monitor watches
        takes the state the observer last saw (``tracks`` records that)."""
        s = self.settings
        F = s.frames_per_round
        ids = self.entity_ids
        t0 = time.perf_counter()
        lifted = self.lifter.lift(
            LiftInput(
                frames=frames,
                c2w=rnd.c2w,
                K=rnd.K,
                times=rnd.times,
                render_depth=render.depth,
                render_entities={eid: render.entity_mask(eid) for eid in ids},
                entity_ids=list(ids),
                role="observer",
                camera_id="observer",
            ),
            self.ctx,
        )
        from worldstudio.core.pointcloud.ops import dilate_mask

        entities = lifted.any_entity(render.covered.shape) | render.any_entity
        self.static_grid.take(self.static)  # the points added since the last round
        added = grow_static(
            frames,
            lifted.depth,
            rnd.c2w,
            rnd.K,
            world_holes(render.covered),
            dilate_mask(entities, ENTITY_MARGIN),
            self.static_grid,
        )
        state = {eid: tracks.clouds[eid][-1] for eid in ids}
        for eid in ids:
            if eid in self.watched:
                continue
            counts = lifted.masks[eid].reshape(F, -1).sum(axis=1)
            visible = np.flatnonzero(counts >= MIN_ENTITY_PIXELS)
            if visible.size:
                i = int(visible[-1])
                cloud = entity_clouds(
                    frames[i : i + 1],
                    lifted.depth[i : i + 1],
                    lifted.masks[eid][i : i + 1],
                    rnd.c2w[i : i + 1],
                    rnd.K[i : i + 1],
                )[0]
                if len(cloud):
                    state[eid] = cloud
                    tracks.state_time[eid] = float(rnd.times[i])
                    tracks.sources[eid] = "observer"
        rnd.timings["lift"] += time.perf_counter() - t0
        self.ctx.check_cancelled()
        return _Grown(
            static=add_static(self.static, added), added=len(added), state=state, depth=lifted.depth
        )

    def _write_round(
        self,
        rnd: _Round,
        frames: np.ndarray,
        render: WorldRender,
        clips: dict[str, np.ndarray],
        tracks: _Tracks,
        grown: _Grown,
        backend_before: float,
    ) -> None:
        """Step 5: the state now; the videos, round.json ("complete", last) and run.json in the
        background, in order, while the next round generates."""
        s = self.settings
        t0 = time.perf_counter()
        state = RoundState(
            observer=frames,
            coverage=render.covered,
            monitors=clips,
            static=grown.static,
            tracks=dict(tracks.clouds),
            state=dict(grown.state),
            state_time=tracks.state_time,
            times=rnd.times,
            static_added=grown.added,
            voxel_size=self.static_grid.size,
            conditioning=dict(rnd.conditioning),
            views=pack_views(rnd.views),
            context=dict(rnd.context),
        )
        self.writer.save_state(rnd.r, state)
        rnd.timings["persist"] += time.perf_counter() - t0
        rnd.timings["backend"] = self.backend_seconds - backend_before
        entities_info = {}
        for eid in self.entity_ids:
            entities_info[eid] = {
                "name": self.entities[eid].name,
                "source": tracks.sources[eid],
                "monitor_frames_seen": tracks.seen_frames[eid],
                "state_time": tracks.state_time[eid],
                "render_pixels": [int(v) for v in render.pixels[eid]],
                "render_centroids": [
                    None if np.isnan(c).any() else [float(v) for v in c]
                    for c in render.centroids[eid]
                ],
            }
        info = {
            "round": rnd.r,
            "frames": [int(rnd.idx[0]), int(rnd.idx[-1])],
            "times": [float(rnd.times[0]), float(rnd.times[-1])],
            "fps": s.fps,
            "seeds": rnd.seeds,
            "prompts": rnd.prompts,
            "inputs": rnd.inputs,
            "monitors": [m.id for m in self.monitors],
            "entities": entities_info,
            "static_points": len(grown.static),
            "static_points_added": grown.added,
            "coverage": float(render.covered.mean()),
            "timings": {k: round(v, 4) for k, v in rnd.timings.items()},
            "complete": True,
        }
        self.writer.submit_round(rnd.r, state, render.rgb, info)
        for k, v in rnd.timings.items():
            self.timings[k] = self.timings.get(k, 0.0) + v

    def _add_round(self) -> None:
        """An open session plays one more round: the settings and run.json say so."""
        s = self.settings
        r = s.rounds
        s.rounds += 1
        record = self.writer.record
        record.rounds_total = s.rounds
        record.settings["rounds"] = s.rounds
        record.seeds["rounds"].append({cam: derive_seed(s.seed, r, cam) for cam in self.cameras})
        record.cameras["observer"]["frames"] = s.rounds * s.frames_per_round
        self.units_total += len(self.cameras) * s.steps

    def _round_written(self, r: int) -> None:
        """(background) Round r is complete on disk."""
        self.ctx.event(
            "round_finished",
            run_id=self.run.id,
            run_dir=str(self.run.path),
            round=r,
            rounds_total=self.settings.rounds,
        )

    # -- the job ---------------------------------------------------------------------------------
    def __call__(self, ctx: JobContext) -> RunResult:
        t_start = time.perf_counter()
        self.ctx = ctx
        self.backend_seconds = 0.0
        self.backend_calls = 0
        self.timings: dict[str, float] = {}
        self.prepare()
        s = self.settings
        self._setup_world()
        if s.fps != self.project.camera_path.settings.fps:
            ctx.log(
                f"note: the camera path is baked at {self.project.camera_path.settings.fps} fps and the video "
                f"runs at {s.fps} fps; frame i is world time i / {s.fps} s"
            )
        own_backend = self._open_backend()
        self.writer = RunWriter(
            self.run,
            self._record(),
            s.fps,
            [m.id for m in self.monitors],
            on_round_written=self._round_written,
            inspection_videos=self.options.inspection_videos,
        )
        try:
            if self.copy_from is not None:
                self.writer.copy_rounds(self.copy_from, self.start)
            if self.start > 0:
                self._restore(
                    self.writer.restore(self.start, self.entity_ids, s.context_frames or 0)
                )
            self.writer.begin(self.start)
            ctx.log(f"run {self.run.id}: {self.run.path}")
            ctx.event(
                "run_started",
                run_id=self.run.id,
                run_dir=str(self.run.path),
                rounds_total=s.rounds,
                start_round=self.start,
            )
            todo = s.rounds - self.start
            self.units_total = max(1, todo * len(self.cameras) * s.steps)
            self.units_done = 0
            ctx.progress(0, self.units_total, f"round {self.start + 1}/{s.rounds}")
            self._save_observer_poses()
            r = self.start
            while self.open_ended or r < s.rounds:
                ctx.checkpoint()
                asked = time.perf_counter()
                cams = self.observer.cameras(r, s.frames_per_round, ctx)
                if cams is None:
                    break
                if r >= s.rounds:
                    self._add_round()
                self.writer.clear_round(r)
                self.run_round(r, cams, asked)
                self._save_observer_poses()
                r += 1
            ctx.checkpoint()
            self.writer.finish()
        except (Cancelled, KeyboardInterrupt):
            self.writer.stop("cancelled", "cancelled", ctx.log)
            raise
        except BaseException as exc:
            self.writer.stop("failed", f"{type(exc).__name__}: {exc}", ctx.log)
            raise
        finally:
            self.writer.close()
            if own_backend:
                self.backend.close()
            self.lifter.close()
        if self.writer.video_seconds:
            self.timings["videos"] = self.writer.video_seconds
        return RunResult(
            run_id=self.run.id,
            run_dir=self.run.path,
            status="complete",
            rounds_done=s.rounds,
            rounds_total=s.rounds,
            backend=s.backend,
            final_mp4=self.run.final_mp4,
            final_combined_mp4=self.run.final_combined_mp4,
            seconds=time.perf_counter() - t_start,
            backend_seconds=self.backend_seconds,
            backend_calls=self.backend_calls,
            timings=dict(self.timings),
        )


def generate_job(
    project_folder: str | os.PathLike[str], options: RunOptions | None = None
) -> Callable[[JobContext], RunResult]:
    """A job ``job(ctx) -> RunResult`` that generates a project's video round by round.

    Settings default to the project's generation settings (:class:`RunOptions`).
    ``options.resume``: a run id (folder under runs/) or path: continue after its last complete
    round with its own settings and project snapshot. ``options.from_round=K``: a new run
    (branch) that copies rounds < K from ``resume`` (default: the latest run) and regenerates
    from K with the project's current prompts. A Backend or Lifter object given in the options
    is the caller's to close.
    """
    options = options or RunOptions()
    if options.from_round is not None and options.from_round < 0:
        raise ProjectError(f"--from-round must be 0 or more, got {options.from_round}")
    return _Engine(project_folder, options)
