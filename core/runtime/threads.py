"""The CPU thread policy: how many threads torch and the BLAS libraries get, and how they wait.

torch's CPU kernels (and MKL's, which share its OpenMP pool) split work over a team of threads
that meet at a barrier after each parallel region. By default (GNU OpenMP's active wait policy) a
thread that reaches the barrier first *spins* there. When other processes compete for the cores,
the thread it waits for is often descheduled, and the spinning thread burns the very time slice
that thread needs: the same render took 2.6 s or 88 s on a loaded 2-core machine. With waiting
threads that sleep (``OMP_WAIT_POLICY=PASSIVE``) the team gives the cores back, and the render's
time grows with the share of the machine it gets instead (bench/bench_renderer.py
``--background-load N`` shows it).

The policy, applied once per process by its entry point (:func:`apply_thread_policy`):

- ``OMP_WAIT_POLICY=PASSIVE``, set before torch loads (OpenMP reads it when it starts);
- a thread count per process *role*: ``cli`` (one job owns the machine: every usable core),
  ``studio`` (the UI thread and the video encoders keep a core when there are more than two;
  on two cores the sleeping waits already hand it back), ``play-cpu`` (a play session on a
  model-free backend: one thread, its renders run beside the encoders and writer threads) and
  ``worker`` (one of N processes of a multi-process run: the usable cores shared out);
- the count goes to torch (``OMP_NUM_THREADS`` before it loads, ``torch.set_num_threads`` after),
  MKL and OpenBLAS (numpy's).

"Usable cores" are the ones the process may run on (its CPU affinity), capped by a cgroup CPU
quota (containers). Environment variables the user set win: ``OMP_NUM_THREADS`` (also for
MKL and OpenBLAS when theirs are unset), ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``OMP_WAIT_POLICY``. An explicit count (a ``--threads`` option) wins over all.

Child processes get :func:`child_environment`: the user's own settings without the ones this
policy made, so that each child applies its own policy (for its share of the cores).

Pure Python: torch is only touched when it is already loaded.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROLES = ("cli", "studio", "play-cpu", "worker")
COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WAIT_VARIABLE = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"

# The variables this process's policy set (name -> value), so that children do not take them
# for the user's.
_set_by_policy: dict[str, str] = {}
_applied: ThreadPolicy | None = None


@dataclass(frozen=True)
class ThreadPolicy:
    """What a process runs with."""

    role: str
    threads: int  # torch's intra-op threads (and MKL's, OpenBLAS's)
    source: str  # "policy", "environment" (OMP_NUM_THREADS) or "explicit" (a --threads option)
    wait_policy: str  # OpenMP's wait policy: PASSIVE (the policy's) or the user's
    cores: int  # usable cores

    def text(self) -> str:
        return (
            f"{self.threads} CPU thread{'s' if self.threads != 1 else ''} of {self.cores} usable "
            f"cores ({self.role}, {self.source}; OpenMP wait policy {self.wait_policy})"
        )


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 ``cpu.max``), None if none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(float(quota) / float(period), 1.0)
    except (ValueError, ZeroDivisionError):
        return None


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def _positive(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _user_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the values this process's policy put there."""
    return {k: v for k, v in environ.items() if _set_by_policy.get(k) != v}


def policy_for(
    role: str,
    *,
    threads: int | None = None,
    processes: int = 1,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
) -> ThreadPolicy:
    """The policy of a process in ``role`` (see the module doc); ``processes``: how many
    processes of a multi-process run share the machine (role ``worker``)."""
    if role not in ROLES:
        raise ValueError(f"unknown thread-policy role {role!r} (one of {', '.join(ROLES)})")
    env = _user_environment(os.environ if environ is None else environ)
    cores = cores or usable_cores()
    wait = env.get(WAIT_VARIABLE) or WAIT_POLICY
    if threads is not None and threads > 0:
        return ThreadPolicy(role, int(threads), "explicit", wait, cores)
    from_env = _positive(env.get("OMP_NUM_THREADS"))
    if from_env is not None:
        return ThreadPolicy(role, from_env, "environment", wait, cores)
    if role == "studio":
        count = cores - 1 if cores > 2 else cores
    elif role == "play-cpu":
        count = 1
    elif role == "worker":
        count = cores // max(1, int(processes))
    else:
        count = cores
    return ThreadPolicy(role, max(1, count), "policy", wait, cores)


def _environment_for(policy: ThreadPolicy, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ``policy`` adds to ``environ`` (those the user did not set)."""
    env = _user_environment(environ)
    out = {}
    if WAIT_VARIABLE not in env:
        out[WAIT_VARIABLE] = WAIT_POLICY
    count = str(policy.threads)
    if policy.source == "environment":
        count = env["OMP_NUM_THREADS"]  # MKL and OpenBLAS follow the user's OpenMP count
    for name in COUNT_VARIABLES:
        if name not in env or policy.source == "explicit":
            out[name] = count
    return out


def apply_thread_policy(
    role: str, *, threads: int | None = None, processes: int = 1
) -> ThreadPolicy:
    """Apply the policy of ``role`` to this process (again with another role or count is fine:
    the last call wins). Call it before torch and numpy load where possible: the wait policy and
    numpy's OpenBLAS count are read when those libraries start; torch's count is also set
    afterwards."""
    global _applied
    policy = policy_for(role, threads=threads, processes=processes)
    for name, value in _environment_for(policy, os.environ).items():
        os.environ[name] = value
        _set_by_policy[name] = value
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        if torch.get_num_threads() != policy.threads:
            torch.set_num_threads(policy.threads)
    _applied = policy
    return policy


def applied_policy() -> ThreadPolicy | None:
    """The policy this process applied last (None: none yet)."""
    return _applied


def child_environment(processes: int = 1, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: ``base`` (default this process's) without what the
    policy set, plus, for ``processes`` > 1 workers sharing the machine, each one's thread count
    and the wait policy (unless the user set them)."""
    env = _user_environment(os.environ if base is None else base)
    if processes > 1:
        policy = policy_for("worker", processes=processes, environ=env)
        env.update(_environment_for(policy, env))
    return env
