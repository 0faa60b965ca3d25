"""compare.py's default figures (1 to 6 of its docstring): the generated worker against plain
arq, drained and polled in-process; enqueue cost; cold start and worker-check; bake time.

These are the figures a change to the generated worker, its serializer or its hooks moves, so
every configuration (compare_arq.py) is measured by the same functions here, in rounds that
interleave them (rotated by one per round: a drift over the run hits every row alike). Redis is
flushed before each measurement. `DefaultFigures` keeps the figures of every round and sums them
up as compare_report.py prints them; Celery's rows (compare_peers.py) run after these in a round.
"""

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchkit import commands_so_far, polling, rotated, stop_process, wait_for_results
from compare_arq import (
    CONFIGURATIONS,
    GENERATED,
    GENERATED_PROCESSES,
    LATENCY_CONFIGURATIONS,
    WorkerFactory,
    in_process_setups,
)
from compare_harness import RUN_TIMEOUT_SECONDS, WORKER_STOP_SECONDS, enqueue_many, say, share
from compare_report import waits_summary

BACKENDS = ("redis", "falkordb", "none")
ENQUEUE_BLOCK = 50  # short blocks: a burst of noise on the machine hits both methods
# Runs burst worker(s) to the end: (seconds, jobs done, jobs failed).
Drainer = Callable[[], Awaitable[tuple[float, int, int]]]


def bake_times(runs: int) -> dict[str, float]:
    """Median in-process bake time per cache backend, the backends interleaved (outside)."""
    from bake_time import time_in_process  # beside this file, so on sys.path

    times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    for _ in range(runs):
        for backend in BACKENDS:
            times[backend].append(time_in_process(backend))
    return {backend: statistics.median(values) for backend, values in times.items()}


def in_process(make_workers: WorkerFactory) -> Drainer:
    """Burst workers from `make_workers`, run together in this event loop."""

    async def run() -> tuple[float, int, int]:
        workers = make_workers(True)
        started = time.perf_counter()
        await asyncio.gather(*(worker.async_run() for worker in workers))
        elapsed = time.perf_counter() - started
        for worker in workers:
            await worker.close()
        done = sum(worker.jobs_complete for worker in workers)
        return elapsed, done, sum(worker.jobs_failed for worker in workers)

    return run


def in_processes(script: str, package: str, count: int) -> Drainer:
    """`count` burst workers of the generated kind, each in a process of its own: `script`
    (compare.py) with `--drain-worker`, which runs compare_arq.py's `drain_worker`."""

    async def run() -> tuple[float, int, int]:
        command = [sys.executable, script, "--inside", package, "--drain-worker"]
        processes = []
        try:
            for _ in range(count):
                processes.append(
                    await asyncio.create_subprocess_exec(
                        *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                    )
                )
            for process in processes:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), WORKER_STOP_SECONDS * 3)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a drain worker said {line!r}, not ready")
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
                await process.stdin.drain()
            reports = []
            for process in processes:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), RUN_TIMEOUT_SECONDS)
                reports.append(json.loads(line))
                await process.wait()
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        elapsed = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
        return elapsed, sum(r["done"] for r in reports), sum(r["failed"] for r in reports)

    return run


async def drain(pool: Any, queue_pool: Any, run: Drainer, count: int) -> dict:
    """Queue `count` jobs, then time burst worker(s) draining them; count Redis commands."""
    await pool.flushdb()
    await enqueue_many(lambda: queue_pool.enqueue_job("noop"), count)
    calls_before = commands_so_far(await pool.info("commandstats"))
    elapsed, done, failed = await run()
    calls = commands_so_far(await pool.info("commandstats")) - calls_before
    if done != count or failed:
        raise RuntimeError(f"{done} of {count} done, {failed} failed")
    return {"jobs_per_s": count / elapsed, "commands_per_job": calls / count}


async def latency(
    pool: Any, queue_pool: Any, make_workers: WorkerFactory, count: int, gaps: list[float]
) -> list[float]:
    """Enqueue→start waits in ms of `count` jobs sent `gaps` seconds apart to an idle worker."""
    await pool.flushdb()
    jobs = []
    (worker,) = make_workers(False)
    async with polling(worker, pool):
        due = time.monotonic()
        for gap in gaps[:count]:
            due += gap
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            jobs.append(await queue_pool.enqueue_job("noop"))
        results = await wait_for_results(jobs)
    failed = [result for result in results if not result.success]
    if failed:
        raise RuntimeError(f"{len(failed)} latency jobs failed, e.g. {failed[0].result!r}")
    return [(r.start_time - r.enqueue_time).total_seconds() * 1000 for r in results]


async def enqueue_rates(
    pool: Any, methods: dict[str, Callable[[], Awaitable[Any]]], count: int, first: int
) -> dict[str, float]:
    """Enqueues/s of each method: `count` sequential awaits each, in alternating blocks."""
    await pool.flushdb()
    spent = dict.fromkeys(methods, 0.0)
    for block, start in enumerate(range(0, count, ENQUEUE_BLOCK)):
        for name in rotated(tuple(methods), first + block):
            enqueue = methods[name]
            started = time.perf_counter()
            for _ in range(min(ENQUEUE_BLOCK, count - start)):
                await enqueue()
            spent[name] += time.perf_counter() - started
    return {name: count / seconds for name, seconds in spent.items()}


async def cold_start(tasks: Any, pool: Any, package: str, checks: int) -> tuple[float, list]:
    """Seconds from starting `arq` to its first job's start; then `checks` worker-check times."""
    await pool.flushdb()
    job = await tasks.enqueue_task("example_task", message="cold start")
    command = [sys.executable, "-m", "arq", f"{package}.infrastructure.tasks.WorkerSettings"]
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (result,) = await wait_for_results([job])
        seconds = result.start_time.timestamp() - started
        check_times = []
        check = [sys.executable, "-m", f"{package}.infrastructure.ops.cli", "worker-check"]
        for _ in range(checks):
            check_started = time.perf_counter()
            run = await asyncio.create_subprocess_exec(*check, stdout=subprocess.DEVNULL)
            if await run.wait() != 0:
                raise RuntimeError("worker-check found no worker")
            check_times.append(time.perf_counter() - check_started)
    finally:
        stop_process(process, WORKER_STOP_SECONDS)
    return seconds, check_times


class DefaultFigures:
    """The default figures of every round so far, for one run of the inside half."""

    def __init__(
        self,
        args: Any,
        script: str,
        tasks: Any,
        project_pool: Any,
        arq_pool: Any,
        arq_redis: Any,
    ) -> None:
        self.args = args
        self.tasks = tasks
        self.project_pool = project_pool
        self.setups = in_process_setups(tasks, project_pool, arq_pool, arq_redis)
        self.drainers: dict[str, tuple[Any, Drainer]] = {
            label: (pool, in_process(make)) for label, (pool, make) in self.setups.items()
        }
        # Jobs/s a worker cannot pass: it takes at most queue_read_limit jobs per poll.
        self.ceilings = {
            label: sum(w.queue_read_limit / w.poll_delay_s for w in make(True))
            for label, (_, make) in self.setups.items()
        }
        self.ceilings[GENERATED_PROCESSES] = 2 * self.ceilings[GENERATED]
        self.drainers[GENERATED_PROCESSES] = (project_pool, in_processes(script, args.inside, 2))
        self.drains: dict[str, list[dict]] = {label: [] for label in CONFIGURATIONS}
        self.waits: dict[str, list[float]] = {label: [] for label in LATENCY_CONFIGURATIONS}
        self.enqueues: dict[str, list[float]] = {"enqueue_job": [], "enqueue_task": []}
        self.methods: dict[str, Callable[[], Awaitable[Any]]] = {
            "enqueue_job": lambda: project_pool.enqueue_job("example_task", message="x"),
            "enqueue_task": lambda: tasks.enqueue_task("example_task", message="x"),
        }
        self.colds: list[float] = []
        self.checks: list[float] = []
        self.rng = random.Random(args.seed)

    async def round(self, index: int) -> None:
        """Round `index`: drains, latency, enqueue rates, cold start and worker-check."""
        args, project_pool = self.args, self.project_pool
        for label in rotated(CONFIGURATIONS, index):
            queue_pool, drainer = self.drainers[label]
            drained = await drain(project_pool, queue_pool, drainer, args.jobs)
            say(f"  drain, {label}: {drained['jobs_per_s']:.0f} jobs/s")
            self.drains[label].append(drained)
        count = share(args.latency_jobs, args.rounds, index)
        gaps = [self.rng.expovariate(args.latency_rate) for _ in range(count)]
        for label in rotated(LATENCY_CONFIGURATIONS, index):
            queue_pool, make_workers = self.setups[label]
            got = await latency(project_pool, queue_pool, make_workers, count, gaps)
            say(f"  latency, {label}: median {statistics.median(got):.0f} ms")
            self.waits[label] += got
        rates = await enqueue_rates(project_pool, self.methods, args.enqueue_jobs, index)
        for method, rate in rates.items():
            say(f"  {method}: {rate:.0f}/s")
            self.enqueues[method].append(rate)
        seconds, check_times = await cold_start(
            self.tasks, project_pool, args.inside, share(args.check_runs, args.rounds, index)
        )
        say(f"  cold start {seconds:.3f} s, worker-check {check_times}")
        self.colds.append(seconds)
        self.checks += check_times

    def results(self) -> dict[str, Any]:
        """Every round's figures, summed up: medians, and the rounds the ratios pair."""

        def summary(runs: list[dict]) -> dict[str, float]:
            rates = [run["jobs_per_s"] for run in runs]
            return {
                "jobs_per_s": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "commands_per_job": statistics.median(run["commands_per_job"] for run in runs),
                "rounds": rates,
            }

        return {
            "drain": {
                label: {**summary(runs), "ceiling": self.ceilings[label]}
                for label, runs in self.drains.items()
            },
            "latency": {label: waits_summary(values) for label, values in self.waits.items()},
            "enqueue": {
                method: statistics.median(rates) for method, rates in self.enqueues.items()
            },
            "enqueue_rounds": self.enqueues,
            "cold_start": statistics.median(self.colds),
            "worker_check": statistics.median(self.checks),
        }
