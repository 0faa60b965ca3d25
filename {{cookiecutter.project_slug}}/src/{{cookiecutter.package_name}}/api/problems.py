# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Every error the API sends is an RFC 9457 problem document, as `application/problem+json`:

    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "nothing at /nope"}

`title` is the status's standard phrase, as RFC 9457 asks of the type `about:blank`; `detail`
says what went wrong with this request; a 422 adds `errors`, one entry per invalid part of the
request. `EXCEPTION_HANDLERS` turns into one: an `HTTPException` (a route's, or Starlette's for
an unknown path or method), an invalid request (422){% if cookiecutter.cache_backend != "none" %}, Redis out of reach or refusing
the request's commands (503: out of memory, a read-only replica, ...; connection.py names each){% endif %}.
`UnexpectedErrors` makes a 500 of any other exception: its traceback is logged, never sent.
Routes list their problems in OpenAPI with `problem_responses()`.
"""

import logging
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
{%- if cookiecutter.cache_backend != "none" %}
from redis.exceptions import RedisError
{%- endif %}
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
{%- if cookiecutter.cache_backend != "none" %}

from ..infrastructure.store.connection import RedisUnavailableError, unavailable
{%- endif %}

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Statuses an `HTTPException` may carry that have no body (RFC 9110): sent without a problem.
NO_BODY = {204, 304}
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class FieldError(BaseModel):
    """One invalid part of a request: where (`loc`, e.g. `["body", "message"]`), what is wrong
    (`msg`), and pydantic's name for it (`type`, e.g. `string_too_long`)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(Problem):
    """The problem document of a 422: which parts of the request are invalid, and why."""

    errors: list[FieldError]


def problem_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> JSONResponse:
    """A problem document for `status` (an HTTP status code) as a response."""
    title = HTTPStatus(status).phrase
    problem = (
        Problem(title=title, status=status, detail=detail)
        if errors is None
        else ValidationProblem(title=title, status=status, detail=detail, errors=errors)
    )
    return JSONResponse(
        problem.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of these error statuses for a route's `responses=`, so that the
    schema documents every answer a client can get (422 with its `errors`)."""
    return {
        status: {
            "model": ValidationProblem if status == 422 else Problem,
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }


def document_problems_as_problem_json(openapi: dict[str, Any]) -> None:
    """Move the error responses of an OpenAPI schema to `application/problem+json`, the media
    type they are sent with. FastAPI puts every `responses=` model under the route's own media
    type: `application/json`, or `text/event-stream` for a stream (job_stream.py)."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if not (status.isdigit() and int(status) >= 400):
                    continue
                for media_type in ("application/json", "text/event-stream"):
                    if media_type in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop(media_type)


async def http_error(request: Request, error: HTTPException) -> Response:
    """An `HTTPException` as a problem, with its headers (`Allow` on a 405, `WWW-Authenticate`
    on a 401)."""
    headers = dict(error.headers or {})
    if error.status_code in NO_BODY:  # no problem document: these statuses carry no body
        return Response(status_code=error.status_code, headers=headers)
    detail = str(error.detail)
    if error.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    if detail == HTTPStatus(error.status_code).phrase:  # Starlette's own, which says no more
        if error.status_code == 404:
            detail = f"nothing at {request.url.path}"
        elif error.status_code == 405:
            allowed = headers["Allow"]
            detail = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
    return problem_response(error.status_code, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route takes on the request's path. Starlette's 405 names only those of
    the first route it finds there, where one path may have several (GET and DELETE)."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.routes
        )
    ]


async def invalid_request(request: Request, error: RequestValidationError) -> Response:
    """A request FastAPI could not validate, as a 422 problem listing each invalid part. The
    invalid values are not echoed back: they may be large, or secret."""
    errors = [
        FieldError(loc=list(item["loc"]), msg=item["msg"], type=item["type"])
        for item in error.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, item.loc))}: {item.msg}" for item in errors)
    return problem_response(422, f"invalid request: {detail}", errors=errors)
{%- if cookiecutter.cache_backend != "none" %}


async def redis_unavailable(request: Request, error: Exception) -> Response:
    """A Redis error, as a 503 with its one-line reason from connection.py (the cause and what
    to check; never the password, nor the command's data). An error reply of no known kind
    ("refused": a WRONGTYPE, say) is a bug here, not Redis's state: a 500, logged."""
    reason = unavailable(error)
    if reason.kind == "refused":
        logger.error(
            "unexpected Redis error in %s %s: %s",
            request.method,
            request.url.path,
            reason,
            exc_info=error,
        )
        return problem_response(500, "the server met an unexpected error; it is logged")
    return problem_response(503, str(reason))
{%- endif %}


ExceptionHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

# For `FastAPI(exception_handlers=...)`; a handler also serves the subclasses of its exception.
EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    HTTPException: http_error,
    RequestValidationError: invalid_request,
{%- if cookiecutter.cache_backend != "none" %}
    # Raised when the pool cannot be opened, and by `enqueue_task`.
    RedisUnavailableError: redis_unavailable,
    # Raised by commands on an open pool: Redis away, or refusing (OOM, READONLY, BUSY, ...).
    RedisError: redis_unavailable,
{%- endif %}
}


class UnexpectedErrors:
    """ASGI middleware: an exception no handler took becomes a 500 problem.

    The traceback is logged here, with the request's method and path, and never sent. Starlette's
    own last-resort handler would re-raise the exception after answering, for the server to log
    it again, and in-process clients (tests) to raise it instead of showing the 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            logger.exception("unexpected error in %s %s", scope["method"], scope["path"])
            if response_started:  # too late for a problem: let the server drop the connection
                raise
            response = problem_response(500, "the server met an unexpected error; it is logged")
            await response(scope, receive, send)
