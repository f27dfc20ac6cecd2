"""project.json as an attacker writes it: every parser failure is a ProjectError naming the
file, no NaN or Infinity anywhere in the model, integers of sane size, every path inside the
project folder, and keyframe ids that never collide."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from worldstudio.core.errors import ProjectError
from worldstudio.core.project import CameraPath, Keyframe, Project, ProjectFolder
from worldstudio.core.project.model import _Model, new_id
from worldstudio.core.project.store import project_from_json, project_paths


def _valid() -> dict:
    return json.loads(Project().model_dump_json())


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,  # RecursionError in the parser
        '{"schema_version": 2, "name": ' + "1" * 5000 + "}",  # more than 4300 digits
        '{"schema_version": 2, "generation": {"fps": ' + "1" * 400 + "}}",
        '{"schema_version": 2, "generation": {"seed": ' + "9" * 30 + "}}",
        '{"schema_version": 1, "generation": "abc"}',
        '{"schema_version": 1, "camera_path": {"keyframes": [1]}}',
        '{"schema_version": 1, "prompts": 5}',
        '{"schema_version": 1, "generation": {"resolution": 5}}',
        '{"schema_version": true}',
        '{"schema_version": ' + "9" * 40 + "}",
        '{"schema_version": 2, "camera_path": {"keyframes": [], "settings": {"look_at": [NaN, 0, 0]}}}',
        '{"schema_version": 2, "camera_path": {"keyframes": [], "settings": {"look_at": [1e400, 0, 0]}}}',
        '{"schema_version": 2, "entities": [{"name": "a", "anchor": [0, Infinity, 0]}]}',
        '{"schema_version": 2, "generation": {"guidance": NaN}}',
        '{"schema_version": 2, "name": "a\\ud800b"}',  # a lone surrogate cannot be saved
        '{"schema_version": 2, "rounds": [{"scene_text": "\\udfff"}]}',
    ],
)
def test_parser_failures_are_project_errors(text):
    with pytest.raises(ProjectError) as exc:
        project_from_json(text, "p/project.json")
    assert _one_line(exc).startswith("p/project.json")


def test_huge_orientation_is_normalised_not_zeroed():
    kf = Keyframe(position=(0, 0, 0), orientation=(1e300, 1e300, 0, 0))
    assert kf.orientation == pytest.approx((0.5**0.5, 0.5**0.5, 0, 0))


def test_bytes_that_are_not_utf8(tmp_path):
    (tmp_path / "project.json").write_bytes(b'{"schema_version": 2, "name": "\xff\xfe"}')
    with pytest.raises(ProjectError, match="not UTF-8"):
        ProjectFolder(tmp_path).load()


def test_project_json_must_be_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "project.json")  # would block a plain open() forever
    with pytest.raises(ProjectError, match="not a regular file"):
        ProjectFolder(tmp_path).load()


def test_no_nan_or_infinity_anywhere_even_by_assignment():
    p = Project()
    with pytest.raises(ValidationError):
        p.camera_path.settings.look_at = (0.0, float("nan"), 0.0)
    with pytest.raises(ValidationError):
        p.generation.guidance = float("inf")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("entities", 0, "mask_file"), "/etc/passwd"),
        (("scene", "depth_file"), "../../outside.npy"),
        (("scene", "points_file"), "scene/../../../x.ply"),
        (("source", "file"), "C:\\Windows\\x.png"),
        (("source", "file"), "~/x.png"),
        (("scene", "depth_file"), ""),
        (("entities", 0, "mask_file"), "scene/\x00.png"),
    ],
)
def test_every_path_field_stays_inside(where, value):
    raw = _valid()
    raw["scene"] = {"points_file": "scene/points.ply"}
    raw["source"] = {"file": "source.png", "height": 4, "width": 4}
    raw["entities"] = [{"name": "ball", "mask_file": "scene/masks/ball.png"}]
    target = raw
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(ProjectError) as exc:
        project_from_json(json.dumps(raw))
    assert ".".join(str(w) for w in where).replace(".0.", "[0].") in _one_line(exc)


def test_path_fields_are_found_by_name_also_in_new_models():
    class Thumbnail(_Model):  # a model added later: its path field is checked without a list
        image_file: str
        note: str = ""

    Thumbnail(image_file="scene/thumb.png", note="/not/a/path/field")
    with pytest.raises(ValidationError, match="relative path inside"):
        Thumbnail(image_file="/etc/shadow")


def test_a_symbolic_link_out_of_the_folder_is_refused_at_load(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "p"
    root.mkdir()
    (root / "scene").symlink_to(outside)
    raw = _valid()
    raw["scene"] = {"points_file": "scene/points.ply", "depth_file": "scene/depth.npy"}
    (root / "project.json").write_text(json.dumps(raw))
    with pytest.raises(ProjectError, match="leads outside the project folder"):
        ProjectFolder(root).load()


def test_project_paths_lists_every_path_field():
    raw = _valid()
    raw["scene"] = {"points_file": "scene/points.ply", "depth_file": "scene/depth.npy"}
    raw["source"] = {"file": "source.png", "height": 4, "width": 4}
    raw["entities"] = [{"name": "a", "mask_file": "scene/masks/a.png"}, {"name": "b"}]
    found = dict(project_paths(project_from_json(json.dumps(raw))))
    assert found == {
        "source.file": "source.png",
        "scene.points_file": "scene/points.ply",
        "scene.depth_file": "scene/depth.npy",
        "entities[0].mask_file": "scene/masks/a.png",
    }


def test_keyframe_ids_never_collide_on_long_paths():
    ids = {new_id("kf") for _ in range(200_000)}
    assert len(ids) == 200_000
    path = CameraPath(keyframes=[Keyframe(position=(float(i), 0, 0)) for i in range(25_000)])
    assert len({k.id for k in path.keyframes}) == 25_000


def test_a_forked_child_draws_other_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids must differ from the parent's next ones
        os.write(write, new_id("kf").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child != new_id("kf")
