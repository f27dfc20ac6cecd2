"""The ``liveworld`` backend on tiny random-weight models loaded through the app's own code from a
fake hub cache: the tiny Wan T2V under Wan-AI/Wan2.1-T2V-14B-Diffusers, LiveWorld's pickled
checkpoints (real key layout) under ZichengD/LiveWorld, the distilled backbone under lightx2v."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.generation.liveworld.conftest import loaded_liveworld
from tests.tiny_liveworld import golden
from worldstudio.core.errors import Cancelled
from worldstudio.core.generation import memory
from worldstudio.core.generation.backends import BackendError, GenerationRequest, get_backend
from worldstudio.core.generation.backends.liveworld.model import StateAdapter
from worldstudio.core.generation.live_preview import preview_shape
from worldstudio.core.jobs import CancelToken, JobContext

F, H, W = 5, 32, 48


def request(**kw) -> GenerationRequest:
    rng = np.random.default_rng(0)
    fg = np.zeros((F, H, W, 3), np.uint8)
    labels = np.full((F, H, W), -1, np.int16)
    fg[:, 8:20, 10:24] = (220, 40, 40)
    labels[:, 8:20, 10:24] = 0
    base = dict(
        prompt="scene: a quiet street; foreground: a red ball rolling",
        negative_prompt="",
        num_frames=F,
        height=H,
        width=W,
        steps=2,
        guidance=7.0,
        seed=11,
        control_rgb=rng.integers(0, 255, (F, H, W, 3), dtype=np.uint8),
        control_mask=None,
        previous_frames=rng.integers(0, 255, (6, H, W, 3), dtype=np.uint8),
        reference_images=[rng.integers(0, 255, (H, W, 3), dtype=np.uint8)],
        instance_references=[np.full((12, 14, 3), (220, 40, 40), np.uint8)],
        foreground_rgb=fg,
        foreground_labels=labels,
        foreground_ids=["ball"],
        strength=1.0,
    )
    base.update(kw)
    return GenerationRequest(**base)


class Recorder:
    def __init__(self, cancel_at: int | None = None):
        self.reports = []
        self.token = CancelToken()
        self.cancel_at = cancel_at

    def __call__(self, report):
        self.reports.append(report)
        if report.kind == "progress" and self.cancel_at and report.done == self.cancel_at:
            self.token.cancel()

    def ctx(self) -> JobContext:
        return JobContext(self, cancel=self.token)

    def of(self, kind):
        return [r for r in self.reports if r.kind == kind]


def run(backend, liveworld_env, **kw):
    rec = Recorder()
    return backend.generate(request(**kw), rec.ctx()), rec


def test_the_backend_loads_liveworlds_checkpoints_from_the_hub_and_generates(
    liveworld_backend, liveworld_env
):
    frames, rec = run(liveworld_backend, liveworld_env)
    assert frames.shape == (F, H, W, 3) and frames.dtype == np.uint8
    cache = liveworld_env["cache"] / "liveworld"
    assert len(list(cache.glob("state_adapter-*/diffusion_pytorch_model.safetensors"))) == 1
    assert len(list(cache.glob("lora-*.safetensors"))) == 1
    adapter = liveworld_backend.pipe.transformer.adapter
    assert isinstance(adapter, StateAdapter) and list(adapter.config.layers) == [0, 2]
    weights = golden()[0]
    assert torch.equal(adapter.blocks[1].proj_out.weight, weights["sp_blocks.1.after_proj.weight"])
    # progress per step, a preview strip per step, the round's label
    steps = [r.done for r in rec.of("progress") if r.done]
    assert steps == [1, 2]
    previews = rec.of("preview")
    assert len(previews) == 2 and previews[0].payload.shape == preview_shape(H, W, F)


def test_conditioning_strength_lora_strength_and_seed_change_the_output(
    liveworld_backend, liveworld_env
):
    base, _ = run(liveworld_backend, liveworld_env)
    again, _ = run(liveworld_backend, liveworld_env)
    assert np.array_equal(base, again)  # deterministic for a seed
    unconditioned, _ = run(liveworld_backend, liveworld_env, strength=0.0)
    assert np.abs(unconditioned.astype(int) - base).max() > 0
    other_seed, _ = run(liveworld_backend, liveworld_env, seed=12)
    assert np.abs(other_seed.astype(int) - base).max() > 0
    liveworld_backend.lora_strength = 0.0
    try:
        no_lora, _ = run(liveworld_backend, liveworld_env)
    finally:
        liveworld_backend.lora_strength = 1.0
    assert np.abs(no_lora.astype(int) - base).max() > 0
    assert np.array_equal(run(liveworld_backend, liveworld_env)[0], base)


def test_a_monitor_call_without_previous_frames(liveworld_backend, liveworld_env):
    frames, _ = run(
        liveworld_backend, liveworld_env, role="monitor", previous_frames=None, strength=0.4
    )
    assert frames.shape == (F, H, W, 3)


def test_cancel_stops_between_steps_and_the_backend_goes_on(liveworld_backend, liveworld_env):
    rec = Recorder(cancel_at=1)
    with pytest.raises(Cancelled, match="cancelled at denoising step 1/2"):
        liveworld_backend.generate(request(), rec.ctx())
    assert [r.done for r in rec.of("progress") if r.done] == [1]
    frames, _ = run(liveworld_backend, liveworld_env)
    assert frames.shape == (F, H, W, 3)


def test_out_of_memory_in_a_call_is_one_line_with_the_profiles_to_try(
    liveworld_backend, liveworld_env
):
    def fail(*_args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    hook = liveworld_backend.pipe.transformer.register_forward_hook(fail)
    try:
        with pytest.raises(BackendError) as info:
            liveworld_backend.generate(request(), Recorder().ctx())
    finally:
        hook.remove()
    message = str(info.value)
    assert message.startswith("liveworld: out of accelerator memory at ") and "\n" not in message
    assert "try the fp8 or low-vram profile" in message
    frames, _ = run(liveworld_backend, liveworld_env)  # the backend goes on
    assert frames.shape == (F, H, W, 3)


def test_a_request_lora_applies_with_its_strength(liveworld_backend, liveworld_env, tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(2)
    lora = {}
    for i in range(4):
        for proj in ("to_q", "to_v"):
            lora[f"transformer.blocks.{i}.attn1.{proj}.lora_A.weight"] = torch.randn(
                2, 24, generator=g
            )
            lora[f"transformer.blocks.{i}.attn1.{proj}.lora_B.weight"] = torch.randn(
                24, 2, generator=g
            )
    save_file(lora, str(tmp_path / "mine.safetensors"))
    base, _ = run(liveworld_backend, liveworld_env)
    off, _ = run(
        liveworld_backend, liveworld_env, loras=[(str(tmp_path / "mine.safetensors"), 0.0)]
    )
    on, _ = run(liveworld_backend, liveworld_env, loras=[(str(tmp_path / "mine.safetensors"), 1.0)])
    assert np.array_equal(off, base)
    assert np.abs(on.astype(int) - base).max() > 0
    with pytest.raises(BackendError, match="not found"):
        run(liveworld_backend, liveworld_env, loras=[(str(tmp_path / "absent.safetensors"), 1.0)])


def test_the_few_step_variant_runs_the_distilled_backbone_in_four_steps(
    liveworld_env, tmp_path_factory
):
    backend = loaded_liveworld(tmp_path_factory, model_id="liveworld-4step")
    try:
        rec = Recorder()
        frames = backend.generate(request(steps=30, guidance=7.0), rec.ctx())
        assert frames.shape == (F, H, W, 3)
        assert [r.done for r in rec.of("progress") if r.done] == [1, 2, 3, 4]
        q = backend.pipe.transformer.backbone.blocks[0].attn1.to_q
        assert torch.equal(q.base_layer.weight, golden()[0]["blocks.0.self_attn.q.weight"])
        assert list((liveworld_env["cache"] / "liveworld").glob("backbone-*"))
    finally:
        backend.close()


def test_bad_model_and_profile_names_fail_with_one_line(liveworld_env):
    with pytest.raises(BackendError, match="liveworld runs LiveWorld's own model.*'some/model'"):
        get_backend("liveworld", model_id="some/model")
    with pytest.raises(BackendError, match="memory profile 'turbo'"):
        get_backend("liveworld", profile="turbo")
    backend = get_backend("liveworld", model_id="Wan-AI/Wan2.1-VACE-1.3B-diffusers")
    assert backend.variant == "full-step" and "for the Wan backends" in backend.notes[0]


def test_a_profile_that_cannot_fit_is_refused_up_front_with_the_numbers(monkeypatch, tmp_path):
    """Before any weight loads: the real 14B shapes (the catalogue's built-in configs) against a
    GPU with 16 GiB free."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(memory, "device_memory", lambda device: 16 * memory.GiB)
    monkeypatch.setattr(memory, "host_memory", lambda: 100 * memory.GiB)

    from types import SimpleNamespace

    project = SimpleNamespace(
        generation=SimpleNamespace(width=832, height=480, frames_per_round=65)
    )

    with pytest.raises(BackendError) as info:
        get_backend("liveworld", project=project, profile="gpu", device="cuda")
    text = str(info.value)
    assert "gpu needs ~55.5 GiB GPU" in text and "16.0 GiB free on cuda" in text
    assert "profiles that fit: low-vram (~14.0 GiB)" in text
    assert "\n" not in text
    backend = get_backend("liveworld", project=project, profile="auto", device="cuda")
    assert backend.check_fits(480, 832, 65) == "low-vram"
    monkeypatch.setattr(memory, "host_memory", lambda: 20 * memory.GiB)
    with pytest.raises(BackendError, match="low-vram needs ~14.0 GiB GPU and ~45.3 GiB RAM"):
        backend.check_fits(480, 832, 65)


@pytest.mark.parametrize("profile", ["fp8", "low-vram"])
def test_the_memory_saving_profiles_run_on_a_cpu(liveworld_env, tmp_path_factory, profile):
    reference = loaded_liveworld(tmp_path_factory, profile="gpu")
    backend = loaded_liveworld(tmp_path_factory, profile=profile)
    try:
        assert backend.applied_profile == profile and "on a CPU" in backend.notes[-1]
        q = backend.pipe.transformer.backbone.blocks[0].attn1.to_q
        adapter_q = backend.pipe.transformer.adapter.blocks[0].attn1.to_q
        expected = torch.float8_e4m3fn if profile == "fp8" else torch.float32
        assert q.base_layer.weight.dtype == expected and adapter_q.weight.dtype == expected
        assert q.lora_A["liveworld"].weight.dtype == torch.float32  # LoRA factors not in fp8
        assert backend.pipe.vae.use_tiling == (profile == "low-vram")
        frames = backend.generate(request(), Recorder().ctx())
        base = reference.generate(request(), Recorder().ctx())
        diff = np.abs(frames.astype(int) - base)
        if profile == "fp8":
            assert 0 < diff.mean() < 20  # quantised weights: close, not equal
        else:
            assert diff.max() <= 2  # same weights, tiled VAE
        if profile == "fp8":
            with pytest.raises(BackendError, match="fp8 profile .* takes no further LoRAs"):
                backend.generate(request(loras=[("x.safetensors", 1.0)]), Recorder().ctx())
    finally:
        backend.close()
        reference.close()
