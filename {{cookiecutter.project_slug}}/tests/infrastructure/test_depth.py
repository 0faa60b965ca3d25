# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Queue depth (depth.py): waiting, deferred and running jobs, counted apart; and the snapshot
the metrics read (`queue_stats`), with dead letters and live workers, without a SCAN."""

import asyncio
import time

from arq.connections import ArqRedis
from arq.constants import result_key_prefix

from {{ cookiecutter.package_name }}.infrastructure.store.depth import QueueStats, queue_stats
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import live_workers_key, running_prefix
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_cron_job, arq_function
from {{ cookiecutter.package_name }}.jobs import report_queue_depth
from {{ cookiecutter.package_name }}.queue import QueueDepth, enqueue_task, queue_depth

from .conftest import (
    RunningWorker,
    add_dead_letter,
    command_calls,
    full_id,
    sleeps,
    wait_until_listed,
    wait_until_started,
)


async def test_waiting_deferred_and_running_jobs_are_counted_apart(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    await task_pool.enqueue_job("sleeps")
    workers_jobs = [arq_function(sleeps), *WorkerSettings.functions]
    # No cron: a tick due during the test would count too.
    async with running_worker(functions=workers_jobs, cron_jobs=[], max_jobs=1):
        await wait_until_started(task_pool)
        for n in range(2):
            await enqueue_task("example_task", message=f"waits {n}")
            await enqueue_task("example_task", message=f"later {n}", _defer_by=60)
        await wait_until_listed(task_pool, 2)  # the job running, and the one read ahead

        depth = await queue_depth(task_pool, WorkerSettings.queue_name)

    # One waiting job is in the worker's hand, read ahead for its one slot (worker.py): running.
    assert depth == QueueDepth(waiting=1, deferred=2, running=2)


async def test_the_depth_report_counts_itself_as_running_not_waiting(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    every_second = arq_cron_job(report_queue_depth, second=set(range(60)), keep_result=60)
    async with running_worker(cron_jobs=[every_second]):
        await asyncio.sleep(2.5)

    # Each tick's id: the queue's key, then cron:<name>:<time in ms>.
    ticks = f"{result_key_prefix}{full_id('cron:report_queue_depth')}:*"
    reports = [
        deserialize(await task_pool.get(key))["r"] async for key in task_pool.scan_iter(ticks)
    ]
    assert reports
    # On an idle queue: nothing waits; the one running job is the report itself.
    assert [(report["waiting"], report["running"]) for report in reports] == [(0, 1)] * len(reports)


async def test_queue_depth_reads_a_large_keyspace_in_a_few_scans(task_pool: ArqRedis) -> None:
    async with task_pool.pipeline(transaction=False) as pipe:
        for n in range(5000):  # kept results, other services' keys: what a Redis holds
            pipe.set(f"unrelated:{n}", 1)
        await pipe.execute()
    before = await command_calls(task_pool, "scan")

    depth = await queue_depth(task_pool, WorkerSettings.queue_name)

    assert depth.running == 0
    assert (
        await command_calls(task_pool, "scan") - before <= 10
    )  # before: Redis's default count, 501 SCANs


async def test_queue_stats_counts_jobs_dead_letters_and_live_workers_without_a_scan(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    queue = WorkerSettings.queue_name
    await task_pool.enqueue_job("sleeps")
    await add_dead_letter(task_pool)
    workers_jobs = [arq_function(sleeps), *WorkerSettings.functions]
    async with running_worker(functions=workers_jobs, cron_jobs=[], max_jobs=1):
        await wait_until_started(task_pool)
        for n in range(2):
            await enqueue_task("example_task", message=f"waits {n}")
            await enqueue_task("example_task", message=f"later {n}", _defer_by=60)
        await wait_until_listed(task_pool, 2)  # the job running, and the one read ahead
        scans_before = await command_calls(task_pool, "scan")
        stats = await queue_stats(task_pool, queue)
        scans_after = await command_calls(task_pool, "scan")
        depth = await queue_depth(task_pool, queue)

    # One waiting job is in the worker's hand, read ahead for its one slot (worker.py): running.
    assert stats == QueueStats(waiting=1, deferred=2, running=2, dead_letters=1, live_workers=1)
    assert (stats.waiting, stats.deferred, stats.running) == (
        depth.waiting,
        depth.deferred,
        depth.running,
    )
    assert scans_after == scans_before
    # A worker that stops leaves the live workers at once.
    assert (await queue_stats(task_pool, queue)).live_workers == 0


async def test_queue_stats_leaves_out_a_worker_whose_heartbeat_expired(
    task_pool: ArqRedis,
) -> None:
    queue = WorkerSettings.queue_name
    queued = await enqueue_task("example_task", message="claimed by a dead worker")
    assert queued is not None
    now_ms = int(time.time() * 1000)
    # A worker killed mid-job: its last beat has expired, its running-list is still there.
    await task_pool.zadd(live_workers_key(queue), {"gone:1:abcdef": now_ms - 1})
    await task_pool.sadd(running_prefix(queue) + "gone:1:abcdef", queued.job_id)  # type: ignore[misc]

    stats = await queue_stats(task_pool, queue)

    assert (stats.live_workers, stats.running, stats.waiting) == (0, 0, 1)
