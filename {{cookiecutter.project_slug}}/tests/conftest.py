"""One real, throwaway Redis server for the whole session; each test gets it empty.

Queue behaviour is tested against a real server, never a mock: the server comes from
`{{ cookiecutter.package_name }}.infrastructure.redis_server` (see its docstring for which binary).
"""

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, create_worker

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.tasks import (
    WorkerSettings,
    close_task_pool,
    get_task_pool,
)

RunWorker = Callable[..., Coroutine[Any, Any, Worker]]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedisServer]:
    with LocalRedisServer() as server:
        yield server


@pytest.fixture
async def task_pool(
    redis_server: LocalRedisServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ArqRedis]:
    """The application's own pool (`get_task_pool()`), pointed at the test server, emptied."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    get_settings.cache_clear()
    pool = await get_task_pool()
    await pool.flushdb()
    yield pool
    await close_task_pool()
    get_settings.cache_clear()


@pytest.fixture
def run_burst_worker(redis_server: LocalRedisServer) -> RunWorker:
    """Run a worker built from `WorkerSettings` until the queue is empty, then close it.

    Keyword arguments override worker settings; the worker opens its own connection.
    """

    async def run(**overrides: object) -> Worker:
        worker = create_worker(
            # As a dict: arq's settings Protocol rejects concrete job signatures, and a dict of
            # the class's own attributes is exactly what arq reads from it anyway.
            dict(vars(WorkerSettings)),
            redis_settings=RedisSettings.from_dsn(redis_server.url),
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            **overrides,
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker

    return run
