"""Compare the generated project's worker with plain arq, and time the project's everyday commands.

    uv run python bench/compare.py [--rounds 3] [--jobs 5000] [--latency-jobs 200]
                                   [--latency-rate 20] [--enqueue-jobs 5000] [--check-runs 5]
                                   [--bake-runs 5] [--seed 1] [--celery]
                                   [--workers 1,2,4 [--noop-jobs 5000] [--io-jobs 2000]
                                    [--idle-seconds 10] [--peers [saq,streaq,taskiq]]
                                    [--workers-only]]
    uv run python bench/compare.py --metrics [--rounds 5] [--noop-jobs 5000] [--io-jobs 2000]

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

With `--workers 1,2,4` (any counts; 1 is always added, as scale is against one worker), a second
part, after the above in each round (`--workers-only` leaves the above out; `--peers` alone
implies `--workers 1,2,4`). It measures whole worker processes, the same way for every queue
(benchkit.py, "queues measured in worker processes"; bench/peer_drain.py runs it for the peers):

- queues: the generated worker, as the project runs it: its own `create_worker` from
  `<package>.infrastructure.worker` where the project has that module, on uvloop where the
  project has it (as `just worker` runs, worker.py's `use_uvloop_if_installed`), else arq's
  with the project's WorkerSettings (the line above the tables says which), cron off, the
  bench's jobs registered with the project's `job()`, queued with `enqueue_task`; plain arq
  with the same tuning (as above: the project's poll_delay, max_jobs, job_timeout,
  keep_result, max_tries and allow_abort_jobs; pickle, no hooks; asyncio's loop, as the `arq`
  command runs), queued with arq's `enqueue_job`; with `--peers`, SAQ,
  streaq and taskiq (its list broker), and with `--celery` also Celery (threads pool), each in a
  venv of its own made with uv in the scratch folder with the project's Python version
  (bench/peer_drain.py's docstring gives their settings). Every worker process has 10 slots
  (max_jobs 10, the project's default; the peers' concurrency 10);
- worker processes: this file run again with `--queue-worker` in the project's venv (the peers:
  peer_drain.py in theirs); each builds its worker, says "ready"; once all have, they are told
  "go" together; each job notes its end in a file shared with the measuring side (an mmap, one
  slot per process), so the end of a drain is seen without any Redis command; then "stop", and
  each worker stops as its own shutdown does (arq's: the poll loop cancelled, running jobs
  awaited, `close()`);
- jobs: `noop(ctx)` does nothing; `io(ctx)` awaits `asyncio.sleep(0.01)`; `stamp(ctx,
  enqueued_at)` notes time.time() - enqueued_at first, the argument being the caller's
  time.time() just before its enqueue call (so the call itself is in the wait).

Figures of the second part, each per queue and per round:

8. drain: `--noop-jobs` no-op jobs, and `--io-jobs` 10 ms jobs, queued after a FLUSHDB (not
   timed), then K worker processes started, for each K of
   `--workers` (the peers: no-op jobs for each K, 10 ms jobs with one process); jobs/s = jobs /
   the time from "go" to the last job's end. Interpreter start-up, imports and building the
   worker are left out; what the worker's run does first (arq: connecting its pool and
   on_startup) is in. Scale = jobs/s with K processes / jobs/s with one, per round;
9. Redis commands per job: `INFO commandstats` calls (less INFO's own) from before the worker
   processes start to after they have exited, over jobs: what the workers send (start-up and
   shutdown in; the queueing out), each command of a MULTI or pipeline counted, a script once;
10. idle worker: one worker process, warmed up by one `stamp` job; 1 s later, its Redis commands
   per second over `--idle-seconds` with nothing queued, per command; at the end of that window,
   `CLIENT LIST` says which connections sit blocked, in which command, or subscribed ("how it
   waits": those, then its commands per second, the busiest first);
11. enqueue→start latency: then, to the same worker, `--latency-jobs` (over all rounds) `stamp`
   jobs one at a time, with exponential random gaps at an average `--latency-rate` per second,
   the same gaps for every queue in a round; slots are free (one job at a time), so the wait is
   the queue's own; percentiles over all jobs.

Then the issue's goals, with verdicts, for the generated worker: 10 ms jobs/s with one worker
≥ 900; p50 ≤ 2 ms and p99 ≤ 10 ms; idle ≤ 5 commands/s; no-op jobs/s against plain arq with the
same tuning, one worker each, ≥ 1.0; commands per no-op job with 4 workers / with 1 ≤ 1.2; and,
on a machine with at least 8 usable cores only (else "skipped", with the count), no-op jobs/s
with 4 workers / with 1 ≥ 3.7, and more than SAQ's with 4 (the ratio of the two, per round).
The line above the tables gives the cores this process may use (its CPU affinity).

With `--metrics`, only this (the figures above are left out): the generated worker, in a worker
process as for `--workers`, with metrics off (`WORKER_METRICS_PORT` unset) and on (set: the
worker serves /metrics and counts every try, infrastructure/metrics.py), one process each,
side by side in each round (the order rotated by one per round):

12. drain: `--noop-jobs` no-op jobs, and `--io-jobs` 10 ms jobs, as in 8.; the metrics-on worker
   reads its own /metrics once the jobs are done and fails the run unless it counted every one
   of them (so the run measured metrics that were on). The goal: jobs/s with metrics on /
   jobs/s with metrics off, the median of the per-round ratios, ≥ 0.97 for both kinds of job;
13. the worker process's CPU time per job (`time.process_time()` from "go" to "stop", its
   metrics server's thread included), and its ratio off / on: the jobs/s ratio of a worker
   held by its CPU. Other load on the machine moves it far less than it moves wall-clock rates:
   on a shared machine, read this row beside the first.

Rates are medians over rounds; ratios are the median of the per-round ratios (both figures of a
ratio come from the same round, so a slow round weighs on both). Progress goes to stderr;
a machine line and the Markdown tables go to stdout.
"""

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchkit import (
    IO,
    IO_SECONDS,
    NOOP,
    STAMP,
    JobRecorder,
    QueueDriver,
    bake,
    commands_so_far,
    drain_in_processes,
    how_it_waits,
    idle_and_latency,
    latency_gaps,
    paired_ratios,
    percentile,
    polling,
    rotated,
    run_script_inside,
    run_worker_process,
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
# --workers: the generated worker and plain arq, and the peers (--peers; Celery with --celery).
WORKER = "generated worker"
PLAIN_ARQ = "plain arq, same tuning"
PEER_SCRIPT = Path(__file__).resolve().with_name("peer_drain.py")
PEERS = ("saq", "streaq", "taskiq")
PEER_LABELS = {
    "saq": "SAQ",
    "streaq": "streaq",
    "taskiq": "taskiq, list broker",
    "celery": "Celery, threads pool",
}
PEER_TIMEOUT_SECONDS = 1800  # one peer's run, one round
# The goals for the generated worker (--workers).
IO_GOAL = 900.0  # 10 ms jobs/s, one worker, max_jobs 10
P50_GOAL, P99_GOAL = 2.0, 10.0  # enqueue→start ms
IDLE_GOAL = 5.0  # Redis commands/s
NOOP_RATIO_GOAL = 1.0  # no-op jobs/s against plain arq, same tuning, one worker each
COMMANDS_GROWTH_GOAL = 1.2  # commands per no-op job, 4 workers against 1
SCALE_GOAL = 3.7  # no-op jobs/s, 4 workers against 1
SCALE_CORES = 8  # the scale goals need this many cores
# --metrics: the generated worker with metrics on, against the same worker with them off.
WORKER_METRICS = "generated worker, metrics on"
METRICS_RATIO_GOAL = 0.97  # jobs/s with metrics on / off


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
    parser.add_argument(
        "--workers",
        type=counts,
        help="worker processes, e.g. 1,2,4,8: the generated worker and plain arq in processes",
    )
    parser.add_argument("--noop-jobs", type=int, default=5000, help="--workers: no-op drains")
    parser.add_argument("--io-jobs", type=int, default=2000, help="--workers: 10 ms job drains")
    parser.add_argument("--idle-seconds", type=float, default=10, help="--workers: idle window")
    parser.add_argument(
        "--peers",
        nargs="?",
        const=",".join(PEERS),
        type=peer_names,
        default=[],
        help=f"--workers: other queues too, all by default ({','.join(PEERS)})",
    )
    parser.add_argument(
        "--workers-only", action="store_true", help="--workers: leave out the default figures"
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="only the generated worker with metrics off and on, side by side",
    )
    # A worker process of --metrics: serve metrics on this port (WORKER_METRICS_PORT).
    parser.add_argument("--metrics-port", type=int, help=argparse.SUPPRESS)
    # Set by the outside half: the Celery venv's Python and bench/celery_drain.py.
    parser.add_argument("--celery-python", help=argparse.SUPPRESS)
    parser.add_argument("--celery-script", help=argparse.SUPPRESS)
    # Set by the outside half: QUEUE=PYTHON for each peer's venv (peer_drain.py's).
    parser.add_argument("--peer-python", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--peer-script", help=argparse.SUPPRESS)
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    parser.add_argument("--drain-worker", action="store_true", help=argparse.SUPPRESS)
    # A worker process of --workers' measurements (benchkit's WorkerProcesses starts it).
    parser.add_argument("--queue-worker", choices=("generated", "arq"), help=argparse.SUPPRESS)
    parser.add_argument("--slots", help=argparse.SUPPRESS)
    parser.add_argument("--slot", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers is None and (args.peers or args.workers_only) and not args.metrics:
        args.workers = [1, 2, 4]
    return args


def peer_names(text: str) -> list[str]:
    """ "saq,taskiq" as ["saq", "taskiq"]: peers known to peer_drain.py, in PEERS' order."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if not names or names - set(PEERS):
        raise argparse.ArgumentTypeError(f"{text!r}: peers are among {', '.join(PEERS)}")
    return [name for name in PEERS if name in names]


def counts(text: str) -> list[int]:
    """ "1,2,4" as [1, 2, 4]: worker process counts, each at least 1, 1 always in."""
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts are whole numbers from 1")
    return values if values[0] == 1 else [1, *values]  # scale is against one worker


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
    project: Path,
    args: argparse.Namespace,
    environment: dict[str, str],
    celery: Path | None,
    peers: dict[str, Path],
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
    timeout = RUN_TIMEOUT_SECONDS
    if args.metrics:
        arguments += ["--metrics", "--noop-jobs", str(args.noop_jobs)]
        arguments += ["--io-jobs", str(args.io_jobs)]
    if args.workers:
        arguments += ["--workers", ",".join(map(str, args.workers))]
        arguments += ["--noop-jobs", str(args.noop_jobs), "--io-jobs", str(args.io_jobs)]
        arguments += ["--idle-seconds", str(args.idle_seconds)]
        if args.workers_only:
            arguments.append("--workers-only")
        if peers:
            arguments += ["--peer-script", str(PEER_SCRIPT)]
        for queue, python in peers.items():
            arguments += ["--peer-python", f"{queue}={python}"]
        # Each queue's round takes minutes at most; every step has its own, shorter limit.
        timeout += args.rounds * (2 + len(peers)) * PEER_TIMEOUT_SECONDS
    return run_script_inside(project, __file__, arguments, environment, timeout)


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
    if "drain" in r:
        print_default_table(meta, r, bakes)
        print()
    if "queues" in r:
        print_worker_tables(meta, r["queues"])
        print()
    if "metrics" in r:
        print_metrics_table(meta, r["metrics"])
        print()
    print(f"total run time {elapsed:.0f} s")


def print_default_table(meta: dict[str, Any], r: dict[str, Any], bakes: dict[str, float]) -> None:
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


def drain_rate(queues: dict[str, Any], label: str, key: str, figure: str = "jobs_per_s") -> float:
    """A queue's median over rounds of a drain figure; `key` is "kind:processes"."""
    return statistics.median(run[figure] for run in queues[label]["drains"][key])


def drain_ratio(
    queues: dict[str, Any],
    top: tuple[str, str],
    bottom: tuple[str, str],
    figure: str = "jobs_per_s",
) -> float:
    """The median of per-round ratios of two drains' figures, each (queue, "kind:processes")."""
    tops = [run[figure] for run in queues[top[0]]["drains"][top[1]]]
    bottoms = [run[figure] for run in queues[bottom[0]]["drains"][bottom[1]]]
    return statistics.median(paired_ratios(tops, bottoms))


def idle_rate(queues: dict[str, Any], label: str) -> float:
    return statistics.median(run["idle_commands_per_s"] for run in queues[label]["idle"])


def print_worker_tables(meta: dict[str, Any], queues: dict[str, dict[str, Any]]) -> None:
    """--workers' tables: one worker of each queue; K workers on no-op jobs; Redis commands per
    job; the generated worker against plain arq for both kinds of job; the issue's goals."""
    counts, scaled = meta["workers"], meta["workers"][1:]
    peers = ", ".join(
        f"{label} ({', '.join(f'{name} {version}' for name, version in entry['versions'].items())})"
        for label, entry in queues.items()
        if "versions" in entry
    )
    print(
        f"--workers: {meta['usable_cpus']} CPU cores usable ({meta['cpus']} in the machine); "
        f"generated worker: {meta['worker_loop']}; plain arq with the project's tuning; "
        f"{meta['noop_jobs']} no-op and {meta['io_jobs']} 10 ms jobs per drain, "
        f"concurrency 10 per worker process" + (f"; peers: {peers}" if peers else "")
    )
    print()
    print(
        "| queue | 10 ms I/O jobs/s | enqueue-to-start p50 / p99 ms "
        "| idle worker, Redis commands/s | how it waits |"
    )
    print("|---|---:|---:|---:|---|")
    for label, entry in queues.items():
        waits = waits_summary(entry["waits_ms"])
        print(
            f"| {label} | {drain_rate(queues, label, 'io:1'):.0f} "
            f"| {waits['p50']:.1f} / {waits['p99']:.1f} | {idle_rate(queues, label):.1f} "
            f"| {how_it_waits(entry['idle'])} |"
        )
    print()
    workers = [f"{k} worker{'s' * (k > 1)}" for k in counts]
    print(
        "| queue (no-op jobs/s) | "
        + " | ".join([*workers, *(f"{k} against 1" for k in scaled)])
        + " |"
    )
    print("|---|" + "---:|" * (len(counts) + len(scaled)))
    for label in queues:
        cells = [f"{drain_rate(queues, label, f'noop:{k}'):.0f}" for k in counts]
        cells += [
            f"{drain_ratio(queues, (label, f'noop:{k}'), (label, 'noop:1')):.2f}" for k in scaled
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print(
        "| queue (Redis commands per job) | 10 ms I/O, 1 worker | "
        + " | ".join(
            [*(f"no-op, {w}" for w in workers), *(f"no-op, {k} against 1" for k in scaled)]
        )
        + " |"
    )
    print("|---|---:|" + "---:|" * (len(counts) + len(scaled)))
    per_job = "commands_per_job"
    for label in queues:
        cells = [f"{drain_rate(queues, label, 'io:1', per_job):.2f}"]
        cells += [f"{drain_rate(queues, label, f'noop:{k}', per_job):.2f}" for k in counts]
        cells += [
            f"{drain_ratio(queues, (label, f'noop:{k}'), (label, 'noop:1'), per_job):.2f}"
            for k in scaled
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print(
        f"| job kind | workers | {WORKER} jobs/s | {PLAIN_ARQ} jobs/s | ratio "
        f"| {WORKER} against 1 | {PLAIN_ARQ} against 1 "
        f"| {WORKER} commands/job | {PLAIN_ARQ} commands/job |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, name in ((NOOP, "no-op"), (IO, "10 ms I/O")):
        for k in counts:
            key = f"{kind}:{k}"
            cells = [f"{drain_rate(queues, label, key):.0f}" for label in (WORKER, PLAIN_ARQ)]
            cells.append(f"{drain_ratio(queues, (WORKER, key), (PLAIN_ARQ, key)):.2f}")
            cells += [
                f"{drain_ratio(queues, (label, key), (label, f'{kind}:1')):.2f}"
                for label in (WORKER, PLAIN_ARQ)
            ]
            cells += [
                f"{drain_rate(queues, label, key, per_job):.2f}" for label in (WORKER, PLAIN_ARQ)
            ]
            print(f"| {name} | {k} | " + " | ".join(cells) + " |")
    print()
    print("| goal | measured | target | verdict |")
    print("|---|---:|---:|---|")
    for goal, value, target, outcome in worker_goals(meta, queues):
        print(f"| {goal} | {value} | {target} | {outcome} |")


def print_metrics_table(meta: dict[str, Any], queues: dict[str, Any]) -> None:
    """--metrics' table: the generated worker with metrics off and on, and the goal, in jobs/s;
    then in the worker's CPU time per job, which other load on the machine moves far less than
    it moves wall-clock rates (its ratio is off / on: the jobs/s of a worker held by its CPU)."""
    print(
        f"--metrics: {meta['usable_cpus']} CPU cores usable ({meta['cpus']} in the machine); "
        f"generated worker: {meta['worker_loop']}; one worker process, max_jobs 10; "
        f"{meta['noop_jobs']} no-op and {meta['io_jobs']} 10 ms jobs per drain"
    )
    print()
    print(
        f"| job kind | figure | {WORKER} (min-max) | {WORKER_METRICS} (min-max) "
        "| ratio, metrics on against off (each round) | target | verdict |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for kind, name in ((NOOP, "no-op"), (IO, "10 ms I/O")):
        key = f"{kind}:1"
        off, on = (queues[label]["drains"][key] for label in (WORKER, WORKER_METRICS))
        for figure, field in (
            ("jobs/s", "jobs_per_s"),
            ("worker CPU µs per job", "cpu_us_per_job"),
        ):
            cells = []
            for runs in (off, on):
                values = [run[field] for run in runs]
                cells.append(
                    f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"
                )
            tops, bottoms = [run[field] for run in on], [run[field] for run in off]
            if field == "cpu_us_per_job":  # less CPU is more jobs: off / on
                tops, bottoms = bottoms, tops
            ratios = paired_ratios(tops, bottoms)
            ratio = statistics.median(ratios)
            target, outcome = verdict(ratio, METRICS_RATIO_GOAL, True)
            rounds = ", ".join(f"{each:.3f}" for each in ratios)
            print(
                f"| {name} | {figure} | {' | '.join(cells)} | {ratio:.3f} ({rounds}) "
                f"| {target} | {outcome} |"
            )


def worker_goals(meta: dict[str, Any], queues: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The issue's goals for the generated worker: (goal, value, target, verdict), as text."""
    goals: list[tuple[str, str, str, str]] = []

    def judge(goal: str, value: float, target: float, at_least: bool, digits: int = 2) -> None:
        target_text, outcome = verdict(value, target, at_least)
        goals.append((goal, f"{value:.{digits}f}", target_text, outcome))

    io_rate = drain_rate(queues, WORKER, "io:1")
    judge(f"10 ms I/O jobs/s, {WORKER}, 1 worker (max_jobs 10)", io_rate, IO_GOAL, True, 0)
    waits = waits_summary(queues[WORKER]["waits_ms"])
    judge(f"enqueue-to-start p50 ms, {WORKER}", waits["p50"], P50_GOAL, False, 1)
    judge(f"enqueue-to-start p99 ms, {WORKER}", waits["p99"], P99_GOAL, False, 1)
    idle = idle_rate(queues, WORKER)
    judge(f"idle worker Redis commands/s, {WORKER}", idle, IDLE_GOAL, False, 1)
    noop_ratio = drain_ratio(queues, (WORKER, "noop:1"), (PLAIN_ARQ, "noop:1"))
    judge(f"no-op jobs/s, {WORKER} / {PLAIN_ARQ}, 1 worker", noop_ratio, NOOP_RATIO_GOAL, True)
    growth_goal = f"Redis commands per no-op job, {WORKER}, 4 workers / 1 worker"
    scale_goal = f"no-op jobs/s, {WORKER}, 4 workers / 1 worker"
    saq_goal = f"no-op jobs/s with 4 workers, {WORKER} / SAQ"
    if 4 not in meta["workers"]:
        for goal in (growth_goal, scale_goal, saq_goal):
            goals.append((goal, "-", "-", "not measured: needs 4 in --workers"))
        return goals
    four, one = (WORKER, "noop:4"), (WORKER, "noop:1")
    judge(
        growth_goal, drain_ratio(queues, four, one, "commands_per_job"), COMMANDS_GROWTH_GOAL, False
    )
    cores = meta["usable_cpus"]
    few_cores = f"skipped: needs ≥ {SCALE_CORES} cores (this machine has {cores})"
    scale = drain_ratio(queues, four, one)
    if cores < SCALE_CORES:
        goals.append((scale_goal, f"{scale:.2f}", f"≥ {SCALE_GOAL:g}", few_cores))
    else:
        judge(scale_goal, scale, SCALE_GOAL, True)
    if "SAQ" not in queues:
        goals.append((saq_goal, "-", "> 1", "not measured: needs --peers with saq"))
    else:
        against = drain_ratio(queues, four, ("SAQ", "noop:4"))
        outcome = few_cores if cores < SCALE_CORES else "meets" if against > 1 else "misses"
        goals.append((saq_goal, f"{against:.2f}", "> 1", outcome))
    return goals


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
    bakes = {}
    if not (args.workers_only or args.metrics):
        say(f"bake time, {args.bake_runs} runs per backend")
        bakes = bake_times(args.bake_runs)
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-compare-") as scratch:
        celery = None
        if args.celery and not (args.workers_only or args.metrics):
            from celery_drain import celery_python  # beside this file, standard library only

            say("a venv for Celery")
            celery = celery_python(Path(scratch), environment)
        project = bake(scratch)
        say(f"baked {project}; uv sync")
        sync(project, environment)
        peers = peer_venvs(args, Path(scratch), project, environment)
        report = run_inside(project, args, environment, celery, peers)
    print_table(report, bakes, time.perf_counter() - started)
    return 0


def peer_venvs(
    args: argparse.Namespace, scratch: Path, project: Path, environment: dict[str, str]
) -> dict[str, Path]:
    """For --workers with --peers (and --celery), each peer's venv Python, made with uv with the
    project's own Python version, so that every queue runs on the same interpreter."""
    if not args.workers:
        return {}
    from peer_drain import peer_python  # beside this file, standard library only

    queues = [*args.peers, *(("celery",) if args.celery else ())]
    python = project / ".venv" / "bin" / "python"
    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pythons = {}
    for queue in queues:
        say(f"a venv for {PEER_LABELS[queue]} (Python {version})")
        pythons[queue] = peer_python(scratch, environment, queue, version)
    return pythons


# --- inside: runs in the baked project's venv --------------------------------------------------

WorkerFactory = Callable[[bool], list[Any]]
# Runs burst worker(s) to the end: (seconds, jobs done, jobs failed).
Drainer = Callable[[], Awaitable[tuple[float, int, int]]]


# Set in a worker process of --workers' measurements: the jobs below report to it.
RECORDER: JobRecorder | None = None


async def noop(ctx: dict[str, Any]) -> None:
    """The measured job: does nothing, so what is timed is the queue around it."""
    if RECORDER is not None:
        RECORDER.ended()


async def io(ctx: dict[str, Any]) -> None:
    """--workers' I/O-bound job: waits 10 ms, as a job waiting on a service would."""
    await asyncio.sleep(IO_SECONDS)
    assert RECORDER is not None
    RECORDER.ended()


async def stamp(ctx: dict[str, Any], enqueued_at: float) -> None:
    """--workers' latency job: notes its wait, time.time() less the caller's before enqueueing."""
    assert RECORDER is not None
    RECORDER.started(enqueued_at)
    RECORDER.ended()


BENCH_JOBS = (noop, io, stamp)


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
            drivers = queue_drivers(package, tasks, arq_pool)
            found: dict[str, dict[str, Any]] = {}
            metrics_found: dict[str, dict[str, Any]] = {}
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                if not (args.workers_only or args.metrics):
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
                if args.workers:
                    await workers_round(args, index, server.url, drivers, found)
                if args.metrics:
                    await metrics_round(args, index, server.url, drivers, metrics_found)
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

    results: dict[str, Any] = {}
    if not (args.workers_only or args.metrics):
        results = {
            "drain": {
                label: {**summary(runs), "ceiling": ceilings[label]}
                for label, runs in drains.items()
            },
            "latency": {label: waits_summary(values) for label, values in waits.items()},
            "enqueue": {method: statistics.median(rates) for method, rates in enqueues.items()},
            "enqueue_rounds": enqueues,
            "cold_start": statistics.median(colds),
            "worker_check": statistics.median(checks),
        }
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


# --- --workers: the generated worker and plain arq in worker processes, and the peers -------


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def has_worker_module(package: str) -> bool:
    """Whether the project has its own worker entry point (infrastructure/worker.py)."""
    return importlib.util.find_spec(f"{package}.infrastructure.worker") is not None


def worker_loop(package: str) -> str:
    if has_worker_module(package):
        return f"{package}.infrastructure.worker.create_worker (the project's loop)"
    return "arq's create_worker with WorkerSettings (arq's poll loop: no infrastructure/worker.py)"


def queue_drivers(package: str, tasks: Any, arq_pool: Any) -> dict[str, QueueDriver]:
    """The generated worker's and plain arq's drivers: their worker processes are this file
    with `--queue-worker`; the generated one's jobs are queued with `enqueue_task` (which wakes
    the project's worker), plain arq's with arq's `enqueue_job`."""
    for function in BENCH_JOBS:  # enqueue_task queues only the jobs it knows of
        tasks.TASK_SIGNATURES.setdefault(function.__name__, inspect.signature(function))
    command = [sys.executable, __file__, "--inside", package, "--queue-worker"]

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


async def workers_round(
    args: argparse.Namespace,
    index: int,
    redis_url: str,
    drivers: dict[str, QueueDriver],
    found: dict[str, dict[str, Any]],
) -> None:
    """Round `index` of --workers' figures, added to `found` (per queue: "drains" by
    "kind:processes", each a list over rounds; "idle", a list over rounds; "waits_ms")."""
    for label in (*drivers, *(PEER_LABELS[q.partition("=")[0]] for q in args.peer_python)):
        found.setdefault(label, {"drains": {}, "idle": [], "waits_ms": []})
    for kind, jobs in ((IO, args.io_jobs), (NOOP, args.noop_jobs)):
        for processes in args.workers:
            for label in rotated(tuple(drivers), index):
                drained = await drain_in_processes(
                    redis_url, drivers[label], kind, jobs, processes, PEER_TIMEOUT_SECONDS
                )
                rate = drained["jobs_per_s"]
                say(f"  {label}, {jobs} {kind} jobs, {processes} processes: {rate:.0f} jobs/s")
                found[label]["drains"].setdefault(f"{kind}:{processes}", []).append(drained)
    count = share(args.latency_jobs, args.rounds, index)
    gaps = latency_gaps(count, args.latency_rate, args.seed + index)
    for label in rotated(tuple(drivers), index):
        served = await idle_and_latency(
            redis_url, drivers[label], args.idle_seconds, gaps, PEER_TIMEOUT_SECONDS
        )
        say(f"  {label}, idle: {served['idle_commands_per_s']:.1f} Redis commands/s")
        add_served(found[label], served)
    for peer in rotated(tuple(args.peer_python), index):
        queue, _, python = peer.partition("=")
        report = await run_peer(args, queue, python, redis_url, count, args.seed + index)
        entry = found[PEER_LABELS[queue]]
        entry["versions"] = report["versions"]
        for key, drained in report["drains"].items():
            entry["drains"].setdefault(key, []).append(drained)
        add_served(entry, report)


async def metrics_round(
    args: argparse.Namespace,
    index: int,
    redis_url: str,
    drivers: dict[str, QueueDriver],
    found: dict[str, dict[str, Any]],
) -> None:
    """Round `index` of --metrics: the generated worker with metrics off and on, one process
    each, no-op and 10 ms jobs; added to `found` as workers_round adds its drains."""
    plain = drivers[WORKER]
    port = free_port()
    with_metrics = [*plain.worker_command, "--metrics-port", str(port)]
    both = {
        WORKER: plain,
        WORKER_METRICS: QueueDriver(with_metrics, plain.enqueue, plain.enqueue_stamp),
    }
    for kind, jobs in ((NOOP, args.noop_jobs), (IO, args.io_jobs)):
        for label in rotated(tuple(both), index):
            drained = await drain_in_processes(
                redis_url, both[label], kind, jobs, 1, PEER_TIMEOUT_SECONDS
            )
            say(f"  {label}, {jobs} {kind} jobs: {drained['jobs_per_s']:.0f} jobs/s")
            entry = found.setdefault(label, {"drains": {}})
            entry["drains"].setdefault(f"{kind}:1", []).append(drained)


def free_port() -> int:
    """A TCP port free on the loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_served(entry: dict[str, Any], served: dict[str, Any]) -> None:
    """One idle_and_latency() run into a queue's figures."""
    entry["waits_ms"] += served["waits_ms"]
    entry["idle"].append({key: value for key, value in served.items() if key != "waits_ms"})


async def run_peer(
    args: argparse.Namespace, queue: str, python: str, redis_url: str, latency_jobs: int, seed: int
) -> dict[str, Any]:
    """One round of peer_drain.py for `queue`, in its venv: 10 ms jobs with one worker process,
    no-op jobs with each of --workers, then the idle window and the latency series."""
    command = [python, args.peer_script, "--queue", queue, "--redis-url", redis_url]
    command += ["--workers", ",".join(map(str, args.workers)), "--io-workers", "1"]
    command += ["--noop-jobs", str(args.noop_jobs), "--io-jobs", str(args.io_jobs)]
    command += ["--idle-seconds", str(args.idle_seconds), "--latency-jobs", str(latency_jobs)]
    command += ["--latency-rate", str(args.latency_rate), "--seed", str(seed)]
    run = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    output, _ = await asyncio.wait_for(run.communicate(), PEER_TIMEOUT_SECONDS)
    if run.returncode != 0:
        raise RuntimeError(f"peer_drain.py --queue {queue} exited {run.returncode}")
    return json.loads(output.decode().splitlines()[-1])


def generated_worker(package: str, tasks: Any) -> Any:
    """The generated worker as the project runs it, with the bench's jobs added and cron off:
    its own `create_worker` (infrastructure/worker.py) where the project has one, else arq's
    with the project's WorkerSettings."""
    functions = (*tasks.WorkerSettings.functions, *(tasks.job(job) for job in BENCH_JOBS))
    overrides = {"functions": functions, "cron_jobs": (), "handle_signals": False}
    if has_worker_module(package):
        module = importlib.import_module(f"{package}.infrastructure.worker")
        return module.create_worker(**overrides)
    from arq.worker import create_worker

    return create_worker({**vars(tasks.WorkerSettings), **overrides})


async def queue_worker(args: argparse.Namespace) -> None:
    """A worker process of --workers' measurements (benchkit's run_worker_process): the
    generated worker, or plain arq with the project's tuning (`--queue-worker arq`)."""
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    global RECORDER
    RECORDER = JobRecorder(args.slots, args.slot)
    if args.metrics_port:  # read once, when tasks.py is imported: set it first
        os.environ["WORKER_METRICS_PORT"] = str(args.metrics_port)
        os.environ["WORKER_METRICS_HOST"] = "127.0.0.1"
    tasks = importlib.import_module(f"{args.inside}.infrastructure.tasks")
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
            await check_metrics_counted(args.metrics_port)
        running.cancel()  # the poll loop; the jobs' tasks finish (their results are written)
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await worker.close()

    await run_worker_process(worker.async_run, stop, RECORDER)


async def check_metrics_counted(port: int) -> None:
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
    assert RECORDER is not None
    if completed != RECORDER.done:
        raise RuntimeError(f"/metrics counted {completed:g} jobs completed, {RECORDER.done} ended")


def inside(args: argparse.Namespace) -> int:
    # arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix, and noisy.
    warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
    if args.drain_worker:
        asyncio.run(drain_worker(args.inside))
        return 0
    if args.queue_worker:
        if args.queue_worker == "generated" and has_worker_module(args.inside):
            # As `just worker` runs it: on uvloop where the project has it (worker.py's main).
            module = importlib.import_module(f"{args.inside}.infrastructure.worker")
            getattr(module, "use_uvloop_if_installed", lambda: None)()
        asyncio.run(queue_worker(args))
        return 0
    report = asyncio.run(measure(args))
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return inside(args) if args.inside else outside(args)


if __name__ == "__main__":
    sys.exit(main())
