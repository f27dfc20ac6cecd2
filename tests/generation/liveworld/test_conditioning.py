"""A GenerationRequest mapped onto LiveWorld's pixel inputs."""

from __future__ import annotations

import numpy as np
import pytest

from worldstudio.core.generation.backends.base import BackendError, GenerationRequest
from worldstudio.core.generation.backends.liveworld.conditioning import (
    composite_foreground,
    conditioning_video,
    letterbox,
    liveworld_inputs,
    liveworld_prompt,
)

F, H, W = 5, 32, 48


def request(**kw) -> GenerationRequest:
    base = dict(
        prompt="scene: a room; foreground: a ball",
        num_frames=F,
        height=H,
        width=W,
        steps=2,
        guidance=7.0,
        seed=1,
        control_rgb=np.full((F, H, W, 3), 90, np.uint8),
        control_mask=None,
        previous_frames=None,
        reference_images=[],
    )
    base.update(kw)
    return GenerationRequest(**base)


def ball():
    fg = np.zeros((F, H, W, 3), np.uint8)
    labels = np.full((F, H, W), -1, np.int16)
    for i in range(F):
        fg[i, 10:20, 10 + i : 20 + i] = (200, 30, 30)
        labels[i, 10:20, 10 + i : 20 + i] = 0
        fg[i, 14, 15 + i] = 0  # a hole inside the ball: blacked out, not scene colour
        labels[i, 14, 15 + i] = -1
    return fg, labels


def test_the_observer_gets_the_foreground_composited_and_as_its_own_channel():
    fg, labels = ball()
    inputs = liveworld_inputs(
        request(foreground_rgb=fg, foreground_labels=labels, foreground_ids=["ball"], strength=1.0)
    )
    mask = labels >= 0
    assert (inputs.target_scene[mask] == (200, 30, 30)).all()
    holes = [inputs.target_scene[i, 14, 15 + i] for i in range(F)]
    assert (np.array(holes) == 0).all()  # inside the filled contour
    assert (inputs.target_scene[~mask & (np.arange(W) > 30)[None, None, :]] == 90).all()
    assert np.array_equal(inputs.target_foreground, fg)
    assert inputs.strength == 1.0
    video, gen = conditioning_video(inputs)
    assert np.array_equal(video, inputs.target_scene) and gen.all()


def test_a_monitor_gets_the_scene_alone_and_no_foreground():
    fg, labels = ball()
    inputs = liveworld_inputs(
        request(role="monitor", foreground_rgb=fg, foreground_labels=labels, strength=0.4)
    )
    assert inputs.target_foreground is None
    assert (inputs.target_scene == 90).all()
    assert inputs.strength == pytest.approx(0.4)


def test_no_visible_entity_means_zero_foreground_latents():
    fg = np.zeros((F, H, W, 3), np.uint8)
    inputs = liveworld_inputs(request(foreground_rgb=fg))
    assert inputs.target_foreground is None and (inputs.target_scene == 90).all()


def test_a_first_round_starts_from_the_source_image():
    src = np.full((40, 60, 3), 200, np.uint8)
    inputs = liveworld_inputs(request(reference_images=[src, src[:20]]))
    assert inputs.preceding.shape == (1, H, W, 3)
    assert np.array_equal(inputs.preceding[0], letterbox(src, H, W))
    assert np.array_equal(inputs.preceding_scene, inputs.target_scene[:1])
    assert len(inputs.scene_references) == 1  # the source image became the preceding frame
    monitor = liveworld_inputs(request(role="monitor", reference_images=[src]))
    assert np.array_equal(monitor.preceding, monitor.target_scene[:1])
    assert len(monitor.scene_references) == 1


def test_previous_frames_references_and_caps():
    prev = np.random.default_rng(0).integers(0, 255, (12, H, W, 3), dtype=np.uint8)
    refs = [np.full((H, W, 3), k, np.uint8) for k in range(12)]
    crops = [np.full((8, 4, 3), 50 + k, np.uint8) for k in range(6)]
    inputs = liveworld_inputs(
        request(previous_frames=prev, reference_images=refs, instance_references=crops)
    )
    assert np.array_equal(inputs.preceding, prev[-10:])
    assert inputs.preceding_scene is None and inputs.preceding_foreground is None
    assert [int(r[0, 0, 0]) for r in inputs.scene_references] == list(range(10))
    assert len(inputs.instance_references) == 4
    crop = inputs.instance_references[0]
    assert crop.shape == (H, W, 3) and crop[H // 2, W // 2, 0] == 50 and crop[0, 0, 0] == 0
    monitor = liveworld_inputs(request(role="monitor", previous_frames=prev, reference_images=refs))
    assert len(monitor.scene_references) == 1
    short = liveworld_inputs(request(previous_frames=prev), context_frames=3)
    assert np.array_equal(short.preceding, prev[-3:])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(num_frames=6, control_rgb=None), "4k \\+ 1"),
        (dict(height=40, control_rgb=None), "multiples of 16"),
        (dict(control_rgb=np.zeros((F, H, W), np.uint8)), "control_rgb"),
        (dict(foreground_rgb=np.zeros((F, H, W, 3), np.float32)), "foreground_rgb"),
        (dict(previous_frames=np.zeros((2, H, W - 1, 3), np.uint8)), "previous_frames"),
        (dict(reference_images=[np.zeros((H, W), np.uint8)]), "reference image"),
    ],
)
def test_bad_inputs_fail_with_one_line_naming_them(change, message):
    with pytest.raises(BackendError, match=message):
        liveworld_inputs(request(**change))


def test_composite_blacks_out_the_filled_outline():
    scene = np.full((1, 9, 9, 3), 77, np.uint8)
    fg = np.zeros_like(scene)
    mask = np.zeros((1, 9, 9), bool)
    mask[0, 2:7, 2:7] = True
    mask[0, 4, 4] = False  # a hole
    fg[mask] = 255
    out = composite_foreground(scene, fg, mask)
    assert out[0, 4, 4].tolist() == [0, 0, 0]
    assert (out[0][mask[0]] == 255).all() and out[0, 0, 0].tolist() == [77, 77, 77]


def test_the_prompt_takes_liveworlds_format():
    assert liveworld_prompt("scene: a room; foreground: ") == "scene: a room"
    assert (
        liveworld_prompt("scene: a room; foreground: a cat") == "scene: a room; foreground: a cat"
    )
    assert liveworld_prompt("  a free prompt ") == "a free prompt"
