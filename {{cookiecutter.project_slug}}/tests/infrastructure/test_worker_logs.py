# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A real worker process with LOG_FORMAT=json: every line is JSON, and the lines about a job say
which job, function and try, with the duration of each finished try."""

import asyncio
import json
import time
from typing import Any

from arq.connections import ArqRedis

from .conftest import WorkerProcesses

FAULT_JOBS = "tests.infrastructure.fault_jobs.WorkerSettings"


async def wait_until_started(worker_processes: WorkerProcesses) -> None:
    started = time.monotonic()
    while "worker started on queue" not in worker_processes.log(0):
        assert time.monotonic() - started < 30, "the worker did not start within 30 s"
        await asyncio.sleep(0.1)


async def test_every_line_is_json_and_job_lines_carry_the_job(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    worker_processes.start(FAULT_JOBS, LOG_FORMAT="json", WORKER_RETRY_BASE="0.05")
    await wait_until_started(worker_processes)
    done = await task_pool.enqueue_job("example_task", message="<hello>", _job_id="logged")
    flaky = await task_pool.enqueue_job("numbered", 7, fail_first_try=True, _job_id="flaky")
    assert done is not None
    assert flaky is not None
    assert await done.result(timeout=10) == "Processed: <hello>"
    assert await flaky.result(timeout=10) == 7
    await asyncio.sleep(0.2)  # the last lines reach the log

    lines: list[dict[str, Any]] = [
        json.loads(line) for line in worker_processes.log(0).splitlines()
    ]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)

    [own] = [line for line in lines if line["message"].startswith(f"example_task {done.job_id}")]
    assert (own["job_id"], own["function"], own["try"]) == (done.job_id, "example_task", 1)
    assert own["message"].endswith(": <hello>")

    finished = [line for line in lines if line["message"].startswith("job finished")]
    outcomes = {(line["job_id"], line["try"], line["outcome"]) for line in finished}
    assert outcomes == {
        (done.job_id, 1, "complete"),
        (flaky.job_id, 1, "retried"),
        (flaky.job_id, 2, "complete"),
    }
    assert all(line["duration_ms"] >= 0 for line in finished)

    [retry_warning] = [
        line for line in lines if line["level"] == "WARNING" and "retrying" in line["message"]
    ]
    retry_fields = (retry_warning["job_id"], retry_warning["function"], retry_warning["try"])
    assert retry_fields == (flaky.job_id, "numbered", 1)

    arq_lines = [
        line
        for line in lines
        if line["logger"] == "arq.worker" and line.get("job_id") == done.job_id
    ]
    assert len(arq_lines) >= 2  # arq's start (→) and end (←) lines
    assert all(line["function"] == "example_task" for line in arq_lines)
