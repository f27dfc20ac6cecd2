"""The package's light surface: importing it (and the CLI module) pulls in no torch; the adapter
listing the Generate panel can use; the CLI's help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_importing_training_and_its_cli_loads_no_torch():
    code = (
        "import sys, core.training, core.cli.train_cmds\n"
        "from worldstudio.core.training import TrainConfig, TrainingError, parse_size\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft', 'accelerate') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_list_adapters(tmp_path):
    from worldstudio.core.training import list_adapters

    assert list_adapters(tmp_path / "none") == []
    (tmp_path / "b.safetensors").write_bytes(b"x")
    (tmp_path / "a.safetensors").write_bytes(b"x")
    (tmp_path / "a.json").write_text(json.dumps({"rank": 8, "base_model": "m"}))
    (tmp_path / ".cache").mkdir()
    out = list_adapters(tmp_path)
    assert [a["name"] for a in out] == ["a", "b"]
    assert out[0]["rank"] == 8 and out[0]["path"] == str(tmp_path / "a.safetensors")


def test_config_validation_messages():
    import pytest

    from worldstudio.core.training import TrainConfig, TrainingError, parse_size

    assert parse_size("832x480") == (832, 480)
    for text in ("830x480", "big", "0x16"):
        with pytest.raises(TrainingError, match="--size"):
            parse_size(text)
    for bad, match in (
        (dict(rank=0), "--rank"),
        (dict(name="../x"), "--name"),
        (dict(lr=-1.0), "--lr"),
        (dict(frames=10), "4k\\+1"),
        (dict(width=30), "multiple of 16"),
        (dict(timestep_sampling="x"), "--timesteps"),
    ):
        with pytest.raises(TrainingError, match=match):
            TrainConfig(clips="c", **bad).validate()


def test_cli_help():
    proc = subprocess.run(
        [sys.executable, "-m", "worldstudio", "train", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    for flag in (
        "--clips",
        "--model",
        "--steps",
        "--rank",
        "--lr",
        "--size",
        "--frames",
        "--resume",
    ):
        assert flag in proc.stdout
