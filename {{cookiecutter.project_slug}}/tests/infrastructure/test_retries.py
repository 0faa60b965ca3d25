# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Ordinary exceptions are retried with growing delays up to max_tries, then dead-lettered."""

import asyncio
import itertools
import time
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.job_types import PermanentError
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import JobFailed
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.infrastructure.worker.retries import backoff_delay

from .conftest import Configure, RunWorker

QUEUE = WorkerSettings.queue_name


async def record_try(ctx: dict[str, Any]) -> None:
    """Note when this try started and which try arq says it is."""
    await ctx["redis"].rpush(f"tries:{ctx['job_id']}", f"{ctx['job_try']}:{time.monotonic()}")


async def tries_of(pool: ArqRedis, job_id: str) -> list[tuple[int, float]]:
    raw = await pool.lrange(f"tries:{job_id}", 0, -1)  # type: ignore[misc]
    return [(int(n), float(t)) for n, t in (item.decode().split(":") for item in raw)]


async def always_fails(ctx: dict[str, Any], order: str) -> None:
    await record_try(ctx)
    raise ConnectionError(f"payment API unreachable for {order}")


async def refuses(ctx: dict[str, Any]) -> None:
    await record_try(ctx)
    raise PermanentError("card declined")


async def too_slow(ctx: dict[str, Any]) -> None:
    await record_try(ctx)
    await asyncio.sleep(10)


async def fails_once(ctx: dict[str, Any]) -> str:
    await record_try(ctx)
    if ctx["job_try"] == 1:
        raise OSError("flaky network")
    return "done"


async def asks_for_retry(ctx: dict[str, Any]) -> str:
    await record_try(ctx)
    if ctx["job_try"] == 1:
        raise Retry(defer=0.05)
    return "done"


async def always_asks_for_retry(ctx: dict[str, Any]) -> None:
    await record_try(ctx)
    raise Retry(defer=0.01)


@pytest.mark.parametrize("job_try", range(1, 12))
def test_backoff_doubles_within_jitter_and_stops_at_the_cap(job_try: int) -> None:
    ceiling = min(60.0, 0.5 * 2 ** (job_try - 1))
    delays = [backoff_delay(job_try, base=0.5, cap=60) for _ in range(200)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1  # jitter: workers that failed together spread out


async def test_failing_job_is_retried_with_growing_delays_then_dead_lettered(
    task_pool: ArqRedis, run_burst_worker: RunWorker, configure: Configure
) -> None:
    configure(WORKER_RETRY_BASE="0.2")
    queued = await task_pool.enqueue_job("always_fails", "order-42")
    assert queued is not None

    worker = await run_burst_worker(functions=[arq_function(always_fails, max_tries=4)])

    tries = await tries_of(task_pool, queued.job_id)
    assert [n for n, _ in tries] == [1, 2, 3, 4]  # ctx["job_try"] as the job saw it
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(tries)]
    # Ceilings 0.2, 0.4, 0.8 s: each delay is in [ceiling / 2, ceiling] (+ polling slack).
    for gap, ceiling in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert ceiling / 2 <= gap <= ceiling + 0.15
    assert worker.jobs_retried == 3
    assert worker.jobs_failed == 1
    with pytest.raises(JobFailed, match="ConnectionError: payment API unreachable for order-42"):
        await queued.result(timeout=5)

    [letter] = await dead_letters.all_letters(task_pool, QUEUE)
    assert letter.job_id == queued.job_id
    assert (letter.function, letter.args, letter.kwargs) == ("always_fails", ["order-42"], {})
    assert (letter.error_type, letter.tries) == ("ConnectionError", 4)
    assert letter.enqueued_at <= letter.failed_at


async def test_default_max_tries_is_honoured(
    task_pool: ArqRedis, run_burst_worker: RunWorker, configure: Configure
) -> None:
    configure(WORKER_RETRY_BASE="0.01")
    queued = await task_pool.enqueue_job("always_fails", "order-7")
    assert queued is not None

    await run_burst_worker(functions=[arq_function(always_fails)])

    assert [n for n, _ in await tries_of(task_pool, queued.job_id)] == [1, 2, 3]


async def test_permanent_error_fails_at_once(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await task_pool.enqueue_job("refuses")
    assert queued is not None

    worker = await run_burst_worker(functions=[arq_function(refuses)])

    assert len(await tries_of(task_pool, queued.job_id)) == 1
    assert worker.jobs_retried == 0
    with pytest.raises(JobFailed, match="PermanentError: card declined"):
        await queued.result(timeout=5)
    [letter] = await dead_letters.all_letters(task_pool, QUEUE)
    assert (letter.error_type, letter.tries) == ("PermanentError", 1)


async def test_retry_on_the_last_try_fails_for_good_with_a_dead_letter(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await task_pool.enqueue_job("always_asks_for_retry")
    assert queued is not None

    await run_burst_worker(functions=[arq_function(always_asks_for_retry, max_tries=2)])

    assert [n for n, _ in await tries_of(task_pool, queued.job_id)] == [1, 2]
    with pytest.raises(JobFailed, match="RetriesExhausted: asked to retry on its last try"):
        await queued.result(timeout=5)
    [letter] = await dead_letters.all_letters(task_pool, QUEUE)
    assert (letter.error_type, letter.tries) == ("RetriesExhausted", 2)


async def test_timeout_counts_as_a_failed_try(
    task_pool: ArqRedis, run_burst_worker: RunWorker, configure: Configure
) -> None:
    configure(WORKER_RETRY_BASE="0.01")
    queued = await task_pool.enqueue_job("too_slow")
    assert queued is not None

    await run_burst_worker(functions=[arq_function(too_slow, timeout=0.2, max_tries=2)])

    assert len(await tries_of(task_pool, queued.job_id)) == 2
    [letter] = await dead_letters.all_letters(task_pool, QUEUE)
    assert letter.error_type == "TimeoutError"


@pytest.mark.parametrize("flaky", [fails_once, asks_for_retry], ids=["exception", "arq-Retry"])
async def test_a_job_that_recovers_succeeds_without_a_dead_letter(
    task_pool: ArqRedis,
    run_burst_worker: RunWorker,
    configure: Configure,
    flaky: Any,
) -> None:
    configure(WORKER_RETRY_BASE="0.01")
    queued = await task_pool.enqueue_job(flaky.__name__)
    assert queued is not None

    await run_burst_worker(functions=[arq_function(flaky)])

    assert await queued.result(timeout=5) == "done"
    assert await dead_letters.all_letters(task_pool, QUEUE) == []
