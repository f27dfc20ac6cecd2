"""The model catalogue: every model the studio can use, with what a user needs to know first.

Sizes are the download of the files the studio fetches (``allow_patterns``: configs, tokenizers
and safetensors weights; never the original ``.pt``/``.bin`` checkpoints some repos also carry,
except for ``checkpoint`` entries, whose named files are such checkpoints: LiveWorld's),
rounded; ``memory_gb`` is the accelerator (or, on a CPU, main) memory the model needs to run at
the studio's working resolution in float32 (depth, segmentation) or bf16 with the text encoder
off-loaded (video). Both are approximate and only inform the user: nothing is enforced.

This module is pure data: it imports neither torch nor huggingface_hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# "checkpoint": raw checkpoints a backend converts itself (LiveWorld's State Adapter and LoRA, the
# distilled backbone of its 4-step variant); not diffusers pipelines. "lora": LoRA files for the
# video backbones (the step-distillation LoRAs of the "draft" quality preset), loaded through the
# backends' LoRA path (diffusers converts their original-Wan key names)
Kind = Literal["depth", "segmentation", "video", "checkpoint", "lora"]
KINDS: tuple[Kind, ...] = ("depth", "segmentation", "video", "checkpoint", "lora")

# What a transformers model needs from its repo; what a diffusers pipeline needs.
TRANSFORMERS_FILES = ("*.json", "*.safetensors", "*.txt", "*.model")
DIFFUSERS_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "tokenizer/*")

MB = 1000**2
GB = 1000**3


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue entry.

    ``name`` is the short name users type (``worldstudio models download NAME``); ``repo_id`` is
    the Hugging Face hub repository. Either finds the entry (:func:`find_model`).
    """

    name: str
    repo_id: str
    kind: Kind
    licence: str
    download_bytes: int
    memory_gb: float
    description: str
    library: Literal["transformers", "diffusers", "checkpoint"] = "transformers"
    default: bool = False
    metric: bool = False  # depth models: the depth is in metres
    estimates_fov: bool = False  # depth models: the model also estimates the field of view
    licence_note: str = ""  # shown next to the licence (e.g. "research use only")
    allow_patterns: tuple[str, ...] = field(default=TRANSFORMERS_FILES)
    # library "checkpoint": the files the entry is (a repo's raw checkpoints, e.g. LiveWorld's
    # pickled .pt files, which the backend converts to safetensors itself)
    files: tuple[str, ...] = ()

    @property
    def size_text(self) -> str:
        return format_bytes(self.download_bytes)

    @property
    def licence_text(self) -> str:
        return f"{self.licence} ({self.licence_note})" if self.licence_note else self.licence


def format_bytes(n: int | float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as the hub shows sizes)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000.0 or unit == "TB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.0f} {unit}" if n >= 10 else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


_RESEARCH = (
    "Apple Machine Learning Research Model licence: research use only, not for commercial use"
)

CATALOGUE: tuple[ModelInfo, ...] = (
    # ---------------------------------------------------------------- depth
    ModelInfo(
        name="depth-anything-v2-small",
        repo_id="depth-anything/Depth-Anything-V2-Small-hf",
        kind="depth",
        licence="Apache-2.0",
        download_bytes=99 * MB,
        memory_gb=1.0,
        description="Depth Anything V2 Small (25M): relative depth (disparity), fast on a CPU",
        default=True,
    ),
    ModelInfo(
        name="depth-anything-v2-metric-indoor-small",
        repo_id="depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
        kind="depth",
        licence="Apache-2.0",
        download_bytes=99 * MB,
        memory_gb=1.0,
        description="Depth Anything V2 Small fine-tuned on Hypersim: metric depth in metres, indoor (to 20 m)",
        metric=True,
    ),
    ModelInfo(
        name="depth-anything-v2-metric-outdoor-small",
        repo_id="depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf",
        kind="depth",
        licence="Apache-2.0",
        download_bytes=99 * MB,
        memory_gb=1.0,
        description="Depth Anything V2 Small fine-tuned on Virtual KITTI: metric depth in metres, outdoor (to 80 m)",
        metric=True,
    ),
    ModelInfo(
        name="depth-pro",
        repo_id="apple/DepthPro-hf",
        kind="depth",
        licence="apple-amlr",
        licence_note=_RESEARCH,
        download_bytes=int(1.9 * GB),
        memory_gb=6.0,
        description="Apple Depth Pro (950M): sharp metric depth and its own field-of-view estimate, 1536 px",
        metric=True,
        estimates_fov=True,
    ),
    # ---------------------------------------------------------------- segmentation (SAM 2.1)
    ModelInfo(
        name="sam2.1-tiny",
        repo_id="facebook/sam2.1-hiera-tiny",
        kind="segmentation",
        licence="Apache-2.0",
        download_bytes=156 * MB,
        memory_gb=1.0,
        description="SAM 2.1 Hiera-T (39M): click/box masks and video tracking; quick on a CPU",
        default=True,
    ),
    ModelInfo(
        name="sam2.1-small",
        repo_id="facebook/sam2.1-hiera-small",
        kind="segmentation",
        licence="Apache-2.0",
        download_bytes=184 * MB,
        memory_gb=1.2,
        description="SAM 2.1 Hiera-S (46M): masks and video tracking",
    ),
    ModelInfo(
        name="sam2.1-base-plus",
        repo_id="facebook/sam2.1-hiera-base-plus",
        kind="segmentation",
        licence="Apache-2.0",
        download_bytes=324 * MB,
        memory_gb=1.8,
        description="SAM 2.1 Hiera-B+ (81M): masks and video tracking",
    ),
    ModelInfo(
        name="sam2.1-large",
        repo_id="facebook/sam2.1-hiera-large",
        kind="segmentation",
        licence="Apache-2.0",
        download_bytes=898 * MB,
        memory_gb=3.5,
        description="SAM 2.1 Hiera-L (224M): the most accurate masks and tracking; best on a GPU",
    ),
    # ---------------------------------------------------------------- video backbones (diffusers)
    ModelInfo(
        name="wan2.1-vace-1.3b",
        repo_id="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        kind="video",
        library="diffusers",
        licence="Apache-2.0",
        download_bytes=int(19.3 * GB),
        memory_gb=12.0,
        description="Wan 2.1 VACE 1.3B: video from reference frames and masks (UMT5-XXL text encoder 11 GB)",
        default=True,
        allow_patterns=DIFFUSERS_FILES,
    ),
    ModelInfo(
        name="wan2.1-vace-14b",
        repo_id="Wan-AI/Wan2.1-VACE-14B-diffusers",
        kind="video",
        library="diffusers",
        licence="Apache-2.0",
        download_bytes=int(75 * GB),
        memory_gb=40.0,
        description="Wan 2.1 VACE 14B: the high-quality VACE backbone; needs a 48-80 GB GPU",
        allow_patterns=DIFFUSERS_FILES,
    ),
    ModelInfo(
        name="wan2.1-i2v-14b-480p",
        repo_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        kind="video",
        library="diffusers",
        licence="Apache-2.0",
        download_bytes=int(77 * GB),
        memory_gb=40.0,
        description="Wan 2.1 image-to-video 14B at 480p (with a CLIP image encoder); needs a 48-80 GB GPU",
        allow_patterns=DIFFUSERS_FILES,
    ),
    # ---------------------------------------------------------------- LiveWorld (backend liveworld)
    ModelInfo(
        name="wan2.1-t2v-14b",
        repo_id="Wan-AI/Wan2.1-T2V-14B-Diffusers",
        kind="video",
        library="diffusers",
        licence="Apache-2.0",
        download_bytes=int(69 * GB),
        memory_gb=40.0,
        description=(
            "Wan 2.1 text-to-video 14B: LiveWorld's backbone, text encoder and VAE (size "
            "unverified: 12 transformer shards of ~4.9 GB + UMT5-XXL 11.4 GB + VAE)"
        ),
        allow_patterns=DIFFUSERS_FILES,
    ),
    ModelInfo(
        name="liveworld",
        repo_id="ZichengD/LiveWorld",
        kind="checkpoint",
        library="checkpoint",
        licence="unverified",
        licence_note="LiveWorld's code is Apache-2.0; the weights' licence is not confirmed",
        download_bytes=int(6.5 * GB),
        memory_gb=6.5,
        description=(
            "LiveWorld's State Adapter (8 control blocks, ~3.0B parameters) and LoRA (rank 64 on "
            "q, k, v, o, ~0.21B) for Wan 2.1 T2V 14B (sizes unverified: ~6.1 GB + ~0.42 GB in bf16)"
        ),
        default=True,
        allow_patterns=("ckpts/state_adapter/model.pt", "ckpts/lora/model.pt"),
        files=("ckpts/state_adapter/model.pt", "ckpts/lora/model.pt"),
    ),
    ModelInfo(
        name="wan2.1-t2v-14b-stepdistill",
        repo_id="lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill",
        kind="checkpoint",
        library="checkpoint",
        licence="unverified",
        licence_note="not confirmed from the model card",
        download_bytes=int(28.6 * GB),
        memory_gb=40.0,
        description=(
            "Wan 2.1 T2V 14B step- and CFG-distilled (lightx2v): the backbone of LiveWorld's "
            "4-step variant (size unverified: ~28.6 GB in bf16)"
        ),
        allow_patterns=("distill_model.pt",),
        files=("distill_model.pt",),
    ),
    # ---------------------------------------------------------------- step-distillation LoRAs
    # The "draft" quality preset (worldstudio.core.generation.acceleration.DRAFT_RECIPES) applies
    # one of these with the steps, guidance and flow shift it was made for. Sizes as the hub
    # lists the files; licences as the model cards state them, "unverified" where they say none.
    ModelInfo(
        name="causvid-lora-wan2.1-1.3b",
        repo_id="Kijai/WanVideo_comfy",
        kind="lora",
        library="checkpoint",
        licence="unverified",
        licence_note=(
            "Kijai's extraction of tianweiy/CausVid; neither licence confirmed from the model cards"
        ),
        download_bytes=int(0.1 * GB),
        memory_gb=0.1,
        description=(
            "CausVid distillation as a rank-32 LoRA for Wan 2.1 1.3B (T2V; works with VACE "
            "1.3B): 4-8 steps without guidance, the draft preset of the 1.3B models (size "
            "unverified: ~0.1 GB)"
        ),
        default=True,
        allow_patterns=("Wan21_CausVid_bidirect2_T2V_1_3B_lora_rank32.safetensors",),
        files=("Wan21_CausVid_bidirect2_T2V_1_3B_lora_rank32.safetensors",),
    ),
    ModelInfo(
        name="lightx2v-lora-wan2.1-t2v-14b",
        repo_id="lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill-Lightx2v",
        kind="lora",
        library="checkpoint",
        licence="unverified",
        licence_note="not confirmed from the model card",
        download_bytes=631 * MB,
        memory_gb=0.7,
        description=(
            "lightx2v's step- and CFG-distillation of Wan 2.1 T2V 14B as a rank-64 LoRA (works "
            "with VACE 14B): 4 steps, no guidance, flow shift 5; the draft preset of the 14B "
            "text/VACE models"
        ),
        allow_patterns=("loras/Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors",),
        files=("loras/Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors",),
    ),
    ModelInfo(
        name="lightx2v-lora-wan2.1-i2v-14b",
        repo_id="lightx2v/Wan2.1-Distill-Loras",
        kind="lora",
        library="checkpoint",
        licence="unverified",
        licence_note="the repo's page shows no licence tag",
        download_bytes=739 * MB,
        memory_gb=0.8,
        description=(
            "lightx2v's 4-step distillation of Wan 2.1 I2V 14B (480p) as a rank-64 LoRA: 4 "
            "steps, no guidance, flow shift 5; the draft preset of the image-to-video model"
        ),
        allow_patterns=("wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors",),
        files=("wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors",),
    ),
    ModelInfo(
        name="wan2.2-ti2v-5b",
        repo_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
        kind="video",
        library="diffusers",
        licence="Apache-2.0",
        download_bytes=int(34 * GB),
        memory_gb=24.0,
        description="Wan 2.2 text/image-to-video 5B (high-compression VAE, 720p at 24 fps)",
        allow_patterns=DIFFUSERS_FILES,
    ),
)


def all_models(kind: Kind | None = None) -> list[ModelInfo]:
    return [m for m in CATALOGUE if kind is None or m.kind == kind]


def find_model(name_or_repo: str) -> ModelInfo | None:
    """The entry whose short name or repo id is ``name_or_repo`` (case-insensitive), or None."""
    key = name_or_repo.strip().lower()
    for m in CATALOGUE:
        if key in (m.name.lower(), m.repo_id.lower()):
            return m
    return None


def default_model(kind: Kind) -> ModelInfo:
    for m in CATALOGUE:
        if m.kind == kind and m.default:
            return m
    raise LookupError(kind)  # pragma: no cover - the catalogue has one default per kind


def names(kind: Kind | None = None) -> list[str]:
    return [m.name for m in all_models(kind)]
