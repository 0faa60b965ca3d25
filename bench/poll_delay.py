"""Compare arq `poll_delay` values: throughput, enqueue→start latency and idle Redis load.

    uv run python bench/poll_delay.py [--jobs 2000] [--runs 3] [--latency-jobs 100]
                                      [--idle-seconds 2] [--seed 1]
                                      [--delays 0.5,0.2,0.1,0.05,0.02,0.01]

Bakes the default project into a scratch folder, `uv sync`s it, copies this file and benchkit.py
into it and runs it again there with `--inside`, in the project's own venv: that half imports the
generated package, starts its `LocalRedisServer` on a free loopback port and drives arq workers
in-process, built from the project's `WorkerSettings` with only `poll_delay` changed (and cron jobs
off, so a minute boundary adds no job to a measurement). One reference row uses arq's own defaults
instead (no abort polling, arq's poll_delay 0.5). For each row:

- throughput: one burst worker drains `--jobs` trivial jobs, all queued before it starts; the
  median of `--runs` runs, or a single run where that one reaches the poll ceiling
  (queue_read_limit / poll_delay);
- latency: `--latency-jobs` jobs enqueued one at a time, 0-50 ms apart at random, to an otherwise
  idle running worker; enqueue→start from arq's `JobResult.enqueue_time` / `.start_time`;
- idle cost: Redis `total_commands_processed` per second with an idle worker, over
  `--idle-seconds` (or 10 polls if longer), minus the same without a worker; polls counted by
  ZRANGEBYSCORE calls (`INFO commandstats`); CPU of the worker's process and of Redis.

Progress goes to stderr, the table to stdout.
"""

import argparse
import asyncio
import importlib
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import (
    bake,
    percentile,
    polling,
    run_script_inside,
    sync,
    tool_environment,
    wait_for_results,
)

DEFAULT_DELAYS = "0.5,0.2,0.1,0.05,0.02,0.01"
ARQ_DEFAULTS = "arq defaults"
# From the project's WorkerSettings, the reference row keeps only what it needs to run its jobs.
ARQ_DEFAULTS_KEEP = ("functions", "queue_name", "job_serializer", "job_deserializer")
ENQUEUE_BATCH = 100
MAX_ENQUEUE_GAP_SECONDS = 0.05
RUN_TIMEOUT_SECONDS = 600
# A drain at 95 % of queue_read_limit / poll_delay is poll-bound: a repeat gives the same figure.
POLL_BOUND = 0.95


def say(message: str) -> None:
    print(f"poll_delay: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs for the throughput run")
    parser.add_argument("--latency-jobs", type=int, default=100, help="jobs for the latency run")
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="idle measuring window")
    parser.add_argument("--delays", default=DEFAULT_DELAYS, help="poll_delay values, a,b,...")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs below the ceiling")
    parser.add_argument("--seed", type=int, default=1, help="seed for the enqueue gaps")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- outside: bake, sync, run this file in the project, print the table ----------------------


def run_inside(project: Path, args: argparse.Namespace, environment: dict[str, str]) -> Any:
    """Run this file in the project with `--inside`, with these options; return its JSON."""
    arguments = [
        "--jobs", str(args.jobs),
        "--latency-jobs", str(args.latency_jobs),
        "--idle-seconds", str(args.idle_seconds),
        "--delays", args.delays,
        "--runs", str(args.runs),
        "--seed", str(args.seed),
    ]  # fmt: skip
    return run_script_inside(project, __file__, arguments, environment, RUN_TIMEOUT_SECONDS)


def unsigned(difference: float) -> str:
    """A difference of two noisy readings to one decimal, without a "-0.0"."""
    return f"{round(difference, 1) + 0.0:.1f}"


def print_table(report: dict[str, Any], elapsed: float) -> None:
    meta, baseline = report["meta"], report["baseline"]
    print(
        f"arq {meta['arq']}, redis-server {meta['redis']}, Python {meta['python']}, "
        f"{meta['cpus']} CPUs, {meta['machine']}"
    )
    print(
        f"throughput: {meta['jobs']} queued jobs, one burst worker, median of up to "
        f"{meta['runs']} runs; "
        f"latency: {meta['latency_jobs']} jobs 0-{MAX_ENQUEUE_GAP_SECONDS * 1000:.0f} ms apart; "
        f"idle: windows of max({meta['idle_seconds']:g} s, 10 polls), without a worker Redis saw "
        f"{baseline['commands_per_s']:.1f} commands/s besides the measuring INFO (subtracted)"
    )
    print()
    header = (
        "| worker | poll_delay s | max_jobs | queue_read_limit | ceiling jobs/s "
        "| throughput jobs/s | runs (min-max) | latency p50 ms | p95 ms | max ms "
        "| idle Redis cmds/s | idle polls/s | cmds per poll | idle worker CPU % "
        "| idle Redis CPU % |"
    )
    print(header)
    print("|" + "|".join("---:" if i > 1 else "---" for i in range(1, header.count("|"))) + "|")
    for row in report["rows"]:
        ceiling = row["queue_read_limit"] / row["poll_delay"]
        print(
            f"| {row['label']} | {row['poll_delay']:g} | {row['max_jobs']} "
            f"| {row['queue_read_limit']} | {ceiling:.0f} | {row['jobs_per_s']:.0f} "
            f"| {row['runs']} ({row['min_jobs_per_s']:.0f}-{row['max_jobs_per_s']:.0f}) "
            f"| {row['p50_ms']:.0f} | {row['p95_ms']:.0f} "
            f"| {row['max_ms']:.0f} | {row['idle_commands_per_s']:.1f} "
            f"| {row['idle_polls_per_s']:.1f} | {row['idle_commands_per_poll']:.1f} "
            f"| {unsigned(row['idle_worker_cpu_pct'])} | {unsigned(row['idle_redis_cpu_pct'])} |"
        )
    print()
    template_rows = [row for row in report["rows"] if row["label"] != ARQ_DEFAULTS]
    trade = ", ".join(
        f"{row['poll_delay']:g} s: p95 {row['p95_ms']:.0f} ms / {row['idle_commands_per_s']:.0f} "
        f"idle cmds/s / {row['jobs_per_s']:.0f} jobs/s"
        for row in template_rows
    )
    print(f"trade-off per poll_delay (template worker): {trade}")
    print(f"total run time {elapsed:.0f} s")


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    environment = tool_environment()
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-poll-delay-") as scratch:
        project = bake(scratch)
        say(f"baked {project}; uv sync")
        sync(project, environment)
        report = run_inside(project, args, environment)
    print_table(report, time.perf_counter() - started)
    return 0


# --- inside: runs in the baked project's venv --------------------------------------------------

WorkerFactory = Callable[[bool], Any]


async def enqueue_many(tasks: Any, count: int, label: str) -> list[Any]:
    jobs: list[Any] = []
    for first in range(0, count, ENQUEUE_BATCH):
        batch = range(first, min(first + ENQUEUE_BATCH, count))
        jobs += await asyncio.gather(
            *(tasks.enqueue_task("example_task", message=f"{label} {i}") for i in batch)
        )
    return jobs


async def redis_counters(pool: Any) -> dict[str, Any]:
    """Time, Redis's command counters and CPU seconds, and this process's CPU seconds."""
    info = await pool.info("stats", "cpu", "commandstats")
    return {
        "wall": time.perf_counter(),
        "commands": int(info["total_commands_processed"]),
        "calls": {
            name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in info.items()
            if name.startswith("cmdstat_")
        },
        "redis_cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        "own_cpu": time.process_time(),
    }


async def idle_load(pool: Any, seconds: float) -> dict[str, Any]:
    """What `seconds` of doing nothing cost: Redis commands/s, Redis and own CPU %, calls by name.

    The measuring INFO calls are left out of the commands; `polls` counts ZRANGEBYSCORE calls:
    a worker makes one per poll, the measuring client none.
    """
    before = await redis_counters(pool)
    await asyncio.sleep(seconds)
    after = await redis_counters(pool)
    wall = after["wall"] - before["wall"]
    calls = {
        name: count - before["calls"].get(name, 0)
        for name, count in after["calls"].items()
        if count > before["calls"].get(name, 0)
    }
    commands = after["commands"] - before["commands"] - calls.pop("info", 0)
    return {
        "seconds": wall,
        "commands_per_s": commands / wall,
        "redis_cpu_pct": 100 * (after["redis_cpu"] - before["redis_cpu"]) / wall,
        "own_cpu_pct": 100 * (after["own_cpu"] - before["own_cpu"]) / wall,
        "polls": calls.get("zrangebyscore", 0),
        "calls": calls,
    }


async def latency(tasks: Any, worker: Any, count: int, rng: random.Random) -> dict[str, float]:
    jobs = []
    for i in range(count):
        await asyncio.sleep(rng.uniform(0, MAX_ENQUEUE_GAP_SECONDS))
        jobs.append(await tasks.enqueue_task("example_task", message=f"latency {i}"))
    results = await wait_for_results(jobs)
    failed = [result for result in results if not result.success]
    if failed:
        raise RuntimeError(f"{len(failed)} latency jobs failed, e.g. {failed[0].result!r}")
    waits = [(r.start_time - r.enqueue_time).total_seconds() * 1000 for r in results]
    return {"p50_ms": percentile(waits, 50), "p95_ms": percentile(waits, 95), "max_ms": max(waits)}


async def drain(tasks: Any, pool: Any, make_worker: WorkerFactory, count: int) -> dict:
    """Queue `count` jobs, then time one burst worker draining them."""
    await pool.flushdb()
    await enqueue_many(tasks, count, "throughput")
    worker = make_worker(True)
    started = time.perf_counter()
    await worker.async_run()
    drain = time.perf_counter() - started
    facts = {
        "jobs_per_s": worker.jobs_complete / drain,
        "drain_s": drain,
        "queue_read_limit": worker.queue_read_limit,
        "max_jobs": worker.max_jobs,
        "poll_delay": worker.poll_delay_s,
    }
    if worker.jobs_complete != count or worker.jobs_failed:
        raise RuntimeError(f"{worker.jobs_complete} of {count} done, {worker.jobs_failed} failed")
    await worker.close()
    return facts


async def throughput(
    tasks: Any, pool: Any, make_worker: WorkerFactory, count: int, runs: int
) -> dict[str, Any]:
    """The median of `runs` drains; a first run at its poll ceiling is poll-bound, not repeated."""
    drains = [await drain(tasks, pool, make_worker, count)]
    first = drains[0]
    if first["jobs_per_s"] < POLL_BOUND * first["queue_read_limit"] / first["poll_delay"]:
        drains += [await drain(tasks, pool, make_worker, count) for _ in range(runs - 1)]
    drains.sort(key=lambda facts: facts["jobs_per_s"])
    return {
        **drains[len(drains) // 2],
        "runs": len(drains),
        "min_jobs_per_s": drains[0]["jobs_per_s"],
        "max_jobs_per_s": drains[-1]["jobs_per_s"],
    }


def worker_factory(settings: dict[str, Any], url: str, poll_delay: float | None) -> WorkerFactory:
    from arq.connections import RedisSettings
    from arq.worker import create_worker

    overrides: dict[str, Any] = {} if poll_delay is None else {"poll_delay": poll_delay}

    def make_worker(burst: bool) -> Any:
        return create_worker(
            settings,
            redis_settings=RedisSettings.from_dsn(url),
            handle_signals=False,
            burst=burst,
            **overrides,
        )

    return make_worker


async def measure_row(
    label: str,
    make_worker: WorkerFactory,
    tasks: Any,
    pool: Any,
    args: argparse.Namespace,
    baseline: dict[str, float],
) -> dict[str, Any]:
    say(f"{label}: idle load and latency")
    await pool.flushdb()
    async with polling(make_worker(False), pool) as worker:
        # The worker has just polled: start half a poll later and last a whole number of polls
        # (at least 10), so the window holds that many polls whatever the jitter.
        poll = worker.poll_delay_s
        await asyncio.sleep(poll / 2)
        idle = await idle_load(pool, poll * max(10, math.ceil(args.idle_seconds / poll)))
        delays = await latency(tasks, worker, args.latency_jobs, random.Random(args.seed))
    say(f"{label}: throughput over {args.jobs} jobs")
    drained = await throughput(tasks, pool, make_worker, args.jobs, args.runs)
    row = {"label": label, **drained, **delays}
    row["idle_commands_per_s"] = idle["commands_per_s"] - baseline["commands_per_s"]
    row["idle_polls_per_s"] = idle["polls"] / idle["seconds"]
    row["idle_commands_per_poll"] = row["idle_commands_per_s"] / row["idle_polls_per_s"]
    row["idle_redis_cpu_pct"] = idle["redis_cpu_pct"] - baseline["redis_cpu_pct"]
    row["idle_worker_cpu_pct"] = idle["own_cpu_pct"] - baseline["own_cpu_pct"]
    per_poll = ", ".join(f"{name} {n / idle['polls']:.2f}" for name, n in idle["calls"].items())
    say(
        f"{label}: {row['jobs_per_s']:.0f} jobs/s, p50 {row['p50_ms']:.0f} ms, "
        f"{row['idle_commands_per_s']:.1f} idle cmds/s ({idle['polls']} polls in "
        f"{idle['seconds']:.1f} s; per poll: {per_poll})"
    )
    return row


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq

    package = args.inside
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        pool = await tasks.get_task_pool()
        try:
            # The template's minute cron would add a job to whichever measurement spans second 0.
            template_settings = {**vars(tasks.WorkerSettings), "cron_jobs": ()}
            arq_settings = {k: v for k, v in template_settings.items() if k in ARQ_DEFAULTS_KEEP}
            rows = [(ARQ_DEFAULTS, worker_factory(arq_settings, server.url, None))]
            for delay in (float(value) for value in args.delays.split(",")):
                label = f"template, {delay:g}"
                rows.append((label, worker_factory(template_settings, server.url, delay)))

            await pool.flushdb()
            say("idle load without a worker")
            baseline = await idle_load(pool, args.idle_seconds)
            measured = [
                await measure_row(label, make_worker, tasks, pool, args, baseline)
                for label, make_worker in rows
            ]
            info = await pool.info("server")
        finally:
            await tasks.close_task_pool()
    meta = {
        "arq": arq.VERSION,
        "redis": info["redis_version"],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "jobs": args.jobs,
        "latency_jobs": args.latency_jobs,
        "runs": args.runs,
        "idle_seconds": args.idle_seconds,
    }
    return {"meta": meta, "baseline": baseline, "rows": measured}


def inside(args: argparse.Namespace) -> int:
    # arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix, and noisy.
    warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
    report = asyncio.run(measure(args))
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return inside(args) if args.inside else outside(args)


if __name__ == "__main__":
    sys.exit(main())
