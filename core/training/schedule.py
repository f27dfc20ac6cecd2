"""The learning-rate schedule and the flow-matching timesteps.

Learning rate: linear warm-up, then cosine decay. It is a pure function of the optimizer step
(:func:`lr_factor`), so a resumed run uses exactly the learning rates of an uninterrupted one
(given the same ``--steps`` and ``--warmup``); the trainer sets it on the optimizer before each
update instead of stepping a scheduler object (which accelerate would step once per process).

Flow matching (the convention of diffusers' ``FlowMatchEulerDiscreteScheduler`` and of
``UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction")`` that the Wan
pipelines use)::

    s      ~ U(0, 1)            (or sigmoid(N(0, 1)): "logit_normal")
    sigma  = shift * s / (1 + (shift - 1) * s)        (Wan's flow_shift, 3.0 at 480p)
    x_t    = (1 - sigma) * x0 + sigma * noise
    t      = sigma * 1000                             (the transformer's timestep)
    target = noise - x0                               (the velocity the transformer predicts)
"""

from __future__ import annotations

import math

NUM_TRAIN_TIMESTEPS = 1000


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """The learning-rate multiplier for the update that makes optimizer step ``step + 1``
    (``step`` counts the updates already done, from 0 to ``total - 1``).

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup`` updates; then a half cosine from 1
    down to ``min_ratio`` at the last update."""
    warmup = min(max(warmup, 0), max(total - 1, 0))
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - 1 - warmup, 1)
    progress = min(max((step - warmup) / span, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def shift_sigma(s, shift: float):
    """Wan's timestep shift: ``shift * s / (1 + (shift - 1) * s)`` (works on floats and tensors)."""
    return shift * s / (1 + (shift - 1) * s)


def sample_sigmas(n: int, generator, *, shift: float, mode: str = "uniform"):
    """``n`` training sigmas in (0, 1) on the CPU, float32, from ``generator``."""
    import torch

    if mode == "logit_normal":
        s = torch.sigmoid(torch.randn(n, generator=generator))
    elif mode == "uniform":
        s = torch.rand(n, generator=generator)
    else:  # pragma: no cover - validated in TrainConfig
        raise ValueError(mode)
    return shift_sigma(s, shift).clamp(1e-4, 1.0).float()


def flow_matching_inputs(x0, noise, sigma):
    """(x_t, timestep, target) for latents ``x0``, ``noise`` of the same shape and ``sigma`` (B,)."""
    s = sigma.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    x_t = (1.0 - s) * x0 + s * noise
    return x_t, sigma * NUM_TRAIN_TIMESTEPS, noise - x0
