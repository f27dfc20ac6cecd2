"""Measurement: kill saves at random moments and look at what is left.

    python bench/kill_during_save.py                 # 200 kills, 50 per kind of write
    python bench/kill_during_save.py --kills 400 --seed 1

A child process saves in a loop; the parent kills it with SIGKILL after a random delay, then
checks the outcome *before* anything cleans up:

- corrupt: the project (or the folder being replaced) does not load, or is neither the old nor
  the new version;
- leftovers: temporary names of ours (core.fileio: ``.NAME.PID.XXXXXXXX.tmp|partial``,
  ``.NAME.old-PID``, and older names without a PID) beside or inside the project;

then runs what a user does next (a save into the same folder: ``ProjectFolder.save``, or the
studio opening the project: ``ProjectFolder.clean_leftovers``) and counts again: leftovers after
the next write must be 0, and an interrupted folder swap must have been put back.

Kinds of write: ``project``: project.json (atomic_write); ``folder``: a whole project folder
replaced through ``staged_folder(replace=True)`` (as ``new --force`` and the demo do);
``bundle``: a bundle imported into a new folder; ``ply``: the scene's points.ply rewritten.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

KINDS = ("project", "folder", "bundle", "ply")
# Our temporary names, new (with a PID) and old (without), matched without core's own code so
# that the count does not depend on what is being measured.
LEFTOVER = re.compile(r"^\..+\.(?:\d+\.)?[a-z0-9_]{8}\.(?:tmp|partial)$|^\..+\.old-\d+$")


def child(kind: str, work: Path) -> None:
    """Save in a loop until killed; prints 'ready' once the loop runs."""
    from worldstudio.core.fileio import staged_folder
    from worldstudio.core.interop.bundle import import_bundle
    from worldstudio.core.pointcloud import read_ply, write_ply
    from worldstudio.core.project import ProjectFolder

    folder = ProjectFolder(work / "p.wsproj")
    project = folder.load()
    cloud = read_ply(folder.root / "scene" / "points.ply")
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        if kind == "project":
            project.name = f"save {i}"
            folder.save(project)
        elif kind == "folder":
            with staged_folder(folder.root, replace=True) as staging:
                shutil.copytree(work / "template", staging, dirs_exist_ok=True)
                (staging / "version.txt").write_text(str(i))
        elif kind == "bundle":
            import_bundle(work / "p.zip", work / f"imported-{i}.wsproj")
        elif kind == "ply":
            write_ply(folder.root / "scene" / "points.ply", cloud)


def leftovers(work: Path) -> list[str]:
    return sorted(str(p.relative_to(work)) for p in work.rglob(".*") if LEFTOVER.match(p.name))


def check(kind: str, work: Path) -> tuple[bool, str]:
    """(loads, what) for the thing the child was writing."""
    from worldstudio.core.errors import WorldStudioError
    from worldstudio.core.pointcloud import read_ply
    from worldstudio.core.project import ProjectFolder

    try:
        if kind == "bundle":
            imported = sorted(work.glob("imported-*.wsproj"))
            for p in imported:
                ProjectFolder(p).load()
            return True, f"{len(imported)} imported"
        project = ProjectFolder(work / "p.wsproj").load()
        if kind == "ply":
            read_ply(work / "p.wsproj" / "scene" / "points.ply")
        return True, project.name
    except WorldStudioError as exc:
        return False, str(exc)


def trial(kind: str, template: Path, bundle: Path, rng: random.Random, tally: Counter) -> None:
    from worldstudio.core.project import ProjectFolder

    work = Path(tempfile.mkdtemp(prefix=f"kill-{kind}-"))
    try:
        shutil.copytree(template, work / "p.wsproj")
        shutil.copytree(template, work / "template")
        shutil.copy(bundle, work / "p.zip")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(work)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tally["kills"] += 1
        left = leftovers(work)
        tally["leftovers after the kill"] += len(left)
        tally["kills that left something"] += bool(left)
        ok, what = check(kind, work)
        if not ok and not (kind == "folder" and not (work / "p.wsproj").exists()):
            tally["corrupt"] += 1
            print(f"  corrupt ({kind}): {what}")
        elif not ok:
            tally["project folder missing until put back"] += 1
        # what a user does next: the studio opens the project, or a command saves into it
        target = ProjectFolder(work / "p.wsproj")
        done = target.clean_leftovers()
        tally["folders put back (swap cut short)"] += sum("restored" in d for d in done)
        if kind == "project":
            target.save(target.load())
        elif kind == "bundle":
            from worldstudio.core.fileio import clean_leftovers

            clean_leftovers(work)  # the next import into that folder
        ok_after, what_after = check(kind, work)
        if not ok_after:
            tally["corrupt after the next write"] += 1
            print(f"  still broken ({kind}): {what_after}")
        after = leftovers(work)
        tally["leftovers after the next write"] += len(after)
        if after:
            print(f"  left ({kind}): {after}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="kills in all (spread over kinds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0

    from worldstudio.core.interop.bundle import export_bundle
    from worldstudio.core.oracle.demo_project import create_demo_project

    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="kill-template-"))
    try:
        template = base / "demo.wsproj"
        create_demo_project(template, width=160, height=96)
        bundle, _ = export_bundle(template, base / "demo.zip")
        results = {}
        per_kind = max(1, args.kills // len(KINDS))
        t0 = time.perf_counter()
        for kind in KINDS:
            tally: Counter = Counter({"corrupt": 0, "corrupt after the next write": 0})
            for _ in range(per_kind):
                trial(kind, template, bundle, rng, tally)
            results[kind] = dict(tally)
            print(f"{kind:<8} {json.dumps(dict(tally))}", flush=True)
        total = Counter()
        for tally in results.values():
            total.update(tally)
        print(f"all      {json.dumps(dict(total))}  ({time.perf_counter() - t0:.0f} s)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
