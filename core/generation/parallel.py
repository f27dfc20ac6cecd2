"""Generation on several GPUs of one machine: diffusers' context parallelism.

``worldstudio generate --gpus N`` (and the Generate panel's GPU count) runs
:func:`parallel_generate_job`: a job that starts N worker processes with ``torchrun``
(:mod:`worldstudio.core.runtime.launch`: its progress, previews, events, pause and cancel come
and go through the launch folder) running ``python -m worldstudio.core.generation.parallel``.

- **Rank 0** runs the world engine, exactly as one process would (the run folder, lifting, the
  world, the writing): its Wan backend gets a :class:`ContextParallel` part.
- **Ranks 1..N-1** serve: they load the same pipeline and make the same pipeline call as rank 0
  for every backend call. Rank 0 hands them each call through the launch folder
  (:class:`Mailbox`: the backend's options once, then each :class:`GenerationRequest` as an
  .npz of its arrays with its other fields as JSON, loaded with ``allow_pickle=False``). Every
  rank thus runs the same prompt, conditioning and seed; the text encoder and the VAE run on each
  GPU, the transformer's forward passes are split.
- Inside the transformer the token sequence is split across the ranks (diffusers'
  ``enable_parallelism`` with a ``ContextParallelConfig``): **Ulysses** attention exchanges
  attention heads all-to-all (each rank attends over the whole sequence for heads/N heads; needs
  the model's heads divisible by N), **ring** attention passes key/value blocks around (any head
  count; needs an attention kernel that returns its log-sum-exp: flash, sage, or SDPA's cuDNN or
  flash kernels). ``auto`` takes Ulysses when the heads divide, else ring.
- The Wan 2.1 transformer (image-to-video) has diffusers' own plan of where the sequence is split
  and gathered; the VACE transformer has none, so :func:`vace_cp_plan` gives one (its control
  blocks see the same split as the main blocks).
- At the end of every denoising step all ranks agree on a cancel (an all-reduce of rank 0's
  cancel flag), so they stop at the same step; between calls (pause, the engine's own work)
  the serving ranks wait on the mailbox, outside any collective.

Limits: the token count of a latent frame, (W/16)·(H/16), must be a multiple of N; every rank
holds the whole pipeline (memory profile "gpu": no offloading); backends wan-vace and wan-i2v.
On a machine without a GPU the workers use the CPU and gloo, which runs Ulysses attention with
PyTorch SDPA (the tests' path); ring attention needs a GPU kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from worldstudio.core.errors import Cancelled, WorldStudioError
from worldstudio.core.generation.backends.base import GenerationRequest
from worldstudio.core.jobs import JobContext

MODULE = "worldstudio.core.generation.parallel"
PARALLEL_MODES = ("auto", "ulysses", "ring")
PARALLEL_BACKENDS = ("wan-vace", "wan-i2v")

# The studio's attention names whose diffusers backend supports context parallelism, and those
# of them that return the log-sum-exp ring attention needs (PyTorch SDPA's "native" does not).
CP_ATTENTION = ("native", "native-flash", "native-cudnn", "flash", "sage")
RING_ATTENTION = ("native-flash", "native-cudnn", "flash", "sage")


class ParallelError(WorldStudioError):
    """A multi-GPU run that cannot be made as asked (one clear line)."""


# --------------------------------------------------------------------------- choices
def check_gpus(gpus: int | None) -> int:
    if gpus is None:
        return 1
    if int(gpus) < 1:
        raise ParallelError(f"--gpus must be at least 1, got {gpus}")
    return int(gpus)


def check_mode(mode: str | None) -> str:
    mode = (mode or "auto").strip().lower()
    if mode not in PARALLEL_MODES:
        raise ParallelError(f"--parallel {mode!r}: expected one of {', '.join(PARALLEL_MODES)}")
    return mode


def choose_mode(mode: str, heads: int, gpus: int) -> str:
    """Ulysses or ring for ``gpus`` ranks and a model with ``heads`` attention heads."""
    mode = check_mode(mode)
    if mode == "auto":
        return "ulysses" if heads % gpus == 0 else "ring"
    if mode == "ulysses" and heads % gpus:
        raise ParallelError(
            f"Ulysses attention splits the model's {heads} attention heads over the GPUs: "
            f"{gpus} does not divide {heads}; use --parallel ring or another GPU count"
        )
    return mode


def tokens_per_frame(height: int, width: int, spatial: int = 16) -> int:
    """The transformer's tokens per latent frame (Wan 2.1: VAE 8x, patches 2x2 -> 16 pixels)."""
    return (int(height) // spatial) * (int(width) // spatial)


def check_size(height: int, width: int, gpus: int, spatial: int = 16) -> None:
    """Each rank gets an equal share of every call's tokens: a latent frame's tokens must split
    evenly over ``gpus``."""
    tokens = tokens_per_frame(height, width, spatial)
    if gpus > 1 and tokens % gpus:
        raise ParallelError(
            f"{width}x{height} on {gpus} GPUs: a latent frame has {tokens} tokens "
            f"(({width}/{spatial})x({height}/{spatial})), which do not split evenly over {gpus} "
            f"GPUs; choose a size where that product is a multiple of {gpus}"
        )


def choose_attention(applied: str, mode: str, device_type: str) -> str:
    """The attention backend a context-parallel run uses: the one the backend chose when it can
    run split (ring: when it returns the log-sum-exp), else the closest one that can."""
    allowed = RING_ATTENTION if mode == "ring" else CP_ATTENTION
    if applied in allowed:
        return applied
    if mode != "ring":
        return "native"
    if device_type != "cuda":
        raise ParallelError(
            "ring attention needs a GPU attention kernel (flash, sage, or SDPA's cuDNN or flash "
            "kernels); on the CPU use --parallel ulysses"
        )
    return "native-cudnn"


def vace_cp_plan() -> dict[str, Any]:
    """Where the VACE transformer's token sequence is split and gathered.

    As for diffusers' Wan plan: the rotary embedding's outputs are split, the main blocks get
    their share of the hidden states from the first block on, and the output projection
    gathers. VACE's control blocks run first, each on the (whole) hidden states and the control
    stream: every control block gets its share of the hidden states, the first also of the
    control stream (later ones receive their predecessor's, already split); the hints they
    return are then split like the main blocks' hidden states they are added to."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    split = ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)
    return {
        "rope": {
            0: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
            1: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
        },
        "vace_blocks.0": {"control_hidden_states": split},
        "vace_blocks.*": {"hidden_states": split},
        "blocks.0": {"hidden_states": split},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def run_shape(project: str | os.PathLike[str], options: Any) -> tuple[str, int, int]:
    """(backend, width, height) of a run of ``options``, as the engine settles them: the
    options', a resumed run's own, else the project's."""
    from worldstudio.core.project import ProjectFolder
    from worldstudio.core.project.runs import resolve_run

    folder = ProjectFolder(project)
    project_settings = folder.load().generation
    if options.resume is not None and options.from_round is None:
        s = resolve_run(folder, options.resume).read_meta().get("settings", {})
        return str(s.get("backend", "")), int(s.get("width", 0)), int(s.get("height", 0))
    backend = options.backend
    if backend is not None and not isinstance(backend, str):
        backend = backend.name
    width, height = options.size or (project_settings.width, project_settings.height)
    return backend or project_settings.backend, int(width), int(height)


def check_run(project: str | os.PathLike[str], options: Any, gpus: int) -> None:
    """A run of ``options`` can be split over ``gpus`` processes: its backend and its size."""
    backend, width, height = run_shape(project, options)
    if gpus > 1 and backend not in PARALLEL_BACKENDS:
        raise ParallelError(
            f"--gpus {gpus}: backend {backend} runs in one process; several GPUs work with "
            f"{' and '.join(PARALLEL_BACKENDS)}"
        )
    check_size(height, width, gpus)


# --------------------------------------------------------------------------- requests as files
def save_request(request: GenerationRequest, path: Path) -> None:
    """``request`` as an .npz: its arrays, and its other fields as JSON (``__meta__``)."""
    meta: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for f in fields(GenerationRequest):
        value = getattr(request, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
            meta[f.name] = {"array": f.name}
        elif isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            keys = [f"{f.name}.{i}" for i in range(len(value))]
            arrays.update(zip(keys, value, strict=True))
            meta[f.name] = {"arrays": keys}
        else:
            meta[f.name] = _json_value(value)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stubs fear allow_pickle here
    os.replace(tmp, path)


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_request(path: Path) -> GenerationRequest:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
        values: dict[str, Any] = {}
        for name, value in meta.items():
            if isinstance(value, dict) and "array" in value:
                values[name] = z[value["array"]]
            elif isinstance(value, dict) and "arrays" in value:
                values[name] = [z[k] for k in value["arrays"]]
            else:
                values[name] = value
    values["loras"] = [(str(p), float(s)) for p, s in values.get("loras") or []]
    return GenerationRequest(**values)


class Mailbox:
    """Numbered messages from rank 0 to the serving ranks in a folder: ``msg-N.json`` (written
    last, atomically) and, for a backend call, ``msg-N.npz`` (the request)."""

    def __init__(self, folder: Path, poll: float = 0.02):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.poll = poll
        self.sent = 0
        self.received = 0

    def _paths(self, n: int) -> tuple[Path, Path]:
        return self.folder / f"msg-{n:06d}.json", self.folder / f"msg-{n:06d}.npz"

    def post(self, message: dict[str, Any], request: GenerationRequest | None = None) -> None:
        self.sent += 1
        meta, npz = self._paths(self.sent)
        if request is not None:
            save_request(request, npz)
        tmp = meta.with_name(meta.name + ".tmp")
        tmp.write_text(json.dumps(message), encoding="utf-8")
        os.replace(tmp, meta)
        # every rank has read message N-2 before message N-1's collectives could end
        for old in self._paths(self.sent - 2):
            old.unlink(missing_ok=True)

    def receive(self) -> tuple[dict[str, Any], GenerationRequest | None]:
        """The next message (waiting for it, outside any collective)."""
        self.received += 1
        meta, npz = self._paths(self.received)
        while not meta.exists():
            time.sleep(self.poll)
        message = json.loads(meta.read_text(encoding="utf-8"))
        request = load_request(npz) if message.get("op") == "generate" else None
        return message, request


# --------------------------------------------------------------------------- the ranks' part
@contextlib.contextmanager
def _accelerator_count_on_cpu(device_type: str):
    """diffusers 0.42.1 picks a context-parallel rank's device as ``rank % accelerator count``,
    which divides by zero on a machine without an accelerator; there the workers run on the CPU
    (gloo), and the count is taken as one while parallelism is enabled."""
    import torch

    if device_type != "cpu" or torch.accelerator.device_count() > 0:
        yield
        return
    original = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = original


class ContextParallel:
    """One worker's part of a context-parallel run (``rank`` of ``world``); the Wan backends call
    :meth:`enable` when their pipeline is loaded, :meth:`before_call` just before each pipeline
    call and :meth:`agree_cancel` at the end of each denoising step."""

    def __init__(self, mailbox: Mailbox, rank: int, world: int, mode: str = "auto"):
        self.mailbox = mailbox
        self.rank = rank
        self.world = world
        self.mode = check_mode(mode)
        self.used_mode: str | None = None
        self.attention: str | None = None
        self.backend_name: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def enable(self, backend: Any, pipe: Any, ctx: JobContext | None) -> None:
        """Split ``pipe``'s transformer across the ranks (rank 0 first tells the others to load
        the same pipeline: enabling is collective)."""
        from diffusers import ContextParallelConfig

        from worldstudio.core.generation import acceleration as acc

        applied = backend.applied
        if applied is None or applied.profile != "gpu":
            raise ParallelError(
                f"several GPUs need every component on each GPU (memory profile gpu); this run's "
                f"profile is {applied.profile if applied else backend.profile}"
            )
        if self.main:
            self.mailbox.post(
                {"op": "load", "backend": backend.name, "options": backend.parallel_options()}
            )
        transformer = pipe.transformer
        heads = int(transformer.config.num_attention_heads)
        mode = self.used_mode = choose_mode(self.mode, heads, self.world)
        attention = choose_attention(applied.attention, mode, backend.device.type)
        if attention != applied.attention:
            name, _note = acc.apply_attention(transformer, attention, backend.device)
            applied.notes.append(
                f"attention {applied.attention} cannot run split across GPUs: using {name}"
            )
            applied.attention = name
        self.attention = applied.attention
        degree = {"ulysses_degree" if mode == "ulysses" else "ring_degree": self.world}
        # VACE has no plan of its own in diffusers; Wan 2.1's (image-to-video) is diffusers'
        plan = vace_cp_plan() if hasattr(transformer, "vace_blocks") else None
        with _accelerator_count_on_cpu(backend.device.type):
            acc._quietly(
                lambda: transformer.enable_parallelism(
                    config=ContextParallelConfig(**degree), cp_plan=plan
                )
            )
        self.backend_name = backend.name
        if ctx is not None and self.main:
            where = "GPUs" if backend.device.type == "cuda" else f"{backend.device.type} processes"
            ctx.log(
                f"{backend.name}: context parallel on {self.world} {where} ({mode} attention, "
                f"{self.attention}); each computes 1/{self.world} of the tokens"
            )

    def before_call(self, backend: Any, request: GenerationRequest) -> None:
        """Rank 0 hands ``request`` to the serving ranks (who then make the same call)."""
        pipe = backend.pipe
        spatial = int(getattr(pipe, "vae_scale_factor_spatial", 8)) * int(
            pipe.transformer.config.patch_size[1]
        )
        check_size(request.height, request.width, self.world, spatial)
        if self.main:
            self.mailbox.post({"op": "generate"}, request)

    def agree_cancel(self, cancelled: bool) -> bool:
        """Whether any rank wants to stop (all ranks call this at the same step)."""
        import torch
        import torch.distributed as dist

        device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
        flag = torch.tensor([1 if cancelled else 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def close(self) -> None:
        """Rank 0: the serving ranks may stop."""
        if self.main:
            self.mailbox.post({"op": "close"})

    def serve(self) -> None:
        """A serving rank's loop: load when told, make each call, stop when told. A failure here
        ends the worker (torchrun then ends the others and the launcher says what happened)."""
        from worldstudio.core.generation.backends import get_backend

        ctx = JobContext()  # quiet: rank 0 reports
        backend = None
        try:
            while True:
                message, request = self.mailbox.receive()
                op = message.get("op")
                if op == "close":
                    return
                try:
                    if op == "load":
                        from worldstudio.core.generation.backends.wan_common import (
                            DiffusersWanBackend,
                        )

                        backend = get_backend(
                            message["backend"], **message["options"], preview=False, parallel=self
                        )
                        if not isinstance(backend, DiffusersWanBackend):
                            raise ParallelError(f"backend {message['backend']} runs in one process")
                        backend.load(ctx)
                    elif op == "generate" and backend is not None and request is not None:
                        backend.generate(request, ctx)
                except Cancelled:
                    continue  # every rank stopped at the same step
                except Exception as exc:
                    raise RuntimeError(f"GPU worker {self.rank}: {exc}") from exc
        finally:
            if backend is not None:
                backend.close()


# --------------------------------------------------------------------------- launching
def options_to_json(options: Any) -> dict[str, Any]:
    """A :class:`~worldstudio.core.generation.engine.RunOptions` made of plain values, as JSON."""
    for name in ("backend", "lifter"):
        value = getattr(options, name)
        if value is not None and not isinstance(value, str):
            raise ParallelError(f"a multi-GPU run takes its {name} by name, not as an object")
    if options.observer is not None or options.backend_options:
        raise ParallelError("a multi-GPU run takes no observer source or backend objects")
    data = asdict(options)
    data.pop("observer")
    data.pop("backend_options")
    return json.loads(json.dumps(data, default=os.fspath))


def options_from_json(data: dict[str, Any], **more: Any):
    from worldstudio.core.generation.engine import RunOptions

    data = dict(data)
    if data.get("size") is not None:
        data["size"] = tuple(data["size"])
    if data.get("loras") is not None:
        data["loras"] = [(str(p), float(s)) for p, s in data["loras"]]
    return RunOptions(**data, **more)


def result_to_json(result: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(result), default=os.fspath))


def result_from_json(data: dict[str, Any]):
    from worldstudio.core.generation.engine import RunResult

    data = dict(data)
    for name in ("run_dir", "final_mp4", "final_combined_mp4"):
        if data.get(name) is not None:
            data[name] = Path(data[name])
    return RunResult(**data)


def parallel_generate_job(
    project: str | os.PathLike[str],
    options: Any,
    gpus: int,
    mode: str = "auto",
):
    """A job ``job(ctx) -> RunResult`` that generates with ``gpus`` worker processes (see the
    module doc). Checked before anything starts: the GPU count, the mode, that the run's backend
    can run split and that its options are plain values."""
    from worldstudio.core.runtime.launch import check_worker_count

    gpus = check_gpus(gpus)
    mode = check_mode(mode)
    if gpus > 1:
        check_worker_count(gpus)
    spec = {
        "project": os.fspath(Path(project).resolve()),
        "options": options_to_json(options),
        "parallel": mode,
    }
    check_run(project, options, gpus)
    if options.profile not in (None, "auto", "gpu"):
        raise ParallelError(
            f"--gpus {gpus}: every component runs on each GPU (memory profile gpu); "
            f"profile {options.profile} is for one GPU"
        )

    def job(ctx: JobContext):
        from worldstudio.core.runtime.launch import run_workers

        data = run_workers(MODULE, spec, gpus, ctx, what="generation workers")
        return result_from_json(data)

    return job


def _worker(spec: dict[str, Any], channel: Any) -> dict[str, Any] | None:
    """One worker process: rank 0 runs the engine, the others serve."""
    import torch.distributed as dist

    from worldstudio.core.generation.engine import generate_job
    from worldstudio.core.runtime.launch import init_process_group

    rank, world = init_process_group()
    setup = ContextParallel(Mailbox(channel.folder / "calls"), rank, world, spec["parallel"])
    try:
        if rank != 0:
            setup.serve()
            return None
        try:
            options = options_from_json(spec["options"], backend_options={"parallel": setup})
            check_run(spec["project"], options, world)
            result = generate_job(spec["project"], options)(channel.ctx)
        finally:
            setup.close()
        return result_to_json(result)
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    from worldstudio.core.runtime.launch import worker_main

    return worker_main(argv, _worker)


if __name__ == "__main__":  # pragma: no cover - the workers' entry point
    raise SystemExit(main())
