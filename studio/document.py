"""The open project as a Qt document: the model, its undo stack, selection and playhead.

Widgets never mutate ``document.project``. Every user edit goes through :meth:`ProjectDocument.edit`
(usually via the named helpers in :mod:`worldstudio.studio.commands`), which applies the change to a deep copy,
validates it and pushes an undoable snapshot command. Widgets redraw from :attr:`changed`.

Nothing here imports torch: the point cloud is read with numpy only, the baked path with
numpy-only geometry code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from worldstudio.core.errors import ProjectError
from worldstudio.core.project import Project, ProjectFolder

if TYPE_CHECKING:  # pragma: no cover - typing only
    from worldstudio.core.pointcloud import PointCloud

ASPECTS = ("path", "rounds", "entities", "monitors", "generation", "scene", "all")
SELECTION_KINDS = ("keyframe", "monitor", "entity", "round")

# Every mergeable command shares one Qt id; mergeWith then compares the merge keys.
_MERGE_ID = 0x5753


@dataclass(frozen=True)
class Selection:
    kind: str  # "keyframe", "monitor", "entity" or "round"
    id: str  # the object's id ("round" selections use the round index as a string)

    def __post_init__(self) -> None:
        if self.kind not in SELECTION_KINDS:
            raise ValueError(f"selection kind must be one of {SELECTION_KINDS}, got {self.kind!r}")


def _validated(project: Project) -> Project:
    return Project.model_validate(project.model_dump())


class SnapshotCommand(QUndoCommand):
    """An edit stored as the whole model before and after (projects are small)."""

    def __init__(
        self,
        doc: ProjectDocument,
        text: str,
        aspect: str,
        before: Project,
        after: Project,
        merge_key: str | None,
    ):
        super().__init__(text)
        self.doc = doc
        self.aspect = aspect
        self.before = before
        self.after = after
        self.merge_key = merge_key

    def id(self) -> int:
        return _MERGE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, SnapshotCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        if other.aspect != self.aspect:
            self.aspect = "all"
        # Back where it started (a drag or a G cancelled): the stack drops the command.
        self.setObsolete(self.after == self.before)
        return True

    def redo(self) -> None:
        self.doc._apply(self.after, self.aspect)

    def undo(self) -> None:
        self.doc._apply(self.before, self.aspect)


class ProjectDocument(QObject):
    changed = Signal(str)
    selection_changed = Signal(object)
    playhead_changed = Signal(int)

    def __init__(
        self,
        project: Project | None = None,
        folder: str | Path | None = None,
        cloud: PointCloud | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.project: Project = project if project is not None else Project()
        self.folder: Path | None = Path(folder) if folder is not None else None
        self.cloud = cloud
        self.undo_stack = QUndoStack(self)
        self.selection: Selection | None = None
        self.playhead: int = 0
        self._baked: Any = None
        self._seal_serial = itertools.count()
        self._seal = next(self._seal_serial)
        self.undo_stack.setClean()

    # ------------------------------------------------------------------ open / save
    def reset(
        self, project: Project, folder: str | Path | None = None, cloud: PointCloud | None = None
    ) -> None:
        """Make this document show another project (File > Open): a fresh undo history, no
        selection, the playhead at 0; emits ``changed("all")`` (the cloud may have changed too)."""
        self.undo_stack.clear()
        self.project = project
        self.folder = Path(folder) if folder is not None else None
        self.cloud = cloud
        self._baked = None
        self.set_selection(None)
        self.playhead = 0
        self.undo_stack.setClean()
        self.changed.emit("all")
        self.playhead_changed.emit(0)

    def load(self, folder: str | Path) -> None:
        """Read a project folder into this document (see :meth:`reset`)."""
        pf = ProjectFolder(folder)
        project = pf.load()
        self.reset(project, pf.root, pf.read_cloud(project, missing_ok=True))

    @classmethod
    def open(cls, folder: str | Path, parent: QObject | None = None) -> ProjectDocument:
        pf = ProjectFolder(folder)
        project = pf.load()
        return cls(project, pf.root, pf.read_cloud(project, missing_ok=True), parent)

    def save(self, folder: str | Path | None = None) -> Path:
        """Write project.json to ``folder`` (or the current one); marks the document clean.

        Saving to a new folder ("Save As") copies the project's files (source image, scene) so the
        new folder is a complete project."""
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise ProjectError("this project has no folder yet: choose one with Save As")
        if self.folder is not None:
            ProjectFolder(self.folder).save_as(self.project, target)
        else:
            ProjectFolder(target).save(self.project)
        self.folder = target
        self.undo_stack.setClean()
        return target

    @property
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def name(self) -> str:
        return self.project.name

    # ------------------------------------------------------------------ edits
    def edit(
        self,
        text: str,
        aspect: str,
        mutate: Callable[[Project], None],
        merge_key: str | None = None,
    ) -> None:
        """Apply ``mutate`` to a copy of the project and push it as one undoable step.

        Raises whatever ``mutate`` raises, or pydantic's ValidationError when the result is not a
        valid project; the document is unchanged in both cases."""
        if aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {ASPECTS}, got {aspect!r}")
        work = self.project.model_copy(deep=True)
        mutate(work)
        after = _validated(work)
        if after == self.project:
            return
        key = None if merge_key is None else f"{self._seal}:{merge_key}"
        self.undo_stack.push(SnapshotCommand(self, text, aspect, self.project, after, key))

    def revert(self, merge_key: str) -> bool:
        """Take back the edits merged under ``merge_key`` since the last :meth:`seal` (a
        cancelled drag or G / R): the model is again exactly what it was and no undo step is
        left. False when the last step is not such an edit (nothing to take back)."""
        key = f"{self._seal}:{merge_key}"
        i = self.undo_stack.index()
        top = self.undo_stack.command(i - 1) if i > 0 else None
        if not isinstance(top, SnapshotCommand) or top.merge_key != key:
            return False
        self.undo_stack.push(
            SnapshotCommand(self, top.text(), top.aspect, self.project, top.before, key)
        )
        return True

    def seal(self) -> None:
        """End the current merge run: the next edit starts a new undo step even when its merge key
        equals the previous one (call at the end of a drag)."""
        self._seal = next(self._seal_serial)

    def replace_project(self, project: Project, text: str = "Replace project") -> None:
        """Swap in a whole new model as one undoable step (used by recovery and imports)."""
        after = _validated(project)
        self.undo_stack.push(SnapshotCommand(self, text, "all", self.project, after, None))

    def _apply(self, project: Project, aspect: str) -> None:
        self.project = project
        if aspect in ("path", "all", "generation", "rounds"):
            self._baked = None
        self._fix_selection()
        total = max(self.frame_count() - 1, 0)
        if self.playhead > total:
            self.set_playhead(total)
        self.changed.emit(aspect)

    def _fix_selection(self) -> None:
        sel = self.selection
        if sel is None:
            return
        p = self.project
        alive = {
            "keyframe": lambda: any(k.id == sel.id for k in p.camera_path.keyframes),
            "monitor": lambda: any(m.id == sel.id for m in p.monitors),
            "entity": lambda: any(e.id == sel.id for e in p.entities),
            "round": lambda: sel.id.isdigit() and int(sel.id) < len(p.rounds),
        }[sel.kind]()
        if not alive:
            self.set_selection(None)

    # ------------------------------------------------------------------ selection / playhead
    def set_selection(self, sel: Selection | None) -> None:
        if sel == self.selection:
            return
        self.selection = sel
        self.selection_changed.emit(sel)

    def set_playhead(self, frame: int) -> None:
        frame = int(max(0, min(int(frame), max(self.frame_count() - 1, 0))))
        if frame == self.playhead:
            return
        self.playhead = frame
        self.playhead_changed.emit(frame)

    # ------------------------------------------------------------------ derived data
    def baked(self):
        """The camera path baked to one pose per frame at the path's fps, exactly as the geometry
        preview renders it (cached until the path changes). Raises what ``bake_path`` raises for
        a path it cannot bake (e.g. no keyframes); see :meth:`pose_at` for a safe lookup."""
        if self._baked is None:
            from worldstudio.core.geometry.path import bake_path

            self._baked = bake_path(self.project.camera_path)
        return self._baked

    def path_frames(self) -> int:
        """Frames on the baked path (0 without keyframes or while the path cannot be baked)."""
        if not self.project.camera_path.keyframes:
            return 0
        try:
            return len(self.baked().c2w)
        except Exception:  # noqa: BLE001 - an unbakeable path simply has no frames
            return 0

    def frame_count(self) -> int:
        """Frames on the timeline: the video (rounds x frames per round) or the path if longer."""
        return max(self.project.total_frames, self.path_frames())

    def pose_at(self, frame: int):
        """(c2w (4, 4), vertical fov) of the path camera at ``frame`` (held at the ends), or None
        when there is no path."""
        n = self.path_frames()
        if n == 0:
            return None
        baked = self.baked()
        i = max(0, min(int(frame), n - 1))
        return baked.c2w[i], float(baked.fov[i])

    def round_of_frame(self, frame: int) -> int:
        f = self.project.generation.frames_per_round
        return min(max(frame, 0) // f, len(self.project.rounds) - 1)

    def keyframe_frames(self) -> list[int]:
        """The output frame of each keyframe, in keyframe order (empty without a path)."""
        if not self.project.camera_path.keyframes:
            return []
        try:
            return [int(f) for f in self.baked().keyframe_frames]
        except Exception:  # noqa: BLE001 - a path the baker refuses still shows its keyframes
            return []
