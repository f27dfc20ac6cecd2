"""bench/bench_train_step.py: the --full code path runs at the tiny shape on the CPU, and the
Wan2.1-VACE-1.3B shape it builds on a GPU is the real architecture (checked on the meta device)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

BENCH = Path(__file__).parents[2] / "bench" / "bench_train_step.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train_step", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_mode_code_path_at_the_tiny_shape(capsys):
    bench = _bench()
    before = torch.get_num_threads()
    try:
        assert (
            bench.main(
                [
                    "--full",
                    "--shape",
                    "tiny",
                    "--device",
                    "cpu",
                    "--steps",
                    "1",
                    "--warmup",
                    "0",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert (
        "train step:" in out
        and "ratio train/forward" in out
        and "32x32 x 9 frames = 12 tokens" in out
    )


def test_wan_1_3b_shape_builds():
    from worldstudio.core.training.model import add_lora, lora_parameters

    bench = _bench()
    model = bench.build("wan1.3b", "meta", torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    assert 2.1e9 < n < 2.2e9  # 1.4B main blocks + 0.7B VACE blocks, as in the real checkpoint
    assert len(model.blocks) == 30 and len(model.vace_blocks) == 15
    add_lora(model, rank=16, alpha=16.0, dropout=0.0, targets=("to_q", "to_k", "to_v", "to_out.0"))
    lora = lora_parameters(model)
    assert len(lora) == 30 * 2 * 4 * 2  # blocks x (attn1, attn2) x projections x (A, B)
    assert {p.dtype for p in lora} == {torch.float32}
