"""bench/gpu_check.py in CI: ``--cpu --tiny`` runs every section's code on the tiny shapes, and the
JSON report has the structure the full GPU run fills in."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from worldstudio.core.generation import acceleration

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "report.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu", "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gpu_check on CPU (cpu-tiny)" in proc.stdout
    return json.loads(out.read_text())


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def test_every_section_ran_without_errors(report):
    assert report["schema"] == 1 and report["mode"] == "cpu-tiny"
    assert report["sections"] == ["denoise", "preview", "splat", "memory", "train", "compile"]
    assert report["errors"] == {} and report["skipped"] == []
    for name in report["sections"]:
        assert isinstance(report[name], dict) and finite(report[name]["seconds"]), name
    assert report["device"]["name"] == "CPU" and finite(report["device"]["matmul_tflops"])
    lines = report["table"].splitlines()
    assert len(lines) > 12 and "live preview per step" in report["table"]


def test_denoise_rows_per_attention_backend_and_cache(report):
    d = report["denoise"]
    assert d["tokens"] > 0 and d["tflop_per_forward"] > 0 and d["peak_tflops"] > 0
    rows = {r["name"]: r for r in d["attention"]}
    assert set(rows) == {"native", "native-math"} and rows["native"]["auto"]
    for r in rows.values():
        assert all(finite(r[k]) for k in ("forward_s", "step_s", "tflops", "mfu"))
        assert r["step_s"] == pytest.approx(2 * r["forward_s"])
        assert r["exact"] and r["max_abs_diff_vs_first"] < 1e-3  # SDPA and math agree
    caches = {c["cache"]: c for c in d["caches"]}
    assert set(caches) == set(acceleration.CACHES)
    assert "VACE" in caches["first-block"]["refused"]
    for name in ("none", "taylorseer", "pab"):
        assert finite(caches[name]["step_s"]) and finite(caches[name]["speedup_vs_none"])


def test_compile_serves_a_new_size_without_recompiling(report):
    c = report["compile"]
    assert c["backend"] == "eager" and c["dynamic"] and "error" not in c
    assert finite(c["first_call_s"]) and finite(c["step_s"]) and finite(c["mfu"])
    assert c["recompiled_for_other_size"] is False


def test_preview_splat_memory_and_training_rows(report):
    p = report["preview"]
    assert finite(p["preview_ms"]) and finite(p["fraction"]) and p["goal"] == 0.03
    assert isinstance(p["ok"], bool) and p["image_shape"][2] == 3
    s = report["splat"]
    assert s["points"] > 0 and s["poses"] > 0 and finite(s["per_pose_ms"])
    assert s["goal_ms_per_pose"] == 20 and 0 < s["coverage"] <= 1
    profiles = [(r["profile"], r["precision"]) for r in report["memory"]["profiles"]]
    assert profiles == [("gpu", "auto"), ("offload", "auto"), ("low-vram", "auto"), ("gpu", "fp8")]
    for r in report["memory"]["profiles"]:
        assert "error" not in r and finite(r["estimate_gib"]) and r["peak_gib"] is None
        assert r["output_shape"][-1] == 3
    steps = {r["shape"]: r for r in report["train"]["steps"]}
    assert finite(steps["tiny"]["train_step_s"]) and steps["tiny"]["lora_params_m"] > 0
    assert "skipped" in steps["wan14b"]
