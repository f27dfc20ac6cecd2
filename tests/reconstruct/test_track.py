"""Tracking entity masks through frames with the SAM 2.1 video model (tiny random weights)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from worldstudio.core.errors import Cancelled
from worldstudio.core.jobs import CancelToken, JobContext
from worldstudio.core.reconstruct.segment import SegmentationError
from worldstudio.core.reconstruct.track import track_masks

pytestmark = pytest.mark.usefixtures("models_env")


@pytest.fixture(scope="module")
def oracle_frames():
    from worldstudio.core.oracle import OracleScene, demo_intrinsics

    scene = OracleScene.demo()
    H, W = 72, 128
    K = demo_intrinsics(H, W)
    frames = [scene.render(np.eye(4), K, H, W, t=t) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return [f.rgb for f in frames], [f.entity_mask for f in frames]


def test_track_masks_shapes_and_first_frame(oracle_frames):
    rgbs, truth = oracle_frames
    reports = []
    tracks = track_masks(
        rgbs, {1: truth[0], "nothing": np.zeros_like(truth[0])}, ctx=JobContext(reports.append)
    )
    assert set(tracks) == {1, "nothing"}
    ball = tracks[1]
    assert ball.shape == (5, 72, 128) and ball.dtype == bool
    np.testing.assert_array_equal(ball[0], truth[0])
    assert not tracks["nothing"].any()
    done = [r.done for r in reports if r.kind == "progress"]
    assert done == [0, 1, 2, 3, 4, 5] and reports[-1].total == 5
    assert "torchvision" not in sys.modules


def test_several_entities_and_a_single_frame(oracle_frames):
    rgbs, truth = oracle_frames
    other = np.zeros_like(truth[0])
    other[50:70, 5:30] = True
    tracks = track_masks(rgbs[:3], {"ball": truth[0], "floor": other}, model="sam2.1-tiny")
    assert tracks["ball"].shape == tracks["floor"].shape == (3, 72, 128)
    np.testing.assert_array_equal(tracks["floor"][0], other)
    single = track_masks(rgbs[:1], {7: truth[0]})
    assert single[7].shape == (1, 72, 128) and (single[7][0] == truth[0]).all()


def test_bad_inputs(oracle_frames):
    rgbs, truth = oracle_frames
    with pytest.raises(SegmentationError, match="no frames"):
        track_masks([], {1: truth[0]})
    with pytest.raises(SegmentationError, match="frame 1"):
        track_masks([rgbs[0], rgbs[1][:10]], {1: truth[0]})
    with pytest.raises(SegmentationError, match="mask of entity 1"):
        track_masks(rgbs, {1: truth[0][:10]})
    with pytest.raises(SegmentationError, match="uint8"):
        track_masks([rgbs[0].astype(np.float32)], {1: truth[0]})


def test_cancel(oracle_frames):
    rgbs, truth = oracle_frames
    token = CancelToken()

    def sink(report):
        if report.kind == "progress" and report.done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        track_masks(rgbs, {1: truth[0]}, ctx=JobContext(sink, token))
