# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Log lines: text by default, one JSON object per line with LOG_FORMAT=json; in either, one line
per record, whatever{% if cookiecutter.cache_backend != "none" %} a job or{% endif %} a client sends."""

{%- set queue = cookiecutter.cache_backend != "none" %}
{%- set api = cookiecutter.api_framework == "fastapi" %}

{% if queue or api -%}
import asyncio
{% endif -%}
import json
import logging
{%- if api %}
import os
import re
import signal
import socket
import subprocess
import sys
{%- elif queue %}
import re
{%- endif %}
from collections.abc import Iterator
{%- if api %}
from pathlib import Path
{%- endif %}

{% if api -%}
import httpx
{% endif -%}
import pytest
{%- if queue %}
from arq.connections import ArqRedis
{%- endif %}

{% if api -%}
from {{ cookiecutter.package_name }}.api.app import create_app
{% endif -%}
{% if queue -%}
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
{% endif -%}
from {{ cookiecutter.package_name }}.logs import configure_logging
{%- if queue %}
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError

from .conftest import WorkerProcesses
{%- endif %}

logger = logging.getLogger("{{ cookiecutter.package_name }}.tests")

# What an argument, an error or a request's path might carry to forge a line of its own.
FORGED = "2026-01-01 ERROR forged"
{%- if queue %}


async def fails_with(ctx: JobContext, text: str) -> None:
    """Fails with `text`: its first try as a retried error, its second for good."""
    if ctx["job_try"] == 1:
        raise ConnectionError(text)
    raise PermanentError(text)


# For worker processes: `python -m <package>.infrastructure.worker tests.infrastructure.test_logs.WorkerSettings`.
WorkerSettings = {
    **vars(ProjectSettings),
    "functions": (*ProjectSettings.functions, arq_function(fails_with)),
    "cron_jobs": (),
}
{%- endif %}


@pytest.fixture(autouse=True)
def restore_text_logging() -> Iterator[None]:
    yield
    configure_logging("INFO", "text")


def test_json_lines_have_time_level_logger_message_and_known_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    logger.info("hello %s", "world", extra={"job_id": "abc", "duration_ms": 1.5})
    logger.debug("below LOG_LEVEL: not written")
    try:
        raise ValueError("<boom>")
    except ValueError:
        logger.exception("it failed")

    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["time"].endswith("Z")
    assert first["time"][10] == "T"
    assert {key: first[key] for key in ("level", "logger", "message", "job_id", "duration_ms")} == {
        "level": "INFO",
        "logger": logger.name,
        "message": "hello world",
        "job_id": "abc",
        "duration_ms": 1.5,
    }
    assert "function" not in first  # unknown fields are left out, not null
    assert second["level"] == "ERROR"
    assert "ValueError: <boom>" in second["exception"]


def test_text_is_the_default_and_keeps_its_short_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "text")
    logger.debug("hello")
    line = capsys.readouterr().err.strip()
    assert line.endswith(": hello")
    assert not line.startswith("{")


def test_other_libraries_log_warnings_and_up_through_the_same_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("DEBUG", "json")
    logging.getLogger("some.library").info("not shown")
    logging.getLogger("some.library").warning("shown")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "shown"


def test_text_lines_escape_line_breaks_and_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")
    logger.info("got %s", f"one\n{FORGED}\r\n\x1b[31mred\u2028two\x85three\tfour")
    try:
        raise ValueError(f"bad\n{FORGED}")
    except ValueError:
        logger.exception("it failed:\n%s", FORGED)

    first, second = capsys.readouterr().err.splitlines()  # splitlines: \x85 and \u2028 too
    assert first.endswith(f"got one\\n{FORGED}\\r\\n\\x1b[31mred\\u2028two\\x85three\tfour")
    assert second.endswith(f"ValueError: bad\\n{FORGED}")
    assert f"it failed:\\n{FORGED}\\nTraceback (most recent call last):\\n" in second


def test_json_lines_escape_the_line_breaks_json_leaves_as_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    message = f"one\n{FORGED}\u2028two\x85three\u2029"
    logger.info(message)

    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == message
{%- if queue %}


@pytest.mark.parametrize(
    ("plain_arq", "log_format"),
    [(False, "text"), (True, "text"), (False, "json")],
    ids=["worker", "arq command", "worker, json"],
)
async def test_nothing_a_job_is_given_forges_a_line_of_the_worker_s_log(
    task_pool: ArqRedis, worker_processes: WorkerProcesses, plain_arq: bool, log_format: str
) -> None:
    settings = "tests.infrastructure.test_logs.WorkerSettings"
    worker_processes.start(settings, plain_arq=plain_arq, LOG_FORMAT=log_format)
    for _ in range(300):
        if "worker started on queue" in worker_processes.log(0):
            break
        await asyncio.sleep(0.1)
    done = await task_pool.enqueue_job("example_task", message=f"hi\n{FORGED}")
    failed = await task_pool.enqueue_job("fails_with", f"boom\n{FORGED}")
    assert done is not None
    assert failed is not None
    assert await done.result(timeout=20) == f"Processed: hi\n{FORGED}"
    with pytest.raises(Exception, match="boom"):
        await failed.result(timeout=20)
    await asyncio.sleep(0.3)  # the last lines reach the log

    log = worker_processes.log(0)
    assert log.count(FORGED) >= 4  # the job's line, the retry, the dead letter, arq's lines
    lines = log.splitlines()
    assert not [line for line in lines if line.startswith(FORGED)]
    # Every line is one record (tracebacks included): a time, then its message; or an object.
    if log_format == "json":
        assert all("message" in json.loads(line) for line in lines)
    else:
        assert [line for line in lines if not re.match(r"\d\d:\d\d:\d\d: ", line)] == []
{%- endif %}
{%- if api %}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_every_line_of_the_api_s_log_is_one_record_in_the_project_s_format(
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", f"{create_app.__module__}:create_app", "--factory"]
    with log_path.open("wb") as log_file:
        server = await asyncio.create_subprocess_exec(
            *command,
            *("--host", "127.0.0.1", "--port", str(port)),
            env={**os.environ, "LOG_FORMAT": "text"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    await client.get("/health/live")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            missing = await client.get("/health/%0A2026-01-01%20ERROR%20forged%0D%0A")
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await server.wait()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    log = log_path.read_text(errors="replace")
    assert missing.status_code == 404
    # uvicorn's access line keeps the path as sent, percent-encoded, and uvicorn refuses a
    # request line with control characters; its lines come out in the project's format too.
    assert '"GET /health/%0A2026-01-01%20ERROR%20forged%0D%0A HTTP/1.1" 404' in log
    lines = log.splitlines()
    assert not [line for line in lines if line.startswith(FORGED)]
    assert [line for line in lines if not re.match(r"\d\d:\d\d:\d\d: ", line)] == []
{%- endif %}
