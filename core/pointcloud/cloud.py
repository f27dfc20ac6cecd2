"""The point-cloud type: xyz float32 (N, 3), rgb uint8 (N, 3), optional entity_id int32 (N,).

An entity id of -1 means "static world"; other values name the entity a point belongs to.
Arrays are validated and made C-contiguous on construction (docs/CONVENTIONS.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from worldstudio.core.errors import FormatError

__all__ = ["STATIC_ENTITY", "PointCloud", "PointCloudError"]

STATIC_ENTITY = -1
"""Entity id of points that belong to the static world."""


class PointCloudError(FormatError, ValueError):
    """Arrays that do not make a valid point cloud (both a FormatError and a ValueError)."""


def _check_xyz(xyz) -> np.ndarray:
    a = np.asarray(xyz)
    if a.ndim != 2 or a.shape[1] != 3:
        raise PointCloudError(f"point cloud xyz must have shape (N, 3), got {a.shape}")
    if a.dtype != np.float32:
        if not np.issubdtype(a.dtype, np.floating):
            raise PointCloudError(f"point cloud xyz must be float32, got {a.dtype}")
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def _check_rgb(rgb, n: int) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise PointCloudError(f"point cloud rgb must be uint8, got {a.dtype}")
    if a.shape != (n, 3):
        raise PointCloudError(f"point cloud rgb must have shape ({n}, 3) like xyz, got {a.shape}")
    return np.ascontiguousarray(a)


def _check_entity_id(entity_id, n: int) -> np.ndarray:
    a = np.asarray(entity_id)
    if a.shape != (n,):
        raise PointCloudError(
            f"point cloud entity_id must have shape ({n},) like xyz, got {a.shape}"
        )
    if a.dtype != np.int32:
        if not np.issubdtype(a.dtype, np.integer):
            raise PointCloudError(f"point cloud entity_id must be int32, got {a.dtype}")
        if n and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
            raise PointCloudError("point cloud entity_id values do not fit in int32")
        a = a.astype(np.int32)
    return np.ascontiguousarray(a)


@dataclass(eq=False)
class PointCloud:
    """N coloured points, optionally tagged with entity ids (-1 = static world).

    xyz: (N, 3) float32 (other float dtypes are converted). rgb: (N, 3) uint8.
    entity_id: None, or (N,) int32 (other integer dtypes are converted).
    Invalid shapes or dtypes raise PointCloudError (a FormatError and a ValueError).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    entity_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyz = _check_xyz(self.xyz)
        n = self.xyz.shape[0]
        self.rgb = _check_rgb(self.rgb, n)
        if self.entity_id is not None:
            self.entity_id = _check_entity_id(self.entity_id, n)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def __repr__(self) -> str:
        ent = "" if self.entity_id is None else ", with entity ids"
        return f"PointCloud({len(self)} points{ent})"

    @property
    def has_entities(self) -> bool:
        return self.entity_id is not None

    @classmethod
    def empty(cls, with_entity_id: bool = False) -> PointCloud:
        """A cloud with no points (and an empty entity_id array if asked)."""
        return cls(
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.uint8),
            np.zeros((0,), np.int32) if with_entity_id else None,
        )

    @classmethod
    def concat(cls, clouds: Iterable[PointCloud]) -> PointCloud:
        """All points of ``clouds`` in order. If any cloud has entity ids, the result has them
        and the points of clouds without ids get -1 (static world)."""
        clouds = list(clouds)
        for c in clouds:
            if not isinstance(c, PointCloud):
                raise TypeError(f"concat takes PointCloud objects, got {type(c).__name__}")
        if not clouds:
            return cls.empty()
        with_ids = any(c.entity_id is not None for c in clouds)
        ids = None
        if with_ids:
            ids = np.concatenate(
                [
                    c.entity_id
                    if c.entity_id is not None
                    else np.full(len(c), STATIC_ENTITY, np.int32)
                    for c in clouds
                ]
            )
        return cls(
            np.concatenate([c.xyz for c in clouds]),
            np.concatenate([c.rgb for c in clouds]),
            ids,
        )

    def select(self, mask) -> PointCloud:
        """The points picked by a boolean mask (N,) or an integer index array (copies)."""
        m = np.asarray(mask)
        if m.dtype == np.bool_:
            if m.shape != (len(self),):
                raise PointCloudError(
                    f"selection mask must have shape ({len(self)},), got {m.shape}"
                )
        elif np.issubdtype(m.dtype, np.integer) or m.size == 0:
            m = m.astype(np.intp).reshape(-1)
            if m.size and (m.min() < -len(self) or m.max() >= len(self)):
                raise PointCloudError(f"selection index out of range for {len(self)} points")
        else:
            raise PointCloudError(
                f"selection must be a bool mask or integer indices, got {m.dtype}"
            )
        ids = None if self.entity_id is None else self.entity_id[m]
        return PointCloud(self.xyz[m], self.rgb[m], ids)

    def transformed(self, T) -> PointCloud:
        """The cloud moved by a 4x4 rigid or affine transform (applied in float64)."""
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (4, 4):
            raise PointCloudError(f"transform must be a 4x4 matrix, got shape {T.shape}")
        if not np.isfinite(T).all():
            raise PointCloudError("transform must be finite")
        if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
            raise PointCloudError(f"transform's last row must be (0, 0, 0, 1), got {T[3]}")
        xyz = self.xyz.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        ids = None if self.entity_id is None else self.entity_id.copy()
        return PointCloud(xyz.astype(np.float32), self.rgb.copy(), ids)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz), float32 (3,) each, over the finite points.

        Raises PointCloudError when there is no finite point."""
        finite = np.isfinite(self.xyz).all(axis=1)
        pts = self.xyz if finite.all() else self.xyz[finite]
        if len(pts) == 0:
            raise PointCloudError("an empty point cloud has no bounds")
        return pts.min(axis=0), pts.max(axis=0)

    def copy(self) -> PointCloud:
        ids = None if self.entity_id is None else self.entity_id.copy()
        return PointCloud(self.xyz.copy(), self.rgb.copy(), ids)
