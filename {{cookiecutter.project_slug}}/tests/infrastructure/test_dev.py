# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just dev` (infrastructure/local/dev.py) as a terminal runs it: real processes on a real
server, stopped with Ctrl-C as a terminal sends it (SIGINT to the foreground process group).

Each test runs the command in a folder of its own: its `.env` sets the port, so the server's data
(`.redis-data/`) and settings are the test's. The tests that run jobs are slow (`just test-faults`).
"""

import asyncio
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

{% if cookiecutter.api_framework == "fastapi" -%}
import httpx
{% endif -%}
import pytest
import redis

from {{ cookiecutter.package_name }}.infrastructure.local import dev as dev_module
{% if cookiecutter.api_framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
{% else -%}
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
{% endif %}
from .conftest import PASSWORD
from .test_redis_server import (
    PROMPTLY_SECONDS,
    WAIT_SECONDS,
    Dev,
    Folder,
    assert_all_end,
    descendants,
    port_is_open,
    starting,
)

FAULT_JOBS = "tests.infrastructure.fault_jobs.WorkerSettings"
LONG_GRACE = "600"


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


@pytest.fixture
def start(folder: Folder) -> Iterator[Callable[..., Dev]]:
    """`start("--worker")`: run `just dev`'s command in the test's folder; stopped after the test."""
    yield from starting(folder, dev_module.__name__)


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
