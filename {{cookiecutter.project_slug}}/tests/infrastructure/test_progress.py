# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A job's progress (infrastructure/store/progress.py): reported from inside the job, written a
few times a second at most however often it is called, the last report written when the try
ends and kept with the result, read by `Job.progress()` and `Job.state()`. A worker on the
session's Redis runs progress_jobs.py's jobs."""

import asyncio
import importlib
import logging
import math
import time
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import free_port
from {{ cookiecutter.package_name }}.infrastructure.store import progress, records
from {{ cookiecutter.package_name }}.infrastructure.testing import RunJob
from {{ cookiecutter.package_name }}.queue import JobFailed, JobStatus, enqueue_task

from .conftest import RunningWorker


@pytest.fixture(autouse=True)
def progress_jobs(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """progress_jobs.py's jobs declared for this test only (they leave the registry after it)."""
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import progress_jobs

    return importlib.reload(progress_jobs)


@pytest.fixture
async def progress_writes(task_pool: ArqRedis) -> AsyncIterator[list[float]]:
    """The times (monotonic s) at which Redis saw a write to any job's progress key: Redis's
    own keyspace notifications, so every write counts, whoever sent it."""
    await task_pool.config_set("notify-keyspace-events", "K$")
    seen: list[float] = []
    pubsub = task_pool.pubsub()
    await pubsub.psubscribe("__keyspace@0__:*:progress:*")

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage" and message["data"] == b"set":
                seen.append(time.monotonic())

    listening = asyncio.create_task(listen())
    try:
        yield seen
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await task_pool.config_set("notify-keyspace-events", "")


async def test_a_tight_loop_of_reports_writes_a_few_times_a_second_and_its_last_one(
    running_worker: RunningWorker,
    task_pool: ArqRedis,
    progress_jobs: ModuleType,
    progress_writes: list[float],
) -> None:
    async with running_worker(functions=progress_jobs.WorkerSettings["functions"]):
        job = await enqueue_task("tight_loop", 100_000)
        assert job is not None
        assert await job.result(timeout=60) == 100_000
        info = await job.result_info()
        assert info is not None
        await asyncio.sleep(0.1)  # the last notification's way to the listener

    seconds = (info.finish_time - info.start_time).total_seconds()
    # One write every 0.25 s at most, the first at once, and the last one again at the end
    # (for its lifetime to follow the result's).
    assert 2 <= len(progress_writes) <= math.floor(seconds / progress.WRITE_INTERVAL_SECONDS) + 2
    assert len(progress_writes) / max(seconds, 1.0) <= 20
    print(f"100,000 reports in {seconds:.2f} s: {len(progress_writes)} writes")
    last = await job.progress()
    assert last is not None
    assert (last.done, last.total, last.note, last.job_try) == (100_000, 100_000, "item 100000", 1)
    assert last.fraction == 1.0


async def test_the_newest_report_is_written_while_the_job_waits_and_kept_with_its_result(
    running_worker: RunningWorker, task_pool: ArqRedis, progress_jobs: ModuleType
) -> None:
    async with running_worker(functions=progress_jobs.WorkerSettings["functions"]):
        job = await enqueue_task("steps_then_waits", 5, 1.5)
        assert job is not None
        seen = None
        for _ in range(100):  # well within the job's 1.5 s wait
            state = await job.state()
            if state.progress is not None and state.progress.done == 5:
                seen = state
                break
            await asyncio.sleep(0.02)
        assert seen is not None, "the last step's report was not written while the job waited"
        assert seen.status == JobStatus.in_progress
        assert await job.result(timeout=10) == "done"

    kept = await job.progress()
    assert kept is not None
    assert (kept.done, kept.total, kept.note) == (5, 5, "step 5")
    lifetime_ms = await task_pool.pttl(progress.progress_key(job.queue_name, job.job_id))
    keep_result_ms = get_settings().worker_keep_result * 1000
    assert (
        keep_result_ms <= lifetime_ms <= keep_result_ms + progress.KEPT_AFTER_RESULT_SECONDS * 1000
    )


@pytest.mark.parametrize(
    ("report", "error"),
    [
        ("negative", "progress done must be a finite number of 0 or more, not -1"),
        ("over its total", "progress done (11) is more than total (10)"),
        ("not a number", "progress done must be a finite number of 0 or more, not nan"),
        ("an endless total", "progress total must be a finite number of 0 or more, not inf"),
    ],
)
async def test_a_bad_report_fails_the_job_and_says_what_is_wrong(
    running_worker: RunningWorker,
    task_pool: ArqRedis,
    progress_jobs: ModuleType,
    report: str,
    error: str,
) -> None:
    async with running_worker(functions=progress_jobs.WorkerSettings["functions"]):
        job = await enqueue_task("reports_badly", report)
        assert job is not None
        with pytest.raises(JobFailed) as failed:
            await job.result(timeout=10)

    assert (failed.value.error_type, failed.value.message) == ("ValueError", error)
    assert await job.progress() is None  # nothing written


async def test_a_report_made_after_the_try_ended_is_dropped_not_kept_with_the_result(
    running_worker: RunningWorker,
    task_pool: ArqRedis,
    progress_jobs: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=progress.__name__):
        async with running_worker(functions=progress_jobs.WorkerSettings["functions"]):
            job = await enqueue_task("late_reporter", 0.3)
            assert job is not None
            assert await job.result(timeout=10) == "done"
            await asyncio.sleep(0.6)  # the late report has been made by now

    kept = await job.progress()
    assert kept is not None
    assert (kept.done, kept.note) == (1, "before the end")
    warnings = [r.getMessage() for r in caplog.records if r.name == progress.__name__]
    assert warnings == [f"job {job.job_id} reported progress after its try ended: dropped"]


async def test_a_report_redis_cannot_take_is_dropped_and_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "WRITE_INTERVAL_SECONDS", 0.0)  # every report is written
    away = Redis(port=free_port(), socket_connect_timeout=1)
    ctx: dict[str, Any] = {"redis": away, "job_id": "{x:default}:j", "job_try": 1}
    with caplog.at_level(logging.WARNING, logger=progress.__name__):
        for done in range(3):
            await progress.report_progress(ctx, done, 3)
        await progress.close_progress(ctx)
    await away.aclose()

    warnings = [r.getMessage() for r in caplog.records if r.name == progress.__name__]
    assert len(warnings) == 1
    assert warnings[0].startswith("could not write progress to {x:default}:progress:{x:default}:j")


async def test_an_unreadable_report_reads_as_none_and_is_counted(task_pool: ArqRedis) -> None:
    job = await enqueue_task("example_task", "progress")
    assert job is not None
    key = progress.progress_key(job.queue_name, job.job_id)
    before = records.unreadable_records().get("progress", 0)

    await task_pool.set(key, b'{"done": "half"}')
    assert await job.progress() is None
    assert (await job.state()).progress is None
    await task_pool.delete(key)
    await task_pool.hset(key, "done", "1")  # type: ignore[misc]  # a key of another type
    assert await job.progress() is None

    assert records.unreadable_records().get("progress", 0) == before + 3


async def test_run_job_writes_the_last_report_as_a_worker_does(
    run_job: RunJob, task_pool: ArqRedis, progress_jobs: ModuleType
) -> None:
    assert await run_job(progress_jobs.tight_loop, 1000) == 1000

    [key] = await task_pool.keys("*:progress:*")
    report = await progress_jobs_progress(task_pool, key)
    assert (report.done, report.total, report.note) == (1000, 1000, "item 1000")


async def progress_jobs_progress(pool: ArqRedis, key: bytes) -> progress.Progress:
    """The report in `key`, which must be readable."""
    report = progress.read(key.decode(), await pool.get(key))
    assert report is not None
    return report
