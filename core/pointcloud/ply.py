"""PLY read/write for point clouds, with plain numpy (docs/FORMATS.md, "Video and point clouds").

``write_ply`` writes ``binary_little_endian 1.0`` with float x, y, z, uchar red, green, blue,
optional float nx, ny, nz and, when the cloud has entity ids, an int ``entity_id`` property; the
file is written atomically (temporary file in the same folder, fsync, rename).

``read_ply`` reads binary little-endian, binary big-endian and ASCII files. It takes x/y/z of any
numeric type; colours from red/green/blue, r/g/b or diffuse_red/diffuse_green/diffuse_blue
(uchar as is; 16-bit integers scaled to 8 bits; floats in 0..1 scaled by 255, larger floats
clipped to 0..255), grey (128) when a file has none; ``entity_id`` when present. Other vertex
properties (list ones included) and other elements (faces, edges...) are skipped. Anything
malformed raises core.errors.FormatError naming the file and the problem.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worldstudio.core.errors import FormatError
from worldstudio.core.fileio import atomic_write
from worldstudio.core.pointcloud.cloud import PointCloud

__all__ = ["read_ply", "read_ply_with_normals", "write_ply"]

# PLY scalar type names (both spellings) -> numpy type codes without byte order.
_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_BYTE_ORDERS = {"binary_little_endian": "<", "binary_big_endian": ">"}
_FORMATS = ("ascii", *_BYTE_ORDERS)
_COLOUR_NAMES = (
    ("red", "green", "blue"),
    ("r", "g", "b"),
    ("diffuse_red", "diffuse_green", "diffuse_blue"),
)
_GREY = 128
_MAX_HEADER_BYTES = 1 << 20


@dataclass
class _Property:
    name: str
    type: str  # numpy code, e.g. "f4"
    count_type: str | None = None  # numpy code of a list property's length; None if scalar


@dataclass
class _Element:
    name: str
    count: int
    props: list[_Property] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(p.count_type is not None for p in self.props)


@dataclass
class _Header:
    fmt: str
    elements: list[_Element]
    data_offset: int


# --------------------------------------------------------------------------------------------
# writing


def write_ply(path: str | os.PathLike, cloud: PointCloud, normals=None) -> None:
    """Write ``cloud`` (and optional (N, 3) normals) as a binary little-endian PLY, atomically."""
    if not isinstance(cloud, PointCloud):
        raise TypeError(f"write_ply takes a PointCloud, got {type(cloud).__name__}")
    path = Path(path)
    n = len(cloud)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if normals is not None:
        normals = np.asarray(normals)
        if normals.shape != (n, 3) or not np.issubdtype(normals.dtype, np.floating):
            raise ValueError(
                f"normals must be a float array of shape ({n}, 3), got {normals.dtype} "
                f"{normals.shape}"
            )
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if cloud.entity_id is not None:
        fields.append(("entity_id", "<i4"))
    data = np.empty(n, dtype=np.dtype(fields))
    for i, name in enumerate(("x", "y", "z")):
        data[name] = cloud.xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        data[name] = cloud.rgb[:, i]
    if normals is not None:
        for i, name in enumerate(("nx", "ny", "nz")):
            data[name] = normals[:, i]
    if cloud.entity_id is not None:
        data["entity_id"] = cloud.entity_id

    ply_type = {"<f4": "float", "u1": "uchar", "<i4": "int"}
    lines = ["ply", "format binary_little_endian 1.0", "comment written by World Studio"]
    lines.append(f"element vertex {n}")
    lines += [f"property {ply_type[t]} {name}" for name, t in fields]
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    _atomic_write(path, header, data)


def _atomic_write(path: Path, header: bytes, data: np.ndarray) -> None:
    with atomic_write(path) as f:
        f.write(header)
        f.write(data.data.cast("B"))  # no copy of the packed rows


# --------------------------------------------------------------------------------------------
# reading


def read_ply(path: str | os.PathLike) -> PointCloud:
    """Read a PLY file's vertices as a PointCloud (see the module docstring)."""
    return read_ply_with_normals(path)[0]


def read_ply_with_normals(path: str | os.PathLike) -> tuple[PointCloud, np.ndarray | None]:
    """Like read_ply, plus the vertex normals (N, 3) float32 when the file has nx, ny, nz."""
    path = Path(path)
    try:
        with _open_regular(path) as f:
            header = _read_header(f, path)
            index = _locate_vertex(header, path)
            columns = _read_vertex_columns(f, header, index, path)
    except OSError as exc:
        raise FormatError(f"{path}: cannot read PLY file: {exc.strerror or exc}") from None
    return _to_cloud(columns, header.elements[index], path)


def _open_regular(path: Path):
    """``path`` opened for reading, when it is a regular file (a FIFO or a device would block
    or never end)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _error(path, "not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _error(path: Path, what: str) -> FormatError:
    return FormatError(f"{path}: {what}")


def _read_header(f, path: Path) -> _Header:
    first = f.readline(16)
    if first.rstrip(b"\r\n") != b"ply":
        raise _error(path, "not a PLY file (it does not start with 'ply')")
    fmt = None
    elements: list[_Element] = []
    total = len(first)
    while True:
        raw = f.readline(_MAX_HEADER_BYTES)
        total += len(raw)
        if not raw:
            raise _error(path, "bad PLY header: the file ends before 'end_header'")
        if total > _MAX_HEADER_BYTES:
            raise _error(path, "bad PLY header: no 'end_header' within the first 1 MiB")
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _error(path, "bad PLY header: it is not ASCII text") from None
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        key = words[0]
        if key == "end_header":
            break
        if key == "format":
            if len(words) != 3:
                raise _error(path, f"bad PLY header line {line!r}")
            if words[1] not in _FORMATS:
                raise _error(path, f"unsupported PLY format {words[1]!r}")
            if words[2].split(".")[0] != "1":
                raise _error(path, f"unsupported PLY version {words[2]!r}")
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise _error(path, f"bad PLY header line {line[:80]!r}")
            if len(words[2]) > 18:  # more than 10^18 rows: no file holds them
                raise _error(path, f"bad PLY header: element '{words[1][:40]}' count too large")
            elements.append(_Element(words[1], int(words[2])))
        elif key == "property":
            if not elements:
                raise _error(path, f"bad PLY header: property before any element: {line!r}")
            prop = _parse_property(words, line, path)
            if any(p.name == prop.name for p in elements[-1].props):
                raise _error(
                    path,
                    f"bad PLY header: element '{elements[-1].name}' has property "
                    f"'{prop.name}' twice",
                )
            elements[-1].props.append(prop)
        else:
            raise _error(path, f"bad PLY header line {line!r}")
    if fmt is None:
        raise _error(path, "bad PLY header: no 'format' line")
    return _Header(fmt, elements, f.tell())


def _parse_property(words: list[str], line: str, path: Path) -> _Property:
    if len(words) == 5 and words[1] == "list":
        count_t, item_t = _TYPES.get(words[2]), _TYPES.get(words[3])
        if count_t is None or item_t is None or count_t[0] == "f":
            raise _error(path, f"unsupported PLY property type in {line!r}")
        return _Property(words[4], item_t, count_t)
    if len(words) == 3:
        t = _TYPES.get(words[1])
        if t is None:
            raise _error(path, f"unsupported PLY property type {words[1]!r} in {line!r}")
        return _Property(words[2], t)
    raise _error(path, f"bad PLY header line {line!r}")


def _locate_vertex(header: _Header, path: Path) -> int:
    """Index of the (first) vertex element, checked to have scalar x, y, z."""
    i = next((i for i, el in enumerate(header.elements) if el.name == "vertex"), None)
    if i is None:
        raise _error(path, "PLY file has no 'vertex' element")
    el = header.elements[i]
    names = {p.name: p for p in el.props}
    for axis in ("x", "y", "z"):
        if axis not in names:
            raise _error(path, f"PLY vertex element has no '{axis}' property")
        if names[axis].count_type is not None:
            raise _error(path, f"PLY vertex property '{axis}' is a list")
    return i


def _wanted(vertex: _Element) -> set[str]:
    """Names of the scalar vertex properties the reader uses."""
    want = {"x", "y", "z", "nx", "ny", "nz", "entity_id"}
    for names in _COLOUR_NAMES:
        want.update(names)
    return {p.name for p in vertex.props if p.count_type is None and p.name in want}


def _read_vertex_columns(f, header: _Header, index: int, path: Path) -> dict:
    """The wanted vertex columns, by property name."""
    vertex = header.elements[index]
    before = header.elements[:index]
    if header.fmt == "ascii":
        f.seek(header.data_offset)
        return _read_ascii(f.read(), before, vertex, path)
    order = _BYTE_ORDERS[header.fmt]
    size = os.fstat(f.fileno()).st_size
    pos = header.data_offset
    if any(el.has_lists for el in before) or vertex.has_lists:
        f.seek(0)
        buf = f.read()
        for el in before:
            pos = _walk_binary(buf, pos, el, order, path, collect=False)[0]
        return _walk_binary(buf, pos, vertex, order, path, collect=True)[1]
    for el in before:
        pos += el.count * np.dtype([(p.name, order + p.type) for p in el.props]).itemsize
    dtype = np.dtype([(p.name, order + p.type) for p in vertex.props])
    need = vertex.count * dtype.itemsize
    if pos + need > size:
        raise _error(
            path,
            f"truncated PLY data: {vertex.count} vertices need {need} bytes at offset {pos}, "
            f"the file has {max(0, size - pos)}",
        )
    f.seek(pos)
    data = np.fromfile(f, dtype=dtype, count=vertex.count)
    if data.shape[0] != vertex.count:
        raise _error(path, "truncated PLY data: fewer vertices than the header declares")
    return {name: data[name] for name in _wanted(vertex)}


def _walk_binary(buf, pos: int, el: _Element, order: str, path: Path, collect: bool):
    """Step over (and optionally collect the wanted scalars of) an element with list
    properties, row by row; returns (position after the element, columns)."""
    # Every row takes at least its scalars and list lengths: a count the rest of the file
    # cannot hold is an error before anything is allocated.
    min_row = sum(np.dtype(p.count_type or p.type).itemsize for p in el.props)
    if pos + el.count * min_row > len(buf):
        raise _error(path, f"truncated PLY data in element '{el.name}'")
    if not el.props:
        return pos, {}
    want = _wanted(el) if collect else set()
    cols = {p.name: np.empty(el.count, order + p.type) for p in el.props if p.name in want}
    steps = []
    for p in el.props:
        item = struct.Struct(order + np.dtype(p.type).char)
        count = None if p.count_type is None else struct.Struct(order + np.dtype(p.count_type).char)
        steps.append((p.name, item, count, cols.get(p.name)))
    try:
        for row in range(el.count):
            for _name, item, count, col in steps:
                if count is None:
                    if col is not None:
                        col[row] = item.unpack_from(buf, pos)[0]
                    pos += item.size
                else:
                    n = count.unpack_from(buf, pos)[0]
                    if n < 0:
                        raise _error(path, f"bad PLY data: negative list length in '{el.name}'")
                    pos += count.size + n * item.size
    except struct.error:
        raise _error(path, f"truncated PLY data in element '{el.name}'") from None
    if pos > len(buf):
        raise _error(path, f"truncated PLY data in element '{el.name}'")
    return pos, cols


def _read_ascii(text: bytes, before: list[_Element], vertex: _Element, path: Path) -> dict:
    """Parse the vertex rows of an ASCII PLY body (tokens, so line breaks do not matter)."""
    k = len(vertex.props)
    if not any(el.has_lists for el in before) and not vertex.has_lists:
        skip = sum(el.count * len(el.props) for el in before)
        need = skip + vertex.count * k
        if need > len(text):  # every value takes at least one byte
            raise _error(path, "truncated PLY data: fewer values than the header declares")
        tokens = text.split(None, need)[:need]
        if len(tokens) < need:
            raise _error(path, "truncated PLY data: fewer values than the header declares")
        rows = _numbers(tokens[skip:], path).reshape(vertex.count, k)
        return {p.name: rows[:, j] for j, p in enumerate(vertex.props) if p.name in _wanted(vertex)}
    tokens = text.split()
    pos = 0
    try:
        for el in before:
            pos = _walk_ascii(tokens, pos, el, path, None)
        if len(tokens) - pos < vertex.count * len(vertex.props):
            raise IndexError
        cols = {name: np.empty(vertex.count, np.float64) for name in _wanted(vertex)}
        _walk_ascii(tokens, pos, vertex, path, cols)
    except IndexError:
        raise _error(path, "truncated PLY data: fewer values than the header declares") from None
    return cols


def _walk_ascii(tokens: list[bytes], pos: int, el: _Element, path: Path, cols) -> int:
    if not el.props:  # rows without values take no tokens, however many the header declares
        return pos
    if len(tokens) - pos < el.count * len(el.props):
        raise IndexError
    for row in range(el.count):
        for p in el.props:
            if p.count_type is None:
                if cols is not None and p.name in cols:
                    cols[p.name][row] = _number(tokens[pos], path)
                pos += 1
            else:
                value = _number(tokens[pos], path)
                if not (math.isfinite(value) and value == int(value)):
                    raise _error(path, f"bad PLY data: list length {tokens[pos][:40]!r}")
                n = int(value)
                if n < 0:
                    raise _error(path, f"bad PLY data: negative list length in '{el.name}'")
                pos += 1 + n
    if pos > len(tokens):
        raise IndexError
    return pos


def _numbers(tokens: list[bytes], path: Path) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        raise _error(path, f"bad PLY data: {exc}") from None


def _number(token: bytes, path: Path) -> float:
    try:
        return float(token)
    except ValueError:
        raise _error(path, f"bad PLY data: {token[:40]!r} is not a number") from None


def _to_cloud(cols: dict, vertex: _Element, path: Path) -> tuple[PointCloud, np.ndarray | None]:
    n = vertex.count
    xyz = np.empty((n, 3), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # doubles beyond float32 become inf
        for i, axis in enumerate(("x", "y", "z")):
            xyz[:, i] = cols[axis]
    types = {p.name: p.type for p in vertex.props}
    rgb = None
    for names in _COLOUR_NAMES:
        if all(name in cols for name in names):
            rgb = np.empty((n, 3), np.uint8)
            for i, name in enumerate(names):
                rgb[:, i] = _colour_channel(cols[name], types[name])
            break
    if rgb is None:
        rgb = np.full((n, 3), _GREY, np.uint8)
    entity_id = None
    if "entity_id" in cols:
        ids = np.asarray(cols["entity_id"])
        if ids.dtype.kind == "f":
            if not (np.isfinite(ids).all() and (ids == np.round(ids)).all()):
                raise _error(path, "bad PLY data: entity_id values are not integers")
        info = np.iinfo(np.int32)
        if n and (ids.min() < info.min or ids.max() > info.max):
            raise _error(path, "bad PLY data: entity_id values do not fit in int32")
        entity_id = ids.astype(np.int32)
    normals = None
    if all(name in cols for name in ("nx", "ny", "nz")):
        normals = np.empty((n, 3), np.float32)
        for i, name in enumerate(("nx", "ny", "nz")):
            normals[:, i] = cols[name]
    return PointCloud(xyz, rgb, entity_id), normals


def _colour_channel(values: np.ndarray, ply_type: str) -> np.ndarray:
    """One colour channel as uint8 from the file's type (ASCII values arrive as float64)."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    if ply_type[0] == "f":
        v = values.astype(np.float64)
        v = np.nan_to_num(v, nan=0.0, posinf=255.0, neginf=0.0)
        if v.size and v.max() <= 1.0:
            v = v * 255.0
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)
    if ply_type == "u2":
        return np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)
    return np.clip(values, 0, 255).astype(np.uint8)
