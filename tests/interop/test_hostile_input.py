"""The interop importers against hostile files: each defect of the reliability pass (issue 11)
is one clear FormatError, and nothing is saved that `worldstudio info` would refuse."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import zipfile

import numpy as np
import pytest
import yaml

from worldstudio.core.cli import main
from worldstudio.core.errors import FormatError
from worldstudio.core.geometry.transforms import opencv_to_opengl
from worldstudio.core.interop.bundle import export_bundle, import_bundle
from worldstudio.core.interop.liveworld import read_liveworld
from worldstudio.core.interop.nerfstudio import import_nerfstudio, read_nerfstudio
from worldstudio.core.project import ProjectFolder

from .helpers import make_project, smooth_trajectory
from .test_liveworld import write_sample


@pytest.fixture
def project_dir(tmp_path):
    root = tmp_path / "proj.wsproj"
    make_project(root, rounds=1, fpr=17)
    return root


def _one_line(exc) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# ------------------------------------------------------------------------------ nerfstudio
def _camera_path(n: int = 6, **extra) -> dict:
    poses = smooth_trajectory(n)
    return {
        "fps": 16,
        "keyframes": [
            {"matrix": opencv_to_opengl(m).reshape(16).tolist(), "fov": 50.0} for m in poses
        ],
        **extra,
    }


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"fps": ' + "1" * 5000 + "}",
        '{"fps": ' + "1" * 400 + "}",
        '{"fps": 16, "keyframes": [{"matrix": [' + ",".join(["1" * 400] * 16) + "]}]}",
        b"\xff\xfe{}",
    ],
)
def test_nerfstudio_parser_failures(tmp_path, text):
    path = tmp_path / "cp.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(FormatError) as exc:
        read_nerfstudio(path)
    assert _one_line(exc).startswith(str(path))


def test_a_look_at_on_the_path_is_refused_before_saving(tmp_path, project_dir):
    data = _camera_path()
    first = np.asarray(data["keyframes"][0]["matrix"]).reshape(4, 4)[:3, 3]
    data["worldstudio"] = {
        "version": 1,
        "keyframes": [{"id": f"k{i}", "easing": "linear"} for i in range(6)],
        "look_at": first.tolist(),
    }
    (tmp_path / "cp.json").write_text(json.dumps(data))
    before = (project_dir / "project.json").read_bytes()
    with pytest.raises(FormatError, match="look-at point"):
        import_nerfstudio(tmp_path / "cp.json", project_dir)
    assert (project_dir / "project.json").read_bytes() == before


def test_coordinates_too_large_to_interpolate_are_refused(tmp_path, project_dir):
    data = _camera_path()
    for i, kf in enumerate(data["keyframes"]):
        kf["matrix"][3] = 1e308 * (-1) ** i  # x of the position
    (tmp_path / "cp.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match="too large"):
        import_nerfstudio(tmp_path / "cp.json", project_dir)
    assert main(["info", str(project_dir)]) == 0


def test_a_huge_render_size_only_skips_the_warning(tmp_path, project_dir):
    text = json.dumps(_camera_path(render_height=96)).replace(
        '"render_height": 96', '"render_height": 96, "render_width": ' + "1" * 400
    )
    (tmp_path / "cp.json").write_text(text)
    project, _warnings = import_nerfstudio(tmp_path / "cp.json", project_dir)
    assert len(project.camera_path.keyframes) == 6


def test_a_long_baked_path_is_imported_in_bounded_time(tmp_path, project_dir):
    """50,000 frames of noise: no fit is tried, one keyframe per frame (linear time)."""
    rng = np.random.default_rng(0)
    n = 3000
    frames = []
    for p in rng.normal(size=(n, 3)):
        m = np.eye(4)
        m[:3, 3] = p
        frames.append({"camera_to_world": m.reshape(16).tolist(), "fov": 50.0})
    (tmp_path / "cp.json").write_text(json.dumps({"fps": 16, "camera_path": frames}))
    path, warnings = read_nerfstudio(tmp_path / "cp.json")
    assert len(path.keyframes) == n and any("one per frame" in w for w in warnings)


def test_too_many_entries_are_refused(tmp_path):
    frames = [{"camera_to_world": np.eye(4).reshape(16).tolist(), "fov": 50}] * 50_001
    (tmp_path / "cp.json").write_text(json.dumps({"fps": 16, "camera_path": frames}))
    with pytest.raises(FormatError, match="more than the 50000"):
        read_nerfstudio(tmp_path / "cp.json")


# ------------------------------------------------------------------------------ LiveWorld
def _sample(tmp_path, **changes):
    yaml_path = write_sample(tmp_path / "s", rounds=1)
    data = yaml.safe_load(yaml_path.read_text())
    data.update(changes)
    yaml_path.write_text(yaml.safe_dump(data))
    return yaml_path


def _bounded(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; fail when it is still running after ``seconds`` (a block)."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "still running: it blocks or loops"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/"])
def test_liveworld_reads_only_regular_files(tmp_path, target):
    yaml_path = _sample(tmp_path, geometry_file_name=target)
    with pytest.raises(FormatError, match="not a regular file"):
        _bounded(lambda: read_liveworld(yaml_path))


@pytest.mark.parametrize("target", ["/proc/self/mem", "/proc/self/environ"])
@pytest.mark.parametrize("key", ["geometry_file_name", "first_frame_image"])
def test_liveworld_streams_that_look_like_files_are_refused(tmp_path, target, key):
    yaml_path = _sample(tmp_path, **{key: target})
    with pytest.raises(FormatError, match="empty"):
        _bounded(lambda: read_liveworld(yaml_path))


def test_a_fifo_does_not_block(tmp_path):
    yaml_path = _sample(tmp_path)
    os.mkfifo(yaml_path.parent / "fifo.npz")
    for key in ("geometry_file_name", "first_frame_image"):
        data = yaml.safe_load(yaml_path.read_text())
        data[key] = "fifo.npz"
        yaml_path.write_text(yaml.safe_dump(data))
        with pytest.raises(FormatError, match="not found as a regular file"):
            _bounded(lambda: read_liveworld(yaml_path))
    fifo_yaml = tmp_path / "sample-fifo.yaml"
    os.mkfifo(fifo_yaml)
    with pytest.raises(FormatError, match="not a regular file"):
        _bounded(lambda: read_liveworld(fifo_yaml))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" * 600_000,
        "a: " + "1" * 5000,
        "a: 2024-99-99",
        "\xff",
        "a: &x [*x]",
    ],
)
def test_liveworld_yaml_parser_failures(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(FormatError) as exc:
        read_liveworld(path)
    assert _one_line(exc).startswith(str(path))


def test_text_that_is_not_unicode_is_refused(tmp_path):
    yaml_path = _sample(tmp_path)
    data = yaml.safe_load(yaml_path.read_text())
    text = json.dumps(data).replace('"scene 0"', '"a \\udbb9 b"')  # JSON is YAML
    yaml_path.write_text(text)
    with pytest.raises(FormatError, match="(scene_text' is not valid|invalid) Unicode"):
        read_liveworld(yaml_path)


def test_an_npz_declaring_a_huge_array_is_refused_before_decompressing(tmp_path):
    yaml_path = _sample(tmp_path)
    header = repr({"descr": "<f8", "fortran_order": False, "shape": (10**7, 4, 4)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64
    with zipfile.ZipFile(yaml_path.parent / "geometry.npz", "w") as zf:
        zf.writestr("poses_c2w.npy", npy)
    with pytest.raises(FormatError, match="larger than the 256 MiB"):
        read_liveworld(yaml_path)


def test_rotations_too_large_to_multiply_are_refused(tmp_path):
    yaml_path = _sample(tmp_path)
    poses = np.repeat(np.eye(4)[None], 65, 0)
    poses[:, :3, :3] = 1e200  # products overflow: the check must not let NaN through
    np.savez(yaml_path.parent / "geometry.npz", poses_c2w=poses)
    with pytest.raises(FormatError, match="not a rotation"):
        read_liveworld(yaml_path)
    data = _camera_path()
    data["keyframes"][1]["matrix"][:3] = [1e200, 1e200, 1e200]
    (tmp_path / "cp.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match="not a rigid camera pose"):
        read_nerfstudio(tmp_path / "cp.json")


def test_too_many_rounds_are_refused(tmp_path):
    rounds = {str(r): {"scene_text": "x"} for r in range(501)}
    with pytest.raises(FormatError, match="more than the 500"):
        read_liveworld(_sample(tmp_path, iter_input=rounds))


# ------------------------------------------------------------------------------ bundles
def _zip(path, entries, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _entries(root):
    return [
        (p.relative_to(root).as_posix(), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


def test_a_top_folder_beside_a_readme_imports(tmp_path, project_dir):
    entries = [(f"demo.wsproj/{n}", d) for n, d in _entries(project_dir)]
    z = _zip(tmp_path / "b.zip", [*entries, ("README.txt", b"read me")])
    project, warnings = import_bundle(z, tmp_path / "out")
    assert project.name == ProjectFolder(project_dir).load().name
    assert any("left out" in w and "README.txt" in w for w in warnings)
    assert not (tmp_path / "out" / "README.txt").exists()


def test_unexpected_entries_are_left_out_and_said(tmp_path, project_dir):
    extra = [("evil.sh", b"rm -rf ~"), ("unexpected/data.bin", b"\x00" * 10)]
    z = _zip(tmp_path / "b.zip", [*_entries(project_dir), *extra])
    _project, warnings = import_bundle(z, tmp_path / "out")
    assert [n for n, _d in _entries(tmp_path / "out")] == [n for n, _d in _entries(project_dir)]
    (said,) = [w for w in warnings if "left out" in w]
    assert "2 entries" in said and "evil.sh" in said and "unexpected/data.bin" in said


def test_several_projects_in_one_zip_are_refused(tmp_path, project_dir):
    entries = _entries(project_dir)
    z = _zip(
        tmp_path / "b.zip",
        [(f"a/{n}", d) for n, d in entries] + [(f"b/{n}", d) for n, d in entries],
    )
    with pytest.raises(FormatError, match="several projects"):
        import_bundle(z, tmp_path / "out")


@pytest.mark.parametrize(
    ("field", "value"),
    [("mask_file", "/etc/passwd"), ("depth_file", "../../outside.npy")],
)
def test_paths_in_the_bundled_project_must_stay_inside(tmp_path, project_dir, field, value):
    data = json.loads((project_dir / "project.json").read_text())
    if field == "mask_file":
        data["entities"][0]["mask_file"] = value
    else:
        data["scene"]["depth_file"] = value
    entries = [(n, d) for n, d in _entries(project_dir) if n != "project.json"]
    z = _zip(tmp_path / "b.zip", [("project.json", json.dumps(data).encode()), *entries])
    with pytest.raises(FormatError, match=field):
        import_bundle(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_lying_size_gives_a_reason(tmp_path, project_dir):
    z = _zip(tmp_path / "b.zip", _entries(project_dir), zipfile.ZIP_STORED)
    data = bytearray(z.read_bytes())
    i = data.find(b"PK\x01\x02")
    while i != -1:  # every entry claims 2 GB, compressed and not: no ratio to refuse
        name_len = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46 : i + 46 + name_len] == b"source.png":
            struct.pack_into("<II", data, i + 20, 0x7FFFFF00, 0x7FFFFF00)
        i = data.find(b"PK\x01\x02", i + 4)
    z.write_bytes(bytes(data))
    with pytest.raises(FormatError) as exc:
        import_bundle(z, tmp_path / "out", max_total_bytes=2**40)
    line = _one_line(exc)
    assert "()" not in line and "source.png" in line


def test_export_leaves_leftovers_out(tmp_path, project_dir):
    (project_dir / ".project.json.1.abcdefgh.tmp").write_text("x")
    (project_dir / "scene" / ".points.ply.1.abcdefgh.partial").mkdir()
    out, _ = export_bundle(project_dir, tmp_path / "b.zip")
    with zipfile.ZipFile(out) as zf:
        assert not [n for n in zf.namelist() if ".abcdefgh." in n]


def test_the_importers_cli_lines(tmp_path, project_dir, capsys):
    buf = io.BytesIO(b"[" * 100_000)
    (tmp_path / "cp.json").write_bytes(buf.getvalue())
    assert (
        main(["import", "nerfstudio", str(tmp_path / "cp.json"), "--into", str(project_dir)]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
