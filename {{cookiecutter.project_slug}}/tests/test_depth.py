"""Queue depth (depth.py): waiting, deferred and running jobs, counted apart."""

import asyncio

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.serialization import deserialize
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.jobs import report_queue_depth
from {{ cookiecutter.package_name }}.queue import QueueDepth, cron_job, enqueue_task, job, queue_depth

from .conftest import RunningWorker, sleeps, wait_until_started


async def test_waiting_deferred_and_running_jobs_are_counted_apart(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    await task_pool.enqueue_job("sleeps")
    workers_jobs = [job(sleeps), *WorkerSettings.functions]
    # No cron: a tick due during the test would count too.
    async with running_worker(functions=workers_jobs, cron_jobs=[], max_jobs=1):
        await wait_until_started(task_pool)
        for n in range(2):
            await enqueue_task("example_task", message=f"waits {n}")
            await enqueue_task("example_task", message=f"later {n}", _defer_by=60)
        await asyncio.sleep(0.1)  # the worker lists its running job within 10 ms

        depth = await queue_depth(task_pool, WorkerSettings.queue_name)

    assert depth == QueueDepth(waiting=2, deferred=2, running=1)


async def test_the_depth_report_counts_itself_as_running_not_waiting(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    every_second = cron_job(report_queue_depth, second=set(range(60)), keep_result=60)
    async with running_worker(cron_jobs=[every_second]):
        await asyncio.sleep(2.5)

    reports = [
        deserialize(await task_pool.get(key))["r"]
        async for key in task_pool.scan_iter("arq:result:cron:report_queue_depth:*")
    ]
    assert reports
    # On an idle queue: nothing waits; the one running job is the report itself.
    assert [(report["waiting"], report["running"]) for report in reports] == [(0, 1)] * len(reports)
