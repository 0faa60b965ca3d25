"""Drain throughput, Redis commands per job and enqueue→start latency of a Celery worker on Redis.

    <celery venv>/bin/python bench/celery_drain.py --redis-url redis://127.0.0.1:PORT/0
        [--jobs 5000] [--latency-jobs 67] [--latency-rate 20] [--seed 1]
        [--pool prefork|solo] [--concurrency N]

compare.py's `--celery` comparison. Celery cannot share the project's venv (kombu wants a newer
redis-py than arq allows), so this runs with the Python of a venv of its own, which
`celery_python()` makes; it imports nothing from the arq project. The module's top level imports
the standard library only, so compare.py can import `celery_python` without Celery: the Celery app
is built on first access to `app` (the module's `__getattr__`), which is how the worker subprocess
(`python -m celery -A celery_drain:app worker`, this folder on PYTHONPATH, the Redis URL in
CELERY_DRAIN_REDIS_URL) finds it. The Redis at --redis-url is a scratch server, flushed (FLUSHDB)
before each measurement. Progress and the worker's output go to stderr; stdout gets one JSON line.

Figures:

1. drain throughput: `--jobs` no-op tasks queued with `noop.delay()`, then a worker started; the
   time counted is from the `worker_ready` signal (sent by the worker's main process once the pool
   is started, the broker connected, mingle done and the consumer on, just before the event loop
   takes its first message) to the `task_postrun` of the last task (each one INCRs a counter, the
   one that reaches `--jobs` notes the time). Interpreter start, imports, pool start-up and
   shutdown are not counted (compare.py's arq rows do count their worker's start-up and shutdown).
   jobs/s = jobs / that time;
2. Redis commands per job: the calls in `INFO commandstats` (less INFO's own), noted by the ready
   handler and by the last task's postrun handler, so over the same window as 1; less the
   instrumentation's own commands (one INCR per task and the SET of the ready note: the handlers
   use the result backend's connection, which the worker opens anyway, so no connection set-up is
   added); divided by jobs. It counts everything sent to Redis in that window, each command of a
   MULTI/EXEC on its own: with Celery 5.7 that was 14 per task (a BRPOP; the unacked bookkeeping,
   ZADD+HSET and ZREM+HDEL, each in a MULTI/EXEC; the result store, a GET, then SETEX+PUBLISH in
   a MULTI/EXEC) and a few more per pool process (its connection's HELLO, CLIENT SETINFO) or on a
   clock (restoring unacked messages). This script waits for the end on a file, not on Redis, so
   it adds nothing;
3. enqueue→start latency: `--latency-jobs` tasks sent one at a time to an idle running worker,
   with exponential random gaps (seeded, average `--latency-rate` per second); each task pushes
   `time.time()` at its start less the `time.time()` passed as its argument just before
   `.delay()` (which includes the client's SUBSCRIBE to the result channel before the send).

Settings: Celery's defaults (json, early acks, prefetch multiplier 4, mingle, gossip and heartbeats
on, task events off; prefork with one process per CPU) except:
- result_backend = the same Redis (Celery's default is none): results are stored, like arq keeps
  its results; task_ignore_result stays False, so each task's end is a SETEX of its meta (expiring
  after result_expires, 1 day) and a PUBLISH. Queueing discards the AsyncResults, so this script
  unsubscribes at once and nothing listens during the drain;
- broker_connection_retry_on_startup = True: what Celery does anyway, set so that 5.x versions
  that warn about the setting stay quiet;
- the worker runs with `--loglevel WARNING`, so log lines are not measured (as in compare.py).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Beside this file, standard library only (so the Celery venv and the worker can import it too).
from benchkit import commands_so_far, stop_process

CELERY_REQUIREMENT = "celery[redis]>=5.4"
REDIS_URL_VARIABLE = "CELERY_DRAIN_REDIS_URL"
JOBS_VARIABLE = "CELERY_DRAIN_JOBS"  # how many noop tasks end the drain
DONE_FILE_VARIABLE = "CELERY_DRAIN_DONE_FILE"  # touched by the last task's postrun handler
READY_KEY = "celery-drain:ready"  # {"at": time.time(), "calls": command calls} at worker_ready
FINISHED_KEY = "celery-drain:finished"  # the same at the last noop's postrun
DONE_KEY = "celery-drain:done"  # noop tasks ended so far
WAITS_KEY = "celery-drain:waits"  # latency tasks' waits in ms
NOOP = "noop"
RECORD_WAIT = "record_wait"
WORKER_STOP_SECONDS = 15
READY_TIMEOUT_SECONDS = 60
WorkerProcess = subprocess.Popen[bytes]


def say(message: str) -> None:
    print(f"celery_drain: {message}", file=sys.stderr, flush=True)


def celery_python(cache_dir: Path, environment: dict[str, str]) -> Path:
    """The Python of a venv with Celery in `cache_dir/celery-venv`, made on first use."""
    venv = cache_dir / "celery-venv"
    python = venv / "bin" / "python"
    installed = venv / "celery-installed"  # written last: a half-made venv is made again
    if not installed.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for command in (
            ["uv", "venv", "--quiet", "--allow-existing", "--python", version, str(venv)],
            ["uv", "pip", "install", "--quiet", "--python", str(python), CELERY_REQUIREMENT],
        ):
            subprocess.run(command, env=environment, stdout=sys.stderr, check=True)
        installed.write_text(CELERY_REQUIREMENT + "\n")
    return python


# --- the Celery app: built in the worker and in this script, never at import -----------------


def make_app(redis_url: str) -> Any:
    from celery import Celery

    app = Celery(Path(__file__).stem, broker=redis_url, backend=redis_url)
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name=NOOP)
    def noop() -> None:
        """The drained task: does nothing, so what is timed is the queue around it."""

    @app.task(name=RECORD_WAIT)
    def record_wait(enqueued_at: float) -> None:
        app.backend.client.rpush(WAITS_KEY, (time.time() - enqueued_at) * 1000)

    return app


def note(client: Any, key: str) -> None:
    """Store the time and the command calls so far: time first, then INFO, then one SET."""
    at = time.time()
    client.set(key, json.dumps({"at": at, "calls": commands_so_far(client.info("commandstats"))}))


def worker_app() -> Any:
    """The app as the worker subprocess builds it, with the two measuring signal handlers."""
    from celery.signals import task_postrun, worker_ready

    app = make_app(os.environ[REDIS_URL_VARIABLE])
    jobs = int(os.environ.get(JOBS_VARIABLE, "0"))
    done_file = os.environ.get(DONE_FILE_VARIABLE)

    def on_ready(**_: Any) -> None:
        note(app.backend.client, READY_KEY)

    def on_postrun(sender: Any = None, **_: Any) -> None:
        if sender is None or sender.name != NOOP:
            return
        # The backend's client: connected already, as the task's result was just stored.
        client = app.backend.client
        if client.incr(DONE_KEY) == jobs:
            note(client, FINISHED_KEY)
            if done_file:
                Path(done_file).touch()

    # weak=False: the handlers are local functions, which a weak reference would lose.
    worker_ready.connect(on_ready, weak=False)
    task_postrun.connect(on_postrun, weak=False)
    return app


def __getattr__(name: str) -> Any:
    """`app` for `celery -A celery_drain:app`, built on first access so imports stay stdlib."""
    if name == "app":
        globals()["app"] = built = worker_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the driver: runs in the Celery venv as a script ----------------------------------------


def start_worker(args: argparse.Namespace, extra: dict[str, str]) -> WorkerProcess:
    here = Path(__file__).resolve().parent
    python_path = os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, **extra, REDIS_URL_VARIABLE: args.redis_url}
    environment["PYTHONPATH"] = python_path
    command = [sys.executable, "-m", "celery", "-A", f"{Path(__file__).stem}:app", "worker"]
    command += ["--pool", args.pool, "--loglevel", "WARNING"]
    if args.pool == "prefork":
        command += ["--concurrency", str(args.concurrency)]
    # The worker's banner and logs go to our stderr: stdout is for the JSON line only.
    return subprocess.Popen(command, env=environment, stdout=sys.stderr, stderr=sys.stderr)


def wait_until(
    done: Callable[[], object], process: WorkerProcess, timeout: float, what: str
) -> None:
    """Poll `done()` every 5 ms; fail if the worker exits or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not done():
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.005)


def drain(app: Any, client: Any, args: argparse.Namespace) -> tuple[float, float]:
    """Queue the jobs, time a worker draining them: (jobs/s, Redis commands per job)."""
    client.flushdb()
    noop = app.tasks[NOOP]
    started = time.perf_counter()
    for _ in range(args.jobs):
        noop.delay()  # the AsyncResult is dropped at once, so its channel is unsubscribed
    say(f"  queued in {time.perf_counter() - started:.1f} s; worker starting")
    with tempfile.TemporaryDirectory(prefix="celery-drain-") as scratch:
        done_file = Path(scratch) / "done"
        extra = {JOBS_VARIABLE: str(args.jobs), DONE_FILE_VARIABLE: str(done_file)}
        worker = start_worker(args, extra)
        try:
            # A file, not Redis: polling Redis would add commands to the count.
            wait_until(done_file.exists, worker, READY_TIMEOUT_SECONDS + args.jobs / 10, "end")
        finally:
            stop_process(worker, WORKER_STOP_SECONDS)
    ready, finished = (json.loads(client.get(key)) for key in (READY_KEY, FINISHED_KEY))
    instrumentation = args.jobs + 1  # an INCR per task, the SET of the ready note
    calls = finished["calls"] - ready["calls"] - instrumentation
    return args.jobs / (finished["at"] - ready["at"]), calls / args.jobs


def latency(app: Any, client: Any, args: argparse.Namespace) -> list[float]:
    """Enqueue→start waits in ms of tasks sent with random gaps to an idle running worker."""
    client.flushdb()
    rng = random.Random(args.seed)
    gaps = [rng.expovariate(args.latency_rate) for _ in range(args.latency_jobs)]
    record_wait = app.tasks[RECORD_WAIT]
    worker = start_worker(args, {})
    try:
        wait_until(lambda: client.exists(READY_KEY), worker, READY_TIMEOUT_SECONDS, "ready")
        # Random gaps: a fixed one could lock in phase with whatever the worker does on a clock.
        due = time.monotonic()
        for gap in gaps:
            due += gap
            time.sleep(max(0.0, due - time.monotonic()))
            record_wait.delay(time.time())

        def all_recorded() -> bool:
            return client.llen(WAITS_KEY) == args.latency_jobs

        wait_until(all_recorded, worker, READY_TIMEOUT_SECONDS, "all latency tasks")
    finally:
        stop_process(worker, WORKER_STOP_SECONDS)
    return [float(wait) for wait in client.lrange(WAITS_KEY, 0, -1)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", required=True, help="a scratch Redis: it gets flushed")
    parser.add_argument("--jobs", type=int, default=5000, help="tasks per drain")
    parser.add_argument("--latency-jobs", type=int, default=67, help="latency tasks")
    parser.add_argument("--latency-rate", type=float, default=20, help="latency tasks per second")
    parser.add_argument("--seed", type=int, default=1, help="seed for the latency gaps")
    parser.add_argument("--pool", choices=("prefork", "solo"), default="prefork")
    parser.add_argument("--concurrency", type=int, help="prefork processes (default: CPUs)")
    args = parser.parse_args(argv)
    if args.pool == "solo":
        args.concurrency = 1  # solo runs tasks in the worker's own process, one at a time
    elif args.concurrency is None:
        args.concurrency = os.cpu_count() or 1  # Celery's own default
    return args


def main(argv: list[str] | None = None) -> int:
    import celery
    import kombu
    import redis

    args = parse_args(argv)
    app = make_app(args.redis_url)
    client = redis.Redis.from_url(args.redis_url)
    say(f"drain, {args.jobs} tasks, {args.pool} pool, concurrency {args.concurrency}")
    jobs_per_s, commands_per_job = drain(app, client, args)
    say(f"  {jobs_per_s:.0f} jobs/s, {commands_per_job:.2f} Redis commands per job")
    say(f"latency, {args.latency_jobs} tasks, average {args.latency_rate:g}/s")
    waits = latency(app, client, args)
    cuts = statistics.quantiles(waits, n=100, method="inclusive")
    report = {
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "pool": args.pool,
        "concurrency": args.concurrency,
        "drain_jobs_per_s": jobs_per_s,
        "commands_per_job": commands_per_job,
        "latency_ms": {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "count": len(waits)},
        "waits_ms": waits,  # for percentiles over several runs
    }
    say(f"  p50 {cuts[49]:.1f} ms, p95 {cuts[94]:.1f} ms, p99 {cuts[98]:.1f} ms")
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
