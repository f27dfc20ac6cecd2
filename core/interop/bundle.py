"""Project bundles: a project folder as one zip file (docs/FORMATS.md), and back.

Export
    Every regular file and folder under the project folder, with paths relative to it
    (``project.json`` sits at the top of the archive). Symbolic links and unfinished atomic
    writes (hidden ``.*.tmp`` / ``.*.partial*`` files) are left out. Already-compressed media
    (mp4, png, jpg, webp, safetensors) is stored, everything else deflated. The zip is written
    under a temporary name and renamed when complete.

Import
    The archive is checked completely before anything is written. It is refused, with a
    :class:`~core.errors.FormatError` naming the archive and the entry, when an entry

    - has an absolute path (``/x``, ``C:...``), a ``..`` part, a backslash or a control character;
    - is a symbolic link or another special file (Unix mode bits in the external attributes, or
      the Windows reparse-point attribute);
    - appears twice (also when two names differ only in case, or a file is also a folder);
    - is encrypted or uses an unsupported compression method;

    or when the archive has more than ``max_entries`` entries, would unpack to more than
    ``max_total_bytes`` (default 4 GiB), holds an entry larger than 1 MiB whose compression
    ratio exceeds ``max_ratio`` (default 100:1; deflate reaches ~1000:1 only on degenerate data
    such as zip bombs), or has no ``project.json`` (at the top, or inside one top-level folder
    as made by ``zip -r x.zip demo.wsproj``), or its project.json is not a valid project.

    The files are then unpacked into a temporary folder beside the target, counting the bytes
    really written (a lying header cannot exceed the caps), and the folder is renamed to the
    target only at the very end. On any error or cancellation the temporary folder (and any
    parent folders this import created) is removed: nothing is left behind.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from worldstudio.core.errors import FormatError, ProjectError, WorldStudioError
from worldstudio.core.fileio import clean_leftovers, is_leftover, ordinary_file_mode, temp_prefix
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import Project, ProjectFolder
from worldstudio.core.project.store import PROJECT_FILE, project_from_json

DEFAULT_MAX_TOTAL_BYTES = 4 * 1024**3
"""Default cap on the unpacked size of a bundle (4 GiB)."""
DEFAULT_MAX_RATIO = 100.0
"""Default cap on one entry's uncompressed / compressed size (entries above 1 MiB)."""
DEFAULT_MAX_ENTRIES = 100_000
RATIO_MIN_BYTES = 1024 * 1024
"""Entries at most this large are not ratio-checked (tiny files compress absurdly well)."""
MAX_PROJECT_JSON_BYTES = 64 * 1024 * 1024

_STORED_SUFFIXES = {".mp4", ".png", ".jpg", ".jpeg", ".webp", ".safetensors", ".zip", ".gz"}
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_WINDOWS_REPARSE_POINT = 0x400
_CHUNK = 1024 * 1024
# What zipfile and its decompressors raise for damaged data (a lying header, a cut archive)
_CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
    zlib.error,
    lzma.LZMAError,
)


def _reason(exc: BaseException) -> str:
    """An exception as words, also when it carries no message (zipfile's EOFError)."""
    text = str(exc).strip()
    if isinstance(exc, EOFError):
        return text or "its data ends before the size it declares"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _job(ctx: JobContext | None) -> JobContext:
    return ctx if ctx is not None else JobContext()


# --------------------------------------------------------------------------------------------
# A folder that appears only when complete
# --------------------------------------------------------------------------------------------


def check_target_free(target: str | os.PathLike) -> Path:
    """``target`` must not exist, or be an empty folder; WorldStudioError otherwise."""
    target = Path(target)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise WorldStudioError(f"{target}: already exists and is not a folder")
        if any(target.iterdir()):
            raise WorldStudioError(f"{target}: already exists and is not empty")
    return target


@contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a path (not yet existing) inside a temporary folder beside ``target``; fill it in
    the ``with`` body. On success it is renamed to ``target``; on any exception (also
    :class:`~core.errors.Cancelled`) everything this created is removed, parents included."""
    target = check_target_free(target)
    parent = target.absolute().parent
    created: list[Path] = []
    p = parent
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorldStudioError(
            f"{parent}: cannot create the folder ({exc.strerror or exc})"
        ) from exc
    clean_leftovers(parent)
    try:
        box = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".partial", dir=parent))
    except OSError as exc:
        _remove_empty(created)
        raise WorldStudioError(f"{parent}: cannot write here ({exc.strerror or exc})") from exc
    inner = box / "project"
    try:
        yield inner
        if not inner.is_dir():
            raise WorldStudioError(f"{target}: nothing was written")
        check_target_free(target)
        if target.is_dir():
            target.rmdir()  # an empty folder the user named: replaced by the complete one
        os.rename(inner, target)
        box.rmdir()
    except BaseException:
        shutil.rmtree(box, ignore_errors=True)
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    for d in folders:  # deepest first
        try:
            d.rmdir()
        except OSError:
            break


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _is_partial(name: str) -> bool:
    return is_leftover(name) or (
        name.startswith(".") and (name.endswith(".tmp") or ".partial" in name)
    )


def bundle_members(project_dir: str | os.PathLike) -> tuple[list[tuple[Path, str]], list[str]]:
    """(files and folders as (path, archive name)), warnings) of a project folder."""
    root = Path(project_dir)
    members: list[tuple[Path, str]] = []
    warnings: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        for name in sorted(dirnames):
            if (d / name).is_symlink():
                warnings.append(f"{d / name}: a symbolic link, left out of the bundle")
        dirnames[:] = sorted(n for n in dirnames if not (d / n).is_symlink() and not _is_partial(n))
        rel_dir = d.relative_to(root).as_posix()
        if rel_dir != ".":
            members.append((d, rel_dir + "/"))
        for name in sorted(filenames):
            p = d / name
            if p.is_symlink():
                warnings.append(f"{p}: a symbolic link, left out of the bundle")
                continue
            if _is_partial(name) or not p.is_file():
                continue
            members.append((p, p.relative_to(root).as_posix()))
    return members, warnings


def export_bundle(
    project_dir: str | os.PathLike, out_zip: str | os.PathLike, ctx: JobContext | None = None
) -> tuple[Path, list[str]]:
    """Zip the project folder to ``out_zip`` (atomically). Returns (path, warnings)."""
    ctx = _job(ctx)
    folder = ProjectFolder(project_dir)
    folder.load()  # a broken project is not bundled
    out = Path(out_zip)
    members, warnings = bundle_members(folder.root)
    out_abs = out.absolute()
    members = [(p, a) for p, a in members if p.absolute() != out_abs]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(out.parent)
        fd, tmp_name = tempfile.mkstemp(
            prefix=temp_prefix(out.name), suffix=".partial", dir=out.parent
        )
        os.chmod(tmp_name, ordinary_file_mode())  # mkstemp's 0600 would stay on the bundle
    except OSError as exc:
        raise WorldStudioError(f"{out}: cannot write here ({exc.strerror or exc})") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
            for i, (path, arcname) in enumerate(members):
                ctx.check_cancelled()
                if arcname.endswith("/"):
                    zf.writestr(zipfile.ZipInfo(arcname), b"")
                    continue
                method = (
                    zipfile.ZIP_STORED
                    if path.suffix.lower() in _STORED_SUFFIXES
                    else zipfile.ZIP_DEFLATED
                )
                zf.write(path, arcname, compress_type=method)
                ctx.progress(i + 1, len(members), arcname)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out, warnings


def export_bundle_job(
    project_dir: str | os.PathLike, out_zip: str | os.PathLike
) -> Callable[[JobContext], tuple[Path, list[str]]]:
    """:func:`export_bundle` as a job for the studio's worker or ``run_in_terminal``."""
    return lambda ctx: export_bundle(project_dir, out_zip, ctx)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


@dataclass
class BundleContents:
    """What a checked bundle will unpack: zip entries with their paths inside the project."""

    files: list[tuple[zipfile.ZipInfo, str]] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    total_bytes: int = 0
    prefix: str = ""
    project: Project | None = None
    left_out: list[str] = field(default_factory=list)  # entries that are not part of a project


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _entry_parts(zip_path: Path, name: str) -> tuple[list[str], bool]:
    """Validated path parts of an entry name, and whether it is a folder entry."""
    where = f"{zip_path}: entry {name!r}"
    if not name:
        raise FormatError(f"{zip_path}: an entry has an empty name")
    if _CONTROL.search(name):
        raise FormatError(f"{where}: the name contains a control character")
    if "\\" in name:
        raise FormatError(f"{where}: the name contains a backslash (not a portable zip path)")
    if name.startswith("/") or _DRIVE.match(name):
        raise FormatError(f"{where}: absolute paths are not allowed in a bundle")
    is_dir = name.endswith("/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FormatError(f"{where}: '..' in a path is not allowed in a bundle")
    if not parts:
        raise FormatError(f"{where}: the name has no path")
    return parts, is_dir


def _check_kind(zip_path: Path, info: zipfile.ZipInfo) -> None:
    where = f"{zip_path}: entry {info.filename!r}"
    mode = (info.external_attr >> 16) & 0xFFFF
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK or (
        info.external_attr & _WINDOWS_REPARSE_POINT and info.create_system == 0
    ):
        raise FormatError(f"{where}: symbolic links are not allowed in a bundle")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise FormatError(f"{where}: special files (devices, pipes, sockets) are not allowed")
    if info.flag_bits & 0x1:
        raise FormatError(f"{where}: encrypted entries are not supported")
    if info.compress_type not in _SUPPORTED_METHODS:
        raise FormatError(f"{where}: unsupported compression method {info.compress_type}")


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    if not zip_path.is_file():
        raise FormatError(f"{zip_path}: no such bundle")
    try:
        return zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise FormatError(f"{zip_path}: not a zip archive ({_reason(exc)})") from exc
    except PermissionError as exc:
        raise FormatError(f"{zip_path}: cannot be read ({exc.strerror or exc})") from exc
    except (*_CORRUPT, struct.error, OverflowError, MemoryError) as exc:
        raise FormatError(f"{zip_path}: not a readable zip archive ({_reason(exc)})") from exc


def check_bundle(
    zip_path: str | os.PathLike,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> BundleContents:
    """Check a bundle without unpacking it (see the module docstring); FormatError if unsafe."""
    zip_path = Path(zip_path)
    with _open_zip(zip_path) as zf:
        return _check(zf, zip_path, max_total_bytes, max_ratio, max_entries)


def _check(
    zf: zipfile.ZipFile, zip_path: Path, max_total_bytes: int, max_ratio: float, max_entries: int
) -> BundleContents:
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise FormatError(f"{zip_path}: {len(infos)} entries, more than the {max_entries} allowed")
    entries: list[tuple[zipfile.ZipInfo, list[str], bool]] = []
    seen: dict[str, str] = {}
    file_keys: set[str] = set()
    dir_keys: set[str] = set()
    total = 0
    for info in infos:
        parts, is_dir = _entry_parts(zip_path, info.filename)
        _check_kind(zip_path, info)
        if stat.S_IFMT(info.external_attr >> 16) == stat.S_IFDIR:
            is_dir = True
        key = "/".join(parts).casefold()
        if key in seen and not (is_dir and key in dir_keys):
            raise FormatError(
                f"{zip_path}: entry {info.filename!r} appears twice (also as {seen[key]!r})"
            )
        seen[key] = info.filename
        (dir_keys if is_dir else file_keys).add(key)
        if not is_dir:
            size = int(info.file_size)
            if size < 0:
                raise FormatError(f"{zip_path}: entry {info.filename!r} has a negative size")
            if size > RATIO_MIN_BYTES and size > max_ratio * max(int(info.compress_size), 1):
                ratio = size / max(int(info.compress_size), 1)
                raise FormatError(
                    f"{zip_path}: entry {info.filename!r} claims a compression ratio of "
                    f"{ratio:.0f}:1 (more than {max_ratio:g}:1); refusing a possible zip bomb"
                )
            total += size
            if total > max_total_bytes:
                raise FormatError(
                    f"{zip_path}: would unpack to more than {human_size(max_total_bytes)} "
                    f"(at entry {info.filename!r}); raise the size cap to import it"
                )
        entries.append((info, parts, is_dir))
    # a name used both as a file and as a folder (explicitly, or as a parent of other entries)
    for _info, parts, _is_dir in entries:
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i]).casefold()
            if parent in file_keys:
                raise FormatError(
                    f"{zip_path}: {'/'.join(parts[:i])!r} is both a file and a folder in the archive"
                )
    both = sorted(dir_keys & file_keys)
    if both:
        raise FormatError(
            f"{zip_path}: {seen[both[0]]!r} is both a file and a folder in the archive"
        )

    prefix = _project_prefix(zip_path, entries)
    out = BundleContents(total_bytes=0, prefix=prefix)
    strip = len(prefix.split("/")) - 1 if prefix else 0
    inside = []
    for info, parts, is_dir in entries:
        if prefix and parts[0] != prefix[:-1]:
            out.left_out.append(info.filename)
            continue
        rel = "/".join(parts[strip:])
        if rel:
            inside.append((info, rel, is_dir))
    project_info = next(info for info, rel, is_dir in inside if rel == PROJECT_FILE and not is_dir)
    out.project = _read_project(zf, zip_path, project_info)
    expected = _expected_top_level(out.project)
    for info, rel, is_dir in inside:
        if rel.split("/")[0] not in expected:
            out.left_out.append(info.filename)
        elif is_dir:
            out.folders.append(rel)
        else:
            out.files.append((info, rel))
            out.total_bytes += int(info.file_size)
    return out


def _expected_top_level(project: Project) -> set[str]:
    """The names a project folder holds at its top: the model, its autosave, the standard
    folders and the first part of every path the model names (the source image...)."""
    from worldstudio.core.project.store import AUTOSAVE_FILE, project_paths

    names = {PROJECT_FILE, AUTOSAVE_FILE, "scene", "runs", "loras"}
    for _where, rel in project_paths(project):
        names.add(PurePosixPath(rel).parts[0])
    return names


def _project_prefix(zip_path: Path, entries: list[tuple[zipfile.ZipInfo, list[str], bool]]) -> str:
    """'' when project.json is at the top of the archive, 'NAME/' when it is inside exactly
    one top-level folder (``zip -r x.zip demo.wsproj``); other top-level entries are then left
    out (:attr:`BundleContents.left_out`)."""
    files = {"/".join(parts) for _i, parts, is_dir in entries if not is_dir}
    if PROJECT_FILE in files:
        return ""
    tops = sorted({parts[0] for _i, parts, _d in entries if len(parts) > 1})
    holding = [top for top in tops if f"{top}/{PROJECT_FILE}" in files]
    if len(holding) == 1:
        return f"{holding[0]}/"
    if len(holding) > 1:
        shown = ", ".join(holding[:5]) + (", ..." if len(holding) > 5 else "")
        raise FormatError(
            f"{zip_path}: holds several projects ({shown}); a bundle holds one project"
        )
    raise FormatError(
        f"{zip_path}: not a project bundle (no {PROJECT_FILE} at its top or in a top-level folder)"
    )


def _read_project(zf: zipfile.ZipFile, zip_path: Path, info: zipfile.ZipInfo) -> Project:
    if info.file_size > MAX_PROJECT_JSON_BYTES:
        raise FormatError(
            f"{zip_path}: {info.filename} is implausibly large ({human_size(info.file_size)})"
        )
    try:
        data = zf.read(info)
    except (*_CORRUPT, MemoryError) as exc:
        raise FormatError(f"{zip_path}: {info.filename} cannot be read ({_reason(exc)})") from exc
    try:
        return project_from_json(data, f"{zip_path}:{info.filename}")
    except ProjectError as exc:
        raise FormatError(str(exc)) from exc


def human_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def parse_size(text: str) -> int:
    """'4G', '500M', '1024K', '123' (bytes) -> bytes; binary units."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text or "")
    if not m:
        raise WorldStudioError(
            f"--max-size: expected a size such as 4G, 500M or 1000000, got {text!r}"
        )
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise WorldStudioError(f"--max-size: must be positive, got {text!r}")
    return value


def import_bundle(
    zip_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    ctx: JobContext | None = None,
) -> tuple[Project, list[str]]:
    """Unpack a bundle to the new project folder ``out_dir`` (see the module docstring).

    Returns (project, warnings). Raises FormatError for an unsafe or malformed archive and
    WorldStudioError when ``out_dir`` exists and is not empty; nothing is written then.
    """
    ctx = _job(ctx)
    zip_path = Path(zip_path)
    check_target_free(out_dir)
    warnings: list[str] = []
    with _open_zip(zip_path) as zf:
        contents = _check(zf, zip_path, max_total_bytes, max_ratio, max_entries)
        with staged_folder(out_dir) as staging:
            staging.mkdir()
            for rel in contents.folders:
                (staging / rel).mkdir(parents=True, exist_ok=True)
            written = 0
            n = len(contents.files)
            for i, (info, rel) in enumerate(contents.files):
                ctx.check_cancelled()
                written += _extract_one(zf, zip_path, info, staging, rel, max_total_bytes - written)
                ctx.progress(i + 1, n, rel)
            folder = ProjectFolder(staging)
            try:
                project = folder.load()
            except ProjectError as exc:
                raise FormatError(f"{zip_path}: the unpacked project is not valid ({exc})") from exc
            warnings += _missing_files(zip_path, folder, project)
    if contents.left_out:
        shown = ", ".join(contents.left_out[:5]) + (", ..." if len(contents.left_out) > 5 else "")
        warnings.insert(
            0,
            f"{zip_path}: {len(contents.left_out)} entries that are not part of a project were "
            f"left out: {shown}",
        )
    return project, warnings


def import_bundle_job(
    zip_path: str | os.PathLike, out_dir: str | os.PathLike, **caps
) -> Callable[[JobContext], tuple[Project, list[str]]]:
    """:func:`import_bundle` as a job."""
    return lambda ctx: import_bundle(zip_path, out_dir, ctx=ctx, **caps)


def _extract_one(
    zf: zipfile.ZipFile, zip_path: Path, info: zipfile.ZipInfo, root: Path, rel: str, budget: int
) -> int:
    dest = root / PurePosixPath(rel)
    root_abs = os.path.abspath(root)
    if os.path.commonpath([root_abs, os.path.abspath(dest)]) != root_abs:  # belt and braces
        raise FormatError(f"{zip_path}: entry {info.filename!r} leaves the project folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with zf.open(info) as src, open(dest, "xb") as dst:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                count += len(chunk)
                if count > info.file_size or count > budget:
                    raise FormatError(
                        f"{zip_path}: entry {info.filename!r} unpacks to more than it declares "
                        "or than the size cap allows; refusing a possible zip bomb"
                    )
                dst.write(chunk)
    except _CORRUPT as exc:
        raise FormatError(
            f"{zip_path}: entry {info.filename!r} is corrupt ({_reason(exc)})"
        ) from exc
    except FileExistsError as exc:
        raise FormatError(f"{zip_path}: entry {info.filename!r} appears twice") from exc
    return count


def _missing_files(zip_path: Path, folder: ProjectFolder, project: Project) -> list[str]:
    out = []
    refs = []
    if project.source is not None:
        refs.append(("the source image", project.source.file))
    if project.scene is not None and not project.scene.pending:
        refs.append(("the scene's point cloud", project.scene.points_file))
    for what, rel in refs:
        try:
            ok = folder.path(rel).is_file()
        except ProjectError as exc:
            raise FormatError(f"{zip_path}: {exc}") from exc
        if not ok:
            out.append(f"{zip_path}: {what} ({rel}) is not in the bundle")
    return out
