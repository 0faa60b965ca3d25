"""Work that spans jobs (issue 26), side by side in one run: bulk enqueue, progress reports,
chains and groups.

`uv run python bench/workflows.py` bakes the default project into a scratch folder, `uv sync`s
it, and runs this script inside it (`--inside`, in the project's venv) against a Redis server of
its own (the project's `LocalRedisServer`, on a free loopback port). There it writes a jobs
module (`bench_workflow_jobs.py`, in the project's folder) that declares, with `@job`, a no-op
job, a job that reports progress in a tight loop, a chain's step, a group's member and a
callback.

1. Bulk: `--jobs` no-op jobs queued three ways on an empty Redis, each timed from the first
   call to the last reply: `enqueue_many` (one call: chunks of 1,000 jobs, one script call
   each); `--jobs` `await enqueue_task(...)` one after another, as a loop in a script does;
   and the same calls gathered at once, which the project's writer pipelines (job_writes.py).
   Goal: `enqueue_many` at least 10x the one-after-another rate.
2. Progress: one worker (the project's, in this process, burst mode) runs a job that calls
   `report_progress` `--reports` times in a tight loop. Writes to its progress key are counted
   by Redis itself (keyspace notifications); writes a second is that count over the job's run
   time (at least 1 s). Goal: at most 20 a second.
3. Chains: a chain of `--steps` no-op steps (`enqueue_chain`, each step given the previous
   result), against as many independent no-op jobs (`enqueue_many`), each run by one worker
   with `max_jobs` 1 (the project's, in this process, started and waiting first), timed from the
   enqueue until the last result is there (looked for every 20 ms); chain, jobs, jobs, chain in
   each round, each kind's two runs summed. Redis commands per step and
   per job, everything from the enqueue to the last result (`INFO commandstats`: the enqueue,
   the worker's, and those 20 ms looks).
   Goals: the chain at least 0.8x the jobs' rate, and at most 1.5x their commands. Beside
   them, no goal: a Redis round trip on this machine (the median of `PINGS` PINGs one after
   another, through the project's client). A step cannot start before the write that records
   the one before it has come back, so each step waits one round trip, where an independent
   job, read ahead, waits for none: the rate ratio falls as the round trip grows.
4. Groups: four worker processes (`python -m <package>.infrastructure.worker`) run a group of
   `--members` members with a callback, `--group-runs` times; the callback counts its runs and
   checks it got every member's result, in order. Goal: exactly once, every member, each run.

Figures are medians over `--rounds` rounds (the bulk ways' order turns each round); the two
ratios with goals are each round's own, then their median, shown with their range: the speed
of a shared 2-core machine drifts over seconds, which a ratio within a round mostly cancels.
"""

import argparse
import asyncio
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    commands_so_far,
    measure_in_baked_project,
    rotated,
    stop_process,
)

BULK_GOAL = 10.0  # goal 1: enqueue_many at least 10x one enqueue_task after another
PROGRESS_GOAL = 20.0  # goal 2: at most 20 writes a second for one job's progress
CHAIN_RATE_GOAL = 0.8  # goal 3: a chain's steps at least 0.8x the rate of independent jobs
CHAIN_COMMANDS_GOAL = 1.5  # goal 3: and at most 1.5x their Redis commands each
GROUP_WORKERS = 4
PINGS = 2000  # part 3: round trips timed each round
WAYS = ("enqueue_many", "one after another", "gathered")
JOBS_MODULE = "bench_workflow_jobs"

JOBS_MODULE_TEXT = '''\
"""Written by bench/workflows.py: a no-op job, and one that reports progress in a tight loop."""

from typing import Any

from {package}.queue import JobContext, job, report_progress


@job
async def bench_noop(ctx: JobContext, number: int) -> None:
    """Does nothing."""


@job
async def bench_step(ctx: JobContext, previous: Any) -> int:
    """A chain's no-op step: its input, plus one."""
    return (previous or 0) + 1


@job
async def bench_member(ctx: JobContext, number: int) -> int:
    return number


@job
async def bench_callback(ctx: JobContext, results: list[int], size: int) -> bool:
    """Counts its runs (`callback-runs`); True if it got every member's result, in order."""
    await ctx["redis"].incr("callback-runs")
    return results == list(range(size))


@job
async def bench_progress(ctx: JobContext, reports: int) -> int:
    """Reports its progress `reports` times, as fast as it can."""
    for done in range(1, reports + 1):
        await report_progress(ctx, done, reports)
    return reports


# For the group's worker processes: these jobs, no cron jobs. Imported last: the project's
# WorkerSettings lists the jobs declared when it is first imported (the bench's workers use it).
from {package}.infrastructure.tasks import WorkerSettings as ProjectSettings  # noqa: E402
from {package}.infrastructure.worker.functions import worker_functions  # noqa: E402

WorkerSettings = {{**vars(ProjectSettings), "functions": worker_functions()[0], "cron_jobs": ()}}
'''


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs queued each way (part 1)")
    parser.add_argument("--reports", type=int, default=100_000, help="progress reports (part 2)")
    parser.add_argument("--steps", type=int, default=1000, help="a chain's steps (part 3)")
    parser.add_argument("--members", type=int, default=1000, help="a group's members (part 4)")
    parser.add_argument("--group-runs", type=int, default=20, help="groups run (part 4)")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> list[str]:
    return [
        *("--rounds", str(args.rounds), "--jobs", str(args.jobs), "--reports", str(args.reports)),
        *("--steps", str(args.steps), "--members", str(args.members)),
        *("--group-runs", str(args.group_runs)),
    ]


# --- outside: bake, run inside, print --------------------------------------------------------


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = measure_in_baked_project(__file__, options(args), "workflows")
    print_report(args, report, time.perf_counter() - started)
    return 0


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}"


def print_report(args: argparse.Namespace, report: dict[str, Any], seconds: float) -> None:
    meta = report["meta"]
    print(
        f"{os.cpu_count()} CPUs ({platform.machine()}), Redis {meta['redis']}, arq {meta['arq']}, "
        f"Python {meta['python']}; {args.rounds} rounds, medians; {seconds:.0f} s in all"
    )
    rates = {way: statistics.median(report["bulk"][way]) for way in WAYS}
    # Each round's own ratio (its ways ran one after the other), then their median: the
    # machine's speed drifts over seconds, and a ratio of two medians from different rounds
    # would mix its moments.
    bulk_ratios = [
        many / single
        for many, single in zip(
            report["bulk"]["enqueue_many"], report["bulk"]["one after another"], strict=True
        )
    ]
    ratio = statistics.median(bulk_ratios)
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
            "enqueue_many / one after another (each round's, median; rounds' range)",
            f"{ratio:.1f} ({spread(bulk_ratios, 1)})",
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
    chain = {key: statistics.median(values) for key, values in report["chain"].items()}
    chain_ratios = [
        steps_rate / jobs_rate
        for steps_rate, jobs_rate in zip(
            report["chain"]["chain_rate"], report["chain"]["jobs_rate"], strict=True
        )
    ]
    rate_ratio = statistics.median(chain_ratios)
    commands_ratio = chain["chain_commands"] / chain["jobs_commands"]
    steps = f"{args.steps:,}"
    rows += [
        (
            f"a chain of {steps} no-op steps, steps/s (max_jobs 1)",
            f"{chain['chain_rate']:.0f}",
            "",
            "",
        ),
        (
            f"{steps} independent no-op jobs, jobs/s (max_jobs 1)",
            f"{chain['jobs_rate']:.0f}",
            "",
            "",
        ),
        (
            "chain steps / independent jobs, rate (each round's, median; rounds' range)",
            f"{rate_ratio:.2f} ({spread(chain_ratios, 2)})",
            f"≥ {CHAIN_RATE_GOAL}",
            verdict(rate_ratio >= CHAIN_RATE_GOAL),
        ),
        (
            "a Redis round trip (PING, the project's client), µs, median",
            f"{chain['round_trip_us']:.0f}",
            "",
            "",
        ),
        ("Redis commands per chain step", f"{chain['chain_commands']:.1f}", "", ""),
        ("Redis commands per independent job", f"{chain['jobs_commands']:.1f}", "", ""),
        (
            "chain step / independent job, commands",
            f"{commands_ratio:.2f}",
            f"≤ {CHAIN_COMMANDS_GOAL}",
            verdict(commands_ratio <= CHAIN_COMMANDS_GOAL),
        ),
    ]
    group = report["group"]
    once = sum(1 for runs, whole in group if runs == 1 and whole)
    members = f"{args.members:,}"
    rows.append(
        (
            f"a group of {members} members and a callback on {GROUP_WORKERS} worker processes, "
            f"{len(group)} runs: runs with the callback once, with every result",
            str(once),
            f"= {len(group)}",
            verdict(once == len(group)),
        )
    )
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
        config = importlib.import_module(f"{package}.config")
        self.queue_key = config.get_settings().queue_name
        self.start: Any = None
        self.flow: Any = None

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

    async def run_until(self, redis_url: str, last_result_key: str) -> tuple[float, int]:
        """Seconds until `last_result_key` exists, and Redis commands meanwhile, with one
        worker (`max_jobs` 1, the project's, in this process) running what is queued. The
        worker starts first; its idle commands (a few a second) count, its start does not."""
        worker = self.worker.create_worker(
            dict(vars(self.tasks.WorkerSettings)),
            redis_settings=self.connections.RedisSettings.from_dsn(redis_url),
            handle_signals=False,
            cron_jobs=(),
            max_jobs=1,
        )
        running = asyncio.create_task(worker.async_run())
        try:
            await asyncio.sleep(0.5)  # started, and waiting for jobs
            return await self.timed(last_result_key)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await worker.close()

    async def timed(self, last_result_key: str) -> tuple[float, int]:
        before, started = await self.commands(), time.perf_counter()
        await self.start()
        while not await self.pool.exists(last_result_key):
            await asyncio.sleep(0.02)
        return time.perf_counter() - started, await self.commands() - before

    async def commands(self) -> int:
        return commands_so_far(await self.pool.info("commandstats"))

    async def chain(self, redis_url: str) -> dict[str, float]:
        """A chain's steps and as many independent jobs: each rate, and commands each. Run
        chain, jobs, jobs, chain, so that a drift of the machine's speed over the round weighs
        on both alike."""
        steps = self.args.steps
        seconds = {"chain": 0.0, "jobs": 0.0}
        commands = {"chain": 0, "jobs": 0}
        for kind in ("chain", "jobs", "jobs", "chain"):
            run = self.one_chain(redis_url) if kind == "chain" else self.jobs(redis_url, steps)
            took, sent = await run
            seconds[kind] += took
            commands[kind] += sent
        return {
            "chain_rate": 2 * steps / seconds["chain"],
            "jobs_rate": 2 * steps / seconds["jobs"],
            "chain_commands": commands["chain"] / (2 * steps),
            "jobs_commands": commands["jobs"] / (2 * steps),
        }

    async def round_trip(self) -> float:
        """The median of PINGS round trips to Redis one after another, in µs."""
        samples = []
        for _ in range(PINGS):
            started = time.perf_counter()
            await self.pool.ping()
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1e6

    async def one_chain(self, redis_url: str) -> tuple[float, int]:
        """A chain of `--steps` no-op steps, run: seconds, and Redis commands."""
        steps = self.args.steps
        await self.pool.flushdb()
        calls = [self.queue.JobCall("bench_step", (None,))]
        calls += [self.queue.JobCall("bench_step", ()) for _ in range(steps - 1)]

        async def start_chain() -> None:
            self.flow = await self.queue.enqueue_chain(*calls, workflow_id=f"bench-{steps}")

        self.start = start_chain
        last = f"arq:result:{self.queue_key}:wf-bench-{steps}.{steps - 1}"
        found = await self.run_until(redis_url, last)
        assert await self.flow.result(timeout=10) == steps
        return found

    async def jobs(self, redis_url: str, count: int) -> tuple[float, int]:
        """`count` independent no-op jobs, run: seconds, and Redis commands."""
        await self.pool.flushdb()
        ids = [f"chain-{count}-{n}" for n in range(count)]

        async def start_jobs() -> None:
            await self.queue.enqueue_many("bench_step", [(n,) for n in range(count)], job_ids=ids)

        self.start = start_jobs
        return await self.run_until(redis_url, f"arq:result:{self.queue_key}:{ids[-1]}")

    async def groups(self, redis_url: str, package: str) -> list[tuple[int, bool]]:
        """Each group's callback runs and whether it had every result, with GROUP_WORKERS
        worker processes."""
        await self.pool.flushdb()
        environment = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", f"{package}.infrastructure.worker"]
        workers = [
            subprocess.Popen([*command, f"{JOBS_MODULE}.WorkerSettings"], env=environment)
            for _ in range(GROUP_WORKERS)
        ]
        outcomes = []
        try:
            for _ in range(self.args.group_runs):
                await self.pool.delete("callback-runs")
                members = [
                    self.queue.JobCall("bench_member", (n,)) for n in range(self.args.members)
                ]
                then = self.queue.JobCall("bench_callback", (self.args.members,))
                flow = await self.queue.enqueue_group(members, then=then)
                whole = await flow.result(timeout=120, poll_delay=0.05)
                await asyncio.sleep(0.2)  # a second run of the callback would show by now
                runs = int(await self.pool.get("callback-runs") or 0)
                outcomes.append((runs, bool(whole)))
        finally:
            for worker in workers:
                stop_process(worker, grace=10)
        return outcomes


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
            chain: dict[str, list[float]] = {}
            for index in range(args.rounds):
                say(f"round {index + 1} of {args.rounds}")
                for way in rotated(WAYS, index):
                    bulk[way].append(await bench.bulk(way))
                found = await bench.progress(server.url)
                progress["writes"].append(found["writes"])
                progress["writes_per_second"].append(found["per_second"])
                for key, value in (await bench.chain(server.url)).items():
                    chain.setdefault(key, []).append(value)
                chain.setdefault("round_trip_us", []).append(await bench.round_trip())
            say(f"groups: {args.group_runs} runs on {GROUP_WORKERS} worker processes")
            group = await bench.groups(server.url, package)
            await pool.flushdb()
            info = await pool.info("server")
        finally:
            await queue.close_task_pool()
    meta = {"arq": arq.VERSION, "redis": info["redis_version"], "python": platform.python_version()}
    return {"bulk": bulk, "progress": progress, "chain": chain, "group": group, "meta": meta}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inside:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
