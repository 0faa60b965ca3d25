"""The host's side of tests/test_image.py, run in a baked project's own environment:

    uv run python PATH/TO/project_client.py PACKAGE redis
    uv run python PATH/TO/project_client.py PACKAGE enqueue NAME '{"message": "hi"}' [--pool]
    uv run python PATH/TO/project_client.py PACKAGE result JOB_ID SECONDS
    uv run python PATH/TO/project_client.py PACKAGE wait-running JOB_ID SECONDS

`redis` starts the project's throwaway server on a free 127.0.0.1 port (LocalRedisServer: nothing
persisted), prints its URL and stops it when standard input closes. The other commands read
REDIS_URL and QUEUE_PREFIX as the project does: `enqueue` queues a job with `enqueue_task` (with
`--pool`, arq's `enqueue_job` on the project's pool: for a job only the container's worker knows)
and prints its id; `result` prints the job's result as JSON; `wait-running` returns once the job
runs. A job that fails, or is not done in time, exits 1 with the reason.
"""

import asyncio
import importlib
import json
import sys
import time
from typing import Any


def serve_redis(package: str) -> None:
    redis_server = importlib.import_module(f"{package}.infrastructure.local.redis_server")
    with redis_server.LocalRedisServer() as server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the test closes it (or exits)


async def enqueue(queue: Any, name: str, arguments: str, pool: bool) -> str:
    kwargs = json.loads(arguments)
    if pool:
        job = await (await queue.get_task_pool()).enqueue_job(name, **kwargs)
    else:
        job = await queue.enqueue_task(name, **kwargs)
    await queue.close_task_pool()
    return str(job.job_id)


async def result(queue: Any, job_id: str, seconds: float) -> Any:
    job = await queue.get_job(job_id)
    try:
        return await job.result(timeout=seconds)
    finally:
        await queue.close_task_pool()


async def wait_running(queue: Any, job_id: str, seconds: float) -> str:
    job = await queue.get_job(job_id)
    deadline = time.monotonic() + seconds
    try:
        while (status := await job.status()) != queue.JobStatus.in_progress:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} is {status.value}, not running, after {seconds} s"
                )
            await asyncio.sleep(0.05)
        return status.value
    finally:
        await queue.close_task_pool()


def main(package: str, command: str, *args: str) -> None:
    if command == "redis":
        serve_redis(package)
        return
    queue = importlib.import_module(f"{package}.queue")
    if command == "enqueue":
        name, arguments, *flags = args
        print(asyncio.run(enqueue(queue, name, arguments, pool="--pool" in flags)))
    elif command == "result":
        print(json.dumps(asyncio.run(result(queue, args[0], float(args[1])))))
    elif command == "wait-running":
        print(asyncio.run(wait_running(queue, args[0], float(args[1]))))
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except Exception as error:  # one line for the test's assertion message
        sys.exit(f"{type(error).__name__}: {error}")
