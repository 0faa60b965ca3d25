"""What tracing costs a worker's drain: off (the default) against on, with a no-op exporter.

    uv run python bench/tracing.py [--rounds 5] [--jobs 2000] [--before REVISION]

Bakes the default project into a scratch folder, `uv sync`s it, and runs this file inside it
(`--inside`, the project's own venv; benchkit.py's `run_script_inside`). That half starts the
project's `LocalRedisServer` on a free loopback port and, for each round, in an order that
alternates (benchkit.py's `rotated`), queues `--jobs` no-op jobs with `enqueue_task` and times a
burst worker (the project's own, in this process) draining them:

- `off`: tracing off, as a project runs unless OTEL_* asks for it;
- `on`: tracing on (tracing.py's `start_tracing`) with a batch processor around an exporter that
  drops every span: the SDK's whole cost (a span per enqueue and per try, the trace context in
  each payload and read back), without any network.

What the off path adds is a check of the module-level boolean `tracing.enabled` where a span
would start (four per job: the enqueue, its payload, the claim's read, the try), timed here on
its own and printed per job. With `--before REVISION` (a git revision of the template from before
tracing, e207d34 for the one this came with), the template as it was then is baked too, and each
round also drains the same jobs in that project (`before`), each side in a process of its own,
in an order that alternates: tracing off against the code before it, side by side in one run.
It prints one Markdown table: each mode's median drain rate (jobs/s), and the median of the
per-round ratios to off.
"""

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from typing import Any

from benchkit import (
    bake,
    measure_in_baked_project,
    paired_ratios,
    rotated,
    run_script_inside,
    sync,
    template_at,
    tool_environment,
)

MODES = ("off", "on")
# Where a job meets `tracing.enabled`: enqueue_checked, prepare_job, run_job, retrying.
CHECKS_PER_JOB = 4


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each mode")
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs drained per round")
    parser.add_argument(
        "--before", metavar="REVISION", help="also drain in the template as of this git revision"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def before_and_now(args: argparse.Namespace) -> dict[str, Any]:
    """Each round: the drain in the template as of `args.before` (tracing did not exist) and the
    off and on drains in this one, each project's in a process of its own, alternating."""
    environment = tool_environment()
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-tracing-") as scratch:
        now = bake(f"{scratch}/now")
        before = bake(f"{scratch}/before", template_at(args.before, f"{scratch}/template"))
        say(f"baked {now} and, as of {args.before}, {before}; uv sync")
        sync(now, environment)
        sync(before, environment)
        rates: dict[str, list[float]] = {"before": [], "off": [], "on": []}
        jobs = ["--jobs", str(args.jobs), "--rounds", "1"]
        for round_ in range(args.rounds):
            for side in rotated(("before", "now"), round_):
                project, modes = (before, "off") if side == "before" else (now, "off,on")
                report = run_script_inside(
                    project, __file__, [*jobs, "--modes", modes], environment, timeout=600
                )
                if side == "before":
                    rates["before"] += report["rates"]["off"]
                else:
                    rates["off"] += report["rates"]["off"]
                    rates["on"] += report["rates"]["on"]
                    check_ns = report["check_ns"]
                say(f"round {round_ + 1} {side} done")
    ratios = {mode: paired_ratios(rates[mode], rates["off"]) for mode in rates}
    return {"rates": rates, "ratios": ratios, "check_ns": check_ns}


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.before:
        report = before_and_now(args)
    else:
        arguments = ["--rounds", str(args.rounds), "--jobs", str(args.jobs)]
        report = measure_in_baked_project(__file__, arguments, "tracing", timeout=1800)
    print(f"{os.cpu_count()} CPUs, {args.rounds} rounds of {args.jobs} jobs per mode, "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print()
    print("| tracing | drain, jobs/s (median) | ratio to off (median of rounds) |")
    print("|---|---:|---:|")
    for mode in report["rates"]:
        ratio = statistics.median(report["ratios"][mode])
        label = f"before ({args.before})" if mode == "before" else mode
        print(f"| {label} | {statistics.median(report['rates'][mode]):,.0f} | {ratio:.3f}x |")
    if args.before:
        off = statistics.median(paired_ratios(report["rates"]["off"], report["rates"]["before"]))
        verdict = "meets" if off >= 0.99 else "misses"
        print()
        print(f"off against before (median of rounds): {off:.3f}x, goal ≥ 0.99: {verdict}")
    check_ns = report["check_ns"]
    print()
    print(f"off: the `tracing.enabled` check takes {check_ns:.1f} ns; {CHECKS_PER_JOB} per job: "
          f"{check_ns * CHECKS_PER_JOB:.0f} ns a job")  # fmt: skip
    return 0


def dropping_processor() -> Any:
    """The SDK's batch processor around an exporter that drops every span."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return BatchSpanProcessor(Dropped())


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from arq.connections import RedisSettings

    package = args.inside
    modes = tuple(args.modes.split(","))
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    tasks = importlib.import_module(f"{package}.infrastructure.tasks")
    loop = importlib.import_module(f"{package}.infrastructure.worker.loop")
    queue = importlib.import_module(f"{package}.queue")
    # Absent from a project baked from before tracing (--before), which drains "off" only.
    tracing = importlib.import_module(f"{package}.tracing") if "on" in modes else None

    async def drain(mode: str, url: str) -> float:
        if mode == "on":
            assert tracing is not None
            tracing.start_tracing(dropping_processor())
        try:
            for n in range(args.jobs):
                await queue.enqueue_task("example_task", message=f"{n}")
            worker = loop.create_worker(
                dict(vars(tasks.WorkerSettings)),
                redis_settings=RedisSettings.from_dsn(url),
                burst=True,
                handle_signals=False,
                cron_jobs=(),
            )
            started = time.perf_counter()
            try:
                await worker.async_run()
            finally:
                await worker.close()
            elapsed = time.perf_counter() - started
            assert worker.jobs_complete == args.jobs, worker.jobs_complete
            return args.jobs / elapsed
        finally:
            if tracing is not None:
                tracing.stop_tracing()

    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    with redis_server.LocalRedisServer() as server:
        os.environ["REDIS_URL"] = server.url
        os.environ["LOG_LEVEL"] = "WARNING"
        config.get_settings.cache_clear()
        await drain("off", server.url)  # warm-up: imports, connections
        for round_ in range(args.rounds):
            for mode in rotated(modes, round_):
                rates[mode].append(await drain(mode, server.url))
                say(f"round {round_ + 1} {mode}: {rates[mode][-1]:,.0f} jobs/s")
        await queue.close_task_pool()
    number = 1_000_000
    check = 0.0
    if tracing is not None:
        names = {"tracing": tracing}
        check = timeit.timeit("if tracing.enabled: pass", globals=names, number=number)
    return {
        "rates": rates,
        "ratios": {mode: paired_ratios(rates[mode], rates["off"]) for mode in modes},
        "check_ns": check / number * 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inside is None:
        return outside(args)
    print(json.dumps(asyncio.run(measure(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
