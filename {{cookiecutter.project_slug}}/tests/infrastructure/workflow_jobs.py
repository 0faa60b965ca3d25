# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs for test_workflows.py's chains and groups (client/workflows.py), named `flow_...` so
that no job of yours of the same name clashes with them."""

import asyncio
from typing import Any

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import worker_functions
from {{ cookiecutter.package_name }}.queue import JobContext, JobFailed, job


@job()
async def flow_add(ctx: JobContext, number: int, more: int) -> int:
    """`number + more`, the try that ran it appended to the list `ran`."""
    await ctx["redis"].rpush("ran", f"add {number} {more}")
    return number + more


@job()
async def flow_slow_add(ctx: JobContext, number: int, more: int, seconds: float) -> int:
    """`flow_add`, taking `seconds` after it notes its run."""
    await ctx["redis"].rpush("ran", f"add {number} {more}")
    await asyncio.sleep(seconds)
    return number + more


@job()
async def flow_double(ctx: JobContext, number: int) -> int:
    await ctx["redis"].rpush("ran", f"double {number}")
    return 2 * number


@job(max_tries=1)
async def flow_refuse(ctx: JobContext, number: int, refused: int) -> int:
    """Fails for `refused`, else returns `number`."""
    if number == refused:
        raise ValueError(f"{number} is refused")
    return number


@job()
async def flow_member(ctx: JobContext, number: int, seconds: float) -> int:
    """Counts its runs per number in the hash `runs`, waits `seconds`, returns `number`."""
    await ctx["redis"].hincrby("runs", str(number), 1)
    await asyncio.sleep(seconds)
    return number


@job()
async def flow_gather(ctx: JobContext, results: list[Any], label: str) -> dict[str, Any]:
    """A group's callback: counts its runs (`callback-runs`), returns what it was given."""
    await ctx["redis"].incr("callback-runs")
    errors = [str(result) for result in results if isinstance(result, JobFailed)]
    values = [result for result in results if not isinstance(result, JobFailed)]
    return {"label": label, "values": values, "errors": errors}


@job()
async def flow_echo(ctx: JobContext, results: list[Any]) -> list[Any]:
    """A group's callback that returns what it was given: a failed member's JobFailed too."""
    return results


@job(max_tries=1)
async def flow_sum(ctx: JobContext, numbers: list[int]) -> int:
    """A group's callback that fails on a member's error (a JobFailed is no number)."""
    return sum(numbers)


@job()
async def flow_waits(ctx: JobContext, number: int) -> int:
    """Notes that it started (`started`), then runs for 30 s."""
    await ctx["redis"].rpush("started", str(number))
    await asyncio.sleep(30)
    return number


# No cron jobs: a minute tick would add a job to the queue.
WorkerSettings = {**vars(ProjectSettings), "functions": worker_functions()[0], "cron_jobs": ()}
