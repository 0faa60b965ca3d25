# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Limits per function across every worker (limits.py): `max_concurrency`, `rate_limit` and
their keys. Real worker processes on the session's Redis; each job records from inside when it
started, on which try, and how many of its kind were running (limit_jobs.py)."""

import asyncio
import importlib
import itertools
import signal
import time
from types import ModuleType
from typing import Any, cast

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.limits import parse_rate_limit
from {{ cookiecutter.package_name }}.queue import (
    JobArgumentError,
    JobContext,
    JobFailed,
    JobStatus,
    enqueue_task,
    get_job,
    job,
)

from .conftest import Configure, RunningWorker, WorkerProcesses, wait_until_listed

SETTINGS = "tests.infrastructure.limit_jobs.WorkerSettings"


@pytest.fixture(autouse=True)
def limit_jobs(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """limit_jobs.py's jobs declared for this test only (they leave the registry after it)."""
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import limit_jobs

    return importlib.reload(limit_jobs)  # declares its jobs again, in this test's registry


async def starts(pool: ArqRedis) -> list[tuple[str, float, int]]:
    """What the jobs recorded as they started: (name, time in s, try), in start order."""
    entries: list[bytes] = await pool.lrange("started", 0, -1)  # type: ignore[misc]
    recorded = [entry.decode().split() for entry in entries]
    return sorted(
        ((name, float(at), int(job_try)) for name, at, job_try in recorded), key=lambda s: s[1]
    )


async def wait_for_starts(
    pool: ArqRedis, count: int, seconds: float
) -> list[tuple[str, float, int]]:
    """What `starts` returns, once `count` jobs have started (at most `seconds` from now)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await pool.llen("started") >= count:  # type: ignore[misc]
            return await starts(pool)
        await asyncio.sleep(0.05)
    started = await pool.llen("started")  # type: ignore[misc]
    raise AssertionError(f"{started} of {count} jobs started in {seconds} s")


def test_limits_are_checked_where_they_are_declared() -> None:
    async def fetch(ctx: JobContext, domain: str) -> None: ...

    with pytest.raises(ValueError, match="rate_limit must be a count per second"):
        job(rate_limit="60 per minute")(fetch)
    with pytest.raises(ValueError, match="rate_limit must allow at least 1 start, not '0/s'"):
        job(rate_limit="0/s")(fetch)
    with pytest.raises(ValueError, match="rate_limit must be a count per second"):
        job(rate_limit=cast(Any, 60))(fetch)
    for wrong in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_concurrency must be a whole number, at least 1"):
            job(max_concurrency=cast(Any, wrong))(fetch)
    with pytest.raises(ValueError, match="names no argument of fetch"):
        job(rate_limit="1/s", rate_limit_key="customer")(fetch)
    with pytest.raises(ValueError, match="give max_concurrency with it"):
        job(max_concurrency_key="domain")(fetch)
    assert parse_rate_limit(" 60 / m ").interval_ms == 1000
    assert parse_rate_limit("50/s").interval_ms == 20


async def test_a_limited_job_runs_on_its_own_queue_and_needs_its_key(
    configure: Configure, task_pool: ArqRedis
) -> None:
    configure(QUEUES="default,bulk")

    with pytest.raises(JobArgumentError, match="counted on its own queue, 'default'"):
        await enqueue_task("two_at_once", "a", 0.1, _queue_name="bulk")
    with pytest.raises(JobArgumentError, match="its limit key, argument 'domain', is None"):
        await enqueue_task("per_domain", None, "/")
    with pytest.raises(JobArgumentError, match="has a line break"):
        await enqueue_task("per_domain", "a\nb", "/")
    with pytest.raises(JobArgumentError, match="is 201 characters long, over 200"):
        await enqueue_task("per_domain", "a" * 201, "/")
    with pytest.raises(ValueError, match="counted on its own queue"):
        await task_pool.enqueue_job("two_at_once", "a", 0.1, _queue_name="bulk")

    assert await task_pool.keys("*") == []  # nothing was queued


async def test_max_concurrency_holds_across_workers_and_waiting_uses_no_try(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    for _ in range(2):
        worker_processes.start(SETTINGS, WORKER_MAX_JOBS="5")
    jobs = [await enqueue_task("two_at_once", f"job-{n}", 0.3) for n in range(8)]

    for queued in jobs:
        assert queued is not None
        assert await queued.result(timeout=20) is not None
    recorded = await starts(task_pool)
    seen = [int(count) for count in await task_pool.lrange("running-seen", 0, -1)]  # type: ignore[misc]

    assert max(seen) == 2  # never more than two, and two at a time while jobs waited
    assert seen.count(2) >= 3
    assert [job_try for _, _, job_try in recorded] == [1] * 8  # waiting used no try
    assert await task_pool.keys("*:limit:two_at_once:running") == []  # every lease given back
    assert await task_pool.keys("*:limit-wait:*") == []


async def test_a_job_waiting_for_its_limit_says_why_and_holds_no_slot(
    running_worker: RunningWorker, task_pool: ArqRedis, limit_jobs: ModuleType
) -> None:
    functions = limit_jobs.WorkerSettings["functions"]
    async with running_worker(functions=functions, max_jobs=2):
        first = await enqueue_task("alone", "first", 1.0)
        assert first is not None
        await wait_for_starts(task_pool, 1, 5)
        second = await enqueue_task("alone", "second", 0.0)
        unlimited = await enqueue_task("example_task", "not limited")
        assert second is not None
        assert unlimited is not None

        assert await unlimited.result(timeout=5) is not None  # the waiting job took no slot
        state = await second.state()
        assert state.status == JobStatus.deferred  # as the queue's counts say
        assert state.limit_wait is not None
        assert state.limit_wait.describe() == "max_concurrency: 1 job of alone is running"
        assert state.limit_wait == await second.limit_wait()
        assert await first.limit_wait() is None
        assert await second.result(timeout=5) == "second"

    recorded = await starts(task_pool)
    assert [name for name, _, _ in recorded] == ["first", "second"]
    assert recorded[1][1] - recorded[0][1] >= 1.0  # after the first ended, not before
    assert await second.limit_wait() is None


async def test_rate_limit_spaces_starts_evenly_across_workers(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    for _ in range(2):
        worker_processes.start(SETTINGS)
    for n in range(10):
        await enqueue_task("five_a_second", f"job-{n}")

    recorded = await wait_for_starts(task_pool, 10, 15)

    times = [at for _, at, _ in recorded]
    # 5/s: one turn every 200 ms, whichever worker takes it, so any second holds 5 or 6 turns;
    # a start comes a few ms after its turn (one more in a second, on a busy machine). Without
    # the limit all ten would start within a few milliseconds.
    most_in_a_second = max(sum(at <= t < at + 1 for t in times) for at in times)
    assert most_in_a_second <= 7, times
    assert times[-1] - times[0] >= 1.75
    assert [job_try for _, _, job_try in recorded] == [1] * 10
    waiting = await get_job(f"job-{10}")  # no such job: nothing to say
    assert await waiting.limit_wait() is None


async def test_a_rate_limit_key_gives_each_value_its_own_rate(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    worker_processes.start(SETTINGS)
    for n in range(3):
        for domain in ("a.example", "b.example"):
            await enqueue_task("per_domain", domain, f"/{n}")

    recorded = await wait_for_starts(task_pool, 6, 10)

    by_domain: dict[str, list[float]] = {}
    for name, at, _ in recorded:
        by_domain.setdefault(name.split("/")[0], []).append(at)
    for times in by_domain.values():  # 2/s per domain: turns 500 ms apart, starts a bit later
        assert [b - a > 0.35 for a, b in itertools.pairwise(times)] == [True] * 2
    first_a, first_b = by_domain["a.example"][0], by_domain["b.example"][0]
    assert abs(first_a - first_b) < 0.4  # the other domain's rate did not hold it back


async def test_a_killed_worker_gives_its_lease_back_within_its_heartbeat_window(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    killed = worker_processes.start(SETTINGS)
    held = await enqueue_task("alone", "held", 60.0)
    assert held is not None
    await wait_for_starts(task_pool, 1, 10)
    await wait_until_listed(task_pool, 1)  # so that a live worker can let it run again
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    worker_processes.start(SETTINGS)
    waiting = await enqueue_task("alone", "after", 0.0)
    assert waiting is not None
    began = time.monotonic()

    assert await waiting.result(timeout=15) == "after"

    # The heartbeat is 1 s in these tests: the lease lasts 1 s + 2 s after its last renewal.
    assert time.monotonic() - began < 10
    # Its one try was the killed worker's: once a live worker finds it, it fails for good.
    with pytest.raises(JobFailed, match="max 1 retries exceeded"):
        await held.result(timeout=15)
