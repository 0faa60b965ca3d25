# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The operator commands behind `just worker-check`, `just dead-letters`, `just requeue` and
`just purge-dead-letters`, run as a user runs them: separate processes, real workers."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure import tasks
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import MARGIN_SECONDS

from .conftest import TEST_HEARTBEAT_SECONDS, WorkerProcesses

CLI = [sys.executable, "-m", "{{ cookiecutter.package_name }}.infrastructure.ops.cli"]


@pytest.fixture
def environment(redis_server: LocalRedisServer, task_pool: ArqRedis) -> dict[str, str]:
    """The environment of every process here: the test server, a one-second heartbeat."""
    return {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "WORKER_HEALTH_CHECK_INTERVAL": str(TEST_HEARTBEAT_SECONDS),
    }


def cli(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def wait_for_check(environment: dict[str, str], exit_code: int, within: float) -> float:
    """Run worker-check until it exits with `exit_code`; return how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if cli(environment, "worker-check").returncode == exit_code:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"worker-check did not exit {exit_code} within {within} s")


def test_ping_reports_the_server(environment: dict[str, str]) -> None:
    result = cli(environment, "ping")

    assert result.returncode == 0
    assert result.stdout.startswith("Redis ")
    assert "answers at redis://127.0.0.1:" in result.stdout


def test_just_worker_refuses_an_unreachable_redis_in_one_line(environment: dict[str, str]) -> None:
    just = shutil.which("just", path=str(Path(sys.executable).parent))
    assert just, "just comes with the dev dependencies (rust-just)"
    unreachable = {**environment, "REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}

    result = subprocess.run(
        [just, "worker"], env=unreachable, capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip

    assert result.returncode != 0
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_worker_check_fails_when_no_worker_runs(environment: dict[str, str]) -> None:
    result = cli(environment, "worker-check")

    assert result.returncode == 1
    assert "no worker alive on queue" in result.stderr


def test_worker_check_fails_when_redis_is_unreachable(environment: dict[str, str]) -> None:
    unreachable = {**environment, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}

    result = cli(unreachable, "worker-check")

    assert result.returncode == 2
    assert "cannot reach Redis at redis://127.0.0.1" in result.stderr


def test_worker_check_follows_each_worker(
    environment: dict[str, str], worker_processes: WorkerProcesses
) -> None:
    first, second = worker_processes.start(), worker_processes.start()
    wait_for_check(environment, 0, within=15)
    while "2 worker(s) alive" not in cli(environment, "worker-check").stdout:
        time.sleep(0.1)
    assert cli(environment, "worker-check", "--this-host").returncode == 0

    # A clean stop of one worker leaves the other counted (arq's shared key would not: #291).
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=15)
    result = cli(environment, "worker-check")
    assert result.returncode == 0
    assert "1 worker(s) alive" in result.stdout

    # SIGKILL gives the worker no chance to clean up: its heartbeat simply runs out.
    second.send_signal(signal.SIGKILL)
    second.wait()
    elapsed = wait_for_check(environment, 1, within=TEST_HEARTBEAT_SECONDS + MARGIN_SECONDS + 5)
    # Within the key's lifetime, plus one `worker-check` run (a Python start, slow on a busy CI).
    assert elapsed <= TEST_HEARTBEAT_SECONDS + MARGIN_SECONDS + 2


def test_worker_logs_the_projects_records(
    environment: dict[str, str], worker_processes: WorkerProcesses
) -> None:
    # `arq` sets up logging for its own logger only; the project's records must show too.
    worker_processes.start()
    wait_for_check(environment, 0, within=15)
    for _ in range(50):
        if "worker started on queue" in worker_processes.log(0):
            break
        time.sleep(0.1)
    assert "worker started on queue" in worker_processes.log(0)


async def add_dead_letter(pool: ArqRedis, job_id: str, message: str) -> None:
    now = datetime.now(UTC)
    letter = dead_letters.DeadLetter(
        job_id=job_id, function="example_task", args=[], kwargs={"message": message},
        error_type="ConnectionError", error="SMTP server down", tries=3, enqueued_at=now, failed_at=now,
    )  # fmt: skip
    await dead_letters.add(pool, tasks.WorkerSettings.queue_name, letter, limit=1000)


async def test_dead_letters_lists_the_records(
    environment: dict[str, str], task_pool: ArqRedis
) -> None:
    await add_dead_letter(task_pool, "job-1", "hello")

    result = cli(environment, "dead-letters")

    assert result.returncode == 0
    assert "1 dead letter(s)" in result.stdout
    assert "job-1  example_task  tries=3" in result.stdout
    assert "ConnectionError: SMTP server down" in result.stdout
    assert "'message': 'hello'" in result.stdout


async def test_requeue_puts_a_job_back_once(
    environment: dict[str, str], task_pool: ArqRedis
) -> None:
    await add_dead_letter(task_pool, "job-1", "again")

    first = cli(environment, "requeue", "job-1")
    second = cli(environment, "requeue", "job-1")

    assert first.returncode == 0, first.stderr
    assert "requeued job-1 as job" in first.stdout
    assert second.returncode == 1
    assert "no dead letter for job 'job-1'" in second.stderr
    assert await task_pool.zcard(tasks.WorkerSettings.queue_name) == 1
    assert await dead_letters.all_letters(task_pool, tasks.WorkerSettings.queue_name) == []


async def test_purge_needs_confirmation(environment: dict[str, str], task_pool: ArqRedis) -> None:
    await add_dead_letter(task_pool, "job-1", "a")
    await add_dead_letter(task_pool, "job-2", "b")

    refused = cli(environment, "purge-dead-letters")
    assert refused.returncode == 1
    assert await dead_letters.count(task_pool, tasks.WorkerSettings.queue_name) == 2

    confirmed = cli(environment, "purge-dead-letters", "--yes")
    assert confirmed.returncode == 0
    assert "deleted 2 dead letter(s)" in confirmed.stdout
    assert await dead_letters.count(task_pool, tasks.WorkerSettings.queue_name) == 0


async def test_dead_letter_store_is_bounded(task_pool: ArqRedis) -> None:
    queue = tasks.WorkerSettings.queue_name
    now = datetime.now(UTC)
    for n in range(5):
        letter = dead_letters.DeadLetter(f"job-{n}", "example_task", [], {}, "E", "e", 1, now, now)
        await dead_letters.add(task_pool, queue, letter, limit=3)

    assert [letter.job_id for letter in await dead_letters.all_letters(task_pool, queue)] == [
        "job-4",
        "job-3",
        "job-2",
    ]
