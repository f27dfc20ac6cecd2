"""The clip folder: finding clips, reading captions, sampling frames.

A training folder holds video clips (``.mp4``, ``.mov``, ``.webm``; subfolders are searched,
hidden ones skipped) and their captions, found in this order for each clip:

1. a text file with the clip's name and ``.txt`` next to it (``walk.mp4`` -> ``walk.txt``), whole
   file = the caption (surrounding white space dropped);
2. one captions file in the folder's top level (the first that exists):

   - ``captions.jsonl``: one JSON object a line, ``{"file": "walk.mp4", "caption": "..."}``;
   - ``captions.csv``: a header row with the columns ``file`` and ``caption`` (any order; other
     columns ignored), standard CSV quoting;
   - ``captions.tsv``: ``file<TAB>caption`` a line, no header (a first line ``file<TAB>caption``
     is skipped); lines starting with ``#`` are comments.

   ``file`` is the clip's path relative to the folder (``sub/walk.mp4``) or, when unambiguous,
   its bare file name.

A clip without a caption is an error that lists the clips concerned, unless a default caption is
given (``--caption TEXT``), which is then used for them (``--caption ""`` trains them
unconditioned).

Frames are sampled by timestamp: target frame ``k`` of window ``w`` is the source frame shown at
time ``(w * F + k) / fps`` (``floor(t * source_fps)``), so a 30 fps clip trained at 16 fps keeps
its real speed. Each frame is resized to cover the training size and centre-cropped. Windows do not
overlap; a clip too short for one window, or one that cannot be decoded, is reported by name and
skipped.

No torch here: frames are uint8 numpy arrays.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worldstudio.core.errors import FormatError
from worldstudio.core.training.config import TrainingError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.media import VideoReader

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")
CAPTION_FILES = ("captions.jsonl", "captions.csv", "captions.tsv")


class ClipError(FormatError):
    """A clip that cannot be used (unreadable, too short); the trainer skips it."""


@dataclass(frozen=True)
class Clip:
    path: Path
    rel: str  # path relative to the clip folder, with '/' separators
    caption: str
    caption_source: str  # "txt", a captions file name, or "default"


# --------------------------------------------------------------------------- discovery
def find_clip_files(folder: Path) -> list[Path]:
    """Every video file under ``folder`` (hidden files and folders skipped), sorted by path."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            out.append(p)
    return out


def read_captions_file(folder: Path) -> tuple[dict[str, str], str | None]:
    """(relative path or file name -> caption, the file's name) from the first captions file."""
    for name in CAPTION_FILES:
        path = folder / name
        if path.is_file():
            return _parse_captions(path), name
    return {}, None


def _parse_captions(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"{path}: cannot be read as UTF-8 text ({exc})") from exc
    out: dict[str, str] = {}
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainingError(f"{path}: line {lineno}: not valid JSON ({exc.msg})") from exc
            except (ValueError, RecursionError) as exc:  # 4300+ digit numbers, deep nesting
                raise TrainingError(
                    f"{path}: line {lineno}: not valid JSON ({str(exc)[:100] or 'nested too deeply'})"
                ) from None
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("file"), str)
                or not isinstance(row.get("caption"), str)
            ):
                raise TrainingError(
                    f'{path}: line {lineno}: expected {{"file": "clip.mp4", "caption": "..."}}'
                )
            out[_norm(row["file"])] = row["caption"].strip()
    elif path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "file" not in cols or "caption" not in cols:
            raise TrainingError(f"{path}: the first row must name the columns 'file' and 'caption'")
        reader.fieldnames = cols
        for lineno, row in enumerate(reader, 2):
            if not (row.get("file") or "").strip():
                raise TrainingError(f"{path}: line {lineno}: the 'file' column is empty")
            out[_norm(row["file"])] = (row.get("caption") or "").strip()
    else:  # .tsv
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if "\t" not in line:
                raise TrainingError(f"{path}: line {lineno}: expected file<TAB>caption")
            file, caption = line.split("\t", 1)
            if (
                lineno == 1
                and file.strip().lower() == "file"
                and caption.strip().lower() == "caption"
            ):
                continue
            out[_norm(file)] = caption.strip()
    return out


def _norm(rel: str) -> str:
    rel = rel.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def list_clips(folder: str | Path, default_caption: str | None = None) -> list[Clip]:
    """The clips of ``folder`` with their captions (see the module doc for the formats).

    Raises :class:`TrainingError` when the folder holds no clips, or when clips have no caption
    and no ``default_caption`` is given (the message lists them)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TrainingError(f"--clips: {folder} is not a folder")
    files = find_clip_files(folder)
    if not files:
        raise TrainingError(
            f"--clips: no clips in {folder} (looked for {', '.join(VIDEO_SUFFIXES)} files)"
        )
    table, table_name = read_captions_file(folder)
    by_name: dict[str, list[str]] = {}
    for p in files:
        by_name.setdefault(p.name, []).append(p.relative_to(folder).as_posix())
    clips: list[Clip] = []
    missing: list[str] = []
    for p in files:
        rel = p.relative_to(folder).as_posix()
        txt = p.with_suffix(".txt")
        if txt.is_file():
            try:
                caption = txt.read_text(encoding="utf-8-sig").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise TrainingError(f"{txt}: cannot be read as UTF-8 text ({exc})") from exc
            clips.append(Clip(p, rel, caption, "txt"))
        elif rel in table:
            clips.append(Clip(p, rel, table[rel], table_name or ""))
        elif p.name in table and len(by_name[p.name]) == 1:
            clips.append(Clip(p, rel, table[p.name], table_name or ""))
        elif default_caption is not None:
            clips.append(Clip(p, rel, default_caption.strip(), "default"))
        else:
            missing.append(rel)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise TrainingError(
            f"--clips: {len(missing)} clip(s) in {folder} have no caption: {shown}; add a same-name "
            f".txt next to each clip, list them in {CAPTION_FILES[0]} / {CAPTION_FILES[1]} / "
            f"{CAPTION_FILES[2]}, or give --caption TEXT to use one caption for them"
        )
    return clips


# --------------------------------------------------------------------------- frames
def resize_center_crop(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``frame`` (H, W, 3) uint8 to cover ``width`` x ``height``, then crop the centre."""
    from PIL import Image

    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(frame)
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    resample = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
    img = Image.fromarray(np.ascontiguousarray(frame)).resize((nw, nh), resample)
    left, top = (nw - width) // 2, (nh - height) // 2
    return np.asarray(img.crop((left, top, left + width, top + height)), dtype=np.uint8)


def source_indices(frames: int, fps: float, source_fps: float, window: int = 0) -> list[int]:
    """The source frame index shown at each target timestamp of window ``window``."""
    out = []
    for k in range(frames):
        t = (window * frames + k) / fps
        out.append(int(math.floor(t * source_fps + 1e-6)))
    return out


def _open_reader(path: Path) -> VideoReader:
    from worldstudio.core.media import VideoReader

    try:
        return VideoReader(path)
    except FormatError as exc:
        raise ClipError(f"{path.name}: not a readable video ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    for line in text:
        if line.strip():
            return line.strip()[:200]
    return type(exc).__name__


def decode_windows(
    path: str | Path,
    *,
    frames: int,
    fps: float,
    width: int,
    height: int,
    windows: int = 1,
) -> list[np.ndarray]:
    """Up to ``windows`` non-overlapping windows of ``frames`` frames at ``fps``, each
    (F, height, width, 3) uint8. Raises :class:`ClipError` when the clip cannot be decoded or is
    too short for one window."""
    path = Path(path)
    reader = _open_reader(path)
    try:
        source_fps = reader.fps
        if not math.isfinite(source_fps) or source_fps <= 0:
            raise ClipError(f"{path.name}: the video has no frame rate")
        wanted = [source_indices(frames, fps, source_fps, w) for w in range(windows)]
        needed: dict[int, list[tuple[int, int]]] = {
            i: [] for i in sorted({i for idx in wanted for i in idx})
        }
        for w, idx in enumerate(wanted):
            for k, i in enumerate(idx):
                needed[i].append((w, k))
        last = max(needed)
        out = [np.empty((frames, height, width, 3), np.uint8) for _ in range(windows)]
        filled = [0] * windows
        count = 0
        try:
            for j, frame in enumerate(reader):
                count = j + 1
                if j in needed:
                    small = resize_center_crop(frame, width, height)
                    for w, k in needed[j]:
                        out[w][k] = small
                        filled[w] += 1
                if j >= last:
                    break
        except ClipError:
            raise
        except Exception as exc:
            raise ClipError(
                f"{path.name}: decoding failed after {count} frames ({_first_line(exc)})"
            ) from exc
        complete = [out[w] for w in range(windows) if filled[w] == frames]
        if not complete:
            need_s = (frames - 1) / fps
            raise ClipError(
                f"{path.name}: too short ({count} frames = {count / source_fps:.2f} s at "
                f"{source_fps:g} fps); {frames} frames at {fps:g} fps need {need_s:.2f} s"
            )
        return complete
    finally:
        reader.close()
