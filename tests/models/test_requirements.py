"""A job names every model it needs that is missing, before it starts: name, repo id, size,
total, and one command that fetches them all (`worldstudio models download --for JOB ...`)."""

from __future__ import annotations

import pytest

from worldstudio.core.cli import main
from worldstudio.core.models import find_model
from worldstudio.core.models.requirements import (
    MissingModelsError,
    check_job_models,
    fetch_command,
    missing_models,
    required_models,
)

VACE = "wan2.1-vace-1.3b"
DEPTH = "depth-anything-v2-small"
SAM = "sam2.1-tiny"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    from worldstudio.core.models import clear_local_dirs

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORLDSTUDIO_CONFIG", str(tmp_path / "config"))
    clear_local_dirs()


@pytest.fixture
def project(tmp_path):
    from tests.interop.helpers import make_project

    root = tmp_path / "p.wsproj"
    make_project(root, rounds=1, fpr=17)
    return root


def names(models) -> list[str]:
    return [m.name for m in models]


def test_what_each_job_declares(project):
    assert names(required_models("generate", backend="wan-vace")) == [VACE, DEPTH, SAM]
    assert names(required_models("generate", backend="wan-i2v")) == [
        "wan2.1-i2v-14b-480p",
        DEPTH,
        SAM,
    ]
    assert required_models("generate", backend="geometry") == []
    assert names(required_models("generate", backend="geometry", lifter="model")) == [DEPTH, SAM]
    assert names(
        required_models("generate", backend="wan-vace", model="Wan-AI/Wan2.1-VACE-14B-diffusers")
    ) == ["wan2.1-vace-14b", DEPTH, SAM]
    assert required_models("generate", project=project) == []  # the project's geometry backend
    assert names(required_models("new")) == [DEPTH]
    assert names(required_models("new", depth_model="depth-pro")) == ["depth-pro"]
    assert names(required_models("segment")) == [SAM]
    assert names(required_models("train", project=project)) == [VACE]


def test_a_local_folder_needs_nothing_and_an_unknown_id_is_said(tmp_path):
    assert names(required_models("generate", backend="wan-vace", model=str(tmp_path))) == [
        DEPTH,
        SAM,
    ]
    from worldstudio.core.models import ModelError

    with pytest.raises(ModelError, match="unknown model 'no/such-model'"):
        required_models("generate", backend="wan-vace", model="no/such-model")
    with pytest.raises(ModelError, match="unknown job"):
        required_models("dance")


@pytest.fixture
def depth_and_sam_only(fake_hub, empty_cache):
    """An empty hub cache, and the tiny depth and SAM 2 models as local folders."""
    from tests import tiny_models
    from worldstudio.core.models import clear_local_dirs, set_local_dir

    set_local_dir(DEPTH, tiny_models.tiny_model_folder(tiny_models.DA_SMALL))
    set_local_dir(SAM, tiny_models.tiny_model_folder(tiny_models.SAM21_TINY))
    yield
    clear_local_dirs()


def test_missing_models_reads_the_cache(depth_and_sam_only):
    needed = required_models("generate", backend="wan-vace")
    assert names(missing_models(needed)) == [VACE]


def test_offline_every_missing_model_is_named_with_one_command(empty_cache):
    with pytest.raises(MissingModelsError) as exc:
        check_job_models("generate", backend="wan-vace")
    err = exc.value
    assert names(err.models) == [VACE, DEPTH, SAM]
    assert err.command == "worldstudio models download --for generate --backend wan-vace"
    text = str(err)
    assert "\n" not in text and "3 models" in text and "20 GB in all" in text
    for name in (VACE, DEPTH, SAM):
        info = find_model(name)
        assert info.repo_id in text and info.size_text in text
    assert err.command in text


def test_one_missing_model_gets_its_own_download_command(depth_and_sam_only):
    with pytest.raises(MissingModelsError) as exc:
        check_job_models("generate", backend="wan-vace")
    assert exc.value.command == f"worldstudio models download {VACE}"
    assert str(exc.value).startswith(f"model {VACE} (Wan-AI/Wan2.1-VACE-1.3B-diffusers, 19 GB")
    assert f"`worldstudio models download {VACE}`" in str(exc.value)


def test_fetch_command_spells_the_options():
    assert (
        fetch_command(
            "generate", project="my project", backend="wan-vace", model=find_model(VACE).repo_id
        )
        == f"worldstudio models download --for generate --project 'my project' --backend wan-vace --model {VACE}"
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from worldstudio.core.oracle.demo_project import create_demo_project

    out = tmp_path_factory.mktemp("demo") / "demo.wsproj"
    create_demo_project(out, width=160, height=96)
    return out


def test_generate_names_all_missing_models_before_any_work(empty_cache, demo, capsys, monkeypatch):
    from worldstudio.core.generation import memory

    # the run's other checks pass here (the CPU on purpose, memory to spare), so the missing
    # models are its one problem
    monkeypatch.setenv("WORLDSTUDIO_DEVICE", "cpu")
    monkeypatch.setattr(memory, "host_memory", lambda: 1 << 40)
    project = demo
    before = sorted(p.name for p in (project / "runs").iterdir())
    rc = main(["generate", str(project), "--backend", "wan-vace"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    (line,) = err.strip().splitlines()  # no progress bar line, no log line before the error
    assert line.startswith("error: generate with backend wan-vace and lifter model needs 3 models")
    for name in (VACE, DEPTH, SAM):
        assert name in line
    assert (
        f"worldstudio models download --for generate --project {project} --backend wan-vace" in line
    )
    assert sorted(p.name for p in (project / "runs").iterdir()) == before  # no run folder


def test_the_named_command_lists_the_same_models(empty_cache, project, capsys):
    rc = main(
        [
            "models",
            "download",
            "--for",
            "generate",
            "--project",
            str(project),
            "--backend",
            "wan-vace",
        ]
    )
    _out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert rc == 2 and all(n in line for n in (VACE, DEPTH, SAM)) and "HF_HUB_OFFLINE" in line


def test_download_for_a_job_that_needs_nothing(empty_cache, capsys):
    assert main(["models", "download", "--for", "generate", "--backend", "geometry"]) == 0
    assert "needs no model" in capsys.readouterr().out
    assert main(["models", "download", "--for", "new", "--backend", "wan-vace"]) == 2
    assert "--backend does not apply to --for new" in capsys.readouterr().err


def test_new_from_an_image_names_its_depth_model(empty_cache, tmp_path, capsys):
    from tests.reconstruct.test_new_project import PHOTO

    rc = main(
        ["new", "--image", str(PHOTO), "--out", str(tmp_path / "n"), "--depth-model", "depth-pro"]
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "model depth-pro (apple/DepthPro-hf, 1.9 GB download)" in line
    assert "worldstudio models download depth-pro" in line
    assert not (tmp_path / "n").exists()
