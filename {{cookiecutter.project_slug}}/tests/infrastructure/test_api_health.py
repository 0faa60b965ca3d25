# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The health checks (api/health.py){% if cookiecutter.cache_backend != "none" %}: liveness asks nothing of Redis; readiness asks Redis, counts the
live workers, and says why when Redis is away (without its password){% endif %}."""

{% if cookiecutter.cache_backend != "none" -%}
import asyncio
{% endif -%}
import contextlib
{%- if cookiecutter.cache_backend != "none" %}
import logging
import os
import signal
{%- endif %}
from collections.abc import AsyncIterator, Iterator
{%- if cookiecutter.cache_backend != "none" %}
from typing import Any, cast
from urllib.parse import quote
{%- endif %}

import httpx
import pytest
{%- if cookiecutter.cache_backend != "none" %}
import redis
from arq.connections import ArqRedis
{%- endif %}
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.config import get_settings
{%- if cookiecutter.cache_backend != "none" %}
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port

from .conftest import Configure, WorkerProcesses

# Every character that needs URL-encoding: the message must show none of it.
PASSWORD = "s3cr@t/p:ss?"
{%- endif %}


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`, in process, with the app's lifespan run around it."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def settings_read_afresh() -> Iterator[None]:
    """Settings a test changes are not left cached for the next one."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
{%- if cookiecutter.cache_backend != "none" %}


async def test_liveness_answers_without_asking_redis(configure: Configure) -> None:
    configure(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    async with serving(create_app()) as client:
        response = await client.get("/health/live")

    assert (response.status_code, response.json()) == (200, {"status": "alive"})


async def test_readiness_counts_the_live_workers_and_needs_none(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    async with serving(create_app()) as client:
        alone = await client.get("/health/ready")
        worker_processes.start()
        for _ in range(600):  # up to 30 s for the worker's first heartbeat
            counted = await client.get("/health/ready")
            if counted.json().get("workers"):
                break
            await asyncio.sleep(0.05)

    assert (alone.status_code, alone.json()) == (200, {"status": "ready", "workers": 0})
    assert (counted.status_code, counted.json()) == (200, {"status": "ready", "workers": 1})


async def test_readiness_counts_each_queue_s_workers_and_each_worker_once(
    task_pool: ArqRedis, worker_processes: WorkerProcesses, configure: Configure
) -> None:
    configure(QUEUES="critical,default,bulk")
    expected = {
        "status": "ready",
        "workers": 2,
        "queues": {"critical": 1, "default": 1, "bulk": 2},
    }
    async with serving(create_app()) as client:
        worker_processes.start(QUEUES="critical,default,bulk")
        worker_processes.start(QUEUES="critical,default,bulk", WORKER_QUEUES="bulk")
        for _ in range(600):  # up to 30 s for every first heartbeat (a worker beats each queue)
            counted = await client.get("/health/ready")
            if counted.json() == expected:
                break
            await asyncio.sleep(0.05)

    assert counted.json() == expected


async def test_the_app_starts_while_redis_is_down_and_is_ready_once_it_is_back(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    configure(REDIS_URL=f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0")

    with caplog.at_level(logging.WARNING):
        async with serving(create_app()) as client:
            down = await client.get("/health/ready")
            live = await client.get("/health/live")
            with LocalRedisServer(port):
                with redis.Redis(port=port) as server:
                    server.config_set("requirepass", PASSWORD)
                back = await client.get("/health/ready")

    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert (down.status_code, down.headers["content-type"]) == (503, "application/problem+json")
    problem = down.json()
    assert (problem["title"], problem["status"]) == ("Service Unavailable", 503)
    assert problem["detail"].startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert "\n" not in problem["detail"]
    assert PASSWORD not in problem["detail"]
    assert quote(PASSWORD, safe="") not in problem["detail"]
    assert live.status_code == 200
    assert (back.status_code, back.json()) == (200, {"status": "ready", "workers": 0})


async def test_readiness_gives_up_after_api_ready_timeout_and_recovers(
    configure: Configure,
) -> None:
    with LocalRedisServer() as server:
        configure(REDIS_URL=server.url, API_READY_TIMEOUT="0.2")
        with redis.Redis(port=server.port) as direct:
            pid = int(cast(dict[str, Any], direct.info())["process_id"])
        async with serving(create_app()) as client:
            os.kill(pid, signal.SIGSTOP)  # connected, and never answering
            try:
                frozen = await client.get("/health/ready")
            finally:
                os.kill(pid, signal.SIGCONT)
            thawed = await client.get("/health/ready")

    assert frozen.status_code == 503
    assert "no answer within 0.2 s" in frozen.json()["detail"]
    assert thawed.status_code == 200


async def test_readiness_says_when_redis_answers_but_would_refuse_writes(
    configure: Configure,
) -> None:
    """A read-only replica answers every PING (a failover DNS has not followed yet): not ready,
    with the reason. A full Redis: tests/test_redis_errors.py."""
    with LocalRedisServer() as server:
        configure(REDIS_URL=f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}/0")
        with redis.Redis(port=server.port) as direct:
            direct.config_set("requirepass", PASSWORD)
        with redis.Redis(port=server.port, password=PASSWORD) as direct:
            async with serving(create_app()) as client:
                direct.replicaof("127.0.0.1", free_port())
                replica = await client.get("/health/ready")
                direct.replicaof("NO", "ONE")
                promoted = await client.get("/health/ready")

    assert (replica.status_code, replica.headers["content-type"]) == (
        503,
        "application/problem+json",
    )
    detail = replica.json()["detail"]
    assert detail.startswith(f"Redis at redis://:***@127.0.0.1:{server.port}/0 refused a write: ")
    assert "read-only replica" in detail
    assert "REDIS_SENTINELS" in detail
    assert quote(PASSWORD, safe="") not in detail
    assert (promoted.status_code, promoted.json()) == (200, {"status": "ready", "workers": 0})
{%- else %}


async def test_liveness_answers_200() -> None:
    async with serving(create_app()) as client:
        response = await client.get("/health/live")

    assert (response.status_code, response.json()) == (200, {"status": "alive"})


async def test_readiness_answers_200_once_started() -> None:
    async with serving(create_app()) as client:
        response = await client.get("/health/ready")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})
{%- endif %}
