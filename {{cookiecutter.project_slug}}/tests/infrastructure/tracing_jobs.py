# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A job for test_tracing.py, which runs it in a real worker process with tracing on:
`python -m <package>.infrastructure.worker tests.infrastructure.tracing_jobs.WorkerSettings`."""

import logging

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import worker_functions
from {{ cookiecutter.package_name }}.queue import JobContext, job

logger = logging.getLogger(__name__)


@job()
async def traced_flaky(ctx: JobContext, message: str) -> str:
    """Fails its first try (to be retried), logs a line and returns `message` on the second."""
    if ctx["job_try"] == 1:
        raise ConnectionError("flaky")
    logger.warning("traced_flaky ran: %s", message)  # WARNING: tests/ is not the package's logger
    return message


@job()
async def traced_step(ctx: JobContext, number: int) -> int:
    """A chain's or a group's step: `number + 1`."""
    return number + 1


@job()
async def traced_total(ctx: JobContext, numbers: list[int]) -> int:
    """A group's callback: the sum of its members' results."""
    return sum(numbers)


# No cron jobs: a minute tick would be a trace of its own.
WorkerSettings = {**vars(ProjectSettings), "functions": worker_functions()[0], "cron_jobs": ()}
