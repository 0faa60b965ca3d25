"""Bad answers are refused before anything is written, with the option, value and rule named."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from .conftest import TEMPLATE_ROOT

REFUSED = [
    ("project_slug", "123 bad!"),
    ("project_slug", "Billing-Service"),
    ("project_slug", "billing--service"),
    ("project_slug", "../escape"),
    ("project_slug", "/tmp/absolute"),
    ("package_name", "class"),
    ("package_name", "9lives"),
    ("package_name", "billing-service"),
    ("package_name", "asyncio"),
    ("package_name", "arq"),
    ("package_name", "redis"),
    ("package_name", "tests"),
    ("redis_port", "0"),
    ("redis_port", "99999"),
    ("redis_port", "63 79"),
    ("redis_port", "-1"),
    ("author_email", "not-an-address"),
    ("author_email", 'a"b@example.com'),
    ("project_name", 'Say "hi"'),
    ("project_name", "Back\\slash"),
    ("description", "two\nlines"),
    ("author_name", ""),
]


def cookiecutter_cli(output_dir: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """Bake as a user does, `cookiecutter --no-input <template> -o <dir> option=value ...`."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
    return subprocess.run(
        [*command, "-o", str(output_dir), *answers], capture_output=True, text=True, timeout=120
    )


def refused_bake(output_dir: Path, **answers: str) -> None:
    """Bake in-process (quicker than the CLI) and require that the pre-generation hook refuses."""
    with pytest.raises(FailedHookException):
        cookiecutter(
            str(TEMPLATE_ROOT), no_input=True, output_dir=str(output_dir), extra_context=answers
        )


@pytest.mark.parametrize(("option", "value"), REFUSED, ids=lambda item: repr(item))
def test_bad_answer_is_refused_and_named(tmp_path: Path, capfd, option: str, value: str) -> None:
    refused_bake(tmp_path, **{option: value})

    assert f"  {option}={value!r}: " in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_reported_in_one_message(tmp_path: Path) -> None:
    result = cookiecutter_cli(
        tmp_path, "project_slug=123 bad!", "package_name=class", "redis_port=99999"
    )

    assert result.returncode != 0
    message = result.stderr[result.stderr.index("Cannot generate the project") :]
    assert "3 option(s) are invalid" in message
    for named in ("project_slug='123 bad!'", "package_name='class'", "redis_port='99999'"):
        assert named in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_choice_on_the_command_line_is_refused_by_cookiecutter(tmp_path: Path) -> None:
    # cookiecutter itself checks choice options given on the command line, before any hook runs.
    result = cookiecutter_cli(tmp_path, "cache_backend=mongo")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ValueError: mongo provided for choice variable cache_backend")
    assert list(tmp_path.iterdir()) == []


def test_unknown_choice_in_a_replay_file_is_refused_by_the_hook(tmp_path: Path) -> None:
    # A replay file skips cookiecutter's own choice check: the hook is the one that catches it.
    answers = {
        "project_name": "Replayed",
        "project_slug": "replayed",
        "package_name": "replayed",
        "description": "From a replay file.",
        "author_name": "Someone",
        "author_email": "",
        "python_version": "3.9",
        "cache_backend": "mongo",
        "redis_port": "6379",
        "_template": str(TEMPLATE_ROOT),
    }
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps({"cookiecutter": answers}))
    output = tmp_path / "out"
    output.mkdir()

    command = [sys.executable, "-m", "cookiecutter", "--replay-file", str(replay)]
    result = subprocess.run(
        [*command, str(TEMPLATE_ROOT), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "python_version='3.9': must be one of 3.11, 3.12, 3.13" in result.stderr
    assert "cache_backend='mongo': must be one of redis, falkordb, none" in result.stderr
    assert list(output.iterdir()) == []


def test_jinja_in_an_answer_is_rendered_before_the_hook_checks_it(tmp_path: Path, capfd) -> None:
    # cookiecutter renders `{{ }}` inside answers first: the hook sees (and refuses) the result.
    refused_bake(tmp_path, description="{{ '\"' * 3 }}")

    assert """description='\"\"\"': must not contain double quotes""" in capfd.readouterr().err


def test_jinja_in_an_answer_reaches_the_project_rendered(cookies) -> None:
    result = cookies.bake(extra_context={"project_name": "Service {{ 6 * 7 }}"})

    assert result.exit_code == 0, result.exception
    assert result.project_path.name == "service-42"
    assert (result.project_path / "README.md").read_text().startswith("# Service 42\n")
