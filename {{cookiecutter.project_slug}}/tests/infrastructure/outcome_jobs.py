# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs that end in each way a try can end, for tests/test_outcomes.py, which runs them in real
worker processes: `python -m <package>.infrastructure.worker tests.infrastructure.outcome_jobs.WorkerSettings`."""

import asyncio

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError


async def completes(ctx: JobContext) -> str:
    return "done"


async def never_starts(ctx: JobContext) -> str:
    """Queued to start later and aborted before then."""
    return "ran after all"


async def refuses(ctx: JobContext) -> None:
    raise PermanentError("refused: redis://:S3cretRedisPw42@db.internal:6379/0 is not for you")


async def always_fails(ctx: JobContext) -> None:
    raise ValueError("broken")


async def fails_once(ctx: JobContext) -> str:
    if ctx["job_try"] == 1:
        raise ConnectionError("flaky")
    return "second try"


async def returns_a_set(ctx: JobContext) -> set[int]:
    return {1, 2}


async def runs_until_aborted(ctx: JobContext) -> None:
    await ctx["redis"].set(f"started:{ctx['job_id']}", 1)
    await asyncio.sleep(30)


async def overruns(ctx: JobContext) -> None:
    await asyncio.sleep(30)


async def fails_loudly(ctx: JobContext) -> None:
    """A 1 MB message, with a line break that would forge a log line if it were not escaped."""
    raise RuntimeError("x" * 1_000_000 + "\n2026-01-01 ERROR forged line")


# No cron jobs: a tick would add tries to what these tests count.
WorkerSettings = {
    **vars(ProjectSettings),
    "functions": (
        *ProjectSettings.functions,
        arq_function(completes),
        arq_function(never_starts),
        arq_function(refuses),
        arq_function(always_fails, max_tries=2),
        arq_function(fails_once),
        arq_function(returns_a_set),
        arq_function(runs_until_aborted),
        arq_function(overruns, max_tries=1, timeout=0.5),
        arq_function(fails_loudly, max_tries=1),
    ),
    "cron_jobs": (),
}
