"""`worldstudio models list | download | set-dir`: the model catalogue from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from worldstudio.core.models import manager
from worldstudio.core.models.catalogue import KINDS
from worldstudio.core.models.requirements import JOBS, MissingModelsError, required_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list and download the models the studio uses")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    q = msub.add_parser(
        "list", help="every model: kind, download size, memory, licence, present or not"
    )
    q.add_argument("--kind", choices=KINDS, help="only models of this kind")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    manager.add_model_dir_option(q)
    q.set_defaults(handler=cmd_list)

    q = msub.add_parser(
        "download",
        help="download models into the Hugging Face cache (resumable)",
        description="Download the models NAME..., or every model a job needs (--for JOB with "
        "the job's options, e.g. --for generate --backend wan-vace).",
    )
    q.add_argument(
        "names", nargs="*", metavar="NAME", help="model names (or hub repo ids) from `models list`"
    )
    q.add_argument(
        "--for",
        dest="for_job",
        choices=sorted(JOBS),
        metavar="JOB",
        help=f"every model the job needs: {', '.join(sorted(JOBS))}",
    )
    q.add_argument("--project", metavar="PROJECT", help="--for: the project's settings")
    q.add_argument("--backend", metavar="NAME", help="--for generate: the backend")
    q.add_argument("--model", metavar="ID", help="--for generate/train/segment: the model")
    q.add_argument("--lifter", metavar="NAME", help="--for generate: render, oracle or model")
    q.add_argument("--depth-model", metavar="NAME", help="--for new: the depth model")
    q.add_argument("--force", action="store_true", help="download again even when already present")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    manager.add_model_dir_option(q)
    q.set_defaults(handler=cmd_download)

    q = msub.add_parser(
        "set-dir",
        help="remember a local folder for a model in the config file (no PATH: forget it)",
    )
    q.add_argument("name", metavar="NAME")
    q.add_argument("path", metavar="PATH", nargs="?")
    q.set_defaults(handler=cmd_set_dir)


def cmd_list(args: argparse.Namespace) -> int:
    manager.apply_model_dirs(args.model_dir)
    rows = manager.list_status(args.kind)
    if args.json:
        out = [
            {
                "name": s.info.name,
                "repo_id": s.info.repo_id,
                "kind": s.info.kind,
                "default": s.info.default,
                "licence": s.info.licence,
                "licence_note": s.info.licence_note,
                "download_bytes": s.info.download_bytes,
                "memory_gb": s.info.memory_gb,
                "metric": s.info.metric,
                "estimates_fov": s.info.estimates_fov,
                "status": s.status,
                "path": str(s.path) if s.path else None,
                "description": s.info.description,
            }
            for s in rows
        ]
        print(json.dumps(out, indent=2))
        return 0
    header = ("NAME", "KIND", "SIZE", "MEMORY", "LICENCE", "STATUS", "REPO")
    table = [header]
    for s in rows:
        i = s.info
        table.append(
            (
                i.name + (" *" if i.default else ""),
                i.kind,
                "~" + i.size_text,
                f"{i.memory_gb:g} GB",
                i.licence + (" (research only)" if "research" in i.licence_note else ""),
                s.status,
                i.repo_id,
            )
        )
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    print()
    print("* the default of its kind. SIZE: approximate download; MEMORY: what it needs to run.")
    for s in rows:
        if s.info.licence_note:
            print(f"{s.info.name}: licence {s.info.licence}: {s.info.licence_note}.")
        if s.status in ("local", "local-missing"):
            print(f"{s.info.name}: {s.where}")
    print(f"hub cache: {manager.hub_cache_dir()}   config: {manager.config_file()}")
    return 0


def _job_options(args: argparse.Namespace) -> dict:
    keys = {
        "generate": ("project", "backend", "model", "lifter"),
        "new": ("depth_model",),
        "segment": ("model",),
        "train": ("project", "model"),
    }[args.for_job]
    for key in ("project", "backend", "model", "lifter", "depth_model"):
        if getattr(args, key) is not None and key not in keys:
            flag = "--" + key.replace("_", "-")
            raise manager.ModelError(f"{flag} does not apply to --for {args.for_job}")
    return {key: getattr(args, key) for key in keys}


def cmd_download(args: argparse.Namespace) -> int:
    manager.apply_model_dirs(args.model_dir)
    infos = [manager.get_model(name) for name in args.names]
    if args.for_job:
        needed = required_models(args.for_job, **_job_options(args))
        infos += [m for m in needed if m not in infos]
        if not needed:
            print(f"--for {args.for_job}: this job needs no model")
    elif not infos:
        raise manager.ModelError("models download: name the models, or use --for JOB")
    wanted = [i for i in infos if args.force or not manager.model_status(i).present]
    if len(wanted) > 1 and manager.is_offline():  # name them all, not only the first
        raise MissingModelsError(
            wanted,
            "worldstudio models download " + " ".join(i.name for i in wanted),
            "HF_HUB_OFFLINE is set",
            "this download",
        )
    for info in infos:
        status = manager.model_status(info)
        if status.status == "local":
            print(f"{info.name}: uses {status.where}; nothing to download")
            continue
        if status.status == "downloaded" and not args.force:
            print(f"{info.name}: already downloaded ({status.path})")
            continue
        bar = None
        progress = None
        if not args.quiet:
            from tqdm import tqdm

            def progress(done: int, total: int, message: str, _info=info) -> None:
                nonlocal bar
                if bar is None:
                    bar = tqdm(
                        total=total, unit="B", unit_scale=True, desc=_info.name, file=sys.stderr
                    )
                if total and bar.total != total:
                    bar.total = total
                bar.n = done
                bar.refresh()

        manager.check_can_download(info)
        print(
            f"{info.name}: downloading {info.repo_id} (~{info.size_text}, licence {info.licence_text})"
        )
        try:
            path = manager.download(info, progress, force=args.force, check_network=False)
        finally:
            if bar is not None:
                bar.close()
        print(f"{info.name}: done ({path})")
    return 0


def cmd_set_dir(args: argparse.Namespace) -> int:
    info = manager.get_model(args.name)
    if args.path is None:
        cfg = manager.save_local_dir_to_config(info.name, None)
        print(f"{info.name}: local folder removed from {cfg}")
        return 0
    from pathlib import Path

    folder = Path(args.path).expanduser()
    if not manager.is_complete(folder, info.library, info.files):
        raise manager.ModelError(
            f"{folder}: does not hold model {info.name} (expected {manager.expected_content(info)})"
        )
    cfg = manager.save_local_dir_to_config(info.name, folder)
    print(f"{info.name}: uses {folder.resolve()} (saved in {cfg})")
    return 0
