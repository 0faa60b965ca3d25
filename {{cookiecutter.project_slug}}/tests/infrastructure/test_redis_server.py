# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just redis` (infrastructure/local/redis_server.py) as a terminal runs it, and the server the
tests start: real processes, stopped with Ctrl-C as a terminal sends it (SIGINT to the foreground
process group). test_dev.py runs `just dev` with the helpers here.

Each test runs the command in a folder of its own: its `.env` sets the port, so the server's data
(`.redis-data/`) and settings are the test's.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from {{ cookiecutter.package_name }}.infrastructure.keys import DEFAULT_QUEUE, queue_key
from {{ cookiecutter.package_name }}.infrastructure.local import redis_server
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import (
    LocalRedisServer,
    RedisServerError,
    free_port,
)
from {{ cookiecutter.package_name }}.infrastructure.settings import IGNORE_DOTENV
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import escape_glob, key_prefix
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize, serialize

PROJECT = Path(__file__).parents[2]
QUEUE_PREFIX = "dev-tests"
QUEUE = queue_key(QUEUE_PREFIX, DEFAULT_QUEUE)
# Generous: the machine may be busy. No test measures time; a stop "at once" only has to come
# well before a 600 s grace period would end.
WAIT_SECONDS = 60.0
# How long a refusal or an orphan's end may take: a start-up, not a timeout of the command's own.
PROMPTLY_SECONDS = 20.0


class Dev:
    """`python -m MODULE ARGS` (redis_server: `just redis`; dev: `just dev`), started as a
    terminal starts it: the leader of its own process group, its output (and its children's) in
    a log file."""

    def __init__(self, folder: Path, module: str, *args: str) -> None:
        self.module = module
        self.args = args
        self.log_path = folder / f"dev-{time.monotonic_ns()}.log"
        # The folder's `.env` is what these commands read: not the test session's REDIS_URL,
        # nor its IGNORE_DOTENV (testing.py).
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in {"REDIS_URL", IGNORE_DOTENV}
        }
        # The project, for tests.fault_jobs; the folder, for a test's own job module.
        environment["PYTHONPATH"] = os.pathsep.join([str(PROJECT), str(folder)])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=folder,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Stopped with the test run, however that ends, as it stops its own children.
        self.watcher = redis_server.Watcher(self.process, grace=WAIT_SECONDS)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1) -> None:
        """Wait until the output holds `text` `count` times."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.output().count(text) < count:
            if self.process.poll() is not None:
                raise AssertionError(f"exited before printing {text!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {WAIT_SECONDS} s:\n{self.output()}")
            time.sleep(0.1)

    def ctrl_c(self) -> None:
        """What Ctrl-C in a terminal does: SIGINT to every process of the foreground group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)

    def exit_code(self) -> int:
        try:
            return self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            message = f"still running after {WAIT_SECONDS} s:\n{self.output()}"
            raise AssertionError(message) from None

    def close(self) -> None:
        """Stop what a failed test left running: Ctrl-C twice, then SIGKILL."""
        self.watcher.release()
        for _ in range(2):
            if self.process.poll() is None:
                self.ctrl_c()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=5)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Folder:
    """A project folder for one test: a `.env` with a free port and its own queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.configure(REDIS_URL=f"redis://localhost:{self.port}/0", QUEUE_PREFIX=QUEUE_PREFIX)

    def configure(self, **settings: str) -> None:
        with (self.path / ".env").open("a") as env:
            env.writelines(f"{name}={value}\n" for name, value in settings.items())

    def client(self) -> "redis.Redis":
        return redis.Redis(port=self.port, socket_timeout=WAIT_SECONDS)

    @contextlib.asynccontextmanager
    async def pool(self) -> AsyncIterator[ArqRedis]:
        """An arq pool on this folder's server, with the project's serializer."""
        pool = await create_pool(
            RedisSettings(port=self.port),
            job_serializer=serialize,
            job_deserializer=deserialize,
            default_queue_name=QUEUE,
        )
        try:
            yield pool
        finally:
            await pool.aclose()

    def wait_for_value(self, key: str, value: bytes) -> None:
        with self.client() as client:
            deadline = time.monotonic() + WAIT_SECONDS
            while client.get(key) != value:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{key} is {client.get(key)!r}, not {value!r}")
                time.sleep(0.05)

    def wait_for_worker(self) -> None:
        """Wait until a worker's heartbeat is in Redis: it has started."""
        with self.client() as client:
            deadline = time.monotonic() + WAIT_SECONDS
            while not list(client.scan_iter(match=escape_glob(key_prefix(QUEUE)) + "*")):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no worker started within {WAIT_SECONDS} s")
                time.sleep(0.05)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def starting(folder: Folder, module: str) -> Iterator[Callable[..., Dev]]:
    """A `start` fixture's body: `start(ARGS)` runs `module` in the test's folder; each one
    started is stopped after the test."""
    started: list[Dev] = []

    def run(*args: str) -> Dev:
        started.append(Dev(folder.path, module, *args))
        return started[-1]

    yield run
    for dev in started:
        dev.close()
    for dev in started:
        print(f"--- {dev.module.rpartition('.')[2]} {' '.join(dev.args)}", dev.output(), sep="\n")


@pytest.fixture
def start(folder: Folder) -> Iterator[Callable[..., Dev]]:
    """`start()`: run `just redis`'s command in the test's folder; stopped after the test."""
    yield from starting(folder, redis_server.__name__)


def port_is_open(port: int) -> bool:
    with redis.Redis(port=port, socket_connect_timeout=1) as client:
        try:
            client.ping()
        except redis.AuthenticationError:
            return True
        except redis.ConnectionError:
            return False
        return True


def test_a_server_is_never_ready_on_a_port_another_server_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with LocalRedisServer() as other:
        with pytest.raises(RedisServerError, match=f"port {other.port} on 127.0.0.1 is in use"):
            LocalRedisServer(other.port).start()
        # The other server took the port between the check and the start: only the process id
        # of the server that answers can tell.
        monkeypatch.setattr(redis_server, "port_in_use", lambda port: False, raising=False)
        with pytest.raises(RedisServerError, match=f"port {other.port} on 127.0.0.1 is in use"):
            LocalRedisServer(other.port).start()


async def test_the_dev_server_keeps_its_data_across_a_restart(
    folder: Folder, start: Callable[..., Dev]
) -> None:
    first = start()
    first.wait_for("Redis is ready")
    with folder.client() as client:
        client.set("kept", "yes")
    async with folder.pool() as pool:
        queued = await pool.enqueue_job("example_task", message="after a restart")
        assert queued is not None

    first.ctrl_c()
    assert first.exit_code() == 0
    assert not port_is_open(folder.port)

    second = start()
    second.wait_for("Redis is ready")
    assert (folder.path / ".redis-data").is_dir()
    with folder.client() as client:
        assert client.get("kept") == b"yes"
    async with folder.pool() as pool:
        assert await pool.queued_jobs() != []
        assert (await pool.queued_jobs())[0].job_id == queued.job_id
    second.ctrl_c()
    assert second.exit_code() == 0


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (`ps`, as on Linux and macOS)."""
    table = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    for row in table.splitlines():
        child, parent = map(int, row.split())
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    waiting = [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (ended, not yet reaped by whoever adopted it) does not."""
    ps = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    state = ps.stdout.strip()
    return state != "" and not state.startswith("Z")


def assert_all_end(pids: list[int]) -> None:
    """Wait up to PROMPTLY_SECONDS for every one of `pids` to end; kill those left, and fail."""
    deadline = time.monotonic() + PROMPTLY_SECONDS
    while [pid for pid in pids if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"still running {PROMPTLY_SECONDS} s after their parent was killed"


# A test session's stand-in: it starts a server as the `redis_server` fixture does, then waits.
SERVER_PARENT = f"""
import time
from {redis_server.__name__} import LocalRedisServer

server = LocalRedisServer().start()
print(server.port, flush=True)
time.sleep(600)
"""


def test_a_test_server_ends_when_the_process_that_started_it_is_killed() -> None:
    command = [sys.executable, "-c", SERVER_PARENT]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            port = int(parent.stdout.readline())
            with redis.Redis(port=port) as client:
                server_pid = int(cast(dict[str, Any], client.info())["process_id"])
            assert server_pid in descendants(parent.pid)
        finally:
            parent.kill()  # SIGKILL: no `finally`, no atexit, nothing of the parent's runs

    assert_all_end([server_pid])
    assert not port_is_open(port)
