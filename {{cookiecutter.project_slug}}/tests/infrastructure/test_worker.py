# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The worker's loop (worker.py): woken by every way the project enqueues (`enqueue_task`, the
pool's `enqueue_job`, a job's `ctx["redis"].enqueue_job`), on time for deferred jobs, within the
fallback for jobs a foreign arq client queues, and claims that leave arq's retry timing as it was.

The bounds below are far from the typical figures (a woken job starts about a millisecond
after it is queued; bench/compare.py measures that): they tell a wake-up from a fallback poll.
"""

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

from {{ cookiecutter.package_name }}.infrastructure.keys import abort_requests_key
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.store.connection import send_in_turn
from {{ cookiecutter.package_name }}.infrastructure.store.job_handle import drop_stale_abort_requests
from {{ cookiecutter.package_name }}.infrastructure.store.job_writes import (
    WAKE_TOKENS_KEPT,
    JobPool,
    wake_key,
)
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize, serialize
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.finishes import FINISH_JOBS, Outcome, OutcomeWriter
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.infrastructure.worker.loop import CLAIM_JOBS, FALLBACK_POLL_SECONDS
from {{ cookiecutter.package_name }}.infrastructure.worker.missing_functions import waiting_since_key
from {{ cookiecutter.package_name }}.infrastructure.worker.run import start_task
from {{ cookiecutter.package_name }}.jobs import example_task
from {{ cookiecutter.package_name }}.queue import (
    Job,
    JobStatus,
    Retry,
    enqueue_many,
    enqueue_task,
    get_job,
)

from .conftest import (
    RunningWorker,
    WorkerProcesses,
    command_calls,
    make_worker,
    wait_until_listed,
)

# Well under the fallback poll: a job that starts this soon was woken, not found by a poll.
WOKEN_WITHIN_SECONDS = FALLBACK_POLL_SECONDS / 4
QUEUE = WorkerSettings.queue_name


async def seconds_to_start(queued: Any) -> float:
    """Seconds from enqueueing to the start of a job that has finished."""
    result = await queued.result_info()
    assert result is not None
    waited: float = (result.start_time - result.enqueue_time).total_seconds()
    return waited


@pytest.fixture
async def foreign_pool(redis_server: LocalRedisServer) -> AsyncIterator[ArqRedis]:
    """A pool made by arq's own `create_pool`, as another service would: it knows no tokens."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_server.url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=WorkerSettings.queue_name,
    )
    yield pool
    await pool.aclose()


async def test_each_job_the_project_queues_leaves_a_wake_up_token(
    task_pool: ArqRedis, foreign_pool: ArqRedis
) -> None:
    await enqueue_task("example_task", message="now")
    await enqueue_task("example_task", message="later", _defer_by=60)
    await task_pool.enqueue_job("example_task", message="the pool's own enqueue_job")
    await foreign_pool.enqueue_job("example_task", message="arq's client")  # knows no tokens

    wake = wake_key(WorkerSettings.queue_name)
    assert await task_pool.llen(wake) == 3  # type: ignore[misc]


async def test_a_claim_that_leaves_jobs_due_keeps_a_short_token_list(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    # Each job pushes a token and nothing trims it then (one command per job saved): the claims
    # do. With jobs still due, a claim keeps enough tokens to wake WAKE_TOKENS_KEPT workers.
    wake = wake_key(WorkerSettings.queue_name)
    await asyncio.gather(*(enqueue_task("example_task") for _ in range(WAKE_TOKENS_KEPT + 36)))
    assert await task_pool.llen(wake) == WAKE_TOKENS_KEPT + 36  # type: ignore[misc]
    worker = make_worker(redis_server.url)
    worker._pool = task_pool

    jobs, drained, _ = await worker.claim([worker.queue_name], 10, clear_tokens=True)

    assert (len(jobs), drained) == (10, False)
    assert await task_pool.llen(wake) == WAKE_TOKENS_KEPT  # type: ignore[misc]


async def test_a_job_queued_with_the_pool_s_enqueue_job_starts_at_once(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    # The form arq's docs show: `(await get_task_pool()).enqueue_job(...)`.
    async with running_worker():
        await asyncio.sleep(0.2)  # idle: waiting for a wake-up
        for n in range(3):
            queued = await task_pool.enqueue_job("example_task", message=f"pool {n}")
            assert queued is not None
            assert await queued.result(timeout=5) == f"Processed: pool {n}"
            assert await seconds_to_start(queued) < WOKEN_WITHIN_SECONDS
            assert isinstance(queued, Job)  # the project's handle, with its truthful status()
            await asyncio.sleep(0.3)


async def queues_a_follow_up(ctx: dict[str, Any]) -> str:
    follow_up = await ctx["redis"].enqueue_job("example_task", message="follow-up")
    return str(follow_up.job_id)


async def test_a_job_queued_from_inside_a_job_starts_at_once(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker(
        functions=[arq_function(queues_a_follow_up), arq_function(example_task)]
    ):
        await asyncio.sleep(0.2)
        queued = await task_pool.enqueue_job("queues_a_follow_up")
        assert queued is not None
        follow_up_id = await queued.result(timeout=5)
        follow_up = await get_job(follow_up_id)
        assert await follow_up.result(timeout=5) == "Processed: follow-up"
        assert await seconds_to_start(follow_up) < WOKEN_WITHIN_SECONDS


async def test_an_idle_worker_starts_a_queued_job_at_once(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker():
        await asyncio.sleep(0.2)  # idle: waiting for a wake-up
        for n in range(3):
            queued = await enqueue_task("example_task", message=f"woken {n}")
            assert queued is not None
            await queued.result(timeout=5)
            assert await seconds_to_start(queued) < WOKEN_WITHIN_SECONDS
            await asyncio.sleep(0.3)  # a different point of the worker's wait each time

    # The claim that found nothing more due took the tokens away.
    assert await task_pool.llen(wake_key(WorkerSettings.queue_name)) == 0  # type: ignore[misc]


async def test_a_job_queued_by_arq_s_own_client_starts_within_the_fallback(
    task_pool: ArqRedis, foreign_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker():
        await asyncio.sleep(0.2)
        queued = await foreign_pool.enqueue_job("example_task", message="no token")
        assert queued is not None
        assert await queued.result(timeout=FALLBACK_POLL_SECONDS + 2) == "Processed: no token"


async def test_a_deferred_job_starts_at_its_time(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker():
        await asyncio.sleep(0.2)
        queued = await enqueue_task("example_task", message="in 0.3 s", _defer_by=0.3)
        assert queued is not None
        await queued.result(timeout=5)
        # Its token woke the worker, which then waited for its start time, not for a poll.
        assert 0.3 <= await seconds_to_start(queued) < 0.3 + WOKEN_WITHIN_SECONDS


async def retries_after_a_delay(ctx: dict[str, Any]) -> int:
    if ctx["job_try"] == 1:
        raise Retry(defer=0.3)
    return int(ctx["job_try"])


async def test_a_retry_s_delay_counts_from_the_job_not_from_its_claim(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    # A claim moves the job's score to when the claim would expire (over 5 minutes ahead);
    # arq adds a retry's delay to the score, so the worker puts it back first.
    queued = await task_pool.enqueue_job("retries_after_a_delay")
    assert queued is not None
    async with running_worker(functions=[arq_function(retries_after_a_delay)]):
        assert await queued.result(timeout=10) == 2


async def test_a_job_cancelled_before_its_function_ran_is_given_back_with_its_try(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    # arq's shutdown cancels every job task, and then gathers them. The claim has read the job
    # and counted its try; one still waiting for a function slot must neither stay claimed,
    # nor keep a try it never used, nor fail the shutdown.
    queued = await enqueue_task("example_task", message="claimed at shutdown")
    assert queued is not None
    worker = make_worker(redis_server.url, on_job_start=None)
    worker._pool = task_pool  # as main() would set it, without starting the loop
    jobs, _, _ = await worker.claim([worker.queue_name], 1, clear_tokens=True)
    assert [job_id for job_id, _ in jobs] == [queued.job_id]
    assert await queued.status() == JobStatus.in_progress
    assert await task_pool.get(retry_key_prefix + queued.job_id) == b"1"  # counted by the claim

    for _ in range(worker.max_jobs):  # every function slot busy
        await worker._function_slots.acquire()
    running = asyncio.create_task(worker.run_job(*jobs[0]))
    await asyncio.sleep(0.1)  # waiting for a slot
    running.cancel()
    await running  # ends normally: arq's close() gathers it

    assert await queued.status() == JobStatus.queued
    assert await task_pool.get(retry_key_prefix + queued.job_id) == b"0"


async def test_a_job_cancelled_while_it_is_read_is_given_back(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    # A job claimed without its read (handed over by a concurrency limit's release) is read
    # when it starts; cancelled then (Redis paused here to hold it there), it is given back.
    queued = await enqueue_task("example_task", message="read at shutdown")
    assert queued is not None
    worker = make_worker(redis_server.url)
    worker._pool = task_pool
    jobs, _, _ = await worker.claim([worker.queue_name], 1, clear_tokens=True)
    worker._claimed_reads.pop(queued.job_id)  # as a handed-over job: not read yet

    await task_pool.client_pause(300, all=False)  # writes wait 0.3 s
    running = asyncio.create_task(worker.run_job(*jobs[0]))
    await asyncio.sleep(0.1)  # blocked in its read
    running.cancel()
    await running

    assert await queued.status() == JobStatus.queued


async def test_closing_a_worker_whose_job_is_in_its_after_job_hook_completes(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    # arq's close() cancels every job task and gathers them: one cancelled after its outcome
    # was written (here, held in the after-job hook) must end normally, or close() raises.
    in_hook = asyncio.Event()

    async def after_job_end(ctx: dict[str, Any]) -> None:
        in_hook.set()
        await asyncio.sleep(30)

    worker = make_worker(redis_server.url, after_job_end=after_job_end)
    running = asyncio.create_task(worker.async_run())
    queued = await enqueue_task("example_task", message="done")
    assert queued is not None
    await asyncio.wait_for(in_hook.wait(), timeout=5)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running

    await worker.close()  # before: raised the job task's CancelledError

    assert await queued.status() == JobStatus.complete


async def sleeps_briefly(ctx: dict[str, Any]) -> str:
    await ctx["redis"].set("sleeps_briefly:started", 1)
    await asyncio.sleep(0.3)
    return "slept"


async def test_closing_a_worker_while_a_job_s_outcome_is_being_written_completes(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    worker = make_worker(redis_server.url, functions=[arq_function(sleeps_briefly)])
    running = asyncio.create_task(worker.async_run())
    queued = await task_pool.enqueue_job("sleeps_briefly")
    assert queued is not None
    for _ in range(250):
        if await task_pool.exists("sleeps_briefly:started"):
            break
        await asyncio.sleep(0.02)
    await task_pool.client_pause(1000, all=False)  # the outcome's write waits until 1 s
    await asyncio.sleep(0.6)  # the job has ended: its outcome is being written
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running

    await worker.close()  # before: raised the job task's CancelledError

    assert await queued.result(timeout=5) == "slept"


FAULT_JOBS = "tests.infrastructure.fault_jobs.WorkerSettings"


async def wait_for(condition: Any, seconds: float, what: str) -> None:
    """Wait until the coroutine function `condition` returns true, for up to `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds} s")


async def test_a_job_read_ahead_then_given_back_at_shutdown_keeps_its_try(
    task_pool: JobPool, worker_processes: WorkerProcesses
) -> None:
    # One function slot, held by a 3 s job; the next job, with one try allowed, is read ahead.
    first = worker_processes.start(FAULT_JOBS, WORKER_MAX_JOBS="1", WORKER_MAX_TRIES="1")
    holder = await task_pool.enqueue_job("sleepy", "holder", 3)
    await wait_for(lambda: task_pool.exists("starts:holder"), 10, "the 3 s job started")
    read_ahead = await task_pool.enqueue_job("counted", 1)
    assert holder is not None
    assert read_ahead is not None
    await wait_until_listed(task_pool, running=2)

    first.send_signal(signal.SIGTERM)  # the 3 s job finishes; the one read ahead is given back
    assert await asyncio.to_thread(first.wait, 15) == 0
    assert await holder.status() == JobStatus.complete
    assert await read_ahead.status() == JobStatus.queued
    assert await task_pool.get(retry_key_prefix + read_ahead.job_id) in (None, b"0")

    worker_processes.start(FAULT_JOBS, WORKER_MAX_JOBS="1", WORKER_MAX_TRIES="1")
    await read_ahead.result(timeout=10)  # before: "max 1 retries exceeded", never run
    assert await task_pool.hget("runs", "1") == b"1"  # type: ignore[misc]


async def test_a_job_for_a_function_this_worker_lacks_waits_for_one_that_has_it(
    task_pool: JobPool, worker_processes: WorkerProcesses
) -> None:
    # A rolling deploy: the running worker predates `counted`, a newer client queues it.
    worker_processes.start()  # the project's own WorkerSettings: no `counted`
    queued = await task_pool.enqueue_job("counted", 7)
    assert queued is not None
    waiting_since = waiting_since_key(QUEUE, queued.job_id)
    await wait_for(lambda: task_pool.exists(waiting_since), 10, "offered")
    await asyncio.sleep(1)  # given back, due again 5 s later
    assert await queued.status() in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)
    assert "is not registered on this worker" in worker_processes.log(0)

    worker_processes.start(FAULT_JOBS)  # the new version, with `counted`
    await queued.result(timeout=45)
    assert await task_pool.hget("runs", "7") == b"1"  # type: ignore[misc]
    result = await queued.result_info()
    assert result is not None
    assert result.job_try == 1  # the looks that found no function used no try


async def test_a_job_s_function_starts_in_the_turn_its_task_is_made() -> None:
    # Python 3.12+ starts a job's task at once (run.py's `start_task`, `eager_start`): the
    # function runs up to its first wait before the worker's turn of the event loop ends, one
    # turn sooner than a task merely scheduled, as on 3.11.
    ran = []

    async def function() -> None:
        ran.append("started")
        await asyncio.sleep(0)
        ran.append("ended")

    task = start_task(asyncio.get_running_loop(), function())
    assert ran == (["started"] if sys.version_info >= (3, 12) else [])
    await task
    assert ran == ["started", "ended"]


async def test_a_job_whose_outcome_is_being_written_leaves_its_place_to_the_next_claim(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    # One slot and one job read ahead: two jobs in hand. Redis holds every write (CLIENT PAUSE
    # WRITE) from just before the running job's function returns until a second later, so that
    # job's outcome waits to be written. Its function has ended: the job in hand starts, and
    # the one whose outcome waits no longer counts against the jobs in hand (loop.py's
    # `free_slots`), so the next claim goes out for a job to read ahead.
    started: dict[str, float] = {}

    async def first(ctx: dict[str, Any]) -> None:
        started["first"] = time.monotonic()
        await asyncio.sleep(0.5)

    async def second(ctx: dict[str, Any]) -> None:
        started["second"] = time.monotonic()
        await asyncio.sleep(1)

    functions = [arq_function(first), arq_function(second)]
    async with running_worker(functions=functions, max_jobs=1) as worker:
        assert worker.read_ahead == 1
        queued = [await task_pool.enqueue_job(name) for name in ("first", "second")]
        assert queued[0] is not None
        assert queued[1] is not None
        for _ in range(250):
            if "first" in started:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.4 - (time.monotonic() - started["first"]))
        await task_pool.client_pause(1500, all=False)  # CLIENT PAUSE 1500 WRITE
        try:
            for _ in range(100):
                if "second" in started:
                    break
                await asyncio.sleep(0.01)
            assert "second" in started, "the job in hand waited for the outcome's write"
            assert not await task_pool.exists(result_key_prefix + queued[0].job_id)
            assert worker.free_slots() == 1  # the second running, the first's place free
        finally:
            await task_pool.client_unpause()
        await queued[0].result(timeout=5)
        await queued[1].result(timeout=5)


async def test_a_claim_sent_behind_a_wait_takes_jobs_queued_after_it_was_sent(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    # The worker sends its claim right behind its BRPOP on one connection (`wait_then_claim`):
    # Redis runs it the moment the wait ends. It takes the jobs that ended the wait, queued
    # after it was sent (due by Redis's clock, not by the worker's when it sent it), and having
    # taken from the queue, deletes the wake-up tokens left, which would wake other workers for
    # nothing.
    worker = make_worker(redis_server.url, functions=[arq_function(sleeps_briefly)], max_jobs=2)
    queue_names = worker.claim_order()
    keys, arguments, asked_at = worker.claim_call(queue_names, 2, "2", behind_a_wait=True)
    waiting = asyncio.ensure_future(
        send_in_turn(
            task_pool,
            ("BRPOP", wake_key(QUEUE), 5),
            ("EVAL", CLAIM_JOBS, len(keys), *keys, *arguments),
        )
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()  # blocked in its BRPOP
    queued = await enqueue_many("example_task", [{"message": "a"}, {"message": "b"}])
    token, reply = await asyncio.wait_for(waiting, 5)

    assert token is not None
    jobs, drained, _ = worker.read_claim(queue_names, reply, asked_at)
    # Both due in the same millisecond: in the queue in id order, not in the order queued.
    assert sorted(job_id for job_id, _ in jobs) == sorted(job.job_id for job in queued if job)
    assert drained
    for job_id, _ in jobs:
        assert await task_pool.exists(in_progress_key_prefix + job_id)
    assert not await task_pool.exists(wake_key(QUEUE))


async def test_a_job_queued_just_before_a_claim_behind_a_wait_runs_is_due_to_it(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    # A job's score is arq's `timestamp_ms()`, the enqueuer's clock rounded to the nearest
    # millisecond; the claim reads Redis's clock (TIME) for a job not due by the clock it was
    # sent with. Read by truncation, that clock was up to half a millisecond behind the score
    # of a job queued in the same millisecond: the claim behind a wait left the job that woke
    # it (seen neither as due nor its queue's pause looked at), and a claim of the loop's own,
    # not due to look at the pause, started it in a queue paused meanwhile. Each round here is
    # a fresh chance (about one in ten per round here: 200 rounds, a second, never all missed).
    worker = make_worker(redis_server.url, functions=[arq_function(sleeps_briefly)], max_jobs=1)
    queue_names = worker.claim_order()
    for round_ in range(200):
        keys, arguments, asked_at = worker.claim_call(queue_names, 1, "2", behind_a_wait=True)
        arguments[0] -= 1_000  # sent a second before the job was queued
        job = await enqueue_task("example_task", message=f"round {round_}")
        assert job is not None
        reply = await task_pool.eval(CLAIM_JOBS, len(keys), *keys, *arguments)  # type: ignore[misc]
        jobs, _, _ = worker.read_claim(queue_names, reply, asked_at)
        assert [job_id for job_id, _ in jobs] == [job.job_id], f"round {round_}"


async def test_outcomes_that_end_in_one_turn_are_written_in_one_script_call(
    task_pool: ArqRedis,
) -> None:
    ids = [f"{QUEUE}:finish-{n}" for n in range(5)]
    for job_id in ids:
        for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix):
            await task_pool.set(prefix + job_id, b"1")
        await task_pool.zadd(QUEUE, {job_id: 1})
        await task_pool.zadd(abort_requests_key(QUEUE), {job_id: 1})
    await task_pool.script_load(FINISH_JOBS)  # no NOSCRIPT round in the count
    writer = OutcomeWriter(task_pool)
    calls = await command_calls(task_pool, "evalsha")

    await asyncio.gather(
        *(
            writer.write(QUEUE, Outcome(job_id, b"done" if n % 2 else None, 60.0, n < 2))
            for n, job_id in enumerate(ids)
        )
    )

    assert await command_calls(task_pool, "evalsha") == calls + 1
    assert await task_pool.zcard(QUEUE) == 0
    gone = [
        prefix + job_id
        for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix)
        for job_id in ids
    ]
    assert await task_pool.exists(*gone) == 0
    for n, job_id in enumerate(ids):
        lifetime_ms = await task_pool.pttl(result_key_prefix + job_id)
        assert (n % 2 == 1 and 0 < lifetime_ms <= 60_000) or (n % 2 == 0 and lifetime_ms == -2)
    # Dropped where asked; the rest are stale (no job), and the heartbeats drop those.
    requests = await task_pool.zrange(abort_requests_key(QUEUE), 0, -1)
    assert sorted(requests) == sorted(job_id.encode() for job_id in ids[2:])
    assert await drop_stale_abort_requests(task_pool, QUEUE) == 3


@pytest.mark.parametrize(("keep_result", "request_left"), [(3600, True), (0, False)])
async def test_an_abort_request_the_worker_never_saw_is_dropped_when_its_id_could_return(
    task_pool: ArqRedis, redis_server: LocalRedisServer, keep_result: int, request_left: bool
) -> None:
    # The request comes while the job runs and the worker looks for requests only every 30 s,
    # so the job ends first. With its result kept, no job can take its id until the heartbeats
    # have dropped the request; with none kept, one can at once, so the finish drops it.
    worker = make_worker(
        redis_server.url,
        functions=[arq_function(sleeps_briefly)],
        poll_delay=30,
        keep_result=keep_result,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        queued = await task_pool.enqueue_job("sleeps_briefly")
        assert queued is not None

        async def started() -> bool:
            return bool(await task_pool.exists("sleeps_briefly:started"))

        async def ended() -> bool:
            return not await task_pool.exists(in_progress_key_prefix + queued.job_id)

        await wait_for(started, 5, "the job to start")
        assert not await queued.abort(timeout=0)  # asked, not done: the worker has not looked
        requests = abort_requests_key(QUEUE)
        assert await task_pool.zscore(requests, queued.job_id) is not None
        await wait_for(ended, 5, "the job to end")

        left = await task_pool.zscore(requests, queued.job_id) is not None
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()

    assert left == request_left
    assert await drop_stale_abort_requests(task_pool, QUEUE) == (1 if request_left else 0)
