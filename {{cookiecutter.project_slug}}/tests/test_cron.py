"""Cron: the default job is registered and runs; with two workers each tick runs once."""

import asyncio
from typing import Any

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings, cron_job, enqueue_task

from .conftest import RunningWorker


async def test_default_cron_job_runs_once_per_tick(task_pool: ArqRedis) -> None:
    [report] = WorkerSettings.cron_jobs
    await enqueue_task("example_task", _defer_by=60)
    ctx = {
        "redis": task_pool,
        "queue_name": WorkerSettings.queue_name,
        "job_id": "cron:report_queue_depth:1700000000000",
    }

    assert report.name == "cron:report_queue_depth"
    assert await report.coroutine(ctx) == 1  # the queue depth it reports
    assert await report.coroutine(ctx) is None  # the same tick again: skipped


async def count_run(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(f"runs:{ctx['job_id']}")


async def test_two_workers_run_each_tick_exactly_once(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    # Every second, and no result kept: the setting under which arq alone runs a tick twice (#196).
    every_second = cron_job(count_run, second=set(range(60)), keep_result=0)

    async with (
        running_worker(cron_jobs=[every_second], keep_result=0),
        running_worker(cron_jobs=[every_second], keep_result=0),
    ):
        await asyncio.sleep(3.5)

    counts = [int(await task_pool.get(key)) async for key in task_pool.scan_iter("runs:*")]
    assert len(counts) >= 3
    assert counts == [1] * len(counts)
