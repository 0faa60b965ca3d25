# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just queue-stats`, run as a user runs it: a separate process, against the test Redis, after
a real worker has run jobs; with several queues, a table per queue (`--queue NAME`: one)."""

import asyncio
import os
import re
import signal
import sys
from asyncio.subprocess import PIPE

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.ops import cli
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError, enqueue_task

from .conftest import Configure, RunWorker, add_dead_letter

COMMAND = [sys.executable, "-m", cli.__name__, "queue-stats"]


async def fails_for_good(ctx: JobContext) -> None:
    raise PermanentError("no")


def environment(redis_url: str, **variables: str) -> dict[str, str]:
    # A wide terminal: rich would otherwise wrap the table at 80 columns.
    return {**os.environ, "REDIS_URL": redis_url, "COLUMNS": "120", **variables}


async def queue_stats(
    redis_url: str, *args: str, variables: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the command to its end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=environment(redis_url, **(variables or {})), stdout=PIPE, stderr=PIPE
    )
    async with asyncio.timeout(30):
        output, errors = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(), errors.decode()


def row(output: str, name: str) -> list[str]:
    """The cells of the table row that starts with `name`."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃| ").split("│")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")


async def test_it_counts_jobs_dead_letters_workers_and_recent_outcomes(
    redis_server: LocalRedisServer, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    for number in range(3):
        await enqueue_task("example_task", message=str(number))
    await task_pool.enqueue_job("fails_for_good")
    await run_burst_worker(
        functions=[*WorkerSettings.functions, arq_function(fails_for_good)], cron_jobs=[]
    )
    await enqueue_task("example_task", message="later", _defer_by=60)

    exit_code, output, errors = await queue_stats(redis_server.url)

    assert exit_code == 0, errors
    assert row(output, "waiting")[1] == "0"
    assert row(output, "deferred")[1] == "1"
    assert row(output, "dead letters")[1] == "1"
    assert row(output, "live workers")[1] == "0"
    assert row(output, "complete")[1:] == ["3", "3"]
    assert row(output, "failed")[1:] == ["1", "1"]


def sigint_as_at_a_terminal() -> None:
    """In the child, before it starts: SIGINT with its default action, as Ctrl-C at a terminal
    finds it. A shell starts a command in the background (`just test &`, a CI step run so)
    with SIGINT ignored, every process it starts inherits that, and Python then leaves Ctrl-C
    to nobody: the watch would never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_watch_redraws_until_ctrl_c(
    redis_server: LocalRedisServer, task_pool: ArqRedis
) -> None:
    # FORCE_COLOR: rich redraws in place only on a terminal; here stdout is a pipe.
    watching = await asyncio.create_subprocess_exec(
        *COMMAND,
        *("--watch", "--interval", "0.2"),
        env=environment(redis_server.url, FORCE_COLOR="1"),
        stdout=PIPE,
        stderr=PIPE,
        preexec_fn=sigint_as_at_a_terminal,
    )
    assert watching.stdout is not None
    first_draws = b""
    try:
        # Until it has drawn (a Python start: slow on a busy CI), then a job queued meanwhile.
        async with asyncio.timeout(30):
            while b"live workers" not in first_draws:
                chunk = await watching.stdout.read(65536)
                assert chunk, "queue-stats --watch ended before its first draw"
                first_draws += chunk
        await enqueue_task("example_task", message="while watching")
        await asyncio.sleep(1.5)
        watching.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            raw_output, raw_errors = await watching.communicate()
    finally:
        if watching.returncode is None:
            watching.kill()
            await watching.wait()
    output, errors = (first_draws + raw_output).decode(), raw_errors.decode()

    assert watching.returncode == 0, errors
    assert "Traceback" not in errors
    assert output.count("live workers") >= 5  # redrawn every 0.2 s
    assert {"0", "1"} <= set(re.findall(r"waiting\s*│\s*(\d+)", output))  # the job queued meanwhile


async def test_it_says_why_when_redis_cannot_be_reached() -> None:
    exit_code, _, errors = await queue_stats(f"redis://127.0.0.1:{free_port()}/0")

    assert exit_code == 2
    assert "cannot reach Redis" in errors
    assert "Traceback" not in errors


async def test_a_bad_interval_is_refused(redis_server: LocalRedisServer) -> None:
    exit_code, _, errors = await queue_stats(redis_server.url, "--watch", "--interval", "0")

    assert exit_code == 2
    assert "not a number of seconds above 0" in errors


def tables(output: str) -> dict[str, str]:
    """Each table's lines, by the queue's key in its title ("queue <key> at <time>")."""
    found: dict[str, str] = {}
    queue_name = None
    for line in output.splitlines():
        title = re.fullmatch(r"\s*queue (\{.*\}) at \d\d:\d\d:\d\d\s*", line)
        if title:
            queue_name = title[1]
            found[queue_name] = ""
        elif queue_name is not None:
            found[queue_name] += line + "\n"
    return found


async def test_each_queue_has_a_table_of_its_own_figures(
    redis_server: LocalRedisServer, task_pool: ArqRedis, configure: Configure
) -> None:
    configure(QUEUES="critical,default,bulk")
    key = get_settings().queue_keys
    for number in range(2):
        await task_pool.enqueue_job("example_task", message=str(number), _queue_name="bulk")
    await task_pool.enqueue_job("example_task", message="soon", _queue_name="critical")
    await task_pool.enqueue_job("example_task", message="later", _defer_by=60)
    await add_dead_letter(task_pool)  # on default
    three = {"QUEUES": "critical,default,bulk"}

    exit_code, output, errors = await queue_stats(redis_server.url, variables=three)
    _, bulk_only, _ = await queue_stats(redis_server.url, "--queue", "bulk", variables=three)
    refused, nothing, why = await queue_stats(
        redis_server.url, "--queue", "urgent", variables=three
    )

    assert exit_code == 0, errors
    drawn = tables(output)
    assert list(drawn) == [key["critical"], key["default"], key["bulk"]]  # QUEUES' order
    figures = {
        queue_name: [row(table, name)[1] for name in ("waiting", "deferred", "dead letters")]
        for queue_name, table in drawn.items()
    }
    assert figures == {
        key["critical"]: ["1", "0", "0"],
        key["default"]: ["0", "1", "1"],
        key["bulk"]: ["2", "0", "0"],
    }
    assert list(tables(bulk_only)) == [key["bulk"]]
    assert row(bulk_only, "waiting")[1] == "2"
    assert (refused, nothing) == (2, "")
    assert why == "no queue named 'urgent': QUEUES lists critical, default, bulk\n"
