"""``worldstudio train``: LoRA fine-tuning of the video backbone on a folder of clips.

Multi-GPU: ``worldstudio train PROJECT --clips DIR --gpus N`` starts one worker process per GPU
(core.training.parallel); ``accelerate launch -m worldstudio train ...`` works too. Only the main
process prints.
"""

from __future__ import annotations

import argparse

from worldstudio.core.models import manager


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune the video backbone (LoRA) on your clips",
        description=(
            "Train a LoRA adapter of the project's video model on a folder of clips (mp4, mov, webm) "
            "with captions (a same-name .txt per clip, or captions.jsonl / captions.csv / captions.tsv). "
            "Writes PROJECT/loras/NAME.safetensors (+ NAME.json) and the run folder PROJECT/loras/NAME/ "
            "(loss.csv, eval.csv, checkpoint-STEP/, samples/). Latents and text embeddings are cached "
            "in PROJECT/loras/.cache/. Settings a resumed run does not get on the command line come "
            "from its checkpoint."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--clips", required=True, metavar="DIR", help="folder of clips with captions")
    p.add_argument("--name", default="lora", help="adapter name (default: lora)")
    p.add_argument(
        "--model",
        metavar="ID",
        help="model name, hub repo id or local folder (default: the project's)",
    )
    p.add_argument("--steps", type=int, metavar="N", help="optimizer steps in total (default 1000)")
    p.add_argument("--rank", type=int, metavar="R", help="LoRA rank (default 16)")
    p.add_argument("--alpha", type=float, metavar="A", help="LoRA alpha (default: the rank)")
    p.add_argument("--dropout", type=float, metavar="P", help="LoRA dropout (default 0)")
    p.add_argument(
        "--target-modules",
        metavar="LIST",
        help="comma-separated projections in each transformer block (default to_q,to_k,to_v,to_out.0)",
    )
    p.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default 1e-4)")
    p.add_argument(
        "--warmup",
        type=int,
        metavar="N",
        help="linear warm-up steps, then cosine decay (default 50)",
    )
    p.add_argument(
        "--batch-size", type=int, metavar="B", help="clips per batch per GPU (default 1)"
    )
    p.add_argument(
        "--grad-accum", type=int, metavar="N", help="micro-batches per optimizer step (default 1)"
    )
    p.add_argument(
        "--size",
        metavar="WxH",
        help="training size, multiples of 16 (default: the project's video size)",
    )
    p.add_argument("--frames", type=int, metavar="F", help="frames per clip, 4k+1 (default 33)")
    p.add_argument(
        "--fps", type=float, help="frame rate clips are sampled at (default: the project's)"
    )
    p.add_argument(
        "--windows-per-clip",
        type=int,
        metavar="N",
        help="non-overlapping windows taken from each clip (default 1)",
    )
    p.add_argument(
        "--shift",
        type=float,
        metavar="S",
        help="flow-matching timestep shift (default: the model's, 3.0)",
    )
    p.add_argument(
        "--timesteps",
        choices=("uniform", "logit_normal"),
        help="timestep sampling (default uniform)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="seed (default 0)")
    p.add_argument(
        "--caption",
        metavar="TEXT",
        help="caption for clips without one (default: missing captions are an error)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="checkpoint every N steps (default 250; 0: none)",
    )
    p.add_argument(
        "--keep-checkpoints",
        type=int,
        metavar="N",
        help="keep only the newest N checkpoints (default: all)",
    )
    p.add_argument(
        "--sample-every",
        type=int,
        metavar="N",
        help="sample clips every N steps (default 250; 0: none)",
    )
    p.add_argument(
        "--sample-prompt",
        action="append",
        metavar="TEXT",
        help="prompt of the sample clips (repeatable; default: the first clip's caption)",
    )
    p.add_argument(
        "--sample-steps", type=int, metavar="N", help="denoising steps of a sample (default 20)"
    )
    p.add_argument(
        "--sample-guidance", type=float, metavar="G", help="guidance of the samples (default 5)"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="fixed-batch eval loss every N steps (default: start and end)",
    )
    p.add_argument(
        "--log-every", type=int, metavar="N", help="a log line every N steps (default 10)"
    )
    p.add_argument(
        "--resume", metavar="CKPT", help="continue from a checkpoint folder, or 'latest'"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run with the same --name"
    )
    p.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="faster, needs more memory"
    )
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "bf16", "no"),
        help="auto: bf16 on a GPU, fp32 on the CPU",
    )
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument(
        "--cache-dir", metavar="DIR", help="latent and text cache (default PROJECT/loras/.cache)"
    )
    m = p.add_argument_group("several GPUs")
    m.add_argument(
        "--gpus",
        type=int,
        default=1,
        metavar="N",
        help="train on N GPUs of this machine (the command starts N worker processes with "
        "torchrun; each trains on its share of every batch)",
    )
    m.add_argument(
        "--sharding",
        choices=("auto", "fsdp", "ddp"),
        default="auto",
        help="fsdp: shard the transformer over the GPUs (for models that do not fit one GPU; "
        "no sample clips); ddp: the whole model on each GPU; auto: fsdp on CUDA GPUs",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    manager.add_model_dir_option(p)
    p.set_defaults(handler=cmd_train)


# flag -> TrainConfig field (only flags given on the command line are passed on)
_FIELDS = {
    "name": "name",
    "model": "model",
    "steps": "steps",
    "rank": "rank",
    "alpha": "alpha",
    "dropout": "dropout",
    "lr": "lr",
    "warmup": "warmup_steps",
    "batch_size": "batch_size",
    "grad_accum": "grad_accum",
    "frames": "frames",
    "fps": "fps",
    "windows_per_clip": "windows_per_clip",
    "shift": "flow_shift",
    "timesteps": "timestep_sampling",
    "seed": "seed",
    "caption": "default_caption",
    "checkpoint_every": "checkpoint_every",
    "keep_checkpoints": "keep_checkpoints",
    "sample_every": "sample_every",
    "sample_steps": "sample_steps",
    "sample_guidance": "sample_guidance",
    "eval_every": "eval_every",
    "log_every": "log_every",
    "resume": "resume",
    "mixed_precision": "mixed_precision",
    "cache_dir": "cache_dir",
}


def config_from_args(args: argparse.Namespace):
    from worldstudio.core.training import TrainConfig, parse_size

    settings: dict = {"clips": args.clips, "log_every": 10}
    for flag, name in _FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            settings[name] = value
    if args.size:
        settings["width"], settings["height"] = parse_size(args.size)
    if args.target_modules:
        settings["target_modules"] = tuple(
            t.strip() for t in args.target_modules.split(",") if t.strip()
        )
    if args.sample_prompt:
        settings["sample_prompts"] = tuple(args.sample_prompt)
    settings["overwrite"] = args.overwrite
    settings["cpu"] = args.cpu
    settings["gradient_checkpointing"] = not args.no_gradient_checkpointing
    config = TrainConfig(**settings)
    config.validate()
    return config


def args_from_settings(settings: dict) -> list[str]:
    """The ``train`` options (after PROJECT) that :func:`config_from_args` turns back into
    ``TrainConfig(**settings)`` (the studio queues a training so); a field without an option is
    a TrainingError."""
    import dataclasses

    from worldstudio.core.training import TrainConfig, TrainingError

    flags = {name: flag for flag, name in _FIELDS.items()}
    settings = dict(settings)
    # the command line logs every 10 steps unless told; the config's own default is kept
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    settings.setdefault("log_every", default["log_every"])
    out = ["--clips", str(settings.pop("clips"))]
    width, height = settings.pop("width", None), settings.pop("height", None)
    if width is not None and height is not None:
        out += ["--size", f"{int(width)}x{int(height)}"]
    modules = settings.pop("target_modules", None)
    if modules:
        out += ["--target-modules", ",".join(modules)]
    for prompt in settings.pop("sample_prompts", ()) or ():
        out += ["--sample-prompt", str(prompt)]
    for key, flag in (("overwrite", "--overwrite"), ("cpu", "--cpu")):
        if settings.pop(key, False):
            out.append(flag)
    if not settings.pop("gradient_checkpointing", True):
        out.append("--no-gradient-checkpointing")
    for name, value in settings.items():
        if name not in flags:
            raise TrainingError(f"the training setting {name!r} has no command-line option")
        if value is None or value == "":
            continue
        out += [f"--{flags[name].replace('_', '-')}", str(value)]
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from worldstudio.core.jobs import run_in_terminal
    from worldstudio.core.training import train_job

    manager.apply_model_dirs(args.model_dir)
    config = config_from_args(args)
    if args.gpus != 1:
        from worldstudio.core.training.parallel import parallel_train_job

        job = parallel_train_job(args.project, config, args.gpus, args.sharding)
    else:
        job = train_job(args.project, config)
    result = run_in_terminal(job, "train", quiet=args.quiet)
    try:
        from accelerate import PartialState

        main_process = PartialState().is_main_process
    except Exception:  # noqa: BLE001 - no accelerate state: a plain single process
        main_process = True
    if main_process:
        first = result.eval_losses[0][1] if result.eval_losses else None
        last = result.eval_losses[-1][1] if result.eval_losses else None
        print(f"adapter {result.adapter} ({result.step} steps, {result.items} clip windows)")
        if first is not None and last is not None:
            print(f"  eval loss {first:.4f} -> {last:.4f}")
        print(f"  run folder: {result.run_dir} (loss.csv, checkpoints, samples)")
    return 0
