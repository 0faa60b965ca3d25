# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The web API: `create_app()` builds it, with its routes, error handling and limits.

    uv run uvicorn {{ cookiecutter.package_name }}.api.app:create_app --factory --port 8000

Then see http://localhost:8000/docs. `--factory` makes uvicorn call `create_app()`, so settings
are read when the server starts, and tests build a fresh app each time.
{%- if cookiecutter.cache_backend != "none" %}

The lifespan opens the task pool and closes it on shutdown. The app starts while Redis is down
(with one warning): /health/ready and the job routes then answer 503, and the first request
after Redis is back opens the pool, without a restart.
{%- endif %}
"""

import functools
import gc
{%- if cookiecutter.cache_backend != "none" %}
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
{%- endif %}

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import get_settings
from ..error_tracking import init_error_tracking
from ..infrastructure.settings import settings_or_exit
from ..logs import configure_logging
{%- if cookiecutter.cache_backend != "none" %}
from ..queue import RedisUnavailableError, close_task_pool
from ..tracing import instrument_app
from . import dashboard, health, job_stream, jobs, metrics, routes, workflows
from .dependencies import task_pool
{%- else %}
from ..tracing import instrument_app
from . import health, routes
{%- endif %}
from .problems import (
    EXCEPTION_HANDLERS,
    UnexpectedErrors,
    document_problems_as_problem_json,
    problem_response,
)
{%- if cookiecutter.cache_backend != "none" %}

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the task pool for the server's event loop, and close it on shutdown."""
    try:
        await task_pool()
    except RedisUnavailableError as error:
        logger.warning("%s; starting anyway: /health/ready and the job routes answer 503", error)
    try:
        yield
    finally:
        await close_task_pool()
{%- endif %}


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with a 413 problem, before
    any route runs.

    A `Content-Length` over the limit is refused without reading the body. Otherwise the body,
    sent whole or in chunks, is read here up to the limit and handed on in one piece: a route
    never sees the first part of a body that turns out too large.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client has gone
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self.refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def receive_read_body() -> Message:
            nonlocal body
            if body is None:  # read already: what comes next (a disconnect) is the server's
                return await receive()
            message = body
            body = None
            return message

        await self.app(scope, receive_read_body, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes} bytes (API_MAX_BODY_BYTES)"
        await problem_response(413, detail)(scope, receive, send)


class HeadAsGet:
    """ASGI middleware: a HEAD request is answered as its GET would be, without the body
    (RFC 9110, 9.3.2), on every route that answers GET.

    FastAPI routes answer only the methods they name, so `HEAD /metrics` or `HEAD /health/live`
    (what uptime checkers and `curl -I` send) got 405. The route runs as for a GET and its
    status and headers, `Content-Length` included, go out; the body does not. A stream (a job's
    events) ends there: once the response is complete, the server tells the route the client
    has gone. A route without GET still answers 405.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def send_without_body(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


def create_app() -> FastAPI:
    """The API, configured from the settings (config.py); every error is a problem document
    (problems.py)."""
    # A bad setting: one line, not a traceback from uvicorn.
    settings = settings_or_exit(get_settings)
    configure_logging(settings.log_level, settings.log_format)
    init_error_tracking()
    app = FastAPI(
        title=settings.app_name,
{%- if cookiecutter.cache_backend != "none" %}
        lifespan=lifespan,
{%- endif %}
        exception_handlers=EXCEPTION_HANDLERS,
        # Operation ids are the route functions' names, for generated clients.
        generate_unique_id_function=operation_id,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(HeadAsGet)
    app.add_middleware(UnexpectedErrors)  # added last: the outermost, sees every error
    app.include_router(health.router)
    for router in routes.ROUTERS:  # yours: api/routes.py
        app.include_router(router)
{%- if cookiecutter.cache_backend != "none" %}
    app.include_router(jobs.router)
    app.include_router(job_stream.router)
    app.include_router(workflows.router)
    app.state.job_watcher = job_stream.JobWatcher()  # what every job's event stream reads
    app.include_router(metrics.router)
    if settings.dashboard_password is not None:  # else /dashboard is a plain 404
        app.include_router(dashboard.router)
{%- endif %}
    instrument_app(app)  # each request a span, when OTEL_* turns tracing on (tracing.py)
    document_problems_as_problem_json(app.openapi())  # the schema app.openapi() serves from now
    freeze_startup_objects()
    return app


@functools.cache
def freeze_startup_objects() -> None:
    """Exempt what exists once the app is built (modules, routes, schemas: most of the heap)
    from the garbage collector's full collections; once per process.

    Under load a full collection comes about once a second, and walking all of that stalls
    every request in flight: in the template's bench/api.py, for about 22 ms each time (timed
    with `gc.callbacks`), which made p99 28 ms against a p50 of 6. With the startup objects
    frozen, a full collection takes about 0.4 ms. A frozen object is still freed when its last
    reference goes; only reference cycles among them are never collected.
    """
    gc.freeze()


def operation_id(route: APIRoute) -> str:
    return route.name
