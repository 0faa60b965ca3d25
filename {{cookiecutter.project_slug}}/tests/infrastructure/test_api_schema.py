# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The API's contract: every operation in its own OpenAPI schema, driven by schemathesis with
generated requests, valid and invalid, answers without a 5xx and as the schema says; and every
error, including those of no operation (unknown paths, methods, crashes), is a problem document.

Schemathesis calls the app in process, on an event loop of its own.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
{%- if cookiecutter.cache_backend != "none" %}
import redis
{%- endif %}
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import shutdown_lifespans

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.config import get_settings
{%- if cookiecutter.cache_backend != "none" %}
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
{%- endif %}

PROBLEM = "application/problem+json"


# Read from an app that is not started; each test runs the requests against an app of its own.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@pytest.fixture
{%- if cookiecutter.cache_backend != "none" %}
def app(redis_server: LocalRedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """An app for schemathesis to call, on the test Redis (emptied). Schemathesis starts its
    lifespan with the first request; this stops it."""
{%- else %}
def app() -> Iterator[FastAPI]:
    """An app for schemathesis to call. Schemathesis starts its lifespan with the first
    request; this stops it."""
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    get_settings.cache_clear()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
{%- endif %}
    yield create_app()
    shutdown_lifespans()
    get_settings.cache_clear()


# A few dozen requests per operation, valid and invalid, the same ones on every run.
@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_its_schema_says(
    case: schemathesis.Case[Any], app: FastAPI
) -> None:
    case.call_and_validate(app=app)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`, in process, with the app's lifespan run around it."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def test_the_schema_has_the_template_s_operations_and_no_generic_job_route() -> None:
    # The routes a new project starts with are there; routes you add are welcome. No route
    # takes the name of a job to run: each job gets a route of its own (docs/api.md).
    paths = create_app().openapi()["paths"]
    operations = {(path, method) for path, methods in paths.items() for method in methods}

    assert {
        ("/health/live", "get"),
        ("/health/ready", "get"),
{%- if cookiecutter.cache_backend != "none" %}
        ("/examples", "post"),
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}", "delete"),
{%- endif %}
    } <= operations
    assert not [path for path, method in operations if path == "/jobs" and method == "post"]


async def test_an_unknown_path_or_method_is_a_problem() -> None:
    async with serving(create_app()) as client:
        unknown = await client.get("/no/such/path")
        wrong_method = await client.put("/health/live")

    assert (unknown.status_code, unknown.headers["content-type"]) == (404, PROBLEM)
    assert unknown.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "nothing at /no/such/path",
    }
    assert (wrong_method.status_code, wrong_method.headers["content-type"]) == (405, PROBLEM)
    assert wrong_method.headers["allow"] == "GET"
    assert wrong_method.json()["detail"] == "PUT is not allowed on /health/live (allowed: GET)"


async def test_an_unexpected_error_is_a_500_problem_and_its_traceback_stays_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app()

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("the database password is hunter2")

    with caplog.at_level(logging.ERROR):
        async with serving(app) as client:
            response = await client.get("/fails")

    assert (response.status_code, response.headers["content-type"]) == (500, PROBLEM)
    assert response.json()["title"] == "Internal Server Error"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    [record] = caplog.records
    assert record.getMessage() == "unexpected error in GET /fails"
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])
