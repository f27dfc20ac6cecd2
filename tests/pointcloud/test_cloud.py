"""The PointCloud type: validation and helpers, with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.errors import FormatError
from worldstudio.core.pointcloud import STATIC_ENTITY, PointCloud, PointCloudError


def cloud3(ids=True) -> PointCloud:
    xyz = np.array([[0, 0, 1], [1, 2, 3], [-1, 5, 2]], np.float32)
    rgb = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)
    return PointCloud(xyz, rgb, np.array([-1, 4, 4], np.int32) if ids else None)


def test_valid_cloud_keeps_arrays_and_types():
    c = cloud3()
    assert len(c) == 3
    assert c.xyz.dtype == np.float32 and c.rgb.dtype == np.uint8 and c.entity_id.dtype == np.int32
    assert c.has_entities and not cloud3(ids=False).has_entities
    assert c.xyz.flags.c_contiguous
    assert "3 points" in repr(c)


def test_convertible_dtypes_are_converted():
    c = PointCloud(np.ones((2, 3), np.float64), np.zeros((2, 3), np.uint8), np.array([1, -1]))
    assert c.xyz.dtype == np.float32 and c.entity_id.dtype == np.int32
    np.testing.assert_array_equal(c.entity_id, [1, -1])


@pytest.mark.parametrize(
    ("xyz", "rgb", "ids", "words"),
    [
        (np.zeros((2, 2), np.float32), np.zeros((2, 3), np.uint8), None, "xyz must have shape"),
        (np.zeros(3, np.float32), np.zeros((1, 3), np.uint8), None, "xyz must have shape"),
        (np.zeros((2, 3), np.int32), np.zeros((2, 3), np.uint8), None, "xyz must be float32"),
        (np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), None, "rgb must be uint8"),
        (np.zeros((2, 3), np.float32), np.zeros((3, 3), np.uint8), None, "rgb must have shape"),
        (
            np.zeros((2, 3), np.float32),
            np.zeros((2, 3), np.uint8),
            np.zeros(3, np.int32),
            "entity_id",
        ),
        (
            np.zeros((2, 3), np.float32),
            np.zeros((2, 3), np.uint8),
            np.zeros(2, np.float32),
            "int32",
        ),
        (
            np.zeros((1, 3), np.float32),
            np.zeros((1, 3), np.uint8),
            np.array([2**40]),
            "fit in int32",
        ),
    ],
)
def test_invalid_arrays_raise_clear_errors(xyz, rgb, ids, words):
    with pytest.raises(PointCloudError, match=words) as info:
        PointCloud(xyz, rgb, ids)
    assert isinstance(info.value, FormatError) and isinstance(info.value, ValueError)


def test_empty():
    e = PointCloud.empty()
    assert len(e) == 0 and e.xyz.shape == (0, 3) and e.rgb.shape == (0, 3) and e.entity_id is None
    assert PointCloud.empty(with_entity_id=True).entity_id.shape == (0,)


def test_concat_fills_missing_entity_ids_with_static():
    a, b = cloud3(ids=False), cloud3(ids=True)
    c = PointCloud.concat([a, b])
    assert len(c) == 6
    np.testing.assert_array_equal(c.xyz[3:], b.xyz)
    np.testing.assert_array_equal(c.entity_id, [STATIC_ENTITY] * 3 + [-1, 4, 4])
    assert PointCloud.concat([a, a]).entity_id is None
    assert len(PointCloud.concat([])) == 0
    with pytest.raises(TypeError):
        PointCloud.concat([a, "not a cloud"])


def test_select_by_mask_and_by_index():
    c = cloud3()
    s = c.select(np.array([True, False, True]))
    np.testing.assert_array_equal(s.xyz, [[0, 0, 1], [-1, 5, 2]])
    np.testing.assert_array_equal(s.entity_id, [-1, 4])
    s = c.select([2, 0])
    np.testing.assert_array_equal(s.rgb, [[70, 80, 90], [10, 20, 30]])
    assert len(c.select(np.array([], dtype=np.int64))) == 0
    with pytest.raises(PointCloudError):
        c.select(np.array([True, False]))
    with pytest.raises(PointCloudError):
        c.select([3])
    with pytest.raises(PointCloudError):
        c.select([0.5])


def test_transformed_rotation_and_translation():
    # 90 degrees about +z (x -> y, y -> -x), then move by (10, 20, 30).
    T = np.array([[0, -1, 0, 10], [1, 0, 0, 20], [0, 0, 1, 30], [0, 0, 0, 1]], float)
    t = cloud3().transformed(T)
    np.testing.assert_array_equal(t.xyz, [[10, 20, 31], [8, 21, 33], [5, 19, 32]])
    np.testing.assert_array_equal(t.rgb, cloud3().rgb)
    np.testing.assert_array_equal(t.entity_id, cloud3().entity_id)
    with pytest.raises(PointCloudError):
        cloud3().transformed(np.eye(3))
    with pytest.raises(PointCloudError):
        cloud3().transformed(np.full((4, 4), 0.5))


def test_bounds():
    lo, hi = cloud3().bounds()
    np.testing.assert_array_equal(lo, [-1, 0, 1])
    np.testing.assert_array_equal(hi, [1, 5, 3])
    c = PointCloud.concat(
        [cloud3(), PointCloud(np.array([[np.nan, 0, 0]], np.float32), np.zeros((1, 3), np.uint8))]
    )
    np.testing.assert_array_equal(c.bounds()[1], [1, 5, 3])
    with pytest.raises(PointCloudError, match="empty"):
        PointCloud.empty().bounds()


def test_copy_is_independent():
    a = cloud3()
    b = a.copy()
    b.xyz[0, 0] = 99
    b.entity_id[0] = 7
    assert a.xyz[0, 0] == 0 and a.entity_id[0] == -1
