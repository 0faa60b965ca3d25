# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The client side (client.py, job_handle.py): reading a job by id (status, result, info),
aborting it, and enqueueing: many calls at once, and from any event loop, thread or synchronous
code."""

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import arq.utils
import pytest
import redis
from arq.connections import ArqRedis
from arq.constants import job_key_prefix

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.keys import (
    DEFAULT_QUEUE,
    abort_requests_key,
    namespaced_job_id,
    queue_key,
)
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.job_handle import drop_stale_abort_requests
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import (
    Job,
    JobAborted,
    JobStatus,
    PermanentError,
    RedisUnavailableError,
    close_task_pool,
    enqueue_task,
    get_job,
    get_task_pool,
    queue_depth,
)

from .conftest import Configure, RunningWorker, RunWorker, sleeps, wait_until_started


async def test_a_job_due_now_reads_queued_whatever_the_fraction_of_its_millisecond(
    task_pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """arq writes a job's start time rounded to the nearest millisecond: 0.6 ms past a whole
    one, a job due now is scored the next millisecond. Read at once, it is still due now."""
    now = 1_900_000_000.0006
    monkeypatch.setattr(arq.utils, "time", lambda: now)  # what enqueue_task's score reads
    monkeypatch.setattr(time, "time", lambda: now)
    queued = await enqueue_task("example_task", message="now")
    assert queued is not None

    assert await queued.status() == JobStatus.queued
    depth = await queue_depth(task_pool, get_settings().queue_name)
    assert (depth.waiting, depth.deferred) == (1, 0)


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


async def refuses(ctx: dict[str, Any]) -> None:
    raise PermanentError("no")


async def test_a_failed_job_reads_as_failed(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await task_pool.enqueue_job("refuses")
    assert queued is not None
    await run_burst_worker(functions=[arq_function(refuses)])

    assert await (await get_job(queued.job_id)).status() == JobStatus.failed


async def test_abort_a_queued_job_needs_no_worker(task_pool: ArqRedis) -> None:
    queued = await enqueue_task("example_task", message="never", _defer_by=60)
    assert queued is not None

    assert await (await get_job(queued.job_id)).abort(timeout=5, poll_delay=0.05)

    assert await queued.status() == JobStatus.aborted
    with pytest.raises(JobAborted):
        await queued.result(timeout=1)
    assert await task_pool.zcard(WorkerSettings.queue_name) == 0
    # Nothing left to trip a later job.
    assert await task_pool.zcard(abort_requests_key(WorkerSettings.queue_name)) == 0


@pytest.mark.parametrize("keep_result", [3600, 0])
async def test_an_aborted_running_job_reads_as_aborted(
    task_pool: ArqRedis, running_worker: RunningWorker, keep_result: int
) -> None:
    queued = await task_pool.enqueue_job("sleeps")
    assert queued is not None
    handle = await get_job(queued.job_id)

    async with running_worker(functions=[arq_function(sleeps)], keep_result=keep_result):
        await wait_until_started(task_pool)
        assert await handle.status() == JobStatus.in_progress
        # True under every setting: with no result kept, the job's own mark says it.
        assert await handle.abort(timeout=5, poll_delay=0.05)

    if keep_result:
        assert await handle.status() == JobStatus.aborted
        # An ordinary Exception, which `except Exception` and web frameworks catch.
        with pytest.raises(JobAborted):
            await handle.result(timeout=1)
    else:
        assert await handle.status() == JobStatus.not_found
    # An abort is a decision, not a failure: no retry, no dead letter.
    assert await dead_letters.all_letters(task_pool, WorkerSettings.queue_name) == []


async def test_abort_of_a_finished_job_is_false_and_changes_nothing(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await enqueue_task("example_task", message="done")
    assert queued is not None
    await run_burst_worker()

    assert not await queued.abort(timeout=1, poll_delay=0.05)
    assert await queued.status() == JobStatus.complete
    assert await queued.result(timeout=1) == "Processed: done"


async def test_an_abort_of_an_id_with_no_job_does_not_drop_a_later_job_with_that_id(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker():
        assert not await (await get_job("order-42")).abort(timeout=1, poll_delay=0.05)
        later = await enqueue_task("example_task", message="later", _job_id="order-42")
        assert later is not None

        assert await later.result(timeout=10) == "Processed: later"


async def test_workers_drop_stale_abort_requests(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queue_name = WorkerSettings.queue_name
    requests = abort_requests_key(queue_name)
    # A request left for an id with no job (its job finished as the request came).
    await task_pool.zadd(requests, {namespaced_job_id(queue_name, "order-43"): 1})
    waiting = await enqueue_task("example_task", message="kept", _job_id="order-44")
    assert waiting is not None
    await task_pool.zadd(requests, {waiting.job_id: 1})  # a request for a job that exists

    assert await drop_stale_abort_requests(task_pool, queue_name) == 1
    assert await task_pool.zrange(requests, 0, -1) == [waiting.job_id.encode()]


SYNC_CALLERS = """
import asyncio, sys, threading
from {{ cookiecutter.package_name }}.queue import enqueue_task, run_sync

async def enqueue(message):
    job = await enqueue_task("example_task", message=message)
    return job.job_id

ids = [asyncio.run(enqueue("first run")), asyncio.run(enqueue("second run"))]
threads = [threading.Thread(target=lambda n=n: ids.append(asyncio.run(enqueue(f"thread {n}"))))
           for n in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ids += [run_sync(enqueue_task("example_task", message=f"sync {n}")).job_id for n in range(2)]
print(len(set(ids)))
"""


def test_enqueue_task_works_from_any_event_loop_thread_or_synchronous_code(
    redis_server: LocalRedisServer,
) -> None:
    # What a Flask or Django view, a CLI or a thread does: asyncio.run, again and again.
    with contextlib.closing(redis.Redis(port=redis_server.port)) as client:
        client.flushdb()
        caller = subprocess.run(
            [sys.executable, "-W", "error", "-c", SYNC_CALLERS],
            cwd=Path(__file__).parents[2],
            env={**os.environ, "REDIS_URL": redis_server.url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert caller.returncode == 0, caller.stderr
        assert caller.stdout.split() == ["6"]
        assert caller.stderr == ""
        assert client.zcard(WorkerSettings.queue_name) == 6


async def connected_clients(pool: ArqRedis) -> int:
    return int((await pool.info("clients"))["connected_clients"])


async def test_concurrent_enqueues_share_a_connection_and_each_gets_its_own_answer(
    task_pool: ArqRedis,
) -> None:
    # job_writes.py: the calls of one turn of the event loop go out in one pipeline.
    before = await connected_clients(task_pool)
    calls = [enqueue_task("example_task", message=f"many {n}") for n in range(50)]
    calls += [enqueue_task("example_task", message=f"dup {n}", _job_id="dup") for n in range(2)]
    answers = await asyncio.gather(*calls)

    # One pipeline needs one connection; a command per call needs one per call in flight.
    assert await connected_clients(task_pool) <= before + 1
    jobs = [job for job in answers[:50] if job is not None]
    assert len({job.job_id for job in jobs}) == 50
    infos = [await job.info() for job in jobs]
    assert [info.kwargs if info else None for info in infos] == [
        {"message": f"many {n}"} for n in range(50)
    ]
    # The same id twice in one pipeline: the first is queued, the second is a known id.
    assert answers[50] is not None
    assert answers[50].job_id == namespaced_job_id(WorkerSettings.queue_name, "dup")
    assert answers[51] is None
    assert await task_pool.zcard(WorkerSettings.queue_name) == 51


async def test_an_enqueue_cancelled_while_waiting_leaves_the_others_answered(
    task_pool: ArqRedis,
) -> None:
    calls = [
        asyncio.ensure_future(enqueue_task("example_task", message=f"call {n}")) for n in range(3)
    ]
    await asyncio.sleep(0)  # each call is waiting for the pipeline, which has not gone out yet
    calls[1].cancel()
    first, second, third = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(second, asyncio.CancelledError)
    for answered in (first, third):
        assert isinstance(answered, Job)
        assert await answered.status() == JobStatus.queued


async def test_enqueue_works_after_redis_forgets_its_scripts(task_pool: ArqRedis) -> None:
    # A new or restarted server, or SCRIPT FLUSH: the write's script is loaded again.
    await task_pool.script_flush()
    queued = await asyncio.gather(*(enqueue_task("example_task", message="x") for _ in range(3)))

    assert [await job.status() for job in queued if job is not None] == [JobStatus.queued] * 3


async def test_a_burst_of_first_calls_opens_one_pool(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    await close_task_pool()  # the burst below is the pool's first use
    with redis.Redis.from_url(redis_server.url) as watcher:
        before = int(watcher.info("stats")["total_connections_received"])
        queued = await asyncio.gather(
            *(enqueue_task("example_task", message=f"burst {n}") for n in range(50))
        )
        opened = int(watcher.info("stats")["total_connections_received"]) - before

    assert None not in queued
    assert opened <= 2  # before: one pool, and its connection, per first caller (50)


async def test_concurrent_enqueues_while_redis_is_away_each_get_a_clear_error(
    configure: Configure,
) -> None:
    server = LocalRedisServer().start()
    configure(REDIS_URL=server.url)
    await close_task_pool()  # the next pool is made for this server
    try:
        await get_task_pool()
        server.stop()
        started = time.monotonic()
        answers = await asyncio.gather(
            *(enqueue_task("example_task", message=f"away {n}") for n in range(5)),
            return_exceptions=True,
        )
        assert time.monotonic() - started < 2
        assert all(isinstance(answer, RedisUnavailableError) for answer in answers), answers
        assert all("cannot reach Redis at" in str(answer) for answer in answers)
    finally:
        await close_task_pool()
        server.stop()


async def test_a_job_id_is_read_in_this_project_s_namespace_only(task_pool: ArqRedis) -> None:
    queued = await enqueue_task("example_task", message="mine", _job_id="order-42")
    assert queued is not None
    queue_name = WorkerSettings.queue_name
    assert queued.job_id == namespaced_job_id(queue_name, "order-42")
    # Followed by the id it was given, or by the one it got.
    assert (await get_job("order-42")).job_id == queued.job_id
    assert await (await get_job(queued.job_id)).status() == JobStatus.queued
    # Another project's job, on the same Redis, by its full id: not this project's to read.
    other = namespaced_job_id(queue_key("another-project", DEFAULT_QUEUE), "order-42")
    await task_pool.set(job_key_prefix + other, b"{}")
    assert await (await get_job(other)).status() == JobStatus.not_found
    assert not await (await get_job(other)).abort(timeout=0)
    assert await task_pool.get(job_key_prefix + other) == b"{}"
