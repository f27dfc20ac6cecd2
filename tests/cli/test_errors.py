"""What the command line says when something goes wrong: a user's error is one ``error:`` line
and exit status 2; a bug is one ``internal error`` line naming the command and a crash log
(traceback and versions), exit status 1; ``--debug`` shows the traceback instead."""

from __future__ import annotations

import shutil

import pytest

from worldstudio.core.cli import main
from worldstudio.core.geometry.actions import MAX_STEPS
from worldstudio.core.project import load_project
from worldstudio.core.project.model import Project


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    from tests.interop.helpers import make_project

    root = tmp_path_factory.mktemp("errors") / "p.wsproj"
    make_project(root, rounds=1, fpr=17)
    return root


@pytest.fixture
def project(template, tmp_path):
    target = tmp_path / "p.wsproj"
    shutil.copytree(template, target)
    return target


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--actions", ""], "the action string is empty"),
        (["--actions", "   "], "the action string is empty"),
        (["--actions", "(FN)", "--frames-per-step", "100000"], "frames per step"),
        (["--actions", "(FN)", "--step-length", "1e308"], "step length"),
        (["--actions", "(FN)", "--step-length", "nan"], "finite"),
        (["--actions", "(FN)" * (MAX_STEPS + 1)], f"more than {MAX_STEPS} steps"),
        (["--actions", "(FN)(" + "x" * 100_000], "missing ')'"),
        (["--actions", "(FN)" * 1000, "--frames-per-step", "57600"], "more than the 500000 frames"),
        (["--preset", "orbit", "--set", "n_keyframes=100000000"], "more than the 10000 keyframes"),
        (["--preset", "orbit", "--set", "degrees=1e308"], "more than the 10000 keyframes"),
        (["--preset", "pan", "--set", "degrees=1e308"], "more than the 10000 keyframes"),
        (["--preset", "orbit", "--set", "seconds=1e9"], "transition"),
        (["--preset", "truck-out-and-back", "--set", "max_distance=1e308"], "raise the step"),
        (["--preset", "turn-away-and-back", "--set", "seconds_turn=1e308"], "frames a path"),
        (["--preset", "orbit", "--set", "n_keyframes=" + "9" * 5000], "n_keyframes"),
    ],
)
def test_bad_path_options_are_one_line_and_change_nothing(capsys, project, options, says):
    before = (project / "project.json").read_bytes()
    code, _out, err = run(capsys, "path", project, *options)
    line = one_error(err)
    assert code == 2 and line.startswith("error: ") and says in line
    assert len(line) < 400
    assert (project / "project.json").read_bytes() == before


def test_the_longest_action_string_allowed_works(capsys, project):
    code, out, err = run(capsys, "path", project, "--actions", "(FN)(fLL)" * (MAX_STEPS // 2))
    assert code == 0, err
    assert len(load_project(project).camera_path.keyframes) == MAX_STEPS + 1
    assert run(capsys, "info", project)[0] == 0


def _boom(args):
    raise ZeroDivisionError("a bug in a command")


@pytest.fixture
def buggy_info(monkeypatch):
    from worldstudio.core.cli import project_cmds

    monkeypatch.setattr(project_cmds, "cmd_info", _boom)


def test_an_internal_error_names_the_command_and_a_crash_log(capsys, project, buggy_info):
    code, _out, err = run(capsys, "info", project)
    line = one_error(err)
    assert code == 1
    assert line.startswith("internal error in `worldstudio info`: ZeroDivisionError: a bug")
    assert "--debug" in line
    log = line.split("details in ", 1)[1].split(" (rerun", 1)[0]
    text = open(log, encoding="utf-8").read()
    assert "Traceback" in text and "ZeroDivisionError: a bug in a command" in text
    assert "python:" in text and "numpy:" in text and "pydantic:" in text


def test_debug_shows_the_traceback_anywhere_on_the_line(capsys, project, buggy_info):
    code, _out, err = run(capsys, "info", project, "--debug")
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err
    assert "details in" not in err


def test_a_crash_log_that_cannot_be_written_is_said(capsys, project, buggy_info, monkeypatch):
    blocker = project / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("WORLDSTUDIO_CRASH_DIR", str(blocker / "crashes"))
    code, _out, err = run(capsys, "info", project)
    assert code == 1 and "the crash log could not be written" in one_error(err)


def test_user_errors_stay_exit_2(capsys, tmp_path):
    code, _out, err = run(capsys, "info", tmp_path / "nothing-here")
    assert code == 2 and one_error(err).startswith("error: ")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.json").write_text(Project().model_dump_json()[:-5])
    code, _out, err = run(capsys, "info", tmp_path / "p")
    assert code == 2 and "not valid JSON" in one_error(err)
