"""`POST /examples`: the example of a route that starts a job. It queues `example_task`
(jobs.py) and answers 202 with the job's id and where to follow it (`GET /jobs/{job_id}`).

Copy it for each job clients may start: one route per job, each with a body of its own that
pydantic checks, and `start_job()` (job_requests.py) to queue it, which honours an
`Idempotency-Key` header. No route takes the name of a job from the request, so a client can
start only what a route offers, with arguments that route has checked.
"""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .dependencies import authorize, task_pool
from .job_requests import IDEMPOTENCY_KEY_PARAMETER, JobAccepted, start_job
from .problems import problem_responses

router = APIRouter(tags=["examples"], dependencies=[Depends(authorize)])


class ExampleRequest(BaseModel):
    """What `example_task` needs: the message to process, and how long the job takes."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=1000, examples=["Hello!"])
    # strict: a number, not `true` or "5" read as one.
    seconds: float = Field(
        default=0,
        ge=0,
        le=60,
        strict=True,
        description="How long the job works before it answers (0-60): time to follow or abort it.",
    )


@router.post(
    "/examples",
    status_code=202,
    response_model=JobAccepted,
    # Opens the pool first: while Redis is down the route answers 503 at once (dependencies.py).
    dependencies=[Depends(task_pool)],
    responses={
        202: {
            "description": "Queued (or queued already, for a repeated Idempotency-Key and body).",
            "headers": {
                "Location": {"description": "The job's `status_url`.", "schema": {"type": "string"}}
            },
        },
        # 400: a body that is not UTF-8 JSON at all; 409: an Idempotency-Key used with another.
        **problem_responses(400, 409, 413, 422, 503),
    },
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
async def submit_example(body: ExampleRequest, request: Request) -> JSONResponse:
    """Queue `example_task` with this message; 202 with the job's id and status URL."""
    return await start_job(request, "example_task", message=body.message, seconds=body.seconds)
