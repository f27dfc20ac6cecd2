"""LiveWorld's samplers: the few-step sampler against a hand-computed two-step trajectory of the
tiny model, and the full-step UniPC sampler on Wan's schedule with classifier-free guidance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.generation.liveworld.test_model import inputs, random_adapter
from tests.tiny_liveworld import tiny_backbone
from worldstudio.core.generation.backends.liveworld.model import LiveWorldTransformer, Segments
from worldstudio.core.generation.backends.liveworld.sampling import (
    FlowTable,
    full_step_scheduler,
    sample_few_step,
    sample_full_step,
)

# sigma of the nearest entry of LiveWorld's shift-8 table (u_i = 1 - i/1000, sigma = 8u/(1+7u)):
# t=750 -> i=727, u=0.273; t=500 -> i=889, u=0.111; t=250 -> i=960, u=0.04
SIGMA_750 = 8 * 0.273 / (1 + 7 * 0.273)
SIGMA_500 = 8 * 0.111 / (1 + 7 * 0.111)
SIGMA_250 = 8 * 0.04 / (1 + 7 * 0.04)


def test_the_few_step_table_matches_hand_computed_sigmas():
    table = FlowTable(8.0)
    assert table.sigma(1000.0) == 1.0
    for t, expected in ((750.0, SIGMA_750), (500.0, SIGMA_500), (250.0, SIGMA_250)):
        assert table.sigma(t) == pytest.approx(expected, abs=1e-6), t


@pytest.fixture(scope="module")
def tiny_velocity():
    """The tiny LiveWorld model as a velocity function of 2 target latent frames, with one
    preceding and one scene-reference frame and a State Adapter input."""
    model = LiveWorldTransformer(tiny_backbone(5), random_adapter(8))
    segments = Segments(2, 1, 1, 0)
    latents, context, state = inputs(segments, seed=11)
    clean = latents[:, :, 2:]

    def velocity(x, t, conditional):
        ctx = context if conditional else torch.zeros_like(context)
        with torch.no_grad():
            out = model(torch.cat([x, clean], dim=2), t, ctx, segments, state, 0.8)
        return out[:, :, :2]

    return velocity, latents[:, :, :2].shape


def test_the_few_step_sampler_follows_a_hand_computed_two_step_trajectory(tiny_velocity):
    velocity, shape = tiny_velocity
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    seen = []
    out = sample_few_step(
        velocity,
        noise,
        timesteps=(1000.0, 500.0),
        shift=8.0,
        generator=torch.Generator().manual_seed(9),
        on_step=lambda done, total, x0: seen.append((done, total, x0.clone())),
    )
    # by hand: predict x0 at t=1000 (sigma 1), re-noise to t=500 with the generator's first
    # draw, predict x0 there
    x0_first = noise - 1.0 * velocity(noise, torch.tensor(1000.0), True)
    eps = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    x_500 = (1 - SIGMA_500) * x0_first + SIGMA_500 * eps
    expected = x_500 - SIGMA_500 * velocity(x_500, torch.tensor(500.0), True)
    assert torch.allclose(out, expected, atol=1e-5)
    assert [(d, t) for d, t, _ in seen] == [(1, 2), (2, 2)]
    assert torch.allclose(seen[0][2], x0_first, atol=1e-6)
    assert torch.equal(seen[1][2], out)


def test_wans_full_step_schedule():
    scheduler = full_step_scheduler(5.0)
    scheduler.set_timesteps(2, sigmas=np.array([0.999, 0.4995]))
    # Wan: sigmas linspace(0.999, 0, 3)[:-1] shifted by 5x/(1+4x), timesteps int(1000 sigma)
    s0, s1 = 5 * 0.999 / (1 + 4 * 0.999), 5 * 0.4995 / (1 + 4 * 0.4995)
    assert scheduler.timesteps.tolist() == [int(1000 * s0), int(1000 * s1)] == [999, 833]
    assert scheduler.sigmas.tolist() == pytest.approx([s0, s1, 0.0], abs=1e-7)


@pytest.mark.parametrize("guidance", [1.0, 7.0])
def test_the_full_step_sampler_guides_and_reports_x0(tiny_velocity, guidance):
    velocity, shape = tiny_velocity
    calls = []

    def counted(x, t, conditional):
        calls.append(conditional)
        return velocity(x, t, conditional)

    noise = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    seen = []
    out = sample_full_step(
        counted,
        noise,
        full_step_scheduler(5.0),
        3,
        guidance,
        on_step=lambda done, total, x0: seen.append((done, total, x0)),
    )
    assert calls == ([True, False] * 3 if guidance > 1 else [True] * 3)
    # the same solve by hand with diffusers' UniPC on Wan's sigmas
    scheduler = full_step_scheduler(5.0)
    scheduler.set_timesteps(3, sigmas=np.linspace(0.999, 0, 4)[:-1])
    x = noise
    for i, t in enumerate(scheduler.timesteps):
        v = velocity(x, t, True)
        if guidance > 1:
            u = velocity(x, t, False)
            v = u + guidance * (v - u)
        assert torch.allclose(seen[i][2], x - float(scheduler.sigmas[i]) * v, atol=1e-6)
        x = scheduler.step(v, t, x, return_dict=False)[0]
    assert torch.allclose(out, x, atol=1e-6)
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
