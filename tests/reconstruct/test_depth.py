"""Depth models through the real loaders (tiny random weights in the fake hub cache)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import tiny_models
from worldstudio.core.models import ModelError
from worldstudio.core.reconstruct.depth import (
    MAX_DEPTH,
    RELATIVE_FAR,
    RELATIVE_NEAR,
    DepthPrediction,
    disparity_to_depth,
    dpt_resize_shape,
    load_depth_estimator,
)

pytestmark = pytest.mark.usefixtures("models_env")

PHOTO = Path(__file__).resolve().parents[1] / "data" / "coffee.jpg"


@pytest.fixture(scope="module")
def rgb():
    img = Image.open(PHOTO).convert("RGB").crop((0, 27, 600, 373)).resize((208, 120))
    return np.asarray(img)


def test_disparity_to_depth_scale():
    d = np.linspace(0.0, 10.0, 1001).reshape(7, 143)
    z = disparity_to_depth(d)
    assert z.dtype == np.float32 and z.shape == d.shape
    assert z.min() == pytest.approx(RELATIVE_NEAR) and z.max() == pytest.approx(RELATIVE_FAR)
    flat = z.ravel()
    assert np.all(np.diff(flat) <= 1e-6)  # more disparity, nearer
    lo, hi = np.percentile(d, [2, 98])
    mid = disparity_to_depth(np.array([[lo, hi, (lo + hi) / 2]] * 3))  # not enough spread alone
    assert np.isfinite(mid).all()
    assert np.allclose(
        disparity_to_depth(np.full((4, 4), 3.0)), 0.5 * (RELATIVE_NEAR + RELATIVE_FAR)
    )
    assert np.isfinite(disparity_to_depth(np.array([[np.nan, 1.0], [2.0, np.inf]]))).all()


def test_processor_resize_rule():
    assert dpt_resize_shape(480, 832, (518, 518), True, 14) == (518, 896)
    assert dpt_resize_shape(832, 480, (518, 518), True, 14) == (896, 518)
    assert dpt_resize_shape(3000, 4000, (518, 518), True, 14) == (518, 686)
    assert dpt_resize_shape(480, 832, (518, 518), False, 14) == (518, 518)


def test_relative_model_by_default(rgb):
    est = load_depth_estimator()
    assert est.name == tiny_models.DA_SMALL and est.arch == "depth_anything" and not est.metric
    assert est.folder.parent.name == "snapshots"
    pred = est.predict(rgb)
    assert pred.kind == "relative" and pred.values.shape == (120, 208) and pred.fov_h_deg is None
    depth = pred.depth()
    assert depth.dtype == np.float32 and np.all(depth >= RELATIVE_NEAR - 1e-5)
    assert np.all(depth <= RELATIVE_FAR + 1e-4) and depth.std() > 0  # the image shows through
    assert "torchvision" not in sys.modules


def test_hand_preprocessing_matches_the_transformers_processor(rgb):
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    est = load_depth_estimator("depth-anything-v2-small")
    ours = est.pixel_values(rgb).cpu().numpy()
    ref = DPTImageProcessorPil.from_pretrained(str(est.folder))(
        images=Image.fromarray(rgb), return_tensors="np"
    )
    ref = ref["pixel_values"]
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() < 0.02  # same resize rule, mean/std; resampler rounding only


def test_metric_models(rgb):
    for name, top in (
        ("depth-anything-v2-metric-indoor-small", 20),
        ("depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf", 80),
    ):
        est = load_depth_estimator(name)
        assert est.metric
        pred = est.predict(rgb)
        d = pred.depth()
        assert pred.kind == "metric" and pred.metric and 0 < d.min() and d.max() < top


def test_depth_pro_metric_depth_and_fov(rgb):
    est = load_depth_estimator("depth-pro")
    assert est.name == tiny_models.DEPTH_PRO and est.input_shape(120, 208) == (64, 64)
    pred = est.predict(rgb)
    assert pred.kind == "inverse" and pred.values.shape == (120, 208)
    assert pred.fov_h_deg == pytest.approx(55.0, abs=1e-3)
    d1 = pred.depth(focal_px=200.0)
    d2 = pred.depth(focal_px=400.0)
    ok = d2 < MAX_DEPTH  # random weights: some pixels hit the far clamp
    assert ok.mean() > 0.5
    np.testing.assert_allclose(d2[ok], 2 * d1[ok], rtol=1e-5)  # metric depth scales with the focal
    own = pred.depth()  # from its own fov estimate
    f_own = 0.5 * 208 / np.tan(np.radians(55.0) / 2)
    np.testing.assert_allclose(own, pred.depth(focal_px=f_own), rtol=1e-6)


def test_depth_prediction_conversions():
    inv = DepthPrediction("inverse", np.full((2, 4), 0.5, np.float32), 90.0)
    # W / f = 2 tan(45 deg) = 2, inverse depth 0.5 * 2 = 1 -> depth 1
    np.testing.assert_allclose(inv.depth(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError):
        DepthPrediction("inverse", np.ones((2, 2), np.float32)).depth()


def test_local_folder_and_bad_names(tmp_path):
    folder = tiny_models.tiny_model_folder(tiny_models.DA_INDOOR)
    est = load_depth_estimator(folder)
    assert est.info is None and est.name == str(folder) and est.metric
    with pytest.raises(ModelError, match="unknown depth model 'midas'"):
        load_depth_estimator("midas")
    with pytest.raises(ModelError, match="is a segmentation model"):
        load_depth_estimator("sam2.1-tiny")
    with pytest.raises(ModelError, match="no config.json"):
        load_depth_estimator(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="not a depth model"):
        load_depth_estimator(tmp_path)


def test_corrupt_weights_are_a_clear_error(tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(tiny_models.tiny_model_folder(tiny_models.DA_SMALL), folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError) as err:
        load_depth_estimator(folder)
    assert str(folder) in str(err.value) and "cannot load" in str(err.value)


def test_weights_of_another_model_are_refused(tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(tiny_models.tiny_model_folder(tiny_models.DA_SMALL), folder)
    # a config that asks for a deeper backbone than the saved weights hold
    import json

    cfg = json.loads((folder / "config.json").read_text())
    cfg["backbone_config"]["num_hidden_layers"] = 6  # two more layers than were saved
    cfg["backbone_config"].pop("out_features", None)
    cfg["backbone_config"].pop("stage_names", None)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="tensors missing"):
        load_depth_estimator(folder)
