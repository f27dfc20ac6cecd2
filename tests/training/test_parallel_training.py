"""``worldstudio train --gpus N`` (core.training.parallel): two CPU worker processes started by
torchrun, data-parallel with gloo through accelerate, on the tiny VACE model; a failure inside
the workers comes back as one line; counts and shardings this machine cannot run are refused
before any worker starts. (accelerate shards with FSDP only on accelerators: that path needs
CUDA GPUs and is not run here.)"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from worldstudio.core.cli import main
from worldstudio.core.runtime import threads
from worldstudio.core.training import TrainConfig, TrainingError
from worldstudio.core.training.parallel import choose_sharding, config_from_json

ARGS = ["--steps", "3", "--size", "32x32", "--frames", "9", "--rank", "4", "--lr", "1e-2"]
ARGS += ["--checkpoint-every", "2", "--sample-every", "0", "--warmup", "0", "--quiet"]


def test_two_workers_train_one_adapter(train_env, clip_dir, new_project, capsys):
    project = new_project()
    argv = ["train", str(project), "--clips", str(clip_dir), *ARGS, "--name", "two"]
    assert main([*argv, "--gpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "adapter" in out and "two.safetensors" in out
    loras = project / "loras"
    rows = list(csv.DictReader(open(loras / "two" / "loss.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    meta = json.loads((loras / "two.json").read_text())
    assert meta["steps"] == 3 and meta["batch_size"] == 2  # one clip window per worker a step
    # each worker wrote its random state into the checkpoint
    checkpoint = loras / "two" / "checkpoint-2"
    assert {p.name for p in checkpoint.glob("rng-*.safetensors")} == {
        "rng-0.safetensors",
        "rng-1.safetensors",
    }
    # the LoRA trained: its B matrices start at zero and have moved
    state = load_file(loras / "two.safetensors")
    b = [v for k, v in state.items() if "lora_B" in k]
    assert b and any(float(t.abs().max()) > 0 for t in b)


def test_a_failure_inside_the_workers_is_one_line(train_env, tmp_path, new_project, capsys):
    clips = tmp_path / "broken"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"not a video")
    (clips / "a.txt").write_text("a caption\n")
    argv = ["train", str(new_project()), "--clips", str(clips), *ARGS, "--gpus", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --clips: none of the 1 clips")


@pytest.mark.parametrize(
    ("extra", "cuda", "message"),
    [
        (["--gpus", "0"], 0, "error: --gpus must be at least 1, got 0"),
        (["--gpus", "3"], 0, "error: --gpus 3: this machine has no CUDA GPU, and its CPU has 2"),
        (["--gpus", "2"], 1, "error: --gpus 2: this machine has 1 CUDA GPU"),
        (["--gpus", "2", "--sharding", "fsdp"], 0, "error: --sharding fsdp needs CUDA GPUs"),
    ],
)
def test_what_this_machine_cannot_run_is_refused(
    train_env, clip_dir, new_project, capsys, monkeypatch, extra, cuda, message
):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    project = new_project()
    assert main(["train", str(project), "--clips", str(clip_dir), *ARGS, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (project / "loras").exists() or not any((project / "loras").iterdir())


def test_sharding_choice_and_the_config_round_trip():
    assert choose_sharding("auto", "cuda", 2) == "fsdp"
    assert choose_sharding("auto", "cpu", 2) == "ddp"
    assert choose_sharding("ddp", "cuda", 4) == "ddp"
    assert choose_sharding("fsdp", "cuda", 1) == "none"
    with pytest.raises(TrainingError, match="expected one of auto, fsdp, ddp"):
        choose_sharding("zero3", "cuda", 2)
    config = TrainConfig(clips="/clips", sample_prompts=("a", "b"), target_modules=("to_q",))
    assert config_from_json(json.loads(json.dumps(config.to_json()))) == config


def test_fsdp_shards_the_blocks_of_the_lora_model(train_env, tiny_vace_folder, new_project):
    """What can be checked of the FSDP path without a GPU: the trainer's FSDP2 plugin makes each
    main and control block of the tiny VACE transformer (with its LoRA) one shard unit."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    from worldstudio.core.training.model import add_lora, inspect_model, load_transformer
    from worldstudio.core.training.trainer import Trainer

    trainer = Trainer(new_project(), TrainConfig(clips="/clips"), fsdp=True)
    plugin = trainer._fsdp_plugin()
    assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert Trainer(new_project("q.wsproj"), TrainConfig(clips="/c"))._fsdp_plugin() is None
    transformer = load_transformer(inspect_model("tiny", tiny_vace_folder), torch.float32)
    add_lora(transformer, rank=4, alpha=4.0, dropout=0.0, targets=("to_q", "to_k"))
    policy = fsdp2_prepare_auto_wrap_policy(plugin, transformer)
    units = [name for name, module in transformer.named_modules() if policy(module)]
    blocks = [f"blocks.{i}" for i in range(len(transformer.blocks))]
    controls = [f"vace_blocks.{i}" for i in range(len(transformer.vace_blocks))]
    assert sorted(units) == sorted(blocks + controls)
