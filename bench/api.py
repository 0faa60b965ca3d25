"""Measure the API's `POST /examples` against FastAPI's own ceiling and an in-process enqueue.

    uv run python bench/api.py [--rounds 3] [--requests 6000] [--connections 16] [--seconds 10]

Bakes the default project into a scratch folder and `uv sync`s it (bytecode compiled, as
compare.py and the Dockerfile do), writes `src/<package>/bench_app.py` into that copy (never into
the template): its factory `create_bench_app()` calls the project's `create_app()` and adds
`POST /bare`, which takes the same validated body as `POST /examples` (`ExampleRequest`) and
answers 202 with the same response model at once, without Redis or any other I/O. It then copies
this file and benchkit.py into the project and runs it there with `--inside`, in the project's
own venv: that half starts the project's `LocalRedisServer` on a free loopback port (no worker:
the queue only grows, and Redis is flushed before each measurement) and one server,

    python -m uvicorn <package>.bench_app:create_bench_app --factory --host 127.0.0.1 --port N
        --no-access-log --log-level warning

(uvicorn's defaults otherwise: uvloop and httptools, as `uvicorn[standard]` installs them), with
`LOG_LEVEL=WARNING`, so the cost of log lines is not measured. Three things are measured:

- `POST /examples` and `POST /bare`, each driven by a load generator in a process of its own
  (this file with `--load`, so it never shares the server's event loop): `--connections` HTTP/1.1
  keep-alive connections over raw sockets (asyncio protocols on uvloop), each sending its next
  request as soon as the last response is read (its `Content-Length` body included), until
  `--requests` requests have been sent or `--seconds` have passed, whichever comes first; every
  response must be a 202. requests/s = responses / time from the first request to the last
  response; latency is per request, from its write to its whole response;
- `enqueue_task("example_task", message=...)` in process (the inside half, on uvloop too):
  `--connections` coroutines, each awaiting one call after another, with the same bounds: the
  same work with no HTTP, at the same concurrency; the latency is per call;
- CPU per request, from the kernel's counters: the server process (for the in-process row, the
  calling process), Redis (`INFO cpu`), and the load generator.

After a warm-up of each (a fifth of `--requests`), `--rounds` interleaved rounds run all three,
in an order rotated by one per round. The table shows medians over rounds (of each round's rate
and of each round's percentiles); a ratio is the median of the per-round ratios, which are
listed too. POST /examples / POST /bare has a target of at least 0.6. After each run the queue's
length is checked against the count of 202s (or calls). Progress goes to stderr; a machine line
and the Markdown tables go to stdout. On a machine with few CPUs the server, Redis and the load
generator compete for them: the machine line gives the count.
"""

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

from benchkit import (
    bake,
    paired_ratios,
    percentile,
    rotated,
    run_script_inside,
    stop_process,
    sync,
    tool_environment,
)

EXAMPLES = "POST /examples"
BARE = "POST /bare"
IN_PROCESS = "enqueue_task in process"
MEASURES = (EXAMPLES, BARE, IN_PROCESS)
PATHS = {EXAMPLES: "/examples", BARE: "/bare"}
MESSAGE = "hello"
TARGET = 0.6  # POST /examples / POST /bare, at least
WARMUP_SHARE = 5  # warm-up: a fifth of --requests
SERVER_START_SECONDS = 20
SERVER_STOP_SECONDS = 10
# A load still running this long past --seconds is stuck: the run fails.
DRAIN_MARGIN_SECONDS = 30
RUN_TIMEOUT_SECONDS = 600
# The options the outside half hands on to the inside one.
SIZES = ("rounds", "requests", "connections", "seconds")

BENCH_MODULE = "bench_app"
BENCH_APP = '''"""The app bench/api.py serves: the project's `create_app()` and `POST /bare`.

Written by the benchmark into its scratch copy of the project, never into the template.
"""

from fastapi import FastAPI

from .api.app import create_app
from .api.examples import ExampleRequest
from .api.job_requests import JobAccepted


def create_bench_app() -> FastAPI:
    app = create_app()

    @app.post("/bare", status_code=202)
    async def bare(body: ExampleRequest) -> JobAccepted:
        """The body POST /examples takes, validated the same way, and an answer at once."""
        return JobAccepted(job_id="bare", status_url="/jobs/bare")

    return app
'''


def say(message: str) -> None:
    print(f"api: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--requests", type=int, default=6000, help="requests per measurement")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10, help="time cap per measurement")
    parser.add_argument("--inside", metavar="PACKAGE", help=argparse.SUPPRESS)
    # Set by the inside half: run as the load generator, POST PATH on 127.0.0.1:PORT.
    parser.add_argument("--load", metavar="PORT", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.rounds, args.requests, args.connections) < 1 or args.seconds <= 0:
        parser.error("--rounds, --requests, --connections and --seconds must be positive")
    return args


# --- outside: bake, sync, run this file in the project, print the table ----------------------


def write_bench_app(project: Path) -> None:
    """`src/<package>/bench_app.py` in the scratch project: its app with `POST /bare`."""
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    (project / "src" / package / f"{BENCH_MODULE}.py").write_text(BENCH_APP)


def run_inside(project: Path, args: argparse.Namespace, environment: dict[str, str]) -> Any:
    """Run this file in the project with `--inside`, with these options; return its JSON."""
    arguments = [f"--{name}={getattr(args, name)}" for name in SIZES]
    return run_script_inside(project, __file__, arguments, environment, RUN_TIMEOUT_SECONDS)


def median_of(rows: list[dict], name: str) -> float | None:
    """The median of `name` over the rounds' rows; None where no row has it."""
    values = [row[name] for row in rows if row.get(name) is not None]
    return statistics.median(values) if values else None


def micros(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(report: dict[str, Any], elapsed: float) -> None:
    meta, runs = report["meta"], report["runs"]
    print(
        f"uvicorn {meta['uvicorn']} ({meta['loop']}, {meta['http']}), FastAPI {meta['fastapi']}, "
        f"Starlette {meta['starlette']}, pydantic {meta['pydantic']}, arq {meta['arq']}, "
        f"redis-server {meta['redis']}, Python {meta['python']}, {meta['cpus']} CPUs "
        f"({meta['machine']}), shared by the server, Redis and the load generator"
    )
    print(
        f"one uvicorn process; {meta['connections']} keep-alive connections (in process: "
        f"{meta['connections']} concurrent callers); up to {meta['requests']} requests or "
        f"{meta['seconds']:g} s per measurement; {meta['rounds']} interleaved rounds after a "
        f"warm-up; medians over rounds"
    )
    print()
    print(
        "| measured | requests/s (min-max) | p50 ms | p99 ms | process CPU µs/request "
        "| Redis CPU µs/request | load generator CPU µs/request |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label in MEASURES:
        rows = runs[label]
        rates = [row["rate"] for row in rows]
        print(
            f"| {label} | {statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f}) "
            f"| {median_of(rows, 'p50_ms'):.2f} | {median_of(rows, 'p99_ms'):.2f} "
            f"| {micros(median_of(rows, 'process_cpu_us'))} "
            f"| {micros(median_of(rows, 'redis_cpu_us'))} "
            f"| {micros(median_of(rows, 'client_cpu_us'))} |"
        )
    print()
    print("| ratio of requests/s | median | per round | target | verdict |")
    print("|---|---:|---|---:|---|")
    for top, bottom, target in ((EXAMPLES, BARE, TARGET), (EXAMPLES, IN_PROCESS, None)):
        ratios = paired_ratios([r["rate"] for r in runs[top]], [r["rate"] for r in runs[bottom]])
        ratio = statistics.median(ratios)
        per_round = ", ".join(f"{value:.2f}" for value in ratios)
        target_text = "-" if target is None else f"≥ {target:g}"
        outcome = "-" if target is None else ("meets" if ratio >= target else "misses")
        print(f"| {top} / {bottom} | {ratio:.2f} | {per_round} | {target_text} | {outcome} |")
    print()
    print(f"total run time {elapsed:.0f} s")


def outside(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    environment = tool_environment()
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-api-") as scratch:
        project = bake(scratch)
        say(f"baked {project}; uv sync")
        sync(project, environment)
        write_bench_app(project)
        report = run_inside(project, args, environment)
    print_table(report, time.perf_counter() - started)
    return 0


# --- the load generator: this file with --load, in a process of its own -----------------------


class Load:
    """Requests on `connections` keep-alive connections, each sent when the last one's answer
    is in, until `requests` are sent or `seconds` have passed."""

    def __init__(self, request: bytes, requests: int, seconds: float) -> None:
        self.request = request
        self.requests = requests
        self.seconds = seconds
        self.sent = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.deadline = 0.0
        self.last = 0.0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, connections: list["Connection"]) -> float:
        started = time.perf_counter()
        self.deadline = started + self.seconds
        for connection in connections:
            self.next(connection)
        return started

    def next(self, connection: "Connection") -> None:
        """Send `connection` its next request, or leave it idle once the load is over."""
        if self.sent < self.requests and time.perf_counter() < self.deadline:
            self.sent += 1
            connection.send()
        elif len(self.latencies) == self.sent and not self.finished.done():
            self.finished.set_result(None)

    def answered(self, connection: "Connection", status: int, sent_at: float) -> None:
        self.last = time.perf_counter()
        self.latencies.append(self.last - sent_at)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.next(connection)

    def fail(self, reason: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError(reason))


class Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, reads its answer (head and a
    `Content-Length` body), and tells the load."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.load.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            self.buffer = buffer
            return
        head = buffer[:head_end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.load.fail(f"an answer without Content-Length: {bytes(head)!r}")
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end >= 0 else None])
        end = head_end + 4 + length
        if len(buffer) < end:
            self.buffer = buffer
            return
        # One request at a time on a connection: nothing can follow its answer.
        self.buffer = b""
        self.load.answered(self, int(buffer[9:12]), self.sent_at)

    def connection_lost(self, error: Exception | None) -> None:
        # After the load is over, this is the load generator closing its own connections.
        self.load.fail(f"the server closed a connection ({error or 'no error'})")


def http_request(method: str, path: str, port: int, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def generate_load(args: argparse.Namespace) -> dict[str, Any]:
    """Drive POST `args.path` on 127.0.0.1:`args.load`; what was answered, how fast, and the
    CPU this process spent doing it."""
    body = json.dumps({"message": MESSAGE}).encode()
    load = Load(http_request("POST", args.path, args.load, body), args.requests, args.seconds)
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(args.connections):
        _, connection = await loop.create_connection(
            lambda: Connection(load), "127.0.0.1", args.load
        )
        connections.append(connection)
    cpu = time.process_time()
    started = load.start(connections)
    try:
        await asyncio.wait_for(load.finished, args.seconds + DRAIN_MARGIN_SECONDS)
    finally:
        for connection in connections:
            assert connection.transport is not None
            connection.transport.close()
    cpu = time.process_time() - cpu
    done = len(load.latencies)
    return {
        "done": done,
        "seconds": load.last - started,
        "statuses": load.statuses,
        "latencies_ms": summary_ms(load.latencies),
        "cpu_s": cpu,
    }


def summary_ms(latencies: list[float]) -> dict[str, float]:
    values = [seconds * 1000 for seconds in latencies]
    if len(values) < 2:
        values = values * 2  # one value is its own percentiles
    return {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99)}


# --- inside: runs in the baked project's venv --------------------------------------------------


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of process `pid` so far, from /proc; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu(pool: Any) -> float:
    info = await pool.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def http_status(port: int, path: str) -> int | None:
    """The status of GET `path` on 127.0.0.1:`port`, or None while nothing answers there."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(http_request("GET", path, port))
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(package: str, port: int) -> AsyncIterator["subprocess.Popen[bytes]"]:
    """One uvicorn process serving the bench app on 127.0.0.1:`port`, until exit."""
    app = f"{package}.{BENCH_MODULE}:create_bench_app"
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=sys.stderr)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while await http_status(port, "/health/live") != 200:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited {process.returncode} before it answered")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer within {SERVER_START_SECONDS} s")
            await asyncio.sleep(0.05)
        yield process
    finally:
        stop_process(process, SERVER_STOP_SECONDS)


async def over_http(
    port: int, path: str, args: argparse.Namespace, requests: int
) -> dict[str, Any]:
    """One run of the load generator (this file with `--load`) against `path`."""
    command = [sys.executable, __file__, f"--load={port}", f"--path={path}"]
    command += [f"--requests={requests}", f"--connections={args.connections}"]
    command += [f"--seconds={args.seconds}"]
    run = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    try:
        output, _ = await asyncio.wait_for(
            run.communicate(), args.seconds + DRAIN_MARGIN_SECONDS * 2
        )
    finally:
        if run.returncode is None:
            run.kill()
            await run.wait()
    if run.returncode != 0:
        raise RuntimeError(f"the load generator exited {run.returncode}")
    report = json.loads(output.decode().splitlines()[-1])
    statuses = {int(status): count for status, count in report["statuses"].items()}
    if set(statuses) != {202}:
        raise RuntimeError(f"POST {path} answered {statuses} (status: count), not only 202")
    return {
        "done": report["done"],
        "rate": report["done"] / report["seconds"],
        **report["latencies_ms"],
        "client_cpu_us": report["cpu_s"] * 1e6 / report["done"],
    }


async def in_process(
    enqueue: Callable[[], Awaitable[Any]], args: argparse.Namespace, requests: int
) -> dict[str, Any]:
    """`args.connections` coroutines awaiting `enqueue()` one call after another, bounded like
    the load generator."""
    latencies: list[float] = []
    sent = 0
    deadline = time.perf_counter() + args.seconds

    async def caller() -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            called = time.perf_counter()
            await enqueue()
            latencies.append(time.perf_counter() - called)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(args.connections)))
    seconds = time.perf_counter() - started
    return {"done": len(latencies), "rate": len(latencies) / seconds, **summary_ms(latencies)}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import arq

    package = args.inside
    os.environ["LOG_LEVEL"] = "WARNING"
    config = importlib.import_module(f"{package}.config")
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    queue = importlib.import_module(f"{package}.queue")
    with redis_server.LocalRedisServer() as server:
        say(f"Redis at {server.url}")
        os.environ["REDIS_URL"] = server.url
        config.get_settings.cache_clear()
        queue_name = config.get_settings().queue_name
        pool = await queue.get_task_pool()
        port = redis_server.free_port()
        runs: dict[str, list[dict]] = {label: [] for label in MEASURES}

        async def run(label: str, requests: int, server_pid: int) -> dict[str, Any]:
            await pool.flushdb()
            redis_before = await redis_cpu(pool)
            if label == IN_PROCESS:
                own_before = time.process_time()
                result = await in_process(
                    lambda: queue.enqueue_task("example_task", message=MESSAGE), args, requests
                )
                process_seconds: float | None = time.process_time() - own_before
            else:
                server_before = process_cpu(server_pid)
                result = await over_http(port, PATHS[label], args, requests)
                server_after = process_cpu(server_pid)
                process_seconds = (
                    None
                    if server_before is None or server_after is None
                    else server_after - server_before
                )
            redis_seconds = await redis_cpu(pool) - redis_before
            queued = await pool.zcard(queue_name)
            expected = 0 if label == BARE else result["done"]
            if queued != expected:
                raise RuntimeError(f"{label}: {queued} jobs queued, {expected} expected")
            done = result["done"]
            return {
                **result,
                "process_cpu_us": None if process_seconds is None else process_seconds * 1e6 / done,
                "redis_cpu_us": redis_seconds * 1e6 / done,
            }

        try:
            async with serving(package, port) as uvicorn_process:
                say(f"uvicorn at http://127.0.0.1:{port}, pid {uvicorn_process.pid}")
                warmup = max(1, args.requests // WARMUP_SHARE)
                for label in MEASURES:
                    got = await run(label, warmup, uvicorn_process.pid)
                    say(f"warm-up, {label}: {got['rate']:.0f}/s")
                for index in range(args.rounds):
                    say(f"round {index + 1} of {args.rounds}")
                    for label in rotated(MEASURES, index):
                        got = await run(label, args.requests, uvicorn_process.pid)
                        say(
                            f"  {label}: {got['rate']:.0f}/s, p50 {got['p50_ms']:.2f} ms, "
                            f"p99 {got['p99_ms']:.2f} ms"
                        )
                        runs[label].append(got)
            info = await pool.info("server")
        finally:
            await queue.close_task_pool()
    meta = {
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
        "starlette": version("starlette"),
        "pydantic": version("pydantic"),
        "arq": arq.VERSION,
        "redis": info["redis_version"],
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "rounds": args.rounds,
        "requests": args.requests,
        "connections": args.connections,
        "seconds": args.seconds,
    }
    return {"meta": meta, "runs": runs}


def run_on_uvloop(main: Awaitable[Any]) -> Any:
    """Run `main` on uvloop where it is installed, as uvicorn runs the server, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def inside(args: argparse.Namespace) -> int:
    # arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix, and noisy.
    warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
    report = run_on_uvloop(generate_load(args) if args.load else measure(args))
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return inside(args) if args.inside or args.load else outside(args)


if __name__ == "__main__":
    sys.exit(main())
