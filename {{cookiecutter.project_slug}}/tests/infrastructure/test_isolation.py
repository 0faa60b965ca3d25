# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Two services on one Redis, QUEUE_PREFIX=svc-a (A) and QUEUE_PREFIX=svc-b (B), each with its
own worker process: nothing one of them does reaches the other (keys.py, "a queue is a
namespace"). Both use the same job id, `order-42`, and the same cron job name. Checked:

- enqueue: the same `_job_id` queues a job in each service; neither gets None;
- status, info and result: each service reads its own job, run by its own worker;
- abort: B's abort of its `order-42`, queued or running, leaves A's job of that id alone;
- cron: each service's worker runs its own tick of a cron job of the same name, for the same
  second: a tick claimed in A does not stop B's;
- dead letters, requeue and purge: a job of A that fails for good is not listed by B, nor
  requeued nor purged from B (B's own are); A requeues it onto its own queue;
- worker liveness: `worker-check` (`live_workers`) counts each service's own workers only;
- queue stats and metrics: `queue_stats`, the dashboard's counts and `metrics` count each
  service's own jobs, dead letters and workers only{% if cookiecutter.api_framework == "fastapi" %};{% else %}.{% endif %}
{%- if cookiecutter.api_framework == "fastapi" %}
- the HTTP API and the dashboard: B's `GET /jobs/order-42` and `DELETE /jobs/order-42` answer
  404 while A's job runs, and so do they for A's job's full id; B's dashboard looks neither up,
  does not abort it, and its snapshot, `/metrics`, requeue and purge show or touch nothing of
  A's.
{%- endif %}

The test process is one service at a time (`as_service`: its settings, and a pool opened for
them); the workers are real worker processes, each with its service's QUEUE_PREFIX.
"""

import asyncio
{%- if cookiecutter.api_framework == "fastapi" %}
import contextlib
{%- endif %}
from collections.abc import {% if cookiecutter.api_framework == "fastapi" %}AsyncIterator, {% endif %}Iterator
{%- if cookiecutter.api_framework == "fastapi" %}
from urllib.parse import quote
{%- endif %}

{% if cookiecutter.api_framework == "fastapi" -%}
import httpx
{% endif -%}
import pytest
from arq.connections import ArqRedis
{%- if cookiecutter.api_framework == "fastapi" %}
from fastapi import FastAPI
{%- endif %}

{% if cookiecutter.api_framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.api.dashboard import security
{% endif -%}
from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.client.enqueue import close_task_pool, get_task_pool
from {{ cookiecutter.package_name }}.infrastructure.keys import DEFAULT_QUEUE, queue_key
from {{ cookiecutter.package_name }}.infrastructure.ops import activity, cli
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.depth import QueueStats, queue_stats
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import live_workers
from {{ cookiecutter.package_name }}.infrastructure.store.job_writes import JobPool
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_cron_job, arq_function
from {{ cookiecutter.package_name }}.queue import (
    JobContext,
    JobFailed,
    JobStatus,
    PermanentError,
    enqueue_task,
    get_job,
    requeue_dead_letter,
)

from .conftest import Configure, WorkerProcesses

A, B = "svc-a", "svc-b"
QUEUE = {A: queue_key(A, DEFAULT_QUEUE), B: queue_key(B, DEFAULT_QUEUE)}
JOB = "order-42"
EVERY_SECOND = set(range(60))
# How long a test waits for a worker process to do something (it starts in a second or two).
WAIT_SECONDS = 20.0
{%- if cookiecutter.api_framework == "fastapi" %}
PASSWORD = "correct horse battery staple"
{%- endif %}


async def example_task(ctx: JobContext, message: str = "Hello!", *, seconds: float = 0) -> str:
    """Stands in for the project's `example_task` (its name and arguments): runs `seconds`, then
    says which service's worker ran it; fails for good when `message` is "fail"."""
    if message == "fail":
        raise PermanentError("failed for good")
    await asyncio.sleep(seconds)
    return f"{get_settings().queue_prefix} processed {message}"


async def tick(ctx: JobContext) -> None:
    """A cron job's tick: records which service's worker ran which tick."""
    await ctx["redis"].rpush("ticks", f"{get_settings().queue_prefix} {ctx['job_id']}")


# What the worker processes run: the project's jobs, `example_task` replaced, no cron jobs...
WorkerSettings = {
    **vars(ProjectSettings),
    "functions": (
        *(function for function in ProjectSettings.functions if function.name != "example_task"),
        arq_function(example_task, max_tries=1),
    ),
    "cron_jobs": (),
}
WORKER_SETTINGS = f"{__name__}.WorkerSettings"
# ... or with a cron job of the same name in every service, ticking every second.
CronWorkerSettings = {
    **WorkerSettings,
    "cron_jobs": (arq_cron_job(tick, name="cron:tick", second=EVERY_SECOND),),
}
CRON_WORKER_SETTINGS = f"{__name__}.CronWorkerSettings"


async def as_service(configure: Configure, prefix: str, **variables: str) -> JobPool:
    """Make this test process the service `prefix` (QUEUE_PREFIX): its settings, and the task
    pool opened afresh for them; returns that pool."""
    await close_task_pool()
    configure(QUEUE_PREFIX=prefix, **variables)
    return await get_task_pool()


def start_worker(workers: WorkerProcesses, prefix: str, settings: str = WORKER_SETTINGS) -> None:
    workers.start(settings, QUEUE_PREFIX=prefix)


async def wait_for_status(prefix: str, job_id: str, *statuses: JobStatus) -> None:
    """Wait until the current service's job `job_id` has one of `statuses`."""
    job = await get_job(job_id)
    for _ in range(int(WAIT_SECONDS / 0.05)):
        if await job.status() in statuses:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{prefix}'s job {job_id} is {await job.status()}, not {statuses}")


async def operator(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run an operator command (ops/cli.py, `just worker-check` ...) as the current service, in
    this process: its exit code and what it printed."""
    args = cli.parse_args(list(argv))
    code = await cli.run(args.run, args)
    printed = capsys.readouterr()
    return code, printed.out + printed.err


@pytest.fixture(autouse=True)
def settings_read_afresh() -> Iterator[None]:
    """The service a test switched to is not left cached for the next test."""
    yield
    get_settings.cache_clear()


async def test_the_same_job_id_queues_a_job_in_each_service_each_read_and_run_as_its_own(
    task_pool: ArqRedis, configure: Configure, worker_processes: WorkerProcesses
) -> None:
    for prefix in (A, B):
        await as_service(configure, prefix)
        queued = await enqueue_task("example_task", message=f"from {prefix}", _job_id=JOB)
        assert queued is not None, f"{prefix}'s enqueue of {JOB} returned None"
        assert queued.job_id == f"{QUEUE[prefix]}:{JOB}"
        # Still one job per id within a service.
        assert await enqueue_task("example_task", message="again", _job_id=JOB) is None

    for prefix in (A, B):
        await as_service(configure, prefix)
        job = await get_job(JOB)
        info = await job.info()
        assert await job.status() == JobStatus.queued
        assert info is not None
        assert (info.function, info.kwargs) == ("example_task", {"message": f"from {prefix}"})

    start_worker(worker_processes, A)
    start_worker(worker_processes, B)
    for prefix in (A, B):
        await as_service(configure, prefix)
        job = await get_job(JOB)
        # Run by this service's own worker, with this service's arguments.
        assert await job.result(timeout=WAIT_SECONDS, poll_delay=0.05) == (
            f"{prefix} processed from {prefix}"
        )
        assert await job.status() == JobStatus.complete
        finished = await job.result_info()
        assert finished is not None
        assert finished.kwargs == {"message": f"from {prefix}"}
        # Its result is kept: the id stays taken in this service.
        assert await enqueue_task("example_task", _job_id=JOB) is None


async def test_an_abort_in_b_leaves_a_s_queued_or_running_job_of_the_same_id_alone(
    task_pool: ArqRedis, configure: Configure, worker_processes: WorkerProcesses
) -> None:
    # Queued, no worker yet: B's abort removes B's job only.
    for prefix in (A, B):
        await as_service(configure, prefix)
        assert await enqueue_task("example_task", seconds=30, _job_id=JOB) is not None
    await as_service(configure, B)
    assert await (await get_job(JOB)).abort() is True
    assert await (await get_job(JOB)).status() == JobStatus.aborted
    await as_service(configure, A)
    assert await (await get_job(JOB)).status() == JobStatus.queued

    # Running: each service's worker runs its own `order-43`; B's abort cancels B's only.
    for prefix in (A, B):
        await as_service(configure, prefix)
        assert await enqueue_task("example_task", seconds=30, _job_id="order-43") is not None
        start_worker(worker_processes, prefix)
    await as_service(configure, A)
    await wait_for_status(A, JOB, JobStatus.in_progress)  # A's order-42 runs too
    await wait_for_status(A, "order-43", JobStatus.in_progress)
    await as_service(configure, B)
    await wait_for_status(B, "order-43", JobStatus.in_progress)
    assert await (await get_job("order-43")).abort(timeout=WAIT_SECONDS, poll_delay=0.05) is True
    assert await (await get_job("order-43")).status() == JobStatus.aborted

    await as_service(configure, A)
    await asyncio.sleep(0.5)  # many polls of A's worker, which would have cancelled them by now
    for job_id in ("order-43", JOB):
        job = await get_job(job_id)
        assert await job.status() == JobStatus.in_progress, f"A's {job_id} was touched"
    # A's own abort still works on A's job.
    assert await (await get_job("order-43")).abort(timeout=WAIT_SECONDS, poll_delay=0.05) is True


async def test_each_service_runs_its_own_tick_of_a_cron_job_of_the_same_name(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    start_worker(worker_processes, A, CRON_WORKER_SETTINGS)
    start_worker(worker_processes, B, CRON_WORKER_SETTINGS)

    ticks: dict[str, list[str]] = {A: [], B: []}
    for _ in range(int(WAIT_SECONDS / 0.1)):
        ticks = {A: [], B: []}
        for record in await task_pool.lrange("ticks", 0, -1):  # type: ignore[misc]
            prefix, job_id = record.decode().split(" ")
            # Each tick's job id is in the namespace of the service whose worker ran it.
            assert job_id.startswith(f"{QUEUE[prefix]}:cron:tick:"), (prefix, job_id)
            ticks[prefix].append(job_id.rpartition(":")[2])  # the tick's time (ms)
        if set(ticks[A]) & set(ticks[B]):
            break
        await asyncio.sleep(0.1)

    # The same ticks ran in both services: neither's claim of a tick stopped the other's.
    assert set(ticks[A]) & set(ticks[B]), ticks
    # And each service ran each of its ticks once.
    assert len(ticks[A]) == len(set(ticks[A])), ticks
    assert len(ticks[B]) == len(set(ticks[B])), ticks


async def test_a_dead_letter_of_a_is_not_listed_requeued_or_purged_from_b(
    task_pool: ArqRedis,
    configure: Configure,
    worker_processes: WorkerProcesses,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One job of each service, with the same id, fails for good in its own worker.
    for prefix in (A, B):
        await as_service(configure, prefix)
        assert await enqueue_task("example_task", message="fail", _job_id=JOB) is not None
        start_worker(worker_processes, prefix)
    letters: dict[str, list[dead_letters.DeadLetter]] = {}
    for prefix in (A, B):
        pool = await as_service(configure, prefix)
        with pytest.raises(JobFailed):
            await (await get_job(JOB)).result(timeout=WAIT_SECONDS, poll_delay=0.05)
        letters[prefix] = await dead_letters.all_letters(pool, QUEUE[prefix])
        assert [letter.job_id for letter in letters[prefix]] == [f"{QUEUE[prefix]}:{JOB}"]
    a_letter = letters[A][0].job_id

    pool = await as_service(configure, B)
    code, listing = await operator(capsys, "dead-letters")
    assert code == 0
    assert f"1 dead letter(s) on queue {QUEUE[B]}" in listing
    assert QUEUE[A] not in listing
    # B cannot requeue A's dead letter by A's id. (The id it was queued with, bare, names B's
    # own letter in B: an id without a queue is taken in the service's own, keys.py.)
    code, said = await operator(capsys, "requeue", a_letter)
    assert code == 1, said
    with pytest.raises(LookupError):
        await requeue_dead_letter(a_letter)
    code, said = await operator(capsys, "purge-dead-letters", "--yes")
    assert (code, said.strip()) == (0, "deleted 1 dead letter(s)")  # B's own
    pool = await get_task_pool()  # `requeue` closed the one it used
    assert await dead_letters.count(pool, QUEUE[B]) == 0

    pool = await as_service(configure, A)
    assert [letter.job_id for letter in await dead_letters.all_letters(pool, QUEUE[A])] == [
        a_letter
    ]
    requeued = await requeue_dead_letter(a_letter)
    assert requeued.job_id.startswith(f"{QUEUE[A]}:")
    # (A's worker may have run it again by now, failing for good under its new id.)
    assert a_letter not in [
        letter.job_id for letter in await dead_letters.all_letters(pool, QUEUE[A])
    ]


async def test_worker_check_and_queue_stats_count_each_service_s_own_workers_and_jobs(
    task_pool: ArqRedis,
    configure: Configure,
    worker_processes: WorkerProcesses,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A: one job running, one deferred, one dead letter; B: one job deferred. A worker each.
    await as_service(configure, A)
    assert await enqueue_task("example_task", seconds=30, _job_id=JOB) is not None
    assert await enqueue_task("example_task", _job_id="later", _defer_by=600) is not None
    assert await enqueue_task("example_task", message="fail", _job_id="fails") is not None
    await as_service(configure, B)
    assert await enqueue_task("example_task", _job_id="later", _defer_by=600) is not None
    start_worker(worker_processes, A)
    start_worker(worker_processes, B)
    expected = {
        A: QueueStats(waiting=0, deferred=1, running=1, dead_letters=1, live_workers=1),
        B: QueueStats(waiting=0, deferred=1, running=0, dead_letters=0, live_workers=1),
    }

    for prefix in (A, B):
        pool = await as_service(configure, prefix)
        for _ in range(int(WAIT_SECONDS / 0.05)):  # until the worker has started, run its jobs
            if await queue_stats(pool, QUEUE[prefix]) == expected[prefix]:
                break
            await asyncio.sleep(0.05)
        # Counted twice, with the other service's workers, jobs or dead letters, they would differ.
        assert await queue_stats(pool, QUEUE[prefix]) == expected[prefix]
        assert (await activity.queue_counts(pool, QUEUE[prefix])).stats == expected[prefix]
        [worker] = await live_workers(pool, QUEUE[prefix])
        assert worker.queue == QUEUE[prefix]
        code, said = await operator(capsys, "worker-check")
        assert (code, said.splitlines()[0]) == (0, f"1 worker(s) alive on queue {QUEUE[prefix]}")
        code, metrics = await operator(capsys, "metrics")
        assert code == 0
        other = QUEUE[B if prefix == A else A]
        assert other not in metrics
        for gauge, value in (
            ("live_workers", 1),
            ("jobs_running", expected[prefix].running),
            ("dead_letters", expected[prefix].dead_letters),
        ):
            assert f'arq_queue_{gauge}{% raw %}{{queue="{QUEUE[prefix]}"}}{% endraw %} {value:.1f}' in metrics
    # Two workers, each counted by its own service only.
    [a_worker], [b_worker] = [await live_workers(pool, QUEUE[prefix]) for prefix in (A, B)]
    assert a_worker.pid != b_worker.pid
{%- if cookiecutter.api_framework == "fastapi" %}


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`, in process, with the app's lifespan run around it, logged in to the
    dashboard."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", auth=("operator", PASSWORD)
        ) as client,
    ):
        yield client


async def a_running_job_and_a_dead_letter(
    configure: Configure, worker_processes: WorkerProcesses
) -> str:
    """A's `order-42` running in A's worker, and a dead letter of A; returns the letter's id."""
    await as_service(configure, A)
    assert await enqueue_task("example_task", seconds=30, _job_id=JOB) is not None
    assert await enqueue_task("example_task", message="fail", _job_id="fails") is not None
    start_worker(worker_processes, A)
    await wait_for_status(A, JOB, JobStatus.in_progress)
    await wait_for_status(A, "fails", JobStatus.failed)
    return f"{QUEUE[A]}:fails"


async def a_s_job_is_untouched(configure: Configure, a_letter: str) -> None:
    """A's own API still shows A's job running, and A's dead letter is still listed."""
    pool = await as_service(configure, A, DASHBOARD_PASSWORD=PASSWORD)
    assert [letter.job_id for letter in await dead_letters.all_letters(pool, QUEUE[A])] == [
        a_letter
    ]
    async with serving(create_app()) as client:  # its lifespan closes the pool when it ends
        job = (await client.get(f"/jobs/{JOB}")).json()
    assert (job["job_id"], job["status"]) == (f"{QUEUE[A]}:{JOB}", "in_progress")


async def test_b_s_api_and_dashboard_neither_show_nor_touch_a_s_job_of_the_same_id(
    task_pool: ArqRedis, configure: Configure, worker_processes: WorkerProcesses
) -> None:
    a_letter = await a_running_job_and_a_dead_letter(configure, worker_processes)

    await as_service(configure, B, DASHBOARD_PASSWORD=PASSWORD)
    async with serving(create_app()) as client:
        read = await client.get(f"/jobs/{JOB}")
        deleted = await client.delete(f"/jobs/{JOB}")
        metrics = (await client.get("/metrics")).text
        page = (await client.get("/dashboard", params={"job": JOB})).text
        token = security.form_token(get_settings())  # what B's page would carry
        aborted = await client.post(f"/dashboard/jobs/{JOB}/abort", data={"token": token})
        requeued = await client.post(
            f"/dashboard/dead-letters/{quote(a_letter, safe=':')}/requeue", data={"token": token}
        )
        purged = await client.post("/dashboard/dead-letters/purge", data={"token": token})
        snapshot = (await client.get("/dashboard/snapshot.json")).json()

    assert (read.status_code, deleted.status_code) == (404, 404)
    assert "No job <code>order-42</code>" in page
    assert "in_progress" not in page
    assert "notice=finished" in aborted.headers["location"]  # nothing of B's to abort
    assert "notice=no-dead-letter" in requeued.headers["location"]
    assert purged.status_code == 303
    assert snapshot["queue"] == QUEUE[B]
    assert (snapshot["workers"], snapshot["dead_letters"], snapshot["recent"]) == ([], [], [])
    counts = snapshot["counts"]
    assert (counts["waiting"], counts["running"], counts["workers"], counts["dead_letters"]) == (
        0,
        0,
        0,
        0,
    )
    assert f'arq_queue_live_workers{% raw %}{{queue="{QUEUE[B]}"}}{% endraw %} 0.0' in metrics
    assert QUEUE[A] not in metrics

    await a_s_job_is_untouched(configure, a_letter)


async def test_b_s_api_and_dashboard_do_not_serve_a_s_job_by_its_full_id(
    task_pool: ArqRedis, configure: Configure, worker_processes: WorkerProcesses
) -> None:
    """A's job ids are predictable (`{svc-a:default}:order-42`): B's routes must not take one."""
    a_letter = await a_running_job_and_a_dead_letter(configure, worker_processes)
    a_job = f"{QUEUE[A]}:{JOB}"

    await as_service(configure, B, DASHBOARD_PASSWORD=PASSWORD)
    async with serving(create_app()) as client:
        read = await client.get(f"/jobs/{quote(a_job, safe=':')}")
        deleted = await client.delete(f"/jobs/{quote(a_job, safe=':')}")
        page = (await client.get("/dashboard", params={"job": a_job})).text
        aborted = await client.post(
            f"/dashboard/jobs/{quote(a_job, safe=':')}/abort",
            data={"token": security.form_token(get_settings())},
        )

    assert (read.status_code, deleted.status_code) == (404, 404), (read.text, deleted.text)
    assert "in_progress" not in page
    assert "notice=finished" in aborted.headers["location"]

    await a_s_job_is_untouched(configure, a_letter)
{%- endif %}
