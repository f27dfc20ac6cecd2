"""The ``worldstudio`` command. Each domain adds its subcommands in a module of this package;
with no arguments it opens the studio (``worldstudio studio``).

Errors a user can cause print one line (``error: ...``) and exit with status 2, no traceback.
Anything else is a bug: one line (``internal error in COMMAND: ...``) naming what failed and
the crash log that holds the traceback and the versions (:mod:`worldstudio.core.jobs.crash`),
exit status 1; with ``--debug`` (anywhere on the command line) the traceback is printed instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.runtime.threads import apply_thread_policy

# Modules that each define ``register(subparsers)``; imported lazily by name so that
# `worldstudio info` never pays for torch or diffusers.
COMMAND_MODULES = [
    "worldstudio.core.cli.app_cmds",
    "worldstudio.core.cli.project_cmds",
    "worldstudio.core.cli.export_cmd",
    "worldstudio.core.cli.models_cmds",
    "worldstudio.core.cli.interop_cmds",
    "worldstudio.core.cli.generate_cmds",
    "worldstudio.core.cli.play_cmds",
    "worldstudio.core.cli.train_cmds",
    "worldstudio.core.cli.queue_cmds",
]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="worldstudio",
        description="World Studio: one image to a 3D world, camera paths and generated video.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an internal error (may be given anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("world-studio")
    except PackageNotFoundError:
        return "dev"


def main(argv: Sequence[str] | None = None) -> int:
    apply_thread_policy("cli")  # before torch loads (core.runtime.threads)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv:  # `worldstudio` alone opens the studio
        argv = ["studio"]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except WorldStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line and a crash log, exit 1
        if debug:
            import traceback

            traceback.print_exc()
            return 1
        from worldstudio.core.jobs.crash import report_crash

        report = report_crash(exc, f"`worldstudio {args.command}`")
        print(
            f"internal error in `worldstudio {args.command}`: {report.error}; {report.note} "
            "(rerun with --debug to see the traceback here)",
            file=sys.stderr,
        )
        return 1
    if os.environ.get("WORLDSTUDIO_DEBUG_CLI"):
        print(f"[done: {args.command}]", file=sys.stderr)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
