# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs with limits (limits.py), and worker settings that run them, for test_limits.py's worker
processes: `python -m <package>.infrastructure.worker tests.infrastructure.limit_jobs.WorkerSettings`.

Each job records, from inside, when it started, on which try, and how many of its kind were
running then: what the tests check the limits against.
"""

import asyncio
import time

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import (
    arq_function,
    worker_functions,
)
from {{ cookiecutter.package_name }}.queue import JobContext, job

from .fault_jobs import counted


async def record_start(ctx: JobContext, name: str) -> None:
    """Append "<name> <start time (s)> <try>" to the list `started`."""
    await ctx["redis"].rpush("started", f"{name} {time.time()} {ctx['job_try']}")


@job(max_concurrency=2)
async def two_at_once(ctx: JobContext, name: str, seconds: float) -> str:
    """At most two run at once, across workers; each samples how many of them run (`running`,
    the samples in the list `running-seen`)."""
    running = await ctx["redis"].incr("running")
    await ctx["redis"].rpush("running-seen", running)
    await record_start(ctx, name)
    try:
        await asyncio.sleep(seconds)
    finally:
        await ctx["redis"].decr("running")
    return name


@job(max_concurrency=1, max_tries=1)
async def alone(ctx: JobContext, name: str, seconds: float) -> str:
    """One at a time, across workers; one try."""
    await record_start(ctx, name)
    await asyncio.sleep(seconds)
    return name


@job(rate_limit="5/s")
async def five_a_second(ctx: JobContext, name: str) -> None:
    """Five starts a second at most, one every 200 ms."""
    await record_start(ctx, name)


@job(rate_limit="2/s", rate_limit_key="domain")
async def per_domain(ctx: JobContext, domain: str, path: str) -> None:
    """Two starts a second per domain."""
    await record_start(ctx, f"{domain}{path}")


# KEYS: the most seen; ARGV: how many run now.
RECORD_MOST = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
"""


@job(max_concurrency=6, rate_limit="1000/s", rate_limit_key=lambda number: number % 4)
async def counted_with_limits(ctx: JobContext, number: int) -> None:
    """fault_jobs.py's `counted` (its runs in the hash `runs`), at most 6 at once and 1,000
    starts a second per key (four keys); the most seen running at once in `most-running`."""
    running = await ctx["redis"].incr("running")
    await ctx["redis"].eval(RECORD_MOST, 1, "most-running", running)
    await ctx["redis"].hincrby("runs", str(number), 1)
    await ctx["redis"].decr("running")


# No cron jobs: a minute tick would add a job to the queue.
WorkerSettings = {**vars(ProjectSettings), "functions": worker_functions()[0], "cron_jobs": ()}
# For the race (test_faults.py): these jobs and fault_jobs.py's `counted`.
RaceSettings = {**WorkerSettings, "functions": (*worker_functions()[0], arq_function(counted))}
