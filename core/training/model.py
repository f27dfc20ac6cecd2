"""The base model and the LoRA: finding the model folder, loading its parts, adding, saving and
restoring the adapter.

Which transformer is trained: the pipeline's ``transformer``. For VACE models
(``WanVACETransformer3DModel``) the LoRA goes on the attention projections of the MAIN blocks
only (``blocks.N.attn1`` self-attention and ``blocks.N.attn2`` cross-attention; by default
``to_q``, ``to_k``, ``to_v``, ``to_out.0``); the VACE control branch (``vace_blocks``) stays frozen
and gets the "no control" conditioning that ``WanVACEPipeline`` builds when it is given no video
(a zero video under an all-ones mask), so training sees exactly what text-only VACE generation
sees, and at generation time the adapter shapes the main blocks whatever the control renders
are. Plain text-to-video Wan transformers (``WanPipeline``, e.g. Wan 2.2 TI2V 5B used text-only)
train the same main blocks without a control input. Image-to-video models are refused.

The adapter is saved the way diffusers' training scripts do (``save_lora_weights`` with the
peft state dict): keys ``transformer.blocks.N.attn1.to_q.lora_A.weight`` ..., and the LoRA config
(rank, alpha, target modules) in the safetensors metadata, so ``pipe.load_lora_weights(path)``
reads it with the right scale.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldstudio.core.training.config import DEFAULT_FLOW_SHIFT, TrainingError

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' default name in a folder


@dataclass(frozen=True)
class ModelSpec:
    """What the trainer needs to know about a model folder (read from its JSON files only)."""

    model_id: str  # what the user asked for (catalogue name, repo id or folder)
    folder: Path
    pipeline_class: str  # e.g. "WanVACEPipeline"
    transformer_class: str  # e.g. "WanVACETransformer3DModel"
    is_vace: bool
    flow_shift: float
    text_dim: int
    in_channels: int
    patch_size: tuple[int, int, int]

    def component(self, name: str) -> tuple[str, str] | None:
        index = json.loads((self.folder / "model_index.json").read_text(encoding="utf-8"))
        value = index.get(name)
        if not isinstance(value, list) or value[0] is None:
            return None
        return value[0], value[1]


# --------------------------------------------------------------------------- finding the model
def training_models(model=None, project=None, **_options) -> list[str]:
    """The model fine-tuning loads: ``model``, else the project's generation model (``project``:
    a Project or a project folder), else the catalogue's default video model. For
    :mod:`worldstudio.core.models.requirements`."""
    from worldstudio.core.models import default_model
    from worldstudio.core.project import Project, ProjectFolder

    if project is not None and not isinstance(project, Project):
        project = ProjectFolder(project).load()
    project_model = project.generation.model_id if project is not None else None
    return [model or project_model or default_model("video").repo_id]


def resolve_model(model: str | None, project_model: str | None = None) -> tuple[str, Path]:
    """(model id, local folder) for ``--model``: an existing folder with a ``model_index.json``,
    else a catalogue name or hub repo id resolved by :func:`worldstudio.core.models.resolve` (which raises
    ModelMissingError with a clear message when it is not here and cannot be downloaded). ``None``
    means the project's generation model, else the catalogue's default video model."""
    from worldstudio.core.models import default_model, find_model, resolve

    model_id = model or project_model or default_model("video").repo_id
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise TrainingError(
                f"--model: {path} is not a diffusers pipeline folder (no model_index.json)"
            )
        return model_id, path
    info = find_model(model_id)
    if info is None:
        raise TrainingError(
            f"--model: {model_id!r} is neither a folder nor a known model; see `worldstudio models list`"
        )
    if info.kind != "video":
        raise TrainingError(f"--model: {info.name} is a {info.kind} model, not a video backbone")
    return model_id, resolve(info)


def inspect_model(model_id: str, folder: Path) -> ModelSpec:
    """Read the pipeline's JSON files and refuse what the trainer cannot train."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        tcfg = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"model {model_id}: cannot read its model_index.json / transformer config ({exc})"
        ) from exc
    pipeline_class = str(index.get("_class_name", ""))
    transformer = index.get("transformer")
    transformer_class = transformer[1] if isinstance(transformer, list) and transformer[0] else ""
    if transformer_class not in ("WanVACETransformer3DModel", "WanTransformer3DModel"):
        raise TrainingError(
            f"model {model_id}: LoRA training supports Wan text/VACE pipelines; this one has a "
            f"{transformer_class or 'missing'} transformer"
        )
    second = index.get("transformer_2")
    if isinstance(second, list) and second[0] is not None:
        raise TrainingError(
            f"model {model_id}: two-transformer (Wan 2.2 A14B) models are not supported for training"
        )
    if "ImageToVideo" in pipeline_class or tcfg.get("image_dim") is not None:
        raise TrainingError(
            f"model {model_id}: image-to-video models cannot be trained here; train the VACE "
            "backbone (wan2.1-vace-1.3b) and use the adapter with it"
        )
    shift = DEFAULT_FLOW_SHIFT
    sched = folder / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        try:
            value = json.loads(sched.read_text(encoding="utf-8")).get("flow_shift")
            if isinstance(value, (int, float)) and value > 0:
                shift = float(value)
        except (OSError, ValueError):
            pass
    return ModelSpec(
        model_id=model_id,
        folder=folder,
        pipeline_class=pipeline_class,
        transformer_class=transformer_class,
        is_vace=transformer_class == "WanVACETransformer3DModel",
        flow_shift=shift,
        text_dim=int(tcfg.get("text_dim", 4096)),
        in_channels=int(tcfg.get("in_channels", 16)),
        patch_size=tuple(tcfg.get("patch_size", (1, 2, 2))),
    )


def encoder_key(spec: ModelSpec) -> str:
    """Identifies the VAE and text encoder for the cache: their configs, their weight files'
    sizes and modification times, and the folder (a hub snapshot's folder names its revision)."""
    h = hashlib.sha256()
    h.update(str(spec.folder.resolve()).encode())
    for sub in ("vae", "text_encoder", "tokenizer"):
        folder = spec.folder / sub
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix == ".json":
                h.update(f.name.encode() + f.read_bytes())
            elif f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


# --------------------------------------------------------------------------- loading
def _component_class(spec: ModelSpec, name: str):
    import importlib

    comp = spec.component(name)
    if comp is None:
        raise TrainingError(f"model {spec.model_id}: the pipeline has no {name}")
    library, cls_name = comp
    return getattr(importlib.import_module(library), cls_name)


def load_transformer(spec: ModelSpec, dtype):
    cls = _component_class(spec, "transformer")
    return cls.from_pretrained(spec.folder, subfolder="transformer", torch_dtype=dtype)


def load_vae(spec: ModelSpec):
    import torch

    # Wan's VAE is small; it runs in float32 as in the pipelines
    return _component_class(spec, "vae").from_pretrained(
        spec.folder, subfolder="vae", torch_dtype=torch.float32
    )


def load_text_encoder(spec: ModelSpec, dtype):
    return _component_class(spec, "text_encoder").from_pretrained(
        spec.folder, subfolder="text_encoder", torch_dtype=dtype
    )


def load_tokenizer(spec: ModelSpec):
    return _component_class(spec, "tokenizer").from_pretrained(spec.folder, subfolder="tokenizer")


def load_scheduler(spec: ModelSpec):
    return _component_class(spec, "scheduler").from_pretrained(spec.folder, subfolder="scheduler")


def make_pipeline(spec: ModelSpec, **components):
    """The model's pipeline class built from already-loaded components (missing ones are None:
    the pipelines accept that as long as what a call needs is there)."""
    import importlib

    cls = getattr(importlib.import_module("diffusers"), spec.pipeline_class)
    kwargs = {
        k: components.get(k)
        for k in ("tokenizer", "text_encoder", "vae", "scheduler", "transformer")
    }
    pipe = cls(**kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------- LoRA
def lora_target_regex(targets: tuple[str, ...] | list[str]) -> str:
    """A peft ``target_modules`` regex (full match on module names) for the named projections
    inside the MAIN transformer blocks only (``blocks.N....``, never ``vace_blocks``)."""
    names = "|".join(re.escape(t.strip()) for t in targets)
    return rf"blocks\.\d+\.(?:[\w.]+\.)?(?:{names})"


def add_lora(transformer, *, rank: int, alpha: float, dropout: float, targets) -> Any:
    """Freeze the transformer and add a LoRA adapter (the 'default' one); returns its LoraConfig.
    Adapter weights are float32 whatever the base dtype (the optimizer updates float32 master
    weights; under bf16 autocast the matmuls still run in bf16)."""
    import torch
    from peft import LoraConfig

    transformer.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft says int, but only divides it by r
        lora_dropout=dropout,
        target_modules=lora_target_regex(targets),
        init_lora_weights=True,
    )
    transformer.add_adapter(config)
    names = []
    for n, p in transformer.named_parameters():
        if p.requires_grad:
            names.append(n)
            if p.dtype != torch.float32:  # bf16 base weights: keep float32 master weights
                p.data = p.data.float()
    if not names:
        raise TrainingError(
            f"--target-modules {','.join(targets)}: no such modules in the transformer's blocks "
            "(Wan attention has to_q, to_k, to_v, to_out.0; feed-forward has ffn.net.0.proj, ffn.net.2)"
        )
    return config


def lora_parameters(transformer) -> list:
    return [p for n, p in transformer.named_parameters() if p.requires_grad and "lora_" in n]


def lora_state_dict(transformer) -> dict:
    """The adapter's tensors (peft names, no 'transformer.' prefix), detached CPU copies."""
    from peft.utils import get_peft_model_state_dict

    sd = get_peft_model_state_dict(transformer)
    # a sharded (FSDP2) model's tensors are DTensors: gathered whole (a collective)
    sd = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in sd.items()}
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in sd.items()}


def set_lora_state_dict(transformer, state: dict) -> None:
    """Load adapter tensors (with or without the 'transformer.' prefix) into the transformer."""
    from peft.utils import set_peft_model_state_dict

    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    result = set_peft_model_state_dict(transformer, state)
    unexpected = list(getattr(result, "unexpected_keys", None) or [])
    if unexpected:
        raise TrainingError(
            f"the checkpoint's LoRA does not fit this model ({len(unexpected)} unknown tensors, "
            f"e.g. {unexpected[0]}); was it trained with other --target-modules or another model?"
        )


def lora_metadata(config) -> dict:
    """The LoRA config fields diffusers needs to rebuild the adapter (stored in the file)."""
    return {
        "r": int(config.r),
        "lora_alpha": float(config.lora_alpha),
        "target_modules": config.target_modules
        if isinstance(config.target_modules, str)
        else sorted(config.target_modules),
        "lora_dropout": float(config.lora_dropout),
        "bias": "none",
        "use_dora": False,
        "use_rslora": False,
        "init_lora_weights": True,
    }


def save_lora_file(path: str | os.PathLike, state: dict, metadata: dict) -> Path:
    """Write a diffusers-format LoRA file at ``path`` (atomically: a temp folder, then a rename)."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        WanLoraLoaderMixin.save_lora_weights(
            tmp,
            transformer_lora_layers=state,
            weight_name=LORA_WEIGHT_NAME,
            transformer_lora_adapter_metadata=metadata,
        )
        os.replace(tmp / LORA_WEIGHT_NAME, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_lora_file(path: str | os.PathLike) -> dict:
    """The tensors of a LoRA file (keys as stored: 'transformer.blocks...')."""
    from safetensors.torch import load_file

    return load_file(str(path))
