# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Pausing a queue (store/pause.py): workers take no new job from it within a second while the
running ones finish, other queues go on, nothing starts a paused queue's job without a claim
either (a chain's next step, a concurrency lease's next job), the pause outlasts a worker's
restart, and `just pause` / `just resume`, `just queue-stats` and the metrics show it. Real
workers on the session's Redis; real worker processes for the restart."""

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import render_queue_gauges
from {{ cookiecutter.package_name }}.infrastructure.store.depth import queue_stats, queue_stats_of
from {{ cookiecutter.package_name }}.infrastructure.store.pause import pause_queue, paused_key, resume_queue
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, enqueue_chain, enqueue_task, job

from .conftest import Configure, RunningWorker, WorkerProcesses

QUEUES = "default,bulk"
PROJECT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def two_queues(configure: Configure, monkeypatch: pytest.MonkeyPatch) -> None:
    """QUEUES=default,bulk; `gated`, and jobs a test declares, last as long as the test."""
    configure(QUEUES=QUEUES)
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    job()(gated)


def key(queue: str) -> str:
    return get_settings().queue_keys[queue]


async def gated(ctx: JobContext, label: str) -> str:
    """Note `label` in `started`, run until the key `open:<label>` exists (10 s at most), then
    note it in `done`."""
    await ctx["redis"].rpush("started", label)
    for _ in range(500):
        if await ctx["redis"].exists(f"open:{label}"):
            break
        await asyncio.sleep(0.02)
    await ctx["redis"].rpush("done", label)
    return label


GATED = [arq_function(gated)]


async def listed(pool: ArqRedis, name: str) -> list[str]:
    return [entry.decode() for entry in await pool.lrange(name, 0, -1)]  # type: ignore[misc]


async def wait_for(pool: ArqRedis, name: str, label: str, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.02)):
        if label in await listed(pool, name):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{label} not in {name} within {seconds} s: {await listed(pool, name)}")


async def test_a_paused_queue_starts_nothing_new_while_its_running_job_finishes(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    served = {"functions": GATED, "queue_names": [key("default"), key("bulk")]}
    async with running_worker(**served):
        await enqueue_task("gated", label="running", _queue_name="default")
        await wait_for(task_pool, "started", "running")
        assert await pause_queue(task_pool, key("default"), "ops@test") is None
        await asyncio.sleep(1.0)  # within a second, every worker has seen the pause
        await enqueue_task("gated", label="queued while paused", _queue_name="default")
        await enqueue_task("gated", label="other queue", _queue_name="bulk")
        await task_pool.set("open:running", 1)
        await task_pool.set("open:other queue", 1)
        await wait_for(task_pool, "done", "running")  # the running job finishes
        await wait_for(task_pool, "done", "other queue")  # another queue goes on
        await asyncio.sleep(1.5)
        assert "queued while paused" not in await listed(task_pool, "started")
        stats = await queue_stats(task_pool, key("default"))
        assert (stats.waiting, stats.is_paused) == (1, 1)
        assert stats.paused is not None
        assert stats.paused.by == "ops@test"

        started = time.monotonic()
        assert await resume_queue(task_pool, key("default"))
        await wait_for(task_pool, "started", "queued while paused")
        # The worker sees the resume at its next look at the pause (PAUSE_CHECK_SECONDS, 0.5).
        assert time.monotonic() - started < 1.0
        await task_pool.set("open:queued while paused", 1)
        await wait_for(task_pool, "done", "queued while paused")
    assert not await task_pool.exists(paused_key(key("default")))


async def test_a_pause_set_while_a_worker_waits_holds_the_claim_sent_behind_its_wait(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    # A waiting worker's claim goes out behind its BRPOP and runs when a token ends the wait
    # (loop.py, `wait_then_claim`). The worker has just looked at the queue's pause (claiming
    # `first` from it), so a claim that decided when it was sent whether to look would not look
    # again for PAUSE_CHECK_SECONDS: it must look as it runs. A poll_delay of 2 s keeps the
    # loop's own claims out of the way (with a job running the loop claims again itself every
    # poll_delay, and within half a second of a look such a claim does not look again: the
    # documented "within a second"), so only the claim behind the wait can take the job.
    served = {"functions": GATED, "queue_names": [key("default")], "poll_delay": 2}
    async with running_worker(**served):
        await enqueue_task("gated", label="first", _queue_name="default")
        await wait_for(task_pool, "started", "first")  # claimed, its pause looked at: waiting
        assert await pause_queue(task_pool, key("default"), "ops@test") is None
        await enqueue_task("gated", label="queued while paused", _queue_name="default")
        await asyncio.sleep(1.5)
        assert await listed(task_pool, "started") == ["first"]
        assert await resume_queue(task_pool, key("default"))
        await task_pool.set("open:first", 1)
        await task_pool.set("open:queued while paused", 1)
        await wait_for(task_pool, "done", "queued while paused")


async def test_pausing_twice_keeps_the_first_pause_and_resuming_a_running_queue_says_no(
    task_pool: ArqRedis,
) -> None:
    assert await pause_queue(task_pool, key("bulk"), "first") is None
    again = await pause_queue(task_pool, key("bulk"), "second")
    assert again is not None
    assert again.by == "first"
    assert await resume_queue(task_pool, key("bulk"))
    assert not await resume_queue(task_pool, key("bulk"))
    # A key written by hand (or of another type) still pauses, by someone unknown.
    await task_pool.hset(paused_key(key("bulk")), "by", "hand")  # type: ignore[misc]
    paused = (await queue_stats(task_pool, key("bulk"))).paused
    assert paused is not None
    assert paused.by == "unknown"


async def test_a_chain_does_not_hand_its_next_step_over_on_a_paused_queue(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    @job()
    async def step(ctx: JobContext, label: str) -> str:
        return await gated(ctx, label)

    @job()
    async def after(ctx: JobContext, previous: str) -> str:
        await ctx["redis"].rpush("started", f"after {previous}")
        return previous

    flow = await enqueue_chain(step.call("first"), after.step())
    assert flow is not None
    functions = [arq_function(step), arq_function(after)]
    async with running_worker(functions=functions, queue_names=[key("default")]):
        await wait_for(task_pool, "started", "first")
        await pause_queue(task_pool, key("default"), "ops")
        await asyncio.sleep(1.0)  # within a second, every worker has seen the pause
        await task_pool.set("open:first", 1)
        await wait_for(task_pool, "done", "first")
        await asyncio.sleep(1.0)
        # Queued by the step's outcome write, not taken by the worker that ran the step.
        assert await listed(task_pool, "started") == ["first"]
        assert (await queue_stats(task_pool, key("default"))).waiting == 1
        await resume_queue(task_pool, key("default"))
        assert await flow.result(timeout=5, poll_delay=0.05) == "first"


async def test_a_concurrency_lease_is_not_passed_to_a_paused_queue_s_waiting_job(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    @job(max_concurrency=1)
    async def alone(ctx: JobContext, label: str) -> str:
        return await gated(ctx, label)

    async with running_worker(functions=[arq_function(alone)], queue_names=[key("default")]):
        await alone.enqueue("one")
        await wait_for(task_pool, "started", "one")
        await alone.enqueue("two")  # waits for the lease
        await asyncio.sleep(0.3)
        await pause_queue(task_pool, key("default"), "ops")
        await asyncio.sleep(1.0)
        await task_pool.set("open:one", 1)
        await wait_for(task_pool, "done", "one")
        await asyncio.sleep(1.0)
        assert await listed(task_pool, "started") == ["one"]
        await resume_queue(task_pool, key("default"))
        await wait_for(task_pool, "started", "two")
        await task_pool.set("open:two", 1)


def cli(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m <package>.infrastructure.ops.cli ARGS`, as `just pause` runs it."""
    module = render_queue_gauges.__module__.replace(".metrics", ".cli")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_the_pause_outlasts_a_worker_restart_and_the_cli_pauses_and_resumes(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    environment = {**worker_processes.environment, "QUEUES": QUEUES}
    paused = cli(environment, "pause", "default")
    assert paused.returncode == 0, paused.stderr
    [who] = re.findall(r"paused by (\S+@\S+):", paused.stdout)  # user@host, printed and kept
    again = cli(environment, "pause", "default")
    assert again.returncode == 1
    assert re.search(rf"already paused \(by {re.escape(who)} since [-\d]+ [:\d]+\)$", again.stdout)
    assert cli(environment, "pause", "nowhere").returncode == 2

    settings = "tests.infrastructure.outcome_jobs.WorkerSettings"
    worker = worker_processes.start(settings, QUEUES=QUEUES)
    queued = await enqueue_task("example_task", message="paused")
    assert queued is not None
    await asyncio.sleep(2.0)
    assert await queued.status() == "queued"
    worker.terminate()
    worker.wait(timeout=20)
    worker_processes.start(settings, QUEUES=QUEUES)  # a new worker obeys the same pause
    await asyncio.sleep(2.0)
    assert await queued.status() == "queued"

    stats = cli(environment, "queue-stats", "--queue", "default")
    assert re.search(r"paused\s+│\s+yes\s+│\s+by " + re.escape(who), stats.stdout), stats.stdout
    gauges = render_queue_gauges(await queue_stats_of(task_pool, [key("default"), key("bulk")]))
    series = "arq_queue_paused" + '{queue="%s"} %s'
    assert series % (key("default"), "1.0") in gauges.decode()
    assert series % (key("bulk"), "0.0") in gauges.decode()

    resumed = cli(environment, "resume", "default")
    assert resumed.returncode == 0, resumed.stderr
    assert await queued.result(timeout=10, poll_delay=0.05) is not None
    assert cli(environment, "resume", "default").returncode == 1


async def test_queue_stats_watch_prints_tables_when_its_output_is_not_a_terminal(
    worker_processes: WorkerProcesses,
) -> None:
    module = render_queue_gauges.__module__.replace(".metrics", ".cli")
    command = ["-m", module, "queue-stats", "--watch", "--interval", "0.2"]
    env: dict[str, Any] = {**worker_processes.environment, "QUEUES": QUEUES}
    watching = await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=PROJECT, env=env, stdout=subprocess.PIPE
    )
    try:
        await asyncio.sleep(3.0)
    finally:
        watching.terminate()
    output, _ = await asyncio.wait_for(watching.communicate(), 10)
    # Two queues a draw, a draw every 0.2 s once started: several draws, each whole.
    assert output.decode().count(f"queue {key('default')} at") >= 2, output.decode()
