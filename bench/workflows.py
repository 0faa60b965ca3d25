"""Work that spans jobs (issue 26), side by side in one run: bulk enqueue and progress reports.

`uv run python bench/workflows.py` bakes the default project into a scratch folder, `uv sync`s
it, and runs this script inside it (`--inside`, in the project's venv) against a Redis server of
its own (the project's `LocalRedisServer`, on a free loopback port). There it writes a jobs
module (`bench_workflow_jobs.py`, in the project's folder) that declares a no-op job and a job
that reports progress in a tight loop, with `@job`.

1. Bulk: `--jobs` no-op jobs queued three ways on an empty Redis, each timed from the first
   call to the last reply: `enqueue_many` (one call: chunks of 1,000 jobs, one script call
   each); `--jobs` `await enqueue_task(...)` one after another, as a loop in a script does;
   and the same calls gathered at once, which the project's writer pipelines (job_writes.py).
   Goal: `enqueue_many` at least 10x the one-after-another rate.
2. Progress: one worker (the project's, in this process, burst mode) runs a job that calls
   `report_progress` `--reports` times in a tight loop. Writes to its progress key are counted
   by Redis itself (keyspace notifications); writes a second is that count over the job's run
   time (at least 1 s). Goal: at most 20 a second.

Figures are medians over `--rounds` rounds (the bulk ways' order turns each round).
"""

import argparse
import asyncio
import importlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    measure_in_baked_project,
    rotated,
)

BULK_GOAL = 10.0  # goal 1: enqueue_many at least 10x one enqueue_task after another
PROGRESS_GOAL = 20.0  # goal 2: at most 20 writes a second for one job's progress
WAYS = ("enqueue_many", "one after another", "gathered")
JOBS_MODULE = "bench_workflow_jobs"

JOBS_MODULE_TEXT = '''\
"""Written by bench/workflows.py: a no-op job, and one that reports progress in a tight loop."""

from {package}.queue import JobContext, job, report_progress


@job
async def bench_noop(ctx: JobContext, number: int) -> None:
    """Does nothing."""


@job
async def bench_progress(ctx: JobContext, reports: int) -> int:
    """Reports its progress `reports` times, as fast as it can."""
    for done in range(1, reports + 1):
        await report_progress(ctx, done, reports)
    return reports
'''


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs queued each way (part 1)")
    parser.add_argument("--reports", type=int, default=100_000, help="progress reports (part 2)")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> list[str]:
    return ["--rounds", str(args.rounds), "--jobs", str(args.jobs), "--reports", str(args.reports)]


# --- outside: bake, run inside, print --------------------------------------------------------


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = measure_in_baked_project(__file__, options(args), "workflows")
    print_report(args, report, time.perf_counter() - started)
    return 0


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def print_report(args: argparse.Namespace, report: dict[str, Any], seconds: float) -> None:
    meta = report["meta"]
    print(
        f"{os.cpu_count()} CPUs ({platform.machine()}), Redis {meta['redis']}, arq {meta['arq']}, "
        f"Python {meta['python']}; {args.rounds} rounds, medians; {seconds:.0f} s in all"
    )
    rates = {way: statistics.median(report["bulk"][way]) for way in WAYS}
    ratio = rates["enqueue_many"] / rates["one after another"]
    writes = statistics.median(report["progress"]["writes_per_second"])
    jobs = f"{args.jobs:,}"
    reports = f"{args.reports:,} progress reports in a tight loop: writes"
    rows = [
        (f"{jobs} no-op jobs: enqueue_many, jobs/s", f"{rates['enqueue_many']:.0f}", "", ""),
        (
            f"{jobs} no-op jobs: enqueue_task one after another, jobs/s",
            f"{rates['one after another']:.0f}",
            "",
            "",
        ),
        (f"{jobs} no-op jobs: enqueue_task gathered, jobs/s", f"{rates['gathered']:.0f}", "", ""),
        (
            "enqueue_many / one after another",
            f"{ratio:.1f}",
            f"≥ {BULK_GOAL:.0f}",
            verdict(ratio >= BULK_GOAL),
        ),
        (reports, f"{statistics.median(report['progress']['writes']):.0f}", "", ""),
        (
            "progress: writes per second of the job's run",
            f"{writes:.1f}",
            f"≤ {PROGRESS_GOAL:.0f}",
            verdict(writes <= PROGRESS_GOAL),
        ),
    ]
    print("| figure | measured | goal | verdict |")
    print("|---|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


# --- inside: in the project's venv ------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, package: str, pool: Any) -> None:
        self.args = args
        self.pool = pool
        self.queue = importlib.import_module(f"{package}.queue")
        self.worker = importlib.import_module(f"{package}.infrastructure.worker.loop")
        self.tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        self.connections = importlib.import_module("arq.connections")

    async def bulk(self, way: str) -> float:
        """Jobs/s queued `way`, on an empty Redis."""
        await self.pool.flushdb()
        numbers = range(self.args.jobs)
        started = time.perf_counter()
        if way == "enqueue_many":
            queued = await self.queue.enqueue_many("bench_noop", [(n,) for n in numbers])
        elif way == "one after another":
            queued = [await self.queue.enqueue_task("bench_noop", n) for n in numbers]
        else:
            calls = (self.queue.enqueue_task("bench_noop", n) for n in numbers)
            queued = await asyncio.gather(*calls)
        seconds = time.perf_counter() - started
        assert len(queued) == self.args.jobs and None not in queued
        return self.args.jobs / seconds

    async def progress(self, redis_url: str) -> dict[str, float]:
        """One job's progress writes, counted by Redis, and their rate over its run."""
        await self.pool.flushdb()
        await self.pool.config_set("notify-keyspace-events", "K$")
        pubsub = self.pool.pubsub()
        await pubsub.psubscribe("__keyspace@0__:*:progress:*")
        writes = 0

        async def count() -> None:
            nonlocal writes
            async for message in pubsub.listen():
                if message["type"] == "pmessage" and message["data"] == b"set":
                    writes += 1

        counting = asyncio.create_task(count())
        job = await self.queue.enqueue_task("bench_progress", self.args.reports)
        worker = self.worker.create_worker(
            dict(vars(self.tasks.WorkerSettings)),
            redis_settings=self.connections.RedisSettings.from_dsn(redis_url),
            burst=True,
            handle_signals=False,
            cron_jobs=(),
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()
        info = await job.result_info()
        await asyncio.sleep(0.2)  # the last notifications' way here
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
        await pubsub.aclose()
        await self.pool.config_set("notify-keyspace-events", "")
        run_seconds = (info.finish_time - info.start_time).total_seconds()
        return {
            "writes": writes,
            "seconds": run_seconds,
            "per_second": writes / max(run_seconds, 1.0),
        }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq

    package = args.inside
    os.environ["LOG_LEVEL"] = "WARNING"
    (Path.cwd() / f"{JOBS_MODULE}.py").write_text(JOBS_MODULE_TEXT.format(package=package))
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    registry = importlib.import_module(f"{package}.infrastructure.registry")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        registry.load_jobs()
        sys.path.insert(0, str(Path.cwd()))
        importlib.import_module(JOBS_MODULE)  # declares the jobs in this process's registry
        queue = importlib.import_module(f"{package}.queue")
        pool = await queue.get_task_pool()
        try:
            bench = Bench(args, package, pool)
            bulk: dict[str, list[float]] = {way: [] for way in WAYS}
            progress: dict[str, list[float]] = {"writes": [], "writes_per_second": []}
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                for way in rotated(WAYS, index):
                    bulk[way].append(await bench.bulk(way))
                found = await bench.progress(server.url)
                progress["writes"].append(found["writes"])
                progress["writes_per_second"].append(found["per_second"])
            await pool.flushdb()
            info = await pool.info("server")
        finally:
            await queue.close_task_pool()
    meta = {"arq": arq.VERSION, "redis": info["redis_version"], "python": platform.python_version()}
    return {"bulk": bulk, "progress": progress, "meta": meta}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inside:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
