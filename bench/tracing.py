"""What tracing costs a worker's drain: off (the default) against on, with a no-op exporter.

    uv run python bench/tracing.py [--rounds 5] [--jobs 2000]

Bakes the default project into a scratch folder, `uv sync`s it, and runs this file inside it
(`--inside`, the project's own venv; benchkit.py's `run_script_inside`). That half starts the
project's `LocalRedisServer` on a free loopback port and, for each round, in an order that
alternates (benchkit.py's `rotated`), queues `--jobs` no-op jobs with `enqueue_task` and times a
burst worker (the project's own, in this process) draining them:

- `off`: tracing off, as a project runs unless OTEL_* asks for it;
- `on`: tracing on (tracing.py's `start_tracing`) with a batch processor around an exporter that
  drops every span: the SDK's whole cost (a span per enqueue and per try, the trace context in
  each payload and read back), without any network.

Tracing off against the code before it cannot be run side by side in one process; what the off
path adds is a check of the module-level boolean `tracing.enabled` where a span would start (four
per job: the enqueue, its payload, the claim's read, the try), timed here on its own and printed
per job. It prints one Markdown table: each mode's median drain rate (jobs/s), and the median of
the per-round ratios on/off.
"""

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import time
import timeit
from typing import Any

from benchkit import measure_in_baked_project, paired_ratios, rotated

MODES = ("off", "on")
# Where a job meets `tracing.enabled`: enqueue_checked, prepare_job, run_job, retrying.
CHECKS_PER_JOB = 4


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each mode")
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs drained per round")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    arguments = ["--rounds", str(args.rounds), "--jobs", str(args.jobs)]
    report = measure_in_baked_project(__file__, arguments, "tracing", timeout=1800)
    print(f"{os.cpu_count()} CPUs, {args.rounds} rounds of {args.jobs} jobs per mode, "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print()
    print("| tracing | drain, jobs/s (median) | ratio to off (median of rounds) |")
    print("|---|---:|---:|")
    for mode in MODES:
        ratio = statistics.median(report["ratios"][mode])
        print(f"| {mode} | {statistics.median(report['rates'][mode]):,.0f} | {ratio:.3f}x |")
    check_ns = report["check_ns"]
    print()
    print(f"off: the `tracing.enabled` check takes {check_ns:.1f} ns; {CHECKS_PER_JOB} per job: "
          f"{check_ns * CHECKS_PER_JOB:.0f} ns a job")  # fmt: skip
    return 0


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from arq.connections import RedisSettings
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    package = args.inside
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    tasks = importlib.import_module(f"{package}.infrastructure.tasks")
    loop = importlib.import_module(f"{package}.infrastructure.worker.loop")
    queue = importlib.import_module(f"{package}.queue")
    tracing = importlib.import_module(f"{package}.tracing")

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    async def drain(mode: str, url: str) -> float:
        if mode == "on":
            tracing.start_tracing(BatchSpanProcessor(Dropped()))
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
            tracing.stop_tracing()

    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    with redis_server.LocalRedisServer() as server:
        os.environ["REDIS_URL"] = server.url
        os.environ["LOG_LEVEL"] = "WARNING"
        config.get_settings.cache_clear()
        await drain("off", server.url)  # warm-up: imports, connections
        for round_ in range(args.rounds):
            for mode in rotated(MODES, round_):
                rates[mode].append(await drain(mode, server.url))
                say(f"round {round_ + 1} {mode}: {rates[mode][-1]:,.0f} jobs/s")
        await queue.close_task_pool()
    number = 1_000_000
    check = timeit.timeit("if tracing.enabled: pass", globals={"tracing": tracing}, number=number)
    return {
        "rates": rates,
        "ratios": {mode: paired_ratios(rates[mode], rates["off"]) for mode in MODES},
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
