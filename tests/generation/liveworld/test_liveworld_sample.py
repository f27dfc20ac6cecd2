"""A LiveWorld user runs their own sample in the studio: `worldstudio import liveworld case.yaml`
(reconstructed with the tiny depth model) then `worldstudio generate --backend liveworld` with
the tiny LiveWorld model, both from the fake hub: the run has the sample's rounds, and every call
the sample's prompts (scene_text and fg_text; the storyline's scene for the event camera)."""

from __future__ import annotations

import json

import numpy as np

from tests.interop.helpers import write_sample
from worldstudio.core.cli import main
from worldstudio.core.generation.backends.liveworld.conditioning import liveworld_prompt
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

W, H, F = 64, 48, 5
ROUNDS = {
    "0": {
        "scene_text": "a quiet courtyard with a fountain",
        "fg_text": "a cat walks to the fountain",
    },
    "1": {"scene_text": "the courtyard in the evening", "fg_text": "the cat sits on the rim"},
}
STORY = {
    "entities": ["cat"],
    "scene_text": "a courtyard seen from its gate",
    "steps": {"0": "the cat walks", "1": "the cat sits"},
}


def test_import_a_sample_then_generate_with_liveworld(tmp_path, liveworld_env, capsys):
    folder = tmp_path / "case"
    yaml_path = write_sample(
        folder,
        rounds=2,
        iter_input=ROUNDS,
        extra={"storyline_file": "story.json", "runtime": {"seed": 9}},
    )
    (folder / "story.json").write_text(json.dumps(STORY))
    project = tmp_path / "case.wsproj"
    assert main(["import", "liveworld", str(yaml_path), "--out", str(project)]) == 0
    p = ProjectFolder(project).load()
    assert not p.scene.pending  # reconstructed with the tiny depth model
    g = p.generation
    assert (g.width, g.height, g.fps, g.frames_per_round) == (832, 480, 16, 65)
    assert (g.observer_strength, g.monitor_strength, g.prompt_entities) == (1.0, 0.4, "all")
    capsys.readouterr()

    args = ["generate", str(project), "--backend", "liveworld", "--steps", "1"]
    args += ["--size", f"{W}x{H}", "--frames-per-round", str(F), "--profile", "gpu", "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    (run,) = list_runs(ProjectFolder(project))
    meta = run.read_meta()
    assert meta["status"] == "complete" and meta["backend"] == "liveworld"
    assert meta["rounds_total"] == 2 and meta["settings"]["seed"] == 9
    assert meta["model_id"] is None  # LiveWorld's full-step model
    for r, sample in ROUNDS.items():
        info = run.read_round(int(r))
        observer = info["prompts"]["observer"]
        assert observer == f"scene: {sample['scene_text']}; foreground: {sample['fg_text']}"
        assert liveworld_prompt(observer) == observer
        # the event camera: the storyline's scene, the entity's prompt (the round's fg_text)
        assert info["prompts"]["monitor:" + p.monitors[0].id] == (
            f"scene: {STORY['scene_text']}; foreground: {sample['fg_text']}"
        )
        assert info["inputs"]["observer"]["strength"] == 1.0
        assert info["inputs"]["observer"]["context_frames"] == (F if r == "1" else 0)
        frames = np.load(run.observer_npy(int(r)))
        assert frames.shape == (F, H, W, 3) and frames.std() > 0
