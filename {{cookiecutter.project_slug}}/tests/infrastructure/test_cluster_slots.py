# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Ready for Redis Cluster, on paper: every script, transaction and multi-key command the project
sends touches keys of one cluster slot only (keys.py: a queue is a namespace, `{<prefix>:<queue>}`).

A cluster refuses a command, a MULTI/EXEC or a Lua script whose keys hash to more than one slot
(CROSSSLOT), and a script that touches a key of another slot than its declared ones. So the test
records, with MONITOR, every command any client sends while a whole job lifecycle runs through
the project's own code: enqueueing (random id, `_job_id`, deferred), a job that queues a follow-up
through `ctx["redis"]`, a real worker running jobs that succeed, retry, fail for good and land in
the dead letters, a cron tick, aborting a queued and a running job, `Job.status()`, `result()` and
`info()`, the heartbeat releasing a dead worker's jobs, `queue_stats`, the metrics,
{%- if cookiecutter.api_framework == "fastapi" %}
the dashboard's snapshot,
{%- endif %}
requeueing and purging dead letters, jobs with limits (leases and rate turns), and chains and
groups over two queues. Then it groups what it saw into what a cluster runs as one
unit (a script with the commands it ran, a WATCH/MULTI ... EXEC of one connection, a single
command), asks the server for each command's keys (COMMAND GETKEYS) and hashes them as a cluster
does (`redis.crc.key_slot`).
"""

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest
import redis
from arq import Retry
from arq.connections import ArqRedis
from arq.constants import retry_key_prefix
from redis.crc import key_slot

{% if cookiecutter.api_framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.api.dashboard.snapshot import read_snapshot
{% endif -%}
from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer
from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import render_queue_stats
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.depth import queue_depth, queue_stats
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import Heartbeat
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import (
    arq_cron_job,
    arq_function,
    worker_functions,
)
from {{ cookiecutter.package_name }}.queue import (
    Job,
    JobContext,
    JobFailed,
    JobStatus,
    enqueue_chain,
    enqueue_group,
    enqueue_task,
    get_job,
    requeue_dead_letter,
)
from {{ cookiecutter.package_name }}.queue import job as declare_job

from .conftest import Configure, RunningWorker, sleeps, wait_until_listed, wait_until_started

EVERY_SECOND = set(range(60))
SCRIPT_CALLS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
# The ends of a transaction; UNWATCH ends one only before its MULTI (WATCH, then nothing to do).
TRANSACTION_ENDS = {"EXEC", "DISCARD", "RESET"}

# A MONITOR line: `<time> [<db> <client address, or lua>] "ARG" "ARG" ...`, each argument quoted
# and escaped as Redis's sdscatrepr writes it.
LINE = re.compile(rb"\d+\.\d+ \[\d+ ([^\]]*)\] (.*)", re.DOTALL)
ARGUMENT = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)
ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
ESCAPED = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}


def unescape(quoted: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        escaped = match[1]
        if len(escaped) == 3 and escaped[:1] == b"x":
            return bytes([int(escaped[1:], 16)])
        return ESCAPED.get(escaped, escaped)

    return ESCAPE.sub(one, quoted)


@dataclass
class Command:
    """One command as MONITOR showed it; a script's call holds the commands it ran (`inner`)."""

    client: str
    args: tuple[bytes, ...]
    inner: list["Command"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.args[0].decode(errors="replace").upper()

    def __str__(self) -> str:
        shown = [arg.decode(errors="backslashreplace") for arg in self.args[:1]]
        if self.name in SCRIPT_CALLS:  # the script's name, not its text
            shown.append(self.args[1][:12].decode(errors="backslashreplace") + "...")
        return " ".join(shown)


@dataclass
class Unit:
    """What a cluster runs on one node, all its keys in one slot: a script with what it ran, a
    transaction (WATCH / MULTI ... EXEC of one connection), or a single command."""

    kind: str
    commands: list[Command]

    def all_commands(self) -> Iterable[Command]:
        for command in self.commands:
            yield command
            yield from command.inner

    def title(self) -> str:
        names = [str(command) for command in self.commands]
        inner = sorted({command.name for outer in self.commands for command in outer.inner})
        return " | ".join(names) + (f" (running {', '.join(inner)})" if inner else "")


def parse(lines: list[bytes]) -> list[Command]:
    commands = []
    for line in lines:
        match = LINE.fullmatch(line)
        assert match is not None, f"not a MONITOR line: {line!r}"
        args = tuple(unescape(argument) for argument in ARGUMENT.findall(match[2]))
        commands.append(Command(match[1].decode(), args))
    return commands


def atomic_units(commands: list[Command]) -> list[Unit]:
    """Group `commands`, in the order the server ran them, into what must stay in one slot."""
    units: list[Unit] = []
    transactions: dict[str, Unit] = {}  # client -> its open WATCH/MULTI
    in_multi: set[str] = set()
    last_script: Command | None = None
    for command in commands:
        if command.client == "lua":  # run by the script just called (scripts run alone)
            assert last_script is not None, f"a script's command with no script: {command}"
            last_script.inner.append(command)
            continue
        name, client = command.name, command.client
        if name in SCRIPT_CALLS:
            last_script = command
        transaction = transactions.get(client)
        if transaction is None and name in {"WATCH", "MULTI"}:
            transaction = transactions[client] = Unit("transaction", [])
        if transaction is None:
            units.append(Unit("script" if name in SCRIPT_CALLS else "command", [command]))
            continue
        transaction.commands.append(command)
        if name == "MULTI":
            in_multi.add(client)
        if name in TRANSACTION_ENDS or (name == "UNWATCH" and client not in in_multi):
            units.append(transactions.pop(client))
            in_multi.discard(client)
    units.extend(transactions.values())
    return units


def keys_of(url: str, commands: Iterable[Command]) -> dict[tuple[bytes, ...], list[bytes]]:
    """Each command's keys, as the server finds them (COMMAND GETKEYS); none for a command that
    has none (or that the server cannot read the keys of)."""
    distinct = list({command.args for command in commands})
    keys: dict[tuple[bytes, ...], list[bytes]] = {}
    with redis.Redis.from_url(url) as client:
        client.set_response_callback("COMMAND GETKEYS", lambda response, **_: response)
        for start in range(0, len(distinct), 500):
            batch = distinct[start : start + 500]
            with client.pipeline(transaction=False) as pipe:
                for args in batch:
                    pipe.command_getkeys(*args)
                replies = pipe.execute(raise_on_error=False)
            for args, reply in zip(batch, replies, strict=True):
                keys[args] = [] if isinstance(reply, Exception) else list(reply)
    return keys


@dataclass
class Offence:
    """Units of one shape (kind and command names) whose keys span several slots."""

    unit: Unit
    slots: dict[int, list[bytes]]
    times: int = 1

    def __str__(self) -> str:
        where = f"{self.times} time(s), e.g. from {self.unit.commands[0].client}"
        lines = [f"- {self.unit.kind}: {self.unit.title()} [{where}]"]
        for slot, keys in sorted(self.slots.items()):
            shown = ", ".join(key.decode(errors="backslashreplace") for key in keys)
            lines.append(f"    slot {slot}: {shown}")
        return "\n".join(lines)


def cross_slot(url: str, lines: list[bytes]) -> list[Offence]:
    """The units among the recorded `lines` whose keys hash to more than one slot."""
    units = atomic_units(parse(lines))
    keys = keys_of(url, (command for unit in units for command in unit.all_commands()))
    offences: dict[tuple[str, str], Offence] = {}
    for unit in units:
        slots: dict[int, list[bytes]] = {}
        for command in unit.all_commands():
            for key in keys[command.args]:
                listed = slots.setdefault(key_slot(key), [])
                if key not in listed:
                    listed.append(key)
        if len(slots) < 2:
            continue
        shape = (unit.kind, unit.title())
        if shape in offences:
            offences[shape].times += 1
        else:
            offences[shape] = Offence(unit, slots)
    return list(offences.values())


def report(offences: list[Offence]) -> str:
    return "\n".join(
        [f"{len(offences)} kind(s) of atomic unit touch keys in more than one cluster slot:"]
        + [str(offence) for offence in offences]
    )


class CommandLog:
    """`with CommandLog(url) as log:` records every command the server runs meanwhile (MONITOR,
    read in a thread), as raw MONITOR lines in `log.lines`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)
        self.monitor = self.client.monitor()  # type: ignore[no-untyped-call]
        self.lines: list[bytes] = []
        self.marker = f"end-of-log-{uuid.uuid4().hex}".encode()
        self.thread = threading.Thread(target=self._read, name="monitor", daemon=True)

    def __enter__(self) -> "CommandLog":
        self.monitor.__enter__()  # MONITOR, and its OK: from now on, every command is seen
        self.thread.start()
        return self

    def _read(self) -> None:
        while True:
            line: bytes = self.monitor.connection.read_response()
            if self.marker in line:
                return
            self.lines.append(line)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.client.echo(self.marker)  # the last line: the reader stops there
        self.thread.join(timeout=60)
        self.monitor.__exit__()
        self.client.close()
        assert not self.thread.is_alive(), "the MONITOR reader did not see the end marker"


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.05)


async def stand_in(ctx: JobContext, message: str = "Hello!", *, seconds: float = 0) -> str:
    """Stands in for the project's `example_task` (its name and arguments), acting as `message`
    says; the project's own function runs the requeued job at the end."""
    if message == "queue a follow-up":
        follow_up = await ctx["redis"].enqueue_job("example_task", "the follow-up")
        assert follow_up is not None
        return str(follow_up.job_id)
    if message == "fail the first try" and ctx["job_try"] == 1:
        raise ValueError("the first try fails")
    if message == "fail for good":
        raise ValueError("every try fails")
    return f"Processed: {message}"


async def tick(ctx: JobContext) -> None:
    """A cron job whose every tick asks to be retried once."""
    await ctx["redis"].rpush("ticks", ctx["job_try"])
    if ctx["job_try"] == 1:
        raise Retry(defer=0.1)


async def enqueue(message: str, **options: Any) -> Job[Any]:
    job = await enqueue_task("example_task", message, **options)
    assert job is not None
    return job


async def look_at(jobs: Iterable[Job[Any]]) -> None:
    """What a client asks of a job: status, info, and its result if it has one."""
    for job in jobs:
        await job.status()
        await job.info()
        await job.result_info()


async def read_the_queue(pool: ArqRedis, queue: str) -> None:
    """What the metrics{% if cookiecutter.api_framework == "fastapi" %} and the dashboard{% endif %} read."""
    render_queue_stats(await queue_stats(pool, queue), queue)
    await queue_depth(pool, queue)
{%- if cookiecutter.api_framework == "fastapi" %}
    await read_snapshot(pool, queue)
{%- endif %}


async def job_lifecycle(pool: ArqRedis, running_worker: RunningWorker, queue: str) -> None:
    """Everything the project does with Redis in a job's life, through its own code."""
    # Queued by clients: a random id, a unique id (twice: the second is refused), deferred.
    plain = await enqueue("a random id")
    unique = await enqueue("a unique id", _job_id="order-42")
    assert await enqueue_task("example_task", "again", _job_id="order-42") is None
    deferred = await enqueue("deferred", _defer_by=0.3)
    follow_up = await enqueue("queue a follow-up")
    flaky = await enqueue("fail the first try")
    doomed = [await enqueue("fail for good"), await enqueue("fail for good")]
    long_running = await pool.enqueue_job("sleeps")  # arq's call, on the project's pool
    assert isinstance(long_running, Job)
    # Failed by arq without running: expired before a worker came, or its tries used up by
    # workers that died running it (arq finds its try count over the limit).
    expired = await enqueue("expires unstarted", _expires=0.1)
    died = await enqueue("its workers died")
    await pool.set(retry_key_prefix + died.job_id, 5)
    await look_at([plain, unique, deferred])

    # Aborted while queued: no worker needed.
    queued = await enqueue("aborted while queued", _defer_by=60)
    assert await queued.abort(timeout=5, poll_delay=0.05)
    assert await queued.status() == JobStatus.aborted

    # A worker died with a job listed as running: a live one lets the job run again.
    orphan = await enqueue("its worker died", _defer_by=60)
    dead = Heartbeat(pool, queue, interval=60)
    await dead.start()
    dead.job_started(orphan.job_id)
    await dead.running_jobs.written()
    await pool.delete(dead.key)  # its beat expired
    live = Heartbeat(pool, queue, interval=60)
    assert await live.release_jobs_of_dead_workers() == 1
    await dead.stop()
    await read_the_queue(pool, queue)
    await asyncio.sleep(0.2)  # past `expired`'s time

    # A real worker, with a cron job ticking every second, runs them all.
    functions = [arq_function(stand_in, name="example_task", max_tries=2), arq_function(sleeps)]
    cron = arq_cron_job(tick, second=EVERY_SECOND, max_tries=2)
    async with running_worker(functions=functions, cron_jobs=[cron]):
        await wait_until_started(pool)
        await wait_until_listed(pool, 1)
        await read_the_queue(pool, queue)  # with a live worker and a running job
        await look_at([long_running])
        assert await long_running.abort(timeout=10, poll_delay=0.05)  # aborted while running
        assert await plain.result(timeout=15, poll_delay=0.05) == "Processed: a random id"
        assert await unique.result(timeout=15, poll_delay=0.05) == "Processed: a unique id"
        assert await deferred.result(timeout=15, poll_delay=0.05) == "Processed: deferred"
        follow_up_id = await follow_up.result(timeout=15, poll_delay=0.05)
        the_follow_up = await get_job(follow_up_id)
        assert await the_follow_up.result(timeout=15, poll_delay=0.05) == "Processed: the follow-up"
        assert await flaky.result(timeout=15, poll_delay=0.05) == "Processed: fail the first try"
        assert await orphan.result(timeout=15, poll_delay=0.05) == "Processed: its worker died"
        for job in [*doomed, expired, died]:
            with pytest.raises(JobFailed):
                await job.result(timeout=15, poll_delay=0.05)

        async def retried_tick() -> bool:
            return b"2" in await pool.lrange("ticks", 0, -1)  # type: ignore[misc]

        await until(retried_tick, "a cron tick ran, was retried and ran again")
        await read_the_queue(pool, queue)
        await asyncio.sleep(0.6)  # heartbeats: each releases dead workers' jobs, drops stale aborts
    await look_at([plain, unique, deferred, follow_up, the_follow_up, flaky, orphan, expired, died])
    await look_at(doomed)
    assert await long_running.status() == JobStatus.aborted

    # The dead letters: one requeued (the project's own example_task runs it), the rest purged.
    letters = await dead_letters.all_letters(pool, queue)
    assert sorted(letter.job_id for letter in letters) == sorted(
        job.job_id for job in [*doomed, died]
    )
    requeued = await requeue_dead_letter(doomed[0].job_id)
    assert await dead_letters.purge(pool, queue) == 2
    async with running_worker(cron_jobs=[cron]):  # the project's functions, and the ticks
        assert await requeued.result(timeout=15, poll_delay=0.05) == "Processed: fail for good"
    await look_at([requeued])
    await read_the_queue(pool, queue)


async def limited_jobs(running_worker: RunningWorker) -> None:
    """Jobs with limits (limits.py): leases taken, waited for, renewed and given back; rate
    turns reserved, per key."""

    @declare_job(max_concurrency=1)
    async def one_at_a_time(ctx: JobContext, seconds: float) -> None:
        await asyncio.sleep(seconds)

    @declare_job(rate_limit="20/s", rate_limit_key="key")
    async def spaced(ctx: JobContext, key: int) -> None: ...

    queued = [await one_at_a_time.enqueue(0.3) for _ in range(3)]
    queued += [await spaced.enqueue(n % 2) for n in range(4)]
    async with running_worker(functions=worker_functions()[0]):
        await asyncio.sleep(0.2)
        await queued[1].limit_wait()
        await look_at(queued)
        for limited in queued:
            await limited.result(timeout=15, poll_delay=0.05)


async def workflows(running_worker: RunningWorker) -> None:
    """A chain over two queues, each served by a worker of its own (a move to the next step in
    the same queue, made in the outcome's write, and moves to the other queue, through
    its handoffs), a group with a callback, workflows' states, and an abort that cancels a
    waiting step."""

    @declare_job()
    async def plus_one(ctx: JobContext, number: int) -> int:
        return number + 1

    @declare_job(queue="bulk")
    async def plus_one_in_bulk(ctx: JobContext, number: int) -> int:
        return number + 1

    @declare_job()
    async def summed(ctx: JobContext, numbers: list[int]) -> int:
        return sum(numbers)

    chain = await enqueue_chain(
        plus_one.call(0), plus_one.step(), plus_one_in_bulk.step(), plus_one.step()
    )
    group = await enqueue_group([plus_one_in_bulk.call(n) for n in range(3)], then=summed.step())
    aborted = await enqueue_chain(plus_one.options(defer_by=60).call(0), plus_one.step())
    assert chain is not None
    assert group is not None
    assert aborted is not None
    # A worker per queue: one serving several claims from them all in one script, which a
    # cluster refuses (docs/queues.md, "Redis Cluster").
    functions = worker_functions()[0]
    default, bulk = get_settings().queue_keys.values()
    async with (
        running_worker(functions=functions, queue_names=[default]),
        running_worker(functions=functions, queue_names=[bulk]),
    ):
        assert await chain.result(timeout=15, poll_delay=0.05) == 4
        assert await group.result(timeout=15, poll_delay=0.05) == 6
        assert await aborted.abort()


async def test_every_script_transaction_and_multi_key_command_stays_in_one_slot(
    task_pool: ArqRedis,
    redis_server: LocalRedisServer,
    running_worker: RunningWorker,
    configure: Configure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Quick retries, and heartbeats several times a second (each looks for dead workers, and
    # renews the leases of jobs with limits).
    # Two queues (the workflows' steps use both), each worker serving one.
    configure(
        WORKER_RETRY_BASE="0.1",
        WORKER_HEALTH_CHECK_INTERVAL="0.2",
        QUEUES="default,bulk",
        WORKER_QUEUES="default",
    )
    queue = get_settings().queue_name
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))  # limited_jobs' own jobs

    with CommandLog(redis_server.url) as log:
        await job_lifecycle(task_pool, running_worker, queue)
        await limited_jobs(running_worker)
        await workflows(running_worker)

    assert len(log.lines) > 100  # the log saw the lifecycle
    offences = cross_slot(redis_server.url, log.lines)
    assert not offences, report(offences)


async def test_the_check_sees_a_transaction_a_script_and_a_command_across_slots(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    """The check itself: each kind of unit is caught with keys in two slots, not in one."""
    assert key_slot(b"a") != key_slot(b"b")
    touch_another = "redis.call('GET', KEYS[1]); return redis.call('GET', ARGV[1])"
    with CommandLog(redis_server.url) as log:
        for first, second in (("a", "b"), ("{t}a", "{t}b")):
            async with task_pool.pipeline(transaction=True) as pipe:
                pipe.get(first)
                pipe.get(second)
                await pipe.execute()
            await task_pool.eval(touch_another, 1, first, second)  # type: ignore[misc]
            await task_pool.mget(first, second)
            await task_pool.get(first)

    offences = cross_slot(redis_server.url, log.lines)

    assert sorted((offence.unit.kind, offence.unit.commands[0].name) for offence in offences) == [
        ("command", "MGET"),
        ("script", "EVAL"),
        ("transaction", "MULTI"),
    ]
    assert all(set(offence.slots) == {key_slot(b"a"), key_slot(b"b")} for offence in offences)
