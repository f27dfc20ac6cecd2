"""``worldstudio play``: a headless play session (DeepVerse's run.py in the studio's terms)."""

from __future__ import annotations

import argparse
from typing import get_args

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.project.model import Quality

QUALITIES = get_args(Quality)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "play",
        help="play actions through the world engine: video, depth, world snapshots",
        description=(
            "Drive the world engine with actions, chunk by chunk, and write an ordinary run "
            "(resumable with generate --resume) plus the session's outputs in --out (default "
            "RUN/play/): video.mp4, depth.mp4 and depth/*.png (16-bit, depth/scale.json says the "
            "scale), world/*.ply every --ply-every frames, video_actions.mp4 with --overlay, and "
            "play.json. The camera starts at the path's first keyframe (as path --actions)."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--actions", metavar="STEPS", help='an action string, e.g. "(FN)(FN)(fLN)(SR)"'
    )
    what.add_argument(
        "--actions-file",
        metavar="FILE",
        help="one action per frame, one per line (FN or (FN); Vid2World-style input)",
    )
    p.add_argument(
        "--frames-per-action",
        type=int,
        metavar="N",
        help="frames each action lasts (default 8; 1 with --actions-file)",
    )
    p.add_argument(
        "--step-length",
        type=float,
        metavar="U",
        help="world units a move step covers (default 0.25 per 8 frames)",
    )
    p.add_argument(
        "--turn-degrees",
        type=float,
        metavar="D",
        help="degrees a turn step turns (default 15 per 8 frames)",
    )
    p.add_argument(
        "--chunk-frames",
        type=int,
        metavar="F",
        help="frames per chunk, 4k+1 (default: the backend's, 9 or 17)",
    )
    p.add_argument(
        "--backend",
        metavar="NAME",
        help="geometry, oracle, ideal, wan-vace or liveworld (default: the project's)",
    )
    p.add_argument(
        "--model", metavar="ID", help="model repo id or local folder (liveworld: liveworld-4step)"
    )
    p.add_argument(
        "--quality",
        choices=QUALITIES,
        help="full; fast (a denoising cache); draft (the model's step-distillation LoRA, 4-8 "
        "steps; wan-vace's default); default: the backend's, else the project's",
    )
    p.add_argument(
        "--steps", type=int, metavar="N", help="denoising steps per chunk (over the quality's)"
    )
    p.add_argument(
        "--guidance",
        type=float,
        metavar="G",
        help="classifier-free guidance scale (over the quality's)",
    )
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="PATH[:STRENGTH]",
        help="a LoRA .safetensors to apply (repeatable; with --quality draft, beside its LoRA)",
    )
    p.add_argument("--profile", metavar="NAME", help="memory profile of the model backends")
    p.add_argument(
        "--size", metavar="WxH", help="video size, multiples of 16 (default: the project's)"
    )
    p.add_argument("--seed", type=int, metavar="S", help="run seed")
    p.add_argument("--no-monitors", action="store_true", help="switch every monitor off")
    p.add_argument("--out", metavar="DIR", help="where the session's outputs go (default RUN/play)")
    p.add_argument(
        "--ply-every", type=int, default=8, metavar="N", help="a world PLY every N frames (0: none)"
    )
    p.add_argument("--no-depth", action="store_true", help="no depth video or PNGs")
    p.add_argument(
        "--overlay", action="store_true", help="also write the video with the actions drawn on it"
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: 1 for geometry, oracle and ideal, whose renders run "
        "faster so beside the encoders; every usable core otherwise)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_play)


CPU_BACKENDS = ("geometry", "oracle", "ideal")


def cmd_play(args: argparse.Namespace) -> int:
    from worldstudio.core.jobs import run_in_terminal
    from worldstudio.core.play import PlayOptions, play_job, read_actions_file
    from worldstudio.core.play.backends import parse_lora
    from worldstudio.core.project.model import parse_size
    from worldstudio.core.runtime.threads import apply_thread_policy

    for value, flag in (
        (args.frames_per_action, "--frames-per-action"),
        (args.chunk_frames, "--chunk-frames"),
        (args.steps, "--steps"),
    ):
        if value is not None and value < 1:
            raise WorldStudioError(f"{flag} must be at least 1, got {value}")
    if args.threads is not None and args.threads < 1:
        raise WorldStudioError(f"--threads must be at least 1, got {args.threads}")
    if args.ply_every < 0:
        raise WorldStudioError(f"--ply-every must be 0 or more, got {args.ply_every}")
    if args.seed is not None and args.seed < 0:
        raise WorldStudioError(f"--seed must be 0 or more, got {args.seed}")
    if args.actions_file:
        actions = read_actions_file(args.actions_file)
        fpa = args.frames_per_action or 1
    else:
        actions, fpa = args.actions, args.frames_per_action or 8
    options = PlayOptions(
        actions=actions,
        frames_per_action=fpa,
        step_length=args.step_length,
        turn_degrees=args.turn_degrees,
        chunk_frames=args.chunk_frames,
        backend=args.backend,
        model=args.model,
        quality=args.quality,
        steps=args.steps,
        guidance=args.guidance,
        loras=[parse_lora(text) for text in args.lora] or None,
        profile=args.profile,
        size=parse_size(args.size) if args.size else None,
        seed=args.seed,
        monitors=not args.no_monitors,
        out=args.out,
        depth=not args.no_depth,
        ply_every=args.ply_every,
        overlay=args.overlay,
    )
    job = play_job(args.project, options)
    # the CPU backends' renders run beside the video encoders and writer threads: one thread
    # (core.runtime.threads, role play-cpu); a model backend keeps the command's policy
    role = "play-cpu" if job.backend in CPU_BACKENDS else "cli"
    apply_thread_policy(role, threads=args.threads)
    result = run_in_terminal(job, "play", quiet=args.quiet)
    fps = "-" if result.sustained_fps is None else f"{result.sustained_fps:.1f}"
    latency = max(result.chunk_latencies) if result.chunk_latencies else 0.0
    print(
        f"play: run {result.run.run_id}: {result.frames} frames in {len(result.chunk_latencies)} "
        f"chunks, first chunk {result.first_chunk_seconds:.2f} s, sustained {fps} FPS, chunk "
        f"latency up to {latency:.2f} s"
    )
    print(f"  actions: {result.actions}")
    print(f"  run:     {result.run.run_dir}")
    print(f"  outputs: {result.out}")
    return 0
