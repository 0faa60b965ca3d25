"""A `cache_backend=none` project, baked with the default answers, never mentions ARQ."""

import json
import re
from pathlib import Path

import pytest

from .conftest import TEMPLATE_ROOT

ARQ = re.compile(r"arq", re.IGNORECASE)


@pytest.fixture(scope="module")
def none_project(cookies_session) -> Path:
    result = cookies_session.bake(extra_context={"cache_backend": "none"})
    assert result.exit_code == 0, result.exception
    return result.project_path


def mentions_of_arq(project: Path) -> list[str]:
    """Each line (as `path:number: text`) and each file name that says arq, in any case.

    The template's own location (e.g. a clone named cookiecutter-arq) may appear
    where the project says how it was generated: that is not a mention of a queue.
    """
    template = str(TEMPLATE_ROOT)
    files = [path for path in project.rglob("*") if path.is_file()]
    names = [str(path.relative_to(project)) for path in files if ARQ.search(path.name)]
    return names + [
        f"{path.relative_to(project)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if ARQ.search(line.replace(template, ""))
    ]


def test_the_defaults_follow_the_backend(none_project: Path) -> None:
    answers = json.loads((none_project / ".cookiecutter.json").read_text())

    assert none_project.name == "my-service"
    assert answers["project_name"] == "My Service"
    assert answers["package_name"] == "my_service"
    assert answers["description"] == "A Python service."


def test_no_file_mentions_arq(none_project: Path) -> None:
    assert mentions_of_arq(none_project) == []


def test_a_queue_project_keeps_its_defaults(cookies_session) -> None:
    result = cookies_session.bake(extra_context={"cache_backend": "redis"})
    answers = json.loads((result.project_path / ".cookiecutter.json").read_text())

    assert answers["project_name"] == "My ARQ Service"
    assert answers["description"] == "A Python service with background jobs on ARQ."
