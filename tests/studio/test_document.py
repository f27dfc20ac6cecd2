"""The document and its commands: snapshots, undo/redo, merging, validation, save/reopen."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worldstudio.core.project import Entity, Keyframe, Monitor, Pose, Project, Round
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection


def make_project() -> Project:
    p = Project(name="doc test", rounds=[Round(scene_text="one"), Round(scene_text="two")])
    p.camera_path.keyframes = [
        Keyframe(id="kf-a", position=(0.0, 0.0, 0.0), transition=1.0),
        Keyframe(id="kf-b", position=(1.0, 0.0, 0.0), transition=2.0),
        Keyframe(id="kf-c", position=(2.0, 0.0, 0.0), transition=1.0),
    ]
    p.entities = [Entity(id="ent-a", name="dog", prompts=["sits", "runs"])]
    p.monitors = [
        Monitor(id="mon-a", name="watch", pose=Pose(position=(0.0, 0.0, 0.0)), entity_ids=["ent-a"])
    ]
    return p


@pytest.fixture
def doc(qapp):
    return ProjectDocument(make_project())


def test_edit_is_undoable_and_emits_its_aspect(doc):
    seen = []
    doc.changed.connect(seen.append)
    before = doc.project
    commands.set_scene_text(doc, 0, "a new scene")
    assert doc.project.rounds[0].scene_text == "a new scene"
    assert before.rounds[0].scene_text == "one", "the old model is never mutated in place"
    assert doc.is_modified
    doc.undo_stack.undo()
    assert doc.project.rounds[0].scene_text == "one"
    assert not doc.is_modified
    doc.undo_stack.redo()
    assert doc.project.rounds[0].scene_text == "a new scene"
    assert seen == ["rounds", "rounds", "rounds"]


def test_merge_key_makes_a_drag_one_step_and_seal_ends_it(doc):
    for x in range(5):
        commands.move_keyframe(doc, "kf-b", position=(1.0, 0.0, float(x)), merge_key="drag")
    assert doc.undo_stack.count() == 1
    doc.seal()
    commands.move_keyframe(doc, "kf-b", position=(9.0, 0.0, 0.0), merge_key="drag")
    assert doc.undo_stack.count() == 2
    doc.undo_stack.undo()
    assert doc.project.camera_path.keyframe("kf-b").position == (1.0, 0.0, 4.0)
    doc.undo_stack.undo()
    assert doc.project.camera_path.keyframe("kf-b").position == (1.0, 0.0, 0.0)


def test_invalid_edit_is_refused_and_changes_nothing(doc):
    with pytest.raises(ValidationError):
        commands.set_keyframe(doc, "kf-a", fov=500.0)
    with pytest.raises(ValueError):
        commands.set_generation(doc, frames_per_round=64)
    assert doc.undo_stack.count() == 0
    assert doc.project == make_project()


def test_no_op_edit_pushes_nothing(doc):
    commands.set_scene_text(doc, 0, "one")
    assert doc.undo_stack.count() == 0


def test_selection_is_cleared_when_its_object_goes_away(doc):
    doc.set_selection(Selection("keyframe", "kf-b"))
    cleared = []
    doc.selection_changed.connect(cleared.append)
    commands.delete_keyframe(doc, "kf-b")
    assert doc.selection is None and cleared == [None]
    doc.undo_stack.undo()
    assert [k.id for k in doc.project.camera_path.keyframes] == ["kf-a", "kf-b", "kf-c"]


def test_playhead_is_clamped_and_baked_path_is_cached(doc):
    n = doc.frame_count()
    doc.set_playhead(10_000)
    assert doc.playhead == n - 1
    doc.set_playhead(-5)
    assert doc.playhead == 0
    baked = doc.baked()
    assert doc.baked() is baked
    assert doc.keyframe_frames() == [0, 16, 48]
    commands.retime_keyframe(doc, "kf-b", 0.5)
    assert doc.baked() is not baked
    assert doc.keyframe_frames() == [0, 8, 48], "the other keyframes keep their times"


def test_keyframe_commands_keep_other_keyframes_in_time(doc):
    times = commands.keyframe_times(doc.project)
    assert times == [0.0, 1.0, 3.0]
    commands.delete_keyframe(doc, "kf-b")
    assert commands.keyframe_times(doc.project) == [0.0, 3.0]
    doc.undo_stack.undo()
    kf = commands.add_keyframe_at_frame(doc, _pose(5.0), 50.0, frame=32)  # 2 s at 16 fps
    ids = [k.id for k in doc.project.camera_path.keyframes]
    assert ids == ["kf-a", "kf-b", kf, "kf-c"]
    assert commands.keyframe_times(doc.project) == pytest.approx([0.0, 1.0, 2.0, 3.0])
    commands.retime_keyframe(doc, "kf-c", 100.0)  # the last keyframe may move later
    assert commands.keyframe_times(doc.project)[-1] == pytest.approx(100.0)
    commands.retime_keyframe(doc, "kf-b", 50.0)  # clamped before its next neighbour
    t = commands.keyframe_times(doc.project)
    assert t[1] < t[2] == pytest.approx(2.0)


def _pose(x: float):
    import numpy as np

    m = np.eye(4)
    m[0, 3] = x
    return m


def test_rounds_keep_entity_prompts_aligned(doc):
    at = commands.add_round(doc, 1)
    assert at == 1
    assert [r.scene_text for r in doc.project.rounds] == ["one", "one", "two"]
    assert doc.project.entities[0].prompts == ["sits", "sits", "runs"]
    commands.set_entity_prompt(doc, "ent-a", 1, "stands up")
    commands.remove_round(doc, 0)
    assert doc.project.entities[0].prompts == ["stands up", "runs"]
    commands.remove_round(doc, 0)
    with pytest.raises(ValueError, match="at least one round"):
        commands.remove_round(doc, 0)


def test_entities_and_monitors(doc):
    eid = commands.add_entity(doc, "cat", anchor=(1, 2, 3))
    mid = commands.add_monitor(doc, (0, 0, 1), entity_ids=[eid])
    commands.assign_entities(doc, mid, [eid, "ent-a", eid])
    assert doc.project.monitor(mid).entity_ids == [eid, "ent-a"]
    commands.remove_entity(doc, eid)  # also unassigned, in one step
    assert doc.project.monitor(mid).entity_ids == ["ent-a"]
    doc.undo_stack.undo()
    assert doc.project.monitor(mid).entity_ids == [eid, "ent-a"]
    commands.rename_entity(doc, eid, "kitten")
    commands.set_monitor_enabled(doc, mid, False)
    assert doc.project.entity(eid).name == "kitten" and not doc.project.monitor(mid).enabled
    mon2 = commands.add_monitor_for_entity(doc, "ent-a")
    assert doc.project.monitor(mon2).entity_ids == ["ent-a"]
    commands.remove_monitor(doc, mon2)
    assert all(m.id != mon2 for m in doc.project.monitors)


def test_save_and_reopen_round_trip(doc, tmp_path):
    commands.set_scene_text(doc, 1, "changed")
    doc.save(tmp_path / "p.wsproj")
    assert not doc.is_modified
    again = ProjectDocument.open(tmp_path / "p.wsproj")
    assert again.project.model_dump() == doc.project.model_dump()
    assert again.cloud is None
