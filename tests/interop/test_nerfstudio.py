"""nerfstudio camera paths: export, import, round trips, malformed files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldstudio.core.errors import FormatError, WorldStudioError
from worldstudio.core.geometry.path import bake_path, keyframe_pose
from worldstudio.core.geometry.transforms import opencv_to_opengl
from worldstudio.core.interop.nerfstudio import (
    export_nerfstudio,
    import_nerfstudio,
    nerfstudio_dict,
    read_nerfstudio,
)
from worldstudio.core.project import CameraPath, PathSettings, ProjectFolder

from .helpers import keyframe, make_project, smooth_trajectory


def varied_keyframes():
    return [
        keyframe((0, 0, 0), 0, 0, 50, 0.5, kid="kf-a"),
        keyframe((0.4, -0.1, 0.6), 25, -4, 60, 1.25, easing="ease_in", kid="kf-b"),
        keyframe((-0.3, -0.2, 1.4), -30, 6, 40, 0.5, kid="kf-c"),
        keyframe((0.2, 0.1, 2.0), 10, 0, 55, 0.75, kid="kf-d"),
    ]


@pytest.fixture
def src(tmp_path):
    make_project(tmp_path / "src", keyframes=varied_keyframes())
    return tmp_path / "src"


def test_export_layout_and_axes(tmp_path, src):
    out, warnings = export_nerfstudio(src, tmp_path / "cp.json")
    data = json.loads(out.read_text())
    project = ProjectFolder(src).load()
    kfs = project.camera_path.keyframes
    assert data["camera_type"] == "perspective"
    assert (data["render_width"], data["render_height"], data["fps"]) == (160, 96, 16)
    assert data["is_cycle"] is False and data["smoothness_value"] == 0.0
    assert data["default_fov"] == 50.0
    baked = bake_path(project.camera_path)
    assert len(data["camera_path"]) == len(baked)
    assert data["seconds"] == pytest.approx(len(baked) / 16)
    for kf, entry in zip(kfs, data["keyframes"], strict=True):
        m = np.array(entry["matrix"]).reshape(4, 4)  # row-major
        np.testing.assert_allclose(m[:3, 3], kf.position)
        cv = keyframe_pose(kf)
        np.testing.assert_allclose(m[:3, 0], cv[:3, 0], atol=1e-12)  # x kept
        np.testing.assert_allclose(m[:3, 1:3], -cv[:3, 1:3], atol=1e-12)  # y and z flipped
        assert entry["fov"] == kf.fov and entry["aspect"] == pytest.approx(160 / 96)
    # nerfstudio stores the time INTO keyframe i; the studio the time OUT of it
    assert [k["override_transition_sec"] for k in data["keyframes"]] == [0.75, 0.5, 1.25, 0.5]
    assert data["default_transition_sec"] == 0.5
    assert [k["override_transition_enabled"] for k in data["keyframes"]] == [
        True,
        False,
        True,
        False,
    ]
    first = np.array(data["camera_path"][0]["camera_to_world"]).reshape(4, 4)
    np.testing.assert_allclose(first, opencv_to_opengl(baked.c2w[0]), atol=1e-12)
    assert any("easing" in w for w in warnings)


def test_round_trip_keeps_keyframes_and_baked_path(tmp_path, src):
    export_nerfstudio(src, tmp_path / "cp.json")
    make_project(tmp_path / "dst", keyframes=[keyframe((5, 5, 5))])
    project, warnings = import_nerfstudio(tmp_path / "cp.json", tmp_path / "dst")
    original = ProjectFolder(src).load().camera_path
    assert ProjectFolder(tmp_path / "dst").load().camera_path == project.camera_path
    for a, b in zip(original.keyframes, project.camera_path.keyframes, strict=True):
        assert np.max(np.abs(keyframe_pose(a) - keyframe_pose(b))) < 1e-5
        assert (a.fov, a.transition, a.easing, a.id) == pytest.approx(
            (b.fov, b.transition, b.easing, b.id)
        )
    b1, b2 = bake_path(original), bake_path(project.camera_path)
    assert np.max(np.abs(b1.c2w - b2.c2w)) < 1e-5
    assert np.max(np.abs(b1.fov - b2.fov)) < 1e-5
    assert not any("differs" in w for w in warnings)
    export_nerfstudio(tmp_path / "dst", tmp_path / "cp2.json")
    d1, d2 = (json.loads((tmp_path / n).read_text()) for n in ("cp.json", "cp2.json"))
    for e1, e2 in zip(d1["camera_path"], d2["camera_path"], strict=True):
        assert np.max(np.abs(np.subtract(e1["camera_to_world"], e2["camera_to_world"]))) < 1e-5


def test_loop_tension_and_look_at_survive_the_round_trip(tmp_path):
    kfs = varied_keyframes()
    make_project(tmp_path / "p", keyframes=kfs)
    folder = ProjectFolder(tmp_path / "p")
    project = folder.load()
    project.camera_path.settings = PathSettings(
        fps=24, tension=-0.4, loop=True, look_at=(0.0, 0.5, 6.0)
    )
    folder.save(project)
    data, warnings = nerfstudio_dict(project)
    assert data["is_cycle"] is True and data["smoothness_value"] == 0.0 and data["fps"] == 24
    assert any("tension" in w for w in warnings) and any("look-at" in w for w in warnings)
    (tmp_path / "cp.json").write_text(json.dumps(data))
    path, _ = read_nerfstudio(tmp_path / "cp.json")
    assert path.settings == project.camera_path.settings
    assert np.max(np.abs(bake_path(path).c2w - bake_path(project.camera_path).c2w)) < 1e-5


def test_a_plain_nerfstudio_file_imports(tmp_path):
    """As nerfstudio's viewer writes it: no extension, OpenGL row-major, into-transitions."""
    R = np.eye(4)
    R[:3, 3] = (1.0, 2.0, 3.0)
    gl = opencv_to_opengl(R)
    data = {
        "default_fov": 75.0,
        "default_transition_sec": 2.0,
        "keyframes": [
            {
                "matrix": np.eye(4).reshape(16).tolist(),
                "fov": 75.0,
                "aspect": 1.5,
                "override_transition_enabled": False,
                "override_transition_sec": None,
            },
            {
                "matrix": gl.reshape(16).tolist(),
                "fov": 60.0,
                "aspect": 1.5,
                "override_transition_enabled": True,
                "override_transition_sec": 3.0,
            },
        ],
        "camera_type": "perspective",
        "render_height": 480,
        "render_width": 720,
        "fps": 30,
        "seconds": 3.0,
        "is_cycle": False,
        "smoothness_value": 0.5,
        "camera_path": [],
    }
    (tmp_path / "cp.json").write_text(json.dumps(data))
    path, warnings = read_nerfstudio(tmp_path / "cp.json")
    a, b = path.keyframes
    np.testing.assert_allclose(
        keyframe_pose(a), opencv_to_opengl(np.eye(4)), atol=1e-12
    )  # GL identity = cam looking at -z
    np.testing.assert_allclose(b.position, (1, 2, 3))
    np.testing.assert_allclose(keyframe_pose(b)[:3, :3], np.eye(3), atol=1e-12)
    assert (a.transition, b.transition) == (
        3.0,
        2.0,
    )  # into keyframe 1: 3 s; the loop's closer: default
    assert (path.settings.fps, path.settings.tension, path.settings.loop) == (30, 0.5, False)
    assert warnings == []


def test_column_major_keyframes_are_transposed(tmp_path):
    m = np.eye(4)
    m[:3, 3] = (1.0, -2.0, 0.5)
    data = {"fps": 16, "keyframes": [{"matrix": m.T.reshape(16).tolist(), "fov": 50.0}]}
    (tmp_path / "cp.json").write_text(json.dumps(data))
    path, warnings = read_nerfstudio(tmp_path / "cp.json")
    np.testing.assert_allclose(path.keyframes[0].position, (1.0, -2.0, 0.5))
    assert any("column-major" in w for w in warnings)


def test_a_baked_only_file_gets_fitted_keyframes(tmp_path):
    poses = smooth_trajectory(50)
    fov = np.linspace(40.0, 50.0, 50)
    data = {
        "fps": 16,
        "camera_path": [
            {
                "camera_to_world": opencv_to_opengl(m).reshape(16).tolist(),
                "fov": float(f),
                "aspect": 1.5,
            }
            for m, f in zip(poses, fov, strict=True)
        ],
    }
    (tmp_path / "cp.json").write_text(json.dumps(data))
    path, warnings = read_nerfstudio(tmp_path / "cp.json")
    baked = bake_path(path)
    assert len(baked) == 50
    assert np.max(np.abs(baked.c2w - poses)) < 1e-5
    assert np.max(np.abs(baked.fov - fov)) < 1e-5
    assert any("fitted" in w for w in warnings)


def test_a_different_spline_is_reported(tmp_path, src):
    data, _ = nerfstudio_dict(ProjectFolder(src).load())
    for entry in data["camera_path"]:
        entry["camera_to_world"][3] += 0.01  # shift x of every baked pose
    (tmp_path / "cp.json").write_text(json.dumps(data))
    _, warnings = read_nerfstudio(tmp_path / "cp.json")
    assert any("differs" in w and "keyframes were kept" in w for w in warnings)


def _bad(tmp_path, src, mutate, match):
    data, _ = nerfstudio_dict(ProjectFolder(src).load())
    mutate(data)
    (tmp_path / "cp.json").write_text(json.dumps(data))
    before = (src / "project.json").read_bytes()
    with pytest.raises(FormatError, match=match) as info:
        import_nerfstudio(tmp_path / "cp.json", src)
    assert "cp.json" in str(info.value)
    assert (src / "project.json").read_bytes() == before  # the project is untouched


def test_malformed_files(tmp_path, src):
    _bad(tmp_path, src, lambda d: d.pop("fps"), "'fps' is missing")
    _bad(
        tmp_path,
        src,
        lambda d: d["keyframes"][2].pop("matrix"),
        r"keyframes\[2\]\.matrix' is missing",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d["keyframes"][1].update(matrix=[0.0] * 15),
        r"keyframes\[1\]\.matrix' must be a list of 16",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d["keyframes"][1]["matrix"].__setitem__(3, float("nan")),
        r"keyframes\[1\]\.matrix\[3\]' must be a finite",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d["keyframes"][0]["matrix"].__setitem__(0, 2.0),
        r"keyframes\[0\]\.matrix' is not a rigid",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d["keyframes"][0].update(fov=200),
        r"keyframes\[0\]\.fov' must be a field of view",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d["keyframes"][1].update(
            override_transition_sec=-1.0, override_transition_enabled=True
        ),
        "between 0 and 3600",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d["camera_path"][4].update(camera_to_world="x"),
        r"camera_path\[4\]\.camera_to_world'",
    )
    _bad(
        tmp_path,
        src,
        lambda d: d.update(keyframes=[], camera_path=[]),
        "'keyframes' is missing or empty",
    )
    _bad(tmp_path, src, lambda d: d.update(is_cycle="yes"), "is_cycle")


def test_not_json(tmp_path, src):
    (tmp_path / "cp.json").write_text("{ nope")
    with pytest.raises(FormatError, match="not valid JSON"):
        import_nerfstudio(tmp_path / "cp.json", src)


def test_export_needs_keyframes(tmp_path):
    make_project(tmp_path / "p", keyframes=[])
    with pytest.raises(WorldStudioError, match="no keyframes"):
        export_nerfstudio(tmp_path / "p", tmp_path / "cp.json")
    assert not (tmp_path / "cp.json").exists()


def test_a_bad_extension_is_ignored_with_a_warning(tmp_path, src):
    data, _ = nerfstudio_dict(ProjectFolder(src).load())
    data["worldstudio"]["keyframes"][0]["easing"] = "wobble"
    (tmp_path / "cp.json").write_text(json.dumps(data))
    path, warnings = read_nerfstudio(tmp_path / "cp.json")
    assert any("ignored" in w for w in warnings)
    assert all(k.easing == "linear" for k in path.keyframes)
    assert isinstance(path, CameraPath)
