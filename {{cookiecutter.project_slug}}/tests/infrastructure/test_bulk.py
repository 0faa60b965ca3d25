# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Enqueueing many jobs in one call (infrastructure/client/bulk.py): by name and through a typed
handle, checked as one job is, written in chunks of one script call each, with ids and dedup, and
nothing queued when one job is bad. On the session's Redis, with a burst worker."""

import importlib
from types import ModuleType
from typing import Any

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.client import bulk
from {{ cookiecutter.package_name }}.infrastructure.client.enqueue import PreparedJob
from {{ cookiecutter.package_name }}.infrastructure.keys import namespaced_job_id, queue_key
from {{ cookiecutter.package_name }}.infrastructure.limits import limited_key
from {{ cookiecutter.package_name }}.infrastructure.store.job_writes import (
    ENQUEUE_JOBS,
    WAKE_TOKENS_KEPT,
    wake_key,
)
from {{ cookiecutter.package_name }}.jobs import example_task
from {{ cookiecutter.package_name }}.queue import (
    JobArgumentError,
    RedisUnavailableError,
    UnknownQueueError,
    UnknownTaskError,
    enqueue_many,
    enqueue_task,
)

from .conftest import RunWorker, command_calls, full_id


async def test_only_a_chosen_job_id_is_looked_up_before_the_job_is_written(
    task_pool: ArqRedis,
) -> None:
    await enqueue_task("example_task", "warm-up")  # the script loaded, the pool open
    before = await command_calls(task_pool, "exists")
    for number in range(5):
        assert await enqueue_task("example_task", f"new id {number}") is not None
    made_here = await command_calls(task_pool, "exists") - before

    first = await enqueue_task("example_task", "chosen", _job_id="order-7")
    again = await enqueue_task("example_task", "chosen", _job_id="order-7")
    chosen = await command_calls(task_pool, "exists") - before - made_here

    # An id made here (128 random bits) is nobody's yet: no EXISTS. A chosen one keeps the rule.
    assert made_here == 0
    assert first is not None
    assert again is None
    assert chosen == 2


async def test_a_chunk_looks_ids_up_only_where_the_caller_chose_them(task_pool: ArqRedis) -> None:
    await enqueue_many("example_task", [("warm-up",)])  # the script loaded, the pool open
    before = await command_calls(task_pool, "exists")
    assert None not in await enqueue_many("example_task", [(f"new {n}",) for n in range(5)])
    made_here = await command_calls(task_pool, "exists") - before

    chosen = await enqueue_many("example_task", [("a",), ("b",)], job_ids=["bulk-a", "bulk-b"])
    looked_up = await command_calls(task_pool, "exists") - before - made_here

    assert made_here == 0  # ids made here (128 random bits) are nobody's yet
    assert None not in chosen
    assert looked_up == 2  # chosen ids keep the rule: one EXISTS each


async def test_a_failed_chunk_says_how_many_jobs_were_written_of_how_many(
    task_pool: ArqRedis,
) -> None:
    # The second chunk's queue is a key of another type: Redis refuses that chunk only.
    chunks = []
    for name, size in (("first", 3), ("second", 4)):
        queue = queue_key("bulk-test", name)
        ids = [namespaced_job_id(queue, f"job-{n}") for n in range(size)]
        chunks.append([PreparedJob(job_id, queue, "{}", 0, 60_000, None, False) for job_id in ids])
    await task_pool.set(queue_key("bulk-test", "second"), "not a queue")

    with pytest.raises(RedisUnavailableError) as raised:
        await bulk.write_all(task_pool, [bulk.write_of(chunk) for chunk in chunks])

    assert "(3 of 7 jobs' chunks were written;" in str(raised.value)


async def test_many_jobs_by_name_run_in_order_in_a_few_script_calls(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    arguments: list[tuple[str] | dict[str, str]] = [(f"m{n}",) for n in range(2400)]
    arguments.append({"message": "by keyword"})
    await task_pool.script_load(ENQUEUE_JOBS)  # as it is after the first use
    before = await command_calls(task_pool, "evalsha")

    queued = await enqueue_many("example_task", arguments)

    # 2,401 jobs: three chunks of at most 1,000, one script call each.
    assert await command_calls(task_pool, "evalsha") - before == 3
    assert len(queued) == 2401
    assert None not in queued
    assert len({job.job_id for job in queued if job is not None}) == 2401
    assert await task_pool.zcard(get_settings().queue_name) == 2401
    wake_tokens = await task_pool.llen(wake_key(get_settings().queue_name))  # type: ignore[misc]
    assert 0 < wake_tokens <= 3 * WAKE_TOKENS_KEPT  # a few per chunk, not one per job
    await run_burst_worker(cron_jobs=[])
    results = [await job.result(timeout=5) for job in queued if job is not None]
    assert results[:2] == ["Processed: m0", "Processed: m1"]
    assert results[-1] == "Processed: by keyword"


async def test_job_ids_make_a_repeat_queue_only_what_is_new(task_pool: ArqRedis) -> None:
    first = await enqueue_many("example_task", [("a",), ("b",)], job_ids=["bulk-a", "bulk-b"])
    again = await enqueue_many(
        "example_task", [("a",), ("b",), ("c",), ("c twice",)],
        job_ids=["bulk-a", "bulk-b", "bulk-c", "bulk-c"],
    )  # fmt: skip

    assert [job.job_id if job else None for job in first] == [full_id("bulk-a"), full_id("bulk-b")]
    assert [job.job_id if job else None for job in again] == [None, None, full_id("bulk-c"), None]
    assert await task_pool.zcard(get_settings().queue_name) == 3
    single = await enqueue_task("example_task", "a", _job_id="bulk-a")
    assert single is None  # the same rule as enqueue_task's


@pytest.mark.parametrize(
    ("arguments", "options", "error", "message"),
    [
        ([("ok",)] * 5 + [(1, 2, 3)], {}, JobArgumentError, "job 5: cannot enqueue 'example_task': too many positional arguments"),
        ([("ok",), {"wrong": 1}], {}, JobArgumentError, "job 1: cannot enqueue 'example_task': got an unexpected keyword argument 'wrong'"),
        ([("ok",), (object(),)], {}, JobArgumentError, "job 1: cannot enqueue 'example_task': "),
        ([("ok",), ["a list"]], {}, JobArgumentError, "job 1: cannot enqueue 'example_task': give a tuple of arguments or a dict"),
        ([("ok",)], {"queue": "nowhere"}, UnknownQueueError, "job 0: cannot enqueue 'example_task': no queue named 'nowhere'"),
        ([("ok",)], {"job_ids": ["a", "b"]}, JobArgumentError, "cannot enqueue 'example_task': 2 job_ids for 1 jobs"),
        ([("ok",)], {"job_ids": ["a\0b"]}, JobArgumentError, "job 0: cannot enqueue 'example_task': its id holds a NUL"),
    ],
)  # fmt: skip
async def test_one_bad_job_queues_nothing_and_is_named(
    task_pool: ArqRedis,
    arguments: list[object],
    options: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as raised:
        await enqueue_many("example_task", arguments, **options)  # type: ignore[arg-type]

    assert str(raised.value).startswith(message), raised.value
    assert await task_pool.zcard(get_settings().queue_name) == 0
    assert await task_pool.keys("arq:job:*") == []


async def test_an_unknown_job_queues_nothing(task_pool: ArqRedis) -> None:
    with pytest.raises(UnknownTaskError, match=r"^job 0: no job named 'no_such_job'"):
        await enqueue_many("no_such_job", [()])

    assert await task_pool.zcard(get_settings().queue_name) == 0


async def test_a_typed_handle_queues_its_calls_and_refuses_another_job_s(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    orders = ["A-1", "A-2", "A-3"]

    queued = await example_task.enqueue_many(example_task.call(order) for order in orders)
    unique = await example_task.enqueue_many(
        [example_task.options(job_id="order-A-1").call("A-1", seconds=0)] * 2
    )
    await run_burst_worker(cron_jobs=[])

    assert [await job.result(timeout=5) for job in queued if job is not None] == [
        "Processed: A-1",
        "Processed: A-2",
        "Processed: A-3",
    ]
    assert [job.job_id if job else None for job in unique] == [full_id("order-A-1"), None]
    other: bulk.JobCall[Any, Any] = bulk.JobCall("another_job", ("x",))
    with pytest.raises(
        JobArgumentError,
        match="job 0: cannot enqueue 'example_task': it is a call of 'another_job'",
    ):
        await example_task.enqueue_many([other])


async def test_limited_jobs_carry_their_limits_in_bulk_too(
    task_pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import limit_jobs

    module: ModuleType = importlib.reload(limit_jobs)
    queued = await module.per_domain.enqueue_many(
        [module.per_domain.call("example.org", "/a"), module.per_domain.call("example.com", "/b")]
    )

    queue_name = get_settings().queue_name
    for job in queued:
        assert job is not None
        assert await task_pool.exists(limited_key(queue_name, job.job_id)) == 1
    # A misspelt keyword is named, not the argument it leaves out.
    misspelt = r"^job 0: cannot enqueue 'per_domain': got an unexpected keyword argument 'domian'"
    with pytest.raises(JobArgumentError, match=misspelt):
        await enqueue_many("per_domain", [{"domian": "example.org", "path": "/c"}])
