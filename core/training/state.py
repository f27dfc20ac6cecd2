"""Checkpoints without pickle: tensors in safetensors, scalars in JSON.

A checkpoint folder ``PROJECT/loras/<name>/checkpoint-<step>/`` holds::

    pytorch_lora_weights.safetensors  the adapter in diffusers' format: `load_lora_weights(folder)`
                                      reads it as it is
    optimizer.safetensors             AdamW's per-parameter tensors ("state.<i>.exp_avg", ...)
    rng-<process>.safetensors         each process's torch CPU (and CUDA) generator states
    trainer_state.json                step, settings, optimizer param groups and scalar state,
                                      Python's and numpy's RNG states, the loss so far

It is written to ``checkpoint-<step>.partial`` and renamed when complete, so a crash never
leaves a half checkpoint under a real name.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, cast

from worldstudio.core.project import atomic_write_bytes
from worldstudio.core.training.config import TrainingError

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


# --------------------------------------------------------------------------- optimizer
def optimizer_to_flat(state_dict: dict) -> tuple[dict, dict]:
    """Split ``optimizer.state_dict()`` into (tensors, JSON-able scalars)."""
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for idx, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    groups = []
    for g in state_dict["param_groups"]:
        out = {}
        for k, v in g.items():
            out[k] = {"__tuple__": list(v)} if isinstance(v, tuple) else v
        groups.append(out)
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict, meta: dict) -> dict:
    """The inverse of :func:`optimizer_to_flat`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = []
    for g in meta["param_groups"]:
        groups.append(
            {
                k: tuple(v["__tuple__"]) if isinstance(v, dict) and "__tuple__" in v else v
                for k, v in g.items()
            }
        )
    return {"state": state, "param_groups": groups}


# --------------------------------------------------------------------------- RNG
def rng_state() -> tuple[dict, dict]:
    """(tensors, JSON) of this process's global RNGs: torch CPU and CUDA, Python, numpy."""
    import numpy as np
    import torch

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    py = random.getstate()
    # the legacy MT19937 tuple (get_state's default), not the dict of get_state(legacy=False)
    npy = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npy[0], [int(v) for v in npy[1]], int(npy[2]), int(npy[3]), float(npy[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    import numpy as np
    import torch

    if "torch_cpu" in tensors:
        torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted(
        (k for k in tensors if k.startswith("torch_cuda_")), key=lambda k: int(k.rsplit("_", 1)[1])
    )
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    if meta.get("python"):
        v, s, g = meta["python"]
        random.setstate((v, tuple(s), g))
    if meta.get("numpy"):
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# --------------------------------------------------------------------------- folders
def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    out = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = CHECKPOINT_RE.match(p.name)
            if m and p.is_dir() and (p / STATE_FILE).is_file():
                out.append((int(m.group(1)), p))
    return sorted(out)


def checkpoint_partial(folder: Path) -> Path:
    return folder.with_name(folder.name + ".partial")


def save_checkpoint(
    folder: Path,
    *,
    lora_state: dict,
    lora_meta: dict,
    optimizer_state: dict | None,
    trainer_state: dict,
) -> Path:
    """Write the shared files of one checkpoint into ``<folder>.partial`` (main process only);
    then every process adds its RNG file (:func:`save_rng_file`), and the main process renames
    the folder (:func:`finish_checkpoint`)."""
    from safetensors.torch import save

    from worldstudio.core.training.model import LORA_WEIGHT_NAME, save_lora_file

    partial = checkpoint_partial(folder)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    save_lora_file(partial / LORA_WEIGHT_NAME, lora_state, lora_meta)
    opt_meta: dict = {}
    if optimizer_state is not None:
        tensors, opt_meta = optimizer_to_flat(optimizer_state)
        atomic_write_bytes(partial / OPTIMIZER_FILE, save(tensors))
    state = dict(trainer_state)
    state["optimizer"] = opt_meta
    atomic_write_bytes(partial / STATE_FILE, (json.dumps(state, indent=2) + "\n").encode("utf-8"))
    return partial


def save_rng_file(partial: Path, rng: tuple[dict, dict], process_index: int) -> None:
    """This process's RNG states (tensors, with the JSON part in the file's metadata)."""
    from safetensors.torch import save

    tensors, meta = rng
    atomic_write_bytes(
        partial / f"rng-{process_index}.safetensors",
        save(tensors, metadata={"meta": json.dumps(meta)}),
    )


def finish_checkpoint(folder: Path, keep: int = 0) -> Path:
    """Rename the finished ``.partial`` folder; remove the ``.partial`` folders that a killed
    training left beside it (one training writes a run folder); with ``keep`` > 0 delete all but
    the newest ``keep`` checkpoints of the run folder."""
    partial = checkpoint_partial(folder)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)
    for stale in folder.parent.glob("checkpoint-*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    if keep > 0:
        for _step, old in list_checkpoints(folder.parent)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: str | Path, process_index: int = 0) -> dict:
    """{"lora": tensors, "optimizer": state dict or None, "state": trainer_state, "rng": (tensors,
    meta) or None} from a checkpoint folder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from worldstudio.core.training.model import LORA_WEIGHT_NAME

    folder = Path(folder)
    state_file = folder / STATE_FILE
    if not state_file.is_file() or not (folder / LORA_WEIGHT_NAME).is_file():
        raise TrainingError(
            f"--resume: {folder} is not a training checkpoint (no {STATE_FILE} / {LORA_WEIGHT_NAME})"
        )
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        lora = load_file(str(folder / LORA_WEIGHT_NAME))
        optimizer = None
        if (folder / OPTIMIZER_FILE).is_file():
            optimizer = optimizer_from_flat(
                load_file(str(folder / OPTIMIZER_FILE)), state.get("optimizer", {})
            )
        rng = None
        rng_file = folder / f"rng-{process_index}.safetensors"
        if rng_file.is_file():
            with safe_open(str(rng_file), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("meta", "{}"))
                rng = ({k: f.get_tensor(k) for k in f.keys()}, meta)
    except TrainingError:
        raise
    except Exception as exc:
        raise TrainingError(
            f"--resume: {folder} cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    return {"lora": lora, "optimizer": optimizer, "state": state, "rng": rng}
