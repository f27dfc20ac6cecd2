"""`worldstudio play --backend liveworld`: LiveWorld's few-step model by default (the tiny model
from the fake hub, loaded by the app's own code), two 5-frame chunks with the demo's monitor."""

from __future__ import annotations

import json

import numpy as np

from tests.generation.engine_support import H, W, demo_project
from worldstudio.core.cli import main
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs


def test_play_with_liveworld_uses_its_few_step_model(tmp_path_factory, tmp_path, liveworld_env):
    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    args = ["play", str(project), "--actions", "(FN)", "--backend", "liveworld"]
    args += ["--chunk-frames", "5", "--size", f"{W}x{H}", "--profile", "gpu", "--quiet"]
    assert main([*args, "--ply-every", "0"]) == 0
    (run,) = list_runs(ProjectFolder(project))
    meta = run.read_meta()
    assert meta["status"] == "complete" and meta["backend"] == "liveworld"
    assert meta["model_id"] == "liveworld-4step" and meta["rounds_done"] == 2
    assert meta["cameras"]["observer"]["source"] == "play"
    for r in range(2):
        obs = np.load(run.observer_npy(r))
        assert obs.shape == (5, H, W, 3) and obs.std() > 0
    record = json.loads((run.path / "play" / "play.json").read_text())
    assert record["backend"] == "liveworld" and record["frames"] == 10
    assert record["files"]["depth_frames"] == 10
