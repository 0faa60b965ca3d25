"""What several named queues cost and give: priority under load, drain rate, idle Redis load.

    uv run python bench/queues.py [--rounds 3] [--bulk-jobs 10000] [--critical-jobs 200]
                                  [--jobs 5000] [--io-jobs 2000] [--idle-seconds 10]

Bakes the default project into a scratch folder, `uv sync`s it, and runs this file inside it
(`--inside`, the project's own venv; benchkit.py's `run_script_inside`). That half sets
`QUEUES=critical,default,bulk` before it imports the project, starts the project's
`LocalRedisServer` on a free loopback port, queues jobs with the project's pool
(`get_task_pool().enqueue_job(name, _queue_name=...)`, which pushes each queue's wake-up token)
and runs the project's worker in this process (worker/loop.py's `create_worker`, from the
project's `WorkerSettings` with cron off, signals left alone, and this file's jobs added with
`arq_function`). Redis is flushed (FLUSHDB) before each run; `LOG_LEVEL` is WARNING. Every
measurement is repeated in `--rounds` interleaved rounds (the configurations of each part in an
order rotated by one per round); the table shows medians over rounds.

1. Priority under load: `--bulk-jobs` jobs queued to `bulk` (each sleeps 10 ms), then one
   worker (max_jobs 10) serving critical,default,bulk starts; once it has finished 50 bulk jobs
   (its slots are full), `--critical-jobs` no-op jobs are queued to `critical`, one every 10 ms.
   A critical job's wait is `time.time()` when its function starts less `time.time()` just
   before its `enqueue_job` call. p50 and p99 over a round's jobs; the worker is stopped once
   they have all run (the bulk backlog is still thousands deep: the table says how deep). Strict
   priority (the default), and for reference `WORKER_QUEUE_WEIGHTS=critical=6,default=3,bulk=1`.
   The enqueuing and the worker share this process's event loop, as they share the CPUs with
   Redis: a wait includes the enqueue's own round trip on a busy loop.
2. No cost for having queues: `--jobs` no-op jobs and `--io-jobs` 10 ms jobs, queued to one
   queue, drained by a burst worker (the project's max_jobs): serving `default` alone with the
   jobs in `default`; serving all three with the jobs in `critical` (its first queue); serving
   all three with the jobs in `bulk` (its last: each claim first asks the two empty ones).
   jobs/s = jobs / the worker's `async_run()` wall time (start-up and shutdown in); the ratios
   to the one-queue worker are taken within each round, then their median.
3. Idle Redis load: a running worker, its queues empty, `--idle-seconds` from 1 s after it is up:
   Redis commands per second, the sum of `calls` in `INFO commandstats` before and after (on a
   connection of the bench's own; INFO's own calls left out); three queues, and one.
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
from collections import Counter
from typing import Any

from benchkit import (
    RedisConnection,
    calls_between,
    measure_in_baked_project,
    paired_ratios,
    percentile,
    polling,
    rotated,
)

QUEUES = ("critical", "default", "bulk")
WEIGHTS = {"critical": 6, "default": 3, "bulk": 1}
IO_SECONDS = 0.01
CRITICAL_GAP_SECONDS = 0.01
BULK_STARTED = 50  # bulk jobs finished before the first critical job is queued
ENQUEUE_CONCURRENCY = 100
SETTLE_SECONDS = 1.0
GOALS = {"p50": 5.0, "p99": 20.0, "ratio": 0.95, "idle": 5.0}

PRIORITY = ("strict priority", "weights 6/3/1")
# Drain configurations: (label, queues served, queue the jobs go to).
DRAINS = (
    ("1 queue", ("default",), "default"),
    ("3 queues, jobs in the first", QUEUES, "critical"),
    ("3 queues, jobs in the last", QUEUES, "bulk"),
)
KINDS = ("no-op", "10 ms")
IDLE = (("3 empty queues", QUEUES), ("1 empty queue", ("default",)))

# What the jobs below report to the measuring code (same process).
done: Counter[str] = Counter()
critical_waits_ms: list[float] = []


async def bench_noop(ctx: dict[str, Any]) -> None:
    done["noop"] += 1


async def bench_io(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(IO_SECONDS)
    done["io"] += 1


async def bench_critical(ctx: dict[str, Any], enqueued_at: float) -> None:
    critical_waits_ms.append((time.time() - enqueued_at) * 1000)


JOB_OF_KIND = {"no-op": "bench_noop", "10 ms": "bench_io"}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bulk-jobs", type=int, default=10_000, help="bulk backlog (part 1)")
    parser.add_argument("--critical-jobs", type=int, default=200, help="critical jobs (part 1)")
    parser.add_argument("--jobs", type=int, default=5000, help="no-op jobs per drain (part 2)")
    parser.add_argument("--io-jobs", type=int, default=2000, help="10 ms jobs per drain (part 2)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle window (part 3)")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> list[str]:
    names = ("rounds", "bulk_jobs", "critical_jobs", "jobs", "io_jobs", "idle_seconds")
    return [
        item for name in names for item in (f"--{name.replace('_', '-')}", str(vars(args)[name]))
    ]


# --- outside: bake, run inside, print --------------------------------------------------------


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = measure_in_baked_project(__file__, options(args), "queues")
    print_report(args, report, time.perf_counter() - started)
    return 0


def verdict(measured: float, goal: float, at_most: bool) -> str:
    return "met" if (measured <= goal if at_most else measured >= goal) else "NOT met"


def print_report(args: argparse.Namespace, report: dict[str, Any], seconds: float) -> None:
    meta = report["meta"]
    print(
        f"{os.cpu_count()} CPUs ({platform.machine()}), Redis {meta['redis']}, arq {meta['arq']}, "
        f"Python {meta['python']}; QUEUES=critical,default,bulk; {' '.join(options(args))}; "
        f"medians over {args.rounds} round(s); {seconds:.0f} s in all"
    )
    print()
    print("| figure | measured | goal | verdict |")
    print("|---|---:|---:|---|")

    def row(figure: str, measured: float, goal: str = "", judged: str = "") -> None:
        print(f"| {figure} | {measured:.{2 if measured < 10 else 1}f} | {goal} | {judged} |")

    backlog = f"{args.bulk_jobs} bulk jobs of 10 ms queued"
    for label in PRIORITY:
        runs = report["priority"][label]
        p50 = statistics.median(run["p50"] for run in runs)
        p99 = statistics.median(run["p99"] for run in runs)
        if label == PRIORITY[0]:
            row(f"critical enqueue→start p50 ms, {label}, {backlog}", p50, "≤ 5",
                verdict(p50, GOALS["p50"], at_most=True))  # fmt: skip
            row(f"critical enqueue→start p99 ms, {label}", p99, "≤ 20",
                verdict(p99, GOALS["p99"], at_most=True))  # fmt: skip
        else:
            row(f"critical enqueue→start p50 ms, {label} (reference)", p50)
            row(f"critical enqueue→start p99 ms, {label} (reference)", p99)
    for kind in KINDS:
        runs = report["drains"][kind]
        for label, _, _ in DRAINS:
            row(f"{kind} jobs/s, {label}", statistics.median(runs[label]))
        for label, _, _ in DRAINS[1:]:
            ratio = statistics.median(paired_ratios(runs[label], runs[DRAINS[0][0]]))
            row(f"{kind} ratio {label} / 1 queue", ratio, "≥ 0.95",
                verdict(ratio, GOALS["ratio"], at_most=False))  # fmt: skip
    for label, _ in IDLE:
        rate = statistics.median(run["per_s"] for run in report["idle"][label])
        if label == IDLE[0][0]:
            row(f"idle worker, Redis commands/s, {label}", rate, "≤ 5",
                verdict(rate, GOALS["idle"], at_most=True))  # fmt: skip
        else:
            row(f"idle worker, Redis commands/s, {label}", rate)
    print()
    for label in PRIORITY:
        depths = [run["bulk_left"] for run in report["priority"][label]]
        bulk_rates = [run["bulk_per_s"] for run in report["priority"][label]]
        print(
            f"- {label}: bulk jobs still queued when the last critical job had run: "
            f"{min(depths)} to {max(depths)}; bulk jobs/s meanwhile: "
            f"{statistics.median(bulk_rates):.0f}; worst critical wait "
            f"{max(run['max'] for run in report['priority'][label]):.1f} ms"
        )
    for label, _ in IDLE:
        last = report["idle"][label][-1]["by_command"]
        spent = ", ".join(f"{name.upper()} {rate:.1f}/s" for name, rate in last.items())
        print(f"- idle, {label} (last round), by command: {spent or 'nothing'}")


# --- inside: the measurements ------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, pool: Any) -> None:
        package = args.inside
        self.args, self.url, self.pool = args, url, pool
        config = importlib.import_module(f"{package}.config")
        self.keys: dict[str, str] = config.get_settings().queue_keys
        self.tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        self.loop = importlib.import_module(f"{package}.infrastructure.worker.loop")
        arq_function = importlib.import_module(
            f"{package}.infrastructure.worker.functions"
        ).arq_function
        jobs = (bench_noop, bench_io, bench_critical)
        self.functions = (*self.tasks.WorkerSettings.functions, *map(arq_function, jobs))

    def worker(self, queues: tuple[str, ...], burst: bool, **overrides: Any) -> Any:
        return self.loop.create_worker(
            self.tasks.WorkerSettings,
            functions=self.functions,
            cron_jobs=(),
            handle_signals=False,
            burst=burst,
            queue_names=[self.keys[queue] for queue in queues],
            **overrides,
        )

    async def enqueue_many(self, name: str, queue: str, count: int) -> None:
        for first in range(0, count, ENQUEUE_CONCURRENCY):
            batch = min(ENQUEUE_CONCURRENCY, count - first)
            await asyncio.gather(
                *(self.pool.enqueue_job(name, _queue_name=queue) for _ in range(batch))
            )

    async def priority(self, label: str) -> dict[str, float]:
        args = self.args
        await self.pool.flushdb()
        await self.enqueue_many("bench_io", "bulk", args.bulk_jobs)
        done.clear()
        critical_waits_ms.clear()
        weights = {}
        if label != PRIORITY[0]:
            weights = {self.keys[queue]: weight for queue, weight in WEIGHTS.items()}
        worker = self.worker(QUEUES, burst=False, max_jobs=10, queue_weights=weights)
        async with polling(worker, self.pool):
            deadline = time.monotonic() + 60
            while done["io"] < BULK_STARTED:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{done['io']} bulk jobs ran in 60 s")
                await asyncio.sleep(0.001)
            bulk_before, started = done["io"], time.monotonic()
            due = time.monotonic()
            for _ in range(args.critical_jobs):
                due += CRITICAL_GAP_SECONDS
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self.pool.enqueue_job("bench_critical", time.time(), _queue_name="critical")
            deadline = time.monotonic() + 60
            while len(critical_waits_ms) < args.critical_jobs:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(critical_waits_ms)} critical jobs ran in 60 s")
                await asyncio.sleep(0.001)
            bulk_per_s = (done["io"] - bulk_before) / (time.monotonic() - started)
            bulk_left = await self.pool.zcard(self.keys["bulk"])
        waits = list(critical_waits_ms)
        found = {
            "p50": statistics.median(waits),
            "p99": percentile(waits, 99) if len(waits) > 1 else waits[0],
            "max": max(waits),
            "bulk_left": bulk_left,
            "bulk_per_s": bulk_per_s,
        }
        say(f"  priority, {label}: p50 {found['p50']:.1f} ms, p99 {found['p99']:.1f} ms, "
            f"{bulk_left} bulk left")  # fmt: skip
        return found

    async def drain(self, kind: str, queues: tuple[str, ...], target: str) -> float:
        jobs = self.args.jobs if kind == "no-op" else self.args.io_jobs
        name = JOB_OF_KIND[kind]
        await self.pool.flushdb()
        await self.enqueue_many(name, target, jobs)
        done.clear()
        worker = self.worker(queues, burst=True)
        started = time.perf_counter()
        try:
            await worker.async_run()
        finally:
            elapsed = time.perf_counter() - started
            await worker.close()
        ran = done["noop" if kind == "no-op" else "io"]
        if ran != jobs:
            raise RuntimeError(f"{ran} of {jobs} {kind} jobs ran")
        return jobs / elapsed

    async def idle(self, queues: tuple[str, ...]) -> dict[str, Any]:
        await self.pool.flushdb()
        redis = await RedisConnection.open(self.url)
        try:
            async with polling(self.worker(queues, burst=False), self.pool):
                await asyncio.sleep(SETTLE_SECONDS)
                before, opened = await redis.command_calls(), time.monotonic()
                await asyncio.sleep(self.args.idle_seconds)
                after, closed = await redis.command_calls(), time.monotonic()
        finally:
            await redis.close()
        seconds = closed - opened
        spent = calls_between(before, after)
        return {
            "per_s": sum(spent.values()) / seconds,
            "by_command": {name: calls / seconds for name, calls in sorted(spent.items())},
        }

    async def round(self, index: int, found: dict[str, Any]) -> None:
        for label in rotated(PRIORITY, index):
            found["priority"][label].append(await self.priority(label))
        for kind in rotated(KINDS, index):
            order = rotated(tuple(label for label, _, _ in DRAINS), index)
            for label in order:
                _, queues, target = next(drain for drain in DRAINS if drain[0] == label)
                rate = await self.drain(kind, queues, target)
                found["drains"][kind][label].append(rate)
                say(f"  {kind}, {label}: {rate:.0f} jobs/s")
        for label in rotated(tuple(label for label, _ in IDLE), index):
            queues = dict(IDLE)[label]
            run = await self.idle(queues)
            found["idle"][label].append(run)
            say(f"  idle, {label}: {run['per_s']:.1f} commands/s")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq

    package = args.inside
    os.environ["QUEUES"] = ",".join(QUEUES)
    os.environ["LOG_LEVEL"] = "WARNING"
    for name in ("WORKER_QUEUES", "WORKER_QUEUE_WEIGHTS"):
        os.environ.pop(name, None)
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        pool = await tasks.get_task_pool()
        try:
            bench = Bench(args, server.url, pool)
            found: dict[str, Any] = {
                "priority": {label: [] for label in PRIORITY},
                "drains": {kind: {label: [] for label, _, _ in DRAINS} for kind in KINDS},
                "idle": {label: [] for label, _ in IDLE},
            }
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                await bench.round(index, found)
            info = await pool.info("server")
        finally:
            await tasks.close_task_pool()
    found["meta"] = {
        "arq": arq.VERSION,
        "redis": info["redis_version"],
        "python": platform.python_version(),
    }
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inside:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
