"""``worldstudio export PROJECT ...``: every output a project can be written to, in one command.

Several outputs may be given at once; they are written in the order of :data:`OUTPUTS`.
Warnings go to stderr as ``warning: ...``, one ``wrote ...`` line per file to stdout. The
writers themselves live in :mod:`worldstudio.core.interop`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from worldstudio.core.errors import WorldStudioError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.interop.exports import FrameSelection, Layout

OUTPUTS = ("ply", "bundle", "liveworld", "nerfstudio", "path_json", "path_csv", "mp4")
"""The output flags (argparse names), in the order they are written."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a project's files (PLY, bundle, LiveWorld, nerfstudio, mp4, path)"
    )
    p.add_argument("project")
    p.add_argument("--ply", metavar="FILE", help="the scene point cloud as binary PLY")
    p.add_argument(
        "--with-path",
        action="store_true",
        help="with --ply: draw the camera path, keyframe and monitor frustums as coloured points",
    )
    p.add_argument("--bundle", metavar="FILE.zip", help="the whole project folder as one zip")
    p.add_argument(
        "--liveworld",
        metavar="DIR",
        help="a LiveWorld inference sample (sample.yaml, geometry.npz, source image) in DIR",
    )
    p.add_argument(
        "--nerfstudio", metavar="FILE.json", help="the camera path as a nerfstudio camera_path.json"
    )
    p.add_argument(
        "--path-json", metavar="FILE", help="the baked path (pose and intrinsics per frame) as JSON"
    )
    p.add_argument(
        "--path-csv", metavar="FILE", help="the baked path (pose and intrinsics per frame) as CSV"
    )
    p.add_argument(
        "--path-frames",
        choices=("video", "path"),
        default=None,
        help="baked path exports: one row per video frame (default) or the path's own frames",
    )
    p.add_argument("--mp4", metavar="FILE", help="a generation run as mp4 (with --run)")
    p.add_argument(
        "--run", metavar="RUN_ID", help="the run (a folder under runs/) for --mp4 or --ply"
    )
    p.add_argument(
        "--round",
        type=int,
        metavar="N",
        default=None,
        help="with --ply --run: only round N's cloud (default: one PLY per round)",
    )
    p.add_argument(
        "--layout",
        choices=("observer", "combined", "conditioning"),
        default=None,
        help="with --mp4: the observer only (default), beside its monitors, or beside the conditioning renders",
    )
    p.set_defaults(handler=cmd_export)


def _check(args: argparse.Namespace) -> None:
    """One clear line for a combination of flags that makes no sense, before anything is
    written."""
    if not any(getattr(args, k) for k in OUTPUTS):
        raise WorldStudioError(
            "export: say what to export: --ply, --bundle, --liveworld, --nerfstudio, --path-json, "
            "--path-csv or --mp4 --run RUN_ID"
        )
    if args.mp4 and not args.run:
        raise WorldStudioError(
            "export --mp4 needs --run RUN_ID (a folder under the project's runs/)"
        )
    if args.layout and not args.mp4:
        raise WorldStudioError("export --layout goes with --mp4")
    if args.with_path and not args.ply:
        raise WorldStudioError("export --with-path goes with --ply")
    if args.round is not None and not (args.run and args.ply):
        raise WorldStudioError("export --round goes with --ply FILE --run RUN_ID")
    if args.run and not (args.mp4 or args.ply):
        raise WorldStudioError("export --run goes with --mp4 or --ply")


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def _size(path: Path) -> str:
    from worldstudio.core.interop.bundle import human_size

    try:
        return human_size(path.stat().st_size)
    except OSError:  # pragma: no cover - the file was just written
        return "?"


def cmd_export(args: argparse.Namespace) -> int:
    from worldstudio.core.interop import exports
    from worldstudio.core.jobs import run_in_terminal
    from worldstudio.core.project import ProjectFolder

    _check(args)
    project = args.project
    frames: FrameSelection = args.path_frames or "video"
    ProjectFolder(project).load()  # a broken project fails before anything is written

    if args.ply:
        if args.run:
            for path, n in exports.export_run_ply(
                project, args.run, args.ply, args.round, args.with_path
            ):
                print(f"wrote {path} ({n} points)")
        else:
            path, n = exports.export_scene_ply(project, args.ply, args.with_path)
            print(f"wrote {path} ({n} points)")
    if args.bundle:
        from worldstudio.core.interop.bundle import export_bundle_job

        path, warnings = run_in_terminal(export_bundle_job(project, args.bundle), "bundle")
        _warn(warnings)
        print(f"wrote {path} ({_size(path)})")
    if args.liveworld:
        from worldstudio.core.interop.liveworld import export_liveworld

        result = export_liveworld(project, args.liveworld)
        _warn(result.warnings)
        others = ", ".join(p.name for p in result.files if p != result.yaml_path)
        print(f"wrote {result.yaml_path} (+ {others})")
    if args.nerfstudio:
        from worldstudio.core.interop.nerfstudio import export_nerfstudio

        path, warnings = export_nerfstudio(project, args.nerfstudio)
        _warn(warnings)
        print(f"wrote {path}")
    if args.path_json:
        path, n = exports.export_path_json(project, args.path_json, frames)
        print(f"wrote {path} ({n} frames)")
    if args.path_csv:
        path, n = exports.export_path_csv(project, args.path_csv, frames)
        print(f"wrote {path} ({n} frames)")
    if args.mp4:
        layout: Layout = args.layout or "observer"
        path, n = run_in_terminal(
            exports.export_run_mp4_job(project, args.run, args.mp4, layout), f"mp4 ({layout})"
        )
        print(f"wrote {path} ({n} frames, {layout})")
    return 0
