"""The template's own Python (hooks, tests, scripts, benchmarks) passes `just lint`."""

import subprocess
import sys

from .conftest import TEMPLATE_ROOT


def test_template_code_passes_its_own_lint() -> None:
    # `just lint`: the hooks, tests, scripts and benchmarks of the template itself.
    for check in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "hooks", "tests", "scripts", "bench"],
            cwd=TEMPLATE_ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
