# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just queue-migrate` (ops/migrate.py): a project upgraded from the layout before queue
namespaces keeps its queued, deferred and finished jobs and its dead letters."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_result
from arq.utils import timestamp_ms

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.client.enqueue import get_job
from {{ cookiecutter.package_name }}.infrastructure.keys import namespaced_job_id
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.ops import cli
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import key_prefix, running_prefix
from {{ cookiecutter.package_name }}.infrastructure.store.job_handle import JobStatus
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize, serialize
from {{ cookiecutter.package_name }}.infrastructure.testing import BurstWorker

from .conftest import add_dead_letter

# QUEUE_NAME's default before queue namespaces, and another service's queue on the same Redis.
OLD_QUEUE = "{{ cookiecutter.project_slug }}:queue"
OTHER_QUEUE = "billing:queue"


@pytest.fixture
async def old_pool(redis_server: LocalRedisServer, task_pool: ArqRedis) -> AsyncIterator[ArqRedis]:
    """arq's own pool on the old queue, as the project's client was before the update."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_server.url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=OLD_QUEUE,
    )
    yield pool
    await pool.aclose()


def a_result(job_id: str, queue_name: str) -> bytes:
    """A finished job's result, as arq writes it with the project's serializer."""
    now = timestamp_ms()
    data = serialize_result(
        "example_task", (), {"message": job_id}, 1, now, True, f"done {job_id}",
        now, now, f"{job_id}:example_task", queue_name, job_id, serializer=serialize,
    )  # fmt: skip
    assert data is not None
    return data


async def migrate(*args: str) -> int:
    # `main` runs its own event loop, as `just queue-migrate` does: off this test's loop.
    return await asyncio.to_thread(cli.main, ["queue-migrate", *args])


async def test_queue_migrate_moves_the_old_layout_into_the_namespace(
    task_pool: ArqRedis,
    old_pool: ArqRedis,
    burst_worker: BurstWorker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The old layout, as a project wrote it before the update.
    due = await old_pool.enqueue_job("example_task", message="due")
    later = await old_pool.enqueue_job("example_task", message="later", _defer_by=3600)
    order = await old_pool.enqueue_job("example_task", message="order", _job_id="order-42")
    assert due is not None
    assert later is not None
    assert order is not None
    # order-42 was running on an old worker that was killed: a try started, its in-progress
    # mark (left without a lifetime here: it would hold the job for good), its running-list.
    await task_pool.set(retry_key_prefix + "order-42", 1)
    await task_pool.set(in_progress_key_prefix + "order-42", 1)
    await task_pool.sadd(running_prefix(OLD_QUEUE) + "old-host:4141:abcdef", "order-42")  # type: ignore[misc]
    await task_pool.set(result_key_prefix + "done-1", a_result("done-1", OLD_QUEUE), ex=3600)
    await task_pool.set(result_key_prefix + "other-1", a_result("other-1", OTHER_QUEUE), ex=3600)
    await task_pool.set(result_key_prefix + "other-2", b"\x80\x04 pickled", ex=3600)
    await add_dead_letter(task_pool, "new-1")  # the new queue's own, kept
    old_letter = dead_letters.DeadLetter(
        job_id="old-1", function="example_task", args=[], kwargs={}, error_type="PermanentError",
        error="refused", tries=1, enqueued_at=datetime.now(UTC), failed_at=datetime.now(UTC),
    )  # fmt: skip
    await dead_letters.add(task_pool, OLD_QUEUE, old_letter, limit=10)
    old_scores = dict(await task_pool.zrange(OLD_QUEUE, 0, -1, withscores=True))
    job_ttl = await task_pool.pttl(job_key_prefix + later.job_id)

    assert await migrate() == 0
    assert capsys.readouterr().out.splitlines() == [
        f"moved 3 job(s), 1 result(s) and 1 dead letter(s) from {OLD_QUEUE} to "
        f"{get_settings().queue_name}"
    ]

    queue = get_settings().queue_name
    new_scores = dict(await task_pool.zrange(queue, 0, -1, withscores=True))
    assert new_scores == {
        namespaced_job_id(queue, job_id.decode()).encode(): score
        for job_id, score in old_scores.items()
    }
    assert not await task_pool.exists(OLD_QUEUE, dead_letters.dead_letter_key(OLD_QUEUE))
    assert not await task_pool.exists(job_key_prefix + "order-42", retry_key_prefix + "order-42")
    assert not await task_pool.exists(in_progress_key_prefix + namespaced_job_id(queue, "order-42"))
    assert not await task_pool.exists(running_prefix(OLD_QUEUE) + "old-host:4141:abcdef")
    moved_later = job_key_prefix + namespaced_job_id(queue, later.job_id)
    assert 0 < await task_pool.pttl(moved_later) <= job_ttl  # RENAME kept its lifetime
    assert await task_pool.get(retry_key_prefix + namespaced_job_id(queue, "order-42")) == b"1"

    # A bare id is looked up in the default queue (client/enqueue.py).
    order_job = await get_job("order-42")
    assert await order_job.status() == JobStatus.queued
    info = await order_job.info()
    assert info is not None
    assert info.kwargs == {"message": "order"}
    assert await (await get_job("done-1")).result(timeout=0) == "done done-1"
    assert json.loads(await task_pool.get(result_key_prefix + "other-1") or b"")["q"] == OTHER_QUEUE
    assert await task_pool.get(result_key_prefix + "other-2") == b"\x80\x04 pickled"
    letters = await dead_letters.all_letters(task_pool, queue)
    assert [letter.job_id for letter in letters] == ["new-1", "old-1"]  # oldest last

    # The new worker runs what was due and leaves the deferred job for its time.
    worker = await burst_worker(max_burst_jobs=2)  # the deferred job would keep it waiting
    assert worker.jobs_complete == 2
    assert await (await get_job(due.job_id)).result(timeout=0) == "Processed: due"
    assert await order_job.status() == JobStatus.complete
    assert await (await get_job(later.job_id)).status() == JobStatus.deferred

    # A second run finds nothing left to move.
    assert await migrate() == 0
    assert capsys.readouterr().out.splitlines() == [
        f"nothing to move from {OLD_QUEUE} to {queue}: no jobs, results or dead letters"
    ]
    assert await task_pool.get(result_key_prefix + "other-2") == b"\x80\x04 pickled"


async def test_queue_migrate_refuses_while_a_worker_on_the_old_queue_is_alive(
    task_pool: ArqRedis, old_pool: ArqRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    job = await old_pool.enqueue_job("example_task", _job_id="order-7")
    assert job is not None
    beat = {"queue": OLD_QUEUE, "host": "old-host", "pid": 4242, "started_at": "2026-01-01T00:00"}
    await task_pool.set(key_prefix(OLD_QUEUE) + "old-host:4242:abcdef", json.dumps(beat), ex=60)

    assert await migrate() == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"1 worker(s) still alive on the old queue {OLD_QUEUE} (old-host pid 4242): "
        "stop them first (or pass --force)"
    )
    assert await task_pool.zscore(OLD_QUEUE, "order-7") is not None  # nothing moved

    assert await migrate("--force") == 0
    assert await (await get_job("order-7")).status() == JobStatus.queued


async def test_queue_migrate_takes_the_old_queue_s_name(
    task_pool: ArqRedis, redis_server: LocalRedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # A project whose QUEUE_NAME was not the default names it.
    pool = await create_pool(
        RedisSettings.from_dsn(redis_server.url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name="shop-jobs",
    )
    try:
        await pool.enqueue_job("example_task", _job_id="order-9")
    finally:
        await pool.aclose()

    assert await migrate() == 0
    assert "nothing to move" in capsys.readouterr().out
    assert await migrate("shop-jobs") == 0
    assert capsys.readouterr().out.startswith("moved 1 job(s), 0 result(s) and 0 dead letter(s)")
    assert await (await get_job("order-9")).status() == JobStatus.queued
