# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Declaring jobs with `@job` / `@cron_job` and enqueueing them through their typed handles, end
to end: the real test Redis, a real (burst) worker built from the registry.

Jobs only these tests declare go into a copy of the registry (`own_registry`), so no other test
sees them; the project's own jobs (jobs.py) are in the copy too.
"""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from arq import Retry
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.keys import bare_job_id
from {{ cookiecutter.package_name }}.infrastructure.store.depth import queue_depth
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import worker_functions
from {{ cookiecutter.package_name }}.jobs import example_task
from {{ cookiecutter.package_name }}.queue import (
    CronJobHandle,
    DuplicateJobError,
    Job,
    JobArgumentError,
    JobContext,
    JobFailed,
    JobHandle,
    JobStatus,
    UniqueJobHandle,
    cron_job,
    enqueue_task,
    job,
)

from .conftest import Configure, RunWorker


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs a test declares last as long as the test: the registry is a copy, put back after."""
    registry.load_jobs()  # the project's jobs first, into the registry every test shares
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))


async def nothing_queued(pool: ArqRedis) -> bool:
    depth = await queue_depth(pool, get_settings().queue_name)
    return dataclasses.astuple(depth) == (0, 0, 0)


async def test_a_typed_enqueue_runs_and_its_result_comes_back(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await example_task.enqueue("typed")
    assert isinstance(queued, Job)
    assert await queued.status() == JobStatus.queued

    await run_burst_worker()

    result: str = await queued.result(timeout=5)
    assert result == "Processed: typed"


async def test_enqueue_task_by_name_still_works(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await enqueue_task("example_task", message="by name")
    assert queued is not None

    await run_burst_worker()

    assert await queued.result(timeout=5) == "Processed: by name"


async def test_the_handle_is_still_the_function(task_pool: ArqRedis) -> None:
    # A job calling another runs it inline, with its own context.
    ctx: JobContext = {"job_id": "inline", "job_try": 1}
    assert await example_task(ctx, "inline") == "Processed: inline"
    assert example_task.name == "example_task"
    assert isinstance(example_task, JobHandle)
    assert await nothing_queued(task_pool)


@pytest.mark.parametrize(
    "defer", [{"defer_by": 60}, {"defer_by": timedelta(minutes=1)}], ids=["seconds", "timedelta"]
)
async def test_defer_by_defers(task_pool: ArqRedis, defer: dict[str, Any]) -> None:
    queued = await example_task.options(**defer).enqueue("later")

    assert await queued.status() == JobStatus.deferred
    depth = await queue_depth(task_pool, get_settings().queue_name)
    assert (depth.waiting, depth.deferred) == (0, 1)


async def test_defer_until_defers(task_pool: ArqRedis) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    queued = await example_task.options(defer_until=start).enqueue("later")

    assert await queued.status() == JobStatus.deferred


async def test_defer_by_with_defer_until_is_refused(task_pool: ArqRedis) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)

    with pytest.raises(JobArgumentError, match="not both"):
        example_task.options(defer_by=60, defer_until=start)
    assert await nothing_queued(task_pool)


async def test_a_job_id_queues_once(task_pool: ArqRedis, run_burst_worker: RunWorker) -> None:
    unique = example_task.options(job_id="once")
    assert isinstance(unique, UniqueJobHandle)

    first = await unique.enqueue("first")
    second = await unique.enqueue("second")

    assert first is not None
    assert bare_job_id(first.job_id) == "once"
    assert second is None
    await run_burst_worker()
    assert await first.result(timeout=5) == "Processed: first"


@pytest.mark.parametrize(
    ("args", "kwargs", "why"),
    [
        ((), {"wrong": 1}, "got an unexpected keyword argument 'wrong'"),
        (("a", "b"), {}, "too many positional arguments"),
        (("a",), {"message": "b"}, "multiple values for argument 'message'"),
    ],
    ids=["unknown-keyword", "too-many", "twice"],
)
async def test_arguments_that_do_not_fit_are_refused_at_run_time(
    task_pool: ArqRedis, args: tuple[Any, ...], kwargs: dict[str, Any], why: str
) -> None:
    # What mypy catches (test_job_typing.py) is refused at run time too, where mypy is bypassed.
    with pytest.raises(JobArgumentError, match=f"cannot enqueue 'example_task': {why}"):
        await cast(Any, example_task).enqueue(*args, **kwargs)
    with pytest.raises(JobArgumentError, match=why):
        await cast(Any, example_task).options(job_id="x").enqueue(*args, **kwargs)
    assert await nothing_queued(task_pool)


async def test_a_missing_argument_is_refused_at_run_time(
    task_pool: ArqRedis, own_registry: None
) -> None:
    @job
    async def ship(ctx: JobContext, order: str) -> None:
        return None

    with pytest.raises(JobArgumentError, match="missing a required argument: 'order'"):
        await cast(Any, ship).enqueue()
    with pytest.raises(JobArgumentError, match="missing a required argument: 'order'"):
        await enqueue_task("ship")
    assert await nothing_queued(task_pool)


@pytest.mark.parametrize(
    "limits",
    [{"max_tries": 0}, {"max_tries": -1}, {"timeout": 0}, {"timeout": -5}],
    ids=["no-tries", "negative-tries", "no-time", "negative-time"],
)
def test_limits_below_their_minimum_are_refused_at_declaration(
    own_registry: None, limits: dict[str, Any]
) -> None:
    async def limited(ctx: JobContext) -> None:
        return None

    with pytest.raises(ValueError, match="must be"):
        job(**limits)(limited)
    with pytest.raises(ValueError, match="must be"):
        cron_job(minute=0, **limits)(limited)
    assert "limited" not in registry.jobs()
    assert "cron:limited" not in registry.requeueable()


def test_an_unknown_cron_keyword_is_refused_naming_the_function(own_registry: None) -> None:
    async def tidy_up(ctx: JobContext) -> None:
        return None

    with pytest.raises(TypeError, match=r"@cron_job for tidy_up: .*bogus"):
        cron_job(bogus=1)(tidy_up)
    assert "cron:tidy_up" not in registry.requeueable()


def test_two_functions_under_one_name_are_refused(own_registry: None) -> None:
    @job(name="send")
    async def send_email(ctx: JobContext) -> None:
        return None

    async def send_sms(ctx: JobContext) -> None:
        return None

    with pytest.raises(DuplicateJobError, match="two jobs are named 'send'"):
        job(name="send")(send_sms)
    assert registry.jobs()["send"].function is send_email.function


def test_the_same_function_declared_twice_is_kept_once(own_registry: None) -> None:
    async def imported_twice(ctx: JobContext) -> None:
        return None

    first = job(imported_twice)
    again = job(imported_twice)

    assert first.name == again.name == "imported_twice"
    assert [spec.name for spec in registry.declared()].count("imported_twice") == 1


def test_the_project_jobs_are_declared_and_a_job_name_is_its_functions() -> None:
    assert registry.jobs()["example_task"].function is example_task.function
    assert example_task.spec is registry.jobs()["example_task"]


def test_worker_functions_lists_exactly_the_declared_jobs(own_registry: None) -> None:
    @job(max_tries=7, timeout=9)
    async def declared_here(ctx: JobContext, n: int) -> int:
        return n

    @cron_job(minute={0, 30})
    async def every_half_hour(ctx: JobContext) -> None:
        return None

    @cron_job(name="nightly", hour=3, minute=0)
    async def tidy(ctx: JobContext) -> None:
        return None

    functions, cron_jobs = worker_functions()

    assert [f.name for f in functions] == [s.name for s in registry.declared() if not s.is_cron]
    assert [c.name for c in cron_jobs] == [s.name for s in registry.declared() if s.is_cron]
    assert {"example_task", "declared_here"} <= {f.name for f in functions}
    assert [c.name for c in cron_jobs][-2:] == ["cron:every_half_hour", "cron:nightly"]
    assert all(c.name.startswith(registry.CRON_PREFIX) for c in cron_jobs)
    [mine] = [f for f in functions if f.name == "declared_here"]
    assert mine.max_tries == 7
    assert isinstance(every_half_hour, CronJobHandle)
    assert (every_half_hour.name, tidy.name) == ("cron:every_half_hour", "cron:nightly")
    # Clients enqueue jobs, never a cron job; a dead letter of either can be requeued.
    assert "cron:nightly" not in registry.jobs()
    assert "cron:nightly" in registry.requeueable()


@pytest.mark.parametrize("tries", [2, 4])
@pytest.mark.parametrize("how", ["Retry", "error"])
async def test_max_tries_is_honoured_by_the_worker(
    task_pool: ArqRedis,
    run_burst_worker: RunWorker,
    configure: Configure,
    own_registry: None,
    tries: int,
    how: str,
) -> None:
    configure(WORKER_RETRY_BASE="0.01")  # the default is 3 tries: 2 and 4 differ from it

    @job(max_tries=tries)
    async def keeps_failing(ctx: JobContext, order: str) -> None:
        await ctx["redis"].incr(f"tries:{order}")
        if how == "Retry":
            raise Retry(defer=0.01)
        raise ConnectionError("payment API unreachable")

    queued = await keeps_failing.enqueue("A-1")
    await run_burst_worker(functions=worker_functions()[0])

    assert int(await task_pool.get("tries:A-1")) == tries
    with pytest.raises(JobFailed):
        await queued.result(timeout=5)


async def test_a_job_declared_with_a_timeout_is_stopped_at_it(
    task_pool: ArqRedis, run_burst_worker: RunWorker, own_registry: None
) -> None:
    @job(timeout=0.2, max_tries=1)
    async def too_slow(ctx: JobContext) -> str:
        await ctx["redis"].set("too_slow:started", 1)
        await asyncio.sleep(10)
        return "never"

    queued = await too_slow.enqueue()
    await run_burst_worker(functions=worker_functions()[0])

    with pytest.raises(JobFailed, match="TimeoutError"):
        await queued.result(timeout=5)
