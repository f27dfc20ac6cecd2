"""The app around the commands: ``studio`` (also ``worldstudio`` with no arguments), ``doctor``
and ``install-desktop``.

core never imports the studio (import-linter): the studio's modules are imported here by name,
at run time, and only by the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.user_dirs import base_dir

STUDIO_MAIN = "worldstudio.studio.app"  # its main(argv) starts the studio
DESKTOP = "worldstudio.studio.desktop"  # the freedesktop.org entry and icons
# Qt platforms that draw without a window system
_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "studio", help="open the World Studio desktop app (also: worldstudio with no arguments)"
    )
    p.add_argument(
        "project",
        nargs="?",
        help="a project folder to open (default: the last one, or the demo on first launch)",
    )
    p.add_argument(
        "--no-viewport", action="store_true", help="start without the 3D view (no OpenGL)"
    )
    p.set_defaults(handler=cmd_studio)

    p = sub.add_parser(
        "doctor",
        help="print this machine's system report for a bug report (GPU, CUDA, models, ...)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=cmd_doctor)

    p = sub.add_parser(
        "install-desktop",
        help="add World Studio to the desktop's application menu (Linux: "
        "$XDG_DATA_HOME/applications and the icon theme)",
    )
    p.add_argument("--uninstall", action="store_true", help="remove the entry and the icons")
    p.set_defaults(handler=cmd_install_desktop)


def no_display_reason() -> str | None:
    """Why the studio cannot open a window here (None: it can, as far as can be told without
    starting Qt). Only Linux and the BSDs need a DISPLAY or WAYLAND_DISPLAY."""
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    platform_name = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform_name in _HEADLESS_PLATFORMS:
        return None
    return (
        "no display to open the studio on (DISPLAY and WAYLAND_DISPLAY are unset): run it in a "
        "desktop session or under Xvfb (xvfb-run worldstudio studio); the other commands "
        "(worldstudio --help) need no display"
    )


def start_studio(project: str | None = None, viewport: bool = True) -> int:
    reason = no_display_reason()
    if reason:
        raise WorldStudioError(reason)
    if project:  # a wrong path is refused here, in one line, before a window opens
        from worldstudio.core.project import ProjectFolder

        ProjectFolder(project).load()
    try:
        studio = importlib.import_module(STUDIO_MAIN)
    except ImportError as exc:  # PySide6 or a system library of Qt missing
        raise WorldStudioError(
            f"the studio cannot start: {exc} (the Qt system libraries are listed in "
            "packaging/system-deps.sh)"
        ) from exc
    argv = [project] if project else []
    if not viewport:
        argv.append("--no-viewport")
    return int(studio.main(argv) or 0)


def cmd_studio(args: argparse.Namespace) -> int:
    return start_studio(args.project, viewport=not args.no_viewport)


def cmd_doctor(args: argparse.Namespace) -> int:
    from worldstudio.core.system import format_report, system_report

    report = system_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_install_desktop(args: argparse.Namespace) -> int:
    desktop = importlib.import_module(DESKTOP)
    if args.uninstall:
        removed = desktop.uninstall()
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print(f"nothing to remove in {base_dir('data')}")
        return 0
    paths = desktop.install()
    print(f"installed {paths['entry']}")
    print(f"installed {paths['png']}")
    print(f"installed {paths['svg']}")
    print("World Studio is in the application menu (some desktops show it after logging in again)")
    return 0
