"""`POST /examples`: the example of a route that starts a job. It queues `example_task`
(jobs.py) and answers 202 with the job's id and where to follow it (`GET /jobs/{job_id}`).

Copy it for each job clients may start: one route per job, each with a body of its own that
pydantic checks. No route takes the name of a job from the request, so a client can start only
what a route offers, with arguments that route has checked.

An `Idempotency-Key` header makes a retried request safe: the job id is derived from the key, and
arq queues no second job with an id it still knows, so the same key gives the same job (and the
same answer) while that job is queued, runs, or its result is kept (`WORKER_KEEP_RESULT`). The
body of a repeat is not compared with the first one's.
"""

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..queue import enqueue_task
from .dependencies import authorize, task_pool
from .jobs import job_path
from .problems import problem_responses

router = APIRouter(tags=["examples"], dependencies=[Depends(authorize)])


class ExampleRequest(BaseModel):
    """What `example_task` needs: the message to process."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=1000, examples=["Hello!"])


class JobAccepted(BaseModel):
    """A queued job: its id, and the URL path to follow it at (also in the `Location` header)."""

    job_id: str
    status_url: str


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="1-255 visible ASCII characters (no spaces), e.g. a UUID: a repeat with the same "
        "key gets the same job instead of a second one.",
    ),
]


def idempotent_job_id(function: str, key: str) -> str:
    """The job id for an Idempotency-Key sent to the route of job `function`.

    A hash, so that any key gives a valid id of one length; it starts with the job's name, so
    that a key reused on another route gives another job. With real authentication, hash the
    caller's identity in too, or two callers sending the same key share one job.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{function}:idempotency:{digest}"


@router.post(
    "/examples",
    status_code=202,
    # Opens the pool first: while Redis is down the route answers 503 at once (dependencies.py).
    dependencies=[Depends(task_pool)],
    responses={
        202: {
            "description": "Queued (or queued already, for a repeated Idempotency-Key).",
            "headers": {
                "Location": {"description": "The job's `status_url`.", "schema": {"type": "string"}}
            },
        },
        # 400: a body that is not UTF-8 JSON at all.
        **problem_responses(400, 413, 422, 503),
    },
)
async def submit_example(
    body: ExampleRequest,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Queue `example_task` with this message; 202 with the job's id and status URL."""
    job_id = None if idempotency_key is None else idempotent_job_id("example_task", idempotency_key)
    job = await enqueue_task("example_task", message=body.message, _job_id=job_id)
    if job is not None:
        job_id = job.job_id
    # else: a repeat, and the job this key started is still known; answer with it.
    assert job_id is not None  # enqueue_task returns None only for a job id given to it
    status_url = job_path(request, job_id)
    response.headers["Location"] = status_url
    return JobAccepted(job_id=job_id, status_url=status_url)
