"""The arq workers compare.py compares: the generated project's worker and plain arq, how each is
built, and the worker processes that run them.

Everything that makes one row differ from another is here, and nothing that measures: the
default figures (compare_default.py) drain and poll these workers in-process, --workers and
--metrics (compare_processes.py) start them as worker processes (this module's `queue_worker`,
run by compare.py with `--queue-worker`). Kept apart from the measuring so that "the same
tuning" and "as the project runs it" are defined once, for every figure.

- In-process configurations (the default figures): the generated worker built from the
  project's `WorkerSettings` as `arq` builds it, cron off, `noop` added; arq's defaults;
  arq with the project's TUNING; the same two with queue_read_limit 1000 (out of the way of the
  poll ceiling); two generated workers in one loop; two generated workers in two processes
  (`drain_worker`).
- Worker processes (--workers, --metrics): the generated worker as the project runs it
  (`generated_worker`), and plain arq with the project's TUNING, each running compare_jobs.py's
  jobs; and the event loop alone (`loop_alone`): the 10 ms job run by as many coroutines as the
  worker has slots, on the generated worker's loop, with no queue: the most any worker of that
  many slots drains on this machine.

arq is imported inside the functions: the outside half imports this module's labels in the
template's environment, where arq is not installed.
"""

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import compare_jobs
from benchkit import STAMP, JobRecorder, QueueDriver, run_worker_process
from compare_harness import enqueue_many
from compare_jobs import BENCH_JOBS, io, noop

# --- the default figures' configurations, drained in-process ---------------------------------

GENERATED = "generated defaults"
ARQ_DEFAULTS = "arq defaults"
ARQ_TUNED = "arq, same tuning"
GENERATED_TWO = "generated defaults, 2 workers in 1 loop"
GENERATED_PROCESSES = "generated defaults, 2 processes"
# queue_read_limit for the pair of drains that leave the poll ceiling out of the way.
UNCAPPED_READ_LIMIT = 1000
GENERATED_UNCAPPED = f"generated defaults, queue_read_limit {UNCAPPED_READ_LIMIT}"
ARQ_TUNED_UNCAPPED = f"arq, same tuning, queue_read_limit {UNCAPPED_READ_LIMIT}"
CONFIGURATIONS = (
    GENERATED,
    ARQ_DEFAULTS,
    ARQ_TUNED,
    GENERATED_UNCAPPED,
    ARQ_TUNED_UNCAPPED,
    GENERATED_TWO,
    GENERATED_PROCESSES,
)
LATENCY_CONFIGURATIONS = (GENERATED, ARQ_DEFAULTS)
# The project's tuning that "arq, same tuning" copies.
TUNING = ("poll_delay", "max_jobs", "job_timeout", "keep_result", "max_tries", "allow_abort_jobs")

# --- --workers and --metrics: the queues in worker processes --------------------------------

# --workers' ceiling for 10 ms jobs: a worker process with no queue (`loop_alone`).
LOOP_ALONE = "the event loop alone"

WORKER = "generated worker"
PLAIN_ARQ = "plain arq, same tuning"
WORKER_METRICS = "generated worker, metrics on"

# Makes the workers of one configuration, burst or not.
WorkerFactory = Callable[[bool], list[Any]]


def arq_function(tasks: Any) -> Any:
    """The project's wrapper making arq's `Function` of a job with its retries (the worker's
    functions.py beside `tasks`), for the bench's own jobs."""
    package = tasks.__name__.rpartition(".")[0]
    return importlib.import_module(f"{package}.worker.functions").arq_function


def generated_settings(tasks: Any) -> dict[str, Any]:
    """The project's WorkerSettings as arq reads them, cron off, with `arq_function(noop)` added."""
    return {
        **vars(tasks.WorkerSettings),
        "cron_jobs": (),
        "functions": (*tasks.WorkerSettings.functions, arq_function(tasks)(noop)),
    }


def in_process_setups(
    tasks: Any, project_pool: Any, arq_pool: Any, arq_redis: Any
) -> dict[str, tuple[Any, WorkerFactory]]:
    """Each in-process configuration: the pool its jobs are queued with (the project's, or
    arq's `create_pool`) and the factory of its worker(s). GENERATED_PROCESSES is not here: its
    workers are processes (`drain_worker`)."""
    from arq.worker import Worker, create_worker, func

    generated = generated_settings(tasks)
    tuning = {name: getattr(tasks.WorkerSettings, name) for name in TUNING}

    def make_generated(count: int, **overrides: Any) -> WorkerFactory:
        def make(burst: bool) -> list[Any]:
            return [
                create_worker(generated, burst=burst, handle_signals=False, **overrides)
                for _ in range(count)
            ]

        return make

    def make_arq(options: dict[str, Any]) -> WorkerFactory:
        def make(burst: bool) -> list[Any]:
            functions = [func(noop, name="noop")]
            return [
                Worker(
                    functions=functions,  # type: ignore[arg-type]
                    redis_settings=arq_redis,
                    burst=burst,
                    handle_signals=False,
                    **options,
                )
            ]

        return make

    uncapped = {"queue_read_limit": UNCAPPED_READ_LIMIT}
    return {
        GENERATED: (project_pool, make_generated(1)),
        ARQ_DEFAULTS: (arq_pool, make_arq({})),
        ARQ_TUNED: (arq_pool, make_arq(tuning)),
        GENERATED_UNCAPPED: (project_pool, make_generated(1, **uncapped)),
        ARQ_TUNED_UNCAPPED: (arq_pool, make_arq({**tuning, **uncapped})),
        GENERATED_TWO: (project_pool, make_generated(2)),
    }


async def drain_worker(package: str) -> None:
    """One burst worker of the generated kind, started on "go" from stdin; reports as JSON."""
    from arq.worker import create_worker

    tasks = importlib.import_module(f"{package}.infrastructure.tasks")
    worker = create_worker(generated_settings(tasks), burst=True, handle_signals=False)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.time()
    await worker.async_run()
    ended = time.time()
    await worker.close()
    report = {"started": started, "ended": ended, "done": worker.jobs_complete}
    print(json.dumps({**report, "failed": worker.jobs_failed}), flush=True)


def has_worker_module(package: str) -> bool:
    """Whether the project has its own worker entry point (infrastructure/worker/loop.py)."""
    return importlib.util.find_spec(f"{package}.infrastructure.worker") is not None


def worker_loop(package: str) -> str:
    """Which loop the generated worker runs, for the line above --workers' tables."""
    if has_worker_module(package):
        return f"{package}.infrastructure.worker.loop.create_worker (the project's loop)"
    return "arq's create_worker with WorkerSettings (arq's poll loop: no worker/loop.py)"


def queue_drivers(script: str, package: str, tasks: Any, arq_pool: Any) -> dict[str, QueueDriver]:
    """The generated worker's and plain arq's drivers: their worker processes are `script`
    (compare.py) with `--queue-worker`; the generated one's jobs are queued with `enqueue_task`
    (which wakes the project's worker), plain arq's with arq's `enqueue_job`."""
    registry = importlib.import_module(f"{package}.infrastructure.registry")
    for function in BENCH_JOBS:  # enqueue_task queues only the jobs declared in the registry
        registry.register(registry.JobSpec(function.__name__, function))
    command = [sys.executable, script, "--inside", package, "--queue-worker"]

    async def enqueue_generated(kind: str, count: int) -> None:
        await enqueue_many(lambda: tasks.enqueue_task(kind), count)

    async def enqueue_plain(kind: str, count: int) -> None:
        await enqueue_many(lambda: arq_pool.enqueue_job(kind), count)

    return {
        WORKER: QueueDriver(
            [*command, "generated"],
            enqueue_generated,
            lambda: tasks.enqueue_task(STAMP, time.time()),
        ),
        PLAIN_ARQ: QueueDriver(
            [*command, "arq"], enqueue_plain, lambda: arq_pool.enqueue_job(STAMP, time.time())
        ),
    }


def loop_alone_driver(script: str, package: str, jobs: int) -> QueueDriver:
    """The driver of `loop_alone`'s worker process, for a drain of `jobs` jobs: it queues
    nothing (its jobs are not in Redis), so the drain times the 10 ms job alone, from "go" as
    every drain is timed."""

    async def queue_nothing(kind: str, count: int) -> None:
        return None

    async def no_stamp() -> None:
        raise RuntimeError("the event loop alone measures drains only")

    command = [sys.executable, script, "--inside", package, "--queue-worker", "loop"]
    return QueueDriver([*command, "--io-jobs", str(jobs)], queue_nothing, no_stamp)


async def loop_alone(slots: int, jobs: int) -> None:
    """`slots` coroutines, each running the 10 ms job (compare_jobs.io) again as soon as it
    ends, `jobs` in all (no more: the measuring side counts the ends): what a worker of `slots`
    slots would do with no queue around the job and nothing lost between jobs.
    asyncio.sleep(0.01) takes a little longer than 10 ms (the loop's timers), so this is below
    1,000 jobs/s for 10 slots, and it is the ceiling the 10 ms figure is read against."""

    left = jobs

    async def slot() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await io({})

    await asyncio.gather(*(slot() for _ in range(slots)))
    await asyncio.get_running_loop().create_future()  # then wait to be stopped, as a worker does


def generated_worker(package: str, tasks: Any) -> Any:
    """The generated worker as the project runs it, with the bench's jobs added and cron off:
    its own `create_worker` (infrastructure/worker/loop.py) where the project has one, else arq's
    with the project's WorkerSettings."""
    functions = (*tasks.WorkerSettings.functions, *(arq_function(tasks)(job) for job in BENCH_JOBS))
    overrides = {"functions": functions, "cron_jobs": (), "handle_signals": False}
    if has_worker_module(package):
        module = importlib.import_module(f"{package}.infrastructure.worker.loop")
        tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        return module.create_worker(tasks.WorkerSettings, **overrides)
    from arq.worker import create_worker

    return create_worker({**vars(tasks.WorkerSettings), **overrides})


def use_project_loop(package: str) -> None:
    """As `just worker` runs the generated worker: on uvloop where the project has it
    (worker.py's main). Called before the worker process's event loop starts."""
    if has_worker_module(package):
        module = importlib.import_module(f"{package}.infrastructure.worker.loop")
        getattr(module, "use_uvloop_if_installed", lambda: None)()


async def queue_worker(args: argparse.Namespace) -> None:
    """A worker process of --workers' measurements (benchkit's run_worker_process): the
    generated worker, or plain arq with the project's tuning (`--queue-worker arq`)."""
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    compare_jobs.RECORDER = recorder = JobRecorder(args.slots, args.slot)
    if args.metrics_port:  # read once, when tasks.py is imported: set it first
        os.environ["WORKER_METRICS_PORT"] = str(args.metrics_port)
        os.environ["WORKER_METRICS_HOST"] = "127.0.0.1"
    tasks = importlib.import_module(f"{args.inside}.infrastructure.tasks")
    if args.queue_worker == "loop":

        async def stop_loop(running: "asyncio.Future[Any]") -> None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

        slots = tasks.WorkerSettings.max_jobs
        await run_worker_process(lambda: loop_alone(slots, args.io_jobs), stop_loop, recorder)
        return
    if args.queue_worker == "generated":
        worker = generated_worker(args.inside, tasks)
    else:
        worker = Worker(
            functions=[func(job, name=job.__name__) for job in BENCH_JOBS],  # type: ignore[arg-type]
            redis_settings=RedisSettings.from_dsn(os.environ["REDIS_URL"]),
            handle_signals=False,
            **{name: getattr(tasks.WorkerSettings, name) for name in TUNING},
        )

    async def stop(running: "asyncio.Future[Any]") -> None:
        if args.metrics_port:
            await check_metrics_counted(args.metrics_port, recorder)
        running.cancel()  # the poll loop; the jobs' tasks finish (their results are written)
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await worker.close()

    await run_worker_process(worker.async_run, stop, recorder)


async def check_metrics_counted(port: int, recorder: JobRecorder) -> None:
    """In a --metrics worker process: its /metrics counted every job that ended, else raise."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> str:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(scrape)
    completed = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "arq_jobs_completed_total"
    )
    if completed != recorder.done:
        raise RuntimeError(f"/metrics counted {completed:g} jobs completed, {recorder.done} ended")
