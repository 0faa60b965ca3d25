"""Compare the generated project's worker with plain arq, and time the project's everyday commands.

    uv run python bench/compare.py [--rounds 3] [--jobs 5000] [--latency-jobs 200]
                                   [--latency-rate 20] [--enqueue-jobs 5000] [--check-runs 5]
                                   [--bake-runs 5] [--seed 1] [--celery]

Bakes the default project into a scratch folder, `uv sync`s it (bytecode compiled, as the
Dockerfile does: otherwise each worker start would compile its imports again on a machine with
PYTHONDONTWRITEBYTECODE set, 0.3 s here), copies this file and benchkit.py into it and runs it
again there with `--inside`, in the project's own venv: that half imports the generated package,
starts its `LocalRedisServer` on a free loopback port and drives arq workers in-process. Every
measurement is repeated in `--rounds` interleaved rounds (each round runs every configuration once,
in an order rotated by one per round); the table shows medians over rounds. Redis is flushed
(FLUSHDB) before each run. The project's `LOG_LEVEL` is WARNING for the whole run (the worker
subprocesses too), so the cost of log lines is not measured.

Worker configurations (all run no-op jobs, `async def noop(ctx)`):

- generated defaults: built from the project's `WorkerSettings` as `arq` builds it
  (`create_worker(vars(WorkerSettings), burst=True, handle_signals=False)`) with cron jobs off (a
  minute tick would add a job) and `job(noop)` added to its functions, so the retry wrapper,
  the project's serializer and the heartbeat hooks are all in; jobs queued with the project's
  pool (`get_task_pool().enqueue_job("noop")`);
- arq defaults: `arq.worker.Worker(functions=[func(noop, name="noop")])`, everything else arq's
  default (poll_delay 0.5 s, max_jobs 10, pickle); jobs queued with `arq.create_pool()`;
- arq, same tuning: as arq defaults, with the project's poll_delay, max_jobs, job_timeout,
  keep_result, max_tries and allow_abort_jobs (queue_read_limit left to arq's default for those
  max_jobs), but no wrapper, no hooks, pickle;
- the same two with queue_read_limit 1000: at the defaults both workers run near their poll
  ceiling (see 1.), where a ratio says little about the cost of each job; with the ceiling out of
  the way, this pair shows what our wrapper, serializer and hooks cost per job;
- generated defaults, 2 workers in 1 loop: two of the first kind draining one queue together, as
  two burst workers in one event loop (this process): they share one CPU, so this row shows the
  contention between workers on one queue, not what a second worker process would add;
- generated defaults, 2 processes: the same two workers, each in its own process (this file run
  with `--drain-worker`); each builds its worker, says "ready", waits for "go", and reports the
  wall-clock start and end of its `async_run()`: the drain time is from the first start to the
  last end (interpreter start-up and imports left out). With few CPUs the two processes and
  Redis compete for them: the machine line gives the CPU count.

Figures:

1. drain throughput: `--jobs` jobs queued (100 concurrent enqueues at a time), then a burst worker
   started; jobs/s = jobs / the worker's `async_run()` wall time (start-up and shutdown included).
   A worker reads at most queue_read_limit jobs per poll, so queue_read_limit / poll_delay (per
   worker) is a ceiling, shown with each row: a row at its ceiling measures the polling, not the
   cost per job, and a ratio of two rows at the same ceiling is about 1 whatever their costs;
2. enqueue→start latency: `--latency-jobs` jobs over all rounds, enqueued one at a time at an
   average `--latency-rate` per second to an idle running (non-burst) worker; the gaps are drawn
   at random (exponential, seeded by `--seed`) because a fixed 50 ms gap would lock in phase with
   the worker's 50 ms polls and measure one arbitrary phase; the wait is arq's
   `JobResult.start_time - enqueue_time` (millisecond timestamps); percentiles over all jobs;
3. `enqueue_task("example_task", ...)` against `pool.enqueue_job("example_task", ...)` on the same
   pool: `--enqueue-jobs` sequential awaits each per round, in blocks of 50 that alternate
   between the two (so a drift within the round hits both alike), which of the two goes first
   changing from one pair of blocks to the next; rate = jobs / summed time;
4. Redis commands per job: the sum of `calls` in `INFO commandstats` around a drain (worker
   start-up and shutdown included, the measuring INFO calls excluded), divided by `--jobs`;
5. worker cold start: one job queued, then `python -m arq <pkg>.infrastructure.tasks
   .WorkerSettings` started; time from `Popen` to that job's start_time (one per round); and the
   wall time of `python -m <pkg>.infrastructure.cli worker-check` while that worker runs
   (`--check-runs` runs spread over the rounds);
6. bake time per cache backend: in-process `cookiecutter(...)` (render + hooks), `--bake-runs`
   interleaved runs, timed before the project is baked for the rest (bench/bake_time.py);
7. with `--celery`, Celery on the same Redis server, once per round after the arq drains, with
   its solo pool (one process, like one arq worker) and its default prefork pool (one process per
   CPU): `bench/celery_drain.py` run in a venv of its own (celery[redis] needs redis-py >= 6,
   arq < 6), made in the scratch folder with uv; it measures drain throughput, commands per job
   and enqueue→start latency (its docstring gives the method; its drain time leaves out the
   worker's start-up and shutdown, which the arq rows include, so it flatters Celery a little).

Rates are medians over rounds; ratios are the median of the per-round ratios (both figures of a
ratio come from the same round, so a slow round weighs on both). Progress goes to stderr;
a machine line and the Markdown table go to stdout.
"""

import argparse
import asyncio
import importlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchkit import (
    bake,
    commands_so_far,
    percentile,
    polling,
    rotated,
    run_script_inside,
    stop_process,
    sync,
    tool_environment,
    wait_for_results,
)

BACKENDS = ("redis", "falkordb", "none")
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
CELERY_POOLS = ("solo", "prefork")
CELERY_SCRIPT = Path(__file__).resolve().with_name("celery_drain.py")
LATENCY_CONFIGURATIONS = (GENERATED, ARQ_DEFAULTS)
# The project's tuning that "arq, same tuning" copies.
TUNING = ("poll_delay", "max_jobs", "job_timeout", "keep_result", "max_tries", "allow_abort_jobs")
ENQUEUE_BATCH = 100
ENQUEUE_BLOCK = 50  # short blocks: a burst of noise on the machine hits both methods
RUN_TIMEOUT_SECONDS = 900
WORKER_STOP_SECONDS = 10


def say(message: str) -> None:
    print(f"compare: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain")
    parser.add_argument("--latency-jobs", type=int, default=200, help="latency jobs, all rounds")
    parser.add_argument("--latency-rate", type=float, default=20, help="latency jobs per second")
    parser.add_argument("--enqueue-jobs", type=int, default=5000, help="enqueues per method")
    parser.add_argument("--check-runs", type=int, default=5, help="worker-check runs")
    parser.add_argument("--bake-runs", type=int, default=5, help="bakes per cache backend")
    parser.add_argument("--seed", type=int, default=1, help="seed for the latency gaps")
    parser.add_argument("--celery", action="store_true", help="compare with Celery too")
    # Set by the outside half: the Celery venv's Python and bench/celery_drain.py.
    parser.add_argument("--celery-python", help=argparse.SUPPRESS)
    parser.add_argument("--celery-script", help=argparse.SUPPRESS)
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    parser.add_argument("--drain-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- outside: bake, sync, run this file in the project, print the table ----------------------


def bake_times(runs: int) -> dict[str, float]:
    """Median in-process bake time per cache backend, the backends interleaved."""
    from bake_time import time_in_process  # beside this file, so on sys.path

    times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    for _ in range(runs):
        for backend in BACKENDS:
            times[backend].append(time_in_process(backend))
    return {backend: statistics.median(values) for backend, values in times.items()}


def run_inside(
    project: Path, args: argparse.Namespace, environment: dict[str, str], celery: Path | None
) -> Any:
    """Run this file in the project with `--inside`, with these options; return its JSON."""
    arguments = [
        "--rounds", str(args.rounds),
        "--jobs", str(args.jobs),
        "--latency-jobs", str(args.latency_jobs),
        "--latency-rate", str(args.latency_rate),
        "--enqueue-jobs", str(args.enqueue_jobs),
        "--check-runs", str(args.check_runs),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if celery is not None:
        arguments += ["--celery-python", str(celery), "--celery-script", str(CELERY_SCRIPT)]
    return run_script_inside(project, __file__, arguments, environment, RUN_TIMEOUT_SECONDS)


def verdict(value: float, target: float | None, at_least: bool) -> tuple[str, str]:
    """The target as text and "meets"/"misses" ("-" twice without a target)."""
    if target is None:
        return "-", "-"
    meets = value >= target if at_least else value <= target
    return f"{'≥' if at_least else '≤'} {target:g}", "meets" if meets else "misses"


def paired_ratio(tops: list[float], bottoms: list[float]) -> float:
    """The median over rounds of each round's ratio: a drift across rounds cancels out."""
    return statistics.median(top / bottom for top, bottom in zip(tops, bottoms, strict=True))


def print_table(report: dict[str, Any], bakes: dict[str, float], elapsed: float) -> None:
    meta, r = report["meta"], report["results"]
    print(
        f"arq {meta['arq']}, redis-server {meta['redis']}, Python {meta['python']}, "
        f"{meta['cpus']} CPUs, {meta['machine']}; {meta['rounds']} rounds, medians"
    )
    print()
    rows: list[tuple[str, str, float | None, bool]] = []  # figure, value, target, at least?
    drain = r["drain"]
    for label in CONFIGURATIONS:
        row = drain[label]
        value = f"{row['jobs_per_s']:.0f} ({row['min']:.0f}-{row['max']:.0f})"
        figure = (
            f"drain {meta['jobs']} jobs, {label}: jobs/s (min-max; poll ceiling "
            f"{row['ceiling']:.0f})"
        )
        rows.append((figure, value, None, True))
    ratios = (
        (GENERATED, ARQ_DEFAULTS, 6.0),
        (GENERATED, ARQ_TUNED, 0.95),
        (GENERATED_UNCAPPED, ARQ_TUNED_UNCAPPED, None),
        (GENERATED_TWO, GENERATED, None),
        (GENERATED_PROCESSES, GENERATED, None),
    )
    for top, bottom, target in ratios:
        ratio = paired_ratio(drain[top]["rounds"], drain[bottom]["rounds"])
        rows.append((f"drain ratio {top} / {bottom}", f"{ratio:.2f}", target, True))
    celery = r.get("celery", {})
    for pool, runs in celery.items():
        rates = [run["drain_jobs_per_s"] for run in runs]
        value = f"{statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f})"
        rows.append(
            (f"drain {meta['jobs']} jobs, {celery_label(pool, runs)}: jobs/s", value, None, True)
        )
        ratio = paired_ratio(drain[GENERATED]["rounds"], rates)
        rows.append((f"drain ratio {GENERATED} / Celery {pool}", f"{ratio:.2f}", None, True))
    latencies = dict(r["latency"])
    for pool, runs in celery.items():
        latencies[celery_label(pool, runs)] = waits_summary(
            [w for run in runs for w in run["waits_ms"]]
        )
    for label, waits in latencies.items():
        for pct, target in (("p50", 30.0), ("p95", None), ("p99", 60.0)):
            rows.append(
                (
                    f"enqueue→start {pct} ms, {label} ({waits['count']} jobs, average "
                    f"{meta['latency_rate']:g}/s)",
                    f"{waits[pct]:.0f}",
                    target if label == GENERATED else None,
                    False,
                )
            )
    enqueue = r["enqueue"]
    rows.append(("pool.enqueue_job: enqueues/s", f"{enqueue['enqueue_job']:.0f}", None, True))
    rows.append(("enqueue_task: enqueues/s", f"{enqueue['enqueue_task']:.0f}", None, True))
    ratio = paired_ratio(r["enqueue_rounds"]["enqueue_task"], r["enqueue_rounds"]["enqueue_job"])
    rows.append(("enqueue ratio enqueue_task / enqueue_job", f"{ratio:.3f}", 0.95, True))
    for label in CONFIGURATIONS:
        per_job = drain[label]["commands_per_job"]
        rows.append((f"Redis commands per job, {label}", f"{per_job:.2f}", None, False))
    for pool, runs in celery.items():
        per_job = statistics.median(run["commands_per_job"] for run in runs)
        label = celery_label(pool, runs)
        rows.append((f"Redis commands per job, {label}", f"{per_job:.2f}", None, False))
    cold = r["cold_start"]
    rows.append(("worker cold start s (Popen → first job start)", f"{cold:.3f}", 0.5, False))
    rows.append(("worker-check wall time s", f"{r['worker_check']:.3f}", 1.0, False))
    for backend, seconds in bakes.items():
        rows.append((f"bake time s, cache_backend={backend}", f"{seconds:.3f}", 1.0, False))

    print("| figure | value | target | verdict |")
    print("|---|---:|---:|---|")
    for figure, value, target, at_least in rows:
        number = float(value.split()[0])
        target_text, outcome = verdict(number, target, at_least)
        print(f"| {figure} | {value} | {target_text} | {outcome} |")
    print()
    print(f"total run time {elapsed:.0f} s")


def celery_label(pool: str, runs: list[dict]) -> str:
    """ "Celery 5.7.0, solo pool (1 process)" from a celery_drain.py report."""
    processes = runs[0]["concurrency"]
    return f"Celery {runs[0]['celery']}, {pool} pool ({processes} process{'es' * (processes > 1)})"


def waits_summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
    }


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    environment = tool_environment()
    say(f"bake time, {args.bake_runs} runs per backend")
    bakes = bake_times(args.bake_runs)
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-compare-") as scratch:
        celery = None
        if args.celery:
            from celery_drain import celery_python  # beside this file, standard library only

            say("a venv for Celery")
            celery = celery_python(Path(scratch), environment)
        project = bake(scratch)
        say(f"baked {project}; uv sync")
        sync(project, environment)
        report = run_inside(project, args, environment, celery)
    print_table(report, bakes, time.perf_counter() - started)
    return 0


# --- inside: runs in the baked project's venv --------------------------------------------------

WorkerFactory = Callable[[bool], list[Any]]
# Runs burst worker(s) to the end: (seconds, jobs done, jobs failed).
Drainer = Callable[[], Awaitable[tuple[float, int, int]]]


async def noop(ctx: dict[str, Any]) -> None:
    """The measured job: does nothing, so what is timed is the queue around it."""


async def enqueue_many(enqueue: Callable[[], Awaitable[Any]], count: int) -> None:
    for first in range(0, count, ENQUEUE_BATCH):
        await asyncio.gather(*(enqueue() for _ in range(min(ENQUEUE_BATCH, count - first))))


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


def in_processes(package: str, count: int) -> Drainer:
    """`count` burst workers of the generated kind, each in a process of its own."""

    async def run() -> tuple[float, int, int]:
        command = [sys.executable, __file__, "--inside", package, "--drain-worker"]
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
        check = [sys.executable, "-m", f"{package}.infrastructure.cli", "worker-check"]
        for _ in range(checks):
            check_started = time.perf_counter()
            run = await asyncio.create_subprocess_exec(*check, stdout=subprocess.DEVNULL)
            if await run.wait() != 0:
                raise RuntimeError("worker-check found no worker")
            check_times.append(time.perf_counter() - check_started)
    finally:
        stop_process(process, WORKER_STOP_SECONDS)
    return seconds, check_times


def share(total: int, rounds: int, index: int) -> int:
    """Round `index`'s part of `total`, spread as evenly as whole numbers allow."""
    return total // rounds + (index < total % rounds)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq
    from arq.connections import RedisSettings
    from arq.worker import Worker, create_worker, func

    package = args.inside
    os.environ["LOG_LEVEL"] = "WARNING"
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.redis_server")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        tasks = importlib.import_module(f"{package}.infrastructure.tasks")
        settings_class = tasks.WorkerSettings
        arq_redis = RedisSettings.from_dsn(server.url)
        project_pool = await tasks.get_task_pool()
        arq_pool = await arq.create_pool(arq_redis)
        try:
            generated = generated_settings(tasks)
            tuning = {name: getattr(settings_class, name) for name in TUNING}

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
            setups = {
                GENERATED: (project_pool, make_generated(1)),
                ARQ_DEFAULTS: (arq_pool, make_arq({})),
                ARQ_TUNED: (arq_pool, make_arq(tuning)),
                GENERATED_UNCAPPED: (project_pool, make_generated(1, **uncapped)),
                ARQ_TUNED_UNCAPPED: (arq_pool, make_arq({**tuning, **uncapped})),
                GENERATED_TWO: (project_pool, make_generated(2)),
            }
            drainers = {label: (pool, in_process(make)) for label, (pool, make) in setups.items()}
            # Jobs/s a worker cannot pass: it takes at most queue_read_limit jobs per poll.
            ceilings = {
                label: sum(w.queue_read_limit / w.poll_delay_s for w in make(True))
                for label, (_, make) in setups.items()
            }
            ceilings[GENERATED_PROCESSES] = 2 * ceilings[GENERATED]
            drainers[GENERATED_PROCESSES] = (project_pool, in_processes(package, 2))
            drains: dict[str, list[dict]] = {label: [] for label in CONFIGURATIONS}
            waits: dict[str, list[float]] = {label: [] for label in LATENCY_CONFIGURATIONS}
            enqueues: dict[str, list[float]] = {"enqueue_job": [], "enqueue_task": []}
            methods: dict[str, Callable[[], Awaitable[Any]]] = {
                "enqueue_job": lambda: project_pool.enqueue_job("example_task", message="x"),
                "enqueue_task": lambda: tasks.enqueue_task("example_task", message="x"),
            }
            colds: list[float] = []
            celery_runs: dict[str, list[dict]] = {pool: [] for pool in CELERY_POOLS}
            rng = random.Random(args.seed)
            checks: list[float] = []
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                for label in rotated(CONFIGURATIONS, index):
                    queue_pool, drainer = drainers[label]
                    drained = await drain(project_pool, queue_pool, drainer, args.jobs)
                    say(f"  drain, {label}: {drained['jobs_per_s']:.0f} jobs/s")
                    drains[label].append(drained)
                count = share(args.latency_jobs, args.rounds, index)
                gaps = [rng.expovariate(args.latency_rate) for _ in range(count)]
                for label in rotated(LATENCY_CONFIGURATIONS, index):
                    queue_pool, make_workers = setups[label]
                    got = await latency(project_pool, queue_pool, make_workers, count, gaps)
                    say(f"  latency, {label}: median {statistics.median(got):.0f} ms")
                    waits[label] += got
                rates = await enqueue_rates(project_pool, methods, args.enqueue_jobs, index)
                for method, rate in rates.items():
                    say(f"  {method}: {rate:.0f}/s")
                    enqueues[method].append(rate)
                seconds, check_times = await cold_start(
                    tasks, project_pool, package, share(args.check_runs, args.rounds, index)
                )
                say(f"  cold start {seconds:.3f} s, worker-check {check_times}")
                colds.append(seconds)
                checks += check_times
                if args.celery_python:
                    for pool in rotated(CELERY_POOLS, index):
                        celery_args = {
                            **vars(args),
                            "latency_jobs": count,
                            "seed": args.seed + index,
                        }
                        run = await run_celery(server.url, pool, celery_args)
                        say(f"  Celery {pool}: {run['drain_jobs_per_s']:.0f} jobs/s")
                        celery_runs[pool].append(run)
            info = await project_pool.info("server")
        finally:
            await arq_pool.aclose()
            await tasks.close_task_pool()

    def summary(runs: list[dict]) -> dict[str, float]:
        rates = [run["jobs_per_s"] for run in runs]
        return {
            "jobs_per_s": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "commands_per_job": statistics.median(run["commands_per_job"] for run in runs),
            "rounds": rates,
        }

    results = {
        "drain": {
            label: {**summary(runs), "ceiling": ceilings[label]} for label, runs in drains.items()
        },
        "latency": {label: waits_summary(values) for label, values in waits.items()},
        "enqueue": {method: statistics.median(rates) for method, rates in enqueues.items()},
        "enqueue_rounds": enqueues,
        "cold_start": statistics.median(colds),
        "worker_check": statistics.median(checks),
    }
    if args.celery_python:
        results["celery"] = celery_runs
    meta = {
        "arq": arq.VERSION,
        "redis": info["redis_version"],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "rounds": args.rounds,
        "jobs": args.jobs,
        "latency_rate": args.latency_rate,
    }
    return {"meta": meta, "results": results}


async def run_celery(redis_url: str, pool: str, options: dict[str, Any]) -> dict:
    """One run of celery_drain.py (a drain and a latency series) with Celery's `pool`."""
    command = [options["celery_python"], options["celery_script"]]
    command += ["--redis-url", redis_url, "--pool", pool]
    for name in ("jobs", "latency_jobs", "latency_rate", "seed"):
        command += [f"--{name.replace('_', '-')}", str(options[name])]
    run = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    output, _ = await asyncio.wait_for(run.communicate(), RUN_TIMEOUT_SECONDS)
    if run.returncode != 0:
        raise RuntimeError(f"celery_drain.py --pool {pool} exited {run.returncode}")
    return json.loads(output.decode().splitlines()[-1])


def generated_settings(tasks: Any) -> dict[str, Any]:
    """The project's WorkerSettings as arq reads them, cron off, with `job(noop)` added."""
    return {
        **vars(tasks.WorkerSettings),
        "cron_jobs": (),
        "functions": (*tasks.WorkerSettings.functions, tasks.job(noop)),
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


def inside(args: argparse.Namespace) -> int:
    # arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix, and noisy.
    warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
    if args.drain_worker:
        asyncio.run(drain_worker(args.inside))
        return 0
    report = asyncio.run(measure(args))
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return inside(args) if args.inside else outside(args)


if __name__ == "__main__":
    sys.exit(main())
