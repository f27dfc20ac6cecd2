"""Training on several GPUs of one machine: ``worldstudio train --gpus N``.

:func:`parallel_train_job` is a job that starts N worker processes with ``torchrun``
(:mod:`worldstudio.core.runtime.launch`: progress, log lines, events, pause and cancel come and
go through the launch folder) running ``python -m worldstudio.core.training.parallel``. Each
worker runs the ordinary trainer (:func:`worldstudio.core.training.trainer.train`); accelerate
finds the workers from torchrun's environment, so each trains on its share of every batch and the
gradients are averaged. Only rank 0 encodes the cache, writes files and reports.

Sharding: ``ddp`` keeps the whole transformer on each GPU (the LoRA's gradients are averaged);
``fsdp`` shards the transformer's blocks over the GPUs (accelerate's FSDP2), for models whose
weights do not fit one GPU (the 14B); while sharded no sample clips are made (rank 0 alone
cannot run a sharded model) and checkpoints hold no optimizer state. ``auto``: fsdp on CUDA
GPUs, ddp otherwise. accelerate
shards only on accelerators: on a machine without a GPU the workers run on the CPU with gloo,
data-parallel (the tests' path).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from worldstudio.core.jobs import JobContext
from worldstudio.core.training.config import TrainConfig, TrainingError

MODULE = "worldstudio.core.training.parallel"
SHARDINGS = ("auto", "fsdp", "ddp")


def choose_sharding(sharding: str | None, device_type: str, gpus: int) -> str:
    """``ddp`` or ``fsdp`` for ``gpus`` workers on ``device_type`` (one line when impossible)."""
    sharding = (sharding or "auto").strip().lower()
    if sharding not in SHARDINGS:
        raise TrainingError(f"--sharding {sharding!r}: expected one of {', '.join(SHARDINGS)}")
    if gpus == 1:
        return "none"
    if sharding == "auto":
        return "fsdp" if device_type == "cuda" else "ddp"
    if sharding == "fsdp" and device_type != "cuda":
        raise TrainingError(
            "--sharding fsdp needs CUDA GPUs (accelerate shards only on accelerators); "
            "this machine's workers would run on the CPU: use --sharding ddp"
        )
    return sharding


def config_from_json(data: dict[str, Any]) -> TrainConfig:
    data = dict(data)
    for name in ("target_modules", "sample_prompts"):
        data[name] = tuple(data.get(name) or ())
    return TrainConfig(**data)


def result_to_json(result: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(result), default=os.fspath))


def result_from_json(data: dict[str, Any]):
    from worldstudio.core.training.cache import CacheStats
    from worldstudio.core.training.trainer import TrainResult

    data = dict(data)
    for name in ("adapter", "metadata_file", "run_dir", "resumed_from"):
        if data.get(name) is not None:
            data[name] = Path(data[name])
    for name in ("checkpoints", "samples"):
        data[name] = [Path(p) for p in data.get(name) or []]
    for name in ("losses", "lrs", "eval_losses"):
        data[name] = [(int(s), float(v)) for s, v in data.get(name) or []]
    if data.get("cache") is not None:
        cache = dict(data["cache"])
        cache["skipped"] = [tuple(s) for s in cache.get("skipped") or []]
        data["cache"] = CacheStats(**cache)
    return TrainResult(**data)


def parallel_train_job(
    project: str | os.PathLike[str],
    config: TrainConfig,
    gpus: int,
    sharding: str = "auto",
):
    """A job ``job(ctx) -> TrainResult`` that trains with ``gpus`` worker processes. Checked
    before anything starts: the count against this machine, the sharding, the settings."""
    from worldstudio.core.runtime.launch import check_worker_count

    device_type = check_worker_count(gpus)
    if config.cpu:
        device_type = "cpu"
    used = choose_sharding(sharding, device_type, int(gpus))
    config.validate()
    dropped_samples = used == "fsdp" and bool(config.sample_every)
    if dropped_samples:
        # a sharded transformer runs only with every process: the samples (rank 0's) are left out
        config = dataclasses.replace(config, sample_every=0)
    spec = {
        "project": os.fspath(Path(project).resolve()),
        "config": config.to_json(),
        "sharding": used,
    }

    def job(ctx: JobContext):
        from worldstudio.core.runtime.launch import run_workers

        ctx.log(f"training on {gpus} {device_type} workers ({used})")
        if dropped_samples:
            ctx.log("no sample clips while the transformer is sharded (fsdp)")
        data = run_workers(MODULE, spec, int(gpus), ctx, what="training workers")
        return result_from_json(data)

    return job


def _worker(spec: dict[str, Any], channel: Any) -> dict[str, Any] | None:
    from worldstudio.core.training.trainer import train

    config = config_from_json(spec["config"])
    result = train(spec["project"], config, ctx=channel.ctx, fsdp=spec["sharding"] == "fsdp")
    return result_to_json(result) if channel.main else None


def main(argv: list[str] | None = None) -> int:
    from worldstudio.core.runtime.launch import worker_main

    return worker_main(argv, _worker)


if __name__ == "__main__":  # pragma: no cover - the workers' entry point
    raise SystemExit(main())
