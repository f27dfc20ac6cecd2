"""Writing files and folders so that a failure never leaves half of them behind.

Every writer in core goes through here: a file is written to a temp name beside its target,
flushed and fsynced, then renamed over it; a folder (a new project, an imported bundle) is built
in a staging folder beside its target and swapped in at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from worldstudio.core.errors import WorldStudioError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ordinary_file_mode() -> int:
    """The permissions a newly created ordinary file gets here (0o666 less the umask): what a
    file written through a private temporary file (``mkstemp``, 0o600) is given before it
    replaces its target. The umask is read from /proc where there is one (setting it to read it
    races with files other threads create meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o666 & ~_umask()


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, with a clear error when its folder cannot hold it (the nearest
    existing ancestor is a file, say)."""
    path = Path(path)
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise WorldStudioError(f"{path}: cannot write here ({parent} is not a folder)")
            break
    if path.is_dir():
        raise WorldStudioError(f"{path}: is a folder, not a file")
    return path


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (best effort: not every platform opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_write(p) as f: f.write(...)``: ``p`` holds the old or the new content,
    never a mix; on an exception the temp file is removed and ``p`` is untouched."""
    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WorldStudioError(f"{path}: cannot write here ({exc.strerror or exc})") from exc
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's files are private; ours are ordinary files
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise WorldStudioError(f"{path}: cannot be written ({exc.strerror or exc})") from exc
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


@contextmanager
def staged_folder(target: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Build a folder in a staging folder beside ``target`` and swap it in when the block ends
    without an exception. With ``replace``, an existing ``target`` is replaced; otherwise only
    a missing or empty one is."""
    target = Path(target)
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
        os.chmod(staging, 0o777 & ~_umask())
    except OSError as exc:
        raise WorldStudioError(
            f"{target}: cannot create the folder ({exc.strerror or exc})"
        ) from exc
    try:
        yield staging
        _swap_in(staging, target, replace)
        fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise WorldStudioError(f"{target}: cannot be written ({exc.strerror or exc})") from exc
        raise


def _swap_in(staging: Path, target: Path, replace: bool) -> None:
    """Rename ``staging`` to ``target``. A target being replaced is moved aside first and
    deleted only once the new folder is in place, so a failure in between loses neither."""
    if target.exists() and not target.is_dir():
        raise WorldStudioError(f"{target}: exists and is not a folder")
    old = None
    if target.exists():
        if not any(target.iterdir()):
            target.rmdir()
        elif not replace:
            raise WorldStudioError(f"{target}: already exists and is not empty")
        else:
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
