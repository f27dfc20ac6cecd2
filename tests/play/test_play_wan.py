"""Play with wan-vace: the tiny random-weight VACE pipeline from the fake hub (the app's own
loading), played with the engine's "draft" quality preset by default (the 1.3B step-distillation
LoRA, at the tiny shape, from the fake hub: tests/conftest.py's ``wan_hub``) or with the quality
``--quality`` names; settings given explicitly win over the preset's, LoRAs given apply beside its
LoRA; without the LoRA offline, one line says how to get it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import tiny_wan
from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from tests.generation.test_wan_backends import lora_file  # noqa: F401 - a fixture
from worldstudio.core.cli import main
from worldstudio.core.generation.acceleration import DRAFT_RECIPES
from worldstudio.core.play import backends
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

DRAFT = DRAFT_RECIPES["1.3b"]  # the tiny VACE has the 1.3B's width class


def _play(project, *more):
    args = ["play", str(project), "--actions", "(FN)(SR)", "--backend", "wan-vace"]
    args += ["--size", f"{W}x{H}", "--chunk-frames", "9", "--profile", "gpu", "--quiet"]
    args += ["--no-depth", "--ply-every", "0", *more]
    assert main(args) == 0
    runs = list_runs(ProjectFolder(project))
    return runs[-1]


def _record(run) -> dict:
    return json.loads((run.path / "play" / "play.json").read_text())


def test_wan_vace_plays_with_the_draft_preset_and_its_lora(
    tmp_path_factory,
    tmp_path,
    wan_env,
    lora_file,  # noqa: F811
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    run = _play(project, "--lora", f"{lora_file}:0.8")
    meta = run.read_meta()
    s = meta["settings"]
    assert meta["status"] == "complete" and meta["backend"] == "wan-vace"
    assert meta["model_id"] == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    assert s["quality"] == "draft" and s["cache"] == "none"
    assert (s["steps"], s["guidance"], s["flow_shift"], s["frames_per_round"]) == (
        DRAFT.steps,
        DRAFT.guidance,
        DRAFT.flow_shift,
        9,
    )
    # the distillation LoRA from the hub, beside the one given
    (given, draft) = s["loras"]
    assert given == [str(lora_file), 0.8]
    assert draft[0].endswith(tiny_wan.DISTILL_LORA_FILE) and draft[1] == DRAFT.strength
    assert meta["rounds_done"] == 2  # (FN)(SR): 17 frames, 2 chunks of 9
    record = _record(run)
    assert record["quality"] == "draft" and record["chunk_frames"] == 9

    # explicit settings win over the preset's
    run = _play(project, "--steps", "3", "--guidance", "2.5")
    s = run.read_meta()["settings"]
    assert (s["steps"], s["guidance"], s["quality"]) == (3, 2.5, "draft")
    assert [Path(p).name for p, _ in s["loras"]] == [tiny_wan.DISTILL_LORA_FILE]


def test_another_quality_plays_without_the_distillation_lora(
    tmp_path_factory,
    tmp_path,
    wan_env,
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    g = ProjectFolder(project).load().generation
    run = _play(project, "--quality", "full")
    s = run.read_meta()["settings"]
    assert s["quality"] == "full" and s["loras"] == []
    assert (s["steps"], s["guidance"]) == (g.steps, g.guidance)  # the project's sampling
    assert _record(run)["quality"] == "full"

    # the fields a session sets: wan-vace's play quality, liveworld's few-step model, and
    # nothing for the CPU backends (the project's quality)
    assert backends.run_fields("wan-vace") == {"quality": "draft"}
    assert backends.run_fields("wan-vace", "fast", steps=4) == {"quality": "fast", "steps": 4}
    assert backends.run_fields("liveworld") == {"model": "liveworld-4step"}
    assert backends.run_fields("geometry") == {}


def test_without_the_distillation_lora_offline_one_line_says_how_to_get_it(
    tmp_path_factory, tmp_path, wan_env, monkeypatch, capsys
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    # the same hub less the distillation LoRA's repo (the model is there, its LoRA is not)
    hub = tmp_path / "hub"
    hub.mkdir()
    lora_repo = "models--" + tiny_wan.DISTILL_LORA_REPO.replace("/", "--")
    for entry in wan_env.iterdir():
        if entry.name != lora_repo:
            (hub / entry.name).symlink_to(entry)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    args = ["play", str(project), "--actions", "(FN)", "--backend", "wan-vace", "--quiet"]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "quality 'draft'" in lines[0] and "step-distillation LoRA" in lines[0]
    assert f"worldstudio models download {DRAFT.lora}" in lines[0]
    assert list_runs(ProjectFolder(project)) == []  # nothing started
