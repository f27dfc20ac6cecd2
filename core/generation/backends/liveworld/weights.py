"""LiveWorld's checkpoints: read safely, converted once to safetensors, loaded strictly.

LiveWorld ships pickled PyTorch files (``ckpts/state_adapter/model.pt`` and ``ckpts/lora/model.pt``
in ``ZichengD/LiveWorld``; the optional few-step backbone is ``distill_model.pt`` in
``lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill``). Each is read **once** with
``torch.load(..., weights_only=True)`` (no code runs, only tensors and plain containers load), must
be a flat mapping of parameter names to tensors, and is converted to diffusers' naming and written
as safetensors in the cache (:func:`cache_root`); later runs read only the safetensors. Key
matching is strict: a checkpoint tensor the model has no place for, or a model parameter the
checkpoint lacks, is an error naming it (and a shape that does not fit, too).

Names. LiveWorld's modules keep Wan's original names (``blocks.N.self_attn.q``, ``norm3``,
``ffn.0``, ``modulation`` ...); the State Adapter's are ``sp_patch_embedding`` and ``sp_blocks.N``
with ``before_proj`` / ``after_proj``. Checkpoints written from a wrapped model carry a prefix
(``model.``, ``base_model.model.model.`` from peft, ``._fsdp_wrapped_module``) and peft adapter
names (``lora_A.default.weight``); those are stripped first, as LiveWorld's own loaders do.

- State Adapter -> :class:`~.model.StateAdapter` (``patch_embedding``, ``blocks.N`` in diffusers'
  VACE naming: ``proj_in`` / ``proj_out``), saved as a diffusers model folder.
- Backbone (original Wan format) -> ``WanTransformer3DModel``, saved as a diffusers model folder.
- LoRA (rank 64 on ``q, k, v, o`` of the backbone's self- and cross-attention, alpha = rank) ->
  peft/diffusers names ``blocks.N.attn1.to_q.lora_A.weight`` ..., one safetensors file, applied with
  ``WanTransformer3DModel.load_lora_adapter`` and weighted with ``set_adapters``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.user_dirs import cache_dir

__all__ = [
    "CONVERSION_VERSION",
    "WeightsError",
    "adapter_config",
    "cache_root",
    "clean_key",
    "convert_adapter_keys",
    "convert_backbone_keys",
    "convert_lora_keys",
    "converted_adapter",
    "converted_backbone",
    "converted_lora",
    "expected_lora_keys",
    "load_lora",
    "original_name",
    "read_checkpoint",
    "read_lora",
]

CONVERSION_VERSION = 1  # bump when a conversion changes: older cache entries are then ignored
SAMPLE_NAMES = 4  # how many offending names an error lists


class WeightsError(WorldStudioError):
    """A checkpoint that cannot be read or does not fit the model (names the file and the key)."""


# --------------------------------------------------------------------------- names
# inside a block: Wan's original name -> diffusers' (longest prefix first when matching)
_BLOCK = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "norm3": "norm2",  # the cross-attention LayerNorm (Wan's norm2 is parameter-free)
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "modulation": "scale_shift_table",
}
_ADAPTER_BLOCK = {**_BLOCK, "before_proj": "proj_in", "after_proj": "proj_out"}
_BACKBONE_TOP = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",
}
_LORA_PROJECTIONS = ("q", "k", "v", "o")
_PREFIXES = ("base_model.model.model.", "base_model.model.", "model.model.", "model.", "module.")


def clean_key(key: str) -> str:
    """A checkpoint name without wrapper prefixes, FSDP infixes, peft adapter names and peft's
    ``base_layer`` (``base_model.model.model.blocks.0.self_attn.q.lora_A.default.weight`` ->
    ``blocks.0.self_attn.q.lora_A.weight``)."""
    key = key.replace("._fsdp_wrapped_module", "").replace("_fsdp_wrapped_module.", "")
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    key = re.sub(r"\.(lora_[AB])\.default\.", r".\1.", key)
    return key.replace(".base_layer.", ".")


def _rename(rest: str, table: dict[str, str]) -> str | None:
    """``rest`` (e.g. ``self_attn.q.weight``) renamed by the longest matching table entry."""
    for old in sorted(table, key=len, reverse=True):
        if rest == old:
            return table[old]
        if rest.startswith(old + "."):
            return table[old] + rest[len(old) :]
    return None


def _convert(names, convert_one) -> tuple[dict[str, str], list[str]]:
    """{new name: old name} for every name ``convert_one`` knows, and the names it does not."""
    out: dict[str, str] = {}
    unknown: list[str] = []
    for old in names:
        new = convert_one(clean_key(old))
        if new is None:
            unknown.append(old)
        elif new in out:
            raise WeightsError(f"two checkpoint tensors map to {new}: {out[new]!r} and {old!r}")
        else:
            out[new] = old
    return out, unknown


def _block_key(key: str, prefix: str, table: dict[str, str]) -> str | None:
    m = re.fullmatch(rf"{re.escape(prefix)}\.(\d+)\.(.+)", key)
    if m is None:
        return None
    rest = _rename(m.group(2), table)
    return None if rest is None else f"blocks.{m.group(1)}.{rest}"


def _backbone_one(key: str) -> str | None:
    top = _rename(key, _BACKBONE_TOP)
    return top if top is not None else _block_key(key, "blocks", _BLOCK)


def _adapter_one(key: str) -> str | None:
    if key.startswith("sp_patch_embedding."):
        return "patch_embedding" + key[len("sp_patch_embedding") :]
    return _block_key(key, "sp_blocks", _ADAPTER_BLOCK)


def _lora_one(key: str) -> str | None:
    m = re.fullmatch(r"blocks\.(\d+)\.(self_attn|cross_attn)\.([qkvo])\.(lora_[AB])\.weight", key)
    if m is None:
        return None
    proj = _BLOCK[f"{m.group(2)}.{m.group(3)}"]
    return f"blocks.{m.group(1)}.{proj}.{m.group(4)}.weight"


def _unrename(rest: str, table: dict[str, str]) -> str:
    back = {v: k for k, v in table.items()}
    return _rename(rest, back) or rest


def original_name(new: str, kind: str) -> str:
    """The checkpoint name (LiveWorld's / Wan's) of a converted name ``new``, for messages."""
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", new)
    if kind == "adapter":
        if new.startswith("patch_embedding"):
            return "sp_" + new
        return f"sp_blocks.{m.group(1)}.{_unrename(m.group(2), _ADAPTER_BLOCK)}" if m else new
    if m is not None:
        return f"blocks.{m.group(1)}.{_unrename(m.group(2), _BLOCK)}"
    return _unrename(new, _BACKBONE_TOP)


def convert_backbone_keys(names) -> tuple[dict[str, str], list[str]]:
    """Wan original-format backbone names -> ``WanTransformer3DModel`` names."""
    return _convert(names, _backbone_one)


def convert_adapter_keys(names) -> tuple[dict[str, str], list[str]]:
    """LiveWorld State Adapter names (``sp_*``) -> :class:`~.model.StateAdapter` names."""
    return _convert(names, _adapter_one)


def convert_lora_keys(names) -> tuple[dict[str, str], list[str]]:
    """LiveWorld LoRA names -> peft names on ``WanTransformer3DModel``."""
    return _convert(names, _lora_one)


def expected_lora_keys(num_layers: int) -> set[str]:
    """The LoRA LiveWorld trains: ``q, k, v, o`` of both attentions of every backbone block."""
    out = set()
    for i in range(num_layers):
        for attn in ("self_attn", "cross_attn"):
            for proj in _LORA_PROJECTIONS:
                for ab in ("lora_A", "lora_B"):
                    out.add(_lora_one(f"blocks.{i}.{attn}.{proj}.{ab}.weight"))
    return out  # type: ignore[return-value]  # every generated name converts


# --------------------------------------------------------------------------- reading
def read_checkpoint(path: str | os.PathLike) -> dict:
    """The tensors of a pickled PyTorch checkpoint, read with ``weights_only=True`` (memory
    mapped when the file allows it). Anything but a flat mapping of names to tensors is refused."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, zip errors...: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{path}: not a plain PyTorch tensor file (read with weights_only=True: {first})"
        ) from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path}: expected a flat mapping of parameter names to tensors, got {type(obj).__name__}"
        )
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{path}: expected a flat mapping of parameter names to tensors; entry {key!r} "
                f"holds {type(value).__name__}"
            )
    if not obj:
        raise WeightsError(f"{path}: the checkpoint holds no tensors")
    return dict(obj)


def _sample(names) -> str:
    names = sorted(names)
    more = f" and {len(names) - SAMPLE_NAMES} more" if len(names) > SAMPLE_NAMES else ""
    return ", ".join(names[:SAMPLE_NAMES]) + more


def match_strictly(
    path: Path,
    mapping: dict[str, str],
    unknown: list[str],
    shapes: dict[str, tuple],
    tensors: dict,
    kind: str,
) -> None:
    """Raise :class:`WeightsError` unless the converted names are exactly the model's and every
    shape fits (``shapes``: the model's parameter shapes by name; ``kind``: "backbone",
    "adapter" or "lora", for the names in messages)."""
    if unknown:
        raise WeightsError(
            f"{path}: unexpected key(s) the model has no place for: {_sample(unknown)}"
        )
    extra = set(mapping) - set(shapes)
    if extra:
        raise WeightsError(
            f"{path}: unexpected key(s) the model has no place for: "
            f"{_sample(mapping[k] for k in extra)}"
        )
    missing = set(shapes) - set(mapping)
    if missing:
        raise WeightsError(
            f"{path}: missing key(s): {_sample(original_name(k, kind) for k in missing)}"
        )
    for new, old in mapping.items():
        got = tuple(tensors[old].shape)
        if got != tuple(shapes[new]):
            raise WeightsError(
                f"{path}: {old} has shape {got}, the model expects {tuple(shapes[new])} "
                f"(a checkpoint for another model size?)"
            )


# --------------------------------------------------------------------------- the cache
def cache_root() -> Path:
    """``$WORLDSTUDIO_CACHE/liveworld``, else ``$XDG_CACHE_HOME/worldstudio/liveworld``, else
    ``~/.cache/worldstudio/liveworld`` (read at call time)."""
    return cache_dir() / "liveworld"


def _cache_entry(kind: str, source: Path, extra: str = "") -> Path:
    """A cache path for ``source`` converted as ``kind``: keyed by the file's real path, size and
    modification time (a changed or re-downloaded file converts again)."""
    real = source.resolve()
    st = real.stat()
    digest = hashlib.sha1(
        f"{kind}|{real}|{st.st_size}|{st.st_mtime_ns}|{extra}|v{CONVERSION_VERSION}".encode()
    ).hexdigest()[:16]
    return cache_root() / f"{kind}-{digest}"


def _write_model_folder(folder: Path, tensors: dict, config: dict) -> Path:
    """``config.json`` + ``diffusion_pytorch_model.safetensors``, written atomically (a folder
    renamed into place)."""
    import shutil

    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(tmp / "diffusion_pytorch_model.safetensors"),
        metadata={"format": "pt"},
    )
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(tmp, ignore_errors=True)  # another process converted it meanwhile
    else:
        os.replace(tmp, folder)
    return folder


def _meta_shapes(cls, config: dict) -> dict[str, tuple]:
    """Parameter shapes of ``cls(**config)`` built on the meta device (no memory)."""
    import torch

    with torch.device("meta"):
        model = cls(**config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def converted_backbone(source: str | os.PathLike, config: dict, log=None) -> Path:
    """A diffusers ``WanTransformer3DModel`` folder (in the cache) for an original-format Wan
    backbone checkpoint such as lightx2v's ``distill_model.pt``; ``config`` is the transformer's
    diffusers config (e.g. the T2V-14B repo's ``transformer/config.json``)."""
    from diffusers import WanTransformer3DModel

    source = Path(source)
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    folder = _cache_entry("backbone", source, json.dumps(cfg, sort_keys=True))
    if (folder / "config.json").is_file():
        return folder
    if log:
        log(f"converting {source.parent.name}/{source.name} to safetensors (once) in {folder}")
    tensors = read_checkpoint(source)
    mapping, unknown = convert_backbone_keys(tensors)
    match_strictly(
        source, mapping, unknown, _meta_shapes(WanTransformer3DModel, cfg), tensors, "backbone"
    )
    out = {new: tensors[old] for new, old in mapping.items()}
    return _write_model_folder(folder, out, {"_class_name": "WanTransformer3DModel", **cfg})


def adapter_config(backbone_config: dict, blocks: int) -> dict:
    """The :class:`~.model.StateAdapter` config for ``blocks`` control blocks on a backbone with
    ``backbone_config`` (a ``WanTransformer3DModel`` config). The hinted layers are evenly spaced
    from 0, as in LiveWorld's configs (40 layers, 8 blocks: 0, 5, ..., 35; 30 layers, 15 blocks:
    0, 2, ..., 28)."""
    layers = int(backbone_config.get("num_layers", 40))
    if blocks < 1 or blocks > layers:
        raise WeightsError(f"a State Adapter of {blocks} blocks cannot serve {layers} layers")
    stride = layers // blocks
    return {
        "layers": [i * stride for i in range(blocks)],
        "in_channels": 32,
        "num_attention_heads": int(backbone_config.get("num_attention_heads", 40)),
        "attention_head_dim": int(backbone_config.get("attention_head_dim", 128)),
        "ffn_dim": int(backbone_config.get("ffn_dim", 13824)),
        "patch_size": list(backbone_config.get("patch_size", (1, 2, 2))),
        "cross_attn_norm": bool(backbone_config.get("cross_attn_norm", True)),
        "qk_norm": backbone_config.get("qk_norm", "rms_norm_across_heads"),
        "eps": float(backbone_config.get("eps", 1e-6)),
    }


def converted_adapter(source: str | os.PathLike, backbone_config: dict, log=None) -> Path:
    """A :class:`~.model.StateAdapter` folder (in the cache) for LiveWorld's State Adapter
    checkpoint, shaped for the backbone of ``backbone_config``; the number of control blocks is
    the checkpoint's (see :func:`adapter_config`)."""
    from worldstudio.core.generation.backends.liveworld.model import StateAdapter

    source = Path(source)
    cfg = {k: v for k, v in backbone_config.items() if not k.startswith("_")}
    folder = _cache_entry("state_adapter", source, json.dumps(cfg, sort_keys=True))
    if (folder / "config.json").is_file():
        return folder
    if log:
        log(f"converting {source.parent.name}/{source.name} to safetensors (once) in {folder}")
    tensors = read_checkpoint(source)
    blocks = {
        int(m.group(1))
        for k in tensors
        if (m := re.match(r"sp_blocks\.(\d+)\.", clean_key(k))) is not None
    }
    if not blocks:
        raise WeightsError(f"{source}: no State Adapter tensors (sp_blocks.N...) in it")
    config = adapter_config(cfg, max(blocks) + 1)
    mapping, unknown = convert_adapter_keys(tensors)
    match_strictly(source, mapping, unknown, _meta_shapes(StateAdapter, config), tensors, "adapter")
    out = {new: tensors[old] for new, old in mapping.items()}
    return _write_model_folder(folder, out, {"_class_name": "StateAdapter", **config})


def converted_lora(source: str | os.PathLike, num_layers: int, width: int, log=None) -> Path:
    """A safetensors LoRA (peft names on the backbone, rank and alpha in the metadata) for
    LiveWorld's LoRA checkpoint, checked against a backbone of ``num_layers`` blocks of
    ``width``."""
    from safetensors.torch import save_file

    source = Path(source)
    path = _cache_entry("lora", source, f"{num_layers}x{width}").with_suffix(".safetensors")
    if path.is_file():
        return path
    if log:
        log(f"converting {source.parent.name}/{source.name} to safetensors (once) in {path}")
    tensors = read_checkpoint(source)
    mapping, unknown = convert_lora_keys(tensors)
    expected = expected_lora_keys(num_layers)
    ranks = {int(tensors[old].shape[0]) for new, old in mapping.items() if ".lora_A." in new}
    rank = min(ranks) if ranks else 0
    shapes = {k: ((rank, width) if ".lora_A." in k else (width, rank)) for k in sorted(expected)}
    match_strictly(source, mapping, unknown, shapes, tensors, "lora")
    out = {new: tensors[old].contiguous() for new, old in mapping.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file(out, str(tmp), metadata=lora_metadata(rank, out))
    os.replace(tmp, path)
    return path


def lora_metadata(rank: int, tensors: dict) -> dict:
    """The LoRA config diffusers' ``load_lora_adapter`` builds the adapter from: LiveWorld trains
    with ``lora_alpha = r`` (scale 1)."""
    targets = sorted({k.rsplit(".lora_", 1)[0] for k in tensors})
    return {
        "format": "pt",
        "lora_config": json.dumps({"r": rank, "lora_alpha": rank, "target_modules": targets}),
    }


def read_lora(path: str | os.PathLike) -> tuple[dict, dict]:
    """(tensors, LoRA config kwargs) of a LoRA converted by :func:`converted_lora`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "lora_config" not in meta:
        raise WeightsError(f"{path}: not a LoRA converted by World Studio (no lora_config)")
    return load_file(str(path)), json.loads(meta["lora_config"])


def load_lora(backbone, path: str | os.PathLike, adapter_name: str) -> None:
    """Add the converted LiveWorld LoRA at ``path`` to ``backbone`` (a ``WanTransformer3DModel``)
    as peft adapter ``adapter_name``; weight it with ``backbone.set_adapters``."""
    tensors, config = read_lora(path)
    backbone.load_lora_adapter(tensors, prefix=None, adapter_name=adapter_name, metadata=config)
