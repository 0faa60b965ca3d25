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
   on_startup) is in. Scale = jobs/s with K processes / jobs/s with one, per round. Right
   after the 10 ms drains, the same drain of the event loop alone (compare_arq.py's
   `loop_alone`: the job run by 10 coroutines in turn, no queue, on the generated worker's
   loop), timed the same way: the ceiling the 10 ms figure is read against;
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

The code, one module per concern (each beside this file, copied with it into the project):
compare_arq.py, the arq workers compared (the generated worker and plain arq) and their worker
processes; compare_jobs.py, the jobs they run; compare_peers.py, Celery and the peers, each in a
venv of its own; compare_default.py, figures 1 to 6; compare_processes.py, figures 8 to 13;
compare_measure.py, the inside half's rounds; compare_report.py, the tables and the goals;
compare_harness.py, what they share. This file is the command line and the two halves' entry.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from benchkit import bake, run_script_inside, sync, tool_environment
from compare_harness import PEER_TIMEOUT_SECONDS, RUN_TIMEOUT_SECONDS, say
from compare_peers import CELERY_SCRIPT, PEER_SCRIPT, PEERS, peer_names

# The modules the inside half imports, copied beside this file into the project.
INSIDE_MODULES = tuple(
    str(Path(__file__).resolve().with_name(f"compare_{name}.py"))
    for name in ("arq", "default", "harness", "jobs", "measure", "peers", "processes", "report")
)


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
    parser.add_argument(
        "--queue-worker", choices=("generated", "arq", "loop"), help=argparse.SUPPRESS
    )
    parser.add_argument("--slots", help=argparse.SUPPRESS)
    parser.add_argument("--slot", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers is None and (args.peers or args.workers_only) and not args.metrics:
        args.workers = [1, 2, 4]
    return args


def counts(text: str) -> list[int]:
    """ "1,2,4" as [1, 2, 4]: worker process counts, each at least 1, 1 always in."""
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts are whole numbers from 1")
    return values if values[0] == 1 else [1, *values]  # scale is against one worker


# --- outside: bake, sync, run this file in the project, print the tables ---------------------


def outside(args: argparse.Namespace) -> int:
    """The template's environment: bake time, the project and the other queues' venvs, the
    inside half's run, and the tables (compare_report.py)."""
    from compare_default import bake_times
    from compare_peers import celery_venv, peer_venvs
    from compare_report import print_table

    started = time.perf_counter()
    environment = tool_environment()
    bakes = {}
    if not (args.workers_only or args.metrics):
        say(f"bake time, {args.bake_runs} runs per backend")
        bakes = bake_times(args.bake_runs)
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-compare-") as scratch:
        celery = None
        if args.celery and not (args.workers_only or args.metrics):
            celery = celery_venv(Path(scratch), environment)
        project = bake(scratch)
        say(f"baked {project}; uv sync")
        sync(project, environment)
        peers = peer_venvs(args, Path(scratch), project, environment)
        report = run_inside(project, args, environment, celery, peers)
    print_table(report, bakes, time.perf_counter() - started)
    return 0


def run_inside(
    project: Path,
    args: argparse.Namespace,
    environment: dict[str, str],
    celery: Path | None,
    peers: dict[str, Path],
) -> Any:
    """Run this file (and INSIDE_MODULES) in the project with `--inside`, with these options;
    return its JSON."""
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
    return run_script_inside(
        project, __file__, arguments, environment, timeout, modules=INSIDE_MODULES
    )


# --- inside: runs in the baked project's venv --------------------------------------------------


def inside(args: argparse.Namespace) -> int:
    """The project's venv: the measuring run (compare_measure.py), or one of its worker
    processes (compare_arq.py), as `--drain-worker` or `--queue-worker` say."""
    # arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix, and noisy.
    warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
    if args.drain_worker:
        from compare_arq import drain_worker

        asyncio.run(drain_worker(args.inside))
        return 0
    if args.queue_worker:
        from compare_arq import queue_worker, use_project_loop

        if args.queue_worker in ("generated", "loop"):
            use_project_loop(args.inside)
        asyncio.run(queue_worker(args))
        return 0
    from compare_measure import measure

    report = asyncio.run(measure(args, __file__))
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return inside(args) if args.inside else outside(args)


if __name__ == "__main__":
    sys.exit(main())
