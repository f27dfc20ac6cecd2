"""The CPU thread policy (core.runtime.threads): counts per role, the environment and explicit
counts winning, what children inherit, and that torch in a fresh process runs with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from worldstudio.core.runtime import threads
from worldstudio.core.runtime.threads import (
    apply_thread_policy,
    child_environment,
    policy_for,
    usable_cores,
)

VARIABLES = (*threads.COUNT_VARIABLES, threads.WAIT_VARIABLE)


@pytest.fixture
def clean_env(monkeypatch):
    """No thread variables, and this process's policy bookkeeping and torch count restored."""
    import torch

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    saved = dict(threads._set_by_policy), threads._applied, torch.get_num_threads()
    threads._set_by_policy.clear()
    yield monkeypatch
    for name in VARIABLES:
        os.environ.pop(name, None)
    threads._set_by_policy.clear()
    threads._set_by_policy.update(saved[0])
    threads._applied = saved[1]
    torch.set_num_threads(saved[2])


@pytest.mark.parametrize(
    ("role", "cores", "processes", "expected"),
    [
        ("cli", 8, 1, 8),
        ("studio", 8, 1, 7),  # the UI thread and the encoders keep a core
        ("studio", 2, 1, 2),  # on two cores the sleeping waits hand it back
        ("play-cpu", 8, 1, 1),
        ("worker", 8, 4, 2),
        ("worker", 2, 4, 1),
    ],
)
def test_counts_per_role(role, cores, processes, expected):
    policy = policy_for(role, cores=cores, processes=processes, environ={})
    assert (policy.threads, policy.source, policy.wait_policy) == (expected, "policy", "PASSIVE")


def test_the_environment_and_an_explicit_count_win():
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    p = policy_for("studio", cores=8, environ=env)
    assert (p.threads, p.source, p.wait_policy) == (3, "environment", "ACTIVE")
    p = policy_for("studio", threads=5, cores=8, environ=env)
    assert (p.threads, p.source) == (5, "explicit")
    # a value that is not a positive count is ignored
    assert policy_for("cli", cores=4, environ={"OMP_NUM_THREADS": "lots"}).threads == 4
    with pytest.raises(ValueError, match="unknown thread-policy role"):
        policy_for("gui", environ={})


def test_apply_sets_what_the_user_did_not(clean_env):
    import torch

    clean_env.setenv("MKL_NUM_THREADS", "1")  # the user's: kept
    policy = apply_thread_policy("play-cpu")
    assert policy.threads == 1 and threads.applied_policy() == policy
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert os.environ["MKL_NUM_THREADS"] == "1" and "MKL_NUM_THREADS" not in threads._set_by_policy
    assert torch.get_num_threads() == 1  # torch is loaded here: its count is set too
    # the last call wins, and the policy's own values are not taken for the user's
    policy = apply_thread_policy("cli")
    assert (policy.threads, policy.source) == (usable_cores(), "policy")
    assert os.environ["OMP_NUM_THREADS"] == str(usable_cores())


def test_children_get_the_users_environment_and_their_share(clean_env):
    apply_thread_policy("cli")
    env = child_environment()
    assert "OMP_NUM_THREADS" not in env and "OMP_WAIT_POLICY" not in env
    env = child_environment(processes=2)
    assert env["OMP_NUM_THREADS"] == str(max(1, usable_cores() // 2))
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    clean_env.setenv("OMP_NUM_THREADS", "7")  # set by the user after all
    threads._set_by_policy.pop("OMP_NUM_THREADS", None)
    assert child_environment(processes=2)["OMP_NUM_THREADS"] == "7"


def test_the_cli_applies_the_policy(clean_env):
    from worldstudio.core.cli import main

    assert main(["info", "/nonexistent/project"]) == 2
    assert threads.applied_policy().role == "cli"


CHECK = """
import json, os, sys
from worldstudio.core.runtime.threads import apply_thread_policy
policy = apply_thread_policy(sys.argv[1])
import torch
print(json.dumps([torch.get_num_threads(), os.environ["OMP_WAIT_POLICY"], policy.source]))
"""


@pytest.mark.parametrize(
    ("role", "env", "expected"),
    [
        ("play-cpu", {}, [1, "PASSIVE", "policy"]),
        (
            "cli",
            {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"},
            [1, "ACTIVE", "environment"],
        ),
    ],
)
def test_torch_in_a_fresh_process_runs_with_it(role, env, expected):
    base = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", CHECK, role],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
