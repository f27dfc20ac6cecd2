"""Tiny random-weight models saved into a fake Hugging Face hub cache under the REAL repo ids.

The app's download-by-name code, loaders and preprocessing then run unchanged with
HF_HUB_OFFLINE=1 (docs/STACK.md): ``$HF_HUB_CACHE/models--ORG--NAME/snapshots/<40 hex>/`` holds the
``save_pretrained`` output plus the repo's preprocessor configs, and ``refs/main`` the hex.

Use :func:`fake_hub_cache` (built once per test process, shared by every conftest that asks),
then point ``HF_HUB_CACHE`` at it (monkeypatch.setenv) in the tests that need it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

DA_SMALL = "depth-anything/Depth-Anything-V2-Small-hf"
DA_INDOOR = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
DA_OUTDOOR = "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf"
DEPTH_PRO = "apple/DepthPro-hf"
SAM21_TINY = "facebook/sam2.1-hiera-tiny"

TINY_DA_SIZE = 70  # the tiny Depth Anything's processor size (multiple of 14; real: 518)
TINY_DEPTH_PRO_SIZE = 64  # real: 1536
TINY_SAM_SIZE = 128  # real: 1024

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def revision(repo_id: str) -> str:
    """A fixed 40-hex commit id per repo."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def install_snapshot(cache_dir: Path, repo_id: str, src: Path) -> Path:
    """Copy the files of ``src`` into the hub-cache layout for ``repo_id``; returns the snapshot."""
    storage = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    rev = revision(repo_id)
    snap = storage / "snapshots" / rev
    if snap.exists():
        shutil.rmtree(snap)
    shutil.copytree(src, snap)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(rev)
    (storage / "blobs").mkdir(exist_ok=True)
    return snap


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))


# ----------------------------------------------------------------------------- builders
def depth_anything_config(metric: bool = False, max_depth: int = 20, full_size: bool = False):
    """A Depth Anything V2 config: tiny (tests), or the full Small size (ViT-S/14, ~25M)."""
    from transformers import DepthAnythingConfig

    if full_size:
        backbone = dict(
            model_type="dinov2",
            image_size=518,
            patch_size=14,
            hidden_size=384,
            num_hidden_layers=12,
            num_attention_heads=6,
            out_indices=[3, 6, 9, 12],
            reshape_hidden_states=False,
            apply_layernorm=True,
        )
        return DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=384,
            neck_hidden_sizes=[48, 96, 192, 384],
            fusion_hidden_size=64,
            head_hidden_size=32,
            depth_estimation_type="metric" if metric else "relative",
            max_depth=max_depth,
        )
    backbone = dict(
        model_type="dinov2",
        image_size=TINY_DA_SIZE,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        initializer_range=0.1,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=max_depth,
    )


def da_preprocessor_config(size: int) -> dict:
    """Mirrors the keys of the real repos' preprocessor_config.json (DPTImageProcessor)."""
    return {
        "do_normalize": True,
        "do_pad": False,
        "do_rescale": True,
        "do_resize": True,
        "ensure_multiple_of": 14,
        "image_mean": IMAGENET_MEAN,
        "image_processor_type": "DPTImageProcessor",
        "image_std": IMAGENET_STD,
        "keep_aspect_ratio": True,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": size, "width": size},
    }


def build_depth_anything(
    folder: Path, metric: bool = False, max_depth: int = 20, full_size: bool = False
) -> Path:
    import torch
    from transformers import DepthAnythingForDepthEstimation

    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(
        depth_anything_config(metric, max_depth, full_size)
    ).eval()
    if not full_size and not metric:
        # random heads output ~0 through the final ReLU; a bias keeps the disparity positive
        # and image-dependent, like a real model's
        with torch.no_grad():
            model.head.conv3.bias.fill_(2.0)
    model.save_pretrained(folder)
    _write_json(
        folder / "preprocessor_config.json",
        da_preprocessor_config(518 if full_size else TINY_DA_SIZE),
    )
    return folder


def build_depth_pro(folder: Path) -> Path:
    import torch
    from transformers import DepthProConfig, DepthProForDepthEstimation

    vit = dict(
        model_type="dinov2",
        num_hidden_layers=2,
        hidden_size=16,
        num_attention_heads=1,
        patch_size=4,
        intermediate_size=32,
    )
    cfg = DepthProConfig(
        patch_size=16,
        fusion_hidden_size=16,
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.2],
        scaled_images_feature_dims=[12, 12],
        image_model_config=dict(vit),
        patch_model_config=dict(vit),
        fov_model_config=dict(vit),
        use_fov_model=True,
    )
    torch.manual_seed(0)
    model = DepthProForDepthEstimation(cfg).eval()
    with torch.no_grad():
        # make the random fov head answer a plausible ~55 degrees (real weights do)
        last = [m for m in model.fov_model.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.zero_()
        last.bias.fill_(55.0)
    model.save_pretrained(folder)
    _write_json(
        folder / "preprocessor_config.json",
        {
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "DepthProImageProcessorFast",
            "image_std": [0.5, 0.5, 0.5],
            "resample": 2,
            "rescale_factor": 1 / 255,
            "size": {"height": TINY_DEPTH_PRO_SIZE, "width": TINY_DEPTH_PRO_SIZE},
        },
    )
    return folder


def sam2_video_config():
    from transformers import Sam2VideoConfig

    S = TINY_SAM_SIZE
    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=12,
        num_channels=3,
        image_size=[S, S],
        patch_stride=4,
        patch_kernel_size=7,
        patch_padding=3,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        global_attention_blocks=[3],
    )
    vision = dict(
        model_type="sam2_vision_model",
        backbone_config=backbone,
        backbone_channel_list=[96, 48, 24, 12],
        backbone_feature_sizes=[[S // 4, S // 4], [S // 8, S // 8], [S // 16, S // 16]],
        fpn_hidden_size=128,
    )
    # memory_encoder_output_channels stays 64 (hard-wired in the memory attention); the hidden
    # sizes must be a multiple of it (the object pointers are split into 64-wide tokens)
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=dict(
            hidden_size=128, image_size=S, patch_size=16, mask_input_channels=8
        ),
        mask_decoder_config=dict(
            hidden_size=128,
            mlp_dim=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            iou_head_hidden_dim=32,
        ),
        image_size=S,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=64,
        memory_attention_rope_feat_sizes=[S // 16, S // 16],
    )


def build_sam2(folder: Path) -> Path:
    """A tiny SAM 2.1 saved like the real facebook/sam2.1-hiera-* repos: model_type sam2_video
    (``Sam2Model`` loads the image part of it, ``Sam2VideoModel`` all of it)."""
    import torch
    from transformers import Sam2VideoModel

    torch.manual_seed(0)
    Sam2VideoModel(sam2_video_config()).eval().save_pretrained(folder)
    S = TINY_SAM_SIZE
    _write_json(
        folder / "processor_config.json",
        {"point_pad_value": -10, "processor_class": "Sam2VideoProcessor", "target_size": S},
    )
    common = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD,
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": S, "width": S},
    }
    _write_json(
        folder / "preprocessor_config.json",
        {**common, "image_processor_type": "Sam2ImageProcessorFast"},
    )
    _write_json(
        folder / "video_preprocessor_config.json",
        {**common, "video_processor_type": "Sam2VideoVideoProcessor"},
    )
    return folder


# ----------------------------------------------------------------------------- the cache
BUILDERS = {
    DA_SMALL: lambda p: build_depth_anything(p),
    DA_INDOOR: lambda p: build_depth_anything(p, metric=True, max_depth=20),
    DA_OUTDOOR: lambda p: build_depth_anything(p, metric=True, max_depth=80),
    DEPTH_PRO: build_depth_pro,
    SAM21_TINY: build_sam2,
}


def build_fake_hub_cache(cache_dir: Path, work_dir: Path) -> Path:
    """Build every tiny model in ``work_dir`` and install it into ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for repo_id, build in BUILDERS.items():
        src = work_dir / repo_id.replace("/", "--")
        src.mkdir(parents=True, exist_ok=True)
        build(src)
        install_snapshot(cache_dir, repo_id, src)
    return cache_dir


_lock = threading.Lock()
_built: dict[str, Path] = {}


def fake_hub_cache(tmp_path_factory) -> Path:
    """The session's fake hub cache (built on first use, then shared)."""
    with _lock:
        if "cache" not in _built:
            root = tmp_path_factory.mktemp("fake_hub")
            _built["models"] = root / "models"
            _built["cache"] = build_fake_hub_cache(root / "hub", root / "models")
        return _built["cache"]


def tiny_model_folder(repo_id: str) -> Path:
    """The folder a tiny model was built in (a plain local folder, for --model-dir tests)."""
    return _built["models"] / repo_id.replace("/", "--")
