"""Project bundles: round trip, and every unsafe archive refused with nothing written."""

from __future__ import annotations

import os
import stat
import struct
import zipfile

import pytest

from worldstudio.core.errors import Cancelled, FormatError, WorldStudioError
from worldstudio.core.interop.bundle import (
    check_bundle,
    export_bundle,
    import_bundle,
    parse_size,
)
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import ProjectFolder

from .helpers import make_project, tree


@pytest.fixture
def project_dir(tmp_path):
    root = tmp_path / "proj.wsproj"
    make_project(root)
    (root / "runs" / "r1").mkdir(parents=True)
    (root / "runs" / "r1" / "run.json").write_text('{"fps": 16}')
    (root / "scene" / "depth.npy").write_bytes(b"\x93NUMPY" + bytes(range(256)) * 10)
    return root


def write_zip(path, entries):
    """entries: (name, data) or (ZipInfo, data)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def project_json(root):
    return (root / "project.json").read_bytes()


def assert_rejected(tmp_path, zip_path, match, **caps):
    out = tmp_path / "out" / "imported.wsproj"
    before = tree(tmp_path)
    with pytest.raises(FormatError, match=match) as info:
        import_bundle(zip_path, out, **caps)
    assert str(zip_path) in str(info.value)
    assert tree(tmp_path) == before  # nothing written, not even the parent folder
    return info.value


# --------------------------------------------------------------------------------------------


def test_the_bundle_gets_ordinary_permissions(tmp_path, project_dir):
    """The zip is written through a private temporary file (0600); the bundle itself gets what
    any new file gets here (0666 less the umask)."""
    old = os.umask(0o022)
    try:
        zpath, _ = export_bundle(project_dir, tmp_path / "b.zip")
        assert stat.S_IMODE(zpath.stat().st_mode) == 0o644
        os.umask(0o027)
        zpath, _ = export_bundle(project_dir, tmp_path / "c.zip")
        assert stat.S_IMODE(zpath.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_round_trip_keeps_every_file_byte_for_byte(tmp_path, project_dir):
    zpath, warnings = export_bundle(project_dir, tmp_path / "b.zip")
    assert warnings == []
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
    assert "project.json" in names and "source.png" in names and "runs/r1/run.json" in names
    out = tmp_path / "copy.wsproj"
    project, warnings = import_bundle(zpath, out)
    assert project == ProjectFolder(project_dir).load()
    files = [p for p in tree(project_dir) if (project_dir / p).is_file()]
    assert files == [p for p in tree(out) if (out / p).is_file()]
    for rel in files:
        assert (out / rel).read_bytes() == (project_dir / rel).read_bytes()
    assert (out / "loras").is_dir()  # empty folders come along
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_export_is_atomic_and_leaves_out_links(tmp_path, project_dir):
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", project_dir / "link.txt")
    (project_dir / ".project.json.123.tmp").write_text("half")
    zpath, warnings = export_bundle(project_dir, project_dir / "inside.zip")
    assert any("link.txt" in w and "symbolic link" in w for w in warnings)
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
    assert "link.txt" not in names and ".project.json.123.tmp" not in names
    assert "inside.zip" not in names
    assert [p.name for p in project_dir.iterdir() if ".partial" in p.name] == []


def test_export_of_a_broken_project_writes_nothing(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.json").write_text('{"schema_version": 2, "name": 3}')
    with pytest.raises(WorldStudioError, match="name"):
        export_bundle(tmp_path / "p", tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_a_bundle_with_one_top_folder_imports(tmp_path, project_dir):
    entries = [
        (f"demo.wsproj/{p}", (project_dir / p).read_bytes()) for p in ("project.json", "source.png")
    ]
    z = write_zip(tmp_path / "b.zip", entries)
    project, _ = import_bundle(z, tmp_path / "new")
    assert (tmp_path / "new" / "source.png").is_file()
    assert project.name == "Test project"


def test_an_existing_empty_folder_is_a_valid_target(tmp_path, project_dir):
    zpath, _ = export_bundle(project_dir, tmp_path / "b.zip")
    (tmp_path / "empty").mkdir()
    import_bundle(zpath, tmp_path / "empty")
    assert (tmp_path / "empty" / "project.json").is_file()


def test_a_non_empty_target_is_refused(tmp_path, project_dir):
    zpath, _ = export_bundle(project_dir, tmp_path / "b.zip")
    with pytest.raises(WorldStudioError, match="not empty"):
        import_bundle(zpath, project_dir)


@pytest.mark.parametrize(
    "name, match",
    [
        ("../evil.txt", r"'\.\.'"),
        ("runs/../../evil.txt", r"'\.\.'"),
        ("/etc/evil.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("runs\\..\\evil.txt", "backslash"),
    ],
)
def test_paths_leaving_the_folder_are_refused(tmp_path, project_dir, name, match):
    z = write_zip(tmp_path / "b.zip", [("project.json", project_json(project_dir)), (name, b"x")])
    err = assert_rejected(tmp_path, z, match)
    assert repr(name) in str(err)


def test_symlink_entries_are_refused(tmp_path, project_dir):
    link = zipfile.ZipInfo("scene/points.ply")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = write_zip(
        tmp_path / "b.zip", [("project.json", project_json(project_dir)), (link, "/etc/passwd")]
    )
    assert_rejected(tmp_path, z, "symbolic link")


def test_device_entries_are_refused(tmp_path, project_dir):
    dev = zipfile.ZipInfo("dev")
    dev.create_system = 3
    dev.external_attr = (stat.S_IFCHR | 0o666) << 16
    z = write_zip(tmp_path / "b.zip", [("project.json", project_json(project_dir)), (dev, b"")])
    assert_rejected(tmp_path, z, "special files")


@pytest.mark.parametrize("second", ["source.png", "SOURCE.png", "./source.png"])
def test_duplicate_names_are_refused(tmp_path, project_dir, second):
    entries = [("project.json", project_json(project_dir)), ("source.png", b"a"), (second, b"b")]
    with pytest.warns(UserWarning) if second == "source.png" else _NoWarning():
        z = write_zip(tmp_path / "b.zip", entries)
    assert_rejected(tmp_path, z, "appears twice")


def test_a_file_that_is_also_a_folder_is_refused(tmp_path, project_dir):
    entries = [
        ("project.json", project_json(project_dir)),
        ("scene", b"a"),
        ("scene/points.ply", b"b"),
    ]
    z = write_zip(tmp_path / "b.zip", entries)
    assert_rejected(tmp_path, z, "both a file and a folder")


class _NoWarning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_zip_without_project_json_is_refused(tmp_path):
    z = write_zip(tmp_path / "b.zip", [("source.png", b"x"), ("scene/points.ply", b"y")])
    assert_rejected(tmp_path, z, "no project.json")


def test_an_invalid_project_json_is_refused_naming_the_field(tmp_path):
    z = write_zip(tmp_path / "b.zip", [("project.json", b'{"schema_version": 2, "rounds": 5}')])
    err = assert_rejected(tmp_path, z, "rounds")
    assert "project.json" in str(err)


def test_not_a_zip_is_refused(tmp_path):
    (tmp_path / "b.zip").write_bytes(b"this is not a zip file at all")
    assert_rejected(tmp_path, tmp_path / "b.zip", "not a zip")


def test_high_compression_ratio_is_refused(tmp_path, project_dir):
    z = write_zip(
        tmp_path / "b.zip",
        [("project.json", project_json(project_dir)), ("scene/depth.npy", bytes(20 * 1024 * 1024))],
    )
    assert_rejected(tmp_path, z, "compression ratio")


def test_total_size_over_the_cap_is_refused(tmp_path, project_dir):
    z = write_zip(
        tmp_path / "b.zip",
        [("project.json", project_json(project_dir)), ("source.png", os.urandom(5000))],
    )
    assert_rejected(tmp_path, z, "more than 4.9 KiB", max_total_bytes=5000)
    import_bundle(z, tmp_path / "ok", max_total_bytes=100_000)  # a larger cap lets it through


def _patch_central_sizes(path, name: bytes, new_size: int):
    """Rewrite the uncompressed size of ``name`` in the central directory (a lying header)."""
    data = bytearray(path.read_bytes())
    i = 0
    while True:
        i = data.find(b"PK\x01\x02", i)
        assert i != -1
        name_len = struct.unpack_from("<H", data, i + 28)[0]
        if bytes(data[i + 46 : i + 46 + name_len]) == name:
            struct.pack_into("<I", data, i + 24, new_size)
            break
        i += 4
    path.write_bytes(bytes(data))


def test_a_small_file_claiming_a_huge_size_is_refused(tmp_path, project_dir):
    z = write_zip(
        tmp_path / "b.zip", [("project.json", project_json(project_dir)), ("bomb.bin", b"tiny")]
    )
    _patch_central_sizes(z, b"bomb.bin", 0xFFFFFF00)
    assert_rejected(tmp_path, z, "zip bomb|more than")


def test_an_entry_unpacking_to_more_than_declared_leaves_nothing(tmp_path, project_dir):
    z = write_zip(
        tmp_path / "b.zip",
        [("project.json", project_json(project_dir)), ("scene/depth.npy", os.urandom(4000))],
    )
    _patch_central_sizes(z, b"scene/depth.npy", 100)
    assert_rejected(tmp_path, z, "corrupt|more than it declares")


def test_too_many_entries_are_refused(tmp_path, project_dir):
    entries = [("project.json", project_json(project_dir))] + [(f"f{i}", b"") for i in range(20)]
    z = write_zip(tmp_path / "b.zip", entries)
    assert_rejected(tmp_path, z, "entries", max_entries=10)


def test_check_bundle_reports_without_writing(tmp_path, project_dir):
    zpath, _ = export_bundle(project_dir, tmp_path / "b.zip")
    before = tree(tmp_path)
    contents = check_bundle(zpath)
    assert tree(tmp_path) == before
    assert contents.project.name == "Test project"
    assert {rel for _i, rel in contents.files} >= {"project.json", "source.png"}


def test_cancelling_an_import_leaves_nothing(tmp_path, project_dir):
    zpath, _ = export_bundle(project_dir, tmp_path / "b.zip")
    ctx = JobContext()
    calls = []

    def sink(report):
        calls.append(report)
        if len(calls) == 2:
            ctx.cancel_token.cancel()

    ctx._sink = sink
    before = tree(tmp_path)
    with pytest.raises(Cancelled):
        import_bundle(zpath, tmp_path / "deep" / "new", ctx=ctx)
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    "text, value", [("4G", 4 * 1024**3), ("500M", 500 * 1024**2), ("1024", 1024), ("1.5k", 1536)]
)
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_parse_size_rejects_nonsense():
    with pytest.raises(WorldStudioError, match="--max-size"):
        parse_size("lots")
