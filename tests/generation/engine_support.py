"""Shared helpers for the world-engine tests: a small demo project and test backends."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np

from worldstudio.core.errors import Cancelled
from worldstudio.core.generation.backends import BaseBackend, GenerationRequest
from worldstudio.core.jobs import JobContext

W, H = 64, 48
F = 9

_lock = threading.Lock()
_template: dict[str, Path] = {}


def demo_project(tmp_path_factory, dest: Path) -> Path:
    """A fresh copy of the demo project at 64x48 (built once per session)."""
    from worldstudio.core.oracle.demo_project import create_demo_project

    with _lock:
        if "demo" not in _template:
            root = tmp_path_factory.mktemp("demo_template") / "demo.wsproj"
            create_demo_project(root, W, H)
            _template["demo"] = root
    shutil.copytree(_template["demo"], dest)
    return dest


class NoisyBackend(BaseBackend):
    """Renders where the render has points, seeded noise where it has holes, tinted by the mean of
    the previous frames: the output depends on the seed, the conditioning and the previous
    frames, so resume and seed tests see any difference in them."""

    name = "noisy"
    lifter = "render"

    def __init__(self, **options):
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        self.requests.append(request)
        rng = np.random.default_rng(request.seed)
        out = request.control_rgb.copy()
        noise = rng.integers(0, 256, out.shape, dtype=np.uint8)
        mask = request.control_mask
        out[mask] = noise[mask]
        if request.previous_frames is not None:
            tint = int(request.previous_frames.mean()) % 7
            out = (out.astype(np.int16) + tint).clip(0, 255).astype(np.uint8)
        for step in range(request.steps):
            ctx.check_cancelled()
            ctx.progress(step + 1, request.steps, f"step {step + 1}")
        return out


class FailingBackend(BaseBackend):
    """The oracle backend that raises in the observer call of round ``fail_round``."""

    name = "failing"
    lifter = "oracle"
    fail_round = 1

    def __init__(self, **options):
        from worldstudio.core.generation.backends.oracle import OracleBackend

        self.inner = OracleBackend(**options)

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        if request.round_index == self.fail_round and request.role == "observer":
            raise RuntimeError("simulated out of memory")
        return self.inner.generate(request, ctx)


class CancellingBackend(FailingBackend):
    """The oracle backend whose cancel token is set when round ``fail_round`` starts."""

    name = "cancelling"

    def generate(self, request: GenerationRequest, ctx: JobContext) -> np.ndarray:
        if request.round_index == self.fail_round:
            ctx.cancel_token.cancel()
            ctx.check_cancelled()
            raise AssertionError("not reached")  # pragma: no cover
        return self.inner.generate(request, ctx)


def cancel_at_round(token, round_number: int):
    """A JobContext sink that cancels ``token`` as soon as round ``round_number`` (1-based)
    reports progress."""

    def sink(report) -> None:
        if report.kind == "progress" and report.message.startswith(f"round {round_number}/"):
            token.cancel()

    return sink


__all__ = [
    "F",
    "H",
    "W",
    "Cancelled",
    "CancellingBackend",
    "FailingBackend",
    "NoisyBackend",
    "cancel_at_round",
    "demo_project",
    "torch_one_thread",
]


def torch_one_thread():
    """Generator for a module fixture: torch on one thread (tiny work runs faster so and does not
    stall when the machine is busy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
