# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What the queue survives, with real worker processes on real servers: a worker killed with
SIGKILL mid-job, a worker stopped with SIGTERM, Redis restarted under a worker or gone for good,
Redis not there when a worker starts, and many workers racing for the same jobs. Slow:
`just test-faults` runs them."""

import asyncio
import importlib
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import result_key_prefix

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.connection import RedisUnavailableError
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize
from {{ cookiecutter.package_name }}.infrastructure.tasks import (
    WorkerSettings,
    close_task_pool,
    enqueue_task,
    get_task_pool,
)

from .conftest import (
    TEST_HEARTBEAT_SECONDS,
    Configure,
    WorkerProcesses,
    full_id,
    wait_until_listed,
)

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).parents[2]
QUEUE = WorkerSettings.queue_name


FAULT_JOBS = "tests.infrastructure.fault_jobs.WorkerSettings"


async def counts(pool: ArqRedis, kind: str, names: list[str]) -> list[int]:
    values = await pool.mget([f"{kind}:{name}" for name in names])
    return [int(value or 0) for value in values]


async def wait_for_counts(
    pool: ArqRedis, kind: str, names: list[str], at_least: int, within: float
) -> float:
    """Wait until every job's `kind` count reaches `at_least`; return the seconds it took."""
    started = time.monotonic()
    while min(await counts(pool, kind, names)) < at_least:
        if time.monotonic() - started > within:
            raise AssertionError(f"{kind}: {await counts(pool, kind, names)} after {within} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def wait_until_drained(pool: ArqRedis, within: float = 10) -> None:
    """Wait until the queue is empty. A job's counter goes up inside its function; arq removes
    the job from the queue only after the function returns, when it writes the outcome, so the
    last ones can still be there just after the counts are complete."""
    started = time.monotonic()
    while await pool.zcard(QUEUE) > 0:
        if time.monotonic() - started > within:
            raise AssertionError(f"{await pool.zcard(QUEUE)} jobs still queued after {within} s")
        await asyncio.sleep(0.05)


async def wait_until_started(worker_processes: WorkerProcesses, index: int) -> None:
    """Wait until worker `index` has run its start-up (its log says so)."""
    started = time.monotonic()
    while "worker started on queue" not in worker_processes.log(index):
        if time.monotonic() - started > 30:
            raise AssertionError(f"worker {index} did not start within 30 s")
        await asyncio.sleep(0.1)


async def test_sigkill_mid_job_loses_no_job_and_recovers_within_the_heartbeat(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    names = [f"killed-{n}" for n in range(20)]
    for name in names:
        await task_pool.enqueue_job("sleepy", name, 2.0)
    first = worker_processes.start(FAULT_JOBS, WORKER_MAX_JOBS="30")
    await wait_for_counts(task_pool, "starts", names, at_least=1, within=30)
    # Listed as running, so that a live worker lets them run again: a job killed within
    # heartbeat.py's GATHER_SECONDS of its start is not listed yet, and waits out its mark.
    await wait_until_listed(task_pool, len(names))

    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    worker_processes.start(FAULT_JOBS, WORKER_MAX_JOBS="30")
    await wait_for_counts(task_pool, "completions", names, at_least=1, within=60)
    recovery = time.monotonic() - killed_at

    assert await counts(task_pool, "completions", names) == [1] * 20  # none lost, none twice
    assert await counts(task_pool, "starts", names) == [2] * 20  # the killed run, then one more
    # Plain arq waits out the in-progress mark: job timeout + 10 s (315 s by default).
    assert recovery < TEST_HEARTBEAT_SECONDS + 2 + 2.0 + 5
    await wait_until_drained(task_pool)
    assert await dead_letters.count(task_pool, QUEUE) == 0
    print(f"SIGKILL: 20 jobs, 0 lost, 0 completed twice, all done {recovery:.1f} s after the kill")


async def test_sigterm_finishes_running_jobs_requeues_the_rest_and_exits_cleanly(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    short = [f"short-{n}" for n in range(3)]
    long = [f"long-{n}" for n in range(2)]
    waiting = [f"waiting-{n}" for n in range(5)]
    for name in short:
        await task_pool.enqueue_job("sleepy", name, 0.5)
    for name in long:
        await task_pool.enqueue_job("sleepy", name, 30.0)  # 0.1 s when it runs again
    worker = worker_processes.start(FAULT_JOBS, WORKER_MAX_JOBS="5", WORKER_SHUTDOWN_GRACE="2")
    await wait_for_counts(task_pool, "starts", short + long, at_least=1, within=30)
    for name in waiting:  # queued while the worker is busy: max_jobs is 5
        await task_pool.enqueue_job("sleepy", name, 0.1)

    worker.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    exit_code = worker.wait(timeout=15)
    stop_time = time.monotonic() - stopped_at

    assert exit_code == 0
    assert stop_time < 2 + 3  # the grace period, then cancel and close
    assert await counts(task_pool, "completions", short) == [1] * 3  # finished within the grace
    assert await counts(task_pool, "completions", long + waiting) == [0] * 7
    assert await task_pool.zcard(QUEUE) == 7  # cancelled and waiting jobs are still queued

    worker_processes.start(FAULT_JOBS)
    await wait_for_counts(task_pool, "completions", long + waiting, at_least=1, within=30)
    assert await counts(task_pool, "completions", short + long + waiting) == [1] * 10
    print(f"SIGTERM: 10 jobs, 0 lost, 0 completed twice, worker exited 0 in {stop_time:.1f} s")


async def test_redis_restart_loses_no_job_and_the_worker_reconnects(
    worker_processes: WorkerProcesses, configure: Configure, tmp_path: Path
) -> None:
    # A server of its own that keeps its data in an append-only file, as compose's does.
    server = LocalRedisServer(data_dir=tmp_path / "data").start()
    configure(REDIS_URL=server.url)
    await close_task_pool()  # the next pool is made for this server
    names = [f"restart-{n}" for n in range(10)]
    try:
        pool = await get_task_pool()
        worker = worker_processes.start(
            FAULT_JOBS, REDIS_URL=server.url, WORKER_RECONNECT_SECONDS="30"
        )
        await wait_until_started(worker_processes, 0)  # the worker is polling
        for name in names:  # due in 3 s: still queued while Redis restarts
            await pool.enqueue_job("sleepy", name, 0.1, _defer_by=3)

        server.stop()
        # While Redis is away a client (its pool made before) gets a clear error at once.
        started = time.monotonic()
        with pytest.raises(
            RedisUnavailableError, match=r"cannot reach Redis at redis://127\.0\.0\.1"
        ):
            await enqueue_task("example_task", message="during the outage")
        assert time.monotonic() - started < 2
        await asyncio.sleep(1)
        server = LocalRedisServer(server.port, data_dir=tmp_path / "data").start()

        recovery = await wait_for_counts(pool, "completions", names, at_least=1, within=30)
        assert worker.poll() is None  # the same worker, reconnected by itself
        assert await counts(pool, "completions", names) == [1] * 10
        await wait_until_drained(pool)
        # One line when Redis went away and one when it came back, however many commands retried.
        log = worker_processes.log(0)
        assert log.count(f"cannot reach Redis at {server.url} (") == 1
        assert log.count("): retrying for up to 30 s (WORKER_RECONNECT_SECONDS)") == 1
        assert log.count(f"Redis at {server.url} is back after ") == 1
        print(f"Redis restart: 10 jobs, 0 lost, 0 completed twice, all done {recovery:.1f} s later")
    finally:
        await close_task_pool()
        server.stop()


def assert_gave_up_once_warned(log: str, port: int) -> None:
    """One WARNING for the whole wait, no "back", and arq's traceback naming host and port."""
    assert log.count(f"cannot reach Redis at redis://127.0.0.1:{port}/0 (") == 1
    assert log.count("): retrying for up to 3 s (WORKER_RECONNECT_SECONDS)") == 1
    assert " is back after " not in log
    error = rf"redis\.exceptions\.ConnectionError: Error \d+ connecting to 127\.0\.0\.1:{port}\."
    assert re.match(error, log.strip().splitlines()[-1])


def test_a_worker_waits_for_redis_then_gives_up_non_zero(worker_processes: WorkerProcesses) -> None:
    port = free_port()
    started = time.monotonic()

    worker = worker_processes.start(
        FAULT_JOBS, REDIS_URL=f"redis://127.0.0.1:{port}/0", WORKER_RECONNECT_SECONDS="3"
    )
    exit_code = worker.wait(timeout=30)

    waited = time.monotonic() - started
    assert exit_code != 0
    assert 3 <= waited < 3 + 10  # the configured wait, plus start-up and the last delays
    assert_gave_up_once_warned(worker_processes.log(0), port)
    print(
        f"Redis down at start: the worker gave up after {waited:.1f} s with exit code {exit_code}"
    )


async def test_a_worker_that_loses_redis_gives_up_once_it_has_been_away_for_the_wait(
    worker_processes: WorkerProcesses,
) -> None:
    server = LocalRedisServer().start()
    try:
        worker = worker_processes.start(
            FAULT_JOBS, REDIS_URL=server.url, WORKER_RECONNECT_SECONDS="3"
        )
        await wait_until_started(worker_processes, 0)
    finally:
        server.stop()
    stopped_at = time.monotonic()

    exit_code = worker.wait(timeout=120)

    waited = time.monotonic() - stopped_at
    assert exit_code != 0
    # The wait counts from when Redis went away, for every command: each reconnect inside a
    # command's retries used to wait it again (16 s here instead of 3).
    assert waited < 3 + 10
    assert_gave_up_once_warned(worker_processes.log(0), server.port)
    print(f"Redis lost for good: the worker gave up {waited:.1f} s later, exit code {exit_code}")


async def test_a_worker_started_before_redis_runs_jobs_once_it_is_up(
    worker_processes: WorkerProcesses, configure: Configure
) -> None:
    port = free_port()
    worker = worker_processes.start(
        FAULT_JOBS, REDIS_URL=f"redis://127.0.0.1:{port}/0", WORKER_RECONNECT_SECONDS="30"
    )
    await asyncio.sleep(2)  # the worker is waiting for Redis

    with LocalRedisServer(port) as server:
        configure(REDIS_URL=server.url)
        await close_task_pool()  # the next pool is made for this server
        try:
            job = await (await get_task_pool()).enqueue_job("sleepy", "late-redis", 0.1)
            assert job is not None
            assert await job.result(timeout=20) == "late-redis"
        finally:
            await close_task_pool()
    assert worker.poll() is None  # still running: it waited, it did not give up


async def run_load(
    pool: ArqRedis, worker_processes: WorkerProcesses, jobs: int, failing_every: int = 0
) -> float:
    """Queue `jobs` numbered jobs, run two workers until the queue is empty; return seconds."""
    ids = [f"load-{n}" for n in range(jobs)]
    started = time.monotonic()
    for n, job_id in enumerate(ids):
        failing = failing_every > 0 and n % failing_every == 0
        await pool.enqueue_job("numbered", n, failing, _job_id=job_id)
    for _ in range(2):
        worker_processes.start(FAULT_JOBS, WORKER_RETRY_BASE="0.01")
    while await pool.zcard(QUEUE) > 0:
        if time.monotonic() - started > 120:
            raise AssertionError(f"{await pool.zcard(QUEUE)} jobs still queued after 120 s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def results_of(pool: ArqRedis, jobs: int) -> list[dict[str, Any]]:
    keys = [result_key_prefix + full_id(f"load-{n}") for n in range(jobs)]
    raw = [
        value
        for start in range(0, jobs, 1000)
        for value in await pool.mget(keys[start : start + 1000])
    ]
    assert None not in raw, f"{raw.count(None)} results missing"
    return [deserialize(value) for value in raw]


async def test_ten_thousand_jobs_through_two_workers(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    seconds = await run_load(task_pool, worker_processes, 10_000)

    results = await results_of(task_pool, 10_000)
    assert [result["r"] for result in results] == list(range(10_000))
    assert all(result["s"] and result["t"] == 1 for result in results)
    assert await dead_letters.count(task_pool, QUEUE) == 0
    print(f"load: 10,000 jobs, 2 workers, 0 lost, queue empty after {seconds:.1f} s")


async def test_one_percent_failing_once_are_retried_once(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    seconds = await run_load(task_pool, worker_processes, 10_000, failing_every=100)

    results = await results_of(task_pool, 10_000)
    assert [result["r"] for result in results] == list(range(10_000))
    tries = [result["t"] for result in results]
    assert tries == [2 if n % 100 == 0 else 1 for n in range(10_000)]  # 100 jobs took two tries
    assert all(result["s"] for result in results)
    assert await dead_letters.count(task_pool, QUEUE) == 0
    print(f"load with 1% failing once: 10,000 results, 100 retried once, {seconds:.1f} s")


async def queue_counted_jobs(pool: ArqRedis, jobs: int, queues: tuple[str, ...] = ()) -> None:
    """Queue `counted` jobs 0 .. jobs-1, a hundred at a time, with arq's client (no wake-up),
    spread over `queues` in turn (none: the default queue)."""
    for start in range(0, jobs, 100):
        numbers = range(start, min(start + 100, jobs))
        await asyncio.gather(
            *(
                pool.enqueue_job(
                    "counted", n, _queue_name=queues[n % len(queues)] if queues else None
                )
                for n in numbers
            )
        )


async def drain(pool: ArqRedis, within: float, queues: tuple[str, ...] = ()) -> float:
    """Wait until the queues are empty (every job finished); return the seconds it took."""
    keys = [get_settings().queue_keys[queue] for queue in queues] or [QUEUE]
    started = time.monotonic()
    while left := sum([await pool.zcard(key) for key in keys]):
        if time.monotonic() - started > within:
            raise AssertionError(f"{left} jobs still queued after {within} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_eight_workers_racing_on_three_queues_with_limits_run_each_job_once(
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    configure: Configure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A quarter of the jobs limited (6 at once, 1,000 starts a second per key), on `default`;
    # the rest spread over the three queues.
    queues = ("critical", "default", "bulk")
    configure(QUEUES=",".join(queues))
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import limit_jobs

    importlib.reload(limit_jobs)  # declares its jobs, for this test only
    for start in range(0, 20_000, 100):
        await asyncio.gather(
            *(
                task_pool.enqueue_job("counted_with_limits", n)
                if n % 4 == 0
                else task_pool.enqueue_job("counted", n, _queue_name=queues[n % 3])
                for n in range(start, start + 100)
            )
        )
    for _ in range(8):
        worker_processes.start(f"{limit_jobs.__name__}.RaceSettings", QUEUES=",".join(queues))
    seconds = await drain(task_pool, within=240, queues=queues)

    runs = await run_counts(task_pool, 20_000)
    assert runs.count(1) == 20_000, {count: runs.count(count) for count in set(runs)}
    assert 1 < int(await task_pool.get("most-running")) <= 6
    assert await task_pool.keys("*:limit:*:running") == []  # every lease given back
    assert all(worker.poll() is None for worker in worker_processes.started)
    print(f"race with limits: 20,000 jobs on 3 queues, 8 workers, each once, {seconds:.1f} s")


async def run_counts(pool: ArqRedis, jobs: int) -> list[int]:
    runs = await pool.hgetall("runs")  # type: ignore[misc]
    return [int(runs.get(str(n).encode(), 0)) for n in range(jobs)]


@pytest.mark.parametrize(
    "queues", [("default",), ("critical", "default", "bulk")], ids=["one-queue", "three-queues"]
)
async def test_eight_workers_racing_on_twenty_thousand_jobs_run_each_exactly_once(
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    configure: Configure,
    queues: tuple[str, ...],
) -> None:
    configure(QUEUES=",".join(queues))
    await queue_counted_jobs(task_pool, 20_000, queues)
    for _ in range(8):
        worker_processes.start(FAULT_JOBS, QUEUES=",".join(queues))
    seconds = await drain(task_pool, within=240, queues=queues)

    runs = await run_counts(task_pool, 20_000)
    assert runs.count(1) == 20_000, {count: runs.count(count) for count in set(runs)}
    assert all(worker.poll() is None for worker in worker_processes.started)
    print(
        f"race: 20,000 jobs on {len(queues)} queue(s), 8 workers, each ran exactly once, "
        f"queues empty after {seconds:.1f} s"
    )


async def test_the_project_s_workers_and_arq_s_share_a_queue_each_job_once(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    # `arq ...WorkerSettings` still works, beside `just worker`: both honour arq's in-progress
    # keys, so neither runs a job the other has started.
    await queue_counted_jobs(task_pool, 3_000)
    for plain_arq in (False, True, False):
        worker_processes.start(FAULT_JOBS, plain_arq=plain_arq)
    seconds = await drain(task_pool, within=120)

    runs = await run_counts(task_pool, 3_000)
    assert runs.count(1) == 3_000, {count: runs.count(count) for count in set(runs)}
    print(f"mixed: 3,000 jobs, 2 project workers and 1 arq worker, each ran once, {seconds:.1f} s")
