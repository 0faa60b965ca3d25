"""The generated dashboard (api/dashboard/, queue and API projects): its files come out of the
bake as written, and its browser tests pass in the default project (slow: `uv sync`, headless
Chromium; `.ci/run` installs chromium and chromium-driver)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import COMBINATIONS, TEMPLATE_ROOT, Combination, tool_environment

SOURCE = TEMPLATE_ROOT / "{{cookiecutter.project_slug}}"
DASHBOARD = "src/{package}/api/dashboard"
DASHBOARD_COMBINATIONS = [
    c
    for c in COMBINATIONS
    if c.cache_backend != "none" and c.context.get("api_framework", "fastapi") == "fastapi"
]
[DEFAULT] = [c for c in DASHBOARD_COMBINATIONS if c.cache_backend == "redis" and not c.extra]


def package_of(project: Path) -> str:
    return json.loads((project / ".cookiecutter.json").read_text())["package_name"]


@pytest.mark.parametrize("combination", DASHBOARD_COMBINATIONS, ids=lambda c: c.id)
def test_the_screenshot_is_copied_byte_for_byte(bake_once, combination: Combination) -> None:
    project = bake_once(combination)

    baked = (project / "docs" / "dashboard.png").read_bytes()

    assert baked == (SOURCE / "docs" / "dashboard.png").read_bytes()
    assert baked.startswith(b"\x89PNG\r\n\x1a\n")
    assert "(dashboard.png)" in (project / "docs" / "dashboard.md").read_text()


def test_the_page_templates_come_out_as_jinja2_for_the_app(bake_once) -> None:
    project = bake_once(DEFAULT)
    source = SOURCE / DASHBOARD.format(package="{{cookiecutter.package_name}}") / "templates"
    baked = project / DASHBOARD.format(package=package_of(project)) / "templates"

    for name in ("page.html", "live.html", "progress.html", "action.html"):
        written = (source / name).read_text()
        # The source wraps the whole file in {% raw %} ... {% endraw %} for cookiecutter.
        match = re.fullmatch(r"\{% raw %\}(.*)\{% endraw %\}", written, re.DOTALL)
        assert match is not None, f"{name} is not wrapped in raw"
        assert (baked / name).read_text() == match.group(1)


@pytest.mark.slow
def test_the_default_projects_browser_tests_pass(bake_once, tmp_path: Path) -> None:
    project = bake_once(DEFAULT)
    screenshot = tmp_path / "dashboard.png"
    environment = {**tool_environment(), "DASHBOARD_SCREENSHOT": str(screenshot)}

    for command in (["uv", "sync", "--quiet"], ["uv", "run", "pytest", "-m", "browser"]):
        result = subprocess.run(
            command, cwd=project, env=environment, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout[-6000:]}\n{result.stderr}"

    # Every browser test ran and passed: none skipped for want of a browser.
    source = (project / "tests/infrastructure/test_dashboard_browser.py").read_text()
    tests = re.findall(r"^(?:async )?def test_", source, re.MULTILINE)
    assert len(tests) >= 8
    assert re.search(rf"\b{len(tests)} passed\b", result.stdout), result.stdout[-2000:]
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
