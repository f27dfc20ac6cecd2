"""The diffusers Wan backends on tiny random-weight pipelines loaded from a fake hub cache under
the real repo ids (the app's own resolve + from_pretrained path, HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import tiny_wan
from worldstudio.core.errors import Cancelled
from worldstudio.core.generation.backends import GenerationRequest, get_backend
from worldstudio.core.generation.backends.wan_common import GRAY
from worldstudio.core.generation.backends.wan_i2v import first_frame
from worldstudio.core.generation.backends.wan_vace import WanVaceBackend, vace_inputs
from worldstudio.core.jobs import CancelToken, JobContext
from worldstudio.core.models import ModelMissingError

pytestmark = pytest.mark.usefixtures("one_thread")

F, H, W = 9, 32, 48


def make_request(seed: int = 1, steps: int = 2, **overrides) -> GenerationRequest:
    rng = np.random.default_rng(0)
    control = rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    mask = np.zeros((F, H, W), bool)
    mask[:, :, W // 2 :] = True  # the right half was not rendered: generate it
    control[mask] = 0
    fields = dict(
        prompt="scene: a quiet street; foreground: a cat walks",
        num_frames=F,
        height=H,
        width=W,
        steps=steps,
        guidance=5.0,
        seed=seed,
        control_rgb=control,
        control_mask=mask,
        previous_frames=rng.integers(0, 256, (5, H, W, 3), dtype=np.uint8),
        reference_images=[rng.integers(0, 256, (H, W, 3), dtype=np.uint8)],
    )
    fields.update(overrides)
    return GenerationRequest(**fields)


class Recorder:
    def __init__(self, cancel_at_step: int | None = None):
        self.reports = []
        self.token = CancelToken()
        self.cancel_at = cancel_at_step
        self.ctx = JobContext(self.sink, self.token)

    def sink(self, report):
        self.reports.append(report)
        if (
            self.cancel_at is not None
            and report.kind == "progress"
            and report.done == self.cancel_at
        ):
            self.token.cancel()

    def kinds(self, kind):
        return [r for r in self.reports if r.kind == kind]


# ----------------------------------------------------------------------------- loading
def test_the_backends_load_from_the_fake_hub_by_repo_id(vace_backend, i2v_backend, wan_hub):
    from diffusers import WanImageToVideoPipeline, WanVACEPipeline

    assert vace_backend.model_id == tiny_wan.WAN_VACE_REPO
    assert isinstance(vace_backend.pipe, WanVACEPipeline)
    assert vace_backend.folder.name == tiny_wan.revision(tiny_wan.WAN_VACE_REPO)
    assert vace_backend.folder.is_relative_to(wan_hub)
    assert isinstance(i2v_backend.pipe, WanImageToVideoPipeline)
    assert i2v_backend.folder.name == tiny_wan.revision(tiny_wan.WAN_I2V_REPO)
    # CPU: float32 everywhere, everything on the CPU, PyTorch SDPA
    assert str(vace_backend.pipe.transformer.dtype) == "torch.float32"
    assert vace_backend.applied.profile == "gpu" and vace_backend.applied.attention == "native"
    assert vace_backend.lifter == "model"


def test_a_missing_model_fails_with_one_clear_line(wan_env):
    backend = get_backend("wan-vace", model_id="Wan-AI/Wan2.1-VACE-14B-diffusers")
    with pytest.raises(ModelMissingError) as info:
        backend.generate(make_request(), JobContext())
    message = str(info.value)
    assert "\n" not in message
    assert "wan2.1-vace-14b" in message and "HF_HUB_OFFLINE" in message


def test_the_factory_takes_the_engines_options(wan_env):
    backend = get_backend(
        "wan-vace", model_id=None, profile=None, project=object(), project_folder=None
    )
    assert isinstance(backend, WanVaceBackend)
    assert backend.model_id == tiny_wan.WAN_VACE_REPO and backend.profile == "auto"
    assert backend.pipe is None  # nothing loads before the first generate


# ----------------------------------------------------------------------------- VACE inputs
def test_vace_inputs_put_previous_frames_in_front_with_an_empty_mask():
    req = make_request()
    control, mask, refs, lead = vace_inputs(req, 4)
    assert lead == 4 and control.shape == (F + 4, H, W, 3) and mask.shape == (F + 4, H, W)
    assert (control[:4] == req.previous_frames[-4:]).all()  # the 4 most recent, in order
    assert not mask[:4].any()  # keep them
    assert (mask[4:] == req.control_mask).all()
    assert (control[4:][req.control_mask] == GRAY).all()  # empty pixels -> neutral gray
    assert (control[4:][~req.control_mask] == req.control_rgb[~req.control_mask]).all()
    assert len(refs) == 1
    assert (len(control) - 1) % 4 == 0

    one = make_request(previous_frames=req.previous_frames[-1:])
    control, mask, _, lead = vace_inputs(one, 4)
    assert lead == 4
    assert mask[:3].all() and (control[:3] == GRAY).all()  # padding to generate (then dropped)
    assert not mask[3].any() and (control[3] == one.previous_frames[0]).all()

    none = make_request(previous_frames=None, reference_images=[])
    control, mask, refs, lead = vace_inputs(none)
    assert lead == 0 and len(control) == F and refs == []

    # by default every previous frame the request gives is used (the engine gives exactly the
    # run's context_frames): 5 frames lead, padded to 8
    control, mask, _, lead = vace_inputs(req)
    assert lead == 8 and (control[3:8] == req.previous_frames).all() and mask[:3].all()
    assert not mask[3:8].any()


def _layers_request(role: str):
    """A request with a scene projection (left half), a hole (right half) and an entity drawn
    over the hole's top rows, depths given."""
    req = make_request(previous_frames=None, role=role)
    depth = np.zeros((F, H, W), np.float32)
    depth[:, :, : W // 2] = 3.0
    labels = np.full((F, H, W), -1, np.int16)
    labels[:, :4, W // 2 : W // 2 + 6] = 0
    fg = np.zeros((F, H, W, 3), np.uint8)
    fg[labels >= 0] = (250, 5, 5)
    req.control_rgb[:, :, W // 2 :] = 0
    req.control_depth = depth
    req.foreground_rgb, req.foreground_labels, req.foreground_ids = fg, labels, ["cat"]
    req.foreground_depth = np.where(labels >= 0, 2.0, 0.0).astype(np.float32)
    req.control_mask = np.zeros((F, H, W), bool)
    req.control_mask[:, :, W // 2 - 2 :] = True
    return req, labels >= 0


def test_vace_observer_mapping_composites_the_foreground_and_grays_the_holes():
    req, ent = _layers_request("observer")
    control, mask, _, lead = vace_inputs(req)
    assert lead == 0 and (mask == req.control_mask).all()
    assert (control[ent] == (250, 5, 5)).all()  # the entity's state: a hint inside the mask
    hole = req.control_mask & (req.control_depth == 0) & ~ent
    assert hole.any() and (control[hole] == GRAY).all()
    kept = req.control_mask & (req.control_depth > 0)  # rendered pixels inside the mask stay
    assert (control[kept] == req.control_rgb[kept]).all()
    assert (control[~req.control_mask] == req.control_rgb[~req.control_mask]).all()


def test_vace_monitor_mapping_shows_the_scene_projection_only():
    req, ent = _layers_request("monitor")
    req.control_mask[:] = True  # the engine's monitor mask: the whole frame
    control, mask, _, _ = vace_inputs(req)
    assert mask.all()
    assert (control[ent] == GRAY).all()  # the entity's last state is not shown
    assert (control[:, :, : W // 2] == req.control_rgb[:, :, : W // 2]).all()


def test_vace_references_put_the_scene_first_and_keep_the_instances():
    rng = np.random.default_rng(1)
    scene = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(3)]
    inst = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2)]
    req = make_request(reference_images=scene, instance_references=inst)
    _, _, refs, _ = vace_inputs(req, max_references=3)
    assert len(refs) == 3
    assert refs[0] is not None and (refs[0] == scene[0]).all()  # the source image stays first
    assert (refs[1] == inst[0]).all() and (refs[2] == inst[1]).all()
    _, _, refs, _ = vace_inputs(
        make_request(reference_images=scene[:1], instance_references=inst), max_references=5
    )
    assert len(refs) == 3
    _, _, refs, _ = vace_inputs(
        make_request(reference_images=[], instance_references=inst * 3), max_references=3
    )
    assert len(refs) == 3


def test_the_conditioning_a_backend_reports_is_what_its_pipeline_gets():
    backend = WanVaceBackend(model_id="unused")  # nothing loads before generate
    req, _ = _layers_request("observer")
    req.previous_frames = np.zeros((2, H, W, 3), np.uint8)
    video, mask = backend.conditioning(req)
    control, vmask, _, lead = vace_inputs(req)
    assert lead == 4 and np.array_equal(video, control) and np.array_equal(mask, vmask)
    assert backend.flow_shift_for(480, 832) == 3.0 and backend.flow_shift_for(720, 1280) == 5.0
    assert backend.context_frames == 4


def test_a_monitor_hint_inside_the_mask_is_kept():
    req = make_request()
    req.control_rgb[:, :, W // 2 :] = (200, 10, 10)  # an entity's last state, to be regenerated
    control, _, _, lead = vace_inputs(req)
    assert (control[lead:, :, W // 2 :] == (200, 10, 10)).all()


# ----------------------------------------------------------------------------- generating
def test_vace_generates_from_renders_mask_previous_frames_and_reference(vace_backend):
    rec = Recorder()
    req = make_request(seed=7)
    frames = vace_backend.generate(req, rec.ctx)
    assert frames.shape == (F, H, W, 3) and frames.dtype == np.uint8
    progress = [r.done for r in rec.kinds("progress")]
    assert progress == [0, 1, 2]
    assert all(r.total == 2 for r in rec.kinds("progress"))

    again = vace_backend.generate(make_request(seed=7), Recorder().ctx)
    assert np.array_equal(frames, again)
    other = vace_backend.generate(make_request(seed=8), Recorder().ctx)
    assert not np.array_equal(frames, other)


def test_vace_conditioning_changes_the_output(vace_backend):
    base = vace_backend.generate(make_request(), Recorder().ctx)
    no_prev = vace_backend.generate(make_request(previous_frames=None), Recorder().ctx)
    assert no_prev.shape == base.shape and not np.array_equal(base, no_prev)
    # the role's strength is VACE's conditioning scale, and the flow shift reaches the sampler
    weak = vace_backend.generate(make_request(strength=0.4), Recorder().ctx)
    assert not np.array_equal(base, weak)
    shifted = vace_backend.generate(make_request(flow_shift=5.0), Recorder().ctx)
    assert vace_backend.pipe.scheduler.config.flow_shift == 5.0
    assert not np.array_equal(base, shifted)
    again = vace_backend.generate(make_request(flow_shift=3.0), Recorder().ctx)
    assert vace_backend.pipe.scheduler.config.flow_shift == 3.0 and np.array_equal(base, again)
    negative = vace_backend.generate(make_request(negative_prompt="blurry"), Recorder().ctx)
    assert not np.array_equal(base, negative)


def test_i2v_generates_from_the_previous_frame_or_the_source_image(i2v_backend):
    req = make_request(seed=3)
    image, continuing = first_frame(req)
    assert continuing and (image == req.previous_frames[-1]).all()
    rec = Recorder()
    frames = i2v_backend.generate(req, rec.ctx)
    assert frames.shape == (F, H, W, 3) and frames.dtype == np.uint8
    assert [r.done for r in rec.kinds("progress")] == [0, 1, 2]
    assert np.array_equal(frames, i2v_backend.generate(make_request(seed=3), Recorder().ctx))
    assert not np.array_equal(frames, i2v_backend.generate(make_request(seed=4), Recorder().ctx))

    first = make_request(seed=3, previous_frames=None)
    image, continuing = first_frame(first)
    assert not continuing and (image == first.reference_images[0]).all()
    # the source image as it is comes first (scene references have the entities blacked out)
    source = np.full((H, W, 3), 77, np.uint8)
    image, continuing = first_frame(make_request(previous_frames=None, source_image=source))
    assert not continuing and (image == source).all()
    frames0 = i2v_backend.generate(first, Recorder().ctx)
    assert frames0.shape == (F, H, W, 3)

    # a source image of another size is centre-cropped and resized, not rejected
    odd = make_request(previous_frames=None, reference_images=[np.zeros((40, 90, 3), np.uint8)])
    assert i2v_backend.generate(odd, Recorder().ctx).shape == (F, H, W, 3)


def test_cancel_stops_after_the_step_where_it_was_set(vace_backend):
    calls = []
    hook = vace_backend.pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        rec = Recorder(cancel_at_step=1)
        with pytest.raises(Cancelled):
            vace_backend.generate(make_request(steps=3), rec.ctx)
    finally:
        hook.remove()
    assert [r.done for r in rec.kinds("progress")] == [0, 1]
    assert len(calls) == 2  # one step: the conditional and the unconditional pass
    # the pipeline is usable afterwards
    assert vace_backend.generate(make_request(), Recorder().ctx).shape == (F, H, W, 3)


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        ("oom", "wan-vace: out of accelerator memory at 48x32x"),
        ("bug", "wan-vace: generation failed for observer round 1 (RuntimeError: a kernel broke)"),
    ],
)
def test_a_failing_model_call_is_one_line_and_the_pipeline_stays_usable(vace_backend, raised, said):
    import torch

    from worldstudio.core.generation.backends.base import BackendError

    def fail(*_args):
        if raised == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise RuntimeError("a kernel broke\nsecond line of a long message")

    hook = vace_backend.pipe.transformer.register_forward_hook(fail)
    try:
        with pytest.raises(BackendError) as info:
            vace_backend.generate(make_request(), Recorder().ctx)
    finally:
        hook.remove()
    message = str(info.value)
    assert said in message and "\n" not in message
    if raised == "oom":
        assert "try the 'offload' or 'low-vram' profile" in message and "estimate" in message
    assert vace_backend.generate(make_request(), Recorder().ctx).shape == (F, H, W, 3)


def test_cancel_before_the_start_runs_nothing(vace_backend):
    rec = Recorder()
    rec.token.cancel()
    with pytest.raises(Cancelled):
        vace_backend.generate(make_request(), rec.ctx)
    assert rec.kinds("progress") == []


# ----------------------------------------------------------------------------- LoRA
@pytest.fixture(scope="module")
def lora_file(wan_folders, tmp_path_factory):
    """A LoRA made with peft on the tiny VACE transformer, random non-zero B matrices, saved with
    the pipeline's save_lora_weights."""
    import torch
    from diffusers import WanVACEPipeline, WanVACETransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = WanVACETransformer3DModel.from_pretrained(
        wan_folders["vace"], subfolder="transformer"
    )
    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    out = tmp_path_factory.mktemp("lora")
    WanVACEPipeline.save_lora_weights(
        out, transformer_lora_layers=get_peft_model_state_dict(transformer)
    )
    path = out / "pytorch_lora_weights.safetensors"
    assert path.is_file()
    return path


def test_a_lora_changes_the_output_with_strength_and_not_at_zero(vace_backend, lora_file):
    base = vace_backend.generate(make_request(), Recorder().ctx)
    rec = Recorder()
    with_lora = vace_backend.generate(make_request(loras=[(str(lora_file), 1.0)]), rec.ctx)
    assert not np.array_equal(base, with_lora)
    assert any("loaded LoRA" in r.message for r in rec.kinds("log"))
    zero = vace_backend.generate(make_request(loras=[(str(lora_file), 0.0)]), Recorder().ctx)
    assert np.array_equal(base, zero)
    disabled = vace_backend.generate(make_request(loras=[]), Recorder().ctx)
    assert np.array_equal(base, disabled)
    again = vace_backend.generate(
        make_request(loras=[(str(lora_file.parent), 1.0)]), Recorder().ctx
    )
    assert np.array_equal(with_lora, again)  # a folder works; the adapter is not loaded twice
    assert len(vace_backend.loras.names) == 1


def test_a_missing_lora_names_the_file(vace_backend, tmp_path):
    from worldstudio.core.generation.backends import BackendError

    with pytest.raises(BackendError, match="nope.safetensors"):
        vace_backend.generate(
            make_request(loras=[(str(tmp_path / "nope.safetensors"), 1.0)]), Recorder().ctx
        )


@pytest.mark.parametrize("kind", ["wan-vace", "wan-i2v"])
def test_the_accelerator_dtypes_run_on_a_cpu_too(kind, wan_env):
    """bf16 transformer and text encoder, float32 VAE (and CLIP): what a GPU gets by default."""
    import torch

    backend = get_backend(kind, device="cpu", dtype="bfloat16", profile="gpu")
    try:
        rec = Recorder()
        frames = backend.generate(make_request(steps=1), rec.ctx)
        pipe = backend.pipe
        assert (
            pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
        )
        assert pipe.vae.dtype == torch.float32
        if kind == "wan-i2v":
            assert pipe.image_encoder.dtype == torch.float32
        assert frames.shape == (F, H, W, 3) and len(rec.kinds("preview")) == 1
    finally:
        backend.close()
