# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Bad input to `enqueue_task` is refused with a clear error, nothing is queued, and no other
job is lost."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize, serialize
from {{ cookiecutter.package_name }}.infrastructure.tasks import (
    JobArgumentError,
    UnknownTaskError,
    WorkerSettings,
    close_task_pool,
    enqueue_task,
    get_task_pool,
)
from {{ cookiecutter.package_name }}.queue import enqueue_many

from .conftest import Configure, RunWorker


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("one", "two"), {}, "too many positional arguments"),
        ((), {"mesage": "typo"}, "unexpected keyword argument 'mesage'"),
        ((), {"message": b"\xff\xfe"}, "bytes is not JSON-serializable"),
        ((), {"message": float("nan")}, "Out of range float values are not JSON compliant"),
    ],
    ids=["too many arguments", "unknown keyword", "non-UTF-8 bytes", "NaN"],
)
async def test_arguments_the_job_cannot_take_are_refused(
    task_pool: ArqRedis, args: tuple[Any, ...], kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(JobArgumentError, match=error):
        await enqueue_task("example_task", *args, **kwargs)

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


async def test_a_start_given_twice_is_refused(task_pool: ArqRedis) -> None:
    with pytest.raises(JobArgumentError, match="_defer_until or _defer_by, not both"):
        await enqueue_task("example_task", _defer_by=60, _defer_until=datetime.now(UTC))

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"_expires": -5}, r"expires must be a finite number of seconds \(≥ 0\), not -5"),
        ({"_expires": float("inf")}, "expires must be a finite number of seconds"),
        ({"_defer_by": float("nan")}, "defer_by must be a finite number of seconds"),
        ({"_defer_by": "60"}, "defer_by takes seconds or a timedelta, not '60'"),
        ({"_defer_until": "tomorrow"}, "defer_until takes a datetime, not 'tomorrow'"),
    ],
    ids=["negative expires", "infinite expires", "NaN delay", "delay as text", "start as text"],
)
async def test_a_start_or_expiry_redis_could_not_take_is_refused(
    task_pool: ArqRedis, options: dict[str, Any], error: str
) -> None:
    # They reached Redis before, which refused the PSETEX: a RedisUnavailableError (or a
    # ValueError or OverflowError from the arithmetic), not an error in the call.
    with pytest.raises(JobArgumentError, match=error):
        await enqueue_task("example_task", **options)
    with pytest.raises(JobArgumentError, match="job 0: cannot enqueue 'example_task': "):
        await enqueue_many("example_task", [()], **{k.lstrip("_"): v for k, v in options.items()})

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


async def test_a_job_id_of_a_workflow_s_job_is_refused(task_pool: ArqRedis) -> None:
    # enqueue_chain(..., workflow_id="nightly") names its second step wf-nightly.1: a job
    # queued under that id first was overwritten by the step, and never ran.
    said = "cannot enqueue 'example_task' with the job id 'wf-nightly.1': ids starting with 'wf-'"
    with pytest.raises(JobArgumentError, match=said):
        await enqueue_task("example_task", _job_id="wf-nightly.1")
    with pytest.raises(JobArgumentError, match=f"job 1: {said}"):
        await enqueue_many("example_task", [(), ()], job_ids=["mine", "wf-nightly.1"])

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


async def test_a_start_already_past_is_due_now_and_kept_a_day(task_pool: ArqRedis) -> None:
    # Two days ago: arq's rule (a day past the start) would give the record a lifetime of
    # minus a day, which Redis refuses.
    past = datetime.now(UTC) - timedelta(days=2)
    queued = await enqueue_task("example_task", _defer_until=past)
    by_arq = await task_pool.enqueue_job("example_task", _defer_until=past)  # ctx["redis"]'s

    assert queued is not None
    assert by_arq is not None
    for job in (queued, by_arq):
        lifetime = await task_pool.pttl(f"arq:job:{job.job_id}")
        assert 23 * 3600 * 1000 < lifetime <= 24 * 3600 * 1000
    assert await task_pool.zcard(WorkerSettings.queue_name) == 2


async def test_the_argument_check_gives_each_call_shape_the_same_answer(
    task_pool: ArqRedis,
) -> None:
    # The check is cached per shape (how many positional arguments, which keywords).
    for _ in range(2):
        with pytest.raises(JobArgumentError, match="too many positional arguments"):
            await enqueue_task("example_task", "one", "two")
        with pytest.raises(JobArgumentError, match="multiple values for argument 'message'"):
            await enqueue_task("example_task", "positional", message="keyword")
        assert await enqueue_task("example_task") is not None
        assert await enqueue_task("example_task", "positional") is not None
        assert await enqueue_task("example_task", message="keyword") is not None
    assert await task_pool.zcard(WorkerSettings.queue_name) == 6


async def test_a_payload_over_the_limit_is_refused(
    redis_server: LocalRedisServer, configure: Configure
) -> None:
    configure(REDIS_URL=redis_server.url, JOB_MAX_BYTES="1000")
    try:
        pool = await get_task_pool()
        queued_before = await pool.zcard(WorkerSettings.queue_name)
        with pytest.raises(JobArgumentError, match=r"over JOB_MAX_BYTES \(1,000\)"):
            await enqueue_task("example_task", message="x" * 1000)
        assert await pool.zcard(WorkerSettings.queue_name) == queued_before
    finally:
        await close_task_pool()


def test_unusual_strings_round_trip() -> None:
    unusual = ["\udcff lone surrogate", "nul \x00 byte", "emoji 🚀", "x" * 500_000]

    assert deserialize(serialize(unusual)) == unusual


async def test_bad_input_loses_no_other_job(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    before = await enqueue_task("example_task", message="before")
    for bad in (
        enqueue_task("no_such_job"),
        enqueue_task("example_task", "a", "b"),
        enqueue_task("example_task", message=object()),
    ):
        with pytest.raises((UnknownTaskError, JobArgumentError)):
            await bad
    after = await enqueue_task("example_task", message="after")

    await run_burst_worker()

    assert before is not None
    assert after is not None
    assert [await before.result(timeout=5), await after.result(timeout=5)] == [
        "Processed: before",
        "Processed: after",
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "{{ cookiecutter.package_name }}.infrastructure.worker"],
        ["-m", "arq", "{{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings"],
{%- if cookiecutter.api_framework == "fastapi" %}
        ["-m", "uvicorn", "{{ cookiecutter.package_name }}.api.app:create_app", "--factory", "--port", "0"],
{%- endif %}
    ],
    ids=["worker", "arq command"{% if cookiecutter.api_framework == "fastapi" %}, "API"{% endif %}],
)
def test_a_bad_setting_stops_each_entry_point_with_one_line(command: list[str]) -> None:
    environment = {**os.environ, "WORKER_METRICS_PORT": "0", "LOG_FORMAT": "yaml"}
    result = subprocess.run(
        [sys.executable, *command],
        cwd=Path(__file__).parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "invalid settings" in line]
    assert "WORKER_METRICS_PORT: Input should be greater than or equal to 1" in line
    assert "LOG_FORMAT: Input should be 'text' or 'json'" in line


# Issue 9's REDIS_URL: a raw "@" and "/" in the password made a URL parser show most of it.
MISWRITTEN_URL, ITS_PASSWORD = "redis://:Xy@zz/Secretpart9@127.0.0.1:46379/0", "Xy@zz/Secretpart9"


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (["-m", "{{ cookiecutter.package_name }}.infrastructure.worker"], 1),
        (["-m", "arq", "{{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings"], 1),
        (["-m", "{{ cookiecutter.package_name }}.infrastructure.ops.cli", "ping"], 2),
{%- if cookiecutter.api_framework == "fastapi" %}
        (["-m", "uvicorn", "{{ cookiecutter.package_name }}.api.app:create_app", "--factory", "--port", "0"], 1),
{%- endif %}
    ],
    ids=["worker", "arq command", "CLI"{% if cookiecutter.api_framework == "fastapi" %}, "API"{% endif %}],
)
def test_a_miswritten_redis_url_stops_each_entry_point_without_showing_the_password(
    command: list[str], exit_code: int
) -> None:
    result = subprocess.run(
        [sys.executable, *command],
        cwd=Path(__file__).parents[2],
        env={**os.environ, "REDIS_URL": MISWRITTEN_URL},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == exit_code
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "invalid settings" in line]
    assert "REDIS_URL: " in line
    assert "percent-encode" in line
    output = result.stdout + result.stderr
    pieces = {
        ITS_PASSWORD[i:j]
        for i in range(len(ITS_PASSWORD))
        for j in range(i + 3, len(ITS_PASSWORD) + 1)
    }
    assert not {piece for piece in pieces if piece in output}, output
