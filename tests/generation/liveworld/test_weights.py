"""LiveWorld's pickled checkpoints: read with weights_only, flat tensor dicts only, converted once
to safetensors, strict key matching with errors naming the key; the LoRA in diffusers' naming."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.tiny_liveworld import TINY_BACKBONE, golden, liveworld_lora, tiny_backbone
from worldstudio.core.generation.backends.liveworld import weights
from worldstudio.core.generation.backends.liveworld.model import StateAdapter
from worldstudio.core.generation.backends.liveworld.weights import (
    WeightsError,
    clean_key,
    converted_adapter,
    converted_backbone,
    converted_lora,
    load_lora,
    read_checkpoint,
)


class NotATensor:  # pickled into a checkpoint: weights_only must refuse to build it
    pass


def adapter_tensors() -> dict:
    return {k: v for k, v in golden()[0].items() if k.startswith("sp_")}


def test_only_plain_tensor_files_are_read(tmp_path):
    torch.save({"w": torch.ones(2), "obj": NotATensor()}, tmp_path / "object.pt")
    with pytest.raises(WeightsError, match="not a plain PyTorch tensor file"):
        read_checkpoint(tmp_path / "object.pt")
    torch.save({"generator": {"w": torch.ones(2)}, "is_lora": True}, tmp_path / "nested.pt")
    with pytest.raises(WeightsError, match="flat mapping.*'generator' holds dict"):
        read_checkpoint(tmp_path / "nested.pt")
    torch.save([torch.ones(2)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="got list"):
        read_checkpoint(tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WeightsError, match="text.pt: not a plain PyTorch tensor file"):
        read_checkpoint(tmp_path / "text.pt")
    with pytest.raises(WeightsError, match="file not found"):
        read_checkpoint(tmp_path / "absent.pt")
    torch.save({"a": torch.arange(3)}, tmp_path / "ok.pt")
    assert torch.equal(read_checkpoint(tmp_path / "ok.pt")["a"], torch.arange(3))


def test_wrapper_prefixes_and_peft_names_are_cleaned():
    assert clean_key("model.sp_blocks.0.self_attn.q.weight") == "sp_blocks.0.self_attn.q.weight"
    assert (
        clean_key(
            "base_model.model.model._fsdp_wrapped_module.blocks.3.cross_attn.o.lora_B.default.weight"
        )
        == "blocks.3.cross_attn.o.lora_B.weight"
    )
    assert clean_key("sp_blocks.1.cross_attn.k.base_layer.bias") == "sp_blocks.1.cross_attn.k.bias"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.pop("sp_blocks.1.after_proj.bias"),
            r"missing key\(s\): sp_blocks.1.after_proj.bias",
        ),
        (
            lambda t: t.pop("sp_blocks.0.norm3.weight"),
            r"missing key\(s\): sp_blocks.0.norm3.weight",
        ),
        (
            lambda t: t.__setitem__("sp_blocks.0.self_attn.extra.weight", torch.ones(1)),
            r"unexpected key\(s\).*sp_blocks.0.self_attn.extra.weight",
        ),
        (
            lambda t: t.__setitem__("blocks.0.self_attn.q.weight", torch.ones(24, 24)),
            r"unexpected key\(s\).*blocks.0.self_attn.q.weight",
        ),
        (
            lambda t: t.__setitem__("sp_patch_embedding.weight", torch.ones(24, 16, 1, 2, 2)),
            r"sp_patch_embedding.weight has shape \(24, 16, 1, 2, 2\), the model expects \(24, 32, 1, 2, 2\)",
        ),
    ],
)
def test_a_state_adapter_that_does_not_fit_names_the_key(tmp_path, cache, edit, message):
    tensors = adapter_tensors()
    edit(tensors)
    torch.save(tensors, tmp_path / "model.pt")
    with pytest.raises(WeightsError, match=message):
        converted_adapter(tmp_path / "model.pt", TINY_BACKBONE)
    assert not list(cache.glob("state_adapter-*"))  # nothing half-converted is left behind


def test_the_adapter_converts_once_from_any_wrapper_prefix(tmp_path, cache, monkeypatch):
    tensors = adapter_tensors()
    torch.save({f"model.{k}": v for k, v in tensors.items()}, tmp_path / "model.pt")
    folder = converted_adapter(tmp_path / "model.pt", TINY_BACKBONE)
    adapter = StateAdapter.from_pretrained(folder)
    assert list(adapter.config.layers) == [0, 2]
    assert torch.equal(
        adapter.blocks[1].attn2.to_out[0].weight, tensors["sp_blocks.1.cross_attn.o.weight"]
    )
    assert torch.equal(adapter.blocks[0].proj_in.bias, tensors["sp_blocks.0.before_proj.bias"])
    assert torch.equal(adapter.blocks[1].scale_shift_table, tensors["sp_blocks.1.modulation"])
    assert torch.equal(adapter.blocks[0].norm2.weight, tensors["sp_blocks.0.norm3.weight"])
    assert adapter.blocks[1].proj_in is None
    # the second time the cached safetensors are used: the pickle is not read again
    monkeypatch.setattr(weights, "read_checkpoint", lambda *_: pytest.fail("read again"))
    assert converted_adapter(tmp_path / "model.pt", TINY_BACKBONE) == folder


def test_a_backbone_checkpoint_that_does_not_fit_names_the_key(tmp_path, cache):
    tensors = {k: v for k, v in golden()[0].items() if not k.startswith("sp_")}
    tensors.pop("blocks.2.cross_attn.norm_k.weight")
    torch.save(tensors, tmp_path / "distill_model.pt")
    with pytest.raises(WeightsError, match=r"missing key\(s\): blocks.2.cross_attn.norm_k.weight"):
        converted_backbone(tmp_path / "distill_model.pt", TINY_BACKBONE)


def _merged(backbone, lora: dict, strength: float):
    """The backbone with LiveWorld's LoRA merged by hand: W + strength * B @ A (alpha = rank)."""
    merged = copy.deepcopy(backbone)
    names = {"self_attn": "attn1", "cross_attn": "attn2"}
    projs = {"q": "to_q", "k": "to_k", "v": "to_v", "o": "to_out.0"}
    with torch.no_grad():
        for key, a in lora.items():
            if ".lora_A." not in key:
                continue
            _, i, attn, proj, _, _ = key.split(".")
            b = lora[key.replace("lora_A", "lora_B")]
            linear = merged.blocks[int(i)].get_submodule(f"{names[attn]}.{projs[proj]}")
            linear.weight += strength * (b @ a)
    return merged


def test_the_lora_applies_with_its_strength(tmp_path, cache):
    lora = liveworld_lora(seed=5)
    torch.save(
        {
            f"base_model.model.model.{k.replace('.weight', '.default.weight')}": v
            for k, v in lora.items()
        },
        tmp_path / "model.pt",
    )
    path = converted_lora(tmp_path / "model.pt", num_layers=4, width=24)
    backbone = tiny_backbone(4)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 8, 32, generator=g)
    t = torch.tensor([400.0])
    with torch.no_grad():
        plain = backbone(x, t, ctx).sample
        load_lora(backbone, path, "liveworld")
        for strength in (0.0, 0.5, 1.0):
            backbone.set_adapters(["liveworld"], weights=[strength])
            out = backbone(x, t, ctx).sample
            expected = _merged(tiny_backbone(4), lora, strength)(x, t, ctx).sample
            assert torch.allclose(out, expected, atol=2e-5), strength
            if strength == 0.0:
                assert torch.equal(out, plain)
            else:
                assert (out - plain).abs().max() > 1e-3


def test_a_lora_that_does_not_fit_names_the_key(tmp_path, cache):
    lora = liveworld_lora()
    lora.pop("blocks.3.cross_attn.o.lora_B.weight")
    torch.save(lora, tmp_path / "model.pt")
    with pytest.raises(
        WeightsError, match=r"missing key\(s\): blocks.3.cross_attn.o.lora_B.weight"
    ):
        converted_lora(tmp_path / "model.pt", num_layers=4, width=24)
    lora = liveworld_lora()
    lora["blocks.0.ffn.0.lora_A.weight"] = torch.ones(4, 24)
    torch.save(lora, tmp_path / "model.pt")
    with pytest.raises(WeightsError, match=r"unexpected key\(s\).*blocks.0.ffn.0.lora_A.weight"):
        converted_lora(tmp_path / "model.pt", num_layers=4, width=24)
    with pytest.raises(WeightsError, match=r"missing key\(s\): blocks.4"):
        torch.save(liveworld_lora(), tmp_path / "model.pt")
        converted_lora(tmp_path / "model.pt", num_layers=5, width=24)
