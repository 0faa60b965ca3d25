# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""How `enqueue_task` writes a job: one Lua script, or three plain commands, and one pipeline for
all the jobs that callers enqueue in the same turn of the event loop.

The script is arq's `enqueue_job` in one round trip instead of three (WATCH, EXISTS, then
MULTI/EXEC): the same keys and the same rule (an id whose job or result exists is not queued
again), checked and written atomically. It also pushes a wake-up token for a waiting worker
(worker.py). A job whose id `enqueue_task` made (128 random bits) needs no rule: its writes go
as plain commands (`add_write`), one fewer than the script and less of Redis's time.

It is sent by its SHA1 (EVALSHA), not its text: Redis keeps scripts it has run, and one that
does not know it yet (a new server, a restart, SCRIPT FLUSH) answers NOSCRIPT to those writes,
which were then not run: they are sent again once the script is loaded.

The pipeline matters under concurrency. A web server handling many requests at once, or code that
gathers many `enqueue_task` calls, has many writes ready in the same turn of its event loop.
Sent one by one, each takes a connection from the pool, a write and a read of its own; gathered,
they share one of each. The first write of a turn schedules the flush; the writes made before
the loop gets to it join that pipeline. A caller alone waits one turn of the loop longer, a few
microseconds. Measured with the template's bench/api.py on 2 cores: `enqueue_task` from 16
concurrent callers went from 7,379 to 16,003 calls/s, with the same replies and errors as one
command per job.

Each write is still its own script, so one job's answer (0 for an id already known, or an
error) never touches the others. If the connection fails, every caller of that pipeline gets the
error, as each would have one by one.

Jobs queued the way arq's docs show wake a worker too: every pool the project makes is a
`JobPool` (`get_task_pool()`, and the worker's `ctx["redis"]`, with which a job queues follow-up
work), whose `enqueue_job` is arq's followed by the same token. Only a foreign arq client (its own
`create_pool`) pushes none; its jobs start within the worker's fallback poll (worker.py).
"""

import asyncio
import hashlib
import math
import weakref
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.utils import timestamp_ms, to_ms, to_unix_ms
from redis.exceptions import NoScriptError

from ...config import get_settings
from .. import registry
from ..keys import namespaced_job_id, new_job_id
from ..limits import job_limits, limited_key
from .job_handle import Job

# KEYS: the job, its result, the queue, the queue's wake-up list (worker.py), and for a job with
# limits, where they go (limits.py). ARGV: '1' to apply the id rule ('0' for an id made by
# `keys.new_job_id`: 128 random bits that no job holds yet; such a write is sent without the
# script, `add_write`), the job's lifetime (ms), payload, score, id, and its limits.
# Each job also pushes a token that wakes one waiting worker: at once for a job due now; for a
# deferred one, so that the worker times its wait to the job's start. The claims keep the list
# short (worker.py's CLAIM_JOBS: at most WAKE_TOKENS_KEPT once a claim leaves jobs due, none once
# it leaves none), so a job costs no command to trim it: 5 in all for a job whose id the caller
# chose, counting the EVALSHA. A job whose id `enqueue_task` made is written without the script
# (`add_write`): 3 commands.
ENQUEUE_JOB = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
if KEYS[5] then redis.call('PSETEX', KEYS[5], ARGV[2], ARGV[6]) end
redis.call('LPUSH', KEYS[4], '1')
return 1
"""
ENQUEUE_JOB_SHA = hashlib.sha1(ENQUEUE_JOB.encode(), usedforsecurity=False).hexdigest()
# How many wake-up tokens a claim leaves in a queue's list that still has jobs due: enough to
# wake that many workers at once. Tokens pushed while no worker claims (none runs) pile up until
# one does, a few bytes each beside each job's own record.
WAKE_TOKENS_KEPT = 64


# Many jobs of one queue in one script call (`enqueue_many`, bulk.py): ENQUEUE_JOB's rule and
# writes for each, one ZADD for all of them, and one token per job queued, up to
# WAKE_TOKENS_KEPT. KEYS: the queue, its wake-up list, then per job: the job, its result (and
# where its limits go, with limits). ARGV: the tokens' cap, '1' with limits, '1' to apply the id
# rule ('0' for a chunk whose ids `keys.new_job_id` made: an EXISTS per job saved), then one
# argument per job, its fields joined by NUL (`JOB_FIELDS_SEPARATOR`): lifetime (ms), score, id, limits
# ('' for none), payload. One argument a job, not five, because packing each argument is most
# of what redis-py spends on a chunk (bench/workflows.py); no field but the payload can hold a
# NUL, and JSON writes one only escaped, so the payload goes last, whole. Returns 1 or 0 per
# job, as ENQUEUE_JOB does.
ENQUEUE_JOBS = """
local limited = ARGV[2] == '1'
local check = ARGV[3] == '1'
local per_key = limited and 3 or 2
local queued, members = {}, {}
for i = 1, (#KEYS - 2) / per_key do
  local k, job = 2 + (i - 1) * per_key, ARGV[3 + i]
  local a = string.find(job, '\0', 1, true)
  local b = string.find(job, '\0', a + 1, true)
  local c = string.find(job, '\0', b + 1, true)
  local d = string.find(job, '\0', c + 1, true)
  if check and redis.call('EXISTS', KEYS[k + 1], KEYS[k + 2]) > 0 then
    queued[i] = 0
  else
    local lifetime = string.sub(job, 1, a - 1)
    redis.call('PSETEX', KEYS[k + 1], lifetime, string.sub(job, d + 1))
    if limited and d > c + 1 then
      redis.call('PSETEX', KEYS[k + 3], lifetime, string.sub(job, c + 1, d - 1))
    end
    members[#members + 1] = string.sub(job, a + 1, b - 1)
    members[#members + 1] = string.sub(job, b + 1, c - 1)
    queued[i] = 1
  end
end
if #members > 0 then
  redis.call('ZADD', KEYS[1], unpack(members))
  local tokens = {}
  for t = 1, math.min(#members / 2, tonumber(ARGV[1])) do tokens[t] = '1' end
  redis.call('LPUSH', KEYS[2], unpack(tokens))
end
return queued
"""
JOB_FIELDS_SEPARATOR = "\0"
ENQUEUE_JOBS_SHA = hashlib.sha1(ENQUEUE_JOBS.encode(), usedforsecurity=False).hexdigest()


def result_lifetime_arg(seconds: float | None) -> str:
    """A result's lifetime as the outcome scripts take it (worker/finishes.py's FINISH_JOBS,
    workflows.py's FINISH_AND_ADVANCE): ms, at least 1; '0' for a result kept for good (None)."""
    return "0" if seconds is None else str(max(to_ms(seconds) or 0, 1))


def wake_key(queue_name: str) -> str:
    """The list a worker with free slots waits on: one token per job queued (worker.py)."""
    return f"{queue_name}:wake"


# ENQUEUE_JOB's keys, then its arguments, one more than the keys: 4 keys and 5 arguments, or 5
# and 6 for a job with limits (so the keys are the first half, rounded down).
JobWrite = tuple[str, ...]


class JobWriter:
    """Writes jobs to Redis through one pool, a pipeline per turn of the event loop."""

    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool
        self.waiting: list[tuple[JobWrite, asyncio.Future[int]]] = []
        # The loop keeps only weak references to tasks: hold each flush until it is done.
        self.flushes: set[asyncio.Task[None]] = set()

    async def write(self, keys_and_args: JobWrite) -> int:
        """Run ENQUEUE_JOB with these keys and arguments; 1 if the job was queued, 0 if its id
        was known. Raises what redis-py raises (`RedisError`, `OSError`)."""
        loop = asyncio.get_running_loop()
        if not self.waiting:
            flush = loop.create_task(self.flush())  # runs in the next turn of the loop
            self.flushes.add(flush)
            flush.add_done_callback(self.flushes.discard)
        reply: asyncio.Future[int] = loop.create_future()
        self.waiting.append((keys_and_args, reply))
        return await reply

    async def flush(self) -> None:
        batch, self.waiting = self.waiting, []
        replies: list[int | Exception]
        try:
            replies = await self.execute([keys_and_args for keys_and_args, _ in batch])
        except asyncio.CancelledError:  # the loop is shutting down
            for _, reply in batch:
                reply.cancel()
            raise
        except Exception as error:
            replies = [error] * len(batch)
        for (_, reply), value in zip(batch, replies, strict=True):
            if reply.done():  # its caller was cancelled; the job may be written all the same
                continue
            if isinstance(value, Exception):
                reply.set_exception(value)
            else:
                reply.set_result(value)

    async def execute(self, writes: list[JobWrite]) -> list[int | Exception]:
        """One pipeline of these writes; a reply each, an exception for a write that failed."""
        replies = await self.send(writes)
        unknown = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:
            await self.pool.script_load(ENQUEUE_JOB)
            again = await self.send([writes[index] for index in unknown])
            for index, reply in zip(unknown, again, strict=True):
                replies[index] = reply
        return replies

    async def send(self, writes: list[JobWrite]) -> list[int | Exception]:
        pipeline = self.pool.pipeline(transaction=False)
        sizes = []
        for keys_and_args in writes:
            sizes.append(add_write(pipeline, keys_and_args))
        replies = await pipeline.execute(raise_on_error=False)
        if len(replies) == len(writes):  # one command a write
            return replies
        per_write: list[int | Exception] = []
        start = 0
        for size in sizes:
            replies_of_write = replies[start : start + size]
            start += size
            if size == 1:
                per_write.append(replies_of_write[0])
                continue
            errors = [reply for reply in replies_of_write if isinstance(reply, Exception)]
            per_write.append(errors[0] if errors else 1)
        return per_write


def add_write(pipeline: Any, keys_and_args: JobWrite) -> int:
    """Add one job's write to `pipeline`; how many commands it took. A job whose id the caller
    chose goes through ENQUEUE_JOB, whose id rule must see and write atomically. One whose id
    `keys.new_job_id` made (the check flag '0') needs no rule: its writes go as they are, in
    ENQUEUE_JOB's order (the job and its limits before its place in the queue, so no claim
    finds it without them), 3 commands where the script took 4 with its EVALSHA, and less of
    Redis's time (no script to run). Sent in one pipeline, with no transaction: a client that
    dies part way leaves at most a job record that no queue names, which expires."""
    n_keys = len(keys_and_args) // 2
    if keys_and_args[n_keys] != "0":
        pipeline.evalsha(ENQUEUE_JOB_SHA, n_keys, *keys_and_args)
        return 1
    job, _, queue, wake, *limited = keys_and_args[:n_keys]
    _, lifetime_ms, payload, score, job_id, *limits = keys_and_args[n_keys:]
    pipeline.execute_command("PSETEX", job, lifetime_ms, payload)
    if limited:
        pipeline.execute_command("PSETEX", limited[0], lifetime_ms, limits[0])
    pipeline.execute_command("ZADD", queue, score, job_id)
    pipeline.execute_command("LPUSH", wake, "1")
    return 3 + len(limited)


# One ENQUEUE_JOBS call: the queue's key, whether its jobs carry limits, whether the id rule
# applies (a caller chose an id), their keys, and an argument per job.
JobsWrite = tuple[str, bool, bool, list[str], list[str]]


async def write_chunks(pool: ArqRedis, chunks: list[JobsWrite]) -> list[list[int]]:
    """Run ENQUEUE_JOBS once per chunk, all in one pipeline; each chunk's replies (1 queued, 0
    an id already known), in order. Raises what redis-py raises for the first chunk that
    failed (the chunks before it are written)."""
    replies = await _send_chunks(pool, chunks)
    if any(isinstance(reply, NoScriptError) for reply in replies):
        await pool.script_load(ENQUEUE_JOBS)
        unknown = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        again = await _send_chunks(pool, [chunks[index] for index in unknown])
        for index, reply in zip(unknown, again, strict=True):
            replies[index] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [[int(flag) for flag in reply] for reply in replies]


async def _send_chunks(pool: ArqRedis, chunks: list[JobsWrite]) -> list[Any]:
    pipeline = pool.pipeline(transaction=False)
    for queue_name, limited, checked, keys, arguments in chunks:
        all_keys = [queue_name, wake_key(queue_name), *keys]
        flags = (str(WAKE_TOKENS_KEPT), "1" if limited else "0", "1" if checked else "0")
        pipeline.evalsha(ENQUEUE_JOBS_SHA, len(all_keys), *all_keys, *flags, *arguments)
    return await pipeline.execute(raise_on_error=False)


_writers: "weakref.WeakKeyDictionary[ArqRedis, JobWriter]" = weakref.WeakKeyDictionary()


def job_writer(pool: ArqRedis) -> JobWriter:
    """The writer of `pool` (one per pool, so one per event loop: see client.py)."""
    writer = _writers.get(pool)
    if writer is None:
        writer = _writers[pool] = JobWriter(pool)
    return writer


def job_times(
    defer_by: int | float | timedelta | None,
    defer_until: datetime | None,
    expires: int | float | timedelta | None,
    now_ms: int,
    expires_extra_ms: int,
) -> tuple[int, int]:
    """A job's start (its score, ms) and its record's lifetime (ms) from arq's options, by
    arq's rule (kept `expires`, else `expires_extra_ms` past its start), except that a start in
    the past counts from now: such a job is due at once, and arq's rule would give it a lifetime
    at or below 0, which Redis refuses (PSETEX). Raises ValueError for a delay that is not a
    finite number of seconds or a timedelta, an `expires` below 0 (0: arq's default), or a
    `defer_until` that is not a datetime."""
    for option, value in (("defer_by", defer_by), ("expires", expires)):
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        if seconds is None:
            continue
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"{option} takes seconds or a timedelta, not {value!r}")
        if not math.isfinite(seconds) or (option == "expires" and seconds < 0):
            raise ValueError(f"{option} must be a finite number of seconds (≥ 0), not {value!r}")
    if defer_until is not None and not isinstance(defer_until, datetime):
        raise ValueError(f"defer_until takes a datetime, not {defer_until!r}")
    if defer_until is not None:
        start_ms = to_unix_ms(defer_until)
    else:
        start_ms = now_ms + (to_ms(defer_by) or 0)
    lifetime_ms = to_ms(expires) or max(start_ms - now_ms, 0) + expires_extra_ms
    return start_ms, lifetime_ms


class JobPool(ArqRedis):
    """arq's pool, whose `enqueue_job` also wakes a waiting worker: what `get_task_pool()` and a
    job's `ctx["redis"]` are. Its `enqueue_job` sends the job to its own queue, as
    `enqueue_task` does (`_queue_name` takes a queue's name or key), puts the id in that queue's
    namespace (keys.py), and returns the project's `Job` (job_handle.py)."""

    async def enqueue_job(
        self,
        function: str,
        *args: Any,
        _job_id: str | None = None,
        _queue_name: str | None = None,
        _defer_until: datetime | None = None,
        _defer_by: int | float | timedelta | None = None,
        _expires: int | float | timedelta | None = None,
        _job_try: int | None = None,
        **kwargs: Any,
    ) -> Job[Any] | None:
        queue_name = self.queue_key(function, _queue_name)
        job_id = namespaced_job_id(queue_name, _job_id or new_job_id())
        # As long as arq keeps the job (its enqueue_job's rule), given to arq as `_expires`: a
        # start in the past would give arq's own a lifetime Redis refuses (`job_times`).
        _, lifetime_ms = job_times(
            _defer_by, _defer_until, _expires, timestamp_ms(), self.expires_extra_ms
        )
        await self.write_limits(function, queue_name, job_id, args, kwargs, lifetime_ms)
        job = await super().enqueue_job(
            function,
            *args,
            _job_id=job_id,
            _queue_name=queue_name,
            _defer_until=_defer_until,
            _defer_by=_defer_by,
            _expires=timedelta(milliseconds=lifetime_ms),
            _job_try=_job_try,
            **kwargs,
        )
        if job is None:  # an id already known: nothing queued, nobody to wake
            return None
        await self.lpush(wake_key(queue_name), "1")  # type: ignore[misc]  # redis-py's union
        return Job(job.job_id, self, _queue_name=queue_name, _deserializer=self.job_deserializer)

    async def write_limits(
        self,
        function: str,
        queue_name: str,
        job_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        lifetime_ms: int,
    ) -> None:
        """For a job with limits (limits.py), write them before the job, so that no claim finds
        the job without them. Raises ValueError for a limited job sent to another queue than
        its own, or a limit key it cannot give."""
        spec = registry.enqueueable(function)
        if spec is None or not spec.limits:
            return
        if queue_name != get_settings().queue_keys.get(spec.queue):
            raise ValueError(
                f"cannot enqueue {function!r} on {queue_name!r}: its limits are counted on its "
                f"own queue, {spec.queue!r}, where it runs (docs/queues.md)"
            )
        limits = job_limits(function, spec.limits, args, kwargs, spec.signature)
        await self.set(limited_key(queue_name, job_id), limits, px=max(lifetime_ms, 1), nx=True)

    def queue_key(self, function: str, queue: str | None) -> str:
        """The key of the queue a job goes to: `queue` (a name in QUEUES, or a queue's key as
        arq takes it), else the queue the job declares (`@job(queue=...)`), else the pool's
        default."""
        if queue is None:
            spec = registry.enqueueable(function)
            if spec is None:
                return self.default_queue_name
            queue = spec.queue
        return get_settings().queue_keys.get(queue, queue)


def job_pool(pool: ArqRedis) -> JobPool:
    """`pool` as a `JobPool`: the same object, connections and settings (it adds no state)."""
    pool.__class__ = JobPool
    return pool  # type: ignore[return-value]  # mypy cannot follow the class change
