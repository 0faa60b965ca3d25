# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The workers' activity record (infrastructure/ops/activity.py): what real workers write about the
jobs they finish, how it is read back, and that it costs no Redis command per job."""

import asyncio
import os
import socket
import time

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import job_events
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import free_port
from {{ cookiecutter.package_name }}.infrastructure.ops import activity
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import Heartbeat
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError, enqueue_task

from .conftest import Configure, RunningWorker, RunWorker, command_calls, full_id


async def succeeds(ctx: JobContext, number: int) -> int:
    return number


async def fails_for_good(ctx: JobContext, reason: str) -> None:
    raise PermanentError(reason)


async def fails_once(ctx: JobContext) -> str:
    if ctx["job_try"] == 1:
        raise ValueError("first try")
    return "second try"


def queue() -> str:
    return get_settings().queue_name


async def test_a_worker_records_each_finished_try_newest_first(
    task_pool: ArqRedis, run_burst_worker: RunWorker, configure: Configure
) -> None:
    configure(WORKER_RETRY_BASE="0.01")
    for number in range(3):
        await task_pool.enqueue_job("succeeds", number, _job_id=f"ok-{number}")
    await task_pool.enqueue_job("fails_for_good", "no such user", _job_id="bad")
    await task_pool.enqueue_job("fails_once", _job_id="flaky")

    # No cron: a tick due during the test would be recorded too.
    await run_burst_worker(
        functions=[arq_function(succeeds), arq_function(fails_for_good), arq_function(fails_once)],
        cron_jobs=[],
    )

    recent = await activity.recent_jobs(task_pool, queue())
    failures = await activity.recent_jobs(task_pool, queue(), failures=True)
    by_try = {(record.job_id, record.job_try): record for record in recent}
    ok, bad, flaky = full_id("ok-1"), full_id("bad"), full_id("flaky")  # the ids the jobs got
    assert len(recent) == 6  # three successes, one failure, and the flaky job's two tries
    assert [record.finished_at for record in recent] == sorted(
        (record.finished_at for record in recent), reverse=True
    )
    assert by_try[ok, 1].outcome == "complete"
    assert by_try[ok, 1].error is None
    assert by_try[bad, 1].outcome == "failed"
    assert by_try[bad, 1].error == "PermanentError: no such user"
    assert (by_try[flaky, 1].outcome, by_try[flaky, 2].outcome) == ("retried", "complete")
    assert by_try[flaky, 1].error == "ValueError: first try"
    assert by_try[ok, 1].worker == f"{socket.gethostname()}:{os.getpid()}"
    assert all(0 <= record.duration < 5 for record in recent)
    assert {(record.job_id, record.outcome) for record in failures} == {
        (bad, "failed"),
        (flaky, "retried"),
    }


async def test_the_buckets_count_outcomes_and_sample_the_depth(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    for number in range(4):
        await task_pool.enqueue_job("succeeds", number)
    await task_pool.enqueue_job("fails_for_good", "nope")

    await run_burst_worker(
        functions=[arq_function(succeeds), arq_function(fails_for_good)], cron_jobs=[]
    )
    before = activity.bucket_start(time.time())
    window = await activity.buckets(task_pool, queue())
    counts = await activity.queue_counts(task_pool, queue(), window=window)

    assert len(window) == activity.WINDOW_SECONDS // activity.BUCKET_SECONDS
    assert before <= window[-1].start <= activity.bucket_start(time.time())
    assert sum(bucket.complete for bucket in window) == 4
    assert sum(bucket.failed for bucket in window) == 1
    # The burst worker sampled the depth as it stopped: nothing was waiting any more.
    assert [bucket.depth for bucket in window if bucket.depth is not None][-1] == 0
    assert (counts.last_minute["complete"], counts.last_window["failed"]) == (4, 1)
    assert counts.stats.dead_letters == 1
    ttls = [await task_pool.ttl(activity.bucket_key(queue(), bucket.start)) for bucket in window]
    assert 0 < max(ttls) <= activity.BUCKET_LIFETIME_SECONDS


async def test_the_record_costs_no_redis_command_per_job(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker(functions=[arq_function(succeeds)], cron_jobs=[]):
        await asyncio.sleep(0.2)  # started, and its first writes done
        pushes_before = await command_calls(task_pool, "lpush")
        started = time.monotonic()
        for number in range(300):
            await task_pool.enqueue_job("succeeds", number)
        for _ in range(200):  # until the record is full
            if len(await activity.recent_jobs(task_pool, queue())) == min(
                300, activity.RECENT_LIMIT
            ):
                break
            await asyncio.sleep(0.05)
        for _ in range(100):  # wait for the last of the 300 to be written
            if await task_pool.zcard(queue()) == 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(activity.WRITE_SECONDS + 0.2)
        # Less the wake-up token each enqueue_job pushes (job_writes.py).
        pushes = await command_calls(task_pool, "lpush") - pushes_before - 300
        elapsed = time.monotonic() - started

    # One LPUSH a write (the failures list has none to send), one write a second at most.
    assert 1 <= pushes <= elapsed / activity.WRITE_SECONDS + 1
    window = await activity.buckets(task_pool, queue())
    assert sum(bucket.complete for bucket in window) == 300


async def test_an_idle_worker_still_samples_the_depth(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    await task_pool.enqueue_job("succeeds", 1, _defer_by=60)  # deferred: never due here
    async with running_worker(functions=[arq_function(succeeds)], cron_jobs=[]):
        await asyncio.sleep(activity.WRITE_SECONDS + 0.5)
        window = await activity.buckets(task_pool, queue())

    assert window[-1].depth == 0 or window[-2].depth == 0  # sampled, and nothing due


async def test_notes_a_failed_write_could_not_send_go_with_the_next(task_pool: ArqRedis) -> None:
    nowhere = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    recorder = activity.ActivityRecorder(nowhere, queue())
    now = time.time()
    recorder.heard(
        job_events.JobFinished("kept", "succeeds", 1, now - 1, now - 0.5, now, "complete", None)
    )
    with pytest.raises(RedisError):
        await recorder.write()
    await nowhere.aclose()
    recorder.redis = task_pool
    await recorder.write()

    assert [record.job_id for record in await activity.recent_jobs(task_pool, queue())] == ["kept"]
    assert sum(bucket.complete for bucket in await activity.buckets(task_pool, queue())) == 1


async def test_a_record_keeps_how_long_its_try_waited_to_start(task_pool: ArqRedis) -> None:
    recorder = activity.ActivityRecorder(task_pool, queue())
    now = time.time()
    # Due 3 s ago (enqueued, or deferred to then), started 1 s later, ran for 2 s.
    recorder.heard(
        job_events.JobFinished("waited", "succeeds", 1, now - 3, now - 2, now, "complete", None)
    )
    await recorder.write()

    [record] = await activity.recent_jobs(task_pool, queue())
    assert record.wait == pytest.approx(1.0)
    assert record.duration == pytest.approx(2.0)


async def test_a_busy_worker_records_a_sample_and_the_buckets_say_how_many_it_left_out(
    task_pool: ArqRedis,
) -> None:
    recorder = activity.ActivityRecorder(task_pool, queue())
    now = time.time()
    ended = now - 20  # in a whole bucket before the current one: the last minute counts it
    tries = activity.RECORDED_PER_WRITE + 300
    for number in range(tries):
        recorder.heard(
            job_events.JobFinished(
                f"busy-{number}", "succeeds", 1, ended - 1, ended - 0.5, ended, "complete", None
            )
        )
    await recorder.write()

    recent = await activity.recent_jobs(task_pool, queue())
    window = await activity.buckets(task_pool, queue(), now)
    minute, inside = activity.window_of(recent, now, 60, window)
    counts = await activity.queue_counts(task_pool, queue(), window, recent, now)

    # The newest are written; the bucket counts every try and those left out.
    assert len(recent) == activity.RECORDED_PER_WRITE
    assert recent[0].job_id == f"busy-{tries - 1}"
    assert sum(b.complete for b in window) == tries
    assert sum(b.unrecorded for b in window) == 300
    assert minute.sampled
    assert len(inside) == activity.RECORDED_PER_WRITE
    assert counts.last_minute["complete"] == tries  # from the buckets, not the sample


async def test_each_function_s_last_try_is_kept_even_when_the_list_leaves_it_out(
    task_pool: ArqRedis,
) -> None:
    recorder = activity.ActivityRecorder(task_pool, queue())
    now = time.time()
    recorder.heard(
        job_events.JobFinished("tick", "cron:tidy", 1, now - 2, now - 1.5, now - 1, "failed", "E")
    )
    for number in range(activity.RECORDED_PER_WRITE):  # the tick drops out of the write
        recorder.heard(
            job_events.JobFinished(f"busy-{number}", "succeeds", 1, now, now, now, "complete", None)
        )
    await recorder.write()

    recent = await activity.recent_jobs(task_pool, queue())
    last = await activity.last_tries(task_pool, queue())

    assert "tick" not in {record.job_id for record in recent}
    assert (last["cron:tidy"].job_id, last["cron:tidy"].outcome) == ("tick", "failed")
    assert last["succeeds"].job_id == f"busy-{activity.RECORDED_PER_WRITE - 1}"
    ttl = await task_pool.ttl(activity.last_tries_key(queue()))
    assert activity.LAST_TRIES_SECONDS - 10 < ttl <= activity.LAST_TRIES_SECONDS


async def test_a_deferred_job_s_wait_counts_from_when_it_was_due(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    deferred = await enqueue_task("example_task", message="later", _defer_by=1.5)
    assert deferred is not None
    async with running_worker():
        assert await deferred.result(timeout=10, poll_delay=0.05) == "Processed: later"
        for _ in range(100):  # the record is written within a second
            recent = await activity.recent_jobs(task_pool, queue())
            if recent:
                break
            await asyncio.sleep(0.05)

    [record] = recent
    # From its due time: it started at once. From its enqueue it would be 1.5 s more.
    assert record.wait is not None
    assert record.wait < 1.0


async def test_worker_statuses_show_each_live_workers_beat_and_running_jobs(
    task_pool: ArqRedis,
) -> None:
    heartbeat = Heartbeat(task_pool, queue(), interval=10)
    await heartbeat.start()
    try:
        heartbeat.job_started("job-a")
        await heartbeat.running_jobs.written()
        [status] = await activity.worker_statuses(task_pool, queue())
    finally:
        await heartbeat.stop()

    assert (status.beat.host, status.beat.pid) == (socket.gethostname(), os.getpid())
    assert status.beat.beat_at is not None
    assert status.running == ["job-a"]
    assert await activity.worker_statuses(task_pool, queue()) == []
