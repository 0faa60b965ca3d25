# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Every kind of dead letter can be requeued, or its listing says why not (client.py's
`requeue_blocker`, shown by `just dead-letters` and the dashboard).

Each dead letter here is made the way the worker makes it: a burst worker runs a job that ends
in that way. Then the CLI lists it, and `requeue_dead_letter` either queues it again (and a
worker runs the new job) or refuses with the reason the listing gave, keeping the record.
"""

import asyncio
import dataclasses
import os
import subprocess
import sys
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.job_writes import JobPool
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_cron_job, arq_function
from {{ cookiecutter.package_name }}.queue import (
    JobContext,
    PermanentError,
    RequeueRefused,
    requeue_blocker,
    requeue_dead_letter,
)

from .conftest import Configure, RunWorker

QUEUE = WorkerSettings.queue_name
# A cron schedule that does not come round during a test: without one, a cron job ticks every
# second, and a burst worker that spans a second runs it twice.
ONCE_A_YEAR: dict[str, Any] = {"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
CLI = [sys.executable, "-m", "{{ cookiecutter.package_name }}.infrastructure.ops.cli"]


async def report_queue_depth(ctx: JobContext) -> None:
    raise PermanentError("the cron job failed")


# A dead letter of each kind, and whether this version can queue it again.
KINDS: dict[str, bool] = {
    "failed at once (PermanentError)": True,
    "tries used up": True,
    "Retry on its last try": True,
    "result JSON cannot hold": True,
    "timed out": True,
    "cron job": True,
    "tries used up by workers that died": True,
    "unreadable payload": False,
    "function no worker has": False,
    "arguments that no longer fit": False,
}


async def example_task(ctx: JobContext, message: str) -> Any:
    """Stands in for the project's `example_task` (its name and arguments), failing for good in
    the way `message` names."""
    if message == "tries used up":
        raise ValueError("broken")
    if message == "result JSON cannot hold":
        return {1, 2}
    if message == "timed out":
        await asyncio.sleep(5)
    if message == "Retry on its last try":
        raise Retry(defer=0)
    raise PermanentError(message)


@pytest.fixture
def environment(redis_server: LocalRedisServer) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_server.url}


async def make_dead_letters(task_pool: JobPool, run_burst_worker: RunWorker) -> dict[str, str]:
    """One dead letter of each kind; returns the job id of each."""
    ids: dict[str, str] = {}

    async def queue(kind: str, function: str, *args: Any, **kwargs: Any) -> None:
        queued = await task_pool.enqueue_job(function, *args, **kwargs)
        assert queued is not None
        ids[kind] = queued.job_id

    for kind in (
        "failed at once (PermanentError)",
        "tries used up",
        "Retry on its last try",
        "result JSON cannot hold",
        "timed out",
    ):
        await queue(kind, "example_task", message=kind)
    await queue("function no worker has", "send_invoice", 7)
    # Tries used up by workers that died running it: arq finds its try count over the limit.
    await queue("tries used up by workers that died", "example_task", message="died")
    await task_pool.set(f"arq:retry:{ids['tries used up by workers that died']}", 5)
    # A payload no worker can read.
    await task_pool.set("arq:job:unreadable-1", b"\x80 not json", px=60_000)
    await task_pool.zadd(QUEUE, {"unreadable-1": 0})
    ids["unreadable payload"] = "unreadable-1"
    await run_burst_worker(
        functions=[
            *WorkerSettings.functions[:1],  # reject_unreadable_job
            arq_function(example_task, max_tries=1, timeout=0.2),
        ],
        cron_jobs=[
            arq_cron_job(report_queue_depth, run_at_startup=True, max_tries=1, **ONCE_A_YEAR)
        ],
    )
    # A cron tick's dead letter is recorded under the name the worker knows it by.
    letters = await dead_letters.all_letters(task_pool, QUEUE)
    cron = [letter for letter in letters if letter.function.startswith("cron:")]
    assert [letter.function for letter in cron] == ["cron:report_queue_depth"]
    ids["cron job"] = cron[0].job_id
    # A record written by an older version, whose job has since changed its arguments.
    letter = dataclasses.replace(
        cron[0], job_id="old-1", function="example_task", kwargs={"text": "the old argument"}
    )
    await dead_letters.add(task_pool, QUEUE, letter, limit=100)
    ids["arguments that no longer fit"] = "old-1"
    return ids


async def test_every_dead_letter_is_requeued_or_its_listing_says_why_not(
    task_pool: JobPool,
    run_burst_worker: RunWorker,
    configure: Configure,
    environment: dict[str, str],
) -> None:
    configure(WORKER_MISSING_FUNCTION_WAIT="0")
    ids = await make_dead_letters(task_pool, run_burst_worker)
    letters = {letter.job_id: letter for letter in await dead_letters.all_letters(task_pool, QUEUE)}
    assert sorted(kind for kind, job_id in ids.items() if job_id in letters) == sorted(KINDS)
    listing = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "dead-letters"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )

    for kind, can_requeue in KINDS.items():
        job_id = ids[kind]
        blocker = requeue_blocker(letters[job_id])
        assert (blocker is None) == can_requeue, f"{kind}: {blocker}"
        if can_requeue:
            assert f"requeue: just requeue {job_id}" in listing.stdout, kind
            requeued = await requeue_dead_letter(job_id)
            info = await requeued.info()
            assert info is not None
            assert (info.function, list(info.args), info.kwargs) == (
                letters[job_id].function,
                letters[job_id].args,
                letters[job_id].kwargs,
            ), kind
        else:
            assert blocker is not None
            assert f"cannot be requeued: {blocker}" in listing.stdout, kind
            with pytest.raises(RequeueRefused, match="cannot requeue"):
                await requeue_dead_letter(job_id)
    left = {letter.job_id for letter in await dead_letters.all_letters(task_pool, QUEUE)}
    assert left == {ids[kind] for kind, can_requeue in KINDS.items() if not can_requeue}


async def test_a_requeued_cron_job_runs_again(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    await run_burst_worker(
        cron_jobs=[
            arq_cron_job(report_queue_depth, run_at_startup=True, max_tries=1, **ONCE_A_YEAR)
        ]
    )
    [letter] = await dead_letters.all_letters(task_pool, QUEUE)
    requeued = await requeue_dead_letter(letter.job_id)
    await run_burst_worker(cron_jobs=[arq_cron_job(report_queue_depth, max_tries=1, **ONCE_A_YEAR)])
    # It ran, and failed for good again (a cron job keeps no result: its new dead letter says so).
    [again] = await dead_letters.all_letters(task_pool, QUEUE)
    assert (again.job_id, again.function, again.error) == (
        requeued.job_id,
        "cron:report_queue_depth",
        "the cron job failed",
    )
