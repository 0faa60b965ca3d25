"""How soon a job starts, by the way it was queued: every way the project enqueues wakes a worker.

    uv run python bench/wake_paths.py [--jobs 100]

Bakes the default project into a scratch folder, `uv sync`s it, and runs this file inside it
(`--inside`, the project's own venv; benchkit.py's `run_script_inside`). That half starts the
project's `LocalRedisServer` on a free loopback port and one real worker process, as `just worker`
starts it (`python -m <package>.infrastructure.worker`), on settings written into the scratch
copy: the project's jobs plus `queues_follow_up`, which queues `example_task` with
`ctx["redis"].enqueue_job`. Then, for each way of queueing, `--jobs` jobs one at a time, each
once the last has finished and after an idle pause of 20 to 60 ms (so the worker is waiting,
as in a quiet service, not draining a backlog):

- `enqueue_task(...)`: the project's client;
- `(await get_task_pool()).enqueue_job(...)`: the form arq's docs show;
- `ctx["redis"].enqueue_job(...)` inside a job: how a job queues follow-up work;
- a foreign arq client (`arq.create_pool`, another service): it pushes no wake-up token, so its
  jobs wait for the worker's fallback look at the queue (worker.py's FALLBACK_POLL_SECONDS).

Enqueue-to-start is read from each job's result (arq's start time less its enqueue time, both
written by Redis clients on this machine). It prints one Markdown table: p50, p99 and max in ms.
"""

import argparse
import asyncio
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    measure_in_baked_project,
    percentile,
    stop_process,
)

PATHS = (
    "enqueue_task()",
    "get_task_pool().enqueue_job()",
    'ctx["redis"].enqueue_job() in a job',
    "arq's own create_pool (foreign client)",
)
SETTINGS_MODULE = "bench_wake_jobs"
SETTINGS = """
from {package}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {package}.infrastructure.worker.functions import arq_function


async def queues_follow_up(ctx, message):
    follow_up = await ctx["redis"].enqueue_job("example_task", message=message)
    return follow_up.job_id


WorkerSettings = {{
    **vars(ProjectSettings),
    "functions": (*ProjectSettings.functions, arq_function(queues_follow_up)),
    "cron_jobs": (),
}}
"""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs per way of queueing")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = measure_in_baked_project(__file__, ["--jobs", str(args.jobs)], "wake", timeout=1800)
    print(f"{os.cpu_count()} CPUs, {args.jobs} jobs per way, {time.perf_counter() - started:.0f} s")
    print()
    print("| queued with | enqueue-to-start p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|")
    for path in PATHS:
        row = report[path]
        print(f"| {path} | {row['p50']:.1f} | {row['p99']:.1f} | {row['max']:.1f} |")
    return 0


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq

    package = args.inside
    Path(f"{SETTINGS_MODULE}.py").write_text(SETTINGS.format(package=package))
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    serialization = importlib.import_module(f"{package}.infrastructure.store.serialization")
    queue = importlib.import_module(f"{package}.queue")
    with redis_server.LocalRedisServer() as server:
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        queue_name = config.get_settings().queue_name
        worker = subprocess.Popen(
            [sys.executable, "-m", f"{package}.infrastructure.worker",
             f"{SETTINGS_MODULE}.WorkerSettings"],
            env={**os.environ, "LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        pool = await queue.get_task_pool()
        foreign = await arq.create_pool(
            arq.connections.RedisSettings.from_dsn(server.url),
            job_serializer=serialization.serialize,
            job_deserializer=serialization.deserialize,
            default_queue_name=queue_name,
        )
        try:
            await queue.enqueue_task("example_task", message="warm-up")
            await asyncio.sleep(2)  # the worker is up and idle

            async def queued(path: str, n: int) -> Any:
                message = f"{n}"
                if path == PATHS[0]:
                    return await queue.enqueue_task("example_task", message=message)
                if path == PATHS[1]:
                    return await pool.enqueue_job("example_task", message=message)
                if path == PATHS[2]:
                    parent = await pool.enqueue_job("queues_follow_up", message=message)
                    return await queue.get_job(await parent.result(timeout=10))
                return await foreign.enqueue_job("example_task", message=message)

            report: dict[str, Any] = {}
            for path in PATHS:
                waits = []
                for n in range(args.jobs):
                    await asyncio.sleep(random.uniform(0.02, 0.06))
                    job = await queued(path, n)
                    await job.result(timeout=10)
                    info = await job.result_info()
                    waits.append((info.start_time - info.enqueue_time).total_seconds() * 1000)
                report[path] = {
                    "p50": statistics.median(waits),
                    "p99": percentile(waits, 99),
                    "max": max(waits),
                }
                say(f"{path}: p50 {report[path]['p50']:.1f} ms")
            return report
        finally:
            await foreign.aclose()
            await queue.close_task_pool()
            stop_process(worker, grace=10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inside:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
