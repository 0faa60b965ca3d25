"""The post-generation hook's message: what it says `just dev` (or `just api`) starts is what the
baked project's justfile runs, for every variant."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TEMPLATE_ROOT

# (cache_backend, api_framework) -> the step the message ends its list with (None: no server).
EXPECTED_STEP = {
    ("redis", "fastapi"): (
        "uv run just dev        # local Redis, a worker and the API on http://127.0.0.1:8000; "
        "Ctrl-C stops all three"
    ),
    ("falkordb", "fastapi"): (
        "uv run just dev        # local FalkorDB, a worker and the API on http://127.0.0.1:8000; "
        "Ctrl-C stops all three"
    ),
    ("redis", "none"): "uv run just dev        # local Redis and a worker; Ctrl-C stops both",
    ("falkordb", "none"): "uv run just dev        # local FalkorDB and a worker; Ctrl-C stops both",
    ("none", "fastapi"): (
        "uv run just api        # the API on http://127.0.0.1:8000; Ctrl-C stops it"
    ),
    ("none", "none"): None,
}


def bake(tmp_path: Path, cache_backend: str, api_framework: str) -> tuple[str, Path]:
    """Bake from the command line, as a user does; the hook's output and the project."""
    baked = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(TEMPLATE_ROOT),
            "-o",
            str(tmp_path),
            f"cache_backend={cache_backend}",
            f"api_framework={api_framework}",
        ],
        capture_output=True,
        text=True,
    )
    assert baked.returncode == 0, baked.stderr
    (project,) = tmp_path.iterdir()
    return baked.stdout, project


def recipe(justfile: str, name: str) -> str | None:
    """The command lines of `name`'s recipe, or None if the justfile has none."""
    match = re.search(rf"^{name}\b[^\n]*:\n((?:    [^\n]*\n)+)", justfile, re.MULTILINE)
    return match.group(1) if match else None


@pytest.mark.parametrize(
    ("cache_backend", "api_framework"), EXPECTED_STEP, ids=lambda answer: str(answer)
)
def test_the_message_says_what_just_dev_starts_for_each_variant(
    tmp_path: Path, cache_backend: str, api_framework: str
) -> None:
    output, project = bake(tmp_path, cache_backend, api_framework)

    steps = [line.strip() for line in output.splitlines() if line.startswith("    ")]
    expected = EXPECTED_STEP[(cache_backend, api_framework)]
    assert steps[:4] == [f"cd {project.name}", "uv sync", "uv run just check", "uv run just test"]
    assert steps[4:] == ([] if expected is None else [expected])
    # ... and it is what the justfile runs.
    justfile = (project / "justfile").read_text()
    dev, api = recipe(justfile, "dev"), recipe(justfile, "api")
    if cache_backend == "none":
        assert dev is None
    else:
        assert dev is not None and "--worker" in dev
        assert ("--api" in dev) == (api_framework == "fastapi")
    assert (api is not None) == (api_framework == "fastapi")
    named = re.findall(r"[\w/-]+\.md", output)
    assert named and all((project / name).is_file() for name in named), named
