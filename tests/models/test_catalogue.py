"""The model catalogue: the models issue 4 names, with licences, sizes, memory and kinds."""

from __future__ import annotations

import pytest

from worldstudio.core.models import (
    CATALOGUE,
    KINDS,
    all_models,
    default_model,
    find_model,
    format_bytes,
)

REQUIRED = {
    "depth": [
        "depth-anything/Depth-Anything-V2-Small-hf",
        "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
        "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf",
        "apple/DepthPro-hf",
    ],
    "segmentation": [
        "facebook/sam2.1-hiera-tiny",
        "facebook/sam2.1-hiera-small",
        "facebook/sam2.1-hiera-base-plus",
        "facebook/sam2.1-hiera-large",
    ],
    "video": [
        "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        "Wan-AI/Wan2.1-VACE-14B-diffusers",
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    ],
}


def test_every_required_model_is_there_with_its_kind():
    for kind, repos in REQUIRED.items():
        for repo in repos:
            info = find_model(repo)
            assert info is not None, repo
            assert info.kind == kind
            assert info.licence and info.download_bytes > 0 and info.memory_gb > 0
            assert info.description


def test_names_and_repo_ids_are_unique_and_findable():
    names = [m.name for m in CATALOGUE]
    repos = [m.repo_id for m in CATALOGUE]
    assert len(set(names)) == len(names) and len(set(repos)) == len(repos)
    for m in CATALOGUE:
        assert find_model(m.name) is m
        assert find_model(m.repo_id.upper()) is m  # case-insensitive
        assert " " not in m.name
    assert find_model("no-such-model") is None


def test_one_default_per_kind():
    assert default_model("depth").repo_id == "depth-anything/Depth-Anything-V2-Small-hf"
    assert default_model("video").repo_id == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    assert default_model("segmentation").repo_id.startswith("facebook/sam2.1-hiera-")
    for kind in KINDS:
        assert sum(m.default for m in all_models(kind)) == 1


def test_licences_say_what_matters():
    pro = find_model("apple/DepthPro-hf")
    assert "research" in pro.licence_text.lower()
    assert pro.metric and pro.estimates_fov
    assert find_model("depth-anything/Depth-Anything-V2-Small-hf").licence == "Apache-2.0"
    assert not find_model("depth-anything/Depth-Anything-V2-Small-hf").metric
    assert find_model("depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf").metric
    for m in all_models("video"):
        assert m.library == "diffusers"
        assert "tokenizer/*" in m.allow_patterns
    for m in all_models("segmentation"):
        # the repos also carry Meta's original .pt checkpoints; never fetch those
        assert not any(p in ("*", "*.pt", "*.bin") for p in m.allow_patterns)
        assert "*.safetensors" in m.allow_patterns


@pytest.mark.parametrize(
    ("repo", "low", "high"),
    [
        ("depth-anything/Depth-Anything-V2-Small-hf", 80e6, 120e6),
        ("apple/DepthPro-hf", 1.5e9, 4e9),
        ("facebook/sam2.1-hiera-tiny", 100e6, 200e6),
        ("facebook/sam2.1-hiera-large", 700e6, 1.2e9),
        ("Wan-AI/Wan2.1-VACE-1.3B-diffusers", 12e9, 40e9),
        ("Wan-AI/Wan2.1-VACE-14B-diffusers", 40e9, 120e9),
        ("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", 40e9, 120e9),
        ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", 15e9, 60e9),
    ],
)
def test_sizes_are_realistic(repo, low, high):
    assert low <= find_model(repo).download_bytes <= high


def test_liveworlds_downloads_are_catalogued():
    """The backbone (a diffusers pipeline), LiveWorld's State Adapter and LoRA (one hub repo, two
    raw checkpoints) and the distilled 4-step backbone (a raw checkpoint)."""
    t2v = find_model("Wan-AI/Wan2.1-T2V-14B-Diffusers")
    assert t2v.name == "wan2.1-t2v-14b" and t2v.kind == "video" and t2v.library == "diffusers"
    assert t2v.licence == "Apache-2.0" and 40e9 <= t2v.download_bytes <= 120e9
    lw = find_model("liveworld")
    assert lw.repo_id == "ZichengD/LiveWorld" and lw.kind == "checkpoint"
    assert lw.files == ("ckpts/state_adapter/model.pt", "ckpts/lora/model.pt")
    assert lw.allow_patterns == lw.files and default_model("checkpoint") is lw
    distill = find_model("lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill")
    assert distill.files == ("distill_model.pt",) and distill.library == "checkpoint"
    for m in (lw, distill):
        assert m.licence == "unverified" and m.licence_note
        assert "unverified" in m.description
    assert 5e9 <= lw.download_bytes <= 15e9 and 20e9 <= distill.download_bytes <= 60e9


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(99_000_000) == "99 MB"
    assert format_bytes(1_900_000_000) == "1.9 GB"
    assert format_bytes(75_000_000_000) == "75 GB"
