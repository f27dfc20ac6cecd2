"""LiveWorld's two samplers, over a velocity function of the target latents.

**Full step** (``configs/infer_system_config_14B.yaml``): Wan's UniPC flow solver (order 2, x0
prediction, bh2), 50 steps, flow shift 5.0, classifier-free guidance 7 with a negative prompt.
The schedule is Wan's own (``FlowUniPCMultistepScheduler``): un-shifted sigmas
``linspace(1 - 1/1000, 0, steps + 1)[:-1]``, shifted by ``s * x / (1 + (s - 1) * x)``, timesteps
``int(1000 * sigma)``. diffusers' ``UniPCMultistepScheduler`` (``use_flow_sigmas``) starts from 1
instead of 0.999; given those sigmas explicitly it solves exactly Wan's schedule.

**Few step** (``configs/infer_system_config_few_step_14B.yaml``, with the step- and
CFG-distilled backbone ``lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill``): the model is called at
the timesteps ``1000, 750, 500, 250`` (as given, not shifted), the clean latents are predicted
``x0 = x_t - sigma(t) * v`` and, before the next timestep, noised again with fresh Gaussian noise
``x = (1 - sigma(t')) * x0 + sigma(t') * eps``; no guidance. ``sigma(t)`` is the nearest entry of
LiveWorld's training table (:class:`FlowTable`: 1000 sigmas ``linspace(1, 0, 1001)[:-1]`` shifted
with ``shift`` 8.0, timesteps ``1000 * sigma``), as its ``FlowMatchScheduler`` looks it up.

``velocity(latents, t, conditional)`` returns the flow prediction for the target latents (the
caller adds the clean frames and the conditioning); ``on_step(done, total, x0)`` sees every step's
prediction of the clean latents (for progress, previews and cancellation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "FEW_STEP_SHIFT",
    "FEW_STEP_TIMESTEPS",
    "FULL_STEP_GUIDANCE",
    "FULL_STEP_SHIFT",
    "FULL_STEP_STEPS",
    "FlowTable",
    "full_step_scheduler",
    "sample_few_step",
    "sample_full_step",
    "wan_sigmas",
]

FULL_STEP_STEPS = 50
FULL_STEP_SHIFT = 5.0
FULL_STEP_GUIDANCE = 7.0
FEW_STEP_TIMESTEPS = (1000.0, 750.0, 500.0, 250.0)
FEW_STEP_SHIFT = 8.0
TRAIN_TIMESTEPS = 1000

Velocity = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
OnStep = Callable[[int, int, torch.Tensor], None]


# --------------------------------------------------------------------------- full step
def wan_sigmas(steps: int, train_timesteps: int = TRAIN_TIMESTEPS) -> np.ndarray:
    """Wan's un-shifted sigmas for ``steps`` solver steps (the scheduler shifts them)."""
    return np.linspace(1.0 - 1.0 / train_timesteps, 0.0, steps + 1)[:-1]


def full_step_scheduler(shift: float, config: dict | None = None):
    """diffusers' ``UniPCMultistepScheduler`` set up as Wan's flow UniPC solver (``config``: a
    Wan repo's scheduler config to start from, e.g. the T2V repo's)."""
    from diffusers import UniPCMultistepScheduler

    base = {k: v for k, v in (config or {}).items() if not k.startswith("_")}
    base.update(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=float(shift),
        num_train_timesteps=TRAIN_TIMESTEPS,
        solver_order=2,
        predict_x0=True,
        solver_type="bh2",
        lower_order_final=True,
        final_sigmas_type="zero",
        use_dynamic_shifting=False,
    )
    return UniPCMultistepScheduler.from_config(base)


def sample_full_step(
    velocity: Velocity,
    noise: torch.Tensor,
    scheduler,
    steps: int,
    guidance: float,
    on_step: OnStep | None = None,
) -> torch.Tensor:
    """Denoise ``noise`` (float32 target latents) with ``scheduler`` (see
    :func:`full_step_scheduler`) in ``steps`` steps; classifier-free guidance when ``guidance``
    > 1 (``v = v_uncond + guidance * (v_cond - v_uncond)``)."""
    scheduler.set_timesteps(steps, device=noise.device, sigmas=wan_sigmas(steps))
    latents = noise
    total = len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        v = velocity(latents, t, True).float()
        if guidance > 1.0:
            v_uncond = velocity(latents, t, False).float()
            v = v_uncond + guidance * (v - v_uncond)
        sigma = float(scheduler.sigmas[i])
        x0 = latents - sigma * v
        latents = scheduler.step(v, t, latents, return_dict=False)[0]
        if on_step is not None:
            on_step(i + 1, total, x0)
    return latents


# --------------------------------------------------------------------------- few step
class FlowTable:
    """LiveWorld's flow-matching table (its ``FlowMatchScheduler(shift, sigma_min=0,
    extra_one_step=True)`` after ``set_timesteps(1000)``): sigma of the nearest timestep."""

    def __init__(self, shift: float = FEW_STEP_SHIFT, train_timesteps: int = TRAIN_TIMESTEPS):
        sigmas = torch.linspace(1.0, 0.0, train_timesteps + 1)[:-1]
        self.sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.timesteps = self.sigmas * train_timesteps

    def sigma(self, timestep: float) -> float:
        index = int(torch.argmin((self.timesteps - float(timestep)).abs()))
        return float(self.sigmas[index])


def sample_few_step(
    velocity: Velocity,
    noise: torch.Tensor,
    timesteps=FEW_STEP_TIMESTEPS,
    shift: float = FEW_STEP_SHIFT,
    generator: torch.Generator | None = None,
    on_step: OnStep | None = None,
) -> torch.Tensor:
    """Predict x0 at each of ``timesteps`` and re-noise it to the next one (fresh noise from
    ``generator``); the last prediction is the result. No guidance."""
    table = FlowTable(shift)
    latents = noise
    total = len(timesteps)
    x0 = noise
    for i, t in enumerate(timesteps):
        v = velocity(latents, torch.tensor(float(t)), True)
        # as LiveWorld converts: in float64, back to the prediction's dtype
        x0 = (latents.double() - table.sigma(t) * v.double()).to(v.dtype).float()
        if on_step is not None:
            on_step(i + 1, total, x0)
        if i + 1 < total:
            s = table.sigma(timesteps[i + 1])
            eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
            latents = (1 - s) * x0 + s * eps
    return x0
