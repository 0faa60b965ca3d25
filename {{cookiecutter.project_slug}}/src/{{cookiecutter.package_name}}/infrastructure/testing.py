# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Fixtures for testing your jobs against a real Redis: a pytest plugin, which tests/conftest.py
loads (`pytest_plugins`), so every test may ask for them by name.

    from {{ cookiecutter.package_name }}.infrastructure.testing import BurstWorker, RunJob
    from {{ cookiecutter.package_name }}.jobs import example_task

    async def test_inline(run_job: RunJob) -> None:
        assert await run_job(example_task, "hi") == "Processed: hi"  # mypy checks the arguments

    async def test_through_a_worker(burst_worker: BurstWorker) -> None:
        queued = await example_task.enqueue("hi")
        await burst_worker()
        assert await queued.result() == "Processed: hi"

- `redis_server` (one per test session): a throwaway Redis server (local/redis_server.py).
- `task_pool`: the project's pool, `get_task_pool()`, on that server, emptied for this test
  (REDIS_URL points at the server). `run_job` and `burst_worker` read the settings afresh each
  time they run, so a test changes one with `monkeypatch.setenv("WORKER_MAX_TRIES", "1")`.
- `run_job`: `await run_job(job, *args, **kwargs)` runs one job inline, in the test, with the
  `ctx` a worker gives it, your `worker_lifespan` open around it; it returns what the job
  returns or raises what the job raises. No retries, no time limit: the function itself.
- `burst_worker`: `await burst_worker()` runs the project's worker (your lifespan included)
  until nothing is queued, then stops it; it raises arq's `FailedJobs` if a job failed.

Tests do not read `.env` (`pytest_configure` below): settings come from the environment alone.

docs/testing.md says more.
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from arq.connections import ArqRedis
from arq.worker import FailedJobs

from ..config import get_settings
from ..worker_lifespan import worker_lifespan
from .client.enqueue import close_task_pool, get_task_pool
from .job_types import JobContext, JobFn, P, R
from .local.redis_server import LocalRedisServer
from .settings import IGNORE_DOTENV
from .store.connection import redis_settings
from .store.progress import close_progress
from .worker.loop import Worker, create_worker

__all__ = [
    "BurstWorker",
    "FailedJobs",
    "RunJob",
    "burst_worker",
    "redis_server",
    "run_job",
    "task_pool",
]

# How often the burst worker looks for due jobs (the default, 0.5 s, would slow every test).
BURST_POLL_SECONDS = 0.01


def pytest_configure(config: pytest.Config) -> None:
    """Tests, and the processes they start, read settings from the environment alone, not
    `.env` (settings.py): what a developer keeps there (QUEUES, DASHBOARD_PASSWORD) would change
    what the tests test. A test sets what it needs with `monkeypatch.setenv`. (tests/conftest.py
    loads this plugin; a project without a queue sets the same in its conftest.py.)"""
    os.environ[IGNORE_DOTENV] = "1"


class RunJob:
    """Runs one job inline: `await run_job(job, *args, **kwargs)` -> what the job returns.

    `job` is a declared job (`@job`, `@cron_job`) or any `async def job(ctx, ...)`. Its `ctx`
    is the one a worker gives a job: `redis` (the project's pool), `job_id` (new for each run),
    `job_try`, `enqueue_time`, `score`, `queue_name`; then `worker_lifespan(ctx)` opens around
    the call, so what it puts in `ctx` is there, and is closed after. The job's own exception
    comes out as it raised it: no retries, no dead letter, no time limit. Its last progress
    report (`report_progress`) is written when it ends, as a worker writes it.
    """

    def __init__(
        self, pool: ArqRedis, *, job_try: int = 1, context: dict[str, Any] | None = None
    ) -> None:
        self.pool = pool
        self.job_try = job_try
        self.context = context or {}

    def options(self, *, job_try: int = 1, **context: Any) -> "RunJob":
        """This runner with another `job_try` (a retry's number: the first try is 1), and
        `ctx` entries set after the lifespan has opened, so they replace its resources
        (`run_job.options(http=fake_client)`)."""
        return RunJob(self.pool, job_try=job_try, context={**self.context, **context})

    def new_context(self) -> JobContext:
        """A job's `ctx` as arq builds it, before the lifespan opens."""
        get_settings.cache_clear()  # what the test changed with monkeypatch.setenv counts
        now = datetime.now(UTC)
        return {
            "redis": self.pool,
            "job_id": uuid.uuid4().hex,
            "job_try": self.job_try,
            "enqueue_time": now,
            "score": int(now.timestamp() * 1000),
            "queue_name": get_settings().queue_name,
        }

    async def __call__(self, job: JobFn[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = self.new_context()
        async with worker_lifespan(ctx):
            ctx.update(self.context)
            try:
                return await job(ctx, *args, **kwargs)
            finally:
                await close_progress(ctx)  # its last progress report, written as a worker does


class BurstWorker:
    """Runs the project's worker until nothing is queued: `await burst_worker()` -> the worker
    (its `jobs_complete`, `jobs_failed`, `jobs_retried` counts).

    The worker is built from `WorkerSettings` (tasks.py), as `just worker` builds it: every
    declared job, retries and dead letters, the start-up hooks and your `worker_lifespan`. It
    runs the jobs due now, and those that fall due while it runs (a retry after its backoff, a
    job that another queued), then stops. It raises arq's `FailedJobs` if any job failed for
    good (`check=False`: it does not, and the test reads the failure from the job's result).
    Keywords override the settings (`max_jobs=1`); cron jobs are off unless a test passes
    `cron_jobs`, as a tick falling due mid-test would run beside the test's jobs.
    """

    async def __call__(self, *, check: bool = True, **overrides: Any) -> Worker:
        from .tasks import WorkerSettings  # here: it reads the settings when it is imported

        get_settings.cache_clear()  # what the test changed with monkeypatch.setenv counts
        settings = get_settings()
        worker = create_worker(
            # As a dict: arq's settings Protocol rejects concrete job signatures, and a dict of
            # the class's own attributes is exactly what arq reads from it anyway.
            dict(vars(WorkerSettings)),
            **{
                # Read now, from this test's settings (WorkerSettings read them at import).
                "redis_settings": redis_settings(settings),
                "queue_name": settings.queue_name,
                "max_tries": settings.worker_max_tries,
                "burst": True,
                "handle_signals": False,
                "poll_delay": BURST_POLL_SECONDS,
                "cron_jobs": (),
                **overrides,
            },
        )
        try:
            if check:
                await worker.run_check()  # raises FailedJobs, with the failed jobs' results
            else:
                await worker.async_run()
        finally:
            await worker.close()
        return worker


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedisServer]:
    """One throwaway Redis server for the whole test session."""
    with LocalRedisServer() as server:
        yield server


@pytest_asyncio.fixture
async def task_pool(
    redis_server: LocalRedisServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ArqRedis]:
    """The application's own pool (`get_task_pool()`), pointed at the test server, emptied.

    Settings are read afresh for each test, so a test can change them with `monkeypatch.setenv`
    (then `get_settings.cache_clear()`) before it runs a worker.
    """
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    get_settings.cache_clear()
    pool = await get_task_pool()
    await pool.flushdb()
    yield pool
    await close_task_pool()
    get_settings.cache_clear()


@pytest.fixture
def run_job(task_pool: ArqRedis) -> RunJob:
    """`await run_job(job, *args, **kwargs)`: one job run inline on the test's Redis (`RunJob`)."""
    return RunJob(task_pool)


@pytest.fixture
def burst_worker(task_pool: ArqRedis) -> BurstWorker:
    """`await burst_worker()`: the project's worker, run until the test's jobs are done."""
    return BurstWorker()
