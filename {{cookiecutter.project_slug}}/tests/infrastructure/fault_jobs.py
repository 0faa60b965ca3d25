# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs and worker settings for the fault tests, which run real worker processes:
`python -m <package>.infrastructure.worker tests.infrastructure.fault_jobs.WorkerSettings` (or `arq` with the
same path; both read a dict as well as a class)."""

import asyncio

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError


async def sleepy(ctx: JobContext, name: str, seconds: float, retry_seconds: float = 0.1) -> str:
    """Count its starts, sleep (`retry_seconds` on a later try), then count its completion."""
    await ctx["redis"].incr(f"starts:{name}")
    await asyncio.sleep(seconds if ctx["job_try"] == 1 else retry_seconds)
    await ctx["redis"].incr(f"completions:{name}")
    return name


async def numbered(ctx: JobContext, number: int, fail_first_try: bool = False) -> int:
    """A no-op job for load runs; with `fail_first_try` its first try raises."""
    if fail_first_try and ctx["job_try"] == 1:
        raise ConnectionError(f"job {number}: flaky once")
    return number


async def refuses(ctx: JobContext) -> None:
    """A job that fails for good on its first try (a dead letter)."""
    raise PermanentError("refused")


async def counted(ctx: JobContext, number: int) -> None:
    """A no-op job that counts its runs, in the hash `runs`."""
    await ctx["redis"].hincrby("runs", str(number), 1)


# No cron jobs: a minute tick would add a job to the queue counts these tests check.
WorkerSettings = {
    **vars(ProjectSettings),
    "functions": (
        *ProjectSettings.functions,
        arq_function(sleepy),
        arq_function(numbered),
        arq_function(counted),
        arq_function(refuses),
    ),
    "cron_jobs": (),
}
