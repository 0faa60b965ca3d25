"""Time the dashboard's page with a full activity record, and weigh its live update.

    uv run python bench/dashboard.py [--jobs 10000] [--requests 20]

Bakes the default project into a scratch folder and `uv sync`s it, then runs this script inside
it (`--inside`, in the project's venv) against a Redis server of its own (the project's
`LocalRedisServer`, on a free loopback port). There it fills the activity record the way workers
do, through `ActivityRecorder` (activity.py): `--jobs` tries that ended over the last 15 minutes,
spread evenly, of five functions, one in twenty failed and one in fifty retried (with an error
of 180 characters), each with a run time and a wait. The recent list keeps RECENT_LIMIT of
them (10,000), the failures' list FAILURES_LIMIT; the chart's buckets count all. With a deferred
job queued too, it then asks the app, unfiltered (in process, through httpx's ASGI transport,
its lifespan run, the dashboard's password sent), for

- `GET /dashboard`: the whole page, `--requests` times after two warm-ups; p50 and p95 of the
  time from the request to the whole response (goal: p50 under 300 ms);
- `GET /dashboard/live`: the same for the part the page's script fetches every 2 s, and its
  size in bytes (goal: under 50 KB: 51,200 bytes), and the page's size.

Prints a machine line and a Markdown table: figure, measured, goal, verdict.
"""

import argparse
import asyncio
import importlib
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from benchkit import measure_in_baked_project, percentile

PAGE_GOAL_MS = 300
LIVE_GOAL_BYTES = 50 * 1024
FUNCTIONS = ("send_email", "render_report", "sync_crm", "resize_image", "charge_card")
PASSWORD = "bench"
# A failure's error as a real one reads: longer than most, shorter than the 500 characters kept.
ERROR = (
    "ReadTimeout: the CRM at https://crm.example.com/api/v2/contacts did not answer within 10 s "
    "(attempt 3 of 3); the contact update for account 48213 is not saved and will not be retried"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="tries recorded")
    parser.add_argument("--requests", type=int, default=20, help="timed requests of each")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- outside: bake, run inside, print --------------------------------------------------------


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    options = ["--jobs", str(args.jobs), "--requests", str(args.requests)]
    report = measure_in_baked_project(__file__, options, "dashboard", timeout=900)
    meta = report["meta"]
    print(
        f"{os.cpu_count()} CPUs ({platform.machine()}), Redis {meta['redis']}, "
        f"Python {meta['python']}; {args.jobs:,} tries recorded, {meta['kept']:,} kept in the "
        f"recent list; {args.requests} requests of each; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    print()
    print("| figure | measured | goal | verdict |")
    print("|---|---:|---:|---|")
    page_p50 = report["page_ms_p50"]
    print(f"| GET /dashboard p50 ms | {page_p50:.1f} | < {PAGE_GOAL_MS} | "
          f"{'met' if page_p50 < PAGE_GOAL_MS else 'NOT met'} |")  # fmt: skip
    print(f"| GET /dashboard p95 ms | {report['page_ms_p95']:.1f} |  |  |")
    print(f"| GET /dashboard/live p50 ms | {report['live_ms_p50']:.1f} |  |  |")
    live_bytes = report["live_bytes"]
    print(f"| GET /dashboard/live bytes | {live_bytes} | < {LIVE_GOAL_BYTES} | "
          f"{'met' if live_bytes < LIVE_GOAL_BYTES else 'NOT met'} |")  # fmt: skip
    print(f"| GET /dashboard bytes | {report['page_bytes']} |  |  |")
    return 0


# --- inside: fill the record, time the app ----------------------------------------------------


async def fill(package: str, pool: Any, jobs: int) -> int:
    """Record `jobs` tries through the workers' own recorder; returns how many the list kept."""
    activity = importlib.import_module(f"{package}.infrastructure.ops.activity")
    job_events = importlib.import_module(f"{package}.infrastructure.job_events")
    settings = importlib.import_module(f"{package}.config").get_settings()
    recorder = activity.ActivityRecorder(pool, settings.queue_name)
    now = time.time()
    step = (activity.WINDOW_SECONDS - 30) / max(jobs, 1)
    for index in range(jobs):  # oldest first, as they would have ended
        finished_at = now - activity.WINDOW_SECONDS + 20 + index * step
        outcome = "failed" if index % 20 == 0 else "retried" if index % 50 == 1 else "complete"
        duration = 0.02 + (index % 97) / 100
        started_at = finished_at - duration
        recorder.heard(
            job_events.JobFinished(
                job_id=f"{settings.queue_name}:bench-{index}",
                function=FUNCTIONS[index % len(FUNCTIONS)],
                job_try=1,
                enqueued_at=started_at - (index % 13) / 100,
                started_at=started_at,
                finished_at=finished_at,
                outcome=outcome,
                error=None if outcome == "complete" else ERROR,
            )
        )
        # As workers write, in batches of at most RECORDED_PER_WRITE (10,000 tries in 15
        # minutes is 11 a second: every one is recorded).
        if (index + 1) % activity.RECORDED_PER_WRITE == 0 or index == jobs - 1:
            await recorder.write()
    return int(await pool.llen(activity.recent_key(settings.queue_name)))


async def timed(client: Any, path: str, requests: int) -> tuple[list[float], int]:
    """Milliseconds per request (after two warm-ups), and the last body's size in bytes."""
    size = 0
    for _ in range(2):
        await client.get(path)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        size = len(answer.content)
    return times, size


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    package = args.inside
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DASHBOARD_PASSWORD"] = PASSWORD
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        queue = importlib.import_module(f"{package}.queue")
        app = importlib.import_module(f"{package}.api.app").create_app()
        pool = await queue.get_task_pool()
        try:
            say(f"recording {args.jobs:,} tries")
            kept = await fill(package, pool, args.jobs)
            await queue.enqueue_task("example_task", message="later", _defer_by=3600)
            transport = httpx.ASGITransport(app=app)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=transport, base_url="http://bench", auth=("bench", PASSWORD)
                ) as client,
            ):
                say("timing GET /dashboard and /dashboard/live")
                page, page_bytes = await timed(client, "/dashboard", args.requests)
                live, live_bytes = await timed(client, "/dashboard/live", args.requests)
            info = await pool.info("server")
            await pool.flushdb()
        finally:
            await queue.close_task_pool()
    return {
        "page_ms_p50": statistics.median(page),
        "page_ms_p95": percentile(page, 95),
        "live_ms_p50": statistics.median(live),
        "page_bytes": page_bytes,
        "live_bytes": live_bytes,
        "meta": {"redis": info["redis_version"], "python": platform.python_version(), "kept": kept},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inside:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
