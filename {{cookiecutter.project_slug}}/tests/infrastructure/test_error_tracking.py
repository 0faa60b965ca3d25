# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Error tracking: with SENTRY_DSN set, errors reach Sentry; without it, sentry-sdk is not even
imported. Events go to a local stand-in for Sentry's ingest endpoint: an HTTP server that keeps
every envelope it is sent."""

{% if cookiecutter.cache_backend != "none" -%}
import asyncio
{% endif -%}
import gzip
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
{%- if cookiecutter.cache_backend != "none" %}
from arq.connections import ArqRedis

from .conftest import WorkerProcesses
{%- endif %}

PROJECT = Path(__file__).parents[2]


class SentryInbox:
    """The envelopes a Sentry DSN pointing here has received, decompressed."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.dsn = f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                inbox.envelopes.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def wait_for(self, text: str, within: float = 15) -> bytes:
        """The first envelope that contains `text`; fails after `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for envelope in self.envelopes:
                if text.encode() in envelope:
                    return envelope
            time.sleep(0.05)
        raise AssertionError(f"no event with {text!r} reached Sentry: {self.envelopes!r}")


@pytest.fixture
def sentry_inbox() -> Iterator[SentryInbox]:
    inbox = SentryInbox()
    thread = threading.Thread(target=inbox.server.serve_forever, daemon=True)
    thread.start()
    yield inbox
    inbox.server.shutdown()
    inbox.server.server_close()


def run_python(code: str, **environment: str) -> str:
    """Run `code` in a fresh interpreter in the project (settings from `environment`)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", "SENTRY_DSN": "", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_a_dsn_sentry_sdk_is_not_imported() -> None:
    imported = run_python(
        "import sys\n"
        "from {{ cookiecutter.package_name }}.error_tracking import init_error_tracking\n"
{%- if cookiecutter.cache_backend != "none" %}
        "import {{ cookiecutter.package_name }}.infrastructure.worker, {{ cookiecutter.package_name }}.infrastructure.tasks\n"
{%- endif %}
{%- if cookiecutter.api_framework == "fastapi" %}
        "from {{ cookiecutter.package_name }}.api.app import create_app\n"
        "create_app()\n"
{%- endif %}
        "print(init_error_tracking(), 'sentry_sdk' in sys.modules)\n"
    )
    assert imported.split() == ["False", "False"]


def test_an_error_logged_with_its_exception_becomes_an_event(sentry_inbox: SentryInbox) -> None:
    run_python(
        "import logging, sentry_sdk\n"
        "from {{ cookiecutter.package_name }}.error_tracking import init_error_tracking\n"
        "assert init_error_tracking()\n"
        "try:\n"
        "    raise LookupError('tracked-error-42')\n"
        "except LookupError:\n"
        "    logging.getLogger('{{ cookiecutter.package_name }}').exception('it failed')\n"
        "sentry_sdk.flush()\n",
        SENTRY_DSN=sentry_inbox.dsn,
        ENVIRONMENT="test",
    )
    event = sentry_inbox.wait_for("tracked-error-42")
    assert b"LookupError" in event
    assert b'"environment":"test"' in event.replace(b" ", b"")


def test_an_event_carries_no_credentials_or_secret_settings(sentry_inbox: SentryInbox) -> None:
    run_python(
        "import logging, sentry_sdk\n"
        "from {{ cookiecutter.package_name }}.error_tracking import init_error_tracking\n"
        "assert init_error_tracking()\n"
        "url = 'postgres://app:Pg-S3cret-77@db.internal/app'\n"
        "try:\n"
        "    raise ConnectionError(f'cannot reach {url}; redacted-error-43 Dash-S3cret-88')\n"
        "except ConnectionError:\n"
        "    logging.getLogger('{{ cookiecutter.package_name }}').exception('lost %s', url)\n"
        "sentry_sdk.flush()\n",
        SENTRY_DSN=sentry_inbox.dsn,
        DASHBOARD_PASSWORD="Dash-S3cret-88",
    )
    event = sentry_inbox.wait_for("redacted-error-43")
    assert b"postgres://***@db.internal/app" in event
    assert b"Pg-S3cret-77" not in event
{%- if cookiecutter.cache_backend != "none" and cookiecutter.api_framework == "fastapi" %}
    assert b"Dash-S3cret-88" not in event  # the value of a secret setting, DASHBOARD_PASSWORD
{%- endif %}
{%- if cookiecutter.api_framework == "fastapi" %}


def test_an_unexpected_error_in_a_route_becomes_an_event_and_a_500_problem(
    sentry_inbox: SentryInbox,
) -> None:
    answer = run_python(
        "import httpx, asyncio, sentry_sdk\n"
        "from {{ cookiecutter.package_name }}.api.app import create_app\n"
        "app = create_app()\n"
        "@app.get('/broken')\n"
        "async def broken() -> None:\n"
        "    raise ZeroDivisionError('route-error-42')\n"
        "async def main() -> None:\n"
        "    transport = httpx.ASGITransport(app=app)\n"
        "    async with httpx.AsyncClient(transport=transport, base_url='http://test') as client:\n"
        "        response = await client.get('/broken')\n"
        "    print(response.status_code, response.headers['content-type'])\n"
        "asyncio.run(main())\n"
        "sentry_sdk.flush()\n",
        SENTRY_DSN=sentry_inbox.dsn,
    )
    assert answer.split() == ["500", "application/problem+json"]
    assert b"ZeroDivisionError" in sentry_inbox.wait_for("route-error-42")
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}


async def test_a_job_that_fails_for_good_in_a_real_worker_becomes_an_event(
    sentry_inbox: SentryInbox, task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    worker = worker_processes.start(
        "tests.infrastructure.fault_jobs.WorkerSettings",
        SENTRY_DSN=sentry_inbox.dsn,
        WORKER_MAX_TRIES="1",
    )
    job = await task_pool.enqueue_job("numbered", 42, fail_first_try=True, _job_id="doomed")
    assert job is not None
    event = await asyncio.to_thread(sentry_inbox.wait_for, "job 42: flaky once", 30)
    assert b"ConnectionError" in event
    assert b"numbered" in event
    worker.terminate()
    assert worker.wait(timeout=30) == 0
{%- endif %}
