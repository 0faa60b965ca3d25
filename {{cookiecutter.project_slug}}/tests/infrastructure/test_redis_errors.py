# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Every kind of Redis error, met for real: each gets one named line (the cause, the setting or
command to check, never the password) from one place (`connection.describe_redis_error`), and a
tested reaction. The worker tests run real worker processes on a Redis server of their own, with
a tiny `maxmemory` and `noeviction` (compose's setting): slow, `just test-faults` runs them."""

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

{% if cookiecutter.api_framework == "fastapi" -%}
import httpx
{% endif -%}
import pytest
import redis
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import BusyLoadingError, OutOfMemoryError, RedisError, ResponseError

{% if cookiecutter.api_framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.api.app import create_app
{% endif -%}
from {{ cookiecutter.package_name }}.config import Settings, get_settings
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.ops import cli
from {{ cookiecutter.package_name }}.infrastructure.store import connection
from {{ cookiecutter.package_name }}.infrastructure.store.connection import (
    RedisUnavailableError,
    describe_redis_error,
    redis_settings,
    write_refusal,
)
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize
from {{ cookiecutter.package_name }}.infrastructure.store.workflows import (
    FINISH_AND_ADVANCE,
    MemberRun,
    Membership,
    advance_call,
    finish_and_advance_call,
)
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.tasks import (
    close_task_pool,
    enqueue_task,
    get_task_pool,
)
from {{ cookiecutter.package_name }}.infrastructure.worker.finishes import FINISH_JOBS, Outcome, finish_call
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.infrastructure.worker.loop import SHUTDOWN_REDIS_SECONDS
from {{ cookiecutter.package_name }}.queue import JobContext

from .conftest import Configure, RunWorker, add_dead_letter

PROJECT = Path(__file__).parents[2]
QUEUE = ProjectSettings.queue_name
MEGABYTE = 1024 * 1024


async def counted_then_sleeps(ctx: JobContext, seconds: float) -> str:
    """Count its runs (in `runs`), sleep, return "done": it writes nothing at its end, so the
    only write after it is the worker's outcome write."""
    await ctx["redis"].incr("runs")
    await asyncio.sleep(seconds)
    return "done"


# For worker processes: `python -m ...worker tests.test_redis_errors.WORKER_SETTINGS`.
WORKER_SETTINGS = {
    **vars(ProjectSettings),
    "functions": (*ProjectSettings.functions, arq_function(counted_then_sleeps)),
    "cron_jobs": (),
}


@pytest.fixture
def small_redis() -> Iterator[LocalRedisServer]:
    """A Redis server of this test's own, with `noeviction` as compose runs it."""
    with LocalRedisServer() as server:
        with redis.Redis(port=server.port) as client:
            client.config_set("maxmemory-policy", "noeviction")
        yield server


def fill_memory(port: int) -> int:
    """Set `maxmemory` 2 MB above what Redis uses now, write 64 KB filler keys until Redis
    refuses one, and return how many were written (`filler:<n>`). The refused write's own
    64 KB counted while it was read: `maxmemory` then comes down to what is used less 64 KB,
    so that Redis refuses small writes too, until the fillers go."""
    with redis.Redis(port=port) as client:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used + 2 * MEGABYTE)
        for number in range(10_000):
            try:
                client.set(f"filler:{number}", b"x" * 65_536)
            except OutOfMemoryError:
                used = int(client.info("memory")["used_memory"])
                client.config_set("maxmemory", used - 65_536)
                return number
    raise AssertionError("Redis never refused a write")


def free_memory(port: int, fillers: int) -> None:
    with redis.Redis(port=port) as client:
        client.delete(*[f"filler:{number}" for number in range(fillers)])


def start_worker(url: str, logs: Path, *, plain_arq: bool, **env: str) -> "subprocess.Popen[bytes]":
    command = "arq" if plain_arq else "{{ cookiecutter.package_name }}.infrastructure.worker"
    with logs.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", command, f"{__name__}.WORKER_SETTINGS"],
            cwd=PROJECT,
            env={
                **os.environ,
                "REDIS_URL": url,
                "WORKER_HEALTH_CHECK_INTERVAL": "1",
                # A job's in-progress mark then lasts 18 s (its limit, the backstop's 5 s,
                # arq's 10 s): a full Redis outlasts it below.
                "WORKER_JOB_TIMEOUT": "3",
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_for(pool: ArqRedis, key: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await pool.exists(key):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {key} within {within} s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("after_a_job", [False, True], ids=["idle", "after-a-job"])
async def test_a_worker_stopped_while_redis_is_gone_stops_within_seconds(
    configure: Configure, tmp_path: Path, after_a_job: bool
) -> None:
    # With Redis gone, the stop's last writes (health-check key, heartbeat, activity record)
    # waited out WORKER_RECONNECT_SECONDS, 60 s, and the worker exited 1: past compose's and
    # Kubernetes' grace, and `just dev` killed with it left the worker behind that long.
    # After a job, the stop also waited out WORKER_SHUTDOWN_GRACE with no job running: arq
    # waits for its task list to empty, and only the loop removes a finished job's task from
    # it, which the loop, waiting on the vanished Redis, never did (CI met it in test_dev).
    logs = tmp_path / "worker.log"
    # The loop's wait for jobs then lasts FALLBACK_POLL_SECONDS (1 s) while the job runs: the
    # server stops during that wait, with the finished job's task still listed.
    slow_poll = {"WORKER_POLL_DELAY": "5"}
    with LocalRedisServer() as server:
        worker = start_worker(server.url, logs, plain_arq=False, **slow_poll)
        with redis.Redis(port=server.port) as client:
            wait_for_key(client, f"{QUEUE}:health-check", worker, logs)
            if after_a_job:
                configure(REDIS_URL=server.url)
                pool = await get_task_pool()
                handle = await pool.enqueue_job("counted_then_sleeps", seconds=0.3)
                await close_task_pool()
                assert handle is not None
                wait_for_key(client, result_key_prefix + handle.job_id, worker, logs)
    asked = time.monotonic()  # the server has stopped
    worker.terminate()
    code = worker.wait(timeout=90)
    took = time.monotonic() - asked

    log = logs.read_text(errors="replace")
    assert code == 0, log
    assert took < SHUTDOWN_REDIS_SECONDS + 5, log
    assert "stopping without Redis" in log


def wait_for_key(
    client: redis.Redis, key: str, worker: "subprocess.Popen[bytes]", logs: Path
) -> None:
    deadline = time.monotonic() + 30
    while not client.exists(key) and worker.poll() is None:
        if time.monotonic() > deadline:
            worker.kill()
            raise AssertionError(logs.read_text(errors="replace"))
        time.sleep(0.01)


OUT_OF_MEMORY_LINE = re.compile(r"Redis at \S+ refused a write: out of memory")


@pytest.mark.slow
@pytest.mark.parametrize("plain_arq", [False, True], ids=["project-worker", "arq-command"])
async def test_a_worker_rides_out_a_full_redis_and_writes_the_outcome_once(
    small_redis: LocalRedisServer, configure: Configure, tmp_path: Path, plain_arq: bool
) -> None:
    configure(REDIS_URL=small_redis.url)
    logs = tmp_path / "worker.log"
    pool = await get_task_pool()
    worker = start_worker(small_redis.url, logs, plain_arq=plain_arq)
    try:
        handle = await pool.enqueue_job("counted_then_sleeps", seconds=1.5)
        assert handle is not None
        await wait_for(pool, "runs", within=15)
        fillers = fill_memory(small_redis.port)
        # The job ends, its outcome cannot be written: the worker keeps trying, and says why
        # once (its attempts come every 2 s at most), not once per attempt. The project's worker
        # keeps the job claimed past its in-progress mark's 18 s, so that no worker can run it
        # again; arq's loop cannot (docs/background-tasks.md), and is watched for 6 s only.
        await asyncio.sleep(6 if plain_arq else 20)
        log = logs.read_text(errors="replace")
        assert worker.poll() is None, log
        assert len(OUT_OF_MEMORY_LINE.findall(log)) == 1, log
        assert "maxmemory" in log
        assert await pool.exists(in_progress_key_prefix + handle.job_id)  # still claimed
        assert not await pool.exists(result_key_prefix + handle.job_id)
        free_memory(small_redis.port, fillers)
        await wait_for(pool, result_key_prefix + handle.job_id, within=10)
        await asyncio.sleep(1)  # time for a second run, if there were one
        assert worker.poll() is None
        assert int(await pool.get("runs") or 0) == 1
        result = deserialize(await pool.get(result_key_prefix + handle.job_id) or b"")
        assert result["s"] is True
        assert result["r"] == "done"
        assert await pool.zscore(QUEUE, handle.job_id) is None
        assert "accepts writes again" in logs.read_text(errors="replace")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        await close_task_pool()
        get_settings.cache_clear()


@pytest.mark.parametrize("script", ["FINISH_JOBS", "FINISH_AND_ADVANCE"])
def test_a_full_redis_refuses_an_outcome_script_whole(
    small_redis: LocalRedisServer, script: str
) -> None:
    # Each writes the result first: a Redis at its `maxmemory` refuses a script's first write
    # that may use memory, and runs the rest of one that has written already (finishes.py).
    # So nothing of the outcome (nor of the move to the next step) is done, and the worker's
    # next try writes it whole.
    job_id, then_id = f"{QUEUE}:full-1", f"{QUEUE}:full-2"
    if script == "FINISH_JOBS":
        body = FINISH_JOBS
        keys, args = finish_call(QUEUE, [Outcome(job_id, b"done", 60.0, True)])
    else:
        body = FINISH_AND_ADVANCE
        joined = Membership("wf", "chain", 0, then=then_id, then_function="step")
        advance = advance_call(job_id, MemberRun(joined, "step", (True, 1)), 1, (60_000, 60))
        assert advance is not None
        keys, args = finish_and_advance_call(QUEUE, job_id, b"done", 60.0, True, advance)
    with redis.Redis(port=small_redis.port) as client:
        for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix):
            client.set(prefix + job_id, b"1")
        client.zadd(QUEUE, {job_id: 1})
        client.set(job_key_prefix + then_id, b"the next step")
        client.script_load(body)  # no SCRIPT LOAD while full
        write = client.register_script(body)
        before = sorted(client.keys("*"))
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - 65_536)  # full: it uses more than it may
        with pytest.raises(OutOfMemoryError):
            write(keys=keys, args=args)
        client.config_set("maxmemory", 0)
        assert sorted(client.keys("*")) == before
        assert client.zrange(QUEUE, 0, -1) == [job_id.encode()]

        write(keys=keys, args=args)
        assert client.get(result_key_prefix + job_id) == b"done"
        for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix):
            assert not client.exists(prefix + job_id)
        assert client.zscore(QUEUE, job_id) is None
        taken = client.exists(in_progress_key_prefix + then_id)
        assert taken == (script == "FINISH_AND_ADVANCE")


# --- Each kind, met for real where a real server can be made to give it ---------------------


def error_from(command: Callable[[], object]) -> RedisError:
    """The error `command` raises: it must raise one."""
    try:
        command()
    except RedisError as error:
        return error
    raise AssertionError("no error")


@contextlib.contextmanager
def busy_script(port: int) -> Iterator[None]:
    """Redis busy with an endless script, past a 100 ms busy-reply-threshold; killed on exit."""
    with redis.Redis(port=port) as client:
        client.config_set("busy-reply-threshold", 100)
    looping = threading.Thread(
        target=error_from,
        args=(lambda: redis.Redis(port=port).eval("while true do end", 0),),
    )
    looping.start()
    time.sleep(0.3)
    try:
        yield
    finally:
        with redis.Redis(port=port) as client:
            client.script_kill()
        looping.join()


def test_each_kind_of_redis_error_gets_its_own_line_without_the_password(
    small_redis: LocalRedisServer, password_server: LocalRedisServer
) -> None:
    port = small_redis.port
    plain = redis.Redis(port=port)
    plain.acl_setuser(
        "reader", enabled=True, passwords=["+reader-pw"], keys=["*"], commands=["+get"]
    )
    errors: dict[str, BaseException] = {
        "unreachable": error_from(lambda: redis.Redis(port=free_port()).ping()),
        "timeout": error_from(
            lambda: (
                plain.client_pause(1000, all=True),
                redis.Redis(port=port, socket_timeout=0.2).get("x"),
            )
        ),
        "auth": error_from(lambda: redis.Redis(port=password_server.port, password="no").ping()),
        "permission": error_from(
            lambda: redis.Redis(port=port, username="reader", password="reader-pw").set("x", 1)
        ),
        "no_script": error_from(lambda: plain.evalsha("0" * 40, 0)),
        "refused": error_from(lambda: (plain.set("text", "a"), plain.lpush("text", "b"))),
    }
    plain.client_unpause()
    with busy_script(port):
        errors["busy"] = error_from(lambda: redis.Redis(port=port).set("x", 1))
    plain.replicaof("127.0.0.1", free_port())  # a replica (its master is nowhere): read-only
    errors["read_only"] = error_from(lambda: plain.set("x", 1))
    plain.replicaof("NO", "ONE")
    fill_memory(port)
    # In a transaction, as arq writes a job's outcome: redis-py names the command and its data.
    outcome = plain.pipeline()
    outcome.set("result", "job data")
    outcome.zrem("queue", "id")
    errors["out_of_memory"] = error_from(outcome.execute)
    # What a real server gives only under load or on a broken disk, as redis-py raises it.
    errors["loading"] = BusyLoadingError("Redis is loading the dataset in memory")
    errors["persistence"] = ResponseError("MISCONF Redis is configured to save RDB snapshots")
    errors["cluster"] = ResponseError("MOVED 3999 127.0.0.1:6381")
    errors["bad_url"] = ValueError("invalid literal for int() with base 10: 'p@ss'")
    plain.close()

    settings = Settings(_env_file=None, redis_url=f"redis://:hunter22@127.0.0.1:{port}/0")
    expected = {
        "unreachable": "cannot reach Redis at redis://:***@127.0.0.1",
        "timeout": "REDIS_CONNECT_TIMEOUT",
        "auth": "check the user and password in REDIS_URL",
        "permission": "ACL",
        "out_of_memory": "refused a write: out of memory",
        "persistence": "cannot save to disk",
        "read_only": "read-only replica",
        "loading": "loading its data",
        "busy": "SCRIPT KILL",
        "no_script": "script cache",
        "cluster": "does not support Redis Cluster",
        "bad_url": "percent-encode",
        "refused": "WRONGTYPE",
    }
    for kind, error in errors.items():
        problem = describe_redis_error(error, settings)
        assert (problem.kind, kind) == (kind, kind), error
        assert expected[kind] in problem.message, problem.message
        assert "\n" not in problem.message
        for secret in ("hunter22", "p@ss", "job data"):
            assert secret not in problem.message
    assert "check REDIS_URL" not in describe_redis_error(errors["out_of_memory"], settings).message


# --- Reactions: the worker waits out what passes ---------------------------------------------


async def set_key(pool: ArqRedis, key: str) -> bool:
    return bool(await pool.set(key, 1))


async def test_a_worker_waits_out_a_read_only_replica_until_it_is_promoted(
    small_redis: LocalRedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failover that DNS has not followed yet: writes go to a replica, refused, until it is
    the master (or REDIS_URL's name points at the new one); the worker's pool reconnects and
    tries again, and says so once."""
    caplog.set_level(logging.INFO, logger=connection.__name__)
    settings = Settings(_env_file=None, redis_url=small_redis.url)
    pool = await create_pool(redis_settings(settings, reconnect_for=30))
    plain = redis.Redis(port=small_redis.port)
    plain.replicaof("127.0.0.1", free_port())
    try:
        write = asyncio.create_task(set_key(pool, "after-failover"))
        await asyncio.sleep(1)
        assert not write.done()
        plain.replicaof("NO", "ONE")  # promoted
        assert await asyncio.wait_for(write, 10) is True
    finally:
        plain.replicaof("NO", "ONE")
        plain.close()
        await pool.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == connection.__name__]
    assert len(lines) == 2, lines
    assert "read-only replica" in lines[0]
    assert "retrying for up to 30 s (WORKER_RECONNECT_SECONDS)" in lines[0]
    assert "is back after" in lines[1]


async def test_a_worker_waits_out_a_busy_script(small_redis: LocalRedisServer) -> None:
    settings = Settings(_env_file=None, redis_url=small_redis.url)
    pool = await create_pool(redis_settings(settings, reconnect_for=30))
    try:
        with busy_script(small_redis.port):
            write = asyncio.create_task(set_key(pool, "after-the-script"))
            await asyncio.sleep(0.5)
            assert not write.done()
        assert await asyncio.wait_for(write, 10) is True
    finally:
        await pool.aclose()


async def test_other_error_replies_are_raised_at_once_on_a_worker_pool(
    small_redis: LocalRedisServer,
) -> None:
    """A WRONGTYPE is a bug, not Redis's state: no waiting, no new connection."""
    settings = Settings(_env_file=None, redis_url=small_redis.url)
    pool = await create_pool(redis_settings(settings, reconnect_for=30))
    try:
        await pool.set("text", "a")
        started = time.monotonic()
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await pool.lpush("text", "b")  # type: ignore[misc]  # redis-py's sync|async union
        assert time.monotonic() - started < 0.5
    finally:
        await pool.aclose()


async def test_a_user_whose_acl_denies_info_is_not_taken_for_a_refusing_redis(
    small_redis: LocalRedisServer,
) -> None:
    """/health/ready and `cli ping` read INFO (in @dangerous) to tell a full Redis or a
    replica: a user without it cannot tell, and is not called unusable for that."""
    with redis.Redis(port=small_redis.port) as admin:
        admin.acl_setuser(
            "app",
            enabled=True,
            passwords=["+app-pw"],
            keys=["*"],
            commands=["+@all", "-@dangerous"],
        )
    client = AsyncRedis(port=small_redis.port, username="app", password="app-pw")
    try:
        assert await write_refusal(client) is None
    finally:
        await client.aclose()


async def test_jobs_are_queued_and_run_after_redis_lost_its_scripts(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    """NOSCRIPT (a restart, a failover, SCRIPT FLUSH): the scripts are sent again."""
    before = await enqueue_task("example_task", message="before")
    await task_pool.script_flush()
    after = await enqueue_task("example_task", message="after")
    await task_pool.script_flush()
    await run_burst_worker()

    assert before is not None
    assert after is not None
    assert await after.result(timeout=5) == "Processed: after"


# --- Reactions: clients say that Redis is full ------------------------------------------------


@pytest.fixture
async def full_redis(
    small_redis: LocalRedisServer, configure: Configure
) -> AsyncIterator[LocalRedisServer]:
    """`small_redis` as the project's Redis, out of memory; memory freed at the end."""
    configure(REDIS_URL=small_redis.url)
    pool = await get_task_pool()
    await add_dead_letter(pool)
    fillers = fill_memory(small_redis.port)
    yield small_redis
    free_memory(small_redis.port, fillers)
    await close_task_pool()
    get_settings.cache_clear()


async def test_enqueue_says_redis_is_out_of_memory(full_redis: LocalRedisServer) -> None:
    with pytest.raises(RedisUnavailableError) as raised:
        await enqueue_task("example_task", message="no room")

    assert raised.value.kind == "out_of_memory"
    message = str(raised.value)
    assert message.startswith(f"Redis at {full_redis.url} refused a write: out of memory")
    assert "cannot reach" not in message
    assert "check REDIS_URL" not in message


def test_the_cli_says_redis_is_out_of_memory(
    full_redis: LocalRedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["requeue", "dead-1"]) == 2
    requeue = capsys.readouterr()
    assert cli.main(["ping"]) == 0  # `just worker` pings first: the worker still starts
    ping = capsys.readouterr()

    [line] = requeue.err.splitlines()
    assert line.startswith(f"Redis at {full_redis.url} refused a write: out of memory")
    assert "but it would refuse writes now: " in ping.err
    assert "out of memory" in ping.err
{%- if cookiecutter.api_framework == "fastapi" %}


async def test_the_api_says_redis_is_out_of_memory_until_memory_frees(
    small_redis: LocalRedisServer, configure: Configure
) -> None:
    configure(REDIS_URL=small_redis.url)
    transport = httpx.ASGITransport(app=(app := create_app()))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        assert (await client.get("/health/ready")).status_code == 200
        fillers = fill_memory(small_redis.port)
        submitted = await client.post("/examples", json={"message": "no room"})
        ready = await client.get("/health/ready")
        free_memory(small_redis.port, fillers)
        ready_again = await client.get("/health/ready")
    await close_task_pool()

    for response in (submitted, ready):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert detail.startswith(f"Redis at {small_redis.url} refused a write: out of memory")
    assert ready_again.status_code == 200
{%- endif %}
