# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Following and aborting a job by id: `GET /jobs/{job_id}` and `DELETE /jobs/{job_id}`.

They serve every job on this project's queue: those the routes start, those code enqueues, and
cron ticks. Both read the job through its `Job` handle (job_handle.py), which tells a failed or
aborted job from a complete one, and aborts only a job that exists: a DELETE for an unknown id
leaves nothing behind that could drop a later job given that id.

`started_at` and `finished_at` are known once the job has finished: arq records them with its
result. A job whose result has expired (`WORKER_KEEP_RESULT`) is unknown again: 404.
"""

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from arq.jobs import JobResult
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..infrastructure.store.job_handle import outcome_of
from ..infrastructure.store.progress import Progress
from ..infrastructure.store.serialization import json_view
from ..queue import Job, JobStatus
from .dependencies import AppSettings, JobHandle, authorize
from .problems import problem_responses

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(authorize)])

FINISHED = {JobStatus.complete, JobStatus.failed, JobStatus.aborted}
# How often DELETE looks whether the worker has cancelled a running job.
ABORT_POLL_SECONDS = 0.1


class JobError(BaseModel):
    """Why a job failed, or that it was aborted: the exception's type name and its message."""

    type: str
    message: str


class ProgressView(BaseModel):
    """A job's latest progress report (`report_progress`): `done` of `total` (null when the job
    did not give one), a `note`, the try that reported it and when."""

    model_config = ConfigDict(populate_by_name=True)

    done: int | float  # as reported: 3 stays 3, not 3.0
    total: int | float | None
    note: str | None
    job_try: int = Field(alias="try")
    updated_at: datetime

    @classmethod
    def of(cls, progress: Progress) -> "ProgressView":
        return cls(
            done=progress.done,
            total=progress.total,
            note=progress.note,
            job_try=progress.job_try,
            updated_at=progress.updated_at,
        )


class JobView(BaseModel):
    """A job as the API shows it. `result` is there once the job is complete; `error` once it
    has failed or was aborted."""

    # `try` is a Python keyword: the field is `job_try`, sent (and read back) as "try".
    model_config = ConfigDict(populate_by_name=True)

    job_id: str
    function: str
    status: Literal["queued", "deferred", "in_progress", "complete", "failed", "aborted"]
    # The try running now, waiting to run, or (once finished) the last one that ran; 1 for the
    # first, 0 for a job that ended before it ever started (aborted, or expired).
    job_try: int = Field(alias="try")
    enqueued_at: datetime | None = Field(
        description="When the job was queued; null where that is not known: a job whose record "
        "expired before it ran (its `_expires`), of which the worker found nothing but its id "
        '(its function reads "<unknown>" too), or a result that cannot be read.',
    )
    started_at: datetime | None
    finished_at: datetime | None
    result: Any = None
    error: JobError | None = None
    waiting_for: str | None = Field(
        default=None,
        description="Why the job has not started, when one of its limits holds it back "
        '(docs/queues.md, "Limits"): "max_concurrency: 3 jobs of render_report are running", '
        '"rate_limit: 60/m for call_api, its turn at 2026-12-06T20:19:34.389Z".',
    )
    progress: ProgressView | None = Field(
        default=None,
        description="The job's latest progress report, if it made one (docs/background-tasks.md, "
        '"Progress"); kept as long as its result.',
    )
    retried_from: str | None = Field(
        default=None,
        description="The id of the job this one was queued again from: a dead letter requeued, "
        "or a failed job retried from the dashboard (docs/dashboard.md). Absent for a job "
        "queued afresh.",
    )


def job_path(request: Request, job_id: str) -> str:
    """The path of `GET /jobs/{job_id}`, behind the app's root path if it is mounted under one.

    Built here rather than with `request.url_for("read_job", ...)`, which searches the routes
    and builds a whole URL on every call: about a tenth of `POST /examples`' time (bench/api.py).
    The id is percent-encoded: the braces of its queue's key (keys.py) are not URL characters.
    """
    return f"{request.scope.get('root_path', '')}{router.prefix}/{quote(job_id, safe=':')}"


async def read_view(job: Job[Any]) -> JobView | None:
    """The job as the API shows it, or None if there is no such job (any more)."""
    view = await _read_view(job)
    if view is not None and view.status in FINISHED:
        progress = await job.progress()
        if progress is not None:  # else left unset: the view has no "progress" at all
            view.progress = ProgressView.of(progress)
    if view is not None:
        origin = await job.retried_from()
        if origin is not None:  # else left unset, as progress
            view.retried_from = origin
    return view


async def _read_view(job: Job[Any]) -> JobView | None:
    info = await job.info()  # its result if it has finished, else what was queued
    if isinstance(info, JobResult):
        return finished_view(job.job_id, info)
    if info is None:
        # info() reads the result, then the queued job: a job that finished in between is in
        # neither read, but its result is there now.
        result = await job.result_info()
        return None if result is None else finished_view(job.job_id, result)
    state = await job.state()  # status, tries and limit wait at one moment
    status = state.status
    if status in FINISHED:  # it finished between the two reads
        result = await job.result_info()
        return None if result is None else finished_view(job.job_id, result)
    if status is JobStatus.not_found:  # aborted meanwhile, and results are not kept
        return None
    # arq counts the tries started in a key of its own (`arq:retry:<id>`); the queued job keeps
    # only the try it was enqueued with.
    current = state.tries_started if status is JobStatus.in_progress else state.tries_started + 1
    view = JobView(
        job_id=job.job_id,
        function=info.function,
        status=status.value,
        job_try=max(current, info.job_try or 1),
        enqueued_at=info.enqueue_time,
        started_at=None,
        finished_at=None,
    )
    if state.limit_wait is not None:
        view.waiting_for = state.limit_wait.describe()
    if state.progress is not None:
        view.progress = ProgressView.of(state.progress)
    return view


def finished_view(job_id: str, result: JobResult) -> JobView:
    """A finished job, read as `Job.status()` reads it (job_handle.py's `outcome_of`)."""
    outcome = outcome_of(result)
    view = JobView(
        job_id=job_id,
        function=result.function,
        status=outcome.status.value,
        job_try=outcome.tries,
        enqueued_at=recorded(result.enqueue_time),
        started_at=recorded(result.start_time) if outcome.started else None,
        finished_at=recorded(result.finish_time),
    )
    if outcome.status is JobStatus.complete:
        view.result = json_view(result.result)
    else:
        view.error = JobError(type=outcome.error_type or "", message=outcome.message or "")
    return view


def recorded(moment: datetime) -> datetime | None:
    """A result's time, or None where the result does not know it: arq records 0 (1970) for a
    job whose record expired before a worker read it, and job_handle.py's `unreadable_result`
    gives the same for a time it cannot read."""
    return moment if moment.timestamp() > 0 else None


def no_such_job(job_id: str) -> HTTPException:
    return HTTPException(404, f"no job {job_id!r}: never queued, or its result has expired")


@router.get(
    "/{job_id}",
    name="read_job",
    # Only the fields set: `result` or `error` appear when there is one.
    response_model_exclude_unset=True,
    responses=problem_responses(404, 422, 503),
)
async def read_job(job: JobHandle) -> JobView:
    """The job's status, tries and times, and its result or error once it has finished."""
    view = await read_view(job)
    if view is None:
        raise no_such_job(job.job_id)
    return view


@router.delete(
    "/{job_id}",
    response_model_exclude_unset=True,
    responses={
        202: {
            "model": JobView,
            "description": "The job still runs; the abort stands, for its worker to cancel it.",
        },
        **problem_responses(404, 409, 422, 503),
    },
)
async def abort_job(job: JobHandle, settings: AppSettings, response: Response) -> JobView:
    """Abort the job: 200 with the job, aborted. A queued or deferred job is removed at once; a
    running one is cancelled by its worker, waited for up to `API_ABORT_WAIT` seconds, else 202
    (the abort stands). 404 for an unknown job, 409 for one that has finished."""
    before = await read_view(job)
    if before is None:
        raise no_such_job(job.job_id)
    if before.status in FINISHED:
        raise HTTPException(409, f"job {job.job_id!r} has already finished ({before.status})")
    aborted = await job.abort(timeout=settings.api_abort_wait, poll_delay=ABORT_POLL_SECONDS)
    after = await read_view(job)
    # Aborted after the wait ran out, but before the second read: aborted all the same.
    if aborted or (after is not None and after.status == "aborted"):
        # None: aborted and gone, as results are not kept (WORKER_KEEP_RESULT=0).
        return after or before.model_copy(update={"status": "aborted"})
    if after is None or after.status in FINISHED:
        raise HTTPException(409, f"job {job.job_id!r} finished before it could be aborted")
    response.status_code = 202
    return after
