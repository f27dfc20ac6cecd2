"""The world engine (../shared/design/METHOD.md): rounds, monitors, out-of-sight evolution.

Per round r (frames r*F ... r*F + F - 1; observer frame i is world time (r*F + i) / fps):

1. every enabled monitor generates F frames of its entities from its fixed pose, conditioned on
   the world rendered from that pose (the static world as it is now, the entities' region left to
   generate), its previous frames and ``scene: ...; foreground: <its entities' prompts>``;
2. the monitor clips are lifted to 3D (:mod:`worldstudio.core.generation.lift`): per frame, per entity, a
   cloud, at the same world times as the observer's frames;
3. for each observer frame i the static cloud and the entities' frame-i clouds are rendered into
   observer pose i (z-buffer): RGB, depth, coverage;
4. the observer's round is generated from those renders (control_rgb), the uncovered pixels
   (control_mask), the previous round's last frames and the prompt;
5. the static world grows from the new frames where the render had holes and no entity is masked;
6. the round is persisted (:mod:`worldstudio.core.generation.runs`); "complete" is written last.

Entities no enabled monitor watches (or every entity, with monitors off) do not evolve: they keep
their last seen state, i.e. their points in the last observer frame that showed them.

Every backend call gets its own seed, :func:`derive_seed` (run seed, round, camera). A run can be
resumed after its last complete round, or branched from round K into a new run with the project's
current prompts. A failure or cancel leaves the finished rounds on disk, run.json saying so, and
project.json untouched (the engine never writes it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.errors import Cancelled, ProjectError, WorldStudioError
from worldstudio.core.generation.backends import (
    Backend,
    GenerationRequest,
    check_frames,
    get_backend,
)
from worldstudio.core.generation.lift import Lifter, LiftInput, entity_clouds, make_lifter
from worldstudio.core.generation.runs import (
    RUN_FORMAT,
    RUN_VERSION,
    RunError,
    RunFolder,
    load_npy,
    load_npz,
    new_run_id,
    now_iso,
    resolve_run,
    safe_name,
    save_npy,
    save_npz,
    write_json,
)
from worldstudio.core.generation.world import (
    MIN_ENTITY_PIXELS,
    EntityCloud,
    add_static,
    grow_static,
    initial_world,
    pack_frames,
    render_world,
)
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import Project, ProjectFolder

CONTEXT_FRAMES = 5
"""How many of the previous round's last frames a backend call gets (``previous_frames``)."""

_DEFAULT_LIFTERS = {"geometry": "render", "oracle": "oracle"}


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


def entity_prompt(entity, r: int) -> str:
    """What the entity does in round r; past its last prompt it goes on doing that."""
    if r < len(entity.prompts) and entity.prompts[r].strip():
        return entity.prompts[r]
    earlier = [p for p in entity.prompts[: r + 1] if p.strip()]
    return earlier[-1] if earlier else ""


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
    context_frames: int = CONTEXT_FRAMES
    splat_radius: int = 0
    # [path to a .safetensors LoRA, strength]; kept so that resume and branch apply the same ones
    loras: list[list] = field(default_factory=list)

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
def _validated_size(project: Project, width: int, height: int, frames_per_round: int) -> None:
    from pydantic import ValidationError

    from worldstudio.core.project import GenerationSettings

    data = project.generation.model_dump()
    data.update(width=width, height=height, frames_per_round=frames_per_round)
    try:
        GenerationSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise GenerationError(
            f"generation settings: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def project_model_for(backend: str, g) -> str | None:
    """The project's model id when it suits ``backend`` (None: the backend's default): it does for
    the project's own backend, and for a Wan backend whose kind (VACE, I2V) its name shows."""
    if g.model_id is None:
        return None
    if backend == g.backend:
        return g.model_id
    hint = {"wan-vace": "vace", "wan-i2v": "i2v"}.get(backend)
    return g.model_id if hint and hint in g.model_id.lower() else None


def _fit_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio (never stretch), then resize."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    target = width / height
    if w / h > target:
        cw, ch = max(1, round(h * target)), h
    else:
        cw, ch = w, max(1, round(w / target))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    img = Image.fromarray(rgb[y0 : y0 + ch, x0 : x0 + cw])
    return np.asarray(img.resize((width, height), Image.Resampling.BICUBIC))


class _BackgroundWriter:
    """One worker thread that runs persistence tasks in order (videos are encoded by ffmpeg while
    the next round generates). ``check`` and ``drain`` re-raise a task's failure."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldstudio-persist")
        self._futures: list = []

    def submit(self, fn, *args) -> None:
        self.check()
        self._futures.append(self._pool.submit(fn, *args))

    def check(self) -> None:
        pending = []
        for f in self._futures:
            if f.done():
                f.result()  # raises the task's error
            else:
                pending.append(f)
        self._futures = pending

    def drain(self) -> None:
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001 - keep waiting for the others, then raise
                error = error or exc
        if error is not None:
            raise error

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class _Engine:
    def __init__(
        self,
        project_folder: str | os.PathLike,
        *,
        backend: str | Backend | None,
        model: str | None,
        rounds: int | None,
        steps: int | None,
        size: tuple[int, int] | None,
        frames_per_round: int | None,
        seed: int | None,
        profile: str | None,
        resume: str | os.PathLike | None,
        from_round: int | None,
        monitors: bool,
        guidance: float | None,
        lifter: str | Lifter | None,
        loras: list[tuple[str, float]] | None,
        context_frames: int | None,
        splat_radius: int | None,
        backend_options: dict[str, Any] | None,
        write_preview: bool,
    ):
        self.folder = ProjectFolder(project_folder)
        self.backend_arg = backend
        self.lifter_arg = lifter
        self.backend_options = dict(backend_options or {})
        self.write_preview = write_preview
        self.overrides = {
            "backend": backend if isinstance(backend, str) or backend is None else backend.name,
            "model_id": model,
            "profile": profile,
            "steps": steps,
            "seed": seed,
            "guidance": guidance,
            "rounds": rounds,
            "width": size[0] if size else None,
            "height": size[1] if size else None,
            "frames_per_round": frames_per_round,
            "context_frames": context_frames,
            "splat_radius": splat_radius,
            "lifter": lifter
            if isinstance(lifter, str)
            else (None if lifter is None else lifter.name),
            "loras": None
            if loras is None
            else [[str(path), float(strength)] for path, strength in loras],
        }
        self.monitors_on = monitors
        self.resume = resume
        self.from_round = from_round

    # -- settings ------------------------------------------------------------------------------
    def _fresh_settings(self, project: Project) -> RunSettings:
        g = project.generation
        o = self.overrides
        backend = o["backend"] or g.backend
        width = o["width"] or g.width
        height = o["height"] or g.height
        fpr = o["frames_per_round"] or g.frames_per_round
        _validated_size(project, width, height, fpr)
        n_rounds = o["rounds"] if o["rounds"] is not None else len(project.rounds)
        if n_rounds < 1:
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
            monitors=self.monitors_on,
            context_frames=o["context_frames"]
            if o["context_frames"] is not None
            else CONTEXT_FRAMES,
            splat_radius=o["splat_radius"] or 0,
            loras=o["loras"] or [],
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
        if (
            "backend" not in fixed
            and self.overrides["backend"]
            and self.overrides["lifter"] is None
        ):
            values["lifter"] = ""  # chosen by the new backend
        if not self.monitors_on:
            values["monitors"] = False
        return RunSettings(**values)

    # -- run folder ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Resolve the project, the settings and the run folder (nothing is written yet)."""
        folder = self.folder
        self.parent: dict[str, Any] | None = None
        self.copy_from: RunFolder | None = None
        if self.resume is not None and self.from_round is None:
            folder.load()  # a clear error when the folder is not a project
            run = resolve_run(folder, self.resume)
            meta = run.read_meta()
            old = RunSettings.from_json(meta.get("settings", {}))
            fixed = tuple(k for k in asdict(old) if k not in ("rounds",))
            self.settings = self._inherited_settings(old, fixed=fixed)
            if not self.monitors_on and old.monitors:
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
        elif self.from_round is not None:
            current = folder.load()
            parent = resolve_run(folder, self.resume)
            pmeta = parent.read_meta()
            old = RunSettings.from_json(pmeta.get("settings", {}))
            done = parent.completed_rounds()
            k = int(self.from_round)
            if not 0 <= k <= done:
                raise GenerationError(
                    f"--from-round {k}: run {parent.id} has {done} complete rounds; branch from 0 to {done}"
                )
            self.settings = self._inherited_settings(
                old, fixed=("width", "height", "fps", "frames_per_round")
            )
            self.settings.monitors = self.monitors_on  # a branch follows this call's flag
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

    def _meta(self, status: str, rounds_done: int, error: str | None = None) -> dict[str, Any]:
        s = self.settings
        meta: dict[str, Any] = {
            "format": RUN_FORMAT,
            "version": RUN_VERSION,
            "id": self.run.id,
            "status": status,
            "error": error,
            "created": self.created,
            "backend": s.backend,
            "model_id": s.model_id if s.backend not in ("geometry", "oracle") else None,
            "profile": s.profile,
            "lifter": s.lifter,
            "settings": asdict(s),
            "rounds_total": s.rounds,
            "rounds_done": rounds_done,
            "parent": self.parent,
            "seeds": {
                "run": s.seed,
                "rounds": [
                    {cam: derive_seed(s.seed, r, cam) for cam in self.cameras}
                    for r in range(s.rounds)
                ],
            },
            "cameras": {
                "observer": {"frames": s.rounds * s.frames_per_round},
                "monitors": [
                    {"id": m.id, "name": m.name, "entity_ids": list(m.entity_ids), "fov": m.fov}
                    for m in self.monitors
                ],
            },
            "entities": [{"id": e.id, "name": e.name} for e in self.project.entities],
            "project": self.project.model_dump(mode="json"),
        }
        if status == "complete":
            meta["outputs"] = {"final": "final.mp4", "final_combined": "final_combined.mp4"}
        return meta

    def _write_status(self, status: str, error: str | None = None) -> None:
        try:
            self.run.write_meta(self._meta(status, self.run.completed_rounds(), error))
        except OSError:  # pragma: no cover - the original error matters more
            pass

    # -- world -----------------------------------------------------------------------------------
    def _setup_world(self) -> None:
        from worldstudio.core.geometry.camera import intrinsics_from_fov
        from worldstudio.core.geometry.path import bake_path
        from worldstudio.core.geometry.transforms import pose_matrix

        s = self.settings
        p = self.project
        F, H, W = s.frames_per_round, s.height, s.width
        self.monitors = [m for m in p.monitors if m.enabled] if s.monitors else []
        self.cameras = ["observer"] + [f"monitor:{m.id}" for m in self.monitors]
        self.watched = {eid for m in self.monitors for eid in m.entity_ids}
        self.entity_ids = [e.id for e in p.entities]
        self.entities = {e.id: e for e in p.entities}

        baked = bake_path(p.camera_path, n_frames=s.rounds * F)
        self.obs_c2w = baked.c2w
        self.obs_K = np.stack([intrinsics_from_fov(float(f), H, W) for f in baked.fov])
        self.mon_c2w = {
            m.id: pose_matrix(m.pose.position, m.pose.orientation) for m in self.monitors
        }
        self.mon_K = {m.id: intrinsics_from_fov(m.fov, H, W) for m in self.monitors}

        self.reference: list[np.ndarray] = []
        if p.source is not None:
            from PIL import Image

            src = self.folder.path(p.source.file)
            if src.is_file():
                with Image.open(src) as img:
                    self.reference = [_fit_image(np.asarray(img.convert("RGB")), H, W)]

        static0, states0 = initial_world(self.folder, p)
        self.entity_state: dict[str, EntityCloud] = dict(states0)
        self.entity_time: dict[str, float] = {eid: 0.0 for eid in self.entity_ids}
        self.static = static0
        self.prev_observer: np.ndarray | None = None
        self.prev_monitor: dict[str, np.ndarray] = {}

    def _restore(self, run: RunFolder, k: int) -> None:
        """The world after round k - 1 as persisted (resume and branch)."""
        from worldstudio.core.pointcloud.cloud import PointCloud
        from worldstudio.core.pointcloud.ply import read_ply

        rd = run.round_dir(k - 1)
        cloud = read_ply(rd / "static.ply")
        self.static = PointCloud(cloud.xyz, cloud.rgb)
        for eid in self.entity_ids:
            path = rd / "entities" / f"{eid}.npz"
            if path.is_file():
                z = load_npz(path)
                self.entity_state[eid] = EntityCloud(z["state_xyz"], z["state_rgb"])
                self.entity_time[eid] = float(z["state_time"])
        c = self.settings.context_frames
        obs = load_npy(rd / "observer.npy")
        self.prev_observer = obs[-c:] if c > 0 else None
        for m in self.monitors:
            path = rd / "monitors" / f"{m.id}.npy"
            if path.is_file() and c > 0:
                self.prev_monitor[m.id] = load_npy(path)[-c:]

    # -- backend calls ---------------------------------------------------------------------------
    def _call(self, request: GenerationRequest, label: str, r: int) -> np.ndarray:
        s = self.settings
        ctx = self.ctx
        base = self.units_done
        total = self.units_total

        def sink(report) -> None:
            if report.kind == "progress":
                frac = report.done / report.total if report.total else 0.0
                done = base + min(s.steps, int(round(frac * s.steps)))
                msg = report.message or f"{report.done}/{report.total}"
                ctx.progress(done, total, f"round {r + 1}/{s.rounds} {label} · {msg}")
            elif report.kind == "preview":
                ctx.preview(report.payload, f"round {r + 1} {label}: {report.message}")
                self._save_preview(report.payload)
            else:
                ctx.log(report.message)

        sub = JobContext(sink, cancel=ctx.cancel_token)
        ctx.check_cancelled()
        t0 = time.perf_counter()
        try:
            frames = self.backend.generate(request, sub)
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

    def _save_preview(self, image) -> None:
        if not self.write_preview:
            return
        now = time.monotonic()
        if now - self._last_preview < 0.5:
            return
        self._last_preview = now
        try:
            from PIL import Image

            img = np.asarray(image)
            if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
                tmp = self.run.preview_png.with_name(".preview.tmp.png")
                Image.fromarray(img).save(tmp)
                os.replace(tmp, self.run.preview_png)
        except (OSError, ValueError):
            pass

    # -- one round -------------------------------------------------------------------------------
    def _round(self, r: int) -> None:
        s = self.settings
        ctx = self.ctx
        F, H, W = s.frames_per_round, s.height, s.width
        idx = r * F + np.arange(F)
        times = idx.astype(np.float64) / s.fps
        ids = self.entity_ids
        timings = {"backend": 0.0, "render": 0.0, "lift": 0.0, "persist": 0.0}
        seeds: dict[str, int] = {}
        prompts: dict[str, str] = {}
        backend_before = self.backend_seconds
        text = scene_text(self.project, r)

        # 1-2. monitors evolve their entities; lift the clips to 3D
        best: dict[str, list[tuple[int, EntityCloud] | None]] = {
            eid: [None] * F for eid in self.watched
        }
        monitor_frames: dict[str, np.ndarray] = {}
        for m in self.monitors:
            t0 = time.perf_counter()
            c2w = np.repeat(self.mon_c2w[m.id][None], F, axis=0)
            K = np.repeat(self.mon_K[m.id][None], F, axis=0)
            view = render_world(
                self.static, [dict(self.entity_state)], c2w[:1], K[:1], H, W, ids, s.splat_radius
            )
            timings["render"] += time.perf_counter() - t0
            camera = f"monitor:{m.id}"
            seeds[camera] = derive_seed(s.seed, r, camera)
            prompts[camera] = compose_prompt(
                text, [entity_prompt(self.entities[e], r) for e in m.entity_ids]
            )
            request = GenerationRequest(
                prompt=prompts[camera],
                num_frames=F,
                height=H,
                width=W,
                steps=s.steps,
                guidance=s.guidance,
                seed=seeds[camera],
                control_rgb=np.repeat(view.rgb, F, axis=0),
                control_mask=np.repeat(~view.covered | view.any_entity, F, axis=0),
                previous_frames=self.prev_monitor.get(m.id),
                reference_images=list(self.reference),
                role="monitor",
                camera_c2w=c2w,
                camera_K=K,
                times=times.copy(),
                loras=[(path, strength) for path, strength in self.settings.loras],
                camera_id=m.id,
                round_index=r,
            )
            frames = self._call(request, f"monitor {m.name}", r)
            monitor_frames[m.id] = frames
            t0 = time.perf_counter()
            lifted = self.lifter.lift(
                LiftInput(
                    frames=frames,
                    c2w=c2w,
                    K=K,
                    times=times,
                    render_depth=np.repeat(view.depth, F, axis=0),
                    render_entities={
                        eid: np.repeat(view.entity_mask(eid), F, axis=0) for eid in m.entity_ids
                    },
                    entity_ids=list(m.entity_ids),
                    role="monitor",
                    camera_id=m.id,
                ),
                ctx,
            )
            for eid in m.entity_ids:
                counts = lifted.masks[eid].reshape(F, -1).sum(axis=1)
                clouds = entity_clouds(frames, lifted.depth, lifted.masks[eid], c2w, K)
                for i in range(F):
                    n = int(counts[i])
                    if (
                        n >= MIN_ENTITY_PIXELS
                        and len(clouds[i])
                        and (best[eid][i] is None or n > best[eid][i][0])
                    ):
                        best[eid][i] = (n, clouds[i])
            timings["lift"] += time.perf_counter() - t0

        # the entities' clouds for each frame of the round
        tracks: dict[str, list[EntityCloud]] = {}
        state_time = dict(self.entity_time)
        sources: dict[str, str] = {}
        seen_frames: dict[str, int] = {}
        for eid in ids:
            cur = self.entity_state[eid]
            seq: list[EntityCloud] = []
            seen = 0
            for i in range(F):
                found = best[eid][i] if eid in self.watched else None
                if found is not None:
                    cur = found[1]
                    seen += 1
                    state_time[eid] = float(times[i])
                seq.append(cur)
            tracks[eid] = seq
            seen_frames[eid] = seen
            sources[eid] = "monitor" if eid in self.watched else "frozen"
            if eid in self.watched and seen == 0:
                ctx.log(
                    f"round {r + 1}: no monitor saw entity {self.entities[eid].name!r}; it keeps its last state"
                )

        # 3. render the observer's conditioning
        t0 = time.perf_counter()
        c2w = self.obs_c2w[idx]
        K = self.obs_K[idx]
        per_frame = [{eid: tracks[eid][i] for eid in ids} for i in range(F)]
        render = render_world(self.static, per_frame, c2w, K, H, W, ids, s.splat_radius)
        timings["render"] += time.perf_counter() - t0

        # 4. generate the observer's round
        seeds["observer"] = derive_seed(s.seed, r, "observer")
        prompts["observer"] = compose_prompt(
            text, [entity_prompt(self.entities[e], r) for e in ids]
        )
        request = GenerationRequest(
            prompt=prompts["observer"],
            num_frames=F,
            height=H,
            width=W,
            steps=s.steps,
            guidance=s.guidance,
            seed=seeds["observer"],
            control_rgb=render.rgb.copy(),
            control_mask=~render.covered,
            previous_frames=self.prev_observer,
            reference_images=list(self.reference),
            role="observer",
            camera_c2w=c2w.copy(),
            camera_K=K.copy(),
            times=times.copy(),
            loras=[(path, strength) for path, strength in self.settings.loras],
            camera_id="observer",
            round_index=r,
        )
        frames = self._call(request, "observer", r)

        # 5. lift the observer's frames: grow the static world, update unwatched entities
        t0 = time.perf_counter()
        lifted = self.lifter.lift(
            LiftInput(
                frames=frames,
                c2w=c2w,
                K=K,
                times=times,
                render_depth=render.depth,
                render_entities={eid: render.entity_mask(eid) for eid in ids},
                entity_ids=list(ids),
                role="observer",
                camera_id="observer",
            ),
            ctx,
        )
        exclude = lifted.any_entity(render.covered.shape) | render.any_entity
        added = grow_static(frames, lifted.depth, c2w, K, ~render.covered, exclude, s.splat_radius)
        new_static = add_static(self.static, added)
        new_state = {eid: tracks[eid][-1] for eid in ids}
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
                    c2w[i : i + 1],
                    K[i : i + 1],
                )[0]
                if len(cloud):
                    new_state[eid] = cloud
                    state_time[eid] = float(times[i])
                    sources[eid] = "observer"
        timings["lift"] += time.perf_counter() - t0
        ctx.check_cancelled()

        # 6. persist: the state now; videos, round.json ("complete", last) and run.json in the
        # background, in order, while the next round generates
        t0 = time.perf_counter()
        self._persist_state(
            r, frames, render, monitor_frames, new_static, tracks, new_state, state_time, times
        )
        timings["persist"] += time.perf_counter() - t0
        timings["backend"] = self.backend_seconds - backend_before
        entities_info = {}
        for eid in ids:
            cents = render.centroids[eid]
            entities_info[eid] = {
                "name": self.entities[eid].name,
                "source": sources[eid],
                "monitor_frames_seen": seen_frames[eid],
                "state_time": state_time[eid],
                "render_pixels": [int(v) for v in render.pixels[eid]],
                "render_centroids": [
                    None if np.isnan(c).any() else [float(v) for v in c] for c in cents
                ],
            }
        meta = {
            "round": r,
            "frames": [int(idx[0]), int(idx[-1])],
            "times": [float(times[0]), float(times[-1])],
            "fps": s.fps,
            "seeds": seeds,
            "prompts": prompts,
            "monitors": [m.id for m in self.monitors],
            "entities": entities_info,
            "static_points": len(new_static),
            "static_points_added": len(added),
            "coverage": float(render.covered.mean()),
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "complete": True,
        }
        self.writer.submit(self._finish_round, r, frames, render.rgb, monitor_frames, meta)
        for k, v in timings.items():
            self.timings[k] = self.timings.get(k, 0.0) + v

        # the world moves on
        self.static = new_static
        self.entity_state = new_state
        self.entity_time = state_time
        c = s.context_frames
        self.prev_observer = frames[-c:].copy() if c > 0 else None
        for mid, mf in monitor_frames.items():
            if c > 0:
                self.prev_monitor[mid] = mf[-c:].copy()

    def _persist_state(
        self, r, frames, render, monitor_frames, static, tracks, state, state_time, times
    ) -> None:
        """What the next round and a resume need, losslessly (before the round counts as done)."""
        from worldstudio.core.pointcloud.ply import write_ply

        self.writer.check()
        self.run.clear_round(r)
        rd = self.run.round_dir(r)
        rd.mkdir(parents=True)
        save_npy(rd / "observer.npy", frames)
        save_npy(rd / "coverage.npy", render.covered)
        for mid, mf in monitor_frames.items():
            save_npy(rd / "monitors" / f"{mid}.npy", mf)
        write_ply(rd / "static.ply", static)
        for eid, seq in tracks.items():
            packed = pack_frames(seq)
            save_npz(
                rd / "entities" / f"{eid}.npz",
                xyz=packed["xyz"],
                rgb=packed["rgb"],
                offsets=packed["offsets"],
                times=np.asarray(times, np.float64),
                state_xyz=state[eid].xyz,
                state_rgb=state[eid].rgb,
                state_time=np.float64(state_time[eid]),
            )

    def _finish_round(self, r, frames, renders, monitor_frames, meta) -> None:
        """(background) The round's videos, then round.json with "complete" (atomically, last),
        then run.json; the frames also go on into the final videos."""

        from worldstudio.core.media import VideoWriter

        t0 = time.perf_counter()
        fps = self.settings.fps
        rd = self.run.round_dir(r)
        clips = [(rd / "observer.mp4", frames), (rd / "renders.mp4", renders)]
        clips += [(rd / "monitors" / f"{mid}.mp4", mf) for mid, mf in monitor_frames.items()]
        # every video's ffmpeg encodes at the same time: frames are handed round, then all close
        writers = [VideoWriter(path, fps) for path, _ in clips]
        try:
            for i in range(frames.shape[0]):
                for w, (_, clip) in zip(writers, clips, strict=True):
                    w.write(clip[i])
            self._feed_finals(frames, monitor_frames)
            for w in writers:
                w.close()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        meta["timings"]["videos"] = round(time.perf_counter() - t0, 4)
        write_json(self.run.round_file(r), meta)
        self.run.write_meta(self._meta("running", r + 1))
        self.ctx.event(
            "round_finished",
            run_id=self.run.id,
            run_dir=str(self.run.path),
            round=r,
            rounds_total=self.settings.rounds,
        )
        self.timings["videos"] = self.timings.get("videos", 0.0) + time.perf_counter() - t0

    def _wind_down(self) -> None:
        """After a failure or a cancel: let the finished rounds reach "complete" on disk, drop the
        unfinished final videos."""
        try:
            self.writer.drain()
        except BaseException as exc:  # noqa: BLE001 - the original error is the one to report
            self.ctx.log(f"while stopping: {type(exc).__name__}: {exc}")
        self._close_finals(ok=False)

    # -- finals ----------------------------------------------------------------------------------
    def _open_finals(self) -> None:
        """The final videos are written as the rounds finish (temp names until closed)."""
        from worldstudio.core.media import VideoWriter

        fps = self.settings.fps
        self.final_writers = (
            VideoWriter(self.run.final_mp4, fps),
            VideoWriter(self.run.final_combined_mp4, fps),
        )

    def _feed_finals(self, frames: np.ndarray, monitor_frames: dict[str, np.ndarray]) -> None:
        final, combined = self.final_writers
        black = np.zeros_like(frames)
        side = np.concatenate(
            [frames] + [monitor_frames.get(m.id, black) for m in self.monitors], axis=2
        )
        for i in range(frames.shape[0]):
            final.write(frames[i])
            combined.write(side[i])

    def _feed_finals_from_disk(self, rounds: range) -> None:
        for r in rounds:
            rd = self.run.round_dir(r)
            mons = {}
            for m in self.monitors:
                path = rd / "monitors" / f"{m.id}.npy"
                if path.is_file():
                    mons[m.id] = load_npy(path)
            self._feed_finals(load_npy(rd / "observer.npy"), mons)

    def _close_finals(self, ok: bool) -> None:
        writers, self.final_writers = getattr(self, "final_writers", ()), ()
        for w in writers:
            if ok:
                w.close()
            else:
                w.abort()

    # -- the job ---------------------------------------------------------------------------------
    def __call__(self, ctx: JobContext) -> RunResult:
        t_start = time.perf_counter()
        self.ctx = ctx
        self.backend_seconds = 0.0
        self.backend_calls = 0
        self.timings: dict[str, float] = {}
        self._last_preview = -1e9
        self.writer = _BackgroundWriter()
        self.prepare()
        s = self.settings
        self._setup_world()
        if s.fps != self.project.camera_path.settings.fps:
            ctx.log(
                f"note: the camera path is baked at {self.project.camera_path.settings.fps} fps and the video "
                f"runs at {s.fps} fps; frame i is world time i / {s.fps} s"
            )

        # the backend and the lifter exist before anything is written: a refused backend leaves no run
        if isinstance(self.backend_arg, str) or self.backend_arg is None:
            options = dict(
                model_id=s.model_id,
                profile=s.profile,
                project=self.project,
                project_folder=self.folder,
            )
            options.update(self.backend_options)
            self.backend = get_backend(s.backend, **options)
            own_backend = True
        else:
            self.backend = self.backend_arg
            own_backend = False
        try:
            if not s.lifter:
                s.lifter = getattr(self.backend, "lifter", None) or _DEFAULT_LIFTERS.get(
                    s.backend, "model"
                )
            if s.lifter == "oracle":
                from worldstudio.core.generation.backends.oracle import is_oracle_project

                if not is_oracle_project(self.project):
                    raise GenerationError(
                        f"{self.folder.project_file}: the oracle lifter only works on the demo (oracle) scene"
                    )
            if isinstance(self.lifter_arg, str) or self.lifter_arg is None:
                self.lifter = make_lifter(s.lifter, project=self.project)
            else:
                self.lifter = self.lifter_arg
            ctx.log(
                f"backend {s.backend}, lifter {s.lifter}, {s.rounds} rounds of {s.frames_per_round} frames "
                f"at {s.width}x{s.height}, {len(self.monitors)} monitors"
            )
            prepare = getattr(self.lifter, "prepare", None)
            if prepare is not None:
                prepare(ctx)
        except BaseException:
            if own_backend:
                self.backend.close()
            raise

        try:
            if self.copy_from is not None:
                self.run.path.mkdir(parents=True)
                for r in range(self.start):
                    shutil.copytree(self.copy_from.round_dir(r), self.run.round_dir(r))
            if self.start > 0:
                self._restore(self.run, self.start)
            self.run.path.mkdir(parents=True, exist_ok=True)
            self.run.write_meta(self._meta("running", self.start))
            ctx.log(f"run {self.run.id}: {self.run.path}")
            ctx.event(
                "run_started",
                run_id=self.run.id,
                run_dir=str(self.run.path),
                rounds_total=s.rounds,
                start_round=self.start,
            )
            self._open_finals()
            self.writer.submit(self._feed_finals_from_disk, range(self.start))

            todo = s.rounds - self.start
            self.units_total = max(1, todo * len(self.cameras) * s.steps)
            self.units_done = 0
            ctx.progress(0, self.units_total, f"round {self.start + 1}/{s.rounds}")
            for r in range(self.start, s.rounds):
                self.run.clear_round(r)  # leftovers of an unfinished round
                self._round(r)
            ctx.check_cancelled()
            self.writer.drain()
            self._close_finals(ok=True)
            self.run.write_meta(self._meta("complete", s.rounds))
        except (Cancelled, KeyboardInterrupt):
            self._wind_down()
            self._write_status("cancelled", "cancelled")
            raise
        except BaseException as exc:
            self._wind_down()
            self._write_status("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.writer.shutdown()
            if own_backend:
                self.backend.close()
            self.lifter.close()
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
    project_folder: str | os.PathLike,
    *,
    backend: str | Backend | None = None,
    model: str | None = None,
    rounds: int | None = None,
    steps: int | None = None,
    size: tuple[int, int] | None = None,
    frames_per_round: int | None = None,
    seed: int | None = None,
    profile: str | None = None,
    resume: str | os.PathLike | None = None,
    from_round: int | None = None,
    monitors: bool = True,
    guidance: float | None = None,
    lifter: str | Lifter | None = None,
    loras: list[tuple[str, float]] | None = None,
    context_frames: int | None = None,
    splat_radius: int | None = None,
    backend_options: dict[str, Any] | None = None,
    write_preview: bool = False,
) -> Callable[[JobContext], RunResult]:
    """A job ``job(ctx) -> RunResult`` that generates a project's video round by round.

    Settings default to the project's generation settings; ``size`` is (width, height).
    ``resume``: a run id (folder under runs/) or path: continue after its last complete round
    with its own settings and project snapshot. ``from_round=K``: a new run (branch) that copies
    rounds < K from ``resume`` (default: the latest run) and regenerates from K with the project's
    current prompts. ``monitors=False`` switches every monitor off (entities keep their last seen
    state). ``backend`` may be a name or a Backend object (the caller then closes it);
    ``lifter`` likewise (default: "render" for geometry, "oracle" for oracle, else "model").
    ``write_preview`` keeps the latest preview image at ``<run>/preview.png`` (the CLI's use).
    """
    if from_round is not None and from_round < 0:
        raise ProjectError(f"--from-round must be 0 or more, got {from_round}")
    engine = _Engine(
        project_folder,
        backend=backend,
        model=model,
        rounds=rounds,
        steps=steps,
        size=size,
        frames_per_round=frames_per_round,
        seed=seed,
        profile=profile,
        resume=resume,
        from_round=from_round,
        monitors=monitors,
        guidance=guidance,
        lifter=lifter,
        loras=loras,
        context_frames=context_frames,
        splat_radius=splat_radius,
        backend_options=backend_options,
        write_preview=write_preview,
    )
    return engine
