# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A job's live status over HTTP (api/job_stream.py): `GET /jobs/{job_id}/events` from a real
uvicorn process, with real worker processes: each change, then the outcome, then the end;
resuming with Last-Event-ID; 200 streams at once on flat Redis connections and memory; and no
reads left once the clients have gone."""

import asyncio
import importlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.api import job_stream
from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.api.job_stream import MAX_CONCURRENT_READS
from {{ cookiecutter.package_name }}.api.jobs import JobView
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.queue import enqueue_task

from .conftest import WorkerProcesses
from .test_api_server import wait_until_serving

Event = dict[str, Any]


@pytest.fixture(autouse=True)
def progress_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """progress_jobs.py's jobs declared for this test only (they leave the registry after it)."""
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import progress_jobs

    importlib.reload(progress_jobs)


@pytest.fixture
async def api(
    redis_server: LocalRedisServer, task_pool: ArqRedis, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.subprocess.Process]]:
    """A client of a real uvicorn process serving the app, and the process."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", f"{create_app.__module__}:create_app", "--factory"]
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log_file:
        server = await asyncio.create_subprocess_exec(
            *command,
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            env={**os.environ, "REDIS_URL": redis_server.url},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as client:
            await wait_until_serving(client, server)
            yield client, server
    finally:
        server.kill()
        await server.wait()
        print(f"--- uvicorn\n{log_path.read_text(errors='replace')}")


async def events(
    client: httpx.AsyncClient, job_id: str, last_event_id: str | None = None
) -> list[Event]:
    """Every event of the job's stream, until the server ends it: {event, id, data}."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    found: list[Event] = []
    async with client.stream("GET", f"/jobs/{quote(job_id)}/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event: Event = {}
        async for line in stream.aiter_lines():
            if not line:
                if "event" in event:
                    found.append(event)
                event = {}
            elif line.startswith(("event:", "id:", "data:")):
                name, _, value = line.partition(":")
                event[name] = json.loads(value) if name == "data" else value.strip()
    return found


async def test_a_stream_sends_each_change_then_the_outcome_and_ends(
    api: tuple[httpx.AsyncClient, asyncio.subprocess.Process],
    worker_processes: WorkerProcesses,
) -> None:
    client, _ = api
    job = await enqueue_task("slow_steps", 3, 0.7)
    assert job is not None
    worker_processes.start("tests.infrastructure.progress_jobs.WorkerSettings")

    received = await asyncio.wait_for(events(client, job.job_id), 30)

    kinds = [event["event"] for event in received]
    assert kinds[-1] == "outcome"
    assert set(kinds[:-1]) == {"status"}
    assert len({event["id"] for event in received}) == len(received)  # each a new state
    reported = [event["data"].get("progress", {}).get("done") for event in received]
    assert [done for done in reported if done is not None] == [1, 2, 3]
    outcome = received[-1]["data"]
    assert (outcome["status"], outcome["result"], outcome["try"]) == ("complete", 3, 1)
    assert outcome == (await client.get(f"/jobs/{quote(job.job_id)}")).json()

    # Resuming: from an earlier event, the outcome; from the outcome, 204: nothing to send,
    # and no reason for a browser to reconnect.
    resumed = await events(client, job.job_id, last_event_id=received[0]["id"])
    assert [event["event"] for event in resumed] == ["outcome"]
    path = f"/jobs/{quote(job.job_id)}/events"
    seen_all = await client.get(path, headers={"Last-Event-ID": received[-1]["id"]})
    assert (seen_all.status_code, seen_all.content) == (204, b"")


async def test_an_unknown_job_is_a_404_before_any_stream(
    api: tuple[httpx.AsyncClient, asyncio.subprocess.Process],
) -> None:
    client, _ = api
    response = await client.get("/jobs/no-such-job/events")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def rss_bytes(pid: int) -> int:
    """The process's resident memory (Linux's /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def commands_in(pool: ArqRedis, seconds: float) -> int:
    """Commands Redis ran in the next `seconds`, less the INFO calls that count them."""
    before = await pool.info("stats")
    await asyncio.sleep(seconds)
    after = await pool.info("stats")
    return int(after["total_commands_processed"]) - int(before["total_commands_processed"]) - 1


@pytest.mark.slow  # a load test: with the fault tests, in `just test-faults`
async def test_200_streams_share_the_server_s_redis_connections_and_stop_reading_when_gone(
    api: tuple[httpx.AsyncClient, asyncio.subprocess.Process], task_pool: ArqRedis
) -> None:
    client, server = api
    job = await enqueue_task("example_task", "followed")  # no worker: it stays queued
    assert job is not None
    await client.get(f"/jobs/{quote(job.job_id)}")  # the server's pool is open
    clients_before = int((await task_pool.info("clients"))["connected_clients"])
    memory_before = rss_bytes(server.pid)
    first_events: list[str] = []
    opened = asyncio.Event()

    async def follow() -> None:
        async with client.stream("GET", f"/jobs/{quote(job.job_id)}/events") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    first_events.append(line)
                    if len(first_events) == 200:
                        opened.set()
                    await asyncio.sleep(3600)  # hold the stream open

    streams = [asyncio.create_task(follow()) for _ in range(200)]
    try:
        await asyncio.wait_for(opened.wait(), 60)
        clients_during = int((await task_pool.info("clients"))["connected_clients"])
        memory_during = rss_bytes(server.pid)
        reading = await commands_in(task_pool, 2.0)
    finally:
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    await asyncio.sleep(1.0)  # the server sees the clients go
    after = await commands_in(task_pool, 1.5)
    print(
        f"200 streams: Redis clients {clients_before} -> {clients_during}, server memory "
        f"{memory_before / 2**20:.1f} -> {memory_during / 2**20:.1f} MiB, {reading / 2} "
        f"commands/s while open, {after} in 1.5 s after"
    )

    assert first_events == ["event: status"] * 200
    assert clients_during - clients_before <= MAX_CONCURRENT_READS
    assert memory_during - memory_before < 40 * 2**20
    assert 0 < reading < 100  # one job read every 0.5 s, for all 200 streams
    assert after == 0  # nobody follows the job: no reads
    healthy = await client.get("/health/live")
    assert healthy.status_code == 200


async def test_a_stream_waits_out_redis_going_away_and_reads_on(
    task_pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await enqueue_task("example_task", "followed while Redis is away")
    assert job is not None
    finished = JobView(
        job_id=job.job_id,
        function="example_task",
        status="complete",
        job_try=1,
        enqueued_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
    )
    answers: list[JobView | Exception] = [ConnectionError("Redis is away"), finished]

    async def read_view(job: Any) -> JobView | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(job_stream, "read_view", read_view)
    monkeypatch.setattr(job_stream, "WATCH_INTERVAL_SECONDS", 0.01)

    async def follow() -> list[JobView | None]:
        return [view async for view in job_stream.JobWatcher().views(job)]

    views = await asyncio.wait_for(follow(), 10)

    assert views == [finished]  # the failed read was waited out, not the end of the stream
