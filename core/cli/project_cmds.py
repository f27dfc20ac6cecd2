"""Project subcommands: new, info, path, preview (``export`` is :mod:`.export_cmd`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.models import add_model_dir_option, apply_model_dirs
from worldstudio.core.project import CameraPath, PathSettings, Project, ProjectFolder
from worldstudio.core.project.model import parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create a project (the demo, or from an image)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--demo",
        metavar="DIR",
        nargs="?",
        const="",
        help="create the demo project (procedural scene, exact depth) in DIR (default: "
        "demo.wsproj in ~/WorldStudio, or demo-2.wsproj... when that exists)",
    )
    src.add_argument("--image", metavar="IMG", help="reconstruct a project from one image")
    p.add_argument("--out", metavar="PROJECT", help="project folder to create (with --image)")
    p.add_argument(
        "--depth-model", metavar="NAME", help="depth model from `worldstudio models list`"
    )
    p.add_argument(
        "--fov", type=float, metavar="DEG", help="vertical field of view of the photo, degrees"
    )
    p.add_argument(
        "--size", metavar="WxH", default="832x480", help="project video size (default 832x480)"
    )
    p.add_argument("--crop", metavar="X,Y,W,H", help="crop box in the original image's pixels")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    add_model_dir_option(p)
    p.set_defaults(handler=cmd_new)

    p = sub.add_parser("info", help="print a summary of a project")
    p.add_argument("project")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser(
        "runs",
        help="list a project's generation runs and their state (interrupted runs can be resumed)",
    )
    p.add_argument("project")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("path", help="replace the camera path from a preset or an action string")
    p.add_argument("project", nargs="?")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--preset", metavar="NAME", help="orbit, dolly, pan, truck-out-and-back, turn-away-and-back"
    )
    how.add_argument("--actions", metavar="STEPS", help='an action string, e.g. "(FN)(FN)(fLN)"')
    p.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a preset option (repeatable), e.g. --set seconds=8 --set target=0,1,5",
    )
    p.add_argument(
        "--step-length", type=float, default=0.25, help="action strings: metres per step"
    )
    p.add_argument(
        "--turn-degrees", type=float, default=15.0, help="action strings: degrees per turn"
    )
    p.add_argument("--frames-per-step", type=int, default=8, help="action strings: frames per step")
    how.add_argument("--list", action="store_true", help="list the presets and their options")
    p.set_defaults(handler=cmd_path)

    p = sub.add_parser("preview", help="render the geometry preview along the camera path to mp4")
    p.add_argument("project")
    p.add_argument("--out", required=True, metavar="FILE.mp4")
    p.add_argument("--size", metavar="WxH", help="render size (default: the project's video size)")
    p.add_argument(
        "--radius", type=int, default=0, help="splat radius in pixels (default 0: 1-pixel points)"
    )
    p.set_defaults(handler=cmd_preview)


def _open(path: str) -> tuple[ProjectFolder, Project]:
    folder = ProjectFolder(path)
    return folder, folder.load()


def cmd_new(args: argparse.Namespace) -> int:
    from worldstudio.core.jobs import run_in_terminal

    if args.demo is not None:
        from worldstudio.core.oracle.demo_project import create_demo_project
        from worldstudio.core.project.places import free_folder, projects_dir

        if args.demo:
            out = Path(args.demo)
            _check_target(out, args.force)
        else:
            out = free_folder(projects_dir() / "demo.wsproj")
        width, height = parse_size(args.size)
        if width < 16 or height < 16:
            raise WorldStudioError(f"--size: the demo needs at least 16x16, got {args.size}")
        project = create_demo_project(out, width, height)
        print(f"created {out} ({project.name}: {_point_count(project)} points)")
        return 0
    if not args.out:
        raise WorldStudioError("new --image needs --out PROJECT")
    from worldstudio.core.reconstruct.new_project import new_project_from_image

    apply_model_dirs(args.model_dir)

    out = Path(args.out)
    _check_target(out, args.force)
    crop = None
    if args.crop:
        try:
            crop = tuple(int(v) for v in args.crop.split(","))
            assert len(crop) == 4
        except (ValueError, AssertionError):
            raise WorldStudioError(f"--crop: expected X,Y,W,H, got {args.crop!r}") from None
    size = parse_size(args.size)
    project = run_in_terminal(
        lambda ctx: new_project_from_image(
            args.image,
            out,
            depth_model=args.depth_model,
            fov=args.fov,
            size=size,
            crop=crop,
            ctx=ctx,
        ),
        "reconstructing",
    )
    print(f"created {out} ({_point_count(project)} points)")
    return 0


def _point_count(project: Project) -> int:
    return project.scene.point_count if project.scene is not None else 0


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()) and not force:
        raise WorldStudioError(
            f"{out}: already exists and is not empty (use --force to replace it)"
        )


def cmd_info(args: argparse.Namespace) -> int:
    from worldstudio.core.geometry.path import bake_path

    folder, project = _open(args.project)
    gen = project.generation
    lines = [f"project     {project.name}  ({folder.root})"]
    if project.source:
        lines.append(
            f"image       {project.source.width}x{project.source.height}  ({project.source.file})"
        )
    else:
        lines.append("image       none")
    if project.scene:
        state = (
            "pending reconstruction"
            if project.scene.pending
            else f"{project.scene.point_count} points"
        )
        lines.append(f"points      {state}  ({project.scene.points_file})")
    path = project.camera_path
    lines.append(f"keyframes   {len(path.keyframes)}")
    if path.keyframes:
        baked = bake_path(path)
        lines.append(
            f"frames      {len(baked.c2w)} on the path at {path.settings.fps} fps "
            f"({len(baked.c2w) / path.settings.fps:.2f} s); video {project.total_frames} frames"
        )
    else:
        lines.append(f"frames      0 on the path; video {project.total_frames} frames")
    lines.append(f"rounds      {len(project.rounds)} x {gen.frames_per_round} frames")
    for i, r in enumerate(project.rounds):
        lines.append(f"  round {i}   {r.scene_text or '(no scene text)'}")
    lines.append(
        f"entities    {len(project.entities)}"
        + "".join(f"\n  {e.name} ({e.id})" for e in project.entities)
    )
    lines.append(
        f"monitors    {len(project.monitors)}"
        + "".join(
            f"\n  {m.name}: watches {', '.join(m.entity_ids) or 'nothing'}"
            for m in project.monitors
        )
    )
    lines.append(
        f"generation  {gen.backend}, {gen.model_id}, {gen.width}x{gen.height} @ {gen.fps} fps, "
        f"{gen.steps} steps, guidance {gen.guidance}, seed {gen.seed}"
    )
    rows = _run_rows(folder)
    lines.append(f"runs        {len(rows)}")
    lines += [f"  {row.line()}" for row in rows[-5:]]
    if len(rows) > 5:
        lines.append(f"  (and {len(rows) - 5} older: `worldstudio runs {args.project}`)")
    lines += _resume_hints(rows, args.project)
    print("\n".join(lines))
    return 0


class _RunRow:
    """One run as `runs` and `info` list it."""

    def __init__(self, run_id: str, backend: str, done: int, total: int, status: str, created: str):
        self.run_id, self.backend, self.done, self.total = run_id, backend, done, total
        self.status, self.created = status, created

    @property
    def resumable(self) -> bool:
        return self.status in ("interrupted", "cancelled", "failed") and self.done < self.total

    def line(self) -> str:
        return (
            f"{self.run_id:<20} {self.backend:<10} {self.done}/{self.total} rounds  "
            f"{self.status:<12} {self.created}"
        )


def _run_rows(folder: ProjectFolder) -> list[_RunRow]:
    from worldstudio.core.project.runs import RunError, list_runs, run_status

    rows = []
    for run in list_runs(folder):
        try:
            meta = run.read_meta()
        except RunError:
            continue
        rows.append(
            _RunRow(
                run.id,
                str(meta.get("backend", "?")),
                run.completed_rounds(),
                int(meta.get("rounds_total") or 0),
                run_status(meta),
                str(meta.get("created", "")),
            )
        )
    return rows


def _resume_hints(rows: list[_RunRow], project: str) -> list[str]:
    return [
        f"  {row.run_id} is {row.status}: resume it with "
        f"`worldstudio generate {project} --resume {row.run_id}`"
        for row in rows
        if row.resumable
    ]


def cmd_runs(args: argparse.Namespace) -> int:
    folder, _project = _open(args.project)
    rows = _run_rows(folder)
    if not rows:
        print(f"{folder.root}: no runs yet")
        return 0
    print(f"{'run':<20} {'backend':<10} {'done':<12} {'status':<12} created")
    for row in rows:
        print(row.line())
    hints = _resume_hints(rows, args.project)
    if hints:
        print()
        print("\n".join(line.strip() for line in hints))
    return 0


def _parse_option(text: str) -> tuple[str, str]:
    """'seconds=8' -> ('seconds', '8'); the preset converts and checks the value."""
    if "=" not in text:
        raise WorldStudioError(f"--set: expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value.strip()


def cmd_path(args: argparse.Namespace) -> int:
    from worldstudio.core.geometry import presets
    from worldstudio.core.geometry.actions import actions_to_keyframes, parse_actions
    from worldstudio.core.geometry.path import frame_count
    from worldstudio.core.geometry.transforms import pose_matrix

    if args.list:
        for name, preset in presets.PRESETS.items():
            print(f"{name}: {preset.summary}")
            for param in preset.params:
                print(f"    {param.name} ({param.kind}, default {param.default}): {param.help}")
        return 0
    if not args.project:
        raise WorldStudioError("path: name the project folder")
    folder, project = _open(args.project)
    path = project.camera_path
    start = path.keyframes[0] if path.keyframes else None
    start_c2w = (
        pose_matrix(start.position, start.orientation)
        if start
        else pose_matrix((0, 0, 0), (1, 0, 0, 0))
    )
    fov = start.fov if start else _source_fov(project)
    gen = project.generation
    if args.actions is not None:
        steps = parse_actions(args.actions)
        keyframes = actions_to_keyframes(
            steps,
            start_c2w,
            fov,
            step_length=args.step_length,
            turn_degrees=args.turn_degrees,
            frames_per_step=args.frames_per_step,
            fps=path.settings.fps,
        )
        what = f"{len(steps)} steps"
    else:
        options = dict(_parse_option(o) for o in args.options)
        name = args.preset.replace("-", "_")
        keyframes = presets.apply_preset(
            name, start_c2w, fov, gen.height, gen.width, path.settings.fps, **options
        ).keyframes
        what = f"preset {name}"
    # A new path keeps the timing settings, but not a look-at target that would override it.
    project.camera_path = CameraPath(
        keyframes=keyframes,
        settings=PathSettings(fps=path.settings.fps, tension=path.settings.tension),
    )
    frame_count(project.camera_path)  # a path too long to bake is refused before it is saved
    folder.save(project)
    print(f"camera path: {len(keyframes)} keyframes from {what}")
    return 0


def _source_fov(project) -> float:
    from worldstudio.core.geometry.camera import fov_from_intrinsics

    if project.intrinsics is None:
        return 60.0
    import numpy as np

    return float(fov_from_intrinsics(np.array(project.intrinsics.K), project.intrinsics.height))


def cmd_preview(args: argparse.Namespace) -> int:
    from worldstudio.core.generation.preview import render_preview_job
    from worldstudio.core.jobs import run_in_terminal

    ProjectFolder(args.project).load()  # a broken project fails before anything is written
    w, h = parse_size(args.size) if args.size else (None, None)
    out = run_in_terminal(
        render_preview_job(args.project, args.out, w, h, radius=args.radius), "preview"
    )
    print(f"wrote {out}")
    return 0
