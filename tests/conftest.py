"""Shared fixtures: the supported option combinations, each baked once per test session."""

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Combination:
    """One supported set of answers; `slow` combinations also run the baked project's checks
    (`just check`, and `just test`: all its tests, or only `test_paths` where given), `faults`
    ones its slow fault tests too (`just test-faults`)."""

    cache_backend: str
    python_version: str = "3.12"
    extra: dict[str, str] = field(default_factory=dict)
    slow: bool = False
    faults: bool = False
    test_paths: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        name = f"{self.cache_backend}-py{self.python_version}"
        return "-".join([name, *self.extra]) if self.extra else name

    @property
    def context(self) -> dict[str, str]:
        return {
            "cache_backend": self.cache_backend,
            "python_version": self.python_version,
            **self.extra,
        }


# The supported combinations: every backend with and without the web API (api_framework is
# fastapi unless `extra` says otherwise), and each Python version at least once.
# Running a project's own `just check` and `just test` costs a `uv sync`, so only the
# `slow=True` ones do (as cookiecutter-django runs its linters on a subset).
COMBINATIONS = [
    Combination("redis", "3.12", slow=True, faults=True),
    # A FalkorDB bake differs from a Redis one only in what these tests cover (its server, with
    # the module loaded; the graph client and job); the rest is the same code, which the Redis
    # bake's full run tests on the same server binary.
    Combination(
        "falkordb",
        "3.12",
        slow=True,
        test_paths=(
            "tests/test_jobs.py",
            "tests/infrastructure/test_graph.py",
            "tests/infrastructure/test_redis_server.py",
            "tests/infrastructure/test_dev.py",
            "tests/infrastructure/test_connection.py",
            "tests/infrastructure/test_worker.py",
        ),
    ),
    Combination("none", "3.12", slow=True),
    # Non-ASCII and apostrophes in free text must survive TOML, Python, .env and Markdown, and a
    # package named unlike the project must still build.
    # Without the web API, a queue project is what it was before the option existed.
    Combination(
        "redis",
        "3.11",
        extra={
            "project_name": "Zoë's Jobs",
            "author_name": "Zoë O'Brien",
            "package_name": "zoe_jobs",
            "api_framework": "none",
        },
        slow=True,
    ),
    Combination("none", "3.13", extra={"api_framework": "none"}),
    Combination("falkordb", "3.13", extra={"project_name": "Graph Jobs", "redis_port": "6390"}),
]
# What docs/background-tasks.md tells a user to write, in jobs.py alone: a job with its own
# limits, and a cron job (`job`, `cron_job` and `JobContext` are imported there already).
DOCS_NEW_JOBS = """

@job(max_tries=5, timeout=60)
async def send_receipt(ctx: JobContext, order_id: str) -> str:
    logger.info("sending the receipt for order %s", order_id)
    return f"sent {order_id}"


@cron_job(minute={0, 30})
async def nightly_cleanup(ctx: JobContext) -> None:
    logger.info("cleaning up")
"""

QUEUE_COMBINATIONS = [c for c in COMBINATIONS if c.cache_backend != "none"]


@pytest.fixture(scope="session")
def bake_once(cookies_session):
    """Bake a combination the first time it is asked for, then hand back the same folder."""
    baked: dict[str, Path] = {}

    def bake(combination: Combination) -> Path:
        if combination.id not in baked:
            result = cookies_session.bake(extra_context=combination.context)
            assert result.exit_code == 0, result.exception
            baked[combination.id] = result.project_path
        return baked[combination.id]

    return bake


@pytest.fixture(params=COMBINATIONS, ids=lambda combination: combination.id)
def combination(request) -> Combination:
    return request.param


@pytest.fixture
def project(bake_once, combination) -> Path:
    return bake_once(combination)


def tool_environment() -> dict[str, str]:
    """The environment for running `uv` in a baked project on this machine.

    uv must use the interpreters that are installed (never download one), and pyenv's shims
    only expose every installed version when PYENV_VERSION lists them all.
    """
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)  # the template's own venv must not leak into the project
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    versions = sorted(p.name for p in (pyenv_root / "versions").glob("*") if p.is_dir())
    if versions:
        environment["PYENV_VERSION"] = ":".join(versions)
    return environment
