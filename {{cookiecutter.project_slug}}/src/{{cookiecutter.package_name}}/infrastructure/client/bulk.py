# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Enqueueing many jobs in one call: `enqueue_many`, and a typed handle's `enqueue_many`.

    queued = await enqueue_many("send_receipt", [("A-1",), ("A-2",), {"order_id": "A-3"}])
    queued = await send_receipt.enqueue_many(send_receipt.call(order) for order in orders)

Every job is checked first, as `enqueue_task` checks one (its name, its arguments against the
function's signature, serialization, JOB_MAX_BYTES, its queue, its limit keys): one bad job
raises before anything is written, naming its position. Then the jobs go in chunks of at most
CHUNK_JOBS jobs (and CHUNK_BYTES of payload), each chunk one script call that applies
`enqueue_task`'s rule to each job (an id whose job or result exists is not queued again: None
in its place) and writes them with one ZADD and a few wake-up tokens. Each chunk is a round
trip, up to CHUNKS_IN_FLIGHT of them on their way at once, so that Redis runs one chunk while
the next is packed. 10,000 jobs are 10 script calls (bench/workflows.py measures it against
10,000 `enqueue_task` calls).

A chunk is written whole or not at all, but chunks are separate: if Redis fails part way, some
chunks may be queued and others not, and `RedisUnavailableError` says how many jobs were. Give the jobs ids
(`job_ids=`, or a unique handle's calls) and a second try queues only what the first did not.
"""

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import RedisError

from ..job_types import P, R
from ..keys import DEFAULT_QUEUE
from ..limits import limited_key
from ..store.connection import RedisUnavailableError, unavailable
from ..store.job_handle import Job
from ..store.job_writes import JOB_FIELDS_SEPARATOR, JobsWrite, write_chunks
from .enqueue import (
    JobArgumentError,
    PreparedJob,
    UnknownQueueError,
    UnknownTaskError,
    argument_error,
    checked_queue,
    enqueueable_spec,
    get_task_pool,
    job_by_id,
    limits_of,
    prepare_job,
    refuse_workflow_job_id,
)

# A chunk holds at most this many jobs, and this much payload: one script call each, short
# enough not to hold Redis up (about 2 ms for 1,000 small jobs).
CHUNK_JOBS = 1000
CHUNK_BYTES = 4 * 1024 * 1024
# How many chunks are on their way at once, each a round trip on a connection of its own.
CHUNKS_IN_FLIGHT = 4

Delay = int | float | timedelta


@dataclass(frozen=True)
class JobCall(Generic[P, R]):
    """A job with its arguments, not queued yet (Celery's signature): what a handle's
    `call(...)` returns and `enqueue_many` takes. `queue` None: the job's own."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    queue: str | None = None
    defer_by: Delay | None = None
    defer_until: datetime | None = None
    expires: Delay | None = None


async def enqueue_many(
    name: str,
    arguments: Iterable[tuple[Any, ...] | dict[str, Any]],
    *,
    job_ids: Iterable[str] | None = None,
    queue: str | None = None,
    defer_by: Delay | None = None,
    defer_until: datetime | None = None,
    expires: Delay | None = None,
) -> list[Job[Any] | None]:
    """Queue the job `name` once per item of `arguments` (a tuple: positional arguments; a dict:
    keyword arguments), in few round trips. Returns a `Job` handle per item, in order, or None
    where `job_ids` gave an id that is queued, running or has a kept result. The options are
    `enqueue_task`'s (`queue` is `_queue_name`, ...) and apply to every job.

    Raises before anything is queued, naming the item by its position (from 0: "job 17: ..."):
    `UnknownTaskError`, `UnknownQueueError` and `JobArgumentError` as `enqueue_task` does, and
    JobArgumentError for `job_ids` of another length than `arguments`. `RedisUnavailableError`
    if Redis fails (see the module docstring)."""
    items = list(arguments)
    ids: list[str | None] = [None] * len(items) if job_ids is None else list(job_ids)
    if len(ids) != len(items):
        raise JobArgumentError(f"cannot enqueue {name!r}: {len(ids)} job_ids for {len(items)} jobs")
    calls: list[JobCall[Any, Any]] = []
    for index, (item, job_id) in enumerate(zip(items, ids, strict=True)):
        if isinstance(item, dict):
            args, kwargs = (), item
        elif isinstance(item, tuple):
            args, kwargs = item, {}
        else:
            raise JobArgumentError(
                f"job {index}: cannot enqueue {name!r}: give a tuple of arguments or a dict of "
                f"keyword arguments, not {type(item).__name__}"
            )
        calls.append(JobCall(name, args, kwargs, job_id, queue, defer_by, defer_until, expires))
    return await enqueue_calls(calls)


async def enqueue_calls(calls: Sequence[JobCall[Any, Any]]) -> list[Job[Any] | None]:
    """Queue every call (`enqueue_many`'s checks, chunks and replies)."""
    checks: dict[tuple[Any, ...], str] = {}  # what calls of one shape share: their queue's key
    checked = [check_call(index, call, checks) for index, call in enumerate(calls)]
    if not checked:
        return []
    pool = await get_task_pool()
    prepared = []
    for index, (call, queue_name, limits) in enumerate(checked):
        try:
            prepared.append(
                prepare_job(
                    pool,
                    call.name,
                    call.args,
                    call.kwargs,
                    queue_name,
                    limits,
                    call.job_id,
                    call.defer_by,
                    call.defer_until,
                    call.expires,
                )
            )
        except JobArgumentError as error:
            raise JobArgumentError(f"job {index}: {error}") from error
    replies = await write_all(pool, [write_of(chunk) for chunk in chunks_of(prepared)])
    return [
        job_by_id(job.job_id, pool) if queued else None
        for job, queued in zip(prepared, replies, strict=True)
    ]


async def write_all(pool: ArqRedis, writes: list[JobsWrite]) -> list[int]:
    """Run ENQUEUE_JOBS for each chunk (job_writes.py): every job's reply, in order. Each chunk
    is a round trip of its own, up to CHUNKS_IN_FLIGHT at once: Redis runs one chunk while the
    next is packed. Raises RedisUnavailableError, saying how many jobs were written before."""
    in_flight = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

    async def write_one(write: JobsWrite) -> list[int]:
        async with in_flight:
            [replies] = await write_chunks(pool, [write])
            return replies

    sending = []
    for write in writes:
        sending.append(asyncio.create_task(write_one(write)))
        await asyncio.sleep(0)  # packed and sent before the next chunk is packed
    results = await asyncio.gather(*sending, return_exceptions=True)
    written = sum(len(result) for result in results if isinstance(result, list))
    for result in results:
        if isinstance(result, RedisError | OSError):
            problem = unavailable(result)
            raise RedisUnavailableError(
                f"{problem} ({written} of {sum(len(write[4]) for write in writes)} jobs' chunks "
                "were written; enqueue again with the same job ids to queue only the rest)",
                problem.kind,
            ) from result
        if isinstance(result, BaseException):
            raise result
    return [reply for result in results for reply in result]  # type: ignore[union-attr]


def check_call(
    index: int | None,
    call: JobCall[Any, Any],
    checks: dict[tuple[Any, ...], str],
    *,
    takes_input: bool = False,
    label: str = "job",
) -> tuple[JobCall[Any, Any], str, str | None]:
    """The call, its queue's key and its limits, or the error `enqueue_task` would raise for
    it, naming its position ("job 3: ..."; `label` names it otherwise, alone for an `index`
    of None). A call that
    `takes_input` gets one positional argument more, first, when it runs (a workflow's: the
    previous step's result). What depends only on the call's shape (its job, queue, argument
    names and count) is checked once per shape, in `checks`, for a job without limits."""
    where = label if index is None else f"{label} {index}"
    if call.job_id is not None and JOB_FIELDS_SEPARATOR in call.job_id:
        raise JobArgumentError(f"{where}: cannot enqueue {call.name!r}: its id holds a NUL")
    try:
        refuse_workflow_job_id(call.name, call.job_id)
    except JobArgumentError as error:
        raise JobArgumentError(f"{where}: {error}") from error
    positional = len(call.args) + takes_input
    shape = (call.name, call.queue, positional, tuple(call.kwargs))
    both = call.defer_until is not None and call.defer_by is not None
    if not both and shape in checks:
        return call, checks[shape], None
    try:
        spec = enqueueable_spec(call.name)
        mismatch = argument_error(spec, positional, tuple(call.kwargs))
        if mismatch is not None:
            first = " (its first argument is what the job before it returns)" if takes_input else ""
            raise JobArgumentError(f"cannot enqueue {call.name!r}{first}: {mismatch}")
        if both:
            raise JobArgumentError(
                f"cannot enqueue {call.name!r}: give defer_until or defer_by, not both"
            )
        queue = call.queue or spec.queue or DEFAULT_QUEUE
        queue_name = checked_queue(call.name, queue)
        limits = limits_of(call.name, queue, call.args, call.kwargs)
    except (UnknownTaskError, UnknownQueueError, JobArgumentError) as error:
        raise type(error)(f"{where}: {error}") from error
    if not spec.limits:  # a limited job's limits depend on its arguments' values
        checks[shape] = queue_name
    return call, queue_name, limits


def chunks_of(jobs: list[PreparedJob]) -> list[list[PreparedJob]]:
    """`jobs` in chunks, in order: a new chunk for each queue change, and at most CHUNK_JOBS
    jobs and CHUNK_BYTES of payload in each."""
    chunks: list[list[PreparedJob]] = []
    size = 0
    for job in jobs:
        if (
            not chunks
            or chunks[-1][0].queue_name != job.queue_name
            or len(chunks[-1]) == CHUNK_JOBS
            or size + len(job.payload) > CHUNK_BYTES
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(job)
        size += len(job.payload)
    return chunks


def write_of(chunk: list[PreparedJob]) -> JobsWrite:
    """ENQUEUE_JOBS's keys and arguments for a chunk: per job two keys (a third, where its
    limits go, for every job when one job of the chunk has limits) and one argument, its
    fields joined (job_writes.py); the id rule for the chunk when a caller chose any id."""
    limited = any(job.limits is not None for job in chunk)
    keys: list[str] = []
    arguments: list[str] = []
    join = JOB_FIELDS_SEPARATOR.join
    for job in chunk:
        job_id = job.job_id
        keys += (job_key_prefix + job_id, result_key_prefix + job_id)
        if limited:
            keys.append(limited_key(job.queue_name, job_id))
        fields = (str(job.lifetime_ms), str(job.score), job_id, job.limits or "", job.payload)
        arguments.append(join(fields))
    checked = any(job.id_chosen for job in chunk)
    return chunk[0].queue_name, limited, checked, keys, arguments
