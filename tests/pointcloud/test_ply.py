"""PLY read/write: bit-exact round trips, interoperability with plyfile, clear errors."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from worldstudio.core.errors import FormatError, WorldStudioError
from worldstudio.core.pointcloud import PointCloud, read_ply, read_ply_with_normals, write_ply


def random_cloud(n: int, seed: int = 0, ids: bool = True) -> PointCloud:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32) * 100
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    ent = rng.integers(-1, 1000, n).astype(np.int32) if ids else None
    return PointCloud(xyz, rgb, ent)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


# ---- our writer -----------------------------------------------------------------------------


def test_binary_round_trip_is_bit_exact(tmp_path):
    c = random_cloud(1000)
    # Awkward values survive bit for bit: -0.0, inf, NaN, the smallest subnormal.
    c.xyz[:4, 0] = [-0.0, np.inf, np.nan, np.float32(1e-45)]
    normals = np.random.default_rng(1).normal(size=(1000, 3)).astype(np.float32)
    path = tmp_path / "c.ply"
    write_ply(path, c, normals=normals)
    back, nrm = read_ply_with_normals(path)
    assert np.array_equal(bits(back.xyz), bits(c.xyz))
    assert np.array_equal(back.rgb, c.rgb)
    assert np.array_equal(back.entity_id, c.entity_id)
    assert np.array_equal(bits(nrm), bits(normals))
    assert read_ply(path).entity_id is not None


def test_written_file_layout(tmp_path):
    c = PointCloud(np.array([[1.0, 2.0, 3.0]], np.float32), np.array([[4, 5, 6]], np.uint8))
    path = tmp_path / "one.ply"
    write_ply(path, c)
    raw = path.read_bytes()
    header = (
        b"ply\nformat binary_little_endian 1.0\ncomment written by World Studio\n"
        b"element vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    assert raw == header + np.array([1, 2, 3], "<f4").tobytes() + bytes([4, 5, 6])
    assert back_equal(read_ply(path), c)
    assert read_ply(path).entity_id is None and read_ply_with_normals(path)[1] is None


def back_equal(a: PointCloud, b: PointCloud) -> bool:
    same_ids = (a.entity_id is None and b.entity_id is None) or np.array_equal(
        a.entity_id, b.entity_id
    )
    return np.array_equal(a.xyz, b.xyz) and np.array_equal(a.rgb, b.rgb) and same_ids


def test_empty_cloud_round_trip(tmp_path):
    write_ply(tmp_path / "e.ply", PointCloud.empty(with_entity_id=True))
    back = read_ply(tmp_path / "e.ply")
    assert len(back) == 0 and back.entity_id is not None


def test_plyfile_reads_our_file(tmp_path):
    c = random_cloud(500)
    normals = np.ones((500, 3), np.float32)
    write_ply(tmp_path / "c.ply", c, normals=normals)
    ply = PlyData.read(str(tmp_path / "c.ply"))
    assert ply.text is False and ply.byte_order == "<"
    v = ply["vertex"]
    types = {p.name: p.val_dtype for p in v.properties}
    assert types == {
        "x": "f4", "y": "f4", "z": "f4", "red": "u1", "green": "u1", "blue": "u1",
        "nx": "f4", "ny": "f4", "nz": "f4", "entity_id": "i4",
    }  # fmt: skip
    d = v.data
    np.testing.assert_array_equal(np.stack([d["x"], d["y"], d["z"]], 1), c.xyz)
    np.testing.assert_array_equal(np.stack([d["red"], d["green"], d["blue"]], 1), c.rgb)
    np.testing.assert_array_equal(d["entity_id"], c.entity_id)
    np.testing.assert_array_equal(d["nz"], normals[:, 2])


def test_atomic_write_leaves_no_temp_file_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.ply"
    write_ply(path, random_cloud(10, seed=1))
    write_ply(path, random_cloud(20, seed=2))  # replaces
    assert len(read_ply(path)) == 20
    assert sorted(os.listdir(tmp_path)) == ["c.ply"]
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(WorldStudioError, match="c.ply: cannot be written \\(disk on fire\\)"):
        write_ply(path, random_cloud(30, seed=3))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.ply"]


def test_write_rejects_bad_normals(tmp_path):
    with pytest.raises(ValueError, match="normals"):
        write_ply(tmp_path / "c.ply", random_cloud(3), normals=np.zeros((2, 3)))
    assert not (tmp_path / "c.ply").exists()


# ---- files written by plyfile --------------------------------------------------------------


def plyfile_vertices(n: int, seed: int = 0) -> np.ndarray:
    """A vertex table with double coordinates, extra properties and the usual colour names."""
    rng = np.random.default_rng(seed)
    dt = [("intensity", "f4"), ("x", "f8"), ("y", "f8"), ("z", "f8"), ("red", "u1"),
          ("green", "u1"), ("blue", "u1"), ("alpha", "u1"), ("label", "i2")]  # fmt: skip
    v = np.empty(n, dt)
    for name in ("x", "y", "z"):
        v[name] = np.round(rng.normal(size=n), 4)
    for name in ("red", "green", "blue", "alpha"):
        v[name] = rng.integers(0, 256, n)
    v["intensity"] = rng.random(n)
    v["label"] = rng.integers(-5, 5, n)
    return v


def faces(n: int) -> PlyElement:
    f = np.empty(n, [("vertex_indices", "O"), ("flag", "u1")])
    for i in range(n):
        f["vertex_indices"][i] = np.arange(3 + i % 2, dtype=np.int32) + i
        f["flag"][i] = i
    return PlyElement.describe(f, "face", len_types={"vertex_indices": "u1"})


@pytest.mark.parametrize(
    ("text", "byte_order"), [(False, "<"), (False, ">"), (True, "=")], ids=["le", "be", "ascii"]
)
@pytest.mark.parametrize("faces_first", [False, True])
def test_plyfile_written_files_are_read(tmp_path, text, byte_order, faces_first):
    v = plyfile_vertices(200)
    elements = [PlyElement.describe(v, "vertex"), faces(7)]
    if faces_first:
        elements.reverse()
    path = tmp_path / "p.ply"
    PlyData(elements, text=text, byte_order=byte_order).write(str(path))
    c = read_ply(path)
    assert len(c) == 200 and c.entity_id is None
    np.testing.assert_array_equal(c.xyz, np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32))
    np.testing.assert_array_equal(c.rgb, np.stack([v["red"], v["green"], v["blue"]], 1))


def test_vertex_list_property_is_skipped(tmp_path):
    v = np.empty(3, [("x", "f4"), ("tags", "O"), ("y", "f4"), ("z", "f4"), ("r", "u1"),
                     ("g", "u1"), ("b", "u1")])  # fmt: skip
    for i in range(3):
        v[i] = (i, np.arange(i, dtype=np.int32), 10 + i, 20 + i, i, 2 * i, 3 * i)
    for text in (False, True):
        path = tmp_path / f"t{text}.ply"
        PlyData([PlyElement.describe(v, "vertex")], text=text).write(str(path))
        c = read_ply(path)
        np.testing.assert_array_equal(c.xyz, [[0, 10, 20], [1, 11, 21], [2, 12, 22]])
        np.testing.assert_array_equal(c.rgb, [[0, 0, 0], [1, 2, 3], [2, 4, 6]])


def write_text(path, body: str) -> None:
    path.write_bytes(body.encode("ascii"))


def test_ascii_colour_variants_and_entity_ids(tmp_path):
    header = "ply\r\nformat ascii 1.0\r\nelement vertex 2\r\nproperty float x\r\nproperty float y\r\nproperty float z\r\n"
    write_text(tmp_path / "grey.ply", header + "end_header\r\n1 2 3\r\n4 5 6\r\n")
    c = read_ply(tmp_path / "grey.ply")
    np.testing.assert_array_equal(c.xyz, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(c.rgb, np.full((2, 3), 128))

    body = "property float diffuse_red\nproperty float diffuse_green\nproperty float diffuse_blue\n"
    write_text(tmp_path / "f.ply", header + body + "end_header\n0 0 0 0 0.5 1\n1 1 1 0.2 1 0\n")
    np.testing.assert_array_equal(read_ply(tmp_path / "f.ply").rgb, [[0, 128, 255], [51, 255, 0]])

    body = (
        "property ushort red\nproperty ushort green\nproperty ushort blue\nproperty int entity_id\n"
    )
    write_text(
        tmp_path / "u.ply",
        header + body + "end_header\n0 0 0 65535 0 257 3\n1 1 1 0 514 65535 -1\n",
    )
    c = read_ply(tmp_path / "u.ply")
    np.testing.assert_array_equal(c.rgb, [[255, 0, 1], [0, 2, 255]])
    np.testing.assert_array_equal(c.entity_id, [3, -1])
    assert c.entity_id.dtype == np.int32


def test_reading_a_million_points_is_fast(tmp_path):
    c = random_cloud(1_000_000, ids=False)
    path = tmp_path / "big.ply"
    write_ply(path, c)
    best = np.inf
    for _ in range(2):
        t = time.perf_counter()
        back = read_ply(path)
        best = min(best, time.perf_counter() - t)
    assert back_equal(back, c)
    assert best < 1.0, f"reading 1M points took {best:.2f} s"


# ---- malformed files ------------------------------------------------------------------------

GOOD_HEADER = (
    "ply\nformat binary_little_endian 1.0\nelement vertex 2\n"
    "property float x\nproperty float y\nproperty float z\nend_header\n"
)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not a PLY file"),
        (b"solid cube\nfacet normal 0 0 1\n", "not a PLY file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a PLY file"),
        (
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n",
            "ends before 'end_header'",
        ),
        (GOOD_HEADER.encode() + b"\x00" * 23, "truncated PLY data"),
        (GOOD_HEADER.replace("float z", "float w").encode() + b"\x00" * 24, "no 'z' property"),
        (
            GOOD_HEADER.replace("binary_little_endian", "binary_middle_endian").encode(),
            "unsupported PLY format",
        ),
        (GOOD_HEADER.replace("1.0", "2.0").encode(), "unsupported PLY version"),
        (GOOD_HEADER.replace("float y", "float128 y").encode(), "unsupported PLY property type"),
        (GOOD_HEADER.replace("element vertex 2\n", "").encode(), "property before any element"),
        (GOOD_HEADER.replace("vertex 2", "vertex two").encode(), "bad PLY header line"),
        (GOOD_HEADER.replace("element vertex", "element point").encode(), "no 'vertex' element"),
        (GOOD_HEADER.replace("format binary_little_endian 1.0\n", "").encode(), "no 'format' line"),
        (GOOD_HEADER.replace("element", "elephant", 1).encode(), "bad PLY header line"),
        (b"ply\nformat ascii 1.0\ncomment caf\xe9\nend_header\n", "not ASCII"),
        (
            GOOD_HEADER.replace("binary_little_endian", "ascii").encode() + b"1 2 3\n4 5\n",
            "truncated PLY data",
        ),
        (
            GOOD_HEADER.replace("binary_little_endian", "ascii").encode() + b"1 2 3\n4 five 6\n",
            "bad PLY data",
        ),
        (
            b"ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uchar int vertex_indices\n"
            + GOOD_HEADER.split("1.0\n", 1)[1].encode()
            + bytes([3])
            + b"\x00" * 8,
            "truncated PLY data",
        ),
        (
            b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\n"
            + GOOD_HEADER.split("1.0\n", 1)[1].encode()
            + b"4 0 1 2 3 0 0 0 1 1",
            "truncated PLY data",
        ),
    ],
)
def test_malformed_files_raise_format_error_naming_the_file(tmp_path, content, words):
    path = tmp_path / "broken_cloud.ply"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=words) as info:
        read_ply(path)
    assert "broken_cloud.ply" in str(info.value)


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="nowhere.ply"):
        read_ply(tmp_path / "nowhere.ply")


@pytest.mark.parametrize("fmt", ["binary_little_endian", "ascii"])
def test_absurd_counts_fail_fast_without_allocating(tmp_path, fmt):
    header = (
        f"ply\nformat {fmt} 1.0\nelement face 999999999999\nproperty list uchar int vertex_indices\n"
        "element vertex 999999999999\nproperty float x\nproperty float y\nproperty float z\n"
        "property list uchar int tags\nend_header\n"
    )
    path = tmp_path / "huge.ply"
    path.write_bytes(header.encode() + b"\x00" * 64)
    t = time.perf_counter()
    with pytest.raises(FormatError, match="truncated PLY data"):
        read_ply(path)
    assert time.perf_counter() - t < 1.0


# --------------------------------------------------------------------------- hostile headers
def _write(tmp_path, data: bytes):
    path = tmp_path / "h.ply"
    path.write_bytes(data)
    return path


def test_a_duplicated_property_is_a_format_error(tmp_path):
    path = _write(
        tmp_path,
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n"
        b"property float y\nproperty float z\nproperty uchar red\nproperty uchar red\n"
        b"end_header\n" + b"\x00" * 14,
    )
    with pytest.raises(FormatError, match="property 'red' twice"):
        read_ply(path)


def test_an_ascii_element_without_properties_is_skipped_at_once(tmp_path):
    """10^12 rows of nothing take no tokens: the reader must not count them one by one."""
    path = _write(
        tmp_path,
        b"ply\nformat ascii 1.0\nelement empty 1000000000000\n"
        b"element face 1\nproperty list uchar int idx\n"
        b"element vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        b"end_header\n3 0 1 1\n1 2 3\n4 5 6\n",
    )
    cloud = read_ply(path)
    assert cloud.xyz.tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("count", [b"100000000000000000", b"4294967297"])
def test_an_ascii_count_beyond_the_file_is_truncated_data(tmp_path, count):
    path = _write(
        tmp_path,
        b"ply\nformat ascii 1.0\nelement vertex " + count + b"\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n1 2 3\n",
    )
    with pytest.raises(FormatError, match="truncated"):
        read_ply(path)


@pytest.mark.parametrize("length", [b"inf", b"nan", b"1e400", b"2.5"])
def test_an_ascii_list_length_that_is_no_count(tmp_path, length):
    path = _write(
        tmp_path,
        b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int idx\n"
        b"element vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
        b"end_header\n" + length + b" 0\n1 2 3\n",
    )
    with pytest.raises(FormatError, match="list length"):
        read_ply(path)


def test_a_fifo_is_not_a_ply_file(tmp_path):
    os.mkfifo(tmp_path / "f.ply")
    with pytest.raises(FormatError, match="not a regular file"):
        read_ply(tmp_path / "f.ply")


@pytest.mark.parametrize("count", [b"1" * 5001, b"1" + b"0" * 30, b"9" * 19])
def test_a_count_no_file_can_hold_is_a_format_error(tmp_path, count):
    path = _write(
        tmp_path,
        b"ply\nformat ascii 1.0\nelement vertex " + count + b"\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n1 2 3\n",
    )
    with pytest.raises(FormatError, match="count too large"):
        read_ply(path)
