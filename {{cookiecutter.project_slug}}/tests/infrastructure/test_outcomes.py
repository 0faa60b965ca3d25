# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Every way a job can end, told the same way by every place that reports it.

A real worker process (`just worker`'s, JSON logs, metrics on) runs one job of each outcome in
tests/outcome_jobs.py. Then, for each job, the test reads each place that reports how it ended
and compares them with one expected row:

- `Job.status()` and `Job.result()` (the result arq stores, read through job_handle.py);
- the API's `GET /jobs/{id}` (status, error type, try, start), which the dashboard's lookup shows;
- the activity record, one entry per try, which the dashboard and `just queue-stats` list;
- the worker's Prometheus counters, per function and outcome;
- the worker's log: one "job finished" line per try, with its outcome;
- the dead letters (`just dead-letters`, the dashboard).

The table it checks is printed (pytest -s shows it); docs/background-tasks.md has it too.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import free_port
from {{ cookiecutter.package_name }}.infrastructure.ops.activity import recent_jobs
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.queue import Job, JobAborted, JobFailed, JobStatus

from .conftest import Configure, WorkerProcesses
from .test_metrics import scrape

OUTCOME_JOBS = "tests.infrastructure.outcome_jobs.WorkerSettings"
PASSWORD = "outcome-table-password"
SECRET = "S3cretRedisPw42"
FINISHED = {JobStatus.complete, JobStatus.failed, JobStatus.aborted}
QUEUE = ProjectSettings.queue_name


@dataclass
class Expected:
    """One outcome: how each place must report it. `tries` lists each try's outcome in order
    (the activity record, the metrics and the log); `error` is the error type, None if none."""

    name: str
    function: str
    status: JobStatus
    error: str | None
    api_try: int
    started: bool
    tries: list[str]
    dead_letter: bool
    result: Any = None
    job_id: str = field(default="", init=False)


EXPECTED = [
    Expected("complete", "completes", JobStatus.complete, None, 1, True, ["complete"], False, "done"),
    Expected("failed at once", "refuses", JobStatus.failed, "PermanentError", 1, True, ["failed"], True),
    Expected(
        "failed for good", "always_fails", JobStatus.failed, "ValueError", 2, True,
        ["retried", "failed"], True,
    ),
    Expected(
        "retried", "fails_once", JobStatus.complete, None, 2, True, ["retried", "complete"], False,
        "second try",
    ),
    Expected("aborted before start", "never_starts", JobStatus.aborted, "JobAborted", 0, False, [], False),
    Expected(
        "aborted while running", "runs_until_aborted", JobStatus.aborted, "JobAborted", 1, True,
        ["aborted"], False,
    ),
    Expected(
        "unserializable result", "returns_a_set", JobStatus.failed, "ResultNotSerializable", 1, True,
        ["failed"], True,
    ),
    Expected("timed out", "overruns", JobStatus.failed, "TimeoutError", 1, True, ["failed"], True),
    Expected(
        "unknown function", "send_invoice", JobStatus.failed, "FunctionNotFound", 1, True,
        ["retried", "failed"], True,
    ),
    Expected("1 MB error", "fails_loudly", JobStatus.failed, "RuntimeError", 1, True, ["failed"], True),
    # Its record expires before it is due: the worker finds nothing of it but its id, so every
    # place reports it under arq's "<unknown>" function (the job is queued under that name here).
    Expected(
        "expired before start", "<unknown>", JobStatus.failed, "JobExecutionFailed", 0, False,
        ["failed"], False,
    ),
]  # fmt: skip


# How the rows that must not start in time are queued.
OPTIONS: dict[str, dict[str, Any]] = {
    "aborted before start": {"_defer_by": 60},
    "expired before start": {"_defer_by": 0.5, "_expires": 0.2},
}


@pytest.fixture
async def dashboard(task_pool: ArqRedis, configure: Configure) -> AsyncIterator[httpx.AsyncClient]:
    configure(DASHBOARD_PASSWORD=PASSWORD)
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", auth=("operator", PASSWORD)
        ) as client,
    ):
        yield client


async def wait_until_finished(jobs: list[Job[Any]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses = [await job.status() for job in jobs]
        if all(status in FINISHED for status in statuses):
            return
        await asyncio.sleep(0.1)
    unfinished = [job.job_id for job in jobs if await job.status() not in FINISHED]
    raise AssertionError(f"jobs still unfinished after {seconds} s: {unfinished}")


async def result_of(job: Job[Any]) -> tuple[str | None, Any]:
    """What `result()` gives: (None, the value) or (the error type it raises, None)."""
    try:
        return None, await job.result(timeout=1)
    except JobAborted:
        return "JobAborted", None
    except JobFailed as error:
        return error.error_type, None


def counters(text: str, function: str) -> dict[str, float]:
    """The worker's per-outcome counters of `function` (only those above 0)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix("arq_jobs_").removesuffix("_total")
            if (
                sample.labels.get("function") == function
                and sample.name.endswith("_total")
                and name in {"completed", "retried", "failed", "aborted"}
                and sample.value
            ):
                found[{"completed": "complete"}.get(name, name)] = sample.value
    return found


def logged_outcomes(log: str, job_id: str) -> list[str]:
    outcomes = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("job_id") == job_id and record.get("message", "").startswith("job finished"):
            outcomes.append(record["outcome"])
    return outcomes


async def test_every_outcome_is_reported_the_same_everywhere(
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    dashboard: httpx.AsyncClient,
) -> None:
    metrics_port = free_port()
    worker = worker_processes.start(
        OUTCOME_JOBS,
        LOG_FORMAT="json",
        WORKER_METRICS_PORT=str(metrics_port),
        WORKER_RETRY_BASE="0.05",
        WORKER_MISSING_FUNCTION_WAIT="2",
    )
    handles: dict[str, Job[Any]] = {}
    for row in EXPECTED:
        options: dict[str, Any] = OPTIONS.get(row.name, {})
        queued = await task_pool.enqueue_job(row.function, **options)
        assert isinstance(queued, Job)
        row.job_id = queued.job_id
        handles[row.name] = queued
    assert await handles["aborted before start"].abort(timeout=5)
    for _ in range(250):  # up to 5 s for the worker to start it
        if await task_pool.exists(f"started:{handles['aborted while running'].job_id}"):
            break
        await asyncio.sleep(0.02)
    assert await handles["aborted while running"].abort(timeout=5)
    await wait_until_finished(list(handles.values()), seconds=30)
    await asyncio.sleep(1.5)  # the activity record is written once a second
    metrics = await scrape(metrics_port)
    assert worker.poll() is None, "the worker exited"
    snapshot = (await dashboard.get("/dashboard/snapshot.json")).json()
    record = await recent_jobs(task_pool, QUEUE)
    letters = {letter.job_id for letter in await dead_letters.all_letters(task_pool, QUEUE)}
    log = worker_processes.log(0)

    table = [
        "| outcome | status() | result() | API status, error, try, started | activity | metrics | log | dead letter |"
    ]
    wrong = []
    for row in EXPECTED:
        job = handles[row.name]
        status = await job.status()
        raised, value = await result_of(job)
        view = (await dashboard.get(f"/jobs/{row.job_id}")).json()
        api = (
            view["status"],
            (view.get("error") or {}).get("type"),
            view["try"],
            view["started_at"] is not None,
        )
        recent = sorted(
            (entry for entry in record if entry.job_id == row.job_id),
            key=lambda entry: entry.finished_at,
        )
        activity: list[str] = [entry.outcome for entry in recent]
        counted = counters(metrics, row.function)
        logged = logged_outcomes(log, row.job_id)
        lettered = row.job_id in letters
        table.append(
            f"| {row.name} | {status.value} | {raised or repr(value)} | {api} | {activity} "
            f"| {counted} | {logged} | {lettered} |"
        )
        expected_counts: dict[str, float] = {}
        for outcome in row.tries:
            expected_counts[outcome] = expected_counts.get(outcome, 0) + 1
        checks = {
            "status()": status == row.status,
            "result()": (raised, value) == (row.error, row.result),
            "API": api == (row.status.value, row.error, row.api_try, row.started),
            "activity": activity == row.tries,
            "metrics": counted == expected_counts,
            "log": logged == activity,
            "dead letter": lettered == row.dead_letter,
        }
        wrong += [f"{row.name}: {place}" for place, right in checks.items() if not right]
    print("\n".join(table))
    assert not wrong, "\n".join([*wrong, *table])

    # A job that expired unstarted has no enqueue time: none is shown (arq records 0, 1970), its
    # wait counts from when it was due, and nothing offers to retry it (its function is unknown).
    expired = handles["expired before start"].job_id
    view = (await dashboard.get(f"/jobs/{expired}")).json()
    assert (view["function"], view["enqueued_at"], view["started_at"]) == ("<unknown>", None, None)
    [entry] = [entry for entry in snapshot["failures"] if entry["job_id"] == expired]
    assert entry["wait_seconds"] < 60
    page = (await dashboard.get("/dashboard", params={"job": expired})).text
    assert "JobExecutionFailed" in page  # the job looked up is shown, without a Retry button
    assert f"/jobs/{quote(expired)}/retry" not in page

    # Nothing shows a secret or a 1 MB error: not the API, the dashboard, the log or the letters.
    places = {
        "the dashboard": json.dumps(snapshot),
        "the log": log,
        "the dead letters": json.dumps(
            [letter.error for letter in await dead_letters.all_letters(task_pool, QUEUE)]
        ),
        "the API": "".join([(await dashboard.get(f"/jobs/{row.job_id}")).text for row in EXPECTED]),
    }
    assert [place for place, text in places.items() if SECRET in text] == []
    loud = (await dashboard.get(f"/jobs/{handles['1 MB error'].job_id}")).json()
    assert loud["error"]["message"].endswith(f"... [cut: {1_000_000 + 29:,} characters in all]")
    assert len(loud["error"]["message"]) < 3_000
