# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs that report their progress (progress.py), for test_progress.py's workers."""

import asyncio
import math

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import worker_functions
from {{ cookiecutter.package_name }}.queue import JobContext, job, report_progress


@job()
async def tight_loop(ctx: JobContext, reports: int) -> int:
    """Reports `reports` times as fast as it can, then returns how many it made."""
    for done in range(1, reports + 1):
        await report_progress(ctx, done, reports, note=f"item {done}")
    return reports


@job()
async def steps_then_waits(ctx: JobContext, steps: int, seconds: float) -> str:
    """Reports each of `steps` steps at once, then waits `seconds` before it ends."""
    for done in range(1, steps + 1):
        await report_progress(ctx, done, steps, note=f"step {done}")
    await asyncio.sleep(seconds)
    return "done"


@job()
async def slow_steps(ctx: JobContext, steps: int, seconds: float) -> int:
    """Reports each of `steps` steps, `seconds` apart, then returns how many."""
    for done in range(1, steps + 1):
        await asyncio.sleep(seconds)
        await report_progress(ctx, done, steps, note=f"step {done}")
    return steps


# The tasks late_reporter leaves running, so that they are not garbage-collected mid-sleep.
LEFT_RUNNING: set["asyncio.Task[None]"] = set()


@job()
async def late_reporter(ctx: JobContext, seconds: float) -> str:
    """Reports 1 of 2, then returns, leaving a task that reports 2 of 2 `seconds` later."""
    await report_progress(ctx, 1, 2, note="before the end")

    async def late() -> None:
        await asyncio.sleep(seconds)
        await report_progress(ctx, 2, 2, note="after the end")

    task = asyncio.create_task(late())
    LEFT_RUNNING.add(task)
    task.add_done_callback(LEFT_RUNNING.discard)
    return "done"


# Reports the checks refuse, by name (JSON, which carries a job's arguments, has no NaN).
BAD_REPORTS: dict[str, tuple[float, float | None]] = {
    "negative": (-1, 10),
    "over its total": (11, 10),
    "not a number": (math.nan, None),
    "an endless total": (1, math.inf),
}


@job(max_tries=1)
async def reports_badly(ctx: JobContext, report: str) -> None:
    """Makes one of BAD_REPORTS."""
    await report_progress(ctx, *BAD_REPORTS[report])


# No cron jobs: a minute tick would add a job to the queue.
WorkerSettings = {**vars(ProjectSettings), "functions": worker_functions()[0], "cron_jobs": ()}
