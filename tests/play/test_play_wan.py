"""Play with wan-vace: the tiny random-weight VACE pipeline from the fake hub (the app's own
loading), a step-distillation-style preset (few steps, no guidance, a LoRA) chosen by name or
used by default, settings given explicitly winning over it."""

from __future__ import annotations

import json

import pytest

from tests.generation.engine_support import H, W, demo_project, torch_one_thread
from tests.generation.test_wan_backends import lora_file  # noqa: F401 - a fixture
from worldstudio.core.cli import main
from worldstudio.core.play import backends
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)


@pytest.fixture
def preset(lora_file):  # noqa: F811 - the fixture imported above
    backends.register_preset("test-draft", steps=2, guidance=1.0, loras=[(str(lora_file), 0.8)])
    yield "test-draft"
    backends.unregister_preset("test-draft")


def _play(project, *more):
    args = ["play", str(project), "--actions", "(FN)(SR)", "--backend", "wan-vace"]
    args += ["--size", f"{W}x{H}", "--chunk-frames", "9", "--profile", "gpu", "--quiet"]
    args += ["--no-depth", "--ply-every", "0", *more]
    assert main(args) == 0
    runs = list_runs(ProjectFolder(project))
    return runs[-1]


def test_wan_vace_plays_with_a_named_preset_and_its_lora(
    tmp_path_factory,
    tmp_path,
    wan_env,
    preset,
    lora_file,  # noqa: F811
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    run = _play(project, "--preset", preset)
    meta = run.read_meta()
    s = meta["settings"]
    assert meta["status"] == "complete" and meta["backend"] == "wan-vace"
    assert meta["model_id"] == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    assert (s["steps"], s["guidance"], s["frames_per_round"]) == (2, 1.0, 9)
    assert s["loras"] == [[str(lora_file), 0.8]]
    assert meta["rounds_done"] == 2  # (FN)(SR): 17 frames, 2 chunks of 9
    record = json.loads((run.path / "play" / "play.json").read_text())
    assert record["preset"] == preset and record["chunk_frames"] == 9

    # explicit settings win over the preset's
    run = _play(project, "--preset", preset, "--steps", "3")
    assert run.read_meta()["settings"]["steps"] == 3


def test_wan_vace_plays_with_its_play_preset_when_it_is_installed(
    tmp_path_factory,
    tmp_path,
    wan_env,
    monkeypatch,
):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    monkeypatch.setitem(backends.PLAY_PRESET, "wan-vace", "test-play-default")
    backends.register_preset("test-play-default", steps=1, guidance=1.0)
    try:
        run = _play(project)
    finally:
        backends.unregister_preset("test-play-default")
    s = run.read_meta()["settings"]
    assert (s["steps"], s["guidance"]) == (1, 1.0)
    assert json.loads((run.path / "play" / "play.json").read_text())["preset"] == (
        "test-play-default"
    )
    # without it, the project's settings (nothing of a preset)
    fields, used = backends.run_fields("wan-vace")
    assert fields == {} and used is None
