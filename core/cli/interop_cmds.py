"""Interop subcommands: ``worldstudio import bundle|liveworld|nerfstudio`` (the exports are
``worldstudio export``, :mod:`.export_cmd`)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="make or change a project from a bundle, a LiveWorld sample or a nerfstudio path",
    )
    what = p.add_subparsers(dest="import_kind", metavar="KIND", required=True)

    b = what.add_parser("bundle", help="unpack a project bundle (zip) into a new project folder")
    b.add_argument("file", metavar="FILE.zip")
    b.add_argument("--out", required=True, metavar="PROJECT", help="the new project folder")
    b.add_argument(
        "--max-size",
        default=None,
        metavar="SIZE",
        help="refuse archives that unpack to more than SIZE (default 4G; K, M, G, T suffixes)",
    )
    b.set_defaults(handler=cmd_import_bundle)

    lw = what.add_parser(
        "liveworld", help="make a project from a LiveWorld inference sample (YAML)"
    )
    lw.add_argument("file", metavar="FILE.yaml")
    lw.add_argument("--out", required=True, metavar="PROJECT", help="the new project folder")
    lw.add_argument("--depth-model", metavar="NAME", help="depth model for the reconstruction")
    lw.add_argument(
        "--no-reconstruct",
        action="store_true",
        help="create the project with the reconstruction pending (no depth model needed)",
    )
    lw.add_argument(
        "--rebase",
        action="store_true",
        help="re-express the poses relative to pose 0 when it is not the identity",
    )
    lw.set_defaults(handler=cmd_import_liveworld)

    ns = what.add_parser(
        "nerfstudio", help="replace a project's camera path with a nerfstudio camera_path.json"
    )
    ns.add_argument("file", metavar="FILE.json")
    ns.add_argument(
        "--into", required=True, metavar="PROJECT", help="the existing project to change"
    )
    ns.set_defaults(handler=cmd_import_nerfstudio)


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def cmd_import_bundle(args: argparse.Namespace) -> int:
    from worldstudio.core.interop.bundle import (
        DEFAULT_MAX_TOTAL_BYTES,
        import_bundle_job,
        parse_size,
    )
    from worldstudio.core.jobs import run_in_terminal

    cap = parse_size(args.max_size) if args.max_size else DEFAULT_MAX_TOTAL_BYTES
    project, warnings = run_in_terminal(
        import_bundle_job(args.file, args.out, max_total_bytes=cap), "unpacking"
    )
    _warn(warnings)
    print(f"created {args.out} ({project.name})")
    return 0


def cmd_import_liveworld(args: argparse.Namespace) -> int:
    from worldstudio.core.interop.liveworld import import_liveworld_job
    from worldstudio.core.jobs import run_in_terminal

    result = run_in_terminal(
        import_liveworld_job(
            args.file,
            args.out,
            depth_model=args.depth_model,
            reconstruct=not args.no_reconstruct,
            rebase=args.rebase,
        ),
        "importing",
    )
    _warn(result.warnings)
    p = result.project
    state = (
        "reconstruction pending"
        if result.pending or p.scene is None
        else f"{p.scene.point_count} points"
    )
    print(
        f"created {args.out} ({len(p.rounds)} rounds, {len(p.camera_path.keyframes)} keyframes, {state})"
    )
    return 0


def cmd_import_nerfstudio(args: argparse.Namespace) -> int:
    from worldstudio.core.interop.nerfstudio import import_nerfstudio

    project, warnings = import_nerfstudio(args.file, args.into)
    _warn(warnings)
    path = project.camera_path
    print(f"camera path of {args.into}: {len(path.keyframes)} keyframes at {path.settings.fps} fps")
    return 0
