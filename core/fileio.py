"""Writing files and folders so that a failure never leaves half of them behind.

Every writer in core goes through here: a file is written to a temp name beside its target,
flushed and fsynced, then renamed over it; a folder (a new project, an imported bundle) is built
in a staging folder beside its target and swapped in at the end.

The temporary names say whose they are, so that what a killed process left behind can be told
from what a running one is writing (``NAME`` is the target's name, ``PID`` the writer's process
id, ``XXXXXXXX`` random)::

    .NAME.PID.XXXXXXXX.tmp        a file being written (atomic_write)
    .NAME.PID.XXXXXXXX.partial    a folder (or bundle zip) being built (staged_folder)
    .NAME.old-PID                 the folder being replaced, until the new one is in place

:func:`clean_leftovers` runs before every write into a folder: it removes the temporary names
of processes that are no longer running (names without a PID, from older versions, once they
are an hour old), and puts a ``.NAME.old-PID`` folder back as ``NAME`` when the swap was
interrupted before the new folder arrived (else removes it).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
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


# --------------------------------------------------------------------------------------------
# Our temporary names, and what killed writers left behind

_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.(?P<kind>tmp|partial)$")
_OLD = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)$")
LEGACY_LEFTOVER_AGE = 3600.0
"""Seconds after which a temporary name without a PID (older versions) counts as abandoned."""


def temp_prefix(target_name: str) -> str:
    """The start of this process's temporary names for ``target_name`` (mkstemp's prefix)."""
    return f".{target_name}.{os.getpid()}."


def is_leftover(name: str) -> bool:
    """Is ``name`` one of our temporary names (see the module docstring)?"""
    return bool(_TEMP.match(name) or _OLD.match(name))


def is_foreign_leftover(name: str) -> bool:
    """Is ``name`` a temporary name of another process (one this process is not writing)?"""
    match = _TEMP.match(name) or _OLD.match(name)
    return match is not None and match.group("pid") != str(os.getpid())


def process_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this machine (someone else's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's process, or a number no process has
    return True


def _abandoned(entry: os.DirEntry, pid: str | None, now: float) -> bool:
    if pid is not None:
        return not process_alive(int(pid))
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_LEFTOVER_AGE
    except OSError:
        return False


def clean_leftovers(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files and folders that killed writers left in ``folder``, and put
    back a replaced folder whose swap was interrupted. Returns one line per thing done. Never
    touches what a running process is writing; errors are ignored (cleaning is best effort)."""
    folder = Path(folder)
    done: list[str] = []
    now = time.time()
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return done
    for entry in entries:
        temp, old = _TEMP.match(entry.name), _OLD.match(entry.name)
        if not (temp or old):
            continue
        match = temp or old
        assert match is not None
        if not _abandoned(entry, match.group("pid"), now):
            continue
        path = Path(entry.path)
        try:
            if old is not None:
                target = folder / old.group("name")
                if (
                    not target.exists()
                    and not target.is_symlink()
                    and entry.is_dir(follow_symlinks=False)
                ):
                    os.replace(path, target)
                    done.append(f"{target}: restored from {entry.name} (an interrupted save)")
                    continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            done.append(f"{path}: removed (left by an interrupted write)")
        except OSError:
            continue
    return done


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
        clean_leftovers(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
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
        clean_leftovers(parent)
        staging = Path(
            tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".partial", dir=parent)
        )
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


# --------------------------------------------------------------------------------------------
# Reading what a user hands us


def parse_json(text: str | bytes, source: str, error: type[WorldStudioError]):
    """``json.loads(text)`` with every way a hostile file can make the parser fail (bad syntax,
    nesting deeper than the interpreter's stack, integers of more than 4300 digits, bytes that
    are not UTF-8, exhausted memory) turned into ``error`` naming ``source``."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except UnicodeDecodeError as exc:
        raise error(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise error(f"{source}: not valid JSON (nested too deeply)") from None
    except MemoryError:
        raise error(f"{source}: too large to read") from None
    except (
        ValueError
    ) as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise error(f"{source}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def read_regular_file(
    path: str | os.PathLike, limit: int, error: type[WorldStudioError], what: str = "file"
) -> bytes:
    """The bytes of ``path``, which must be a regular file (not a folder, device, FIFO or
    socket, which could block or never end) of at most ``limit`` bytes; ``error`` otherwise."""
    import stat

    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise error(f"{path}: {kind} (a {what} must be a regular file)")
        if st.st_size > limit:
            raise error(
                f"{path}: {st.st_size} bytes, more than the {limit} bytes a {what} may have"
            )
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise error(f"{path}: more than the {limit} bytes a {what} may have")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
