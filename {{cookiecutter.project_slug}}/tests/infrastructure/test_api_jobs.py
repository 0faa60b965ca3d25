# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The job routes (api/examples.py on api/job_requests.py, and api/jobs.py), in process, against
the test Redis and real worker processes: queue a job, follow it to its result or error, abort
it, and what a client gets when its request is invalid or Redis is away."""

import asyncio
import contextlib
import importlib
import itertools
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, in_progress_key_prefix, retry_key_prefix
from fastapi import FastAPI, HTTPException
from pydantic import Field, SecretStr, ValidationError

from {{ cookiecutter.package_name }}.api import dependencies
from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.api.dependencies import authorize, current_settings
from {{ cookiecutter.package_name }}.api.job_requests import idempotent_job_id
from {{ cookiecutter.package_name }}.config import Settings, get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.keys import abort_requests_key, bare_job_id, queue_of
from {{ cookiecutter.package_name }}.infrastructure.limits import limit_wait_key
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.store.job_handle import abort_mark_key
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError, enqueue_task, get_job

from .conftest import Configure, WorkerProcesses, full_id


async def fails_for_good(ctx: JobContext, reason: str) -> None:
    raise PermanentError(reason)


async def runs_until_aborted(ctx: JobContext) -> None:
    await asyncio.sleep(60)


async def outlives_aborts(ctx: JobContext) -> None:
    """Ignores cancellation, so an abort cannot stop it (the test's worker is killed after)."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)


# What the worker processes run: the project's jobs and the ones above, no cron jobs.
WorkerSettings = {
    **vars(ProjectSettings),
    "functions": (
        *ProjectSettings.functions,
        arq_function(fails_for_good),
        arq_function(runs_until_aborted),
        arq_function(outlives_aborts),
    ),
    "cron_jobs": (),
}
WORKER_SETTINGS = f"{__name__}.WorkerSettings"
PROBLEM = "application/problem+json"


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
    """Settings a test changes (`configure`) are not left cached for the next one."""
    yield
    get_settings.cache_clear()


@pytest.fixture
async def client(task_pool: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app on the test server, emptied."""
    async with serving(create_app()) as client:
        yield client


async def wait_for_status(
    client: httpx.AsyncClient, job_id: str, *statuses: str, seconds: float = 30
) -> dict[str, Any]:
    """Poll `GET /jobs/{job_id}` until the job has one of `statuses`; returns its view."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await client.get(f"/jobs/{job_id}")
        view: dict[str, Any] = response.json()
        if response.status_code == 200 and view["status"] in statuses:
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"after {seconds} s, job {job_id} is {view}, not {statuses}")
        await asyncio.sleep(0.05)


async def test_a_queued_example_completes_with_its_result(
    client: httpx.AsyncClient, worker_processes: WorkerProcesses
) -> None:
    accepted = await client.post("/examples", json={"message": "Hello!"})
    body = accepted.json()

    assert accepted.status_code == 202
    assert queue_of(body["job_id"]) == get_settings().queue_name  # {<QUEUE_PREFIX>:default}:...
    # The braces of the queue's key are percent-encoded in the path.
    path = "/jobs/" + body["job_id"].replace("{", "%7B").replace("}", "%7D")
    assert accepted.headers["location"] == body["status_url"] == path
    queued = (await client.get(body["status_url"])).json()
    assert (queued["status"], queued["try"], queued["started_at"]) == ("queued", 1, None)
    assert queued.keys().isdisjoint({"result", "error"})
    # The id without its queue's key is read in the default queue: the same job.
    assert (await client.get(f"/jobs/{bare_job_id(body['job_id'])}")).json() == queued

    worker_processes.start(WORKER_SETTINGS)
    done = await wait_for_status(client, body["job_id"], "complete", "failed", "aborted")

    assert done["status"] == "complete"
    assert done["result"] == "Processed: Hello!"
    assert (done["job_id"], done["function"], done["try"]) == (body["job_id"], "example_task", 1)
    assert done["enqueued_at"] <= done["started_at"] <= done["finished_at"]
    assert "error" not in done


async def test_a_job_that_fails_for_good_reads_as_failed_with_its_error(
    client: httpx.AsyncClient, task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    queued = await task_pool.enqueue_job("fails_for_good", "disk full")
    assert queued is not None
    worker_processes.start(WORKER_SETTINGS)

    failed = await wait_for_status(client, queued.job_id, "failed", "complete", "aborted")

    assert failed["status"] == "failed"
    assert failed["error"] == {"type": "PermanentError", "message": "disk full"}
    assert (failed["function"], failed["try"]) == ("fails_for_good", 1)
    assert "result" not in failed


async def test_aborting_a_running_job_answers_with_it_aborted(
    client: httpx.AsyncClient,
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    configure: Configure,
) -> None:
    configure(API_ABORT_WAIT="20")  # the worker cancels it within one poll: 200, not 202
    queued = await task_pool.enqueue_job("runs_until_aborted")
    assert queued is not None
    worker_processes.start(WORKER_SETTINGS)
    running = await wait_for_status(client, queued.job_id, "in_progress")
    assert running["try"] == 1

    response = await client.delete(f"/jobs/{queued.job_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "aborted"
    assert response.json()["error"]["type"] == "JobAborted"
    assert (await client.get(f"/jobs/{queued.job_id}")).json()["status"] == "aborted"
    again = await client.delete(f"/jobs/{queued.job_id}")
    assert (again.status_code, again.headers["content-type"]) == (409, PROBLEM)


async def test_aborting_a_job_that_keeps_running_answers_202_and_the_abort_stands(
    client: httpx.AsyncClient,
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    configure: Configure,
) -> None:
    configure(API_ABORT_WAIT="0.2")
    queued = await task_pool.enqueue_job("outlives_aborts")
    assert queued is not None
    worker_processes.start(WORKER_SETTINGS)
    await wait_for_status(client, queued.job_id, "in_progress")

    response = await client.delete(f"/jobs/{queued.job_id}")

    assert response.status_code == 202
    assert response.json()["status"] == "in_progress"
    # The request stands: a worker that sees the job stop will record it as aborted. (arq's own
    # abort set is no proof: the worker takes the id out of it each time it cancels the task.)
    mark = await task_pool.get(abort_mark_key(get_settings().queue_name, queued.job_id))
    assert mark is not None
    assert mark.startswith(b"requested:")


async def test_aborting_a_queued_job_removes_it_without_a_worker(
    client: httpx.AsyncClient,
) -> None:
    job_id = (await client.post("/examples", json={"message": "never"})).json()["job_id"]

    response = await client.delete(f"/jobs/{job_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "aborted"
    assert response.json()["error"] == {
        "type": "JobAborted",
        "message": "aborted before it started",
    }


async def test_a_job_waiting_for_its_limit_says_why_and_can_be_aborted(
    client: httpx.AsyncClient,
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import limit_jobs

    importlib.reload(limit_jobs)  # its jobs, for this test only: `alone` runs one at a time
    worker_processes.start(f"{limit_jobs.__name__}.WorkerSettings")
    running = await enqueue_task("alone", "running", 30.0)
    assert running is not None
    await wait_for_status(client, quote(running.job_id), "in_progress")
    waiting = await enqueue_task("alone", "waiting", 0.0)
    assert waiting is not None
    path = f"/jobs/{quote(waiting.job_id)}"

    async def said() -> dict[str, Any]:
        for _ in range(100):  # until the worker has looked at it: at once, with a token
            view: dict[str, Any] = (await client.get(path)).json()
            if "waiting_for" in view:
                return view
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path} never said why it waits")

    view = await said()
    aborted = await client.delete(path)

    assert (view["status"], view["waiting_for"]) == (
        "deferred",
        "max_concurrency: 1 job of alone is running",
    )
    assert aborted.json()["status"] == "aborted"
    assert "waiting_for" not in aborted.json()


async def test_a_job_s_view_is_read_at_one_moment_while_it_is_parked_freed_and_started(
    client: httpx.AsyncClient, task_pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No worker: the test parks the job and frees it, as a claim and a released lease do
    # (limits.py), each in one transaction, while the route reads it. A view read in pieces
    # showed "queued" with the reason of a parked job (the CI run of 2026-12-07).
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import limit_jobs

    importlib.reload(limit_jobs)
    queued = await enqueue_task("alone", "parked and freed", 0.0)
    assert queued is not None
    queue, job_id = queued.queue_name, queued.job_id
    wait_key = limit_wait_key(queue, job_id)
    stop = asyncio.Event()

    async def park_free_and_start() -> None:
        # Each change of state is one transaction, as the worker's are; the job cycles through
        # queued, parked for its limit, queued, started on its first try.
        states: list[tuple[float, dict[str, Any]]] = [
            (4_000_000_000_000, {wait_key: "concurrency"}),
            (1, {}),
            (1, {in_progress_key_prefix + job_id: "1", retry_key_prefix + job_id: "1"}),
            (1, {}),
        ]
        written = [wait_key, in_progress_key_prefix + job_id, retry_key_prefix + job_id]
        pace = random.Random(7)
        for score, keys in itertools.cycle(states):
            if stop.is_set():
                return
            async with task_pool.pipeline(transaction=True) as pipe:
                pipe.zadd(queue, {job_id: score})
                pipe.delete(*written)
                for key, value in keys.items():
                    pipe.set(key, value)
                await pipe.execute()
            for _ in range(pace.randrange(3)):  # so the changes do not keep step with the reads
                await task_pool.ping()

    toggling = asyncio.create_task(park_free_and_start())
    try:
        views = [(await client.get(f"/jobs/{quote(queued.job_id)}")).json() for _ in range(200)]
    finally:
        stop.set()
        await toggling

    shown = {(view["status"], view.get("waiting_for"), view["try"]) for view in views}
    assert shown == {
        ("queued", None, 1),
        ("deferred", "max_concurrency: 1 job of alone is running", 1),
        ("in_progress", None, 1),
    }


async def test_a_job_s_progress_is_shown_while_it_runs_and_after_it_ends(
    client: httpx.AsyncClient, worker_processes: WorkerProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import progress_jobs

    importlib.reload(progress_jobs)  # its jobs, for this test only
    worker_processes.start(f"{progress_jobs.__name__}.WorkerSettings")
    queued = await enqueue_task("steps_then_waits", 4, 2.0)
    assert queued is not None
    path = f"/jobs/{quote(queued.job_id)}"

    running = await wait_for_status(client, quote(queued.job_id), "in_progress")
    for _ in range(50):  # the last step's report is written within 0.25 s
        if running.get("progress", {}).get("done") == 4:
            break
        await asyncio.sleep(0.05)
        running = (await client.get(path)).json()
    done = await wait_for_status(client, quote(queued.job_id), "complete", "failed")

    assert running["status"] == "in_progress"
    assert {k: v for k, v in running["progress"].items() if k != "updated_at"} == {
        "done": 4,
        "total": 4,
        "note": "step 4",
        "try": 1,
    }
    assert running["progress"]["updated_at"].endswith("Z")
    assert done["status"] == "complete"
    assert done["progress"]["done"] == 4  # kept with the result


async def test_aborting_an_unknown_job_is_404_and_a_later_job_with_its_id_runs(
    client: httpx.AsyncClient, task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    job_id = full_id(idempotent_job_id("example_task", "order-7"))

    response = await client.delete(f"/jobs/{job_id}")

    assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM)
    # No abort request left over, in the queue's abort requests or in arq's own set.
    abort_requests = abort_requests_key(get_settings().queue_name)
    assert await task_pool.exists(abort_requests, abort_jobs_ss) == 0
    worker_processes.start(WORKER_SETTINGS)
    headers = {"Idempotency-Key": "order-7"}
    accepted = await client.post("/examples", json={"message": "later"}, headers=headers)
    assert accepted.json()["job_id"] == job_id
    done = await wait_for_status(client, job_id, "complete", "failed", "aborted")
    assert (done["status"], done["result"]) == ("complete", "Processed: later")


async def test_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/no-such-job")

    assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM)
    assert response.json()["detail"].startswith(f"no job {full_id('no-such-job')!r}")


async def test_the_same_idempotency_key_gives_the_same_job(
    client: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    key = {"Idempotency-Key": "3f0c2c1e-6d1a-4c55-9d3e-6b0f5a1d2e77"}
    first = await client.post("/examples", json={"message": "once"}, headers=key)
    again = await client.post("/examples", json={"message": "once"}, headers=key)
    other = await client.post(
        "/examples", json={"message": "once"}, headers={"Idempotency-Key": "x"}
    )

    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert other.json()["job_id"] != first.json()["job_id"]
    assert await task_pool.zcard(get_settings().queue_name) == 2
    assert (await client.get(first.json()["status_url"])).json()["status"] == "queued"


async def test_an_idempotency_key_sent_again_with_another_body_is_409_and_queues_nothing(
    client: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    key = {"Idempotency-Key": "0d6c4b0e-35b4-4bd4-8d0e-4d1a3f7e9b21"}
    first = await client.post("/examples", json={"message": "refund 10"}, headers=key)
    other = await client.post("/examples", json={"message": "refund 1000"}, headers=key)
    # The same request, written differently, is the same request.
    json_type = {**key, "content-type": "application/json"}
    same = await client.post("/examples", content=b'{ "message" : "refund 10" }', headers=json_type)

    assert first.status_code == same.status_code == 202
    assert same.json() == first.json()
    assert (other.status_code, other.headers["content-type"]) == (409, PROBLEM)
    assert "Idempotency-Key" in other.json()["detail"]
    assert first.json()["job_id"] not in other.text  # a guessed key does not reveal the job
    assert await task_pool.zcard(get_settings().queue_name) == 1
    info = await (await get_job(first.json()["job_id"])).info()
    assert info is not None
    assert info.kwargs["message"] == "refund 10"


async def test_an_idempotency_key_is_checked_against_its_job_once_the_job_has_finished(
    client: httpx.AsyncClient, worker_processes: WorkerProcesses
) -> None:
    key = {"Idempotency-Key": "9a8f1f0e-0c7b-4f57-a3c8-2f9e0c6d1b44"}
    worker_processes.start(WORKER_SETTINGS)
    first = await client.post("/examples", json={"message": "ship it"}, headers=key)
    # 60 s: a worker started on a loaded machine has been seen to take over 30 to start.
    finished = ("complete", "failed", "aborted")
    await wait_for_status(client, first.json()["job_id"], *finished, seconds=60)

    same = await client.post("/examples", json={"message": "ship it"}, headers=key)
    other = await client.post("/examples", json={"message": "ship it twice"}, headers=key)

    assert (same.status_code, same.json()) == (202, first.json())
    assert (other.status_code, other.headers["content-type"]) == (409, PROBLEM)
    done = (await client.get(first.json()["status_url"])).json()
    assert (done["status"], done["result"]) == ("complete", "Processed: ship it")


@pytest.mark.parametrize("key", ["has space", "x" * 256, "tab\there"])
async def test_a_malformed_idempotency_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/examples", json={"message": "hi"}, headers={"Idempotency-Key": key}
    )

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize("job_id", ["a b", "x" * 257, "naïve", "semi;colon"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_malformed_job_id_is_422(
    client: httpx.AsyncClient, method: str, job_id: str
) -> None:
    response = await client.request(method, f"/jobs/{job_id}")

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    assert [error["loc"] for error in response.json()["errors"]] == [["path", "job_id"]]


@pytest.mark.parametrize(
    "body",
    [{"message": "hi", "priority": 1}, {}, {"message": ""}, {"message": "x" * 1001}, ["hi"]],
)
async def test_an_invalid_body_is_422_with_each_error(
    client: httpx.AsyncClient, task_pool: ArqRedis, body: Any
) -> None:
    response = await client.post("/examples", json=body)

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    problem = response.json()
    assert problem["detail"].startswith("invalid request: body")
    assert all(error["loc"][0] == "body" for error in problem["errors"])
    assert "input" not in problem["errors"][0]  # what was sent is not echoed back
    assert await task_pool.zcard(get_settings().queue_name) == 0


async def test_a_body_over_the_limit_is_413_before_the_route_runs(
    task_pool: ArqRedis, configure: Configure
) -> None:
    configure(API_MAX_BODY_BYTES="100")

    async def streamed(*chunks: bytes) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    json_type = {"content-type": "application/json"}
    async with serving(create_app()) as client:
        declared = await client.post("/examples", json={"message": "x" * 100})
        chunked = await client.post(
            "/examples", content=streamed(b'{"message": "', b"x" * 100, b'"}'), headers=json_type
        )
        small = await client.post(
            "/examples", content=streamed(b'{"message": ', b'"small"}'), headers=json_type
        )
        queued = await task_pool.zcard(get_settings().queue_name)

    for response in (declared, chunked):
        assert (response.status_code, response.headers["content-type"]) == (413, PROBLEM)
        assert "100 bytes" in response.json()["detail"]
    assert small.status_code == 202  # a body within the limit reaches the route whole
    assert queued == 1


async def test_job_routes_and_readiness_answer_503_while_redis_is_down_then_recover(
    configure: Configure,
) -> None:
    server = LocalRedisServer().start()
    try:
        configure(REDIS_URL=server.url)
        async with serving(create_app()) as client:
            assert (await client.post("/examples", json={"message": "up"})).status_code == 202

            server.stop()
            down = [
                await client.get("/health/ready"),
                await client.post("/examples", json={"message": "down"}),
                await client.get("/jobs/some-job"),
                await client.delete("/jobs/some-job"),
            ]
            server = LocalRedisServer(server.port).start()
            back = [
                await client.get("/health/ready"),
                await client.post("/examples", json={"message": "back"}),
                await client.get("/jobs/some-job"),
            ]
    finally:
        server.stop()

    for response in down:
        assert (response.status_code, response.headers["content-type"]) == (503, PROBLEM)
        assert response.json()["detail"].startswith(f"cannot reach Redis at {server.url}")
    assert [response.status_code for response in back] == [200, 202, 404]


async def test_job_routes_ask_authorize_and_the_health_checks_do_not(
    task_pool: ArqRedis,
) -> None:
    async def deny() -> None:
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})

    app = create_app()
    app.dependency_overrides[authorize] = deny
    async with serving(app) as client:
        refused = [
            await client.post("/examples", json={"message": "hi"}),
            await client.get("/jobs/some-job"),
            await client.delete("/jobs/some-job"),
        ]
        ready = await client.get("/health/ready")
        queued = await task_pool.zcard(get_settings().queue_name)

    for response in refused:
        assert (response.status_code, response.headers["content-type"]) == (401, PROBLEM)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "a valid bearer token is required"
    assert ready.status_code == 200
    assert queued == 0


PROJECT = Path(__file__).parents[2]


def documented_bearer_check() -> tuple[type[Settings], Callable[..., Any]]:
    """docs/api.md's bearer check, as its Authentication section says to write it: the settings
    with its field added to config.py's `Settings`, and its `authorize`, run in the namespace of
    api/dependencies.py as if pasted there."""
    docs = (PROJECT / "docs" / "api.md").read_text()
    section = docs.split("\n## Authentication\n", 1)[1].split("\n## ", 1)[0]
    field, code = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    settings: dict[str, Any] = {"Settings": Settings, "SecretStr": SecretStr, "Field": Field}
    exec(f"class TokenSettings(Settings):\n{field}", settings)
    namespace = dict(vars(dependencies))
    exec(code, namespace)
    return settings["TokenSettings"], namespace["authorize"]


async def test_the_bearer_check_docs_api_md_shows_guards_every_job_route(
    task_pool: ArqRedis, configure: Configure
) -> None:
    token_settings_type, documented_authorize = documented_bearer_check()
    configure(API_TOKEN="")
    with pytest.raises(ValidationError, match="api_token"):
        token_settings_type()  # an empty token would let a request without one through
    configure(API_TOKEN="s3cret-token")

    async def token_settings() -> Settings:
        return token_settings_type()  # api_token from API_TOKEN

    app = create_app()
    app.dependency_overrides[authorize] = documented_authorize
    app.dependency_overrides[current_settings] = token_settings
    routes = [("POST", "/examples"), ("GET", "/jobs/some-job"), ("DELETE", "/jobs/some-job")]
    refused_credentials: list[dict[str, Any]] = [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic czNjcmV0LXRva2Vu"},
        {"Authorization": "Bearer s3cret-tökén".encode("latin-1")},  # not ASCII: no 500
    ]
    async with serving(app) as client:
        refused = [
            await client.request(method, path, json={"message": "hi"}, headers=headers)
            for method, path in routes
            for headers in refused_credentials
        ]
        ready = await client.get("/health/ready")
        token = {"Authorization": "Bearer s3cret-token"}
        allowed = [
            await client.request(method, path, json={"message": "hi"}, headers=token)
            for method, path in routes
        ]
        queued = await task_pool.zcard(get_settings().queue_name)

    for response in refused:
        assert (response.status_code, response.headers["content-type"]) == (401, PROBLEM)
        assert response.headers["www-authenticate"] == "Bearer"
    assert ready.status_code == 200
    assert [response.status_code for response in allowed] == [202, 404, 404]
    assert queued == 1


# What the README's commands are run against: its URL, and the job id of the last POST.
README_BASE_URL = "http://127.0.0.1:8000"
README_JOB_ID = "<job_id>"


def readme_api_commands() -> list[tuple[str, str]]:
    """The README's curl commands, in order, each with the answer it shows: the `# {...}`
    line under it (`...` stands for any text, `<job_id>` for the last POST's job id)."""
    text = (PROJECT / "README.md").read_text()
    lines = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
        for line in block.splitlines()
    ]
    commands = []
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith("curl "):
            assert after.startswith("# {"), f"the README shows no answer under {line!r}"
            commands.append((line, after.removeprefix("# ")))
    return commands


def shown_answer(answer: str, job_id: str | None) -> re.Pattern[str]:
    pattern = re.escape(answer.replace(README_JOB_ID, job_id or README_JOB_ID))
    return re.compile(pattern.replace(re.escape("..."), ".*"))


def text_of(log: Path) -> str:
    return log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def uvicorn_server(log_path: Path, **environment: str) -> AsyncIterator[str]:
    """A real uvicorn process serving `create_app` on a free loopback port; yields its URL once
    it answers /health/live (up to 60 s: a loaded machine is slow to import), and stops it
    after."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", f"{create_app.__module__}:create_app", "--factory"]
    with log_path.open("wb") as log_file:
        server = await asyncio.create_subprocess_exec(
            *command,
            *("--host", "127.0.0.1", "--port", str(port)),
            env={**os.environ, **environment},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(1200):
                assert server.returncode is None, text_of(log_path)
                with contextlib.suppress(httpx.TransportError):  # not listening yet
                    if (await client.get("/health/live")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("uvicorn did not answer within 60 s")
        yield url
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await server.wait()
            except TimeoutError:
                server.kill()
                await server.wait()


async def wait_until_a_worker_is_ready(url: str) -> None:
    """Wait up to 60 s until /health/ready counts a live worker (a loaded machine is slow to
    start one)."""
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(600):
            ready = await client.get("/health/ready")
            if ready.status_code == 200 and (ready.json()["workers"] or 0) >= 1:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"no worker was ready within 60 s: {ready.text}")


def method_of(argv: list[str]) -> str:
    return argv[argv.index("-X") + 1] if "-X" in argv else "GET"


async def run_curl(argv: list[str]) -> str:
    """Run curl; its output, or an AssertionError after 30 s or on a non-zero exit."""
    curl = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            output, errors = await curl.communicate()
    except TimeoutError:
        curl.kill()
        await curl.wait()
        raise AssertionError(f"{shlex.join(argv)} did not finish within 30 s") from None
    assert curl.returncode == 0, f"{shlex.join(argv)} exited {curl.returncode}: {errors!r}"
    return output.decode()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands need curl")
async def test_the_readme_s_api_commands_answer_as_it_shows(
    redis_server: LocalRedisServer,
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    tmp_path: Path,
) -> None:
    commands = readme_api_commands()
    methods = [method_of(shlex.split(command, comments=True)) for command, _ in commands]
    assert {"POST", "GET", "DELETE"} <= set(methods)
    worker_processes.start()  # the project's own worker, as `just dev` starts it
    # A loaded machine may take longer than the default 1 s to cancel a running job; the
    # README's answer is the same, only later.
    log = tmp_path / "uvicorn.log"
    async with uvicorn_server(log, REDIS_URL=redis_server.url, API_ABORT_WAIT="30") as url:
        await wait_until_a_worker_is_ready(url)  # as with `just dev` running
        job_id = None
        for command, answer in commands:
            argv = shlex.split(command.replace(README_BASE_URL, url), comments=True)
            if job_id is not None:
                argv = [arg.replace(README_JOB_ID, job_id) for arg in argv]
            assert README_JOB_ID not in shlex.join(argv), f"{command!r} runs before any POST"
            # A GET is run again until it shows the README's answer, as a reader would: the
            # job is queued, then runs, then has its result.
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                output = await run_curl(argv)
                if method_of(argv) == "POST":
                    job_id = json.loads(output)["job_id"]
                shown = shown_answer(answer, job_id).fullmatch(output) is not None
                if shown or method_of(argv) != "GET":
                    break
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert shown, (
                f"{command}\nanswered {output}\nnot {answer}\n"
                f"--- uvicorn\n{text_of(log)}\n--- worker\n{worker_processes.log(0)}"
            )
