"""Memory profiles, the VRAM estimate and the attention backend choice."""

from __future__ import annotations

import types

import pytest
import torch

from worldstudio.core.generation import acceleration, memory
from worldstudio.core.generation.memory import GiB

VACE_13B = memory.KNOWN_PIPELINES["Wan-AI/Wan2.1-VACE-1.3B-diffusers"]
VACE_14B = memory.KNOWN_PIPELINES["Wan-AI/Wan2.1-VACE-14B-diffusers"]
I2V_14B = memory.KNOWN_PIPELINES["Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"]


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- parameter counts
def test_parameter_formulas_match_the_real_modules_built_on_the_meta_device():
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    def build(cls, cfg):
        kwargs = {k: v for k, v in cfg.items() if not k.startswith("_")}
        with torch.device("meta"):
            return cls(**kwargs)

    for cfg in (memory.WAN21_VACE_1_3B_TRANSFORMER, memory.WAN21_VACE_14B_TRANSFORMER):
        model = build(WanVACETransformer3DModel, cfg)
        counts = memory.transformer_params(cfg)
        assert counts["total"] == _count(model)
        assert counts["block"] == _count(model.blocks[0])
        assert counts["vace_block"] == _count(model.vace_blocks[1])
    model = build(WanTransformer3DModel, memory.WAN21_I2V_14B_TRANSFORMER)
    assert memory.transformer_params(memory.WAN21_I2V_14B_TRANSFORMER)["total"] == _count(model)
    with torch.device("meta"):
        umt5 = UMT5EncoderModel(UMT5Config(**memory.UMT5_XXL))
        clip = CLIPVisionModel(CLIPVisionConfig(**memory.CLIP_VIT_H14))
    assert memory.umt5_params(memory.UMT5_XXL)["total"] == _count(umt5)
    assert memory.clip_vision_params(memory.CLIP_VIT_H14)["total"] == _count(clip)
    # the published sizes: a ~2.2B VACE-1.3B transformer (1.4B Wan + 15 VACE blocks), UMT5-XXL 5.7B
    assert 2.1e9 < memory.transformer_params(memory.WAN21_VACE_1_3B_TRANSFORMER)["total"] < 2.2e9
    assert 5.6e9 < memory.umt5_params(memory.UMT5_XXL)["total"] < 5.8e9


def test_parameter_formulas_match_the_tiny_pipelines(wan_folders):
    from diffusers import WanImageToVideoPipeline, WanVACEPipeline

    for cls, folder in (
        (WanVACEPipeline, wan_folders["vace"]),
        (WanImageToVideoPipeline, wan_folders["i2v"]),
    ):
        pipe = cls.from_pretrained(folder)
        cfgs = memory.pipeline_configs(folder)
        assert memory.transformer_params(cfgs["transformer"])["total"] == _count(pipe.transformer)
        assert memory.umt5_params(cfgs["text_encoder"])["total"] == _count(pipe.text_encoder)
        if "image_encoder" in cfgs:
            assert memory.clip_vision_params(cfgs["image_encoder"])["total"] == _count(
                pipe.image_encoder
            )
        # the VAE is approximated by scaling the real one: right order of magnitude
        assert 0.2 < memory.vae_params(cfgs["vae"]) / _count(pipe.vae) < 20


# ----------------------------------------------------------------------------- the estimate
@pytest.mark.parametrize("profile", ["gpu", "offload", "low-vram"])
def test_the_estimate_grows_with_frames_and_size(profile):
    sizes = [(256, 448), (480, 832), (720, 1280)]
    frames = [17, 33, 65, 81]
    # never smaller for more frames or pixels (the peak may sit in a stage that does not grow,
    # e.g. the text encoder under "offload"), and larger from the smallest call to the largest
    for h, w in sizes:
        values = [memory.estimate_vram(VACE_13B, h, w, f, profile) for f in frames]
        assert values == sorted(values)
    for f in frames:
        values = [memory.estimate_vram(VACE_13B, h, w, f, profile) for h, w in sizes]
        assert values == sorted(values)
    assert memory.estimate_vram(VACE_13B, 256, 448, 17, profile) < memory.estimate_vram(
        VACE_13B, 720, 1280, 81, profile
    )
    # where the transformer or the VAE is the peak (all on the GPU), every frame counts
    if profile == "gpu":
        values = [memory.estimate_vram(VACE_13B, 480, 832, f, profile) for f in frames]
        assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_the_estimate_has_a_sane_magnitude_for_the_real_shapes():
    gpu = memory.estimate(VACE_13B, 480, 832, 81, "gpu")
    offload = memory.estimate(VACE_13B, 480, 832, 81, "offload")
    low = memory.estimate(VACE_13B, 480, 832, 81, "low-vram")
    # bf16 weights: transformer 2.15B (4.3 GB) + UMT5-XXL 5.7B (11.4 GB) + VAE (0.5 GB, f32)
    assert 15 * GiB < gpu.weights < 16 * GiB
    assert 16 * GiB < gpu.total < 30 * GiB
    assert 10 * GiB < offload.total < gpu.total  # the text encoder alone, then the transformer
    assert 2 * GiB < low.total < offload.total
    # 81 frames at 480p: 21 x 30 x 52 = 32760 tokens
    assert gpu.parts["tokens"] == 21 * 30 * 52
    assert 1 * GiB < memory.transformer_activation_bytes(VACE_13B["transformer"], 32760) < 8 * GiB
    # the 14B models need far more; the text encoder is shared
    assert memory.estimate_vram(VACE_14B, 480, 832, 81, "gpu") > gpu.total + 25 * GiB
    assert memory.estimate_vram(I2V_14B, 480, 832, 81, "gpu") > 40 * GiB
    assert "GiB" in gpu.text()


def test_the_estimate_reads_configs_by_name_folder_or_builtin_shape(wan_env, wan_folders):
    # the tiny pipelines in the fake hub: by repo id and by folder, from their own configs
    by_id = memory.estimate_vram("Wan-AI/Wan2.1-VACE-1.3B-diffusers", 32, 48, 9)
    by_folder = memory.estimate_vram(wan_folders["vace"], 32, 48, 9)
    assert by_id == by_folder < memory.RUNTIME_OVERHEAD + 64 * 1024**2
    # a model not on this machine: its built-in shape
    assert memory.estimate_vram("wan2.1-vace-14b", 480, 832, 81) == memory.estimate_vram(
        VACE_14B, 480, 832, 81
    )
    with pytest.raises(memory.MemoryProfileError):
        memory.estimate_vram("no-such-model", 480, 832, 81)
    with pytest.raises(memory.MemoryProfileError):
        memory.estimate_vram(VACE_13B, 480, 832, 81, "turbo")


def test_choose_profile_picks_the_fastest_that_fits():
    args = (VACE_13B, 480, 832, 81)
    gpu, offload, low = (memory.estimate_vram(*args, p) for p in ("gpu", "offload", "low-vram"))
    assert memory.choose_profile(*args, None) == "gpu"  # a CPU: everything stays on it
    assert memory.choose_profile(*args, 80 * GiB) == "gpu"
    assert memory.choose_profile(*args, gpu - 1) == "offload"
    assert memory.choose_profile(*args, offload - 1) == "low-vram"
    assert memory.choose_profile(*args, low // 2) == "low-vram"
    assert memory.check_profile(None) == "auto" and memory.check_profile("Low-VRAM") == "low-vram"


# ----------------------------------------------------------------------------- applying
def _fresh_pipe(folder):
    from diffusers import WanVACEPipeline

    return WanVACEPipeline.from_pretrained(folder)


def test_the_gpu_and_low_vram_profiles_apply_on_a_cpu(wan_folders):
    pipe = _fresh_pipe(wan_folders["vace"])
    applied = memory.apply_profile(pipe, "gpu", "cpu")
    assert applied.profile == "gpu" and not applied.vae_tiling and applied.notes == []
    assert pipe.transformer.device.type == "cpu"

    pipe = _fresh_pipe(wan_folders["vace"])
    applied = memory.apply_profile(pipe, "low-vram", "cpu")
    assert applied.vae_tiling and pipe.vae.use_tiling
    assert any("accelerator" in n for n in applied.notes)

    pipe = _fresh_pipe(wan_folders["vace"])
    applied = memory.apply_profile(pipe, "offload", "cpu")
    assert any("accelerator" in n for n in applied.notes)
    with pytest.raises(memory.MemoryProfileError):
        memory.apply_profile(pipe, "auto", "cpu")


def test_a_backend_runs_with_the_low_vram_profile_on_a_cpu(wan_env, one_thread):
    import numpy as np

    from worldstudio.core.generation.backends import GenerationRequest, get_backend
    from worldstudio.core.jobs import JobContext

    backend = get_backend("wan-vace", profile="low-vram", preview=False)
    try:
        req = GenerationRequest(
            prompt="scene: x",
            num_frames=5,
            height=32,
            width=32,
            steps=1,
            guidance=1.0,
            seed=0,
            control_rgb=None,
            control_mask=None,
            previous_frames=None,
            reference_images=[],
        )
        frames = backend.generate(req, JobContext())
        assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
        assert backend.applied.profile == "low-vram" and backend.applied.vae_tiling
        assert backend.estimate(32, 32, 5).profile == "low-vram"
    finally:
        backend.close()


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="model CPU offload and group offload need a CUDA device"
)
@pytest.mark.parametrize("profile", ["offload", "low-vram"])
def test_offload_profiles_on_cuda(wan_folders, profile):
    pipe = _fresh_pipe(wan_folders["vace"]).to(torch.bfloat16)
    applied = memory.apply_profile(pipe, profile, "cuda")
    assert applied.notes == []
    out = pipe(
        prompt="x", height=32, width=32, num_frames=5, num_inference_steps=1, output_type="np"
    )
    assert out.frames.shape == (1, 5, 32, 32, 3)


# ----------------------------------------------------------------------------- attention
def test_attention_backend_is_flash_only_on_cuda_with_flash_attn(monkeypatch):
    assert memory.choose_attention_backend("cpu") == "native"
    monkeypatch.setattr(acceleration.importlib.util, "find_spec", lambda name: None)
    assert memory.choose_attention_backend(torch.device("cuda")) == "native"
    monkeypatch.setattr(
        acceleration.importlib.util,
        "find_spec",
        lambda name: object() if name == "flash_attn" else None,
    )
    assert memory.choose_attention_backend(torch.device("cuda")) == "flash"
    assert memory.choose_attention_backend("cpu") == "native"

    chosen = []
    ok = types.SimpleNamespace(set_attention_backend=chosen.append)
    assert memory.apply_attention_backend(ok, "cuda") == ("flash", None) and chosen == ["flash"]

    def refuse(name):
        raise RuntimeError("flash_attn 2.5 is too old")

    backend, note = memory.apply_attention_backend(
        types.SimpleNamespace(set_attention_backend=refuse), "cuda"
    )
    assert backend == "native" and "too old" in note
