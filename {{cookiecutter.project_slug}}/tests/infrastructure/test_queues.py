# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Several named queues (docs/queues.md): a job's own queue, a caller's choice, strict priority
and the weighted order, workers serving some queues only, cron ticks in their job's queue, and
the settings that name the queues. Real workers on the session's Redis."""

import argparse
import asyncio
import json
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import result_key_prefix
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.config import Settings, get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.client.enqueue import UnknownQueueError
from {{ cookiecutter.package_name }}.infrastructure.keys import queue_of
from {{ cookiecutter.package_name }}.infrastructure.ops import cli
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import (
    arq_function,
    worker_functions,
)
from {{ cookiecutter.package_name }}.infrastructure.worker.slots import FunctionSlots
from {{ cookiecutter.package_name }}.queue import JobContext, cron_job, enqueue_task, get_job, job

from .conftest import Configure, RunningWorker, RunWorker

QUEUES = "critical,default,bulk"


@pytest.fixture(autouse=True)
def three_queues(configure: Configure, monkeypatch: pytest.MonkeyPatch) -> None:
    """QUEUES=critical,default,bulk; jobs a test declares last as long as the test."""
    configure(QUEUES=QUEUES)
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))


def key(queue: str) -> str:
    return get_settings().queue_keys[queue]


def served(*queues: str) -> dict[str, Any]:
    """Worker overrides: serve these queues, in this order."""
    return {"queue_names": [key(queue) for queue in queues]}


async def noted(ctx: JobContext, label: str) -> str:
    """Append `label` to the list `ran`, in the order jobs ran."""
    await ctx["redis"].rpush("ran", label)
    return label


NOTED = [arq_function(noted)]


async def ran(pool: ArqRedis) -> list[str]:
    return [label.decode() for label in await pool.lrange("ran", 0, -1)]  # type: ignore[misc]


async def test_a_job_goes_to_its_own_queue_unless_the_caller_names_another(
    task_pool: ArqRedis,
) -> None:
    @job(queue="bulk")
    async def resize(ctx: JobContext, image: str) -> str:
        return image

    queued = await resize.enqueue("a.png")
    by_name = await enqueue_task("resize", image="b.png")
    elsewhere = await resize.options(queue="critical").enqueue("c.png")
    by_keyword = await enqueue_task("resize", image="d.png", _queue_name="default")

    assert queued is not None
    assert by_name is not None
    assert [queue_of(job.job_id) for job in (queued, by_name)] == [key("bulk")] * 2
    assert queue_of(elsewhere.job_id) == key("critical")
    assert by_keyword is not None
    assert queue_of(by_keyword.job_id) == key("default")
    assert await task_pool.zcard(key("bulk")) == 2
    # Followed by its id, whatever its queue; by a bare id in the queue named.
    assert (await get_job(elsewhere.job_id)).queue_name == key("critical")
    assert await (await get_job(elsewhere.job_id)).status() == "queued"
    unique = await resize.options(job_id="img-1").enqueue("e.png")
    assert unique is not None
    assert (await get_job("img-1", queue="bulk")).job_id == unique.job_id
    assert await (await get_job("img-1")).status() == "not_found"  # not in default
    with pytest.raises(UnknownQueueError, match="no queue named 'nope'"):
        await get_job("img-1", queue="nope")


async def test_a_job_queued_from_a_job_goes_to_its_own_queue(task_pool: ArqRedis) -> None:
    @job(queue="bulk")
    async def follow_up(ctx: JobContext) -> None:
        return None

    queued = await task_pool.enqueue_job("follow_up")
    named = await task_pool.enqueue_job("follow_up", _queue_name="critical")

    assert queued is not None
    assert named is not None
    assert queue_of(queued.job_id) == key("bulk")
    assert queue_of(named.job_id) == key("critical")


async def test_a_queue_that_queues_lacks_is_refused_and_nothing_is_queued(
    task_pool: ArqRedis,
) -> None:
    with pytest.raises(UnknownQueueError, match="no queue named 'urgent'; QUEUES lists critical"):
        await enqueue_task("example_task", message="lost?", _queue_name="urgent")

    @job(queue="emails")
    async def send(ctx: JobContext) -> None:
        return None

    with pytest.raises(UnknownQueueError, match="no queue named 'emails'"):
        await send.enqueue()
    with pytest.raises(ValueError, match=r"QUEUES does not list .*send \(emails\)"):
        worker_functions()
    assert [await task_pool.zcard(key(queue)) for queue in QUEUES.split(",")] == [0, 0, 0]


def test_a_malformed_queue_name_is_refused_where_the_job_is_declared() -> None:
    with pytest.raises(ValueError, match="queue must be a queue's name"):

        @job(queue="{bad}")
        async def nowhere(ctx: JobContext) -> None:
            return None


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"QUEUES": "critical,bulk"}, "QUEUES must list 'default'"),
        ({"QUEUES": "default,de fault"}, "not a queue name"),
        ({"QUEUES": "default,bulk,default"}, "QUEUES: listed twice: default"),
        ({"WORKER_QUEUES": "default,urgent"}, "WORKER_QUEUES names queues QUEUES lacks: urgent"),
        ({"WORKER_QUEUE_WEIGHTS": "critical=6,bulk"}, "write each queue's weight as name=number"),
        ({"WORKER_QUEUE_WEIGHTS": "critical=2,bulk=1"}, "a weight to each queue served"),
        ({"WORKER_QUEUE_WEIGHTS": "critical=0,default=1,bulk=1"}, "a whole number from 1"),
    ],
)
def test_queue_settings_that_do_not_fit_are_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


async def test_a_worker_takes_a_higher_queue_s_jobs_first(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    for number in range(6):
        await task_pool.enqueue_job("noted", f"bulk {number}", _queue_name="bulk")
    await task_pool.enqueue_job("noted", "default", _queue_name="default")
    await task_pool.enqueue_job("noted", "critical", _queue_name="critical")

    await run_burst_worker(functions=NOTED, max_jobs=1, **served("critical", "default", "bulk"))

    order = await ran(task_pool)
    assert order[:2] == ["critical", "default"], order
    assert sorted(order[2:]) == [f"bulk {number}" for number in range(6)]


async def test_the_weighted_order_gives_a_lower_queue_its_share(
    task_pool: ArqRedis, run_burst_worker: RunWorker, configure: Configure
) -> None:
    configure(QUEUES=QUEUES, WORKER_QUEUE_WEIGHTS="critical=1,default=1,bulk=1")
    for _ in range(30):
        await task_pool.enqueue_job("noted", "critical", _queue_name="critical")
        await task_pool.enqueue_job("noted", "bulk", _queue_name="bulk")
    weights = {key(queue): 1 for queue in QUEUES.split(",")}

    await run_burst_worker(
        functions=NOTED,
        max_jobs=1,
        max_burst_jobs=20,
        queue_weights=weights,
        **served("critical", "default", "bulk"),
    )

    first = await ran(task_pool)
    # Strict priority would have run 20 critical jobs; equal weights make bulk first in about
    # a third of the claims (no bulk job in 20 claims: a chance below 1 in 3,000).
    assert "bulk" in first, first


async def test_a_worker_serves_only_its_own_queues(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    bulk = await task_pool.enqueue_job("noted", "bulk", _queue_name="bulk")
    critical = await task_pool.enqueue_job("noted", "critical", _queue_name="critical")
    assert bulk is not None
    assert critical is not None

    await run_burst_worker(functions=NOTED, **served("critical"))

    assert await ran(task_pool) == ["critical"]
    assert await bulk.status() == "queued"
    # Its result says which queue it ran on: its own, not the worker's first.
    result = json.loads(await task_pool.get(result_key_prefix + critical.job_id) or b"{}")
    assert result["q"] == key("critical")


async def test_a_running_job_of_a_lower_queue_is_aborted(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async def waits(ctx: JobContext) -> None:
        await ctx["redis"].set("waits:started", 1)
        await asyncio.sleep(30)

    queued = await task_pool.enqueue_job("waits", _queue_name="bulk")
    assert queued is not None
    async with running_worker(functions=[arq_function(waits)], **served("default", "bulk")):
        for _ in range(200):
            if await task_pool.exists("waits:started"):
                break
            await asyncio.sleep(0.05)
        assert await queued.abort(timeout=10, poll_delay=0.05)

    assert await queued.status() == "aborted"


async def test_a_cron_job_ticks_into_its_own_queue(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    @cron_job(queue="bulk", second=set(range(60)))
    async def every_second(ctx: JobContext) -> str:
        return "tick"

    _, cron_jobs = worker_functions()
    async with running_worker(cron_jobs=cron_jobs, **served("critical", "default", "bulk")):
        await asyncio.sleep(2.5)

    # Each tick that ran claimed itself (cron keeps no result): the claim is in its queue.
    claims = [claim.decode() async for claim in task_pool.scan_iter("*:cron-claims:*every_second*")]
    assert claims, "no tick ran"
    assert {queue_of(claim) for claim in claims} == {key("bulk")}


async def test_a_worker_queues_no_tick_of_a_cron_job_on_a_queue_it_does_not_serve(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    @cron_job(queue="bulk", second=set(range(60)))
    async def every_second(ctx: JobContext) -> str:
        return "tick"

    _, cron_jobs = worker_functions()
    async with running_worker(cron_jobs=cron_jobs, **served("critical", "default")):
        await asyncio.sleep(2.5)

    # No worker serves bulk: its ticks would only pile up there.
    assert await task_pool.zcard(key("bulk")) == 0


async def test_worker_check_names_the_queue_it_looks_at(
    task_pool: ArqRedis, running_worker: RunningWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    def asking(queue: str) -> argparse.Namespace:
        return argparse.Namespace(this_host=False, queue=queue)

    async with running_worker(**served("critical")):
        for _ in range(200):  # until it has started
            if await task_pool.exists(key("critical") + ":live-workers"):
                break
            await asyncio.sleep(0.05)
        assert await cli.worker_check(task_pool, asking("critical")) == 0
        assert f"1 worker(s) alive on queue {key('critical')}" in capsys.readouterr().out
        assert await cli.worker_check(task_pool, asking("bulk")) == 1
        assert await cli.worker_check(task_pool, asking("urgent")) == 2


async def test_a_freed_slot_goes_to_the_waiting_job_of_the_highest_queue_first() -> None:
    # Jobs read ahead wait for a function slot (worker/slots.py): a critical job read after two
    # bulk jobs still takes the next slot; within a queue, the earliest read goes first.
    slots = FunctionSlots(1)
    await slots.acquire(2)  # a bulk job runs
    order: list[str] = []

    async def start(priority: int, label: str) -> None:
        await slots.acquire(priority)
        order.append(label)

    waiting = [
        asyncio.create_task(start(priority, label))
        for priority, label in ((2, "bulk-1"), (2, "bulk-2"), (0, "critical"), (1, "default"))
    ]
    await asyncio.sleep(0)
    for _ in waiting:
        slots.release()  # the job running ends: the next one starts, then ends, ...
        await asyncio.sleep(0)
    await asyncio.gather(*waiting)

    assert order == ["critical", "default", "bulk-1", "bulk-2"]
    slots.release()
    assert slots.free == 1


async def test_a_slot_given_to_a_job_cancelled_before_it_starts_goes_to_the_next() -> None:
    slots = FunctionSlots(1)
    await slots.acquire()
    cancelled = asyncio.create_task(slots.acquire(0))
    next_one = asyncio.create_task(slots.acquire(1))
    await asyncio.sleep(0)

    slots.release()  # to the first waiter, which is cancelled before it runs
    cancelled.cancel()
    await asyncio.wait_for(next_one, timeout=1)

    assert cancelled.cancelled()
    assert slots.free == 0
