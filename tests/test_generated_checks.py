"""A baked project passes its own checks straight away: ruff, mypy --strict, and pytest
(on a real, embedded Redis for the queue variants). Slow: each one runs `uv sync`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import COMBINATIONS, DOCS_NEW_JOBS, Combination, tool_environment

SLOW_COMBINATIONS = [combination for combination in COMBINATIONS if combination.slow]
FAULT_COMBINATIONS = [combination for combination in COMBINATIONS if combination.faults]


def run(command: list[str], project: Path) -> None:
    result = subprocess.run(
        command, cwd=project, env=tool_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("combination", SLOW_COMBINATIONS, ids=lambda c: c.id)
def test_generated_project_passes_just_check_and_just_test(
    bake_once, combination: Combination
) -> None:
    project = bake_once(combination)

    run(["uv", "sync", "--quiet"], project)
    run(["uv", "run", "just", "check"], project)
    run(["uv", "run", "just", "test", *combination.test_paths], project)


@pytest.mark.slow
@pytest.mark.parametrize("combination", FAULT_COMBINATIONS, ids=lambda c: c.id)
def test_generated_project_survives_its_fault_tests(bake_once, combination: Combination) -> None:
    project = bake_once(combination)

    run(["uv", "sync", "--quiet"], project)
    run(["uv", "run", "just", "test-faults"], project)


@pytest.mark.slow
def test_adding_a_job_and_a_cron_job_as_the_docs_say_keeps_the_project_green(
    bake_once, tmp_path: Path
) -> None:
    [default] = [c for c in SLOW_COMBINATIONS if c.cache_backend == "redis" and not c.extra]
    project = tmp_path / "project"
    shutil.copytree(bake_once(default), project, ignore=shutil.ignore_patterns(".venv"))
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    docs = (project / "docs" / "background-tasks.md").read_text()
    assert "@job(max_tries=5, timeout=60)" in docs
    assert "@cron_job(minute={0, 30})" in docs

    # One file: the worker's settings are built from what jobs.py declares.
    jobs = project / "src" / package / "jobs.py"
    jobs.write_text(jobs.read_text() + DOCS_NEW_JOBS)
    check = (
        "from {package}.infrastructure.tasks import WorkerSettings as S; "
        "names = {{f.name for f in S.functions}} | {{c.name for c in S.cron_jobs}}; "
        "assert {{'send_receipt', 'cron:nightly_cleanup'}} <= names, names; "
        "[f] = [f for f in S.functions if f.name == 'send_receipt']; "
        "assert f.max_tries == 5, f.max_tries"
    )

    run(["uv", "sync", "--quiet"], project)
    run(["uv", "run", "python", "-c", check.format(package=package)], project)
    run(["uv", "run", "just", "check"], project)
    # The user's tests and the worker settings' here; the whole suite runs with these jobs in
    # test_update.py's update test, where the user's jobs.py holds them.
    user_tests = ["tests/test_jobs.py", "tests/infrastructure/test_tasks.py"]
    run(["uv", "run", "just", "test", *user_tests], project)
