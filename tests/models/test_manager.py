"""The model manager and `worldstudio models`: presence in the (fake) hub cache, local-folder
overrides (CLI flag and config file), offline failures, downloads with progress."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests import tiny_models
from worldstudio.core.cli import main
from worldstudio.core.errors import Cancelled
from worldstudio.core.jobs import CancelToken, JobContext
from worldstudio.core.models import (
    ModelError,
    ModelMissingError,
    download,
    download_job,
    find_model,
    manager,
    model_status,
    resolve,
    set_local_dir,
)

DA = "depth-anything-v2-small"

pytestmark = pytest.mark.usefixtures("models_env")


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ----------------------------------------------------------------------------- presence
def test_models_in_the_fake_cache_are_downloaded_the_others_missing(fake_hub):
    st = model_status(DA)
    assert st.status == "downloaded" and st.present
    assert st.path.parent.parent.name == "models--depth-anything--Depth-Anything-V2-Small-hf"
    assert st.path.name == tiny_models.revision(tiny_models.DA_SMALL)
    assert model_status("apple/DepthPro-hf").present
    assert model_status("sam2.1-tiny").present
    assert model_status("sam2.1-large").status == "missing"
    assert model_status("wan2.1-vace-14b").status == "missing"
    assert resolve(DA) == st.path


def test_a_snapshot_without_weights_is_incomplete(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text('{"model_type": "depth_anything"}')
    tiny_models.install_snapshot(cache, "depth-anything/Depth-Anything-V2-Small-hf", src)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert model_status(DA).status == "incomplete"
    with pytest.raises(ModelMissingError):
        resolve(DA)


def test_sharded_weights_need_every_shard(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"x")
    assert not manager.is_complete(folder)
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"x")
    assert manager.is_complete(folder)


def test_diffusers_layout_check(tmp_path):
    folder = tmp_path / "pipe"
    (folder / "transformer").mkdir(parents=True)
    (folder / "scheduler").mkdir()
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "WanVACEPipeline",
                "transformer": ["diffusers", "WanVACETransformer3DModel"],
                "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                "image_encoder": [None, None],
            }
        )
    )
    assert not manager.is_complete(folder, "diffusers")
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    assert manager.is_complete(folder, "diffusers")


def test_a_checkpoint_entry_needs_every_named_file(tmp_path, monkeypatch):
    """LiveWorld's raw .pt checkpoints: present only when every file of the entry is there."""
    src = tmp_path / "src" / "ckpts" / "state_adapter"
    src.mkdir(parents=True)
    (src / "model.pt").write_bytes(b"x")
    cache = tmp_path / "hub"
    snap = tiny_models.install_snapshot(cache, "ZichengD/LiveWorld", tmp_path / "src")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert model_status("liveworld").status == "incomplete"
    (snap / "ckpts" / "lora").mkdir()
    (snap / "ckpts" / "lora" / "model.pt").write_bytes(b"x")
    st = model_status("liveworld")
    assert st.status == "downloaded" and resolve("liveworld") == snap
    assert not manager.is_complete(snap, "checkpoint")  # an entry with no files is never complete


# ----------------------------------------------------------------------------- offline
def test_a_missing_model_fails_at_once_offline_with_one_clear_message():
    t0 = time.perf_counter()
    with pytest.raises(ModelMissingError) as err:
        resolve("sam2.1-large")
    assert time.perf_counter() - t0 < 1.0
    msg = str(err.value)
    assert "\n" not in msg
    assert "sam2.1-large" in msg and "facebook/sam2.1-hiera-large" in msg
    assert "898 MB" in msg  # how big
    assert "worldstudio models download sam2.1-large" in msg  # how to get it
    assert "HF_HUB_OFFLINE" in msg


def test_no_network_is_detected_quickly(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(ModelMissingError) as err:
        resolve("sam2.1-large")
    assert time.perf_counter() - t0 < 5.0
    assert "no network" in str(err.value) and "127.0.0.1" in str(err.value)


def test_cli_download_offline_is_one_line_and_exit_2(capsys):
    rc, out, err = run(capsys, "models", "download", "depth-pro", "sam2.1-large")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download model sam2.1-large")
    assert "HF_HUB_OFFLINE is set" in lines[0] and "898 MB" in lines[0]
    assert "worldstudio models download sam2.1-large" in lines[0]
    assert "depth-pro: already downloaded" in out  # the present one is skipped, not fetched


def test_cli_unknown_model(capsys):
    rc, _, err = run(capsys, "models", "download", "depth-anything-v9")
    assert rc == 2 and "unknown model 'depth-anything-v9'" in err and DA in err


# ----------------------------------------------------------------------------- list
def test_cli_list_shows_everything(capsys, fake_hub):
    rc, out, _ = run(capsys, "models", "list")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["NAME", "KIND", "SIZE", "MEMORY", "LICENCE", "STATUS"]
    row = next(line for line in lines if line.startswith("depth-anything-v2-small *"))
    assert "depth" in row and "~99 MB" in row and "Apache-2.0" in row and "downloaded" in row
    row = next(line for line in lines if line.startswith("wan2.1-vace-14b"))
    assert "video" in row and "missing" in row and "Wan-AI/Wan2.1-VACE-14B-diffusers" in row
    row = next(line for line in lines if line.startswith("depth-pro"))
    assert "research only" in row
    assert any("research use only" in line for line in lines)
    assert str(fake_hub) in out


def test_cli_list_json_and_kind(capsys):
    rc, out, _ = run(capsys, "models", "list", "--kind", "segmentation", "--json")
    assert rc == 0
    rows = json.loads(out)
    assert [r["repo_id"] for r in rows] == [
        "facebook/sam2.1-hiera-tiny",
        "facebook/sam2.1-hiera-small",
        "facebook/sam2.1-hiera-base-plus",
        "facebook/sam2.1-hiera-large",
    ]
    assert rows[0]["status"] == "downloaded" and rows[0]["path"]
    assert rows[-1]["status"] == "missing" and rows[-1]["path"] is None
    assert all(r["kind"] == "segmentation" for r in rows)


# ----------------------------------------------------------------------------- overrides
def _empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))


def test_model_dir_flag_overrides_the_cache(capsys, monkeypatch, tmp_path):
    _empty_cache(monkeypatch, tmp_path)
    local = tmp_path / "my-da"
    shutil.copytree(tiny_models.tiny_model_folder(tiny_models.DA_SMALL), local)
    assert model_status(DA).status == "missing"
    rc, out, _ = run(capsys, "models", "list", "--kind", "depth", "--model-dir", f"{DA}={local}")
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith(DA))
    assert " local " in row
    assert f"{DA}: local folder {local}" in out
    assert resolve(DA) == local  # the flag stays for the rest of the process
    rc, out, _ = run(capsys, "models", "download", DA, "--model-dir", f"{DA}={local}")
    assert rc == 0 and "nothing to download" in out


def test_model_dir_flag_errors(capsys, tmp_path):
    rc, _, err = run(capsys, "models", "list", "--model-dir", "nonsense")
    assert rc == 2 and "--model-dir: expected NAME=PATH" in err
    rc, _, err = run(capsys, "models", "list", "--model-dir", f"nope={tmp_path}")
    assert rc == 2 and "unknown model 'nope'" in err


def test_a_local_folder_without_the_model_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    set_local_dir(DA, empty)
    st = model_status(DA)
    assert st.status == "local-missing" and not st.present
    with pytest.raises(ModelError) as err:
        resolve(DA)
    assert str(empty) in str(err.value) and "config.json" in str(err.value)


def test_config_file_override(capsys, monkeypatch, tmp_path):
    _empty_cache(monkeypatch, tmp_path)
    local = tmp_path / "models" / "da"
    shutil.copytree(tiny_models.tiny_model_folder(tiny_models.DA_SMALL), local)
    rc, out, _ = run(capsys, "models", "set-dir", DA, str(local))
    assert rc == 0
    cfg = manager.config_file()
    assert json.loads(cfg.read_text())["local_dirs"][DA] == str(local.resolve())
    st = model_status("depth-anything/Depth-Anything-V2-Small-hf")
    assert st.status == "local" and st.path == local.resolve() and str(cfg) in st.where
    # relative paths in the config file are relative to the file's folder
    cfg.write_text(json.dumps({"local_dirs": {DA: "../models/da"}}))
    assert model_status(DA).path.resolve() == local.resolve()
    rc, out, _ = run(capsys, "models", "set-dir", DA)
    assert rc == 0 and model_status(DA).status == "missing"
    rc, _, err = run(capsys, "models", "set-dir", DA, str(tmp_path))
    assert rc == 2 and "does not hold model" in err


def test_broken_config_file_names_the_file(tmp_path):
    cfg = manager.config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("{not json")
    with pytest.raises(ModelError, match="models.json: cannot be read as JSON"):
        model_status(DA)
    cfg.write_text(json.dumps({"local_dirs": {"nope": "/x"}}))
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        model_status(DA)


# ----------------------------------------------------------------------------- download
@pytest.fixture
def online(monkeypatch):
    """Pretend the hub is reachable, and serve downloads from the tiny models."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(manager, "_can_reach_hub", lambda timeout=3.0: (True, ""))
    calls = []
    real = huggingface_hub.snapshot_download

    def fake_snapshot_download(
        repo_id,
        *,
        cache_dir,
        allow_patterns=None,
        force_download=False,
        tqdm_class=None,
        local_files_only=False,
        **kw,
    ):
        if local_files_only:
            return real(repo_id, cache_dir=cache_dir, local_files_only=True)
        calls.append((repo_id, tuple(allow_patterns or ())))
        if tqdm_class is not None:  # as huggingface_hub drives its byte bar
            bar = tqdm_class(
                desc="Reconstructing (incomplete total...)",
                total=0,
                initial=0,
                unit="B",
                unit_scale=True,
            )
            bar.total = 3000
            for _ in range(3):
                bar.update(1000)
            bar.close()
        src = tiny_models.tiny_model_folder(tiny_models.DA_SMALL)
        return str(tiny_models.install_snapshot(Path(cache_dir), repo_id, src))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return calls


def test_download_reports_bytes_and_lands_in_the_cache(online, monkeypatch, tmp_path):
    _empty_cache(monkeypatch, tmp_path)
    seen = []
    path = download(DA, lambda done, total, msg: seen.append((done, total, msg)))
    assert seen[-1][:2] == (3000, 3000) and seen[0][0] == 1000 and seen[-1][2] == DA
    assert path.is_dir() and (path / "config.json").is_file()
    assert online[0][0] == "depth-anything/Depth-Anything-V2-Small-hf"
    assert "*.safetensors" in online[0][1] and "*.bin" not in online[0][1]
    # the manager now sees it through the ordinary cache lookup (real snapshot_download offline)
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    assert model_status(DA).status == "downloaded"


def test_resolve_downloads_a_missing_model_when_online(online, monkeypatch, tmp_path):
    _empty_cache(monkeypatch, tmp_path)
    path = resolve(DA)
    assert (path / "model.safetensors").is_file() and len(online) == 1
    assert resolve(DA, allow_download=False) == path  # present now: no second download


def test_cli_download_with_progress_bar(online, monkeypatch, tmp_path, capsys):
    _empty_cache(monkeypatch, tmp_path)
    rc, out, err = run(capsys, "models", "download", DA)
    assert rc == 0
    assert f"{DA}: downloading depth-anything/Depth-Anything-V2-Small-hf" in out
    assert f"{DA}: done" in out and "3.00k" in err  # tqdm's byte bar on stderr


def test_download_job_progress_and_cancel(online, monkeypatch, tmp_path):
    _empty_cache(monkeypatch, tmp_path)
    reports = []
    path = download_job(DA)(JobContext(reports.append))
    assert path.is_dir()
    assert [r.done for r in reports if r.kind == "progress"] == [1000, 2000, 3000]
    assert any(r.kind == "log" and "99 MB" in r.message for r in reports)

    _empty_cache(monkeypatch, tmp_path / "again")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        download_job(DA)(JobContext(cancel=token))


def test_find_model_accepts_names_and_repo_ids():
    assert find_model(DA) is find_model("depth-anything/depth-anything-v2-small-hf")
