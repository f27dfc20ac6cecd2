"""`worldstudio generate`'s speed and memory flags: they reach the run (run.json records them)
and a bad or unavailable choice is one line and exit status 2, before any run folder exists."""

from __future__ import annotations

import json

import pytest

from tests.generation.engine_support import F, H, W, demo_project, torch_one_thread
from worldstudio.core.cli import main
from worldstudio.core.project import ProjectFolder
from worldstudio.core.project.runs import list_runs

_one_thread = pytest.fixture(scope="module", autouse=True)(torch_one_thread)

ARGS = ["--frames-per-round", str(F), "--size", f"{W}x{H}", "--quiet", "--rounds", "1"]


@pytest.fixture
def project(tmp_path_factory, tmp_path):
    return demo_project(tmp_path_factory, tmp_path / "demo.wsproj")


def test_the_flags_are_recorded_with_the_run(project):
    args = [
        "generate",
        str(project),
        "--backend",
        "geometry",
        "--attention",
        "sdpa",
        "--compile",
        "--quality",
        "fast",
        "--precision",
        "fp8",
        "--vae-tiling",
        "--no-colour-match",
        *ARGS,
    ]
    assert main(args) == 0
    (run,) = list_runs(ProjectFolder(project))
    s = json.loads(run.run_file.read_text())["settings"]
    assert (s["attention"], s["compile"], s["quality"], s["cache"]) == (
        "native",  # "sdpa" is its other name
        True,
        "fast",
        "taylorseer",  # the fast preset's cache
    )
    assert (s["precision"], s["vae_tiling"], s["colour_match"]) == ("fp8", True, False)


def test_without_flags_the_project_settings_apply(project):
    assert main(["generate", str(project), "--backend", "geometry", "--cache", "pab", *ARGS]) == 0
    (run,) = list_runs(ProjectFolder(project))
    s = json.loads(run.run_file.read_text())["settings"]
    assert (s["attention"], s["compile"], s["quality"], s["cache"]) == (
        "auto",
        False,
        "full",
        "pab",
    )
    assert s["colour_match"] is True and s["vae_tiling"] is None


def test_an_unknown_attention_is_one_line(project, capsys):
    code = main(["generate", str(project), "--attention", "warp-drive", *ARGS])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "attention 'warp-drive'" in err and "native" in err and "flash" in err
    assert list_runs(ProjectFolder(project)) == []


def test_an_attention_backend_that_is_not_installed_names_the_installed_ones(
    project, wan_env, capsys
):
    code = main(["generate", str(project), "--backend", "wan-vace", "--attention", "sage", *ARGS])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "attention 'sage' is not available here" in err
    assert "available: native, native-math" in err
    assert list_runs(ProjectFolder(project)) == []


def test_a_bad_choice_is_refused_by_the_parser(project, capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", str(project), "--quality", "turbo", *ARGS])
    assert info.value.code == 2
    assert "--quality" in capsys.readouterr().err
