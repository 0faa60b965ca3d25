# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The API as it is deployed: a real uvicorn process (`--factory`) on a free port, a real worker
process, and a client over HTTP."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port

from .conftest import WorkerProcesses


async def wait_until_serving(client: httpx.AsyncClient, server: asyncio.subprocess.Process) -> None:
    """Wait up to 30 s for the server to answer /health/live."""
    for _ in range(600):
        if server.returncode is not None:
            raise AssertionError(f"uvicorn exited with {server.returncode}")
        try:
            if (await client.get("/health/live")).status_code == 200:
                return
        except httpx.TransportError:  # not listening yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("uvicorn did not answer within 30 s")


async def test_a_job_goes_through_a_real_uvicorn_server(
    redis_server: LocalRedisServer,
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", f"{create_app.__module__}:create_app", "--factory"]
    with log_path.open("wb") as log_file:
        server = await asyncio.create_subprocess_exec(
            *command,
            *("--host", "127.0.0.1", "--port", str(port)),
            env={**os.environ, "REDIS_URL": redis_server.url},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        worker_processes.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_until_serving(client, server)
            accepted = await client.post("/examples", json={"message": "over HTTP"})
            status_url = accepted.headers["location"]
            for _ in range(600):
                done = await client.get(status_url)
                if done.json()["status"] not in ("queued", "in_progress"):
                    break
                await asyncio.sleep(0.05)
            ready = await client.get("/health/ready")
            too_large = await client.post("/examples", content=b"x" * 70_000)
            async with asyncio.timeout(10):  # a stream answered to HEAD ends too
                heads = {
                    path: await client.head(path)
                    for path in ("/metrics", "/health/live", status_url, f"{status_url}/events")
                }
                head_of_post_only = await client.head("/examples")
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            exit_code = await server.wait()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    log = log_path.read_text(errors="replace")

    assert accepted.status_code == 202, log
    assert (done.status_code, done.json()["result"]) == (200, "Processed: over HTTP")
    assert (ready.status_code, ready.json()["workers"]) == (200, 1)
    # HEAD answers as GET would, without the body; a route without GET still answers 405.
    for path, head in heads.items():
        assert (path, head.status_code, head.content) == (path, 200, b"")
    assert int(heads["/metrics"].headers["content-length"]) > 0
    assert heads["/metrics"].headers["content-type"].startswith("text/plain")
    assert head_of_post_only.status_code == 405
    assert (too_large.status_code, too_large.headers["content-type"]) == (
        413,
        "application/problem+json",
    )
    # After a clean shutdown uvicorn ends itself with the signal it got, as Python's default would.
    assert exit_code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
