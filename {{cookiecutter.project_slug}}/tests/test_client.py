"""Reading a job by id (status, result, info) and aborting it, through arq's own `Job`."""

import asyncio
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import JobStatus

from {{ cookiecutter.package_name }}.infrastructure import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.tasks import (
    WorkerSettings,
    enqueue_task,
    get_job,
    job,
)

from .conftest import RunningWorker, RunWorker


async def test_status_result_and_info_by_id(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await enqueue_task("example_task", message="by id")
    assert queued is not None
    found = await get_job(queued.job_id)

    assert await found.status() == JobStatus.queued
    info = await found.info()
    assert info is not None
    assert (info.function, info.kwargs) == ("example_task", {"message": "by id"})
    with pytest.raises(asyncio.TimeoutError):
        await found.result(timeout=0.1)

    await run_burst_worker()

    assert await found.status() == JobStatus.complete
    assert await found.result(timeout=1) == "Processed: by id"


async def test_unknown_id_is_not_found(task_pool: ArqRedis) -> None:
    assert await (await get_job("no-such-job")).status() == JobStatus.not_found


async def test_abort_a_queued_job(task_pool: ArqRedis, running_worker: RunningWorker) -> None:
    queued = await enqueue_task("example_task", message="never", _defer_by=60)
    assert queued is not None

    async with running_worker():
        assert await (await get_job(queued.job_id)).abort(timeout=5, poll_delay=0.05)

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


async def sleeps(ctx: dict[str, Any]) -> None:
    await ctx["redis"].set("sleeps:started", 1)
    await asyncio.sleep(30)


async def test_abort_a_running_job(task_pool: ArqRedis, running_worker: RunningWorker) -> None:
    queued = await task_pool.enqueue_job("sleeps")
    assert queued is not None

    async with running_worker(functions=[job(sleeps)]):
        for _ in range(250):  # up to 5 s for the worker to pick the job up
            if await task_pool.exists("sleeps:started"):
                break
            await asyncio.sleep(0.02)
        assert await (await get_job(queued.job_id)).status() == JobStatus.in_progress
        assert await (await get_job(queued.job_id)).abort(timeout=5, poll_delay=0.05)

    # An abort is a decision, not a failure: no retry, no dead letter.
    assert await dead_letters.all_letters(task_pool, WorkerSettings.queue_name) == []
