"""LiveWorld's forward on diffusers' Wan classes: strength 0 is plain Wan, hints reach only the
target and preceding tokens, segment-aware rotary positions, per-frame timesteps."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.tiny_liveworld import TINY_BACKBONE, tiny_backbone
from worldstudio.core.generation.backends.liveworld import model as lw_model
from worldstudio.core.generation.backends.liveworld.model import (
    LiveWorldTransformer,
    Segments,
    StateAdapter,
    segment_rotary,
)
from worldstudio.core.generation.backends.liveworld.weights import adapter_config

H, W = 4, 6  # latent size: 2 x 3 tokens per frame


def random_adapter(seed: int = 3) -> StateAdapter:
    adapter = StateAdapter(**adapter_config(TINY_BACKBONE, 2)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return adapter


def inputs(segments: Segments, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 16, segments.frames, H, W, generator=g)
    context = torch.randn(1, 8, TINY_BACKBONE["text_dim"], generator=g)
    state = torch.randn(1, 32, segments.conditioned, H, W, generator=g)
    return latents, context, state


def test_strength_zero_is_plain_wan_t2v_bit_for_bit():
    """With the adapter at strength 0 the model computes exactly diffusers' WanTransformer3DModel
    forward, less the one LayerNorm LiveWorld leaves out (before the cross-attention)."""
    backbone = tiny_backbone(7)
    plain = copy.deepcopy(backbone)  # before the composition takes the backbone over
    for block in plain.blocks:
        block.norm2 = torch.nn.Identity()
    model = LiveWorldTransformer(backbone, random_adapter())
    segments = Segments(3)
    latents, context, state = inputs(segments)
    t = torch.tensor([612.0])
    with torch.no_grad():
        ours = model(latents, t, context, segments, state, strength=0.0)
        theirs = plain(latents, timestep=t, encoder_hidden_states=context).sample
        hinted = model(latents, t, context, segments, state, strength=0.4)
    assert torch.equal(ours, theirs)
    assert (hinted - theirs).abs().max() > 1e-3  # the adapter is live at strength 0.4


def test_an_untrained_adapter_adds_nothing():
    backbone = tiny_backbone(7)
    segments = Segments(2, 1, 1, 1)
    latents, context, state = inputs(segments)
    fresh = LiveWorldTransformer(backbone, StateAdapter(**adapter_config(TINY_BACKBONE, 2)))
    with torch.no_grad():
        a = fresh(latents, torch.tensor(500.0), context, segments, state, 1.0)
        b = fresh(latents, torch.tensor(500.0), context, segments, None)
    assert torch.equal(a, b)


def test_hints_reach_the_target_and_preceding_tokens_never_the_references(monkeypatch):
    segments = Segments(2, 1, 2, 1)
    tokens = (H // 2) * (W // 2)
    calls = []
    real = lw_model.add_hint

    def spy(hidden, hint, strength):
        before = hidden.clone()
        after = real(hidden, hint, strength)
        calls.append((before, after.clone(), hint.shape[1]))
        return after

    monkeypatch.setattr(lw_model, "add_hint", spy)
    model = LiveWorldTransformer(tiny_backbone(7), random_adapter())
    latents, context, state = inputs(segments)
    with torch.no_grad():
        model(latents, torch.tensor(500.0), context, segments, state, strength=0.7)
    assert len(calls) == 2  # one per adapter block, at backbone layers 0 and 2
    n = segments.conditioned * tokens
    for before, after, hinted in calls:
        assert hinted == n
        assert torch.equal(after[:, n:], before[:, n:])  # the 3 reference frames
        assert (after[:, :n] - before[:, :n]).abs().amin(dim=-1).gt(0).all()


def test_every_block_runs_as_a_module_so_hooks_on_blocks_run():
    """diffusers' group offloading onloads a block's weights in a hook around the block's
    forward: the composition must call backbone and adapter blocks as modules."""
    model = LiveWorldTransformer(tiny_backbone(7), random_adapter())
    calls = []
    for name, block in [
        *(("backbone", b) for b in model.backbone.blocks),
        *(("adapter", b) for b in model.adapter.blocks),
    ]:
        block.register_forward_pre_hook(lambda module, args, name=name: calls.append(name))
    segments = Segments(2, 1, 1, 0)
    latents, context, state = inputs(segments)
    with torch.no_grad():
        model(latents, torch.tensor(500.0), context, segments, state, 1.0)
    assert calls == ["adapter"] * 2 + ["backbone"] * 4
    with pytest.raises(TypeError, match="text-to-video backbone"):
        LiveWorldTransformer(model.adapter)


def test_segments_give_liveworlds_time_positions_and_timesteps():
    s = Segments(3, 2, 2, 1)
    assert s.frames == 8 and s.conditioned == 5
    assert s.temporal_positions() == [0, 1, 2, -2, -1, 0, 0, 3]
    assert s.frame_timesteps(torch.tensor(700.0), 2).tolist() == [[700.0] * 3 + [0.0] * 5] * 2
    with pytest.raises(ValueError):
        Segments(0)


def test_the_rotary_time_part_follows_the_positions_negative_ones_too():
    backbone = tiny_backbone()
    rope = backbone.rope
    segments = Segments(2, 2, 1, 1)
    cos, sin = segment_rotary(rope, segments, 2, 3)
    tokens = 6
    inv = 1.0 / (10000.0 ** (torch.arange(0, rope.t_dim, 2, dtype=torch.float64) / rope.t_dim))
    for frame, pos in enumerate(segments.temporal_positions()):
        angle = (pos * inv).repeat_interleave(2)
        got_cos = cos[0, frame * tokens : (frame + 1) * tokens, 0, : rope.t_dim]
        got_sin = sin[0, frame * tokens : (frame + 1) * tokens, 0, : rope.t_dim]
        assert torch.allclose(got_cos, angle.cos().float().expand_as(got_cos), atol=1e-6)
        assert torch.allclose(got_sin, angle.sin().float().expand_as(got_sin), atol=1e-6)
    # height and width parts are Wan's, the same for every frame
    per_frame = cos[0, :, 0, rope.t_dim :].reshape(segments.frames, tokens, -1)
    assert torch.equal(per_frame, per_frame[:1].expand_as(per_frame))


def test_every_block_is_modulated_per_frame_noise_on_the_target_zero_elsewhere(monkeypatch):
    backbone = tiny_backbone(2)
    model = LiveWorldTransformer(backbone, random_adapter())
    segments = Segments(2, 1, 1, 1)
    latents, context, state = inputs(segments)
    seen = []
    real = lw_model.block_forward

    def spy(block, hidden, ctx, modulation, rotary, frames):
        seen.append((modulation.clone(), frames, hidden.shape[1]))
        return real(block, hidden, ctx, modulation, rotary, frames)

    monkeypatch.setattr(lw_model, "block_forward", spy)
    with torch.no_grad():
        model(latents, torch.tensor(900.0), context, segments, state, 1.0)
        _, expected, _, _ = backbone.condition_embedder(torch.tensor([0.0, 900.0]), context)
    zero, noisy = expected.unflatten(-1, (6, -1))
    assert len(seen) == 2 + 4  # the adapter's 2 blocks, then the backbone's 4
    for modulation, frames, tokens in seen:
        assert modulation.shape[1] == frames and tokens == frames * 6
        assert torch.equal(modulation[0, :2], noisy.expand(2, -1, -1))
        assert torch.equal(modulation[0, 2:], zero.expand(frames - 2, -1, -1))
    assert [frames for _, frames, _ in seen] == [3, 3, 5, 5, 5, 5]  # adapter: T + P only


def test_the_low_vram_group_offload_keeps_the_forward_unchanged():
    """The low-vram placement (blocks group-offloaded, the backbone's other parts kept on the
    device), here with the CPU as both devices: the hooks run and the result is unchanged."""
    from worldstudio.core.generation.backends.liveworld.backend import group_offload

    model = LiveWorldTransformer(tiny_backbone(7), random_adapter())
    segments = Segments(2, 1, 1, 1)
    latents, context, state = inputs(segments)
    with torch.no_grad():
        before = model(latents, torch.tensor(300.0), context, segments, state, 0.9)
        group_offload(model, torch.device("cpu"))
        after = model(latents, torch.tensor(300.0), context, segments, state, 0.9)
    assert torch.equal(before, after)
    assert all(hasattr(b, "_diffusers_hook") for b in model.backbone.blocks)
    assert all(hasattr(b, "_diffusers_hook") for b in model.adapter.blocks)
