"""The studio in the desktop's application menu (freedesktop.org): ``worldstudio install-desktop``
writes a desktop entry and the application icon under ``$XDG_DATA_HOME`` (``~/.local/share``),
``--uninstall`` removes them. Only the user's own folders are touched; nothing needs root.

The entry starts the ``worldstudio`` command of the environment it was installed from (a uv tool,
a pipx venv or a plain virtualenv), by its absolute path, so it works without that environment
on PATH. Plain Python, no Qt: it runs from the command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.fileio import atomic_write_bytes
from worldstudio.core.user_dirs import base_dir

APP_ID = "worldstudio"  # the entry's file name, the icon's name and the studio's desktopFileName
RESOURCES = Path(__file__).resolve().parent / "resources"
ICON_SVG = RESOURCES / "worldstudio.svg"
ICON_PNG = RESOURCES / "worldstudio.png"  # 256x256


def installed_paths(base: Path | None = None) -> dict[str, Path]:
    """Where the entry and the icons go."""
    base = base or base_dir("data")
    icons = base / "icons" / "hicolor"
    return {
        "entry": base / "applications" / f"{APP_ID}.desktop",
        "png": icons / "256x256" / "apps" / f"{APP_ID}.png",
        "svg": icons / "scalable" / "apps" / f"{APP_ID}.svg",
    }


def launcher_command() -> list[str]:
    """The command that starts the studio from this environment: its ``worldstudio`` script
    next to this Python, else this Python with ``-m worldstudio``."""
    script = Path(sys.executable).parent / "worldstudio"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute()), "studio"]
    return [str(Path(sys.executable).absolute()), "-m", "worldstudio", "studio"]


def _exec_quote(arg: str) -> str:
    """One argument of an ``Exec`` key (Desktop Entry spec, "The Exec key")."""
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`%="):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'.replace("%", "%%")


def desktop_entry(command: list[str]) -> str:
    # values of a desktop entry are escaped once more: a backslash is written as two
    exec_line = " ".join(_exec_quote(a) for a in command).replace("\\", "\\\\")
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.5",
            "Name=World Studio",
            "GenericName=Video world model studio",
            "Comment=One image to a 3D world, camera paths and generated video",
            f"Exec={exec_line}",
            f"Icon={APP_ID}",
            "Terminal=false",
            "Categories=Graphics;3DGraphics;AudioVideo;Video;",
            "Keywords=video;world model;diffusion;point cloud;camera path;",
            "StartupNotify=true",
            "StartupWMClass=World Studio",  # the class of WM_CLASS Qt sets (the app name)
            "",
        ]
    )


def install(base: Path | None = None) -> dict[str, Path]:
    """Write the desktop entry and the icons; returns where they went."""
    _check_platform()
    paths = installed_paths(base)
    for key, source in (("png", ICON_PNG), ("svg", ICON_SVG)):
        if not source.is_file():
            raise WorldStudioError(f"{source}: the application icon is missing from this install")
        atomic_write_bytes(paths[key], source.read_bytes())
    atomic_write_bytes(paths["entry"], desktop_entry(launcher_command()).encode("utf-8"))
    return paths


def uninstall(base: Path | None = None) -> list[Path]:
    """Remove what :func:`install` wrote; returns what was there."""
    _check_platform()
    removed = []
    for path in installed_paths(base).values():
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def _check_platform() -> None:
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        raise WorldStudioError(
            "install-desktop writes a freedesktop.org desktop entry (Linux and BSD desktops); "
            f"this is {sys.platform}"
        )
