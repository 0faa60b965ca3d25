"""Drain throughput, Redis commands per job, idle cost and enqueue→start latency of other Redis
queues: SAQ, streaq, taskiq (its list broker) and Celery, measured as compare.py measures arq.

    <peer venv>/bin/python bench/peer_drain.py --queue saq|streaq|taskiq|celery
        --redis-url redis://127.0.0.1:PORT/0 [--workers 1,2,4] [--io-workers 1]
        [--noop-jobs 5000] [--io-jobs 2000] [--idle-seconds 10] [--latency-jobs 67]
        [--latency-rate 20] [--seed 1] [--concurrency 10]

compare.py's `--peers` (and, with `--celery`, Celery's rows in the same tables). Each queue needs
a venv of its own (Celery's redis-py is newer than arq allows, and the others pin theirs too),
which `peer_python()` makes with uv; this file imports nothing from the arq project, and its top
level imports the standard library only, so compare.py can import `peer_python` anywhere. The
Redis at --redis-url is a scratch server, flushed (FLUSHDB) before each measurement. Progress
and the workers' output go to stderr; stdout gets one JSON line.

The method is benchkit's, the same as compare.py's `--workers` rows for the generated worker and
plain arq (benchkit.py, "queues measured in worker processes"):

- worker processes: this file run again with `--slots` in the same venv, one per worker, each
  building the queue's own worker with `--concurrency` slots (10: arq's max_jobs, the generated
  project's default) and the three job functions below; it says "ready", the measuring side
  tells every process "go" at once, and each job notes its end in a shared file, so the end of
  a drain is learned without a Redis command;
- jobs: `noop` does nothing, `io` awaits `asyncio.sleep(0.01)` (Celery: `time.sleep(0.01)` in one
  of its threads), `stamp(enqueued_at)` notes time.time() - enqueued_at as its first act, the
  argument being time.time() just before the client's enqueue call (that call is in the wait);
1. drain: N jobs queued (not timed), then K worker processes started; jobs/s = N / the time from
   "go" to the last job's end (the run call's own start-up, such as connecting, is in; importing,
   building the worker and connecting where the queue allows it before "ready" are not);
   `--io-jobs` IO jobs for each K in `--io-workers`, `--noop-jobs` no-op jobs for each K in
   `--workers`;
2. Redis commands per job: `INFO commandstats` calls (less INFO's own) from before the worker
   processes start to after they exit, divided by N: everything the workers send, start-up and
   shutdown in, each command of a MULTI or a pipeline on its own, a script as one command;
3. idle worker: one worker process; one `stamp` job (a warm-up, waited for), 1 s to settle, then
   its Redis commands per second over `--idle-seconds` with nothing queued; at the end,
   `CLIENT LIST` tells which of its connections sit blocked (and in which command) or subscribed;
4. enqueue→start latency: then, to the same worker, `--latency-jobs` `stamp` jobs one at a time,
   with exponential random gaps (average `--latency-rate` per second, seeded by `--seed`).

Each queue runs with its defaults except the concurrency, and these:
- SAQ (`saq[redis]`): `Worker(queue, functions, concurrency=10)`, jobs queued with
  `queue.enqueue(name, **kwargs)`; results kept (its default job ttl, 600 s);
- streaq: `Worker(redis_url, concurrency=10)` with `@worker.task(name=...)`, jobs queued with
  `worker.enqueue_unsafe(name, ...)` (a pipeline of `enqueue_many` for the drains); results kept
  (its default ttl, 5 minutes); streaq's own default concurrency is 16;
- taskiq with taskiq-redis's `ListQueueBroker` (LPUSH, one BRPOP per job, no acknowledgement)
  and no result backend, so no result is kept; `Receiver(max_async_tasks=10)`, what
  `taskiq worker --max-async-tasks 10` runs (its default is 100), on asyncio's loop (the CLI
  takes uvloop when it is installed: it is not, here, nor for any other queue). The broker gets
  `socket_timeout=None`: redis-py 8.1 ends a read after 5 s by default, which ends the broker's
  BRPOP (it waits without a timeout) with an error that stops the worker after 5 s idle;
- Celery with Redis as broker and result backend (results kept, as celery_drain.py does), its
  `threads` pool with 10 threads: one process with 10 slots, like the others (its solo pool runs
  one job at a time; prefork would be 10 processes). The worker is started with `worker_main`,
  mingle, gossip and heartbeats on (Celery's defaults); "ready" is said from its `worker_ready`
  signal, which waits for "go" before the worker takes its first message.
"""

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Beside this file, standard library only (so every peer's venv can import it).
from benchkit import (
    IO,
    IO_SECONDS,
    NOOP,
    STAMP,
    JobRecorder,
    QueueDriver,
    drain_in_processes,
    idle_and_latency,
    latency_gaps,
    protocol_output,
    run_worker_process,
)

QUEUE_NAME = "bench"
ENQUEUE_BATCH = 100
DRAIN_TIMEOUT_SECONDS = 600
# What each queue's venv gets, and the distributions whose versions the report names.
# Where a queue talks to Redis through redis-py, with hiredis, as the arq project does
# (redis[hiredis]); streaq uses coredis.
REQUIREMENTS = {
    "saq": ("saq[redis,hiredis]>=0.26", "typing-extensions"),  # saq 0.26 imports it, undeclared
    "streaq": ("streaq>=7",),
    "taskiq": ("taskiq>=0.13", "taskiq-redis>=1.2", "redis[hiredis]"),
    "celery": ("celery[redis]>=5.4", "redis[hiredis]"),
}
DISTRIBUTIONS = {
    "saq": ("saq", "redis", "hiredis"),
    "streaq": ("streaq", "coredis"),
    "taskiq": ("taskiq", "taskiq-redis", "redis", "hiredis"),
    "celery": ("celery", "kombu", "redis", "hiredis"),
}
# Set in a worker process: the jobs report to it.
RECORDER: JobRecorder | None = None


def say(message: str) -> None:
    print(f"peer_drain: {message}", file=sys.stderr, flush=True)


def peer_python(cache_dir: Path, environment: dict[str, str], queue: str, python: str) -> Path:
    """The Python of a venv with `queue` in `cache_dir/<queue>-peer-venv`, made with uv on first
    use, with Python `python` (a version such as "3.12.1", the arq project's: the same for all)."""
    venv = cache_dir / f"{queue}-peer-venv"
    interpreter = venv / "bin" / "python"
    installed = venv / "peer-installed"  # written last: a half-made venv is made again
    if not installed.exists():
        for command in (
            ["uv", "venv", "--quiet", "--allow-existing", "--python", python, str(venv)],
            ["uv", "pip", "install", "--quiet", "--python", str(interpreter), *REQUIREMENTS[queue]],
        ):
            subprocess.run(command, env=environment, stdout=sys.stderr, check=True)
        installed.write_text("\n".join(REQUIREMENTS[queue]) + "\n")
    return interpreter


def recorder() -> JobRecorder:
    assert RECORDER is not None, "a job ran outside a worker process"
    return RECORDER


async def enqueue_batches(enqueue: Callable[[], Awaitable[Any]], count: int) -> None:
    for first in range(0, count, ENQUEUE_BATCH):
        await asyncio.gather(*(enqueue() for _ in range(min(ENQUEUE_BATCH, count - first))))


# --- the queues: a client for the measuring side, a worker for the worker processes ---------
#
# Each class: `open(url)` / `close()` the client; `enqueue(kind, count)`, `enqueue_stamp()`;
# `worker(url, concurrency)` builds a worker and returns (start, stop) for run_worker_process.

Worker = tuple[Callable[[], Awaitable[Any]], Callable[["asyncio.Future[Any]"], Awaitable[Any]]]


class Saq:
    async def open(self, url: str) -> None:
        from saq import Queue

        self.queue = Queue.from_url(url, name=QUEUE_NAME)
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue(self, kind: str, count: int) -> None:
        await enqueue_batches(lambda: self.queue.enqueue(kind), count)

    async def enqueue_stamp(self) -> None:
        await self.queue.enqueue(STAMP, enqueued_at=time.time())

    async def worker(self, url: str, concurrency: int) -> Worker:
        from saq import Queue
        from saq import Worker as SaqWorker

        async def noop(ctx: Any) -> None:
            recorder().ended()

        async def io(ctx: Any) -> None:
            await asyncio.sleep(IO_SECONDS)
            recorder().ended()

        async def stamp(ctx: Any, *, enqueued_at: float) -> None:
            recorder().started(enqueued_at)
            recorder().ended()

        # Its stop cancels the slots' waits with a warning each time: noise here.
        logging.getLogger("saq").setLevel(logging.ERROR)
        queue = Queue.from_url(url, name=QUEUE_NAME)
        await queue.connect()
        functions = [(NOOP, noop), (IO, io), (STAMP, stamp)]
        worker = SaqWorker(queue, functions, concurrency=concurrency)  # type: ignore[arg-type]

        async def stop(running: "asyncio.Future[Any]") -> None:
            worker.event.set()  # what its SIGTERM handler does
            await running
            await queue.disconnect()

        return worker.start, stop


class Streaq:
    async def open(self, url: str) -> None:
        from streaq import Worker as StreaqWorker

        self.client = StreaqWorker(redis_url=url, queue_name=QUEUE_NAME)
        self.context = self.client.__asynccontextmanager__()
        await self.context.__aenter__()

    async def close(self) -> None:
        await self.context.__aexit__(None, None, None)

    async def enqueue(self, kind: str, count: int) -> None:
        for first in range(0, count, 1000):
            tasks = [self.client.enqueue_unsafe(kind) for _ in range(min(1000, count - first))]
            await self.client.enqueue_many(tasks)

    async def enqueue_stamp(self) -> None:
        await self.client.enqueue_unsafe(STAMP, time.time())

    async def worker(self, url: str, concurrency: int) -> Worker:
        from streaq import Worker as StreaqWorker

        worker = StreaqWorker(redis_url=url, queue_name=QUEUE_NAME, concurrency=concurrency)

        @worker.task(name=NOOP)
        async def noop() -> None:
            recorder().ended()

        @worker.task(name=IO)
        async def io() -> None:
            await asyncio.sleep(IO_SECONDS)
            recorder().ended()

        @worker.task(name=STAMP)
        async def stamp(enqueued_at: float) -> None:
            recorder().started(enqueued_at)
            recorder().ended()

        async def stop(running: "asyncio.Future[Any]") -> None:
            running.cancel()  # what its signal handler does: cancel the worker's task group
            with contextlib.suppress(asyncio.CancelledError):
                await running

        return worker.run_async, stop


class Taskiq:
    def broker(self, url: str) -> Any:
        from taskiq_redis import ListQueueBroker

        # socket_timeout=None: redis-py 8.1 ends any read after 5 s by default, and so the
        # broker's BRPOP (no timeout) with an error that stops the receiver after 5 s idle.
        broker = ListQueueBroker(url, queue_name=QUEUE_NAME, socket_timeout=None)

        async def noop() -> None:
            recorder().ended()

        async def io() -> None:
            await asyncio.sleep(IO_SECONDS)
            recorder().ended()

        async def stamp(enqueued_at: float) -> None:
            recorder().started(enqueued_at)
            recorder().ended()

        self.tasks = {
            name: broker.register_task(function, task_name=name)
            for name, function in ((NOOP, noop), (IO, io), (STAMP, stamp))
        }
        return broker

    async def open(self, url: str) -> None:
        self.client = self.broker(url)
        await self.client.startup()

    async def close(self) -> None:
        await self.client.shutdown()

    async def enqueue(self, kind: str, count: int) -> None:
        await enqueue_batches(self.tasks[kind].kiq, count)

    async def enqueue_stamp(self) -> None:
        await self.tasks[STAMP].kiq(time.time())

    async def worker(self, url: str, concurrency: int) -> Worker:
        from concurrent.futures import ThreadPoolExecutor

        from taskiq.receiver import Receiver

        broker = self.broker(url)
        broker.is_worker_process = True  # as `taskiq worker` sets it
        await broker.startup()
        receiver = Receiver(
            broker, executor=ThreadPoolExecutor(), max_async_tasks=concurrency, run_startup=False
        )
        finish = asyncio.Event()

        async def stop(running: "asyncio.Future[Any]") -> None:
            finish.set()  # what `taskiq worker` does on SIGTERM
            await running
            await broker.shutdown()

        return lambda: receiver.listen(finish), stop


class Celery:
    """Celery's client is synchronous: its calls block the measuring side's loop, briefly."""

    def app(self, url: str) -> Any:
        from celery import Celery as CeleryApp

        app = CeleryApp("peer_drain", broker=url, backend=url)
        app.conf.broker_connection_retry_on_startup = True
        app.conf.task_default_queue = QUEUE_NAME

        @app.task(name=NOOP)
        def noop() -> None:
            recorder().ended()

        @app.task(name=IO)
        def io() -> None:
            time.sleep(IO_SECONDS)
            recorder().ended()

        @app.task(name=STAMP)
        def stamp(enqueued_at: float) -> None:
            recorder().started(enqueued_at)
            recorder().ended()

        return app

    async def open(self, url: str) -> None:
        self.client = self.app(url)

    async def close(self) -> None:
        self.client.close()

    async def enqueue(self, kind: str, count: int) -> None:
        task = self.client.tasks[kind]
        for _ in range(count):
            task.delay()  # the AsyncResult is dropped at once, so its channel is unsubscribed

    async def enqueue_stamp(self) -> None:
        self.client.tasks[STAMP].delay(time.time())

    def run_worker(self, url: str, concurrency: int, slot: int) -> None:
        """The whole worker process: Celery's worker runs in this thread, not in a loop."""
        from celery.exceptions import SecurityWarning
        from celery.signals import worker_ready

        warnings.simplefilter("ignore", SecurityWarning)  # run as root in a container
        app = self.app(url)
        tell = protocol_output()

        def on_ready(**_: Any) -> None:
            tell("ready")
            if sys.stdin.readline().strip() != "go":
                os._exit(1)

            def stop_on_line() -> None:
                sys.stdin.readline()
                os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown

            threading.Thread(target=stop_on_line, daemon=True).start()

        worker_ready.connect(on_ready, weak=False)
        argv = ["--quiet", "worker", "--pool", "threads", "--concurrency", str(concurrency)]
        argv += ["--loglevel", "WARNING", "--hostname", f"bench{slot}.{os.getpid()}@%h"]
        try:
            app.worker_main(argv)
        except SystemExit as exit:
            if exit.code:
                raise
        done = recorder().done
        tell(json.dumps({"done": done, "waits_ms": recorder().waits_ms}))


QUEUES: dict[str, Callable[[], Any]] = {
    "saq": Saq,
    "streaq": Streaq,
    "taskiq": Taskiq,
    "celery": Celery,
}


# --- the two sides ----------------------------------------------------------------------------


def worker_process(args: argparse.Namespace) -> int:
    global RECORDER
    RECORDER = JobRecorder(args.slots, args.slot)
    queue = QUEUES[args.queue]()
    if args.queue == "celery":
        queue.run_worker(args.redis_url, args.concurrency, args.slot)
        return 0

    async def run() -> None:
        start, stop = await queue.worker(args.redis_url, args.concurrency)
        assert RECORDER is not None
        await run_worker_process(start, stop, RECORDER)

    asyncio.run(run())
    return 0


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    queue = QUEUES[args.queue]()
    await queue.open(args.redis_url)
    command = [sys.executable, str(Path(__file__).resolve()), "--queue", args.queue]
    command += ["--redis-url", args.redis_url, "--concurrency", str(args.concurrency)]
    driver = QueueDriver(command, queue.enqueue, queue.enqueue_stamp)
    drains: dict[str, dict[str, float]] = {}
    try:
        for kind, jobs, counts in (
            (IO, args.io_jobs, args.io_workers),
            (NOOP, args.noop_jobs, args.workers),
        ):
            for processes in counts:
                drained = await drain_in_processes(
                    args.redis_url, driver, kind, jobs, processes, DRAIN_TIMEOUT_SECONDS
                )
                rate = drained["jobs_per_s"]
                say(f"  {args.queue}, {jobs} {kind} jobs, {processes} processes: {rate:.0f} jobs/s")
                drains[f"{kind}:{processes}"] = drained
        gaps = latency_gaps(args.latency_jobs, args.latency_rate, args.seed)
        served = await idle_and_latency(
            args.redis_url, driver, args.idle_seconds, gaps, DRAIN_TIMEOUT_SECONDS
        )
        say(f"  {args.queue}, idle {served['idle_commands_per_s']:.1f} commands/s")
    finally:
        await queue.close()
    versions = {name: importlib.metadata.version(name) for name in DISTRIBUTIONS[args.queue]}
    return {
        "queue": args.queue,
        "versions": versions,
        "concurrency": args.concurrency,
        "drains": drains,
        **served,
    }


def counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queue", choices=tuple(QUEUES), required=True)
    parser.add_argument("--redis-url", required=True, help="a scratch Redis: it gets flushed")
    parser.add_argument("--workers", type=counts, default=[1, 2, 4], help="no-op drains' processes")
    parser.add_argument("--io-workers", type=counts, default=[1], help="IO drains' processes")
    parser.add_argument("--noop-jobs", type=int, default=5000, help="no-op jobs per drain")
    parser.add_argument("--io-jobs", type=int, default=2000, help="IO jobs per drain")
    parser.add_argument("--idle-seconds", type=float, default=10, help="the idle window")
    parser.add_argument("--latency-jobs", type=int, default=67, help="latency jobs")
    parser.add_argument("--latency-rate", type=float, default=20, help="latency jobs per second")
    parser.add_argument("--seed", type=int, default=1, help="seed for the latency gaps")
    parser.add_argument("--concurrency", type=int, default=10, help="slots per worker process")
    # Set for a worker process, by benchkit's WorkerProcesses.
    parser.add_argument("--slots", help=argparse.SUPPRESS)
    parser.add_argument("--slot", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.slots:
        return worker_process(args)
    say(f"{args.queue}: drains, {args.idle_seconds:g} s idle, {args.latency_jobs} latency jobs")
    report = asyncio.run(measure(args))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
