# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The queue, end to end on a real Redis: enqueue, run a worker, read what happened."""

import asyncio
import inspect
from datetime import timedelta

import pytest
from arq.connections import ArqRedis
from arq.utils import import_string
from arq.worker import Worker, create_worker

from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.queue import JobStatus, UnknownTaskError, enqueue_task

from .conftest import RunWorker


async def test_example_task_runs_and_its_result_can_be_read(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    job = await enqueue_task("example_task", message="Hello!")
    assert job is not None

    worker = await run_burst_worker()

    assert await job.result(timeout=5) == "Processed: Hello!"
    assert worker.jobs_complete == 1
    assert worker.jobs_failed == 0


async def test_deferred_job_does_not_start_before_its_time(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    defer = timedelta(seconds=1.5)
    job = await enqueue_task("example_task", message="later", _defer_by=defer)
    assert job is not None

    worker_run = asyncio.create_task(run_burst_worker())
    await asyncio.sleep(0.5)
    assert await job.status() == JobStatus.deferred
    await worker_run

    info = await job.result_info()
    assert info is not None
    assert info.result == "Processed: later"
    assert info.start_time - info.enqueue_time >= defer


async def test_duplicate_job_id_is_refused_and_runs_once(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    first = await enqueue_task("example_task", message="one", _job_id="email-user-123")
    second = await enqueue_task("example_task", message="two", _job_id="email-user-123")

    assert first is not None
    assert second is None
    worker = await run_burst_worker()
    assert worker.jobs_complete == 1
    assert await first.result(timeout=5) == "Processed: one"


async def test_unknown_job_name_is_refused_at_enqueue_time(task_pool: ArqRedis) -> None:
    with pytest.raises(UnknownTaskError, match="example_task"):
        await enqueue_task("exmaple_task")

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


async def test_worker_settings_load_like_arq_does() -> None:
    # What `arq <module>.WorkerSettings` does: import by dotted path, build a Worker. Every job
    # and cron job registered in WorkerSettings is there, whichever you add. (In a running loop:
    # arq's Worker takes the current event loop, and outside one it would make a loop that no
    # one closes.)
    settings = import_string("{{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings")
    worker = create_worker(settings, handle_signals=False)

    registered = [function.name for function in WorkerSettings.functions]
    registered += [cron.name for cron in WorkerSettings.cron_jobs]
    assert sorted(worker.functions) == sorted(registered)
    assert len(set(registered)) == len(registered)  # no name registered twice
    assert "reject_unreadable_job" in worker.functions
    assert worker.allow_abort_jobs
    assert worker.queue_name == "{" + "{{ cookiecutter.project_slug }}:default}"


def test_every_worker_setting_is_one_arq_uses() -> None:
    # arq silently drops attributes it does not know (a `retry_delay` would do nothing).
    worker_arguments = set(inspect.signature(Worker).parameters)
    settings = {name for name in vars(WorkerSettings) if not name.startswith("_")}

    assert settings - worker_arguments == set()
