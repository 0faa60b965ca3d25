# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just redis` and `just dev` (infrastructure/local/redis_server.py) as a terminal runs them: real
processes on a real server, stopped with Ctrl-C as a terminal sends it (SIGINT to the foreground
process group).

Each test runs the command in a folder of its own: its `.env` sets the port, so the server's data
(`.redis-data/`) and settings are the test's. The tests that run jobs are slow (`just test-faults`).
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

{% if cookiecutter.api_framework == "fastapi" -%}
import httpx
{% endif -%}
import pytest
import redis
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from {{ cookiecutter.package_name }}.infrastructure.local import redis_server
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import (
    LocalRedisServer,
    RedisServerError,
    free_port,
)
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import key_prefix
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize, serialize

from .conftest import PASSWORD

PROJECT = Path(__file__).parents[2]
QUEUE = "dev-tests:queue"
FAULT_JOBS = "tests.infrastructure.fault_jobs.WorkerSettings"
# Generous: the machine may be busy. No test measures time; a stop "at once" only has to come
# well before a 600 s grace period would end.
WAIT_SECONDS = 60.0
# How long a refusal or an orphan's end may take: a start-up, not a timeout of the command's own.
PROMPTLY_SECONDS = 20.0
LONG_GRACE = "600"


class Dev:
    """`python -m <package>.infrastructure.local.redis_server ARGS`, started as a terminal starts it:
    the leader of its own process group, its output (and its children's) in a log file."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.args = args
        self.log_path = folder / f"dev-{time.monotonic_ns()}.log"
        environment = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
        # The project, for tests.fault_jobs; the folder, for a test's own job module.
        environment["PYTHONPATH"] = os.pathsep.join([str(PROJECT), str(folder)])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", redis_server.__name__, *args],
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
        self.configure(REDIS_URL=f"redis://localhost:{self.port}/0", QUEUE_NAME=QUEUE)

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
            while not list(client.scan_iter(match=key_prefix(QUEUE) + "*")):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no worker started within {WAIT_SECONDS} s")
                time.sleep(0.05)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


@pytest.fixture
def start(folder: Folder) -> Iterator[Callable[..., Dev]]:
    """`start("--worker")`: run the command in the test's folder; stopped after the test."""
    started: list[Dev] = []

    def run(*args: str) -> Dev:
        started.append(Dev(folder.path, *args))
        return started[-1]

    yield run
    for dev in started:
        dev.close()
    for dev in started:
        print(f"--- redis_server {' '.join(dev.args)}", dev.output(), sep="\n")


def port_is_open(port: int) -> bool:
    with redis.Redis(port=port, socket_connect_timeout=1) as client:
        try:
            client.ping()
        except redis.AuthenticationError:
            return True
        except redis.ConnectionError:
            return False
        return True


@pytest.mark.parametrize("password", [False, True], ids=["open", "with a password"])
def test_dev_refuses_a_taken_port_before_it_starts_anything(
    folder: Folder, start: Callable[..., Dev], password: bool
) -> None:
    with LocalRedisServer(folder.port) as other:
        if password:
            with redis.Redis(port=other.port) as setup:
                setup.config_set("requirepass", PASSWORD)
        with redis.Redis(port=other.port, password=PASSWORD if password else None) as other_client:
            dev = start("--worker")

            assert dev.exit_code() == 1
            output = dev.output()
            assert f"port {folder.port} on 127.0.0.1 is in use" in output
            assert "REDIS_URL" in output
            assert "Redis is ready" not in output
            assert not (folder.path / ".redis-data").exists()
            # No worker reached the other server: only this test's connection, and no keys.
            assert len(other_client.client_list()) == 1
            assert other_client.dbsize() == 0


# Every port `just dev` would listen on, and the setting or flag its refusal must name.
HELD_PORTS = [
    "REDIS_URL",
    "WORKER_METRICS_PORT",
{%- if cookiecutter.api_framework == "fastapi" %}
    "--api",
{%- endif %}
]


@pytest.mark.parametrize("setting", HELD_PORTS)
def test_dev_says_at_once_in_one_line_which_port_is_taken_and_what_changes_it(
    folder: Folder, start: Callable[..., Dev], setting: str
) -> None:
    with socket.socket() as holder:  # any listener, not only a Redis
        holder.bind(("127.0.0.1", folder.port if setting == "REDIS_URL" else 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = ["--worker", "--reload"]
        if setting == "WORKER_METRICS_PORT":
            folder.configure(WORKER_METRICS_PORT=str(port))
{%- if cookiecutter.api_framework == "fastapi" %}
        args += ["--api", str(port if setting == "--api" else free_port())]
{%- endif %}
        dev = start(*args)

        try:
            code = dev.process.wait(timeout=PROMPTLY_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running:\n{dev.output()}") from None
    assert code == 1
    [line] = [line for line in dev.output().splitlines() if f"port {port}" in line]
    assert line.startswith(f"error: port {port} on 127.0.0.1 is in use")
    assert setting in line
    assert "Redis is ready" not in dev.output()
    assert not (folder.path / ".redis-data").exists()


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


def test_ctrl_c_stops_dev_cleanly_with_one_line(folder: Folder, start: Callable[..., Dev]) -> None:
    dev = start("--worker")
    dev.wait_for("Redis is ready")
    folder.wait_for_worker()

    dev.ctrl_c()

    assert dev.exit_code() == 0
    lines = dev.output().splitlines()
    assert [line for line in lines if line.startswith("stopping")] == [
        "stopping: no job is running; Ctrl-C again to stop now"
    ]
    assert not [line for line in lines if "shutdown" in line]  # arq's announcements: ours says it
    assert not port_is_open(folder.port)


@pytest.mark.slow
async def test_ctrl_c_lets_the_running_job_finish_then_dev_exits_0(
    folder: Folder, start: Callable[..., Dev]
) -> None:
    folder.configure(WORKER_SHUTDOWN_GRACE=LONG_GRACE)
    dev = start("--worker", "--worker-settings", FAULT_JOBS)
    dev.wait_for("Redis is ready")
    async with folder.pool() as pool:
        await pool.enqueue_job("sleepy", "finishes", 3.0)
    folder.wait_for_value("starts:finishes", b"1")

    dev.ctrl_c()

    dev.wait_for(f"stopping: waiting up to {LONG_GRACE} s for 1 running job; Ctrl-C again")
    assert dev.exit_code() == 0
    assert "sleepy ● 'finishes'" in dev.output()  # arq's line for the job's result
    assert dev.output().count("stopping") == 1


@pytest.mark.slow
async def test_a_second_ctrl_c_stops_dev_at_once_and_the_job_runs_again(
    folder: Folder, start: Callable[..., Dev]
) -> None:
    folder.configure(WORKER_SHUTDOWN_GRACE=LONG_GRACE)
{%- if cookiecutter.api_framework == "fastapi" %}
    # With the API, reloading: uvicorn serves from a child of its own process.
    api_port = free_port()
    first = start("--worker", "--worker-settings", FAULT_JOBS, "--reload", "--api", str(api_port))
    first.wait_for("Application startup complete")
{%- else %}
    first = start("--worker", "--worker-settings", FAULT_JOBS)
{%- endif %}
    first.wait_for("Redis is ready")
    async with folder.pool() as pool:
        await pool.enqueue_job("sleepy", "interrupted", 600.0)  # 0.1 s when it runs again
    folder.wait_for_value("starts:interrupted", b"1")
    started = descendants(first.process.pid)
    first.ctrl_c()
    first.wait_for("stopping: waiting up to")
    # A Ctrl-C less than REPEAT_WINDOW_SECONDS (1 s) after the first counts as the same one.
    await asyncio.sleep(2)

    first.ctrl_c()

    assert first.exit_code() == 130  # within WAIT_SECONDS: long before the grace period ends
    assert "stopped now: 1 running job left to run again" in first.output()
    assert_all_end(started)  # nothing left holding a port (the API's server process included)
    assert not port_is_open(folder.port)
    # The job stayed on the queue, in the kept data, and the next worker runs it at once.
    second = start("--worker", "--worker-settings", FAULT_JOBS)
    second.wait_for("Redis is ready")
    folder.wait_for_value("completions:interrupted", b"1")
    second.ctrl_c()
    assert second.exit_code() == 0


# A job module of the test's own, in a folder `--reload-dir` watches: "VERSION" is replaced.
RELOADABLE = """
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function


async def version(ctx):
    return "VERSION"


WorkerSettings = dict(
    vars(ProjectSettings), functions=(*ProjectSettings.functions, arq_function(version)), cron_jobs=()
)
"""


@pytest.mark.slow
async def test_dev_restarts_the_worker_with_the_new_code_when_a_file_changes(
    folder: Folder, start: Callable[..., Dev]
) -> None:
    watched = folder.path / "watched"
    watched.mkdir()
    module = watched / "reloadable.py"
    module.write_text(RELOADABLE.replace("VERSION", "v1"))
    settings = "watched.reloadable.WorkerSettings"
    dev = start("--worker", "--reload", "--reload-dir", str(watched), "--worker-settings", settings)
    dev.wait_for("Redis is ready")
    async with folder.pool() as pool:
        job = await pool.enqueue_job("version")
        assert job is not None
        assert await job.result(timeout=WAIT_SECONDS) == "v1"

        module.write_text(RELOADABLE.replace("VERSION", "v2"))
        dev.wait_for("reloading: ")
        dev.wait_for("Starting worker for", count=2)  # arq's first line, from the new worker

        job = await pool.enqueue_job("version")
        assert job is not None
        assert await job.result(timeout=WAIT_SECONDS) == "v2"
    dev.ctrl_c()
    assert dev.exit_code() == 0


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


def test_dev_s_server_worker_and_api_end_when_dev_is_killed(
    folder: Folder, start: Callable[..., Dev]
) -> None:
{%- if cookiecutter.api_framework == "fastapi" %}
    dev = start("--worker", "--reload", "--api", str(free_port()))
    dev.wait_for("Application startup complete")
{%- else %}
    dev = start("--worker", "--reload")
    dev.wait_for("Redis is ready")
{%- endif %}
    folder.wait_for_worker()
    started = descendants(dev.process.pid)
    assert len(started) >= 2  # at least the server and the worker

    dev.process.kill()
    dev.process.wait()

    assert_all_end(started)
    assert not port_is_open(folder.port)


{%- if cookiecutter.api_framework == "fastapi" %}


def test_dev_serves_the_api_and_one_ctrl_c_stops_all_three(
    folder: Folder, start: Callable[..., Dev]
) -> None:
    api_port = free_port()
    dev = start("--worker", "--api", str(api_port))
    dev.wait_for("Application startup complete")
    folder.wait_for_worker()
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=WAIT_SECONDS) as client:
        ready = client.get("/health/ready")

    dev.ctrl_c()

    assert ready.status_code == 200, ready.text
    assert ready.json()["workers"] == 1
    assert dev.exit_code() == 0
    assert not port_is_open(folder.port)
    with pytest.raises(httpx.ConnectError), httpx.Client() as client:
        client.get(f"http://127.0.0.1:{api_port}/health/live")


def test_dev_refuses_a_taken_api_port_before_it_starts_anything(
    folder: Folder, start: Callable[..., Dev]
) -> None:
    with LocalRedisServer() as other:  # anything that listens on the port will do
        dev = start("--worker", "--api", str(other.port))

        assert dev.exit_code() == 1
    assert f"port {other.port} on 127.0.0.1 is in use" in dev.output()
    assert not port_is_open(folder.port)  # no Redis of its own either
{%- endif %}
