# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Cron (functions.py's `cron_job`): each tick runs once however many workers run it, and a
failed tick is retried with the same backoff as any job."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_cron_job

from .conftest import Configure, RunningWorker, full_id

EVERY_SECOND = set(range(60))


async def test_report_queue_depth_is_registered_and_runs_once_per_tick(
    task_pool: ArqRedis,
) -> None:
    [report] = [cron for cron in WorkerSettings.cron_jobs if cron.name == "cron:report_queue_depth"]
    tick = {
        "redis": task_pool,
        "queue_name": WorkerSettings.queue_name,
        "job_id": full_id("cron:report_queue_depth:1700000000000"),  # as the worker names it
        "job_try": 1,
        "enqueue_time": datetime(2026, 1, 1, tzinfo=UTC),
    }
    # arq #196: the same tick queued again, as a new job, after the first one finished.
    queued_again = {**tick, "enqueue_time": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)}

    assert await report.coroutine(tick) == {"waiting": 0, "deferred": 0, "running": 0}
    assert await report.coroutine(queued_again) is None  # skipped: the tick already ran
    # A second try of the same job (same enqueue time) is a retry, not a duplicate: it runs.
    assert await report.coroutine({**tick, "job_try": 2}) is not None


async def count_run(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(f"runs:{ctx['job_id']}")


async def test_two_workers_run_each_tick_exactly_once(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    # Every second, and no result kept: the setting under which arq alone runs a tick twice (#196).
    every_second = arq_cron_job(count_run, second=EVERY_SECOND, keep_result=0)

    async with (
        running_worker(cron_jobs=[every_second], keep_result=0),
        running_worker(cron_jobs=[every_second], keep_result=0),
    ):
        await asyncio.sleep(3.5)

    counts = [int(await task_pool.get(key)) async for key in task_pool.scan_iter("runs:*")]
    assert len(counts) >= 3
    assert counts == [1] * len(counts)


async def asks_to_retry(ctx: dict[str, Any]) -> None:
    await ctx["redis"].rpush(f"tries:{ctx['job_id']}", ctx["job_try"])
    if ctx["job_try"] == 1:
        raise Retry(defer=0.2)


async def fails_once(ctx: dict[str, Any]) -> None:
    await ctx["redis"].rpush(f"tries:{ctx['job_id']}", ctx["job_try"])
    if ctx["job_try"] == 1:
        raise RuntimeError("the first try of each tick fails")


async def test_a_failed_tick_is_retried_with_backoff(
    task_pool: ArqRedis, running_worker: RunningWorker, configure: Configure
) -> None:
    configure(WORKER_RETRY_BASE="0.2")  # backoff from 0.1-0.2 s
    crons = [
        arq_cron_job(asks_to_retry, second=EVERY_SECOND, max_tries=3),
        arq_cron_job(fails_once, second=EVERY_SECOND, max_tries=3),
    ]

    async with running_worker(cron_jobs=crons):
        await asyncio.sleep(4)

    tries = {
        key.decode(): [int(n) for n in await task_pool.lrange(key, 0, -1)]  # type: ignore[misc]
        async for key in task_pool.scan_iter("tries:*")
    }
    for name in ("asks_to_retry", "fails_once"):
        ticks = {job_id: runs for job_id, runs in tries.items() if f":{name}:" in job_id}
        finished = [runs for runs in ticks.values() if len(runs) > 1]
        assert len(finished) >= 2, tries  # retried within seconds, not after arq's 60 s mark
        assert all(runs == [1, 2] for runs in finished), tries  # one retry each, then done
