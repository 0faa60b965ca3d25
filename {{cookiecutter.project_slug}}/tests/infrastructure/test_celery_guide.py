# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""docs/coming-from-celery.md runs as written: its first Python snippet declares its jobs, and
each later one runs, in order, as the body of a coroutine, with a worker serving every queue.
The snippets check themselves (`assert`); a snippet that raises fails this test, naming it."""

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import worker_functions

from .conftest import Configure, RunningWorker

GUIDE = Path(__file__).parents[2] / "docs" / "coming-from-celery.md"
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def snippets() -> list[str]:
    return SNIPPET.findall(GUIDE.read_text())


def test_the_guide_has_its_snippets() -> None:
    # The declarations, then calling, workflows, queues, progress: four runs below.
    assert len(snippets()) == 5


async def test_every_snippet_of_the_guide_runs(
    configure: Configure,
    monkeypatch: pytest.MonkeyPatch,
    running_worker: RunningWorker,
    task_pool: ArqRedis,
) -> None:
    configure(QUEUES="critical,default,bulk")
    # The guide's jobs alone: a job of yours named as one of them (`add`, say) does not clash.
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", {})
    declarations, *runs = snippets()
    namespace: dict[str, Any] = {"__name__": "coming_from_celery"}
    exec(compile(declarations, f"{GUIDE.name}, snippet 1", "exec"), namespace)

    functions = worker_functions()[0]
    queues = list(get_settings().queue_keys.values())
    async with running_worker(functions=functions, queue_names=queues):
        for number, body in enumerate(runs, 2):
            source = "async def snippet() -> None:\n" + textwrap.indent(body, "    ")
            exec(compile(source, f"{GUIDE.name}, snippet {number}", "exec"), namespace)
            await namespace["snippet"]()
