"""Bad answers are refused before anything is written, with the option, value and rule named."""

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
    ("package_name", "test"),
    ("package_name", "__main__"),
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


def suggested_command(stderr: str) -> list[str]:
    """The `uvx cookiecutter --no-input ...` command the refusal ends with, split as a shell
    would."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("    uvx cookiecutter ")]
    return shlex.split(line)


def run_suggested(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    # This environment's cookiecutter, in place of `uvx cookiecutter`.
    command = [sys.executable, "-m", "cookiecutter", *arguments[2:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def load_pre_gen_hook() -> ModuleType:
    """The hook as a module, unrendered: its functions run without cookiecutter."""
    spec = importlib.util.spec_from_file_location(
        "pre_gen_project", TEMPLATE_ROOT / "hooks" / "pre_gen_project.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
        "api_framework": "none",
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


def test_a_derived_package_name_says_where_it_came_from_and_what_to_pass(tmp_path: Path) -> None:
    result = cookiecutter_cli(tmp_path, "project_name=2FA Service")

    assert result.returncode != 0
    assert "  package_name='2fa_service': must be a lower-case Python identifier" in result.stderr
    assert (
        "it was derived from project_slug '2fa-service', itself from project_name '2FA Service': "
        "pass package_name=<a lower-case identifier, such as twofa_service>"
    ) in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_name_test_is_refused_as_the_standard_library_package(tmp_path: Path, capfd) -> None:
    # `sys.stdlib_module_names` lacks the `test` package; the hook knows it anyway.
    refused_bake(tmp_path, project_name="Test")

    err = capfd.readouterr().err
    assert "  package_name='test': shadows the standard library's `test` module" in err
    assert "depends on" not in err
    assert "derived from project_slug 'test', itself from project_name 'Test'" in err


def test_a_name_without_letters_or_digits_is_explained_by_the_hook(tmp_path: Path) -> None:
    # slugify("!!!") is empty: cookiecutter used to fail with "directory already exists" before
    # any hook ran.
    result = cookiecutter_cli(tmp_path, "project_name=!!!")

    assert result.returncode != 0
    assert "already exists" not in result.stderr
    assert (
        "  project_slug: project_name '!!!' has no letters or digits to derive project_slug "
        "from: use some, or pass project_slug=<lower-case words joined by hyphens"
    ) in result.stderr
    assert "package_name" not in result.stderr.split("Nothing was generated")[0]
    assert list(tmp_path.iterdir()) == []


def test_a_value_derived_from_a_refused_one_is_not_refused_again(tmp_path: Path) -> None:
    result = cookiecutter_cli(tmp_path / "out", "project_slug=Billing-Service")

    assert "1 option(s) are invalid" in result.stderr
    arguments = suggested_command(result.stderr)
    assert "project_slug=<lower-case words joined by hyphens, such as billing-service>" in arguments
    assert not [argument for argument in arguments if argument.startswith("package_name=")]
    assert "left out, to be derived again: package_name from project_slug" in result.stderr


def test_the_suggested_command_keeps_every_valid_answer_and_bakes_once_filled(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    given = [
        "project_name=2FA Service",
        "cache_backend=none",
        "python_version=3.13",
        "author_name=Zoë O'Brien",
        "author_email=",
        "description=Two factors.",
        "redis_port=99999",
    ]
    result = cookiecutter_cli(output, *given)
    assert "2 option(s) are invalid" in result.stderr
    arguments = suggested_command(result.stderr)

    assert arguments[:4] == ["uvx", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
    assert arguments[4:6] == ["-o", str(output)]
    for answer in given[:-1]:
        assert answer in arguments
    marked = [argument for argument in arguments if "=<" in argument]
    assert marked == [
        "package_name=<a lower-case identifier, such as twofa_service>",
        "redis_port=<a whole number from 1 to 65535, such as 6379>",
    ]

    unfilled = run_suggested(arguments)
    assert unfilled.returncode != 0
    assert "is a placeholder from a suggested command" in unfilled.stderr
    assert list(output.iterdir()) == []

    filled = [
        {"package_name": "package_name=twofa_service", "redis_port": "redis_port=6390"}.get(
            argument.split("=")[0], argument
        )
        for argument in arguments
    ]
    baked = run_suggested(filled)
    assert baked.returncode == 0, baked.stderr
    answers = json.loads((output / "2fa-service" / ".cookiecutter.json").read_text())
    assert answers == {
        "project_name": "2FA Service",
        "project_slug": "2fa-service",
        "package_name": "twofa_service",
        "cache_backend": "none",
        "api_framework": "fastapi",
        "python_version": "3.13",
        "description": "Two factors.",
        "author_name": "Zoë O'Brien",
        "author_email": "",
        "redis_port": "6390",
    }


def test_the_hook_imports_as_functions_and_covers_every_option() -> None:
    hook = load_pre_gen_hook()
    options = json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text())

    public = [option for option in options if not option.startswith("_")]
    assert list(hook.RULES) == public
    assert list(hook.KINDS) == public


def test_the_suggested_command_repeats_checkout_and_output_dir() -> None:
    hook = load_pre_gen_hook()
    answers = {
        "project_name": "Billing",
        "project_slug": "billing",
        "package_name": "billing",
        "redis_port": "0",
        "_template": "gh:someone/cookiecutter-arq",
        "_checkout": "v2",
        "_output_dir": "/srv/projects",
    }

    refused = hook.problems(answers)
    command, left_out = hook.suggested_command(answers, refused, cwd="/home/someone")
    same_dir, _ = hook.suggested_command(answers, refused, cwd="/srv/projects")

    assert command == (
        "uvx cookiecutter --no-input --checkout v2 gh:someone/cookiecutter-arq -o /srv/projects "
        "project_name=Billing 'redis_port=<a whole number from 1 to 65535, such as 6379>'"
    )
    assert left_out == ["project_slug from project_name", "package_name from project_slug"]
    assert " -o " not in same_dir


def test_a_placeholder_left_in_keeps_its_example() -> None:
    hook = load_pre_gen_hook()
    left_in = "<a lower-case identifier, such as test_service>"

    assert hook.placeholder("package_name", left_in) == (
        "<a lower-case identifier, such as billing_service>"
    )
