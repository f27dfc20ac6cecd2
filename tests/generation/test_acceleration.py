"""The accelerations of the Wan backends (core.generation.acceleration) on the tiny random-weight
pipelines, loaded by the app's own code from the fake hub: attention backends, caches, weight
precision, VAE tiling, regional compilation and the draft preset; each for wiring and output
shape, and for equality where an option must not change the frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import tiny_wan
from tests.generation.engine_support import demo_project
from tests.generation.test_wan_backends import F, H, Recorder, W, make_request
from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation import acceleration
from worldstudio.core.generation.acceleration import AccelerationError
from worldstudio.core.generation.backends import get_backend
from worldstudio.core.generation.engine import RunOptions, generate_job
from worldstudio.core.generation.memory import GiB
from worldstudio.core.jobs import JobContext
from worldstudio.core.project.runs import RunFolder

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 6


def generate(kind: str = "wan-vace", steps: int = STEPS, request=None, **options):
    """(frames, recorder, backend) of one call with a fresh backend (closed afterwards)."""
    backend = get_backend(kind, **options)
    rec = Recorder()
    try:
        frames = backend.generate(request or make_request(steps=steps), rec.ctx)
    finally:
        backend.close()
    return frames, rec, backend


@pytest.fixture(scope="module")
def baseline(wan_hub):
    with pytest.MonkeyPatch.context() as mp:
        from tests.conftest import wan_environment

        with wan_environment(mp):
            return generate()[0]


def count_block_calls(backend, block: int = 1):
    """Count the query projections of main block ``block``'s self-attention: a skipped block or
    a reused attention output never runs it."""
    calls = []
    layer = backend.load().transformer.blocks[block].attn1.to_q
    layer.register_forward_hook(lambda *_: calls.append(1))
    return calls


# ----------------------------------------------------------------------------- attention
def test_attention_names_and_auto_on_this_machine():
    assert acceleration.check_attention(None) == "auto"
    assert acceleration.check_attention("SDPA") == "native"  # an alias
    with pytest.raises(AccelerationError, match="expected one of auto, native"):
        acceleration.check_attention("fast-please")
    assert acceleration.choose_attention("cpu") == "native"
    assert acceleration.available_attention("cpu") == ["native", "native-math"]


def test_auto_prefers_flash3_then_sage_then_flash(monkeypatch):
    installed: set[str] = set()
    monkeypatch.setattr(
        acceleration.importlib.util,
        "find_spec",
        lambda name: object() if name in installed else None,
    )
    cuda = "cuda"
    assert acceleration.choose_attention(cuda) == "native"
    installed.add("flash_attn")
    assert acceleration.choose_attention(cuda) == "flash"
    installed.add("sageattention")
    assert acceleration.choose_attention(cuda) == "sage"
    installed.add("flash_attn_interface")
    assert acceleration.choose_attention(cuda) == "flash3"
    assert acceleration.choose_attention("cpu") == "native"  # none of them runs on a CPU


def test_a_requested_backend_that_is_not_here_names_what_is(wan_env):
    with pytest.raises(AccelerationError) as info:
        get_backend("wan-vace", attention="flash")
    message = str(info.value)
    assert "\n" not in message and "attention 'flash' is not available here" in message
    assert "available: native, native-math" in message


def test_sdpa_and_the_math_kernel_give_the_same_frames(wan_env, baseline):
    frames, rec, backend = generate(attention="native-math")
    assert backend.applied.attention == "native-math"
    assert frames.shape == baseline.shape == (F, H, W, 3)
    assert np.abs(frames.astype(int) - baseline).max() <= 1
    assert any("attention native-math" in r.message for r in rec.kinds("log"))


# ----------------------------------------------------------------------------- caches
@pytest.mark.parametrize("cache", ["taylorseer", "pab"])
def test_a_cache_skips_work_and_keeps_the_shape(wan_env, baseline, cache):
    plain = get_backend("wan-vace")
    plain_calls = count_block_calls(plain)
    plain.generate(make_request(steps=STEPS), JobContext())
    plain.close()

    backend = get_backend("wan-vace", cache=cache)
    calls = count_block_calls(backend)
    frames = backend.generate(make_request(steps=STEPS), JobContext())
    assert backend.pipe.transformer.is_cache_enabled
    backend.close()
    assert frames.shape == baseline.shape and frames.dtype == np.uint8
    assert 0 < len(calls) < len(plain_calls)  # the cache skipped part of the work


def test_cache_off_again_equals_the_baseline_bit_for_bit(wan_env, baseline):
    backend = get_backend("wan-vace", cache="taylorseer")
    cached = backend.generate(make_request(steps=STEPS), JobContext())
    backend.cache = "none"  # the same pipeline, its hooks removed
    again = backend.generate(make_request(steps=STEPS), JobContext())
    assert not backend.pipe.transformer.is_cache_enabled
    backend.close()
    assert not np.array_equal(cached, baseline)
    assert np.array_equal(again, baseline)


def test_first_block_cache_is_refused_for_vace_and_runs_on_i2v(wan_env):
    with pytest.raises(WorldStudioError, match="VACE adds its control hints"):
        generate(cache="first-block")
    frames, _rec, backend = generate("wan-i2v", cache="first-block", steps=3)
    assert frames.shape == (F, H, W, 3)


def test_the_quality_presets_pick_their_cache():
    assert acceleration.cache_for("full", "auto") == "none"
    assert acceleration.cache_for("fast", None) == "taylorseer"
    assert acceleration.cache_for("fast", "pab") == "pab"
    assert acceleration.cache_for("draft", "auto") == "none"
    with pytest.raises(AccelerationError, match="quality 'turbo'"):
        acceleration.cache_for("turbo", "auto")


# ----------------------------------------------------------------------------- weights, VAE
def test_fp8_layerwise_casting_stores_float8_and_stays_close(wan_env, baseline):
    import torch

    backend = get_backend("wan-vace", precision="fp8")
    frames = backend.generate(make_request(steps=STEPS), JobContext())
    transformer = backend.pipe.transformer
    assert transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert transformer.patch_embedding.weight.dtype == torch.float32  # kept as loaded
    backend.close()
    assert frames.shape == baseline.shape
    assert np.abs(frames.astype(float) - baseline).mean() < 8


def test_int8_weights_through_torchao(wan_env, baseline):
    pytest.importorskip("torchao")
    backend = get_backend("wan-vace", precision="int8")
    frames = backend.generate(make_request(steps=STEPS), JobContext())
    weight = backend.pipe.transformer.blocks[0].attn1.to_q.weight
    backend.close()
    assert "Int8" in type(weight).__name__
    assert frames.shape == baseline.shape
    assert np.abs(frames.astype(float) - baseline).mean() < 4


def test_nf4_needs_a_cuda_gpu(wan_env):
    with pytest.raises(AccelerationError) as info:
        get_backend("wan-vace", precision="nf4")
    assert "needs a CUDA GPU" in str(info.value) and "\n" not in str(info.value)


def test_vae_tiling_on_request(wan_env, baseline):
    frames, rec, backend = generate(vae_tiling=True)
    assert backend.applied.vae_tiling
    assert frames.shape == baseline.shape
    assert np.array_equal(frames, baseline)  # 32 x 48 is one tile: nothing changes
    assert any("VAE tiling" in r.message for r in rec.kinds("log"))


# ----------------------------------------------------------------------------- compile
def test_compiled_blocks_give_the_same_frames_and_a_new_size_does_not_recompile(wan_env, baseline):
    """The eager dynamo backend: the same tracing, guards and dynamic shapes as inductor
    without its C++ build (tens of seconds on a CPU)."""
    backend = get_backend("wan-vace", compile=True, compile_backend="eager")
    rec = Recorder()
    frames = backend.generate(make_request(steps=STEPS), rec.ctx)
    assert np.array_equal(frames, baseline)
    messages = [r.message for r in rec.reports]
    assert any("compiling the transformer (first call)" in m for m in messages)
    first_progress = next(r.message for r in rec.kinds("progress"))
    assert "compiling" in first_progress
    graphs = acceleration.compiled_graphs()
    assert graphs > 0
    # another size and frame count: the dynamic graphs serve it, and nothing says "compiling"
    rec2 = Recorder()
    other = make_request(
        steps=2,
        num_frames=5,
        height=48,
        width=64,
        control_rgb=None,
        control_mask=None,
        previous_frames=None,
        reference_images=[],
    )
    out = backend.generate(other, rec2.ctx)
    backend.close()
    assert out.shape == (5, 48, 64, 3)
    assert acceleration.compiled_graphs() == graphs
    assert not any("compiling" in r.message for r in rec2.reports)


# ----------------------------------------------------------------------------- estimate
def test_the_estimate_covers_every_combination():
    from worldstudio.core.generation import memory

    model, size = "Wan-AI/Wan2.1-VACE-14B-diffusers", (480, 832, 81)
    seen = {}
    for profile in memory.CONCRETE_PROFILES:
        for precision in acceleration.PRECISIONS:
            for cache in acceleration.CACHES:
                for compiled in (False, True):
                    est = memory.estimate(
                        model, *size, profile, precision=precision, cache=cache, compiled=compiled
                    )
                    seen[profile, precision, cache, compiled] = est.total
    gpu = {p: seen["gpu", p, "none", False] for p in acceleration.PRECISIONS}
    assert gpu["nf4"] < gpu["int8"] == gpu["fp8"] < gpu["auto"]
    # the 14B transformer's weights: ~34 GB in bf16, ~17 GB in int8, ~9 GB in nf4
    est = memory.estimate(model, *size, "offload", precision="int8")
    assert est.parts["weights.transformer"] < 18.5 * GiB
    # 14B on a 24 GB GPU, the text encoder offloaded: nf4 at 81 frames, int8 / fp8 at the
    # project's 65; in bf16 it needs 40
    assert memory.estimate(model, *size, "offload", precision="nf4").total < 18 * GiB
    for precision in ("int8", "fp8"):
        assert memory.estimate(model, 480, 832, 65, "offload", precision=precision).total < 24 * GiB
    assert memory.estimate(model, *size, "offload").total > 36 * GiB
    for key in ("first-block", "pab", "taylorseer"):
        assert seen["gpu", "auto", key, False] > seen["gpu", "auto", "none", False]
    assert seen["gpu", "auto", "pab", False] > seen["gpu", "auto", "first-block", False]
    # one guidance branch keeps half the cache
    one = memory.estimate(model, *size, "gpu", cache="pab", guidance=1.0).parts["cache"]
    two = memory.estimate(model, *size, "gpu", cache="pab", guidance=5.0).parts["cache"]
    assert two == 2 * one
    text = memory.estimate(model, *size, "gpu", precision="fp8", cache="taylorseer", compiled=True)
    assert text.text().endswith("(gpu, fp8, taylorseer, compiled)")


def test_the_backend_estimate_takes_its_accelerations(wan_env):
    plain = get_backend("wan-vace", model_id="Wan-AI/Wan2.1-VACE-14B-diffusers")
    small = get_backend("wan-vace", model_id="Wan-AI/Wan2.1-VACE-14B-diffusers", precision="int8")
    assert small.estimate(480, 832, 81, "gpu").total < plain.estimate(480, 832, 81, "gpu").total
    assert small.estimate(480, 832, 81, "gpu").options == ("int8",)


# ----------------------------------------------------------------------------- draft
def test_the_draft_recipes_follow_the_model():
    from worldstudio.core.generation import memory
    from worldstudio.core.models import get_model

    r13 = acceleration.draft_recipe(memory.KNOWN_PIPELINES["Wan-AI/Wan2.1-VACE-1.3B-diffusers"])
    r14 = acceleration.draft_recipe("Wan-AI/Wan2.1-VACE-14B-diffusers")
    ri2v = acceleration.draft_recipe("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers")
    assert r13.lora == "causvid-lora-wan2.1-1.3b" and r13.guidance == 1.0 and r13.steps <= 8
    assert r14.lora == "lightx2v-lora-wan2.1-t2v-14b" and (r14.steps, r14.flow_shift) == (4, 5.0)
    assert ri2v.lora == "lightx2v-lora-wan2.1-i2v-14b" and ri2v.steps == 4
    for recipe in (r13, r14, ri2v):
        info = get_model(recipe.lora)
        assert info.kind == "lora" and recipe.file in info.files
        assert info.download_bytes > 0 and info.licence


def test_a_draft_run_applies_the_distillation_lora_with_its_sampling(
    wan_env, tmp_path_factory, tmp_path
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    options = RunOptions(
        backend="wan-vace",
        quality="draft",
        rounds=1,
        frames_per_round=5,
        profile="gpu",
        monitors=False,
    )
    logs: list[str] = []

    def sink(report):
        if report.kind == "log":
            logs.append(report.message)

    result = generate_job(project, options)(JobContext(sink))
    run = RunFolder(result.run_dir)
    settings = json.loads(run.run_file.read_text())["settings"]
    recipe = acceleration.DRAFT_RECIPES["1.3b"]
    assert settings["quality"] == "draft" and settings["cache"] == "none"
    assert (settings["steps"], settings["guidance"], settings["flow_shift"]) == (
        recipe.steps,
        recipe.guidance,
        recipe.flow_shift,
    )
    ((path, strength),) = settings["loras"]
    assert path.endswith(tiny_wan.DISTILL_LORA_FILE) and strength == recipe.strength
    assert any("quality draft" in m for m in logs)
    assert any(tiny_wan.DISTILL_LORA_FILE in m and "loaded LoRA" in m for m in logs)
    assert np.load(run.observer_npy(0)).shape == (5, 48, 64, 3)
