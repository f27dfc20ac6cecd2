"""The learning-rate schedule, the flow-matching convention, and pickle-free optimizer / RNG
state round trips."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from worldstudio.core.training.schedule import (
    flow_matching_inputs,
    lr_factor,
    sample_sigmas,
    shift_sigma,
)
from worldstudio.core.training.state import (
    checkpoint_partial,
    finish_checkpoint,
    list_checkpoints,
    optimizer_from_flat,
    optimizer_to_flat,
    rng_state,
    set_rng_state,
)


def test_lr_warmup_then_cosine():
    total, warm = 100, 10
    f = [lr_factor(s, total, warm) for s in range(total)]
    assert f[:3] == pytest.approx([0.1, 0.2, 0.3]) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.0, abs=1e-12)
    mid = 10 + (total - 1 - 10) / 2
    assert lr_factor(int(mid), total, warm) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 89))
    )
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))  # monotone decay
    assert lr_factor(99, 100, 10, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(0, 1, 50) == 1.0  # one step: no warm-up to speak of


def test_shift_and_flow_matching_convention():
    assert shift_sigma(0.5, 3.0) == pytest.approx(0.75)
    assert shift_sigma(0.0, 3.0) == 0.0 and shift_sigma(1.0, 3.0) == 1.0
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(1000, g, shift=3.0)
    assert 0 < float(s.min()) and float(s.max()) <= 1.0 and float(s.mean()) > 0.6  # shifted up
    s2 = sample_sigmas(1000, torch.Generator().manual_seed(0), shift=1.0, mode="logit_normal")
    assert abs(float(s2.mean()) - 0.5) < 0.05
    x0, noise = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    sigma = torch.tensor([0.25, 1.0])
    x_t, t, target = flow_matching_inputs(x0, noise, sigma)
    torch.testing.assert_close(x_t[0], 0.75 * x0[0] + 0.25 * noise[0])
    torch.testing.assert_close(x_t[1], noise[1])
    torch.testing.assert_close(t, torch.tensor([250.0, 1000.0]))
    torch.testing.assert_close(target, noise - x0)


def test_matches_the_flow_match_euler_scheduler():
    """diffusers' scheduler: x_t = sigma * noise + (1 - sigma) * x0, and an Euler step with the
    true velocity (noise - x0) lands on x0 at sigma 0."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    x0, noise = torch.randn(1, 4, 2), torch.randn(1, 4, 2)
    noisy = sched.scale_noise(x0, sched.timesteps[400:401], noise)
    s = sched.sigmas[400]
    assert float(sched.timesteps[400]) == pytest.approx(float(s) * 1000)  # t = 1000 * sigma
    x_t, _t, v = flow_matching_inputs(x0, noise, s.view(1))
    torch.testing.assert_close(noisy, x_t)
    sched.set_timesteps(1)
    out = sched.step(
        v, sched.timesteps[0], flow_matching_inputs(x0, noise, sched.sigmas[:1])[0]
    ).prev_sample
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def test_optimizer_state_round_trip_is_exact():
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(5))]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        (params[0].sum() ** 2 + params[1].pow(3).sum()).backward()
        opt.step()
        opt.zero_grad()
    tensors, meta = optimizer_to_flat(opt.state_dict())
    import json

    meta = json.loads(json.dumps(meta))  # it really is JSON
    fresh = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone()) for p in params], lr=0.5)
    fresh.load_state_dict(optimizer_from_flat(tensors, meta))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx in a["state"]:
        for key in a["state"][idx]:
            assert torch.equal(a["state"][idx][key], b["state"][idx][key])


def test_rng_state_round_trip():
    tensors, meta = rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(tensors, meta)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_a_finished_checkpoint_removes_what_a_killed_training_left(tmp_path):
    (tmp_path / "checkpoint-10.partial").mkdir()  # a training killed while writing step 10
    (tmp_path / "checkpoint-10.partial" / "optimizer.safetensors").write_bytes(b"half")
    folder = tmp_path / "checkpoint-20"
    partial = checkpoint_partial(folder)
    partial.mkdir()
    (partial / "trainer_state.json").write_text("{}")
    finish_checkpoint(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-20"]
    assert [step for step, _ in list_checkpoints(tmp_path)] == [20]
