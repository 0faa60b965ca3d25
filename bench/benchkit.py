"""What the benchmarks share: baking the project, running a script inside it, stopping worker
processes, counting Redis commands, interleaving rounds, and the worker and result helpers the
measuring halves use; and, at the end, how compare.py's `--workers` and peer_drain.py measure a
queue in worker processes of its own, the same way for arq and for the other queues.

`poll_delay.py`, `compare.py` and `api.py` run in two halves: outside (the template's
environment) they bake the default project and `uv sync` it, then `run_script_inside` copies the
script and this module (and, for compare.py, its compare_*.py modules) into the project and runs
the script there with `--inside`, in the project's own venv.
`celery_drain.py` and `peer_drain.py` import it in the other queues' venvs, so its top level
imports the standard library only.
"""

import asyncio
import contextlib
import io
import json
import mmap
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


def tool_environment() -> dict[str, str]:
    """uv must use installed interpreters; pyenv's shims need every version listed to show them.

    Settings the project would read from the environment are dropped: the run sets its own.
    """
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)
    # Start-up times should be those of an installed project, which reads cached bytecode.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    project_settings = ("REDIS_URL", "QUEUE_PREFIX", "QUEUE_NAME", "QUEUES", "LOG_LEVEL")
    for name in list(environment):
        if name in project_settings or name.startswith("WORKER_"):
            del environment[name]
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if versions.is_dir():
        environment["PYENV_VERSION"] = ":".join(sorted(p.name for p in versions.iterdir()))
    return environment


@contextlib.contextmanager
def stdout_redirected(target_fd: int) -> Iterator[None]:
    """Point file descriptor 1 at `target_fd` for a while: the hooks print "next steps" from
    subprocesses, which `sys.stdout` alone would not catch."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(target_fd, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def bake(output_dir: str, template: Path = TEMPLATE_ROOT) -> Path:
    """The default project of `template` (this one by default), baked into `output_dir`; the
    hooks' output goes to stderr."""
    from cookiecutter.main import cookiecutter

    with stdout_redirected(sys.stderr.fileno()):
        return Path(cookiecutter(str(template), no_input=True, output_dir=output_dir))


def template_at(revision: str, into: str) -> Path:
    """The template as committed at `revision` (a git revision of this repository), unpacked
    into `into`: what a benchmark measures "before" against. Raises CalledProcessError for a
    revision git does not know."""
    archive = subprocess.run(
        ["git", "-C", str(TEMPLATE_ROOT), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return Path(into)


def sync(project: Path, environment: dict[str, str]) -> None:
    """Install the project's venv with its bytecode compiled, as the Dockerfile does
    (UV_COMPILE_BYTECODE): worker start-up is then what a deployment sees, not a compile."""
    command = ["uv", "sync", "--quiet", "--compile-bytecode"]
    subprocess.run(command, cwd=project, env=environment, check=True)


def run_script_inside(
    project: Path,
    script: str,
    arguments: list[str],
    environment: dict[str, str],
    timeout: float,
    modules: tuple[str, ...] = (),
) -> Any:
    """Copy `script`, this module and `modules` (files beside the script that it imports, under
    their own names) into `project`, run the script there with `--inside <package> *arguments`
    in the project's venv, and return the JSON on its last line."""
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    copy = project / f"bench_{Path(script).name}"
    shutil.copyfile(script, copy)
    for module in (__file__, *modules):
        shutil.copyfile(module, project / Path(module).name)
    run = subprocess.run(
        ["uv", "run", "python", copy.name, "--inside", package, *arguments],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(run.stdout.splitlines()[-1])


def measure_in_baked_project(
    script: str, arguments: list[str], name: str, timeout: float = 3600
) -> Any:
    """Bake the default project into a scratch folder, `uv sync` it, run `script` inside it
    (`run_script_inside`) and return its report; the folder goes afterwards."""
    environment = tool_environment()
    with tempfile.TemporaryDirectory(prefix=f"cookiecutter-arq-{name}-") as scratch:
        project = bake(scratch)
        print(f"baked {project}; uv sync", file=sys.stderr, flush=True)
        sync(project, environment)
        return run_script_inside(project, script, arguments, environment, timeout=timeout)


def stop_process(process: "subprocess.Popen[bytes]", grace: float) -> None:
    """SIGTERM, then SIGKILL if `process` is still running after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def commands_so_far(commandstats: dict[str, Any]) -> int:
    """The command calls in an `INFO commandstats` reply, less INFO's own (the measuring ones)."""
    return sum(
        int(stats["calls"])
        for name, stats in commandstats.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    )


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def rotated(items: tuple[str, ...], by: int) -> tuple[str, ...]:
    """`items` rotated left by `by`: round `by`'s order in interleaved rounds."""
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def paired_ratios(tops: list[float], bottoms: list[float]) -> list[float]:
    """Each round's ratio of two figures measured in that round: a drift across rounds, which
    weighs on both, cancels out. Report their median."""
    return [top / bottom for top, bottom in zip(tops, bottoms, strict=True)]


@contextlib.asynccontextmanager
async def polling(worker: Any, pool: Any) -> AsyncIterator[Any]:
    """Run a non-burst `worker` in a task; yield it once it has polled (its health key is set)."""
    run = asyncio.create_task(worker.async_run())
    try:
        deadline = time.monotonic() + 10
        while not await pool.exists(worker.health_check_key):
            if run.done():
                run.result()  # raises what stopped the worker
            if run.done() or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start polling")
            await asyncio.sleep(0.005)
        yield worker
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await worker.close()


async def wait_for_results(jobs: list[Any], timeout: float = 30) -> list[Any]:
    """arq's result info of every job, once all have one."""
    deadline = time.monotonic() + timeout
    while True:
        infos = await asyncio.gather(*(job.result_info() for job in jobs))
        if all(info is not None for info in infos):
            return infos
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(i is None for i in infos)} jobs have no result")
        await asyncio.sleep(0.05)


# --- queues measured in worker processes of their own (compare.py --workers, peer_drain.py) ----
#
# The same method for every queue, whichever venv it runs in (so standard library only): the
# measuring side queues jobs with the queue's own client, starts worker processes that each
# build their worker and say "ready", tells them all "go" at once, and learns that jobs ended
# from a file the jobs write to (`Slots`), never from Redis, so measuring adds no command; then
# "stop", and each process reports its jobs' enqueue→start waits. Redis is read with
# `RedisConnection`: INFO commandstats, CLIENT LIST, FLUSHDB.

NOOP, IO, STAMP = "noop", "io", "stamp"  # the job kinds (STAMP: a no-op that notes its wait)
IO_SECONDS = 0.01  # what an IO job awaits: asyncio.sleep(IO_SECONDS)
READY_TIMEOUT_SECONDS = 120  # from a worker process's start to its "ready"
# A slot per worker process: time.time() at its last job's end, then how many jobs ended.
SLOT = struct.Struct("dd")
SLOT_POLL_SECONDS = 0.01  # how often the measuring side reads the slots
SETTLE_SECONDS = 1.0  # after the warm-up job, before the idle window opens


class RedisConnection:
    """One connection to Redis that sends a command and reads its reply: all the measuring side
    needs (FLUSHDB, INFO, CLIENT LIST), the same in every venv whatever its Redis client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> "RedisConnection":
        parts = urllib.parse.urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 6379)
        connection = cls(reader, writer)
        if parts.password:
            await connection.call("AUTH", *filter(None, [parts.username, parts.password]))
        database = parts.path.strip("/") or "0"
        if database != "0":
            await connection.call("SELECT", database)
        return connection

    async def call(self, *args: str | int) -> Any:
        encoded = [str(arg).encode() for arg in args]
        request = [f"*{len(encoded)}\r\n".encode()]
        for arg in encoded:
            request += [f"${len(arg)}\r\n".encode(), arg, b"\r\n"]
        self.writer.write(b"".join(request))
        await self.writer.drain()
        return await self._reply()

    async def _reply(self) -> Any:
        line = (await self.reader.readline()).rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"Redis answered {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else (await self.reader.readexactly(size + 2))[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [await self._reply() for _ in range(size)]
        raise RuntimeError(f"cannot read Redis's reply {line!r}")

    async def command_calls(self) -> dict[str, int]:
        """Calls so far of each command (`INFO commandstats`), less INFO's own."""
        return {name: calls for name, (calls, _) in (await self.command_usage()).items()}

    async def command_usage(self) -> dict[str, tuple[int, int]]:
        """(calls, µs) so far of each command (`INFO commandstats`), less INFO's own. A script's
        µs include those of the commands it calls, which are counted again on their own lines."""
        usage = {}
        for line in (await self.call("INFO", "commandstats")).decode().splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line.removeprefix("cmdstat_").partition(":")
                values = dict(field.split("=") for field in fields.split(","))
                usage[name] = (int(values["calls"]), int(values["usec"]))
        usage.pop("info", None)
        return usage

    async def cpu_seconds(self) -> float:
        """The Redis server's CPU time so far (`INFO cpu`: used_cpu_user + used_cpu_sys), s."""
        fields = dict(
            line.split(":", 1)
            for line in (await self.call("INFO", "cpu")).decode().splitlines()
            if ":" in line
        )
        return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])

    async def clients(self) -> list[dict[str, str]]:
        """Every other client's `CLIENT LIST` fields (cmd: its last command, flags: b blocked)."""
        own = str(await self.call("CLIENT", "ID"))
        listed = (await self.call("CLIENT", "LIST")).decode().splitlines()
        fields = [dict(item.partition("=")[::2] for item in line.split()) for line in listed]
        return [client for client in fields if client.get("id") != own]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per command, the calls made between two `command_calls()`; commands not called left out."""
    spent = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in spent.items() if calls}


def usage_between(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Per command, the (calls, µs) between two `command_usage()`; commands not called left out."""
    spent = {
        name: (calls - before.get(name, (0, 0))[0], us - before.get(name, (0, 0))[1])
        for name, (calls, us) in after.items()
    }
    return {name: usage for name, usage in spent.items() if usage[0]}


class Slots:
    """A file of `SLOT`s, one per worker process: each process writes its own, through
    `JobRecorder`, and the measuring side reads them all. No Redis command, no lock."""

    def __init__(self, path: Path, count: int) -> None:
        path.write_bytes(bytes(SLOT.size * count))
        self.count = count
        with path.open("r+b") as file:
            self.map = mmap.mmap(file.fileno(), 0)

    def read(self) -> tuple[int, float]:
        """(jobs ended in all processes, time.time() at the last end)."""
        slots = [SLOT.unpack_from(self.map, SLOT.size * i) for i in range(self.count)]
        return int(sum(done for _, done in slots)), max(end for end, _ in slots)

    def close(self) -> None:
        self.map.close()


class JobRecorder:
    """A worker process's side of `Slots`: every job of the benchmark calls `ended()` last, and
    a STAMP job calls `started(enqueued_at)` first (its wait, in ms, kept for the report)."""

    def __init__(self, path: str, slot: int) -> None:
        with open(path, "r+b") as file:
            self.map = mmap.mmap(file.fileno(), 0)
        self.offset = SLOT.size * slot
        self.done = 0
        self.waits_ms: list[float] = []
        self.lock = threading.Lock()  # jobs may end in threads (Celery's threads pool)

    def started(self, enqueued_at: float) -> None:
        self.waits_ms.append((time.time() - enqueued_at) * 1000)

    def ended(self) -> None:
        with self.lock:
            self.done += 1
            # The end time is packed before the count: a reader that sees the count sees it.
            SLOT.pack_into(self.map, self.offset, time.time(), self.done)


async def run_worker_process(
    start: Callable[[], Awaitable[Any]],
    stop: Callable[["asyncio.Future[Any]"], Awaitable[Any]],
    recorder: JobRecorder,
) -> None:
    """A worker process's part, its worker built: say "ready"; on "go" run `start()` (the
    worker's run, to its end); on "stop" (or the end of stdin) call `stop(that run)`, then report
    `{"done": jobs ended, "waits_ms": [...], "cpu_s": the process's CPU seconds from "go" to
    "stop"}`. Anything else the process prints goes to stderr:
    stdout is for these lines only."""
    tell = protocol_output()
    loop = asyncio.get_running_loop()
    try:
        tell("ready")
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            return
        cpu_at_go = time.process_time()
        running = asyncio.ensure_future(start())
        told = loop.run_in_executor(None, sys.stdin.readline)
        await asyncio.wait({running, told}, return_when=asyncio.FIRST_COMPLETED)
        cpu_s = time.process_time() - cpu_at_go
        if running.done():
            running.result()  # raises what stopped it
            raise RuntimeError("the worker stopped before it was told to")
        await stop(running)
        tell(json.dumps({"done": recorder.done, "waits_ms": recorder.waits_ms, "cpu_s": cpu_s}))
    except BaseException:
        traceback.print_exc()
        os._exit(1)  # a thread may still wait on stdin: do not wait for it


def protocol_output() -> Callable[[str], None]:
    """A function that writes a line for the measuring side (the process's stdout, kept for
    that); from now on, anything else written to stdout goes to stderr."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def tell(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return tell


class WorkerProcesses:
    """The measuring side of `run_worker_process`: start the processes (each command gets
    `--slots PATH --slot I`), wait for every "ready"; then `go()`, `wait_for()`, `stop()`."""

    def __init__(self, commands: list[list[str]], folder: Path) -> None:
        self.slots = Slots(folder / "slots", len(commands))
        self.commands = [
            [*command, "--slots", str(folder / "slots"), "--slot", str(slot)]
            for slot, command in enumerate(commands)
        ]
        self.processes: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> "WorkerProcesses":
        for command in self.commands:
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            )
        for process in self.processes:
            line = await self._line(process, READY_TIMEOUT_SECONDS)
            if line != "ready":
                raise RuntimeError(f"a worker process said {line!r}, not ready")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        self.slots.close()

    @staticmethod
    async def _line(process: asyncio.subprocess.Process, timeout: float) -> str:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            code = await asyncio.wait_for(process.wait(), timeout)
            raise RuntimeError(f"a worker process exited ({code}); its stderr is above")
        return line.decode().strip()

    async def _tell(self, line: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"{line}\n".encode())
        for process in self.processes:
            assert process.stdin is not None
            await process.stdin.drain()

    async def go(self) -> float:
        """Tell every process to start its worker; time.time() just before."""
        if self.slots.read()[0]:
            raise RuntimeError("jobs ran before go: a worker started before it was told to")
        started = time.time()
        await self._tell("go")
        return started

    async def wait_for(self, jobs: int, timeout: float) -> float:
        """Wait until `jobs` jobs have ended in all; time.time() at the last one's end."""
        deadline = time.monotonic() + timeout
        while self.slots.read()[0] < jobs:
            for process in self.processes:
                if process.returncode is not None:
                    raise RuntimeError(f"a worker process exited ({process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.slots.read()[0]} of {jobs} jobs ended in {timeout} s")
            await asyncio.sleep(SLOT_POLL_SECONDS)
        done, last_end = self.slots.read()  # read again: the count seen, the times are final
        if done != jobs:
            raise RuntimeError(f"{done} jobs ended, {jobs} were queued")
        return last_end

    async def stop(self) -> list[dict[str, Any]]:
        """Stop every worker; each process's report."""
        await self._tell("stop")
        reports = []
        for process in self.processes:
            reports.append(json.loads(await self._line(process, READY_TIMEOUT_SECONDS)))
            if await process.wait() != 0:
                raise RuntimeError(f"a worker process exited {process.returncode}")
        return reports


class QueueDriver:
    """What the measuring side needs of one queue: how to start a worker process of it (its
    command, before `--slots`), and how to queue `count` jobs of a kind, or one STAMP job
    (`enqueue_stamp` passes time.time() as the job's argument just before it queues it)."""

    def __init__(
        self,
        worker_command: list[str],
        enqueue: Callable[[str, int], Awaitable[None]],
        enqueue_stamp: Callable[[], Awaitable[None]],
    ) -> None:
        self.worker_command = worker_command
        self.enqueue = enqueue
        self.enqueue_stamp = enqueue_stamp


async def drain_in_processes(
    redis_url: str, driver: QueueDriver, kind: str, jobs: int, processes: int, timeout: float
) -> dict[str, float]:
    """`jobs` jobs of `kind` queued, then drained by `processes` worker processes: jobs/s from
    "go" to the last job's end; Redis commands per job from before the processes start to
    after they exit (their start-up and shutdown in: the queueing out), and those of the
    queueing apart; Redis's time per job for each half, as `INFO commandstats` sums it (µs; a
    script's own line includes the commands it calls, so scripts count twice) and as the server's
    CPU time (`INFO cpu`, µs: what one Redis core caps); and the worker processes' CPU time per
    job in µs, from "go" to "stop" (where they report it)."""
    redis = await RedisConnection.open(redis_url)
    try:
        await redis.call("FLUSHDB")
        queueing, queueing_cpu = await redis.command_usage(), await redis.cpu_seconds()
        await driver.enqueue(kind, jobs)
        before, before_cpu = await redis.command_usage(), await redis.cpu_seconds()
        with tempfile.TemporaryDirectory(prefix="bench-slots-") as folder:
            commands = [driver.worker_command] * processes
            async with WorkerProcesses(commands, Path(folder)) as workers:
                started = await workers.go()
                ended = await workers.wait_for(jobs, timeout)
                reports = await workers.stop()
        after, after_cpu = await redis.command_usage(), await redis.cpu_seconds()
    finally:
        await redis.close()
    queued = usage_between(queueing, before)
    spent = usage_between(before, after)
    drained = {
        "jobs_per_s": jobs / (ended - started),
        "commands_per_job": sum(calls for calls, _ in spent.values()) / jobs,
        "enqueue_commands_per_job": sum(calls for calls, _ in queued.values()) / jobs,
        "redis_us_per_job": sum(us for _, us in spent.values()) / jobs,
        "enqueue_redis_us_per_job": sum(us for _, us in queued.values()) / jobs,
        "redis_cpu_us_per_job": (after_cpu - before_cpu) / jobs * 1e6,
        "enqueue_redis_cpu_us_per_job": (before_cpu - queueing_cpu) / jobs * 1e6,
    }
    if all("cpu_s" in report for report in reports):
        drained["cpu_us_per_job"] = sum(report["cpu_s"] for report in reports) / jobs * 1e6
    return drained


async def idle_and_latency(
    redis_url: str, driver: QueueDriver, idle_seconds: float, gaps: list[float], timeout: float
) -> dict[str, Any]:
    """One worker process, started and warmed up by one STAMP job; `SETTLE_SECONDS` later, its
    Redis commands over `idle_seconds` with nothing queued (per command, and which clients sit
    blocked or subscribed at the end); then a STAMP job after each of `gaps` (seconds), and
    their enqueue→start waits in ms."""
    redis = await RedisConnection.open(redis_url)
    try:
        await redis.call("FLUSHDB")
        with tempfile.TemporaryDirectory(prefix="bench-slots-") as folder:
            async with WorkerProcesses([driver.worker_command], Path(folder)) as workers:
                await workers.go()
                await driver.enqueue_stamp()
                await workers.wait_for(1, timeout)
                await asyncio.sleep(SETTLE_SECONDS)
                before, opened = await redis.command_calls(), time.monotonic()
                await asyncio.sleep(idle_seconds)
                after, closed = await redis.command_calls(), time.monotonic()
                clients = await redis.clients()
                due = time.monotonic()
                for gap in gaps:
                    due += gap
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    await driver.enqueue_stamp()
                await workers.wait_for(1 + len(gaps), timeout)
                (report,) = await workers.stop()
    finally:
        await redis.close()
    seconds = closed - opened
    spent = calls_between(before, after)
    return {
        "idle_commands_per_s": sum(spent.values()) / seconds,
        "idle_by_command": {name: calls / seconds for name, calls in spent.items()},
        "blocked": sorted(c["cmd"] for c in clients if "b" in c.get("flags", "")),
        "subscribed": sum(
            int(c.get("sub", 0)) + int(c.get("psub", 0)) + int(c.get("ssub", 0)) > 0
            for c in clients
        ),
        "waits_ms": report["waits_ms"][1:],  # the first is the warm-up job's
    }


def latency_gaps(count: int, rate: float, seed: int) -> list[float]:
    """`count` gaps in seconds, drawn at random (exponential, average `rate` per second):
    fixed gaps would lock in phase with whatever a worker does on a clock."""
    rng = random.Random(seed)
    return [rng.expovariate(rate) for _ in range(count)]


def how_it_waits(runs: list[dict[str, Any]]) -> str:
    """A line on what an idle worker did, from `idle_and_latency` runs: the connections it left
    blocked and the commands it sent (per second, the busiest first)."""
    last = runs[-1]
    parts = [f"{count} x {cmd.upper()} blocked" for cmd, count in Counter(last["blocked"]).items()]
    if last["subscribed"]:
        parts.append(f"{last['subscribed']} subscribed")
    names = {name for run in runs for name in run["idle_by_command"]}
    rates = {
        name: statistics.median(run["idle_by_command"].get(name, 0.0) for run in runs)
        for name in names
    }
    busiest = sorted(rates.items(), key=lambda item: -item[1])
    parts += [f"{name.upper()} {rate:.1f}/s" for name, rate in busiest[:4] if rate >= 0.05]
    return "; ".join(parts) or "nothing"
