"""The GPU and RAM estimate of LiveWorld's profiles (core.generation.memory.estimate_liveworld)."""

from __future__ import annotations

import pytest

from worldstudio.core.generation.memory import (
    GiB,
    MemoryProfileError,
    estimate,
    estimate_liveworld,
)

T2V = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
EXTRA = 3 + 10 + 4  # the backend's worst case: 10 preceding frames, 10 scene + 4 instance refs


def est(profile, frames=65, extra=EXTRA, **kw):
    return estimate_liveworld(T2V, 480, 832, frames, profile, extra_latent_frames=extra, **kw)


def test_every_profile_runs_14b_below_80_gb_and_they_order_as_designed():
    gpu, offload, fp8, low = (est(p) for p in ("gpu", "offload", "fp8", "low-vram"))
    assert gpu.total < 80 * GiB
    assert gpu.total > offload.total > fp8.total > low.total
    assert gpu.ram < offload.ram == fp8.ram == low.ram  # offloading keeps the weights in RAM
    # the transformer alone: backbone 14.29e9 + adapter 3.05e9 parameters in bf16
    assert gpu.parts["weights.transformer"] == pytest.approx(2 * 17.336e9, rel=1e-3)
    assert fp8.parts["resident.transformer"] < 0.55 * gpu.parts["weights.transformer"]
    assert gpu.parts["tokens"] == (17 + EXTRA) * 30 * 52
    assert "RAM" in gpu.text() and "RAM" not in estimate(T2V, 480, 832, 65, "gpu").text()


def test_the_estimate_grows_with_frames_and_clean_frames():
    assert est("gpu", frames=81).total > est("gpu").total > est("gpu", extra=0).total


def test_on_a_cpu_everything_is_main_memory():
    cpu = est("gpu", device_type="cpu")
    assert cpu.total == 0 and cpu.ram > 2 * est("gpu").parts["weights.transformer"]


def test_unknown_profiles_are_refused():
    with pytest.raises(MemoryProfileError, match="LiveWorld memory profile 'auto'"):
        est("auto")
