"""Named, undoable edits on the project model, all built on :meth:`ProjectDocument.edit`.

Each helper takes the document first and returns the id of what it created where that is useful.
Poses are given as ``position`` (x, y, z) and ``orientation`` (w, x, y, z, the c2w rotation) in the
conventions of docs/CONVENTIONS.md; ``*_from_c2w`` variants take a 4x4 camera-to-world matrix.
Drags pass a ``merge_key`` so a whole drag is one undo step (the caller ends it with
``doc.seal()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from worldstudio.core.geometry.path import keyframe_times as _path_keyframe_times
from worldstudio.core.geometry.transforms import pose_from_matrix
from worldstudio.core.project import Entity, Keyframe, Monitor, Pose, Project, Round
from worldstudio.core.project.model import new_id
from worldstudio.studio.document import ProjectDocument

MIN_TRANSITION = 1e-3  # seconds; a keyframe transition is always > 0


def _pose_from_c2w(c2w) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    position, quat = pose_from_matrix(c2w)
    return tuple(float(v) for v in position), tuple(float(v) for v in quat)  # type: ignore[return-value]


def _kf_index(p: Project, kf_id: str) -> int:
    for i, kf in enumerate(p.camera_path.keyframes):
        if kf.id == kf_id:
            return i
    raise KeyError(f"no keyframe {kf_id!r}")


def _monitor(p: Project, monitor_id: str) -> Monitor:
    return p.monitor(monitor_id)


# ---------------------------------------------------------------------------------- keyframes
def keyframe_times(project: Project) -> list[float]:
    """Seconds from the path's start to each keyframe ([] without keyframes)."""
    if not project.camera_path.keyframes:
        return []
    return _path_keyframe_times(project.camera_path)


def add_keyframe(
    doc: ProjectDocument,
    position: Sequence[float],
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    fov: float | None = None,
    index: int | None = None,
    transition: float | None = None,
) -> str:
    """Insert a keyframe (at the end by default). ``fov`` defaults to the neighbour's."""
    kf_id = new_id("kf")

    def mutate(p: Project) -> None:
        kfs = p.camera_path.keyframes
        at = len(kfs) if index is None else max(0, min(index, len(kfs)))
        ref = kfs[at - 1] if at > 0 else (kfs[0] if kfs else None)
        kwargs: dict[str, Any] = {
            "id": kf_id,
            "position": tuple(float(v) for v in position),
            "orientation": tuple(float(v) for v in orientation),
            "fov": float(fov) if fov is not None else (ref.fov if ref else 60.0),
        }
        if transition is not None:
            kwargs["transition"] = float(transition)
        elif ref is not None:
            kwargs["transition"] = ref.transition
        kfs.insert(at, Keyframe(**kwargs))

    doc.edit("Add keyframe", "path", mutate)
    return kf_id


def add_keyframe_from_c2w(
    doc: ProjectDocument, c2w, fov: float | None = None, index: int | None = None
) -> str:
    position, quat = _pose_from_c2w(c2w)
    return add_keyframe(doc, position, quat, fov, index)


def add_keyframe_at_frame(doc: ProjectDocument, c2w, fov: float, frame: int) -> str:
    """Add a keyframe from a camera pose at timeline ``frame``: inserted between the keyframes
    around that frame, the transitions split so every other keyframe keeps its time."""
    p = doc.project
    fps = p.camera_path.settings.fps
    t = frame / fps
    times = keyframe_times(p)
    kfs = p.camera_path.keyframes
    if not kfs:
        return add_keyframe_from_c2w(doc, c2w, fov)
    position, quat = _pose_from_c2w(c2w)
    at = sum(1 for tk in times if tk < t - 1e-9)
    kf_id = new_id("kf")

    def mutate(q: Project) -> None:
        ks = q.camera_path.keyframes
        if at == 0:
            # Before the first keyframe: the new one becomes the start, the old start follows.
            new = Keyframe(
                id=kf_id,
                position=position,
                orientation=quat,
                fov=fov,
                transition=max(times[0] - t, ks[0].transition, MIN_TRANSITION),
            )
            ks.insert(0, new)
            return
        prev = ks[at - 1]
        t_prev = times[at - 1]
        if at < len(ks):
            t_next = times[at]
            new_tr = max(t_next - t, MIN_TRANSITION)
            prev.transition = max(t - t_prev, MIN_TRANSITION)
        else:
            new_tr = prev.transition
            prev.transition = max(t - t_prev, MIN_TRANSITION)
        ks.insert(
            at,
            Keyframe(
                id=kf_id,
                position=position,
                orientation=quat,
                fov=fov,
                transition=min(new_tr, 3600.0),
                easing=prev.easing,
            ),
        )

    doc.edit("Add keyframe", "path", mutate)
    return kf_id


def move_keyframe(
    doc: ProjectDocument,
    kf_id: str,
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = None,
    fov: float | None = None,
    merge_key: str | None = None,
) -> None:
    """Change a keyframe's pose and/or fov. Pass ``merge_key`` during a drag."""

    def mutate(p: Project) -> None:
        kf = p.camera_path.keyframes[_kf_index(p, kf_id)]
        if position is not None:
            kf.position = tuple(float(v) for v in position)
        if orientation is not None:
            kf.orientation = tuple(float(v) for v in orientation)
        if fov is not None:
            kf.fov = float(fov)

    doc.edit("Move keyframe", "path", mutate, merge_key)


def move_keyframe_c2w(doc: ProjectDocument, kf_id: str, c2w, merge_key: str | None = None) -> None:
    position, quat = _pose_from_c2w(c2w)
    move_keyframe(doc, kf_id, position, quat, merge_key=merge_key)


def set_keyframe(
    doc: ProjectDocument, kf_id: str, merge_key: str | None = None, **fields: Any
) -> None:
    """Set any keyframe fields (position, orientation, fov, transition, easing)."""

    def mutate(p: Project) -> None:
        kf = p.camera_path.keyframes[_kf_index(p, kf_id)]
        for name, value in fields.items():
            setattr(kf, name, value)

    doc.edit("Edit keyframe", "path", mutate, merge_key)


def delete_keyframe(doc: ProjectDocument, kf_id: str) -> None:
    """Remove a keyframe; its neighbours join so later keyframes keep their times."""

    def mutate(p: Project) -> None:
        ks = p.camera_path.keyframes
        i = _kf_index(p, kf_id)
        if 0 < i < len(ks) - 1:
            ks[i - 1].transition = min(ks[i - 1].transition + ks[i].transition, 3600.0)
        del ks[i]

    doc.edit("Delete keyframe", "path", mutate)


def retime_keyframe(
    doc: ProjectDocument, kf_id: str, time_s: float, merge_key: str | None = None
) -> None:
    """Move keyframe ``kf_id`` to ``time_s`` seconds from the path's start, keeping every other
    keyframe where it is in time. It stays strictly between its neighbours; the first keyframe is
    the path's start and does not move."""

    def mutate(p: Project) -> None:
        ks = p.camera_path.keyframes
        i = _kf_index(p, kf_id)
        if i == 0:
            return
        times = keyframe_times(p)
        lo = times[i - 1] + MIN_TRANSITION
        t = max(float(time_s), lo)
        if i < len(ks) - 1:
            hi = times[i + 1] - MIN_TRANSITION
            t = min(t, hi)
            ks[i].transition = max(times[i + 1] - t, MIN_TRANSITION)
        ks[i - 1].transition = min(max(t - times[i - 1], MIN_TRANSITION), 3600.0)

    doc.edit("Retime keyframe", "path", mutate, merge_key)


def retime_keyframe_to_frame(
    doc: ProjectDocument, kf_id: str, frame: float, merge_key: str | None = None
) -> None:
    fps = doc.project.camera_path.settings.fps
    retime_keyframe(doc, kf_id, frame / fps, merge_key)


def replace_keyframes(
    doc: ProjectDocument, keyframes: Iterable[Keyframe], text: str = "Replace path"
) -> None:
    """Swap the whole keyframe list (presets, action strings, recorded flights): one undo step."""
    new = [k.model_copy(deep=True) for k in keyframes]

    def mutate(p: Project) -> None:
        p.camera_path.keyframes = new

    doc.edit(text, "path", mutate)


def set_path_settings(doc: ProjectDocument, merge_key: str | None = None, **fields: Any) -> None:
    def mutate(p: Project) -> None:
        for name, value in fields.items():
            setattr(p.camera_path.settings, name, value)

    doc.edit("Path settings", "path", mutate, merge_key)


# ---------------------------------------------------------------------------------- rounds
def set_scene_text(doc: ProjectDocument, round_index: int, text: str) -> None:
    def mutate(p: Project) -> None:
        p.rounds[round_index].scene_text = text

    doc.edit(f"Edit round {round_index + 1} scene", "rounds", mutate)


def add_round(doc: ProjectDocument, index: int | None = None, scene_text: str | None = None) -> int:
    """Insert a round (after the last by default); it starts with the previous round's scene
    text and entity prompts, which is what a user usually wants to tweak."""
    n = len(doc.project.rounds)
    at = n if index is None else max(0, min(index, n))

    def mutate(p: Project) -> None:
        src = at - 1 if at > 0 else None
        text = (
            scene_text
            if scene_text is not None
            else (p.rounds[src].scene_text if src is not None else "")
        )
        p.rounds.insert(at, Round(scene_text=text))
        for e in p.entities:
            prompts = list(e.prompts)
            if len(prompts) >= at:
                prompts.insert(at, prompts[src] if src is not None and src < len(prompts) else "")
                e.prompts = prompts

    doc.edit("Add round", "rounds", mutate)
    return at


def remove_round(doc: ProjectDocument, index: int) -> None:
    if len(doc.project.rounds) <= 1:
        raise ValueError("a project keeps at least one round")

    def mutate(p: Project) -> None:
        del p.rounds[index]
        for e in p.entities:
            if index < len(e.prompts):
                prompts = list(e.prompts)
                del prompts[index]
                e.prompts = prompts

    doc.edit(f"Remove round {index + 1}", "rounds", mutate)


# ---------------------------------------------------------------------------------- entities
def add_entity(
    doc: ProjectDocument,
    name: str,
    anchor: Sequence[float] | None = None,
    defined_from: Pose | None = None,
    defined_fov: float | None = None,
    prompts: Sequence[str] | None = None,
) -> str:
    ent_id = new_id("ent")

    def mutate(p: Project) -> None:
        p.entities.append(
            Entity(
                id=ent_id,
                name=name,
                anchor=tuple(float(v) for v in anchor) if anchor is not None else None,
                defined_from=defined_from,
                defined_fov=defined_fov,
                prompts=list(prompts or []),
            )
        )

    doc.edit(f"Add entity {name!r}", "entities", mutate)
    return ent_id


def add_entity_object(doc: ProjectDocument, entity: Entity) -> str:
    """Add a ready-made entity (e.g. one made from a SAM 2 mask by
    ``worldstudio.core.reconstruct.segment.entity_from_mask``, whose mask file is already written)."""
    new = entity.model_copy(deep=True)

    def mutate(p: Project) -> None:
        if any(e.id == new.id for e in p.entities):
            raise ValueError(f"an entity {new.id!r} exists already")
        p.entities.append(new)

    doc.edit(f"Add entity {new.name!r}", "entities", mutate)
    return new.id


def rename_entity(doc: ProjectDocument, entity_id: str, name: str) -> None:
    def mutate(p: Project) -> None:
        p.entity(entity_id).name = name

    doc.edit("Rename entity", "entities", mutate)


def set_entity_prompt(doc: ProjectDocument, entity_id: str, round_index: int, text: str) -> None:
    """Set what entity ``entity_id`` does in round ``round_index`` (prompts padded with "")."""

    def mutate(p: Project) -> None:
        e = p.entity(entity_id)
        if not 0 <= round_index < len(p.rounds):
            raise IndexError(f"round {round_index} does not exist")
        prompts = list(e.prompts) + [""] * (round_index + 1 - len(e.prompts))
        prompts[round_index] = text
        while prompts and prompts[-1] == "" and len(prompts) > round_index + 1:
            prompts.pop()
        e.prompts = prompts

    doc.edit("Edit entity prompt", "entities", mutate)


def move_entity_anchor(
    doc: ProjectDocument,
    entity_id: str,
    anchor: Sequence[float] | None,
    merge_key: str | None = None,
) -> None:
    def mutate(p: Project) -> None:
        p.entity(entity_id).anchor = tuple(float(v) for v in anchor) if anchor is not None else None

    doc.edit("Move entity anchor", "entities", mutate, merge_key)


def remove_entity(doc: ProjectDocument, entity_id: str) -> None:
    """Remove an entity and unassign it from every monitor (one undo step)."""

    def mutate(p: Project) -> None:
        # In place, monitors first: assigning p.entities would validate a half-done project.
        for m in p.monitors:
            if entity_id in m.entity_ids:
                m.entity_ids = [x for x in m.entity_ids if x != entity_id]
        p.entities[:] = [e for e in p.entities if e.id != entity_id]

    doc.edit("Remove entity", "all", mutate)


# ---------------------------------------------------------------------------------- monitors
def add_monitor(
    doc: ProjectDocument,
    position: Sequence[float],
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    fov: float = 60.0,
    name: str | None = None,
    entity_ids: Sequence[str] = (),
) -> str:
    mon_id = new_id("mon")

    def mutate(p: Project) -> None:
        label = name or f"Monitor {len(p.monitors) + 1}"
        p.monitors.append(
            Monitor(
                id=mon_id,
                name=label,
                pose=Pose(position=tuple(position), orientation=tuple(orientation)),
                fov=fov,
                entity_ids=list(entity_ids),
            )
        )

    doc.edit("Add monitor", "monitors", mutate)
    return mon_id


def add_monitor_from_c2w(
    doc: ProjectDocument, c2w, fov: float, name: str | None = None, entity_ids: Sequence[str] = ()
) -> str:
    position, quat = _pose_from_c2w(c2w)
    return add_monitor(doc, position, quat, fov, name, entity_ids)


def add_monitor_for_entity(doc: ProjectDocument, entity_id: str) -> str:
    """A monitor where the observer was when the entity was defined (docs/METHOD.md default)."""
    e = doc.project.entity(entity_id)
    pose = e.defined_from or Pose(position=(0.0, 0.0, 0.0))
    fov = e.defined_fov or 60.0
    return add_monitor(doc, pose.position, pose.orientation, fov, f"{e.name} monitor", [entity_id])


def move_monitor(
    doc: ProjectDocument,
    monitor_id: str,
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = None,
    fov: float | None = None,
    merge_key: str | None = None,
) -> None:
    def mutate(p: Project) -> None:
        m = _monitor(p, monitor_id)
        m.pose = Pose(
            position=tuple(position) if position is not None else m.pose.position,
            orientation=tuple(orientation) if orientation is not None else m.pose.orientation,
        )
        if fov is not None:
            m.fov = float(fov)

    doc.edit("Move monitor", "monitors", mutate, merge_key)


def move_monitor_c2w(
    doc: ProjectDocument, monitor_id: str, c2w, merge_key: str | None = None
) -> None:
    position, quat = _pose_from_c2w(c2w)
    move_monitor(doc, monitor_id, position, quat, merge_key=merge_key)


def rename_monitor(doc: ProjectDocument, monitor_id: str, name: str) -> None:
    def mutate(p: Project) -> None:
        _monitor(p, monitor_id).name = name

    doc.edit("Rename monitor", "monitors", mutate)


def set_monitor_enabled(doc: ProjectDocument, monitor_id: str, enabled: bool) -> None:
    def mutate(p: Project) -> None:
        _monitor(p, monitor_id).enabled = bool(enabled)

    doc.edit("Enable monitor" if enabled else "Disable monitor", "monitors", mutate)


def set_monitor_scene_text(doc: ProjectDocument, monitor_id: str, text: str | None) -> None:
    """The scene as the monitor sees it; None or blank: the round's scene text."""
    value = text if text is not None and text.strip() else None

    def mutate(p: Project) -> None:
        _monitor(p, monitor_id).scene_text = value

    doc.edit("Monitor scene text", "monitors", mutate)


def remove_monitor(doc: ProjectDocument, monitor_id: str) -> None:
    def mutate(p: Project) -> None:
        p.monitors[:] = [m for m in p.monitors if m.id != monitor_id]

    doc.edit("Remove monitor", "monitors", mutate)


def assign_entities(doc: ProjectDocument, monitor_id: str, entity_ids: Sequence[str]) -> None:
    """Set which entities a monitor watches (order kept, duplicates dropped)."""
    ids = list(dict.fromkeys(entity_ids))

    def mutate(p: Project) -> None:
        _monitor(p, monitor_id).entity_ids = ids

    doc.edit("Assign entities", "monitors", mutate)


# ---------------------------------------------------------------------------------- project
def rename_project(doc: ProjectDocument, name: str) -> None:
    def mutate(p: Project) -> None:
        p.name = name

    doc.edit("Rename project", "all", mutate)


def set_generation(doc: ProjectDocument, merge_key: str | None = None, **fields: Any) -> None:
    def mutate(p: Project) -> None:
        for name, value in fields.items():
            setattr(p.generation, name, value)

    doc.edit("Generation settings", "generation", mutate, merge_key)
