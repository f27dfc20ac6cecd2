"""Tiny random-weight Wan pipelines (VACE and image-to-video), saved like the real hub repos.

Built from configs (docs/STACK.md: 2-3 transformer layers, 2 heads of 12, text_dim 32, the tiny
``AutoencoderKLWan``, a small UMT5 encoder and ``ByT5Tokenizer()``), so nothing is downloaded. The
scheduler is the real repos' one (UniPC, flow prediction, flow_shift 3). Save them with
``save_pretrained`` and install them into a fake hub cache under the REAL repo ids; the app then
loads them with its own code (``worldstudio.core.models.resolve(repo_id)`` + ``from_pretrained``) with
HF_HUB_OFFLINE=1.

API (kept small: the generation and the training tests both use it)::

    build_tiny_wan_vace(path) -> path           # a WanVACEPipeline folder
    build_tiny_wan_i2v(path) -> path            # a WanImageToVideoPipeline folder
    build_tiny_distill_lora(folder) -> folder   # the draft preset's 1.3B LoRA, at the tiny
                                                # shape, in the original Wan key format
    install_in_fake_hub(cache_dir, repo_id, folder) -> snapshot folder

Fixtures live in tests/generation/conftest.py.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.tiny_models import install_snapshot, revision

WAN_VACE_REPO = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
WAN_I2V_REPO = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"

TEXT_DIM = 32
CLIP_SIZE = 32  # the tiny CLIP's image size (real: 224)
CLIP_HIDDEN = 4

DISTILL_LORA_REPO = "Kijai/WanVideo_comfy"
DISTILL_LORA_FILE = "Wan21_CausVid_bidirect2_T2V_1_3B_lora_rank32.safetensors"

__all__ = [
    "DISTILL_LORA_FILE",
    "DISTILL_LORA_REPO",
    "WAN_I2V_REPO",
    "WAN_VACE_REPO",
    "build_tiny_distill_lora",
    "build_tiny_wan_i2v",
    "build_tiny_wan_vace",
    "install_in_fake_hub",
    "revision",
    "tiny_scheduler",
]


def tiny_vae():
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def tiny_text_encoder_and_tokenizer():
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    tokenizer = ByT5Tokenizer()
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        is_encoder_decoder=False,
        use_cache=False,
    )
    return UMT5EncoderModel(config).eval(), tokenizer


def tiny_scheduler():
    """The real Wan 2.1 repos' scheduler: UniPC with flow prediction and flow sigmas."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=3.0,
        num_train_timesteps=1000,
        solver_order=2,
        predict_x0=True,
    )


def tiny_vace_transformer():
    from diffusers import WanVACETransformer3DModel

    return WanVACETransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=3,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        vace_layers=[0, 2],
        vace_in_channels=96,
    )


def tiny_i2v_transformer():
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=CLIP_HIDDEN,
        added_kv_proj_dim=24,
    )


def build_tiny_wan_vace(path: str | Path) -> Path:
    """A tiny ``WanVACEPipeline`` saved (safetensors) in ``path``."""
    import torch
    from diffusers import WanVACEPipeline

    path = Path(path)
    torch.manual_seed(0)
    text_encoder, tokenizer = tiny_text_encoder_and_tokenizer()
    pipe = WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae().eval(),
        scheduler=tiny_scheduler(),
        transformer=tiny_vace_transformer().eval(),
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_wan_i2v(path: str | Path) -> Path:
    """A tiny ``WanImageToVideoPipeline`` (with a tiny CLIP vision encoder and its processor)."""
    import torch
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = Path(path)
    torch.manual_seed(0)
    text_encoder, tokenizer = tiny_text_encoder_and_tokenizer()
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=CLIP_HIDDEN,
            projection_dim=CLIP_HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=CLIP_SIZE,
            intermediate_size=16,
            patch_size=4,
        )
    ).eval()
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae().eval(),
        scheduler=tiny_scheduler(),
        image_processor=_clip_processor(),
        image_encoder=image_encoder,
        transformer=tiny_i2v_transformer().eval(),
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def _clip_processor():
    """A CLIP image processor at the tiny size. Without torchvision transformers gives its PIL
    version (``CLIPImageProcessorPil``); the saved config names ``CLIPImageProcessor`` either
    way, as the real repo's does."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor(
            crop_size={"height": CLIP_SIZE, "width": CLIP_SIZE},
            size={"shortest_edge": CLIP_SIZE},
        )


def build_tiny_distill_lora(folder: str | Path, rank: int = 2) -> Path:
    """A LoRA for the tiny VACE transformer's main blocks, keyed as the original Wan checkpoints
    and the hub's distillation LoRAs are (``diffusion_model.blocks.N.self_attn.q.lora_down``,
    ``.lora_up``, ``.alpha``; cross-attention and feed-forward likewise), saved under the real
    1.3B draft LoRA's file name in ``folder``."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    dim, ffn = 24, 32  # tiny_vace_transformer: 2 heads of 12, ffn_dim 32
    shapes = {f"{a}.{o}": (dim, dim) for a in ("self_attn", "cross_attn") for o in "qkvo"}
    shapes |= {"ffn.0": (dim, ffn), "ffn.2": (ffn, dim)}  # (in, out)
    tensors = {}
    for block in range(3):
        for name, (n_in, n_out) in shapes.items():
            key = f"diffusion_model.blocks.{block}.{name}"
            tensors[f"{key}.lora_down.weight"] = 0.3 * torch.randn(rank, n_in, generator=gen)
            tensors[f"{key}.lora_up.weight"] = 0.3 * torch.randn(n_out, rank, generator=gen)
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(folder / DISTILL_LORA_FILE))
    return folder


def install_in_fake_hub(cache_dir: str | Path, repo_id: str, folder: str | Path) -> Path:
    """Copy ``folder`` into ``cache_dir`` as ``models--ORG--NAME/snapshots/<40 hex>/`` with the
    hex in ``refs/main``; returns the snapshot folder."""
    return install_snapshot(Path(cache_dir), repo_id, Path(folder))


@contextlib.contextmanager
def single_thread():
    """Torch on one thread while building or timing tiny models (two busy threads on a 2-core
    machine are slower than one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
