"""The project model: validation, round trip, migration, clear errors, atomic saves."""

from __future__ import annotations

import json
import os

import pytest

from worldstudio.core.errors import ProjectError
from worldstudio.core.project import (
    SCHEMA_VERSION,
    Entity,
    GenerationSettings,
    Keyframe,
    Monitor,
    Pose,
    Project,
    ProjectFolder,
    Round,
    load_project,
    save_project,
)
from worldstudio.core.project.model import WAN_NEGATIVE_PROMPT
from worldstudio.core.project.store import project_from_json, project_to_json


def full_project() -> Project:
    ball = Entity(name="ball", anchor=(0.0, 1.1, 5.0), prompts=["rolls left", "rolls back"])
    return Project(
        name="room",
        camera_path={
            "keyframes": [
                Keyframe(position=(0, 0, 0), fov=55, transition=2.0),
                Keyframe(position=(1, 0, 0.5), orientation=(0.9, 0, 0.3, 0), easing="ease_in_out"),
            ],
            "settings": {"fps": 16, "tension": 0.25, "loop": False, "look_at": (0, 1, 5)},
        },
        rounds=[Round(scene_text="a quiet room"), Round(scene_text="the light dims")],
        entities=[ball],
        monitors=[Monitor(name="watcher", pose=Pose(position=(0, 0, 0)), entity_ids=[ball.id])],
    )


def test_round_trip_through_folder_is_identical(tmp_path):
    project = full_project()
    save_project(project, tmp_path / "p.wsproj")
    again = load_project(tmp_path / "p.wsproj")
    assert again == project
    assert again.model_dump() == project.model_dump()
    # the folder layout of docs/FORMATS.md
    for d in ("scene", "runs", "loras"):
        assert (tmp_path / "p.wsproj" / d).is_dir()


def test_quaternions_are_normalised_and_finite():
    kf = Keyframe(position=(0, 0, 0), orientation=(2, 0, 0, 0))
    assert kf.orientation == (1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="must not be zero"):
        Keyframe(position=(0, 0, 0), orientation=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="finite"):
        Keyframe(position=(float("nan"), 0, 0))


@pytest.mark.parametrize("frames", [65, 5, 9, 81])
def test_frames_per_round_accepts_4k_plus_1(frames):
    assert GenerationSettings(frames_per_round=frames).frames_per_round == frames


@pytest.mark.parametrize("frames", [64, 4, 1, 0, 66])
def test_frames_per_round_rejects_others(frames):
    with pytest.raises(ValueError, match="4k\\+1"):
        GenerationSettings(frames_per_round=frames)


def test_defaults_follow_the_method():
    gen = GenerationSettings()
    assert (gen.width, gen.height, gen.fps, gen.frames_per_round) == (832, 480, 16, 65)
    assert Project(rounds=[Round(), Round()]).total_frames == 130


def test_monitor_must_watch_known_entities():
    with pytest.raises(ValueError, match="unknown entities"):
        Project(
            monitors=[Monitor(name="m", pose=Pose(position=(0, 0, 0)), entity_ids=["ent-nope"])]
        )


def test_broken_json_names_file_and_position(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.json").write_text('{"schema_version": 2, "name": ')
    with pytest.raises(ProjectError, match=r"project\.json: not valid JSON \(line 1"):
        load_project(folder)


def test_invalid_field_names_file_and_field(tmp_path):
    raw = json.loads(project_to_json(full_project()))
    raw["camera_path"]["keyframes"][1]["fov"] = 500
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.json").write_text(json.dumps(raw))
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.json" in str(err.value)
    assert "camera_path.keyframes[1].fov" in str(err.value)


def test_unknown_keys_are_errors():
    raw = json.loads(project_to_json(full_project()))
    raw["generation"]["stepz"] = 3
    with pytest.raises(ProjectError, match="generation.stepz"):
        project_from_json(json.dumps(raw))


def test_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(ProjectError, match="no such project folder"):
        load_project(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="no project.json"):
        load_project(tmp_path / "empty")


def test_newer_schema_is_refused_clearly():
    with pytest.raises(ProjectError, match="newer than this studio"):
        project_from_json('{"schema_version": 99}')


def test_migration_from_version_1():
    v1 = {
        "schema_version": 1,
        "name": "old",
        "prompts": ["a room", "a darker room"],
        "generation": {"resolution": "640x368", "frames_per_round": 33},
        "camera_path": {"keyframes": [{"position": [0, 0, 0], "duration": 3.0}]},
    }
    project = project_from_json(json.dumps(v1))
    assert project.schema_version == SCHEMA_VERSION  # on through every later version
    assert [r.scene_text for r in project.rounds] == ["a room", "a darker room"]
    assert (project.generation.width, project.generation.height) == (640, 368)
    assert project.camera_path.keyframes[0].transition == 3.0


def test_migration_from_version_2_gives_the_conditioning_defaults():
    v2 = {
        "schema_version": 2,
        "name": "v2",
        "generation": {"backend": "wan-vace", "steps": 12},
        "monitors": [{"id": "m", "name": "m", "pose": {"position": [0, 0, 0]}}],
    }
    project = project_from_json(json.dumps(v2))
    assert project.schema_version == 3 == SCHEMA_VERSION
    g = project.generation
    assert g.steps == 12 and (g.observer_strength, g.monitor_strength) == (1.0, 0.4)
    assert g.negative_prompt == WAN_NEGATIVE_PROMPT and g.negative_prompt.startswith("色调艳丽")
    assert g.flow_shift is None and g.context_frames is None and g.prompt_entities == "visible"
    assert project.monitors[0].scene_text is None
    # written back as version 3, and read again unchanged
    again = project_from_json(project_to_json(project))
    assert again == project
    with pytest.raises(ProjectError, match="prompt_entities"):
        project_from_json(json.dumps({**v2, "generation": {"prompt_entities": "some"}}))


def test_migration_error_names_the_field():
    with pytest.raises(ProjectError, match="generation.resolution"):
        project_from_json('{"schema_version": 1, "generation": {"resolution": "big"}}')


def test_exception_mid_save_leaves_old_project_intact(tmp_path, monkeypatch):
    folder = ProjectFolder(tmp_path / "p")
    old = full_project()
    folder.save(old)
    before = folder.project_file.read_bytes()

    new = old.model_copy(update={"name": "changed"})

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ProjectError, match="No space left on device"):
        folder.save(new)
    monkeypatch.undo()
    assert folder.project_file.read_bytes() == before
    assert load_project(folder.root) == old
    leftovers = [p.name for p in folder.root.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_paths_cannot_leave_the_project(tmp_path):
    folder = ProjectFolder(tmp_path)
    with pytest.raises(ProjectError, match="inside the project"):
        folder.path("../outside.ply")
    with pytest.raises(ProjectError, match="inside the project"):
        folder.path("/etc/passwd")
    assert folder.path("scene/points.ply") == tmp_path / "scene" / "points.ply"
