# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The operator commands behind `just worker-check`, `just dead-letters`, `just requeue` and
`just purge-dead-letters`, run as a user runs them: separate processes, real workers; with
several queues, each queue's dead letters apart (`--queue NAME`)."""

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

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import tasks
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import MARGIN_SECONDS

from .conftest import TEST_HEARTBEAT_SECONDS, Configure, WorkerProcesses

CLI = [sys.executable, "-m", "{{ cookiecutter.package_name }}.infrastructure.ops.cli"]
QUEUES = "critical,default,bulk"


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
    return timed_wait_for_check(environment, exit_code, within)[0]


def timed_wait_for_check(
    environment: dict[str, str], exit_code: int, within: float
) -> tuple[float, float]:
    """Run worker-check until it exits with `exit_code`: (seconds from the call to the start of
    that run, the longest run). The run's own time is left out: a Python start, and a check
    that began just before the change it waits for, can take seconds on a busy CI machine."""
    started = time.monotonic()
    longest = 0.0
    while time.monotonic() - started < within:
        began = time.monotonic()
        exited = cli(environment, "worker-check").returncode
        longest = max(longest, time.monotonic() - began)
        if exited == exit_code:
            return began - started, longest
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
    lifetime = TEST_HEARTBEAT_SECONDS + MARGIN_SECONDS
    elapsed, longest_run = timed_wait_for_check(environment, 1, within=lifetime + 15)
    # Seen within the key's lifetime: the run that saw it began at most one run (the one that
    # still found the key) and a pause after the key expired.
    assert elapsed <= lifetime + longest_run + 0.5


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


async def add_dead_letter(
    pool: ArqRedis, job_id: str, message: str, queue_name: str = tasks.WorkerSettings.queue_name
) -> None:
    now = datetime.now(UTC)
    letter = dead_letters.DeadLetter(
        job_id=job_id, function="example_task", args=[], kwargs={"message": message},
        error_type="ConnectionError", error="SMTP server down", tries=3, enqueued_at=now, failed_at=now,
    )  # fmt: skip
    await dead_letters.add(pool, queue_name, letter, limit=1000)


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


@pytest.fixture
def three_queues(environment: dict[str, str], configure: Configure) -> dict[str, str]:
    """QUEUES=critical,default,bulk, in this process and in the commands'."""
    configure(QUEUES=QUEUES)
    return {**environment, "QUEUES": QUEUES}


def key(queue: str) -> str:
    return get_settings().queue_keys[queue]


def blocks(output: str) -> dict[str, str]:
    """The listing's block of each queue, by the queue's key: its first line onwards."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        if " dead letter(s) on queue " in line:
            queue_name = line.split(" on queue ", 1)[1]
            found[queue_name] = ""
        found[queue_name] += line + "\n"
    return found


async def letters_in_three_queues(pool: ArqRedis) -> None:
    """One dead letter on critical, two on bulk, none on default; ids as a worker writes them."""
    await add_dead_letter(pool, f"{key('critical')}:c-1", "urgent", key("critical"))
    await add_dead_letter(pool, f"{key('bulk')}:b-1", "slow 1", key("bulk"))
    await add_dead_letter(pool, f"{key('bulk')}:b-2", "slow 2", key("bulk"))


async def test_dead_letters_lists_each_queue_s_own(
    three_queues: dict[str, str], task_pool: ArqRedis
) -> None:
    await letters_in_three_queues(task_pool)

    everything = cli(three_queues, "dead-letters")
    bulk = cli(three_queues, "dead-letters", "--queue", "bulk")

    assert everything.returncode == 0, everything.stderr
    listed = blocks(everything.stdout)
    assert list(listed) == [key("critical"), key("default"), key("bulk")]  # QUEUES' order
    assert listed[key("critical")].startswith("1 dead letter(s)")
    assert "c-1  example_task" in listed[key("critical")]
    assert "b-1" not in listed[key("critical")]
    assert listed[key("default")] == f"0 dead letter(s) on queue {key('default')}\n"
    assert listed[key("bulk")].startswith("2 dead letter(s)")
    assert "b-1  example_task" in listed[key("bulk")]
    assert "b-2  example_task" in listed[key("bulk")]
    assert "c-1" not in listed[key("bulk")]
    assert bulk.returncode == 0, bulk.stderr
    assert blocks(bulk.stdout) == {key("bulk"): listed[key("bulk")]}


async def test_a_dead_letter_is_requeued_onto_its_own_queue(
    three_queues: dict[str, str], task_pool: ArqRedis
) -> None:
    await letters_in_three_queues(task_pool)

    result = cli(three_queues, "requeue", f"{key('bulk')}:b-1")

    assert result.returncode == 0, result.stderr
    assert await task_pool.zcard(key("bulk")) == 1
    assert await task_pool.zcard(key("default")) == 0
    assert await dead_letters.count(task_pool, key("bulk")) == 1
    assert await dead_letters.count(task_pool, key("critical")) == 1


async def test_purge_deletes_one_queue_s_letters_or_every_queue_s(
    three_queues: dict[str, str], task_pool: ArqRedis
) -> None:
    await letters_in_three_queues(task_pool)

    one = cli(three_queues, "purge-dead-letters", "--queue", "bulk", "--yes")
    assert one.returncode == 0, one.stderr
    assert one.stdout == "deleted 2 dead letter(s)\n"
    assert await dead_letters.count(task_pool, key("bulk")) == 0
    assert await dead_letters.count(task_pool, key("critical")) == 1

    await add_dead_letter(task_pool, f"{key('bulk')}:b-3", "slow 3", key("bulk"))
    refused = cli(three_queues, "purge-dead-letters")  # no terminal to confirm at, no --yes
    assert refused.returncode == 1
    assert await dead_letters.count(task_pool, key("critical")) == 1

    every = cli(three_queues, "purge-dead-letters", "--yes")
    assert every.returncode == 0, every.stderr
    assert every.stdout == (
        f"deleted 2 dead letter(s): 1 on queue {key('critical')}, 1 on queue {key('bulk')}\n"
    )
    assert [await dead_letters.count(task_pool, key(q)) for q in QUEUES.split(",")] == [0, 0, 0]

    nothing = cli(three_queues, "purge-dead-letters", "--queue", "default")
    assert nothing.returncode == 0
    assert nothing.stdout == f"no dead letters on queue {key('default')}\n"


@pytest.mark.parametrize("command", ["dead-letters", "purge-dead-letters", "queue-stats"])
async def test_a_queue_that_queues_lacks_is_refused_in_one_line(
    three_queues: dict[str, str], task_pool: ArqRedis, command: str
) -> None:
    await letters_in_three_queues(task_pool)

    yes = ["--yes"] if command == "purge-dead-letters" else []  # nothing to ask: refused first

    result = cli(three_queues, command, "--queue", "urgent", *yes)

    assert result.returncode == 2
    assert result.stderr == "no queue named 'urgent': QUEUES lists critical, default, bulk\n"
    assert result.stdout == ""
    assert await dead_letters.count(task_pool, key("bulk")) == 2
