"""bench/bench_denoise_step.py: its FLOP formula and both of its modes, on a CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_denoise_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_denoise_step", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_flop_formula_matches_torchs_counter_at_full_size(bench):
    """The 1.3B shape at 832x480x65 on the meta device: no weights, no time."""
    result = bench.main(["--full", "--dry-run", "--json"])
    assert result["tokens"] == 17 * 30 * 52 and result["output_shape"] == [1, 16, 17, 60, 104]
    assert result["gflop_counted_by_torch"] == pytest.approx(result["gflop_per_forward"], rel=1e-3)
    assert 250_000 < result["gflop_per_forward"] < 350_000  # ~300 TFLOP a forward
    assert 2.1e9 < result["parameters"] < 2.2e9


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_cpu_mode_times_the_tiny_model(bench, one_thread, dtype):
    """float32 (the CPU default) and bf16 with the float32 modules diffusers keeps (the --full
    path on a GPU builds the model the same way)."""
    result = bench.main(
        [
            "--height",
            "64",
            "--width",
            "64",
            "--frames",
            "5",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--dtype",
            dtype,
            "--json",
        ]
    )
    assert (
        result["device"] == "cpu"
        and result["dtype"] == dtype
        and len(result["forward_ms_all"]) == 2
    )
    assert result["forward_ms"] > 0 and result["tflops"] > 0 and result["ratio_vs_matmul"] > 0
    assert result["step_ms_with_cfg"] == pytest.approx(2 * result["forward_ms"])
