"""Property-based fuzzing of every loader: project.json, action strings, nerfstudio camera paths,
LiveWorld YAML + npz, PLY (binary and ASCII), images and bundles. Each case is a valid file with
hypothesis-chosen damage (hostile values in its fields, byte edits, huge counts, deep nesting),
run through the same entry point a user reaches (mostly the CLI, in process): only the
project's own one-line errors may come out, within the deadline (tests/fuzz/harness.py).
A command that succeeds must leave a project that ``worldstudio info`` accepts.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.interop.helpers import make_project, smooth_trajectory
from worldstudio.core.cli import main
from worldstudio.core.errors import WorldStudioError

from .harness import FUZZ, mutated_bytes, mutated_json, replace_numbers, run_case

# Damaged images make PIL warn (truncated EXIF, tags past the end): expected here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


class CommandFailed(WorldStudioError):  # noqa: N818 - named after what happened
    """The CLI refused the input with exit status 2 (its one line is the message)."""


def cli(*argv) -> str:
    """Run ``worldstudio ARGV`` in process; exit 2 raises CommandFailed with its one line,
    exit 1 (an internal error) raises RuntimeError; returns stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse refusing an option value
            rc = exc.code if isinstance(exc.code, int) else 2
    lines = [x for x in err.getvalue().replace("\r", "\n").splitlines() if x.startswith("error")]
    if rc == 2:
        if argv and not lines and "usage:" in err.getvalue():
            raise CommandFailed("argparse refused the arguments")
        if len(lines) != 1:
            raise RuntimeError(f"exit 2 without exactly one error line: {err.getvalue()!r}")
        raise CommandFailed(lines[0])
    if rc != 0:
        raise RuntimeError(f"exit {rc}: {err.getvalue()}")
    return out.getvalue()


def fresh(base: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=base))


def succeeded_then_info(project: Path, *argv) -> None:
    """Run a command; when it succeeds, `info` must accept the project it wrote."""
    cli(*argv)
    try:
        cli("info", project)
    except CommandFailed as exc:
        raise RuntimeError(f"the command succeeded but `info` refuses its project: {exc}") from None


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def project_dir(work) -> Path:
    root = work / "seed.wsproj"
    make_project(root, rounds=1, fpr=17, monitors=True)
    return root


# ------------------------------------------------------------------------------ project.json
def _v1_seed(project_dir: Path) -> dict:
    data = json.loads((project_dir / "project.json").read_text())
    data["schema_version"] = 1
    gen = data["generation"]
    gen["resolution"] = f"{gen.pop('width')}x{gen.pop('height')}"
    data["prompts"] = [r["scene_text"] for r in data.pop("rounds")]
    for kf in data["camera_path"]["keyframes"]:
        kf["duration"] = kf.pop("transition")
    return data


@FUZZ
@given(data=st.data())
def test_project_json(data, work, project_dir):
    seeds = [json.loads((project_dir / "project.json").read_text()), _v1_seed(project_dir)]
    seed = data.draw(st.sampled_from(seeds))
    text = data.draw(mutated_json(seed))
    folder = fresh(work)
    shutil.copy(project_dir / "source.png", folder / "source.png")
    (folder / "project.json").write_bytes(text)
    run_case("project.json", lambda: cli("info", folder), lambda: repr(text[:2000]))
    shutil.rmtree(folder)


# ------------------------------------------------------------------------------ action strings
_STEPS = ["(FN)", "(BL)", "(fLR)", "(rRN)", "(SN)", "(LL)", "(RR)", "(fRL)"]
_JUNK = ["(", ")", "(F)", "(N)", "(FRB)", "(fR_L)", "x", " ", "\t", "((", "(fL", "()", "\x00"]


@st.composite
def action_strings(draw) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(alphabet="()FBLRSNfr_ \t\n", max_size=200))
    if kind == 1:
        return "".join(draw(st.lists(st.sampled_from(_STEPS + _JUNK), max_size=60)))
    if kind == 2:  # long: up to twice the cap, valid or broken at the end
        n = draw(st.integers(0, 20_000))
        return draw(st.sampled_from(_STEPS)) * n + draw(st.sampled_from(["", "(", "x", "(FN)"]))
    return draw(st.sampled_from([" " * 200_000, "(" * 100_000, "(FN" * 50_000, ""]))


_NUMBERS = st.one_of(
    st.sampled_from(["0.25", "1", "15"]),
    st.sampled_from(["1e308", "-1e308", "nan", "inf", "-inf", "0", "-3", "1e-300", "179.9", "180"]),
)


@FUZZ
@given(
    text=action_strings(),
    step=_NUMBERS,
    turn=_NUMBERS,
    frames=st.one_of(
        st.sampled_from(["8", "4"]), st.sampled_from(["1", "0", "-1", "100000", "57600", "9" * 30])
    ),
)
def test_action_strings(text, step, turn, frames, work, project_dir):
    folder = work / "actions.wsproj"
    if not folder.exists():
        shutil.copytree(project_dir, folder)
    argv = ["path", folder, f"--actions={text}", f"--step-length={step}"]
    argv += [f"--turn-degrees={turn}", f"--frames-per-step={frames}"]
    run_case(
        "action string",
        lambda: succeeded_then_info(folder, *argv),
        lambda: f"{text[:300]!r} (len {len(text)}) {step} {turn} {frames}",
    )


_OPTION_VALUES = st.sampled_from(
    ["1", "8", "2.5", "0", "-1", "1e308", "-1e308", "nan", "inf", "1e-300", "9" * 30, "9" * 5000]
    + ["1,2,3", "0,0,1", "1e308,0,0", "nan,0,0", "", "x", "left", "right", "auto", "ease_in"]
)


@FUZZ
@given(data=st.data())
def test_path_presets(data, work, project_dir):
    from worldstudio.core.geometry.presets import PRESETS

    folder = work / "presets.wsproj"
    if not folder.exists():
        shutil.copytree(project_dir, folder)
    name = data.draw(st.sampled_from(sorted(PRESETS)))
    params = [p.name for p in PRESETS[name].params] + ["nonsense"]
    options = data.draw(st.dictionaries(st.sampled_from(params), _OPTION_VALUES, max_size=4))
    argv = ["path", folder, "--preset", name]
    for key, value in options.items():
        argv.append(f"--set={key}={value}")
    run_case(
        "path preset",
        lambda: succeeded_then_info(folder, *argv),
        lambda: " ".join(str(a)[:80] for a in argv[2:]),
    )


# ------------------------------------------------------------------------------ nerfstudio
@pytest.fixture(scope="module")
def nerfstudio_seeds(project_dir) -> list[dict]:
    from worldstudio.core.geometry.transforms import opencv_to_opengl
    from worldstudio.core.interop.nerfstudio import nerfstudio_dict
    from worldstudio.core.project import ProjectFolder

    full, _ = nerfstudio_dict(ProjectFolder(project_dir).load())
    full["camera_path"] = full["camera_path"][:20]
    poses = smooth_trajectory(12)
    baked = {
        "fps": 16,
        "render_width": 160,
        "render_height": 96,
        "camera_path": [
            {"camera_to_world": opencv_to_opengl(m).reshape(16).tolist(), "fov": 50.0}
            for m in poses
        ],
    }
    return [full, baked]


@FUZZ
@given(data=st.data())
def test_nerfstudio(data, work, project_dir, nerfstudio_seeds):
    seed = data.draw(st.sampled_from(nerfstudio_seeds))
    text = data.draw(mutated_json(seed))
    folder = fresh(work)
    shutil.copy(project_dir / "project.json", folder / "project.json")
    (folder / "camera_path.json").write_bytes(text)
    run_case(
        "nerfstudio",
        lambda: succeeded_then_info(
            folder, "import", "nerfstudio", folder / "camera_path.json", "--into", folder
        ),
        lambda: repr(text[:2000]),
    )
    shutil.rmtree(folder)


# ------------------------------------------------------------------------------ LiveWorld
@pytest.fixture(scope="module")
def liveworld_seed(work) -> Path:
    """A one-round sample: sample.yaml, geometry.npz (65 poses, intrinsics), image.png."""
    from worldstudio.core.geometry.camera import intrinsics_from_fov

    folder = work / "liveworld-seed"
    folder.mkdir()
    poses = smooth_trajectory(65).astype(np.float32)
    K = np.repeat(intrinsics_from_fov(48.0, 480, 832)[None], 65, 0).astype(np.float32)
    np.savez(folder / "geometry.npz", poses_c2w=poses, intrinsics=K)
    Image.fromarray(np.full((48, 80, 3), 90, np.uint8)).save(folder / "image.png")
    data = {
        "geometry_file_name": "geometry.npz",
        "first_frame_image": "image.png",
        "iter_input": {"0": {"scene_text": "a street", "fg_text": "a dog runs"}},
        "runtime": {"seed": 3},
    }
    (folder / "sample.yaml").write_text(yaml.safe_dump(data))
    return folder


_ARRAYS = st.one_of(
    st.just(None),
    st.sampled_from(
        [
            np.zeros((65, 4, 4)),
            np.full((65, 4, 4), np.nan),
            np.full((65, 4, 4), 1e308),
            np.zeros((0, 4, 4)),
            np.zeros((3, 3)),
            np.zeros((70, 4, 4), np.complex64),
            np.array(["x"] * 65),
            np.zeros((65, 4, 4), np.float16),
            np.array([1, 2, 3], dtype=object),
        ]
    ),
)


def _declared_shape_npy(shape: tuple) -> bytes:
    """An .npy whose header declares ``shape`` but holds a few bytes only."""
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    text = repr(header).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\x00" * 64


@FUZZ
@given(data=st.data())
def test_liveworld(data, work, liveworld_seed):
    folder = fresh(work)
    for name in ("geometry.npz", "image.png"):
        shutil.copy(liveworld_seed / name, folder / name)
    seed_yaml = yaml.safe_load((liveworld_seed / "sample.yaml").read_text())
    what = data.draw(st.sampled_from(["yaml", "yaml-bytes", "npz-arrays", "npz-bytes", "path"]))
    yaml_text = (liveworld_seed / "sample.yaml").read_bytes()
    if what == "yaml":
        yaml_text = data.draw(mutated_json(seed_yaml))  # JSON is YAML
    elif what == "yaml-bytes":
        yaml_text = data.draw(mutated_bytes(yaml_text))
    elif what == "path":
        target = data.draw(
            st.sampled_from(["/dev/zero", "/dev/null", "/proc/self/mem", "fifo", ".", "/", "\x00"])
        )
        if target == "fifo":
            import os

            os.mkfifo(folder / "fifo")
        key = data.draw(st.sampled_from(["geometry_file_name", "first_frame_image"]))
        seed_yaml[key] = target
        yaml_text = yaml.safe_dump(seed_yaml).encode()
    elif what == "npz-arrays":
        arrays = dict(np.load(liveworld_seed / "geometry.npz"))
        for key in ("poses_c2w", "intrinsics"):
            value = data.draw(_ARRAYS)
            if value is not None:
                arrays[key] = value
        with zipfile.ZipFile(folder / "geometry.npz", "w") as zf:
            for key, value in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(value), allow_pickle=True)
                zf.writestr(f"{key}.npy", buf.getvalue())
            if data.draw(st.booleans()):
                zf.writestr("poses_c2w.npy" if not arrays else "intrinsics.npy", b"")
            shape = data.draw(st.sampled_from([(10**6, 4, 4), (2**40,), (65, 4, 4, 10**9)]))
            if data.draw(st.booleans()):
                zf.writestr("big.npy", _declared_shape_npy(shape))
    else:
        raw = (liveworld_seed / "geometry.npz").read_bytes()
        (folder / "geometry.npz").write_bytes(data.draw(mutated_bytes(raw)))
    (folder / "sample.yaml").write_bytes(yaml_text)
    out = folder / "out.wsproj"
    run_case(
        "liveworld",
        lambda: succeeded_then_info(
            out, "import", "liveworld", folder / "sample.yaml", "--out", out, "--no-reconstruct"
        ),
        lambda: f"{what}: {yaml_text[:1500]!r}",
    )
    shutil.rmtree(folder)


# ------------------------------------------------------------------------------ PLY
@pytest.fixture(scope="module")
def ply_seeds() -> list[bytes]:
    from worldstudio.core.pointcloud import PointCloud, write_ply

    rng = np.random.default_rng(0)
    n = 12
    cloud = PointCloud(
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.integers(0, 255, (n, 3), dtype=np.uint8),
        rng.integers(-1, 3, n).astype(np.int32),
    )
    with tempfile.TemporaryDirectory() as d:
        write_ply(Path(d) / "a.ply", cloud, normals=rng.normal(size=(n, 3)).astype(np.float32))
        binary = (Path(d) / "a.ply").read_bytes()
    rows = "\n".join(
        " ".join(f"{v:g}" for v in p) + " " + " ".join(str(int(c)) for c in col)
        for p, col in zip(cloud.xyz, cloud.rgb, strict=True)
    )
    ascii_ply = (
        f"ply\nformat ascii 1.0\ncomment x\nelement vertex {n}\nproperty float x\n"
        "property float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
        f"property uchar blue\nelement face 2\nproperty list uchar int vertex_indices\n"
        f"end_header\n{rows}\n3 0 1 2\n3 2 3 4\n"
    ).encode()
    with_faces_first = (
        b"ply\nformat binary_big_endian 1.0\nelement face 1\nproperty list uchar int idx\n"
        b"element vertex 2\nproperty double x\nproperty double y\nproperty double z\n"
        b"end_header\n" + b"\x03" + struct.pack(">3i", 0, 1, 1) + struct.pack(">6d", *range(6))
    )
    return [binary, ascii_ply, with_faces_first]


_HEADER_EDITS = [
    (rb"element vertex \d+", b"element vertex 1000000000000000000000000000000"),
    (rb"element vertex \d+", b"element vertex 4294967297"),
    (rb"element face \d+", b"element face 1000000000000"),
    (rb"property float x", b"property float x\nproperty float x"),
    (rb"property uchar red", b"property uchar red\nproperty uchar red"),
    (rb"end_header", b"element empty 1000000000000\nend_header"),
    (rb"element vertex", b"element empty 1000000000000\nelement vertex"),
    (rb"property list uchar int", b"property list float int"),
    (rb"property list uchar int", b"property list uint int"),
    (rb"format \S+", b"format ascii"),
    (rb"format \S+", b"format binary_little_endian"),
    (rb"1\.0", b"2.0"),
    (rb"property float y", b"property list uchar float y"),
]


@FUZZ
@given(data=st.data())
def test_ply(data, work, ply_seeds):
    import re

    seed = data.draw(st.sampled_from(ply_seeds))
    raw = seed
    for _ in range(data.draw(st.integers(0, 2))):
        pattern, repl = data.draw(st.sampled_from(_HEADER_EDITS))
        raw = re.sub(pattern, repl, raw, count=1)
    if data.draw(st.booleans()):
        raw = data.draw(mutated_bytes(raw))
    if data.draw(st.integers(0, 3)) == 0:
        body = raw.find(b"end_header")
        tail = replace_numbers(
            raw[body:], data.draw(st.sampled_from([b"1e999", b"nan", b"-5", b"4294967296"])), 2, 0
        )
        raw = raw[:body] + tail
    path = fresh(work) / "cloud.ply"
    path.write_bytes(raw)

    def load():
        from worldstudio.core.pointcloud import read_ply

        read_ply(path)

    run_case("ply", load, lambda: repr(raw[:600]))
    shutil.rmtree(path.parent)


# ------------------------------------------------------------------------------ images
# huge declared sizes: a PNG IHDR of 60000 x 60000, a GIF screen and a BMP of 2^31 pixels
IMAGE_TOKENS = [
    b"IHDR\x00\x00\xea\x60\x00\x00\xea\x60",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xff\xd8\xff\xe1\xff\xff",
    b"Exif\x00\x00MM\x00\x2a",
]


@pytest.fixture(scope="module")
def image_seeds() -> list[bytes]:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))
    out = []
    for fmt, img in (
        ("PNG", rgb.convert("RGBA")),
        ("JPEG", rgb),
        ("GIF", rgb.convert("P")),
        ("BMP", rgb),
        ("TIFF", rgb),
        ("WEBP", rgb),
    ):
        buf = io.BytesIO()
        kwargs = {}
        if fmt == "JPEG":
            exif = Image.Exif()
            exif[0x0112] = 6  # orientation: rotated
            kwargs["exif"] = exif
        img.save(buf, format=fmt, **kwargs)
        out.append(buf.getvalue())
    return out


@FUZZ
@given(data=st.data())
def test_images(data, work, image_seeds):
    from worldstudio.core.reconstruct.image_io import prepare_image, read_image_info

    seed = data.draw(st.sampled_from(image_seeds))
    if data.draw(st.booleans()):  # a few flipped bytes past the header: often still decodable
        raw = bytearray(seed)
        for _ in range(data.draw(st.integers(0, 3))):
            raw[data.draw(st.integers(min(len(raw) - 1, 64), len(raw) - 1))] ^= 0xFF
        raw = bytes(raw)
    else:
        raw = data.draw(mutated_bytes(seed, IMAGE_TOKENS))
    path = fresh(work) / "photo.img"
    path.write_bytes(raw)
    crop = data.draw(
        st.sampled_from([None, None, None, (0, 0, 8, 8), (-1, 0, 5, 5), (0, 0, 10**9, 3)])
    )

    def load():
        read_image_info(path)
        prepare_image(path, (64, 48), crop)

    run_case("image", load, lambda: repr(raw[:300]))
    shutil.rmtree(path.parent)


# ------------------------------------------------------------------------------ bundles
@pytest.fixture(scope="module")
def bundle_seed(work, project_dir) -> list[tuple[zipfile.ZipInfo, bytes]]:
    from worldstudio.core.interop.bundle import export_bundle

    out, _ = export_bundle(project_dir, work / "seed.zip")
    with zipfile.ZipFile(out) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


_NAMES = [
    "evil.sh",
    "unexpected/data.bin",
    "../outside.txt",
    "/abs.txt",
    "scene/../../x",
    "C:/x",
    "a\\b",
    "PROJECT.JSON",
    "project.json",
    "scene",
    "scene/points.ply",
    "x\x01y",
    "demo.wsproj/project.json",
    ".project.json.12345.abcdefgh.tmp",
]


@st.composite
def bundles(draw, seed, project_json: dict) -> bytes:
    entries = [(zipfile.ZipInfo(i.filename, i.date_time), data) for i, data in seed]
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["rename", "add", "json", "mode", "drop", "prefix"]))
        if op == "rename" and entries:
            j = draw(st.integers(0, len(entries) - 1))
            entries[j][0].filename = draw(st.sampled_from(_NAMES))
        elif op == "add":
            entries.append((zipfile.ZipInfo(draw(st.sampled_from(_NAMES))), b"data"))
        elif op == "json":
            text = draw(mutated_json(project_json))
            entries = [(i, text if i.filename == "project.json" else d) for i, d in entries]
        elif op == "mode" and entries:
            j = draw(st.integers(0, len(entries) - 1))
            kind = draw(st.sampled_from([0o120777, 0o010644, 0o020644, 0o040755]))
            entries[j][0].external_attr = kind << 16
        elif op == "drop" and entries:
            entries.pop(draw(st.integers(0, len(entries) - 1)))
        elif op == "prefix":
            for info, _d in entries:
                info.filename = "demo.wsproj/" + info.filename
            entries.append((zipfile.ZipInfo("README.txt"), b"read me"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the test
        for info, payload in entries:
            info.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            with contextlib.suppress(ValueError):
                zf.writestr(info, payload)
    raw = buf.getvalue()
    if draw(st.integers(0, 3)) == 0:  # lie about sizes in the central directory
        raw = raw.replace(struct.pack("<I", len(seed[0][1])), struct.pack("<I", 0xFFFFFFF0), 1)
    if draw(st.integers(0, 3)) == 0:
        raw = draw(mutated_bytes(raw, [b"PK\x03\x04", b"PK\x01\x02", b"\xff" * 8, b"\x00" * 8]))
    return raw


@FUZZ
@given(data=st.data())
def test_bundles(data, work, bundle_seed, project_dir):
    project_json = json.loads((project_dir / "project.json").read_text())
    raw = data.draw(bundles(bundle_seed, project_json))
    folder = fresh(work)
    (folder / "b.zip").write_bytes(raw)
    out = folder / "out.wsproj"

    def load():
        succeeded_then_info(out, "import", "bundle", folder / "b.zip", "--out", out)
        outside = sorted(p.name for p in folder.iterdir() if p.name not in ("b.zip", "out.wsproj"))
        if outside:
            raise RuntimeError(f"the import left {outside} beside the project")

    run_case("bundle", load, lambda: repr(raw[:1500]))
    shutil.rmtree(folder)


# ------------------------------------------------------------------------------ the seeds
def test_the_seeds_are_valid(
    work, project_dir, nerfstudio_seeds, liveworld_seed, ply_seeds, image_seeds, bundle_seed
):
    """Every fuzzer starts from inputs that load: the damage is what it tests."""
    from worldstudio.core.pointcloud import read_ply
    from worldstudio.core.reconstruct.image_io import prepare_image

    cli("info", project_dir)
    for seed in nerfstudio_seeds:
        folder = fresh(work)
        shutil.copy(project_dir / "project.json", folder / "project.json")
        (folder / "cp.json").write_text(json.dumps(seed))
        succeeded_then_info(folder, "import", "nerfstudio", folder / "cp.json", "--into", folder)
    out = fresh(work) / "lw.wsproj"
    succeeded_then_info(
        out, "import", "liveworld", liveworld_seed / "sample.yaml", "--out", out, "--no-reconstruct"
    )
    for raw in ply_seeds:
        (work / "seed.ply").write_bytes(raw)
        assert len(read_ply(work / "seed.ply")) > 0
    for raw in image_seeds:
        (work / "seed.img").write_bytes(raw)
        assert prepare_image(work / "seed.img", (64, 48)).rgb.shape == (48, 64, 3)
    with zipfile.ZipFile(work / "seed2.zip", "w") as zf:
        for info, payload in bundle_seed:
            zf.writestr(info, payload)
    out = fresh(work) / "b.wsproj"
    succeeded_then_info(out, "import", "bundle", work / "seed2.zip", "--out", out)
    succeeded_then_info(project_dir, "path", project_dir, "--actions=(FN)(fLL)")
