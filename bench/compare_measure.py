"""The inside half of compare.py, in the baked project's venv: one Redis, the rounds, the report.

Starts the project's `LocalRedisServer` on a free loopback port, opens the project's pool and
arq's own, and runs `--rounds` rounds; each round runs every part asked for, in the same order
every time: the default figures (compare_default.py), Celery's runs (compare_peers.py), then
--workers' and --metrics' rounds (compare_processes.py). Interleaving the parts by round, rather
than running each part's rounds in a row, lets a drift on the machine hit every figure alike.
Returns the JSON report the outside half prints (compare_report.py): figures and the run's
sizes and versions ("meta").
"""

import argparse
import importlib
import os
import platform
from typing import Any

from benchkit import rotated
from compare_arq import loop_alone_driver, queue_drivers, worker_loop
from compare_default import DefaultFigures
from compare_harness import say, share
from compare_peers import CELERY_POOLS, run_celery
from compare_processes import metrics_round, workers_round


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


async def measure(args: argparse.Namespace, script: str) -> dict[str, Any]:
    """Every round of every part `args` asks for; `script` is compare.py, which the worker
    processes run again."""
    import arq
    from arq.connections import RedisSettings

    package = args.inside
    default_figures = not (args.workers_only or args.metrics)
    os.environ["LOG_LEVEL"] = "WARNING"
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        arq_redis = RedisSettings.from_dsn(server.url)
        project_pool = await tasks.get_task_pool()
        arq_pool = await arq.create_pool(arq_redis)
        try:
            default = DefaultFigures(args, script, tasks, project_pool, arq_pool, arq_redis)
            celery_runs: dict[str, list[dict]] = {pool: [] for pool in CELERY_POOLS}
            drivers = queue_drivers(script, package, tasks, arq_pool)
            found: dict[str, dict[str, Any]] = {}
            metrics_found: dict[str, dict[str, Any]] = {}
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                if default_figures:
                    await default.round(index)
                    if args.celery_python:
                        for pool in rotated(CELERY_POOLS, index):
                            celery_args = {
                                **vars(args),
                                "latency_jobs": share(args.latency_jobs, args.rounds, index),
                                "seed": args.seed + index,
                            }
                            run = await run_celery(server.url, pool, celery_args)
                            say(f"  Celery {pool}: {run['drain_jobs_per_s']:.0f} jobs/s")
                            celery_runs[pool].append(run)
                if args.workers:
                    loop_alone = loop_alone_driver(script, package, args.io_jobs)
                    await workers_round(args, index, server.url, drivers, loop_alone, found)
                if args.metrics:
                    await metrics_round(args, index, server.url, drivers, metrics_found)
            info = await project_pool.info("server")
        finally:
            await arq_pool.aclose()
            await tasks.close_task_pool()

    results: dict[str, Any] = default.results() if default_figures else {}
    if args.celery_python:
        results["celery"] = celery_runs
    if args.workers:
        results["queues"] = found
    if args.metrics:
        results["metrics"] = metrics_found
    meta = {
        "arq": arq.VERSION,
        "redis": info["redis_version"],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "rounds": args.rounds,
        "jobs": args.jobs,
        "latency_rate": args.latency_rate,
        # --workers
        "usable_cpus": usable_cpus(),
        "workers": args.workers,
        "noop_jobs": args.noop_jobs,
        "io_jobs": args.io_jobs,
        "idle_seconds": args.idle_seconds,
        "worker_loop": worker_loop(package),
    }
    return {"meta": meta, "results": results}
