"""A baked project passes its own checks straight away: ruff, mypy --strict, and pytest
(on a real, embedded Redis for the queue variants). Slow: each one runs `uv sync`."""

import subprocess
from pathlib import Path

import pytest

from .conftest import COMBINATIONS, Combination, tool_environment

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
    run(["uv", "run", "just", "test"], project)


@pytest.mark.slow
@pytest.mark.parametrize("combination", FAULT_COMBINATIONS, ids=lambda c: c.id)
def test_generated_project_survives_its_fault_tests(bake_once, combination: Combination) -> None:
    project = bake_once(combination)

    run(["uv", "sync", "--quiet"], project)
    run(["uv", "run", "just", "test-faults"], project)
