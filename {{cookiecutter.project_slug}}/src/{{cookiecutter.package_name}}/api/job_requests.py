# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What every route that starts a job shares: `start_job()` queues it and answers 202
(`JobAccepted`, the status URL in `Location`); `IDEMPOTENCY_KEY_PARAMETER` documents the header.

An `Idempotency-Key` header makes a retried request safe: the job id is derived from the key, and
arq queues no second job with an id it still knows, so the same key gives the same job (and the
same answer) while that job is queued, runs, or its result is kept (`WORKER_KEEP_RESULT`). A key
sent again with other arguments is refused with 409, as payment APIs (Stripe) do, rather than
answered with a job that does something else (`start_job()`).
"""

import hashlib
from typing import Annotated, Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError

from ..infrastructure.store.serialization import deserialize, serialize
from ..queue import Job, enqueue_task, get_job
from .jobs import job_path


class JobAccepted(BaseModel):
    """A queued job: its id, and the URL path to follow it at (also in the `Location` header)."""

    job_id: str
    status_url: str


# An Idempotency-Key: 1-255 visible ASCII characters, no spaces (a UUID fits).
IDEMPOTENCY_KEY = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[!-~]+$")]
)
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 visible ASCII characters (no spaces): a random UUID, since the job "
    "id is derived from it. A repeat with the same key and body gets the same job instead of a "
    "second one; the same key with another body gets 409.",
    "schema": IDEMPOTENCY_KEY.json_schema(),
}


def idempotency_key(request: Request) -> str | None:
    """The request's `Idempotency-Key` header, or None without one.

    Raises `RequestValidationError` (a 422 problem, as for any invalid parameter) for a key that
    is not 1-255 visible ASCII characters. Read here, and documented with `openapi_extra`,
    rather than declared as a `Header()` parameter, which cost every request about 30 µs of the
    server's CPU (the template's bench/api.py: 2,420 against 2,616 requests/s).
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    try:
        return IDEMPOTENCY_KEY.validate_python(key)
    except ValidationError as error:
        where = ("header", "Idempotency-Key")
        raise RequestValidationError([{**e, "loc": where} for e in error.errors()]) from None


def idempotent_job_id(function: str, key: str) -> str:
    """The job id for an Idempotency-Key sent to the route of job `function`.

    A hash, so that any key gives a valid id of one length; it starts with the job's name, so
    that a key reused on another route gives another job. With real authentication, hash the
    caller's identity in too, or two callers sending the same key share one job.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{function}:idempotency:{digest}"


def accepted(request: Request, job_id: str) -> JSONResponse:
    """The answer of a route that queued a job: 202, `JobAccepted`, and the status URL in the
    `Location` header. Built directly, as FastAPI would build it from the model, without
    validating our own two strings again."""
    status_url = job_path(request, job_id)
    body = {"job_id": job_id, "status_url": status_url}
    return JSONResponse(body, status_code=202, headers={"Location": status_url})


async def start_job(request: Request, function: str, **arguments: Any) -> JSONResponse:
    """Queue job `function` with keyword `arguments`, honouring the request's Idempotency-Key,
    and answer 202 (`accepted`).

    With a key, the job id is derived from it (`idempotent_job_id`), and a repeat gets the job
    the first request queued while arq still knows that id. The repeat's arguments are compared
    with the ones that job was queued with, which arq keeps with the job and then with its
    result: the fingerprint lives exactly as long as the id does, with nothing more to store.
    Other arguments raise `HTTPException` 409, which names neither the job nor its arguments, so
    that a guessed key reveals nothing. Also raises `RequestValidationError` (422) for a
    malformed key, and `RedisUnavailableError` (503).
    """
    key = idempotency_key(request)
    if key is None:
        job = await enqueue_task(function, **arguments)
        assert job is not None  # None only for a `_job_id` that is taken
        return accepted(request, job.job_id)
    job_id = idempotent_job_id(function, key)
    job = await get_job(job_id)  # the handle has the id in its queue's namespace (keys.py)
    queued = None
    # Twice: the job this key started can finish and be forgotten (its result not kept, or
    # expired) between the enqueue that found it and the read of its arguments.
    for _ in range(2):
        if await enqueue_task(function, _job_id=job_id, **arguments) is not None:
            return accepted(request, job.job_id)
        queued = await queued_arguments(job)
        if queued is not None:
            break
    # The arguments as the job's stored ones were read back: through JSON (serialization.py).
    if queued != (function, [], deserialize(serialize(arguments))):
        raise HTTPException(
            409,
            "this Idempotency-Key was used for a request with another body: send that body "
            "again to get its job, or a new key (a random UUID) for a new job",
        )
    return accepted(request, job.job_id)


async def queued_arguments(job: Job[Any]) -> tuple[str, list[Any], dict[str, Any]] | None:
    """The function, positional and keyword arguments of `job` as arq keeps them (from its
    result once it has finished), or None if there is no such job (any more)."""
    # info() reads the result, then the queued job: a job that finished in between is in
    # neither read, but its result is there now.
    info = await job.info() or await job.result_info()
    if info is None:
        return None
    return info.function, list(info.args), info.kwargs
