"""Limits per function across worker processes (limits.py), side by side in one run: a
`rate_limit` job's starts, and a `max_concurrency` job's overlap and throughput.

`uv run python bench/limits.py` bakes the default project into a scratch folder, `uv sync`s
it, and runs this script inside it (`--inside`, in the project's venv) against a Redis server
of its own (the project's `LocalRedisServer`, on a free loopback port). There it writes a jobs
module (`bench_limit_jobs.py`, in the project's folder) that declares two limited jobs with
`@job`, and starts `--workers` worker processes on a settings module in it, as a deployment
does: `python -m <package>.infrastructure.worker bench_limit_jobs.WorkerSettings`. Each job
records from inside, with time.time(), when it started; the measuring side reads the records
from Redis. Each part starts its worker processes afresh on an empty Redis, waits until every
one has sent its heartbeat, then queues its jobs at once.

1. `@job(rate_limit="<rate>/s")`, a job that only records its start: 2 x rate x seconds jobs
   queued (2,000 at the defaults, more than the window can start). Jobs started in the first
   `--seconds` after the first start (goal: rate x seconds, within 2 %); the most starts in any
   one-second window (sliding, one opening at each start; goal: at most rate x 1.1); the gaps
   between consecutive starts, p50 and p99 (the limit spaces them 1/rate apart).
2. `@job(max_concurrency=3)`, a job that sleeps `--job-seconds`: `--concurrency-jobs` jobs
   queued. Each job INCRs a counter as it starts, records the value, and DECRs it as it ends:
   the most seen running at once (goal: never more than 3); and jobs/s from the first start to
   the last end, against three slots' ideal, 3 / job seconds (goal: a ratio of at least 0.95).

Figures are medians over `--rounds` interleaved rounds (the two parts' order turns each round),
but for the most starts in a window and the most running at once: the worst round's.
"""

import argparse
import asyncio
import bisect
import contextlib
import importlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import (
    measure_in_baked_project,
    percentile,
    rotated,
    stop_process,
)

MAX_CONCURRENCY = 3
RATE_TOLERANCE = 0.02  # goal 1: the window's starts within 2 % of rate x seconds
WINDOW_SLACK = 1.1  # goal 1: at most rate x 1.1 starts in any one-second window
GOAL_RATIO = 0.95  # goal 2: throughput against three slots' ideal
ENQUEUE_CONCURRENCY = 100
READY_SECONDS = 120  # from the worker processes' start to every one's heartbeat
STOP_GRACE_SECONDS = 15
PARTS = ("rate", "concurrency")
JOBS_MODULE = "bench_limit_jobs"
STARTS_KEY, SLOTS_KEY, RUNNING_KEY = "bench:starts", "bench:slots", "bench:running"

# The jobs module the worker processes import (and the measuring process, to queue the jobs by
# name): the limits come from the environment the measuring side sets.
JOBS_MODULE_TEXT = '''\
"""Written by bench/limits.py: limited jobs that record, from inside, when they run."""

import asyncio
import os
import time

from {package}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {package}.infrastructure.worker.functions import worker_functions
from {package}.queue import JobContext, job


@job(rate_limit=os.environ["BENCH_RATE_LIMIT"])
async def bench_rated(ctx: JobContext) -> None:
    """Records its start (time.time()) in the list {starts!r}."""
    await ctx["redis"].rpush({starts!r}, repr(time.time()))


@job(max_concurrency=int(os.environ["BENCH_MAX_CONCURRENCY"]))
async def bench_slotted(ctx: JobContext, seconds: float) -> None:
    """Sleeps `seconds`; records "<start> <running at its start> <end>" in the list {slots!r},
    running sampled with an INCR of {running!r} as it starts (a DECR as it ends)."""
    redis = ctx["redis"]
    started = time.time()
    running = await redis.incr({running!r})
    try:
        await asyncio.sleep(seconds)
    finally:
        await redis.decr({running!r})
        ended = time.time()
        await redis.rpush({slots!r}, f"{{started!r}} {{running}} {{ended!r}}")


# No cron jobs: a minute tick would add a job to the queue.
WorkerSettings = {{**vars(ProjectSettings), "functions": worker_functions()[0], "cron_jobs": ()}}
'''


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0, help="rate window (part 1)")
    parser.add_argument("--rate", type=int, default=50, help="rate_limit, starts/s (part 1)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument(
        "--job-seconds", type=float, default=0.1, help="each max_concurrency job's sleep (part 2)"
    )
    parser.add_argument(
        "--concurrency-jobs", type=int, default=300, help="max_concurrency jobs (part 2)"
    )
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> list[str]:
    names = ("rounds", "seconds", "rate", "workers", "job_seconds", "concurrency_jobs")
    return [
        item for name in names for item in (f"--{name.replace('_', '-')}", str(vars(args)[name]))
    ]


def rated_jobs(args: argparse.Namespace) -> int:
    """Part 1's jobs: twice what the window can start, so the queue never runs dry in it."""
    return round(2 * args.rate * args.seconds)


# --- outside: bake, run inside, print --------------------------------------------------------


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = measure_in_baked_project(__file__, options(args), "limits")
    print_report(args, report, time.perf_counter() - started)
    return 0


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def print_report(args: argparse.Namespace, report: dict[str, Any], seconds: float) -> None:
    meta = report["meta"]
    print(
        f"{os.cpu_count()} CPUs ({platform.machine()}), Redis {meta['redis']}, arq {meta['arq']}, "
        f"Python {meta['python']}; {args.workers} worker processes; {' '.join(options(args))}; "
        f"medians over {args.rounds} round(s), the most at once and in a window the worst "
        f"round's; {seconds:.0f} s in all"
    )
    print()
    print("| figure | measured | goal | verdict |")
    print("|---|---:|---:|---|")

    def row(figure: str, measured: float, digits: int, goal: str = "", judged: str = "") -> None:
        print(f"| {figure} | {measured:.{digits}f} | {goal} | {judged} |")

    rate_runs, slot_runs = report["rate"], report["concurrency"]
    rate = f'rate_limit="{args.rate}/s"'
    expected = args.rate * args.seconds
    low, high = expected * (1 - RATE_TOLERANCE), expected * (1 + RATE_TOLERANCE)
    started = statistics.median(run["in_window"] for run in rate_runs)
    row(f"{rate}, {args.workers} workers, {rated_jobs(args)} jobs queued: jobs started in the "
        f"first {args.seconds:g} s", started, 0, f"{expected:,.0f} ± 2 %",
        verdict(low <= started <= high))  # fmt: skip
    most = max(run["most_in_a_second"] for run in rate_runs)
    ceiling = args.rate * WINDOW_SLACK
    row(f"{rate}: most starts in any 1 s window", most, 0, f"≤ {ceiling:g}",
        verdict(most <= ceiling))  # fmt: skip
    row(f"{rate}: gap between starts p50 ms", statistics.median(r["gap_p50"] for r in rate_runs), 1)
    row(f"{rate}: gap between starts p99 ms", statistics.median(r["gap_p99"] for r in rate_runs), 1)
    slots = f"max_concurrency={MAX_CONCURRENCY}"
    most_running = max(run["most_running"] for run in slot_runs)
    row(f"{slots}, {args.workers} workers, {args.concurrency_jobs} jobs of "
        f"{args.job_seconds * 1000:g} ms: most running at once", most_running, 0,
        f"≤ {MAX_CONCURRENCY}", verdict(most_running <= MAX_CONCURRENCY))  # fmt: skip
    row(f"{slots}: jobs/s", statistics.median(run["per_s"] for run in slot_runs), 1)
    ratio = statistics.median(run["ratio"] for run in slot_runs)
    row(f"{slots}: jobs/s / {MAX_CONCURRENCY} slots' ideal ({MAX_CONCURRENCY / args.job_seconds:g}"
        f"/s)", ratio, 3, f"≥ {GOAL_RATIO}", verdict(ratio >= GOAL_RATIO))  # fmt: skip
    print()
    last_rate, last_slots = rate_runs[-1], slot_runs[-1]
    print(
        f"- rate, last round: {last_rate['recorded']} starts recorded by the end, "
        f"{last_rate['in_window']} in the window; first start {last_rate['first_start_s']:.2f} s "
        f"after the first job was queued; gaps min {last_rate['gap_min']:.1f} ms, "
        f"max {last_rate['gap_max']:.1f} ms"
    )
    print(
        f"- max_concurrency, last round: running at a start seen as "
        f"{last_slots['seen_counts']}; {last_slots['span_s']:.2f} s from the first start to "
        f"the last end; a job's own run (start to end, inside) p50 "
        f"{last_slots['duration_p50']:.1f} ms; hand-off (a slot's end to the next start in it) "
        f"p50 {last_slots['handoff_p50']:.1f} ms, p99 {last_slots['handoff_p99']:.1f} ms, "
        f"max {last_slots['handoff_max']:.1f} ms"
    )


# --- inside: the measurements ------------------------------------------------------------------


class Workers:
    """`count` worker processes on the jobs module's settings, each logging to a file; they are
    stopped (SIGTERM, then SIGKILL after a grace) on exit, by their process ids."""

    def __init__(self, package: str, count: int, logs: Path) -> None:
        self.package, self.count, self.logs = package, count, logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> "Workers":
        project = Path.cwd()
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(project), os.environ.get("PYTHONPATH")])
            ),
        }
        command = [sys.executable, "-m", f"{self.package}.infrastructure.worker"]
        for index in range(self.count):
            with (self.logs / f"worker-{index}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [*command, f"{JOBS_MODULE}.WorkerSettings"],
                        cwd=project,
                        env=environment,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            stop_process(process, STOP_GRACE_SECONDS)
        if exc_info[0] is not None:
            self.show_logs()

    def check(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                raise RuntimeError(f"worker process {index} exited ({process.returncode})")

    def show_logs(self) -> None:
        for index in range(len(self.processes)):
            lines = (self.logs / f"worker-{index}.log").read_text(errors="replace").splitlines()
            say("\n".join([f"--- worker {index}", *lines[-15:]]))


class Bench:
    def __init__(self, args: argparse.Namespace, pool: Any, logs: Path) -> None:
        package = args.inside
        self.args, self.pool, self.logs = args, pool, logs
        self.queue = importlib.import_module(f"{package}.queue")
        self.heartbeat = importlib.import_module(f"{package}.infrastructure.store.heartbeat")
        config = importlib.import_module(f"{package}.config")
        self.queue_name: str = config.get_settings().queue_name

    @contextlib.asynccontextmanager
    async def workers(self) -> Any:
        """Fresh worker processes on an empty Redis, once every one has sent its heartbeat."""
        await self.pool.flushdb()
        with Workers(self.args.inside, self.args.workers, self.logs) as workers:
            deadline = time.monotonic() + READY_SECONDS
            while len(await self.heartbeat.live_workers(self.pool, self.queue_name)) < len(
                workers.processes
            ):
                workers.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the workers sent no heartbeat in {READY_SECONDS} s")
                await asyncio.sleep(0.05)
            yield workers

    async def enqueue_many(self, name: str, count: int, *args: Any) -> float:
        """Queue `count` jobs of `name`, `ENQUEUE_CONCURRENCY` at a time; time.time() before."""
        began = time.time()
        for first in range(0, count, ENQUEUE_CONCURRENCY):
            batch = min(ENQUEUE_CONCURRENCY, count - first)
            await asyncio.gather(*(self.queue.enqueue_task(name, *args) for _ in range(batch)))
        return began

    async def rate(self) -> dict[str, Any]:
        args, pool = self.args, self.pool
        async with self.workers() as workers:
            queued_at = await self.enqueue_many("bench_rated", rated_jobs(args))
            deadline = time.monotonic() + 60
            while not await pool.llen(STARTS_KEY):
                workers.check()
                if time.monotonic() > deadline:
                    raise RuntimeError("no rate-limited job started in 60 s")
                await asyncio.sleep(0.01)
            first = float(await pool.lindex(STARTS_KEY, 0))
            # A start is recorded a moment after it is taken: wait a little past the window.
            await asyncio.sleep(max(0.0, first + args.seconds + 0.5 - time.time()))
            workers.check()
            times = sorted(float(entry) for entry in await pool.lrange(STARTS_KEY, 0, -1))
        first = times[0]
        window = [at for at in times if at < first + args.seconds]
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(window)]
        # A window opens at each start: the starts from it up to (not at) one second later.
        most = max(bisect.bisect_left(window, at + 1) - i for i, at in enumerate(window))
        found = {
            "recorded": len(times),
            "in_window": len(window),
            "most_in_a_second": most,
            "gap_p50": statistics.median(gaps),
            "gap_p99": percentile(gaps, 99) if len(gaps) > 1 else gaps[0],
            "gap_min": min(gaps),
            "gap_max": max(gaps),
            "first_start_s": first - queued_at,
        }
        say(f"  rate: {len(window)} started in {args.seconds:g} s, at most {most} in a second, "
            f"gap p50 {found['gap_p50']:.1f} ms, p99 {found['gap_p99']:.1f} ms")  # fmt: skip
        return found

    async def concurrency(self) -> dict[str, Any]:
        args, pool = self.args, self.pool
        jobs = args.concurrency_jobs
        async with self.workers() as workers:
            await self.enqueue_many("bench_slotted", jobs, args.job_seconds)
            deadline = time.monotonic() + 60 + jobs * args.job_seconds
            while await pool.llen(SLOTS_KEY) < jobs:
                workers.check()
                if time.monotonic() > deadline:
                    ended = await pool.llen(SLOTS_KEY)
                    raise RuntimeError(f"{ended} of {jobs} max_concurrency jobs ended")
                await asyncio.sleep(0.02)
            entries = await pool.lrange(SLOTS_KEY, 0, -1)
        records = [entry.decode().split() for entry in entries]
        starts = [float(started) for started, _, _ in records]
        seen = [int(running) for _, running, _ in records]
        ends = [float(ended) for _, _, ended in records]
        span = max(ends) - min(starts)
        per_s = jobs / span
        # With three slots, the job that starts k-th (k > 3) waits for the (k-3)-th end: how
        # long after it each one started is the hand-off (lease given back, job made due,
        # claimed, started).
        handoffs = [
            (start - end) * 1000
            for start, end in zip(sorted(starts)[MAX_CONCURRENCY:], sorted(ends), strict=False)
        ]
        durations = [(end - start) * 1000 for start, end in zip(starts, ends, strict=True)]
        found = {
            "most_running": max(seen),
            "seen_counts": {str(n): seen.count(n) for n in sorted(set(seen))},
            "handoff_p50": statistics.median(handoffs) if handoffs else 0.0,
            "handoff_p99": percentile(handoffs, 99) if len(handoffs) > 1 else 0.0,
            "handoff_max": max(handoffs, default=0.0),
            "duration_p50": statistics.median(durations),
            "span_s": span,
            "per_s": per_s,
            "ratio": per_s / (MAX_CONCURRENCY / args.job_seconds),
        }
        say(f"  max_concurrency: at most {max(seen)} running, {per_s:.1f} jobs/s, "
            f"ratio {found['ratio']:.3f}")  # fmt: skip
        return found


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq

    package = args.inside
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["BENCH_RATE_LIMIT"] = f"{args.rate}/s"
    os.environ["BENCH_MAX_CONCURRENCY"] = str(MAX_CONCURRENCY)
    text = JOBS_MODULE_TEXT.format(
        package=package, starts=STARTS_KEY, slots=SLOTS_KEY, running=RUNNING_KEY
    )
    (Path.cwd() / f"{JOBS_MODULE}.py").write_text(text)
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    with (
        redis_server.LocalRedisServer() as server,
        tempfile.TemporaryDirectory(prefix="bench-limits-logs-") as logs,
    ):
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        sys.path.insert(0, str(Path.cwd()))
        importlib.import_module(JOBS_MODULE)  # declares the limited jobs here too
        queue = importlib.import_module(f"{package}.queue")
        pool = await queue.get_task_pool()
        try:
            bench = Bench(args, pool, Path(logs))
            found: dict[str, Any] = {part: [] for part in PARTS}
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                for part in rotated(PARTS, index):
                    found[part].append(await getattr(bench, part)())
            await pool.flushdb()
            info = await pool.info("server")
        finally:
            await queue.close_task_pool()
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
