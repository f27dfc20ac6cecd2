"""Live preview: x0 from the scheduler's own step, the linear latent-to-RGB map, thumbnails."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldstudio.core.generation import live_preview as lp
from worldstudio.core.generation.backends import GenerationRequest
from worldstudio.core.jobs import JobContext

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- x0
def _run_steps(scheduler, steps: int = 5):
    g = torch.Generator().manual_seed(0)
    scheduler.set_timesteps(steps)
    sample = torch.randn(1, 16, 2, 4, 4, generator=g)
    out = []
    with lp.SchedulerTap(scheduler) as tap:
        for t in scheduler.timesteps:
            velocity = torch.randn(sample.shape, generator=g)
            index = scheduler.step_index or 0
            sigma = float(scheduler.sigmas[index])
            sigma_next = float(scheduler.sigmas[index + 1])
            prev = scheduler.step(velocity, t, sample, return_dict=False)[0]
            out.append((sample, velocity, prev, sigma, sigma_next, tap.x0.clone(), tap.sigma))
            sample = prev
    assert "step" not in vars(scheduler)  # the tap is gone afterwards
    return out


def test_x0_from_unipc_matches_its_own_x0_prediction():
    from tests.tiny_wan import tiny_scheduler

    scheduler = tiny_scheduler()
    g = torch.Generator().manual_seed(1)
    scheduler.set_timesteps(4)
    sample = torch.randn(1, 16, 2, 4, 4, generator=g)
    with lp.SchedulerTap(scheduler) as tap:
        for t in scheduler.timesteps:
            velocity = torch.randn(sample.shape, generator=g)
            sample = scheduler.step(velocity, t, sample, return_dict=False)[0]
            # UniPC (flow prediction, predict_x0) keeps its x0 prediction in model_outputs[-1]
            torch.testing.assert_close(tap.x0, scheduler.model_outputs[-1].float())
    assert tap.steps == 4 and tap.sigma == pytest.approx(float(scheduler.sigmas[3]))


def test_x0_from_flow_match_euler_agrees_with_consecutive_latents():
    from diffusers import FlowMatchEulerDiscreteScheduler

    for sample, velocity, prev, sigma, sigma_next, x0, tap_sigma in _run_steps(
        FlowMatchEulerDiscreteScheduler(shift=3.0)
    ):
        assert tap_sigma == pytest.approx(sigma)
        torch.testing.assert_close(x0, sample - sigma * velocity)
        # an Euler step is linear: x0 also follows from two consecutive latents
        from_pair = (sigma_next * sample - sigma * prev) / (sigma_next - sigma)
        torch.testing.assert_close(x0, from_pair, rtol=1e-4, atol=1e-4)


def test_flow_x0_inverts_the_forward_process():
    x0 = torch.randn(3, 4)
    noise = torch.randn(3, 4)
    sigma = 0.7
    xt = (1 - sigma) * x0 + sigma * noise
    torch.testing.assert_close(lp.flow_x0(xt, noise - x0, sigma), x0)


# ----------------------------------------------------------------------------- the map
@pytest.fixture(scope="module")
def tiny_vae(wan_folders):
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan.from_pretrained(wan_folders["vace"], subfolder="vae").eval()


def _held_out(vae, rgb_map):
    """(linear decode, VAE decode on the latent grid) of latents of unseen clips."""
    cfg = vae.config
    mean = torch.tensor(cfg.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(cfg.latents_std).view(1, 16, 1, 1, 1)
    preds, targets = [], []
    for clip in lp._test_clips(3, 64, 9, seed=123):
        video = torch.from_numpy(clip).permute(3, 0, 1, 2)[None] * 2 - 1
        with torch.no_grad():
            z = vae.encode(video).latent_dist.mode()
            decoded = vae.decode(z, return_dict=False)[0]
        rgb = ((decoded.clamp(-1, 1) + 1) / 2)[0].permute(1, 2, 3, 0).numpy()
        targets.append(lp._latent_grid_targets(rgb, 4, 8))
        preds.append(rgb_map.apply(((z - mean) / std)[0]))
    return np.concatenate(preds), np.concatenate(targets)


def _channel_corr(a, b):
    return [float(np.corrcoef(a[..., c].ravel(), b[..., c].ravel())[0, 1]) for c in range(3)]


def test_the_fitted_linear_map_follows_the_vae_decode(tiny_vae):
    rgb_map = lp.fit_latent_rgb_map(tiny_vae)
    assert rgb_map.matrix.shape == (16, 3) and rgb_map.bias.shape == (3,)
    pred, target = _held_out(tiny_vae, rgb_map)
    assert pred.shape == target.shape and pred.shape[-1] == 3
    corr = _channel_corr(pred, target)
    assert np.mean(corr) > 0.5 and min(corr) > 0.35, corr
    # a random map of the same scale does not
    rng = np.random.default_rng(0)
    random_map = lp.LatentRGBMap(
        rng.normal(0, np.abs(rgb_map.matrix).mean(), (16, 3)).astype(np.float32), rgb_map.bias
    )
    rand_pred, _ = _held_out(tiny_vae, random_map)
    assert np.mean(np.abs(_channel_corr(rand_pred, target))) < np.mean(corr) - 0.25
    # and the error is small against the decode's own spread
    assert np.abs(pred - target).mean() < target.std()


def test_the_map_is_cached_on_disk_by_vae_fingerprint(tiny_vae, tmp_path, monkeypatch):
    monkeypatch.setattr(lp, "_memo", {})
    first = lp.latent_rgb_map_for(tiny_vae, tmp_path)
    files = list(tmp_path.glob("wan-*.json"))
    assert len(files) == 1 and lp.vae_fingerprint(tiny_vae) in files[0].name
    monkeypatch.setattr(lp, "_memo", {})
    monkeypatch.setattr(lp, "fit_latent_rgb_map", lambda vae: pytest.fail("refitted"))
    second = lp.latent_rgb_map_for(tiny_vae, tmp_path)
    np.testing.assert_allclose(first.matrix, second.matrix, rtol=1e-6)
    # a damaged cache file is refitted
    files[0].write_text("{not json")
    monkeypatch.setattr(lp, "_memo", {})
    monkeypatch.setattr(lp, "fit_latent_rgb_map", lambda vae: first)
    assert lp.latent_rgb_map_for(tiny_vae, tmp_path) is first
    assert json.loads(files[0].read_text())["matrix"]


def test_the_fingerprint_ignores_the_dtype(tiny_vae):
    import copy

    half = copy.deepcopy(tiny_vae).to(torch.bfloat16)
    assert lp.vae_fingerprint(half) == lp.vae_fingerprint(tiny_vae)


# ----------------------------------------------------------------------------- thumbnails
def test_preview_image_is_a_uint8_strip_of_evenly_spaced_frames():
    rgb_map = lp.LatentRGBMap(np.zeros((16, 3), np.float32), np.array([0.0, 0.5, 1.0], np.float32))
    x0 = torch.zeros(1, 16, 17, 60, 104)
    image = lp.preview_image(x0, rgb_map)
    assert image.shape == (60, 4 * 104, 3) and image.dtype == np.uint8
    assert (
        (image[..., 0] == 0).all() and (image[..., 1] == 128).all() and (image[..., 2] == 255).all()
    )
    assert lp.preview_shape(480, 832, 65) == image.shape
    assert lp.preview_frame_indices(17, 0, 4) == [0, 5, 11, 16]
    assert lp.preview_frame_indices(6, 2, 4) == [2, 3, 4, 5]
    assert lp.preview_frame_indices(2, 2, 4) == []
    assert lp.preview_shape(32, 48, 5) == (4, 2 * 6, 3)


def _request(**overrides):
    rng = np.random.default_rng(0)
    F, H, W = 9, 32, 48
    fields = dict(
        prompt="scene: a field",
        num_frames=F,
        height=H,
        width=W,
        steps=3,
        guidance=4.0,
        seed=5,
        control_rgb=rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8),
        control_mask=rng.random((F, H, W)) > 0.5,
        previous_frames=rng.integers(0, 256, (5, H, W, 3), dtype=np.uint8),
        reference_images=[rng.integers(0, 256, (H, W, 3), dtype=np.uint8)],
    )
    fields.update(overrides)
    return GenerationRequest(**fields)


@pytest.mark.parametrize("kind", ["vace", "i2v"])
def test_a_preview_arrives_once_per_step_with_the_thumbnail_shape(kind, vace_backend, i2v_backend):
    backend = vace_backend if kind == "vace" else i2v_backend
    reports = []
    req = _request()
    backend.generate(req, JobContext(reports.append))
    previews = [r for r in reports if r.kind == "preview"]
    steps = [r.done for r in reports if r.kind == "progress" and r.done > 0]
    assert steps == [1, 2, 3] and len(previews) == 3
    expected = lp.preview_shape(req.height, req.width, req.num_frames)
    assert expected == (4, 3 * 6, 3)
    for p in previews:
        assert p.payload.shape == expected and p.payload.dtype == np.uint8
    # the preview of the last step is the linear decode of the final latents
    assert previews[-1].message.endswith("step 3/3")


def test_the_last_preview_is_the_linear_decode_of_the_final_latents(vace_backend):
    """UniPC's last step lands on its x0 prediction, so the final preview is exactly the linear
    map of the latents the VAE then decodes (reference and context latent frames skipped)."""
    reports = []
    base = _request(steps=2)
    # 4 previous frames, as the engine gives VACE by default (every frame given is used)
    req = _request(steps=2, previous_frames=base.previous_frames[-4:])
    vace_backend.generate(req, JobContext(reports.append))
    last = [r for r in reports if r.kind == "preview"][-1].payload
    plan = vace_backend._plan(req)
    latents = vace_backend.pipe(
        **vace_backend.call_arguments(req, plan, output_type="latent")
    ).frames
    assert plan.skip_latent_frames == 2  # the reference image and the 4 context frames
    expected = lp.preview_image(latents, vace_backend.rgb_map, skip_frames=plan.skip_latent_frames)
    assert np.array_equal(last, expected)
