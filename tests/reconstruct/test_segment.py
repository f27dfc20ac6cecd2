"""SAM 2.1 masks from clicks and boxes (tiny random Sam2Model via the fake hub), entities with
3D anchors, and the anchor checked against the oracle scene's exact depth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldstudio.core.jobs import JobContext
from worldstudio.core.models import ModelError
from worldstudio.core.project import ProjectFolder
from worldstudio.core.reconstruct.segment import (
    Sam2Segmenter,
    SegmentationError,
    anchor_from_depth,
    entity_from_mask,
    entity_from_prompt,
    entity_job,
    fit_mask,
    load_mask,
    mask_anchor,
    segment_image,
)

pytestmark = pytest.mark.usefixtures("models_env")

PHOTO = Path(__file__).resolve().parents[1] / "data" / "coffee.jpg"


@pytest.fixture(scope="module")
def rgb():
    return np.asarray(Image.open(PHOTO).convert("RGB").resize((240, 160)))


@pytest.fixture
def photo_project(tmp_path):
    from worldstudio.core.reconstruct.new_project import new_project_from_image

    root = tmp_path / "p"
    project = new_project_from_image(PHOTO, root, size=(240, 144))
    return root, project


def test_clicks_and_boxes_give_masks(rgb):
    seg = Sam2Segmenter()
    assert seg.size == 128 and seg.info.repo_id == "facebook/sam2.1-hiera-tiny"
    seg.set_image(rgb)
    one = seg.predict([(120, 80)])
    assert one.mask.shape == (160, 240) and one.mask.dtype == bool and np.isfinite(one.score)
    two = seg.predict([(120, 80), (30, 20)], labels=[1, 0])
    assert two.mask.shape == (160, 240)
    boxed = seg.predict(box=(60, 40, 180, 120))
    assert boxed.mask.shape == (160, 240)
    both = seg.predict([(120, 80)], box=(180, 120, 60, 40))  # corners in any order
    assert both.mask.shape == (160, 240)
    assert segment_image(rgb, [(10, 10)]).shape == (160, 240)
    assert "torchvision" not in sys.modules


def test_prompt_errors(rgb):
    seg = Sam2Segmenter("sam2.1-tiny")
    with pytest.raises(SegmentationError, match="set_image"):
        seg.predict([(1, 1)])
    seg.set_image(rgb)
    with pytest.raises(SegmentationError, match="at least one click"):
        seg.predict()
    with pytest.raises(SegmentationError, match="outside the 240x160 image"):
        seg.predict([(300, 10)])
    with pytest.raises(SegmentationError, match="2 click points but 1 labels"):
        seg.predict([(1, 1), (2, 2)], labels=[1])
    with pytest.raises(SegmentationError, match="labels must be 1"):
        seg.predict([(1, 1)], labels=[2])
    with pytest.raises(SegmentationError, match="is empty"):
        seg.predict(box=(5, 5, 5, 50))
    with pytest.raises(ModelError, match="is a depth model"):
        Sam2Segmenter("depth-pro")


def test_entity_from_clicks_on_a_project(photo_project):
    root, project = photo_project
    before = (root / "project.json").read_bytes()
    reports = []
    # the tiny SAM 2 is built from torch.manual_seed(0) (tests/tiny_models.py), so its mask for
    # this click is fixed and not empty (about a quarter of the image): an empty one is a failure
    entity = entity_from_prompt(
        root, project, "cup", points=[(120, 72)], ctx=JobContext(reports.append)
    )
    assert entity.name == "cup" and entity.mask_file == f"scene/masks/{entity.id}.png"
    mask = load_mask(root / entity.mask_file)
    assert mask.shape == (144, 240) and mask.any()
    with Image.open(root / entity.mask_file) as img:
        assert img.mode == "L" and set(np.unique(np.asarray(img))) <= {0, 255}
    assert entity.anchor is not None and all(np.isfinite(entity.anchor)) and entity.anchor[2] > 0
    assert entity.defined_from.position == (0.0, 0.0, 0.0)
    assert entity.defined_fov == pytest.approx(project.camera_path.keyframes[0].fov)
    assert (root / "project.json").read_bytes() == before  # the caller adds the entity
    project.entities.append(entity)
    ProjectFolder(root).save(project)
    assert ProjectFolder(root).load().entity(entity.id).mask_file == entity.mask_file
    assert [r.done for r in reports if r.kind == "progress"] == [0, 1, 2]


def test_entity_job_and_a_hand_drawn_mask(photo_project):
    root, project = photo_project
    mask = np.zeros((144, 240), bool)
    mask[40:80, 100:150] = True
    e = entity_from_mask(root, project, "block", mask, entity_id="ent-block")
    assert e.id == "ent-block" and (load_mask(root / "scene/masks/ent-block.png") == mask).all()
    with pytest.raises(SegmentationError, match="is empty"):
        entity_from_mask(root, project, "nothing", np.zeros((144, 240), bool))
    with pytest.raises(SegmentationError, match="but the project's image is 240x144"):
        entity_from_mask(root, project, "wrong", np.ones((10, 10), bool))
    job = entity_job(root, "box", box=(0, 0, 240, 144))
    entity = job(JobContext())  # the seeded tiny SAM 2 finds a mask in this box
    assert entity.name == "box" and load_mask(root / entity.mask_file).any()


def test_the_anchor_from_exact_depth_lies_on_the_oracle_ball(tmp_path):
    from worldstudio.core.oracle import OracleScene
    from worldstudio.core.oracle.demo_project import create_demo_project

    root = tmp_path / "demo"
    project = create_demo_project(root, width=208, height=120)
    mask = load_mask(root / "scene" / "masks" / "ball.png")
    assert mask.sum() > 20
    e = entity_from_mask(root, project, "ball", mask)
    scene = OracleScene.demo()
    centre = scene.entity_position(0.0)
    # the median of the visible surface sits on the ball, between its centre and the camera
    d = np.linalg.norm(np.array(e.anchor) - centre)
    assert scene.entity_radius * 0.5 < d <= scene.entity_radius + 1e-3
    assert e.anchor[2] < centre[2]
    depth = np.load(root / "scene" / "depth.npy")
    assert mask_anchor(np.zeros_like(mask), depth, np.array(project.intrinsics.K)) is None


def test_a_click_on_the_ball_anchors_on_its_surface(tmp_path):
    """anchor_from_depth: every pixel of the oracle ball's mask, clicked on the source image (or
    on a source image twice the size), gives a point on the ball's surface."""
    from worldstudio.core.oracle import OracleScene
    from worldstudio.core.oracle.demo_project import create_demo_project

    root = tmp_path / "demo"
    project = create_demo_project(root, width=208, height=120)
    scene = OracleScene.demo()
    centre, radius = scene.entity_position(0.0), scene.entity_radius
    vs, us = np.nonzero(load_mask(root / "scene" / "masks" / "ball.png"))
    big = project.model_copy(
        update={"source": project.source.model_copy(update={"width": 416, "height": 240})}
    )
    for v, u in zip(vs[::5], us[::5], strict=True):
        p = anchor_from_depth(root, project, u + 0.5, v + 0.5)
        assert abs(np.linalg.norm(np.subtract(p, centre)) - radius) < 1e-4
        assert anchor_from_depth(root, big, 2 * u + 1.0, 2 * v + 1.0) == pytest.approx(p)
    assert anchor_from_depth(root, project, -5.0, 3.0) is None  # outside the image
    no_depth = project.model_copy(
        update={"scene": project.scene.model_copy(update={"depth_file": None})}
    )
    assert anchor_from_depth(root, no_depth, 10.0, 10.0) is None


def test_fit_mask_resizes_to_the_depth_grid():
    mask = np.zeros((8, 12), bool)
    mask[2:6, 3:9] = True
    assert (fit_mask(mask, (8, 12)) == mask).all()
    half = fit_mask(mask, (4, 6))
    assert half.shape == (4, 6) and half.dtype == bool
    assert (half == mask[1::2, 1::2]).all()  # nearest: the sample at each new pixel's centre
    assert (fit_mask(half, (8, 12)) == np.repeat(np.repeat(half, 2, 0), 2, 1)).all()
