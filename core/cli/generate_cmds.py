"""``worldstudio generate``: the world engine from the command line, with a progress bar."""

from __future__ import annotations

import argparse
from typing import get_args

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.project.model import CacheName, Precision, Quality

QUALITIES, CACHE_CHOICES, PRECISIONS = get_args(Quality), get_args(CacheName), get_args(Precision)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate the project's video round by round (monitors, out-of-sight entities)",
        description=(
            "Generate the project's video with the world engine and write a run folder under "
            "PROJECT/runs/ (run.json, round_XXX/, final.mp4, final_combined.mp4). Settings default "
            "to the project's generation settings."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument(
        "--backend",
        metavar="NAME",
        help="geometry, oracle, ideal, wan-vace, wan-i2v or liveworld",
    )
    p.add_argument(
        "--model",
        metavar="ID",
        help="model repo id or local folder (model backends; liveworld: liveworld or liveworld-4step)",
    )
    p.add_argument(
        "--rounds", type=int, metavar="N", help="number of rounds (default: the project's)"
    )
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps per call")
    p.add_argument("--guidance", type=float, metavar="G", help="classifier-free guidance scale")
    p.add_argument(
        "--size", metavar="WxH", help="video size, multiples of 16 (default: the project's)"
    )
    p.add_argument("--frames-per-round", type=int, metavar="F", help="frames per round, 4k+1")
    p.add_argument("--seed", type=int, metavar="S", help="run seed (each call derives its own)")
    p.add_argument("--profile", metavar="NAME", help="memory profile of the model backends")
    p.add_argument(
        "--resume", metavar="RUN", help="continue RUN (id or folder) after its last complete round"
    )
    p.add_argument(
        "--from-round",
        type=int,
        metavar="K",
        help="branch: a new run copying rounds < K from RUN (--resume, default the latest run) and "
        "regenerating from round K with the project's current prompts",
    )
    p.add_argument(
        "--no-monitors", action="store_true", help="switch every monitor off (entities freeze)"
    )
    c = p.add_argument_group("conditioning (default: the project's generation settings)")
    c.add_argument(
        "--observer-strength",
        type=float,
        metavar="S",
        help="how strongly the observer follows the renders",
    )
    c.add_argument(
        "--monitor-strength",
        type=float,
        metavar="S",
        help="how strongly the monitors follow the renders",
    )
    c.add_argument(
        "--context-frames", type=int, metavar="N", help="previous frames each call continues from"
    )
    c.add_argument(
        "--flow-shift",
        type=float,
        metavar="X",
        help="the sampler's flow shift (default: Wan's for the size)",
    )
    c.add_argument("--negative-prompt", metavar="TEXT", help="the negative prompt ('' for none)")
    c.add_argument(
        "--prompt-entities",
        choices=("visible", "all"),
        help="the entities the observer's prompt names: those its renders show, or all",
    )
    a = p.add_argument_group("speed and memory (default: the project's generation settings)")
    a.add_argument(
        "--attention",
        metavar="NAME",
        help="attention backend: auto (the best this machine runs), native (PyTorch SDPA), "
        "native-math, native-flash, native-efficient, native-cudnn, flash, flash3, sage, xformers",
    )
    a.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the transformer's repeated blocks (torch.compile; the first call compiles)",
    )
    a.add_argument(
        "--quality",
        choices=QUALITIES,
        help="full; fast (a denoising cache); draft (a step-distillation LoRA, 4-8 steps)",
    )
    a.add_argument("--cache", choices=CACHE_CHOICES, help="denoising cache (auto: the quality's)")
    a.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="the transformer's weights: auto (bf16), fp8 (layerwise casting), int8 (torchao), "
        "nf4 (bitsandbytes, CUDA)",
    )
    a.add_argument(
        "--vae-tiling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VAE tiling and slicing (default: on with the low-vram profile)",
    )
    a.add_argument(
        "--colour-match",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="match each call's colours to the frames it continues (against colour drift)",
    )
    p.add_argument(
        "--lora",
        action="append",
        metavar="FILE[=STRENGTH]",
        help="apply a LoRA adapter (.safetensors) at a strength (default 1); may be repeated",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="the checks before the run stop it on a warning too (tight memory, a model to "
        "download, little disk left), not only on an error",
    )
    m = p.add_argument_group("several GPUs")
    m.add_argument(
        "--gpus",
        type=int,
        default=1,
        metavar="N",
        help="split each model call over N GPUs of this machine (context parallelism; the "
        "command starts N worker processes with torchrun; wan-vace and wan-i2v)",
    )
    m.add_argument(
        "--parallel",
        choices=("auto", "ulysses", "ring"),
        default="auto",
        help="how attention is split: ulysses (heads, all-to-all; the model's heads must divide "
        "by N), ring (key/value blocks passed around; a GPU kernel); auto: ulysses when it can",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_generate)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise WorldStudioError(f"{flag} must be at least 1, got {value}")


def _loras(values: list[str] | None) -> list[tuple[str, float]] | None:
    """``--lora FILE[=STRENGTH]`` values as (path, strength)."""
    if not values:
        return None
    out = []
    for value in values:
        path, _, strength = value.rpartition("=")
        try:
            out.append((path, float(strength)) if path else (value, 1.0))
        except ValueError:
            out.append((value, 1.0))  # an "=" in the file name
    return out


def options_from_args(args: argparse.Namespace):
    """The :class:`~worldstudio.core.generation.engine.RunOptions` of a ``generate`` command
    line."""
    from worldstudio.core.generation.engine import RunOptions
    from worldstudio.core.project.model import parse_size

    _positive(args.rounds, "--rounds")
    _positive(args.steps, "--steps")
    _positive(args.gpus, "--gpus")
    if args.seed is not None and args.seed < 0:
        raise WorldStudioError(f"--seed must be 0 or more, got {args.seed}")
    if args.from_round is not None and args.from_round < 0:
        raise WorldStudioError(f"--from-round must be 0 or more, got {args.from_round}")
    return RunOptions(
        backend=args.backend,
        model=args.model,
        rounds=args.rounds,
        steps=args.steps,
        size=parse_size(args.size) if args.size else None,
        frames_per_round=args.frames_per_round,
        seed=args.seed,
        guidance=args.guidance,
        profile=args.profile,
        monitors=not args.no_monitors,
        observer_strength=args.observer_strength,
        monitor_strength=args.monitor_strength,
        context_frames=args.context_frames,
        flow_shift=args.flow_shift,
        negative_prompt=args.negative_prompt,
        prompt_entities=args.prompt_entities,
        resume=args.resume,
        from_round=args.from_round,
        write_preview=True,
        attention=args.attention,
        compile=args.compile,
        quality=args.quality,
        cache=args.cache,
        precision=args.precision,
        vae_tiling=args.vae_tiling,
        colour_match=args.colour_match,
        loras=_loras(args.lora),
        stop_on_warnings=args.strict,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from worldstudio.core.generation.engine import generate_job
    from worldstudio.core.jobs import run_in_terminal

    options = options_from_args(args)
    if args.gpus != 1:
        from worldstudio.core.generation.parallel import parallel_generate_job

        job = parallel_generate_job(args.project, options, args.gpus, args.parallel)
    else:
        job = generate_job(args.project, options)
    result = run_in_terminal(job, "generate", quiet=args.quiet)
    print(
        f"run {result.run_id}: {result.rounds_done}/{result.rounds_total} rounds, backend {result.backend}"
    )
    print(f"  folder:   {result.run_dir}")
    print(f"  video:    {result.final_mp4}")
    print(f"  combined: {result.final_combined_mp4}")
    return 0
