"""bench/bench_liveworld.py: the full-size parameter count on the meta device (the real 14B +
adapter) and the per-profile forward path on the tiny model on a CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_liveworld.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_liveworld", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_full_size_architecture_has_the_real_models_parameters(bench):
    result = bench.main(["--json"])
    c, e = result["parameters"], result["expected"]
    assert result["matches_formula"] and result["forwards"] == []
    assert abs(c["backbone"] - e["backbone"]) <= e["backbone_tolerance"]  # 28.6 GB in bf16
    assert c["backbone"] == 14_288_491_584
    assert c["adapter_layers"] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert 0.95 < c["adapter"] / e["adapter_about"] < 1.05  # "about 6 GB" in bf16
    assert c["lora"] == 40 * 8 * 2 * 64 * 5120


def test_every_profiles_forward_runs_on_the_tiny_model(bench):
    result = bench.main(["--device", "cpu", "--tiny", "--repeats", "1", "--json"])
    assert result["matches_formula"]
    runs = {r["profile"]: r for r in result["forwards"]}
    assert set(runs) == {"gpu", "offload", "fp8", "low-vram"}
    for r in runs.values():
        assert r["finite"] and r["output_shape"] == [1, 16, 8, 4, 6] and r["seconds"] > 0
        assert r["tokens"] == 8 * 6  # T 3 + P 3 + 2 references, 2 x 3 tokens a frame
    assert runs["gpu"]["time_vs_gpu"] == 1.0
