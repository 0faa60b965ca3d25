# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The template's own tests' fixtures: workers, worker processes, settings, dead letters.

Queue behaviour is tested against a real server, never a mock. That server and the pool on it,
`redis_server` (one per session) and `task_pool` (emptied for each test), come from the plugin
`infrastructure/testing.py`, which tests/conftest.py loads for your tests and these alike.
"""

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from arq.connections import ArqRedis, RedisSettings

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.keys import namespaced_job_id
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, Watcher
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.depth import queue_stats
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.loop import Worker, create_worker

Configure = Callable[..., None]
RunWorker = Callable[..., Coroutine[Any, Any, Worker]]
RunningWorker = Callable[..., contextlib.AbstractAsyncContextManager[Worker]]


# Worker processes in tests beat every second, so a dead one is noticed within seconds.
TEST_HEARTBEAT_SECONDS = 1.0
PASSWORD = "p@ss/w:rd?x"  # every character that needs URL-encoding


@pytest.fixture
def password_server() -> Iterator[LocalRedisServer]:
    """A second server of our own, with `PASSWORD` (the shared one has none)."""
    with LocalRedisServer() as server:
        with redis.Redis(port=server.port) as client:
            client.config_set("requirepass", PASSWORD)
        yield server


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Configure:
    """`configure(WORKER_RETRY_BASE="0.2")`: change settings through the environment, as a
    deployment does, and make the next `get_settings()` read them."""

    def set_environment(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    return set_environment


def full_id(job_id: str) -> str:
    """The id the project gives a job queued as `job_id` on its default queue: the queue's key,
    then `job_id` (`{my-arq-service:default}:order-42`, keys.py)."""
    return namespaced_job_id(get_settings().queue_name, job_id)


def make_worker(redis_url: str, **overrides: Any) -> Worker:
    """The project's worker built from `WorkerSettings`, as `just worker` builds it, with
    test-friendly overrides. No cron jobs unless a test passes `cron_jobs`: a tick that falls
    due during a test (every minute, at second 0) would run beside its jobs and change its
    counts."""
    return create_worker(
        # As a dict: arq's settings Protocol rejects concrete job signatures, and a dict of
        # the class's own attributes is exactly what arq reads from it anyway.
        dict(vars(WorkerSettings)),
        **{
            "redis_settings": RedisSettings.from_dsn(redis_url),
            "poll_delay": 0.01,
            "handle_signals": False,
            "cron_jobs": (),
            **overrides,
        },
    )


@pytest.fixture
def run_burst_worker(redis_server: LocalRedisServer) -> RunWorker:
    """Run a worker until the queue is empty, then close it; keywords override settings."""

    async def run(**overrides: Any) -> Worker:
        worker = make_worker(redis_server.url, burst=True, **overrides)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker

    return run


@pytest.fixture
def running_worker(redis_server: LocalRedisServer) -> RunningWorker:
    """`async with running_worker(**overrides) as worker:` a worker polling in the background."""

    @contextlib.asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Worker]:
        worker = make_worker(redis_server.url, **overrides)
        task = asyncio.create_task(worker.async_run())
        try:
            yield worker
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await worker.close()

    return run


async def sleeps(ctx: dict[str, Any]) -> None:
    """A job that says it started, then runs for 30 s: register it with `arq_function(sleeps)`."""
    await ctx["redis"].set("sleeps:started", 1)
    await asyncio.sleep(30)


async def wait_until_started(pool: ArqRedis) -> None:
    """Wait up to 5 s for `sleeps` to start."""
    for _ in range(250):
        if await pool.exists("sleeps:started"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the job did not start within 5 s")


class WorkerProcesses:
    """Real worker processes, as `just worker` starts them, each logging to
    `worker-<n>.log` in `logs`; `stop_all` kills whatever is left running."""

    def __init__(self, environment: dict[str, str], logs: Path) -> None:
        self.environment = environment
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []
        self.watchers: list[Watcher] = []

    def start(
        self,
        settings: str = f"{WorkerSettings.__module__}.WorkerSettings",
        *,
        plain_arq: bool = False,
        **variables: str,
    ) -> subprocess.Popen[bytes]:
        """Start a worker on `settings` (a dotted path), with extra environment `variables`;
        with `plain_arq`, the `arq` command's worker (arq's own loop) instead of the project's."""
        command = "arq" if plain_arq else Worker.__module__.rpartition(".")[0]  # worker/__main__.py
        with self.log_path(len(self.started)).open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", command, settings],
                cwd=Path(__file__).parents[2],
                env={**self.environment, **variables},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own, for the watcher to stop
            )
        self.started.append(worker)
        # Stopped even if this test run is killed (redis_server.py's Watcher).
        self.watchers.append(Watcher(worker, grace=5))
        return worker

    def log_path(self, index: int) -> Path:
        return self.logs / f"worker-{index}.log"

    def log(self, index: int) -> str:
        return self.log_path(index).read_text(errors="replace")

    def stop_all(self) -> None:
        for worker, watcher in zip(self.started, self.watchers, strict=True):
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            watcher.release()


@pytest.fixture
def worker_processes(
    redis_server: LocalRedisServer, task_pool: ArqRedis, tmp_path: Path
) -> Iterator[WorkerProcesses]:
    """Worker processes on the test server with a one-second heartbeat; their logs' tails are
    printed (pytest shows them for a failed test)."""
    environment = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "WORKER_HEALTH_CHECK_INTERVAL": str(TEST_HEARTBEAT_SECONDS),
    }
    workers = WorkerProcesses(environment, tmp_path)
    yield workers
    workers.stop_all()
    for index in range(len(workers.started)):
        print(f"--- worker {index}", *workers.log(index).splitlines()[-15:], sep="\n")


async def wait_until_listed(pool: ArqRedis, running: int) -> None:
    """Wait up to 5 s until the live workers list `running` jobs as running (heartbeat.py): the
    jobs they run and those they have read ahead (worker.py)."""
    for _ in range(250):
        if (await queue_stats(pool, get_settings().queue_name)).running >= running:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the workers did not list {running} running jobs within 5 s")


async def command_calls(pool: ArqRedis, command: str) -> int:
    """How many times the server has run `command` so far (INFO commandstats; lower case)."""
    stats = await pool.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def add_dead_letter(pool: ArqRedis, job_id: str = "dead-1") -> None:
    """Record one dead letter on the project's queue, as a job of `example_task` that failed."""
    now = datetime.now(UTC)
    letter = dead_letters.DeadLetter(
        job_id=job_id,
        function="example_task",
        args=[],
        kwargs={},
        error_type="PermanentError",
        error="refused",
        tries=1,
        enqueued_at=now,
        failed_at=now,
    )
    await dead_letters.add(pool, get_settings().queue_name, letter, limit=10)
