"""Tiny LiveWorld models for the tests, saved like the real hub repos.

- The golden fixture (tests/data/liveworld/): LiveWorld's own tiny model's weights (LiveWorld's
  parameter names), inputs and outputs; :func:`golden`.
- A tiny Wan text-to-video pipeline in diffusers' layout (the shape of the golden backbone: width
  24 = 2 heads of 12, 4 layers, ffn 32, text_dim 32), to install under
  ``Wan-AI/Wan2.1-T2V-14B-Diffusers``; :func:`build_tiny_wan_t2v`.
- LiveWorld's checkpoints with the real key layout, pickled as LiveWorld ships them (plain tensor
  dicts written with ``torch.save``): ``ckpts/state_adapter/model.pt`` (the golden model's
  ``sp_*`` tensors) and ``ckpts/lora/model.pt`` (rank 4 on q, k, v, o of both attentions of the 4
  blocks, LiveWorld's module names), to install under ``ZichengD/LiveWorld``; and lightx2v's
  ``distill_model.pt`` (the golden model's backbone tensors in Wan's original names) under
  ``lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill``; :func:`install_liveworld_hub`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.tiny_models import install_snapshot
from tests.tiny_wan import TEXT_DIM, tiny_scheduler, tiny_text_encoder_and_tokenizer, tiny_vae

GOLDEN = Path(__file__).parent / "data" / "liveworld" / "state_adapter_golden.safetensors"
T2V_REPO = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
LIVEWORLD_REPO = "ZichengD/LiveWorld"
DISTILL_REPO = "lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill"
LORA_RANK = 4

# the golden model's backbone as a diffusers WanTransformer3DModel config
TINY_BACKBONE = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": TEXT_DIM,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 4,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 64,
}


def golden() -> tuple[dict, dict, dict]:
    """(LiveWorld's state dict by its own names, {case: tensors}, {case: parameters})."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(GOLDEN), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(GOLDEN))
    weights = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
    params = json.loads(meta["cases"])
    cases = {
        name: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")}
        for name in params
    }
    return weights, cases, params


def tiny_backbone(seed: int = 0):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(**TINY_BACKBONE).eval()


def build_tiny_wan_t2v(path: str | Path) -> Path:
    """A tiny ``WanPipeline`` (text-to-video) saved (safetensors) in ``path``."""
    import torch
    from diffusers import WanPipeline

    path = Path(path)
    torch.manual_seed(0)
    text_encoder, tokenizer = tiny_text_encoder_and_tokenizer()
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae().eval(),
        scheduler=tiny_scheduler(),
        transformer=tiny_backbone(1),
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def liveworld_lora(seed: int = 0, rank: int = LORA_RANK, prefix: str = "") -> dict:
    """A LiveWorld-style LoRA state dict: ``blocks.N.{self_attn,cross_attn}.{q,k,v,o}.lora_{A,B}
    .weight`` (both factors non-zero, so it changes the output)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    width = TINY_BACKBONE["num_attention_heads"] * TINY_BACKBONE["attention_head_dim"]
    out = {}
    for i in range(TINY_BACKBONE["num_layers"]):
        for attn in ("self_attn", "cross_attn"):
            for proj in "qkvo":
                base = f"{prefix}blocks.{i}.{attn}.{proj}"
                out[f"{base}.lora_A.weight"] = torch.randn(rank, width, generator=g) * 0.3
                out[f"{base}.lora_B.weight"] = torch.randn(width, rank, generator=g) * 0.3
    return out


def write_liveworld_checkpoints(folder: str | Path) -> Path:
    """``ckpts/state_adapter/model.pt`` and ``ckpts/lora/model.pt`` under ``folder``."""
    import torch

    folder = Path(folder)
    weights, _, _ = golden()
    adapter = {k: v.clone() for k, v in weights.items() if k.startswith("sp_")}
    (folder / "ckpts" / "state_adapter").mkdir(parents=True, exist_ok=True)
    (folder / "ckpts" / "lora").mkdir(parents=True, exist_ok=True)
    torch.save(adapter, folder / "ckpts" / "state_adapter" / "model.pt")
    torch.save(liveworld_lora(), folder / "ckpts" / "lora" / "model.pt")
    return folder


def write_distill_checkpoint(folder: str | Path) -> Path:
    """lightx2v's ``distill_model.pt`` (Wan's original names) under ``folder``."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights, _, _ = golden()
    torch.save(
        {k: v.clone() for k, v in weights.items() if not k.startswith("sp_")},
        folder / "distill_model.pt",
    )
    return folder


def install_liveworld_hub(hub: str | Path, root: str | Path) -> Path:
    """The tiny T2V pipeline, LiveWorld's checkpoints and the distilled backbone in the fake hub
    cache ``hub`` under their real repo ids (built in ``root``)."""
    hub, root = Path(hub), Path(root)
    install_snapshot(hub, T2V_REPO, build_tiny_wan_t2v(root / "t2v"))
    install_snapshot(hub, LIVEWORLD_REPO, write_liveworld_checkpoints(root / "liveworld"))
    install_snapshot(hub, DISTILL_REPO, write_distill_checkpoint(root / "distill"))
    return hub
