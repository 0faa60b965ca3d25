# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The client side of the queue: the pool, enqueueing jobs, and following them by id.

What a web app, a script or a test calls; the worker side is worker/. Nothing here imports the
jobs: what may be enqueued, and with which arguments, comes from the job registry (registry.py),
so `jobs.py` can import from `{{ cookiecutter.package_name }}.queue`, which re-exports this.

Event loops: a Redis connection belongs to the event loop that opened it, so each loop gets its
own pool. `asyncio.run(enqueue_task(...))` works any number of times in one process, and so does
a call from any thread's loop. Synchronous code (Flask or Django views, scripts) calls
`run_sync(enqueue_task(...))` instead: one background loop, one pool, shared by every thread.
"""

import asyncio
import atexit
import functools
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import SerializationError, serialize_job
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from ... import tracing
from ...config import get_settings
from .. import registry
from ..job_types import UNKNOWN_FUNCTION, UNREADABLE_JOB
from ..keys import (
    DEFAULT_QUEUE,
    bare_job_id,
    namespaced_job_id,
    new_job_id,
    queue_of,
    retry_of_key,
)
from ..limits import job_limits, limited_key
from ..store import dead_letters
from ..store.connection import close_pool, connect, unavailable
from ..store.job_handle import Job
from ..store.job_writes import JobPool, JobWrite, job_times, job_writer, wake_key
from ..store.serialization import deserialize, serialize_at_most
from ..store.workflows import MEMBERSHIP_FIELD, WORKFLOW_ID_PREFIX, Membership

T = TypeVar("T")
# How long a job queued again remembers where it came from, plus WORKER_KEEP_RESULT: longer than
# it may wait to start (a day, as arq's jobs) and then keep its result.
ORIGIN_SECONDS = 2 * 24 * 3600

# What stands in for the enqueue's span with tracing off: reusable, made once.
_NO_SPAN = nullcontext()

# One pool per event loop, with the generator that closes it; an entry goes with its loop.
_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[JobPool, AsyncGenerator[None, None]]]" = weakref.WeakKeyDictionary()
# The opening of a loop's pool while it is under way (`get_task_pool`).
_openings: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[JobPool]]" = (
    weakref.WeakKeyDictionary()
)


class UnknownTaskError(ValueError):
    """Raised by `enqueue_task` for a name no worker would run."""


class UnknownQueueError(ValueError):
    """Raised by `enqueue_task` for a queue QUEUES does not list; nothing is queued."""


class JobArgumentError(TypeError):
    """Raised by `enqueue_task` for arguments that cannot be serialized; nothing is queued."""


async def get_task_pool(*, retries: int | None = None) -> JobPool:
    """The running event loop's pool, created on first use from `REDIS_URL` (see connection.py).

    `retries` overrides `REDIS_CONNECT_RETRIES` when the pool has to be opened: the web API
    passes 0, so that a request made while Redis is down fails at once instead of retrying for
    seconds, and the first one after Redis is back opens the pool. Callers that come while the
    pool opens share that opening, and its first caller's `retries`. Raises
    `RedisUnavailableError`, with a one-line reason, when Redis cannot be reached.
    """
    loop = asyncio.get_running_loop()
    entry = _pools.get(loop)
    if entry is not None:
        return entry[0]
    # The callers that come while the pool opens wait for the same opening: a burst of first
    # calls (a gather of many `enqueue_task`) opens one pool, not one each, closed but one.
    opening = _openings.get(loop)
    if opening is None:
        opening = _openings[loop] = loop.create_task(_open_pool(loop, retries))
        opening.add_done_callback(lambda _: _openings.pop(loop, None))
    # A caller cancelled meanwhile leaves the opening to the others.
    return await asyncio.shield(opening)


async def _open_pool(loop: asyncio.AbstractEventLoop, retries: int | None) -> JobPool:
    tracing.init_tracing()  # a script that enqueues traces too, when OTEL_* asks for it
    pool = await connect(
        retries=retries,
        job_serializer=serialize_at_most(get_settings().job_max_bytes),
        job_deserializer=deserialize,
        default_queue_name=get_settings().queue_name,
    )
    closer = _closes_when_the_loop_ends(pool)
    await anext(closer)
    _pools[loop] = (pool, closer)
    return pool


def open_task_pool() -> JobPool | None:
    """The running event loop's pool if it is open already, else None; no I/O."""
    entry = _pools.get(asyncio.get_running_loop())
    return None if entry is None else entry[0]


async def _closes_when_the_loop_ends(pool: ArqRedis) -> AsyncGenerator[None, None]:
    """Closes `pool` when it is closed itself: by `close_task_pool()`, or by the loop's own
    `shutdown_asyncgens()`, which `asyncio.run()` calls before it closes the loop. So a pool
    opened under `asyncio.run(...)` does not outlive its loop with open connections."""
    try:
        yield
    finally:
        await close_pool(pool)


async def close_task_pool() -> None:
    """Close the running loop's pool (call it on application shutdown); the next use opens a new one."""
    entry = _pools.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[1].aclose()


async def enqueue_task(
    name: str,
    *args: Any,
    _job_id: str | None = None,
    _defer_by: int | float | timedelta | None = None,
    _defer_until: datetime | None = None,
    _expires: int | float | timedelta | None = None,
    _queue_name: str | None = None,
    **kwargs: Any,
) -> Job[Any] | None:
    """Queue the job `name` with these arguments and return its `Job` handle (job_handle.py).

    `_job_id` makes the job unique: while a job with that id is queued, running, or its result
    is still kept, enqueueing it again returns None and queues nothing. `_queue_name` sends it
    to another of QUEUES than the one it declares (`@job(queue=...)`, else `default`). The
    job's id is its queue's key and `_job_id` (or a random one):
    `{<QUEUE_PREFIX>:<queue>}:<_job_id>` (keys.py). `_defer_by` and `_defer_until` delay the
    start; `_expires` drops the job if it has not started in time. Raises `UnknownTaskError`
    for a name no worker runs, `UnknownQueueError` for a queue QUEUES does not list, and
    `JobArgumentError` for arguments the job does not take, cannot be serialized (see
    serialization.py) or are larger than `JOB_MAX_BYTES`; in every case nothing is queued.
    """
    spec = enqueueable_spec(name)
    mismatch = argument_error(spec, len(args), tuple(kwargs))
    if mismatch is not None:
        raise JobArgumentError(f"cannot enqueue {name!r}: {mismatch}")
    if _defer_until is not None and _defer_by is not None:
        raise JobArgumentError(f"cannot enqueue {name!r}: give _defer_until or _defer_by, not both")
    queue = _queue_name or spec.queue
    return await enqueue_checked(
        name, args, kwargs, _job_id, _defer_by, _defer_until, _expires, queue
    )


def enqueueable_spec(name: str) -> registry.JobSpec:
    """The declared job `name`; raises `UnknownTaskError` for a name no worker runs."""
    spec = registry.enqueueable(name)
    if spec is None:
        known = ", ".join(sorted(registry.jobs()))
        raise UnknownTaskError(
            f"no job named {name!r} is declared (with @job, in {registry.JOBS_MODULE}); "
            f"known jobs: {known}"
        )
    return spec


async def enqueue_checked(
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    _job_id: str | None = None,
    _defer_by: int | float | timedelta | None = None,
    _defer_until: datetime | None = None,
    _expires: int | float | timedelta | None = None,
    queue: str = DEFAULT_QUEUE,
) -> Job[Any] | None:
    """Write the job to `queue` (a name in QUEUES), its name and arguments already checked
    (`enqueue_task`, a `JobHandle`); raises as `checked_queue` and `prepare_job` do, and
    `RedisUnavailableError`."""
    refuse_workflow_job_id(name, _job_id)
    queue_name = checked_queue(name, queue)
    limits = limits_of(name, queue, args, kwargs)
    pool = await get_task_pool()
    # With tracing on, the job carries this span's context (prepare_job): its tries are its children.
    with tracing.enqueue_span(name, queue_name) if tracing.enabled else _NO_SPAN as span:
        prepared = prepare_job(
            pool, name, args, kwargs, queue_name, limits, _job_id, _defer_by, _defer_until, _expires
        )
        if span is not None:
            span.set_attribute("job.id", prepared.job_id)
        try:
            queued = await job_writer(pool).write(prepared.write)
        except (RedisError, OSError) as error:  # away, out of memory, read-only (connection.py)
            raise unavailable(error) from error
    return job_by_id(prepared.job_id, pool) if queued else None


def refuse_workflow_job_id(name: str, job_id: str | None) -> None:
    """JobArgumentError for a job id of a workflow's job (`wf-...`, client/workflows.py): a job
    queued under one would take the place of that workflow's job, or be overwritten by it."""
    if job_id is not None and bare_job_id(job_id).startswith(WORKFLOW_ID_PREFIX):
        raise JobArgumentError(
            f"cannot enqueue {name!r} with the job id {job_id!r}: ids starting with "
            f"{WORKFLOW_ID_PREFIX!r} are workflows' jobs' (enqueue_chain, enqueue_group)"
        )


def checked_queue(name: str, queue: str) -> str:
    """The key of `queue` (a name in QUEUES), where the job `name` goes; raises
    `UnknownQueueError` for a queue QUEUES lacks."""
    queue_name = get_settings().queue_keys.get(queue)
    if queue_name is None:
        raise UnknownQueueError(
            f"cannot enqueue {name!r}: no queue named {queue!r}; QUEUES lists "
            f"{', '.join(get_settings().queues)} (docs/queues.md)"
        )
    return queue_name


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 2 µs more to make (enqueue_many)
class PreparedJob:
    """A job ready to write to its queue (`queue_name`, a key): its full id, serialized payload,
    start time (`score`, ms), lifetime (ms), what its limits carry (None: it has none), and
    whether the caller chose the id (only then can a job already hold it)."""

    job_id: str
    queue_name: str
    payload: str
    score: int
    lifetime_ms: int
    limits: str | None
    id_chosen: bool = True

    @property
    def write(self) -> JobWrite:
        """ENQUEUE_JOB's keys and arguments for it (job_writes.py)."""
        job_id, queue_name = self.job_id, self.queue_name
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue_name]
        keys.append(wake_key(queue_name))
        check = "1" if self.id_chosen else "0"
        arguments = [check, str(self.lifetime_ms), self.payload, str(self.score), job_id]
        if self.limits is not None:  # written with the job, for the claim's check (limits.py)
            keys.append(limited_key(queue_name, job_id))
            arguments.append(self.limits)
        return (*keys, *arguments)


def prepare_job(
    pool: ArqRedis,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    queue_name: str,
    limits: str | None,
    _job_id: str | None,
    _defer_by: int | float | timedelta | None,
    _defer_until: datetime | None,
    _expires: int | float | timedelta | None,
    member: Membership | None = None,
) -> PreparedJob:
    """The job `name` serialized for the queue `queue_name` (a key), with what its `limits`
    carry (`limits_of`) and its place in a workflow (`member`, store/workflows.py); with tracing
    on, the current span's trace context too (tracing.py). Raises `JobArgumentError` for
    arguments that cannot be serialized or exceed JOB_MAX_BYTES."""
    job_id = namespaced_job_id(queue_name, _job_id or new_job_id())
    enqueued_ms = timestamp_ms()
    # As arq: by default a job not started a day after its planned start is dropped.
    try:
        score, lifetime_ms = job_times(
            _defer_by, _defer_until, _expires, enqueued_ms, pool.expires_extra_ms
        )
    except ValueError as error:
        raise JobArgumentError(f"cannot enqueue {name!r}: {error}") from error
    serializer = pool.job_serializer
    # Fields beside arq's, each written only when it has something to say: an ordinary job's
    # payload, with tracing off, is arq's own.
    fields: dict[str, Any] = {}
    if member is not None:
        fields[MEMBERSHIP_FIELD] = member.as_payload()
    if tracing.enabled and (context := tracing.trace_context()):  # empty outside any span
        fields[tracing.TRACE_FIELD] = context
    if fields and serializer is not None:
        serializer = functools.partial(_with_fields, serializer, fields)
    try:
        payload = serialize_job(name, args, kwargs, None, enqueued_ms, serializer=serializer)
    except SerializationError as error:
        raise JobArgumentError(f"cannot enqueue {name!r}: {error.__cause__}") from error
    return PreparedJob(
        job_id, queue_name, payload.decode(), score, lifetime_ms, limits, _job_id is not None
    )


def _with_fields(
    serializer: Callable[[dict[str, Any]], bytes], fields: dict[str, Any], job: dict[str, Any]
) -> bytes:
    return serializer({**job, **fields})


def limits_of(name: str, queue: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """What a limited job carries (limits.py's `job_limits`), or None for a job without limits.
    Raises JobArgumentError for a limited job sent to another queue than its own, or a limit
    key it cannot give."""
    spec = registry.enqueueable(name)
    if spec is None or not spec.limits:
        return None
    if queue != spec.queue:
        raise JobArgumentError(
            f"cannot enqueue {name!r} on queue {queue!r}: its limits ({spec.limits.describe()}) "
            f"are counted on its own queue, {spec.queue!r}, where it runs (docs/queues.md)"
        )
    try:
        return job_limits(name, spec.limits, args, kwargs, spec.signature)
    except ValueError as error:
        raise JobArgumentError(f"cannot enqueue {name!r}: {error}") from error


@functools.lru_cache(maxsize=1024)
def argument_error(
    spec: registry.JobSpec, positional: int, keywords: tuple[str, ...]
) -> str | None:
    """Why `positional` arguments plus these keywords do not fit job `spec`, or None if they do."""
    # Whether arguments fit a signature depends on how many are positional and which keywords
    # are named, never on their values, so the answer is cached per job and shape:
    # `Signature.bind` on every call cost `enqueue_task` about 3% of its time (the template's
    # bench/compare.py). Keyed by the spec itself, so a job declared anew is checked anew.
    parameters = spec.signature.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        # An unknown keyword first: Signature.bind names the argument it then misses instead,
        # which hides a misspelt name (`order` for `order_id`).
        taken = {
            name
            for name, p in parameters.items()
            if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)
        }
        unknown = [keyword for keyword in keywords if keyword not in taken]
        if unknown:
            return f"got an unexpected keyword argument {unknown[0]!r}"
    placeholders = [None] * positional  # None stands in for arq's ctx and for every value
    try:
        spec.signature.bind(None, *placeholders, **dict.fromkeys(keywords))
    except TypeError as error:
        return str(error)
    return None


async def get_job(job_id: str, queue: str | None = None) -> Job[Any]:
    """The `Job` handle for an id (job_handle.py), read with this project's serializer.

    `job_id` is the id `enqueue_task` gave the job (`{<QUEUE_PREFIX>:<queue>}:<id>`, keys.py),
    or the bare `_job_id` it was queued with, taken in `queue` (a name in QUEUES; by default
    `default`). `await job.status()`, `await job.result(timeout=...)`, `await job.info()`, and
    `await job.abort()` (a queued job is removed, a running one cancelled). Raises
    `UnknownQueueError` for a queue QUEUES does not list.
    """
    if queue is not None:
        queue_name = get_settings().queue_keys.get(queue)
        if queue_name is None:
            known = ", ".join(get_settings().queues)
            raise UnknownQueueError(f"no queue named {queue!r}; QUEUES lists {known}")
        if queue_of(job_id) is None:
            job_id = namespaced_job_id(queue_name, job_id)
    return job_by_id(job_id, await get_task_pool())


def job_by_id(job_id: str, pool: ArqRedis) -> Job[Any]:
    """`get_job` with the pool given: the one place an id becomes a handle (the API's routes and
    the dashboard use it too). It does no I/O; the job may not exist.

    An id in another namespace (another project's queue on the same Redis) is read as a bare id
    of this project's queue, which no job of the other project has: a project never reads or
    aborts another's jobs, even given their ids.
    """
    queue_name = queue_of(job_id)
    if queue_name is None or queue_name not in get_settings().queue_keys.values():
        queue_name = get_settings().queue_name
        job_id = namespaced_job_id(queue_name, job_id)
    return Job(job_id, pool, _queue_name=queue_name, _deserializer=deserialize)


class RequeueRefused(ValueError):
    """A dead letter that cannot be queued again; the message says why. Its record stays."""


def requeue_blocker(letter: dead_letters.DeadLetter) -> str | None:
    """Why `requeue_dead_letter` would refuse `letter`, or None if it can be requeued: what the
    CLI's and the dashboard's listings show beside each dead letter."""
    return rerun_blocker(letter.function, letter.args, letter.kwargs)


def rerun_blocker(function: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    """Why a job of `function` with these arguments cannot be queued again, or None if it can."""
    reason = function_rerun_blocker(function)
    if reason is not None:
        return reason
    spec = registry.requeueable()[function]
    try:
        spec.signature.bind(None, *args, **kwargs)  # None for ctx
    except TypeError as error:
        return f"its arguments no longer fit {function}: {error}"
    return None


def function_rerun_blocker(function: str) -> str | None:
    """Why no job of `function` can be queued again, whatever its arguments, or None: the
    part of `rerun_blocker` that a view without the arguments (the dashboard's tables) can ask."""
    if function == UNREADABLE_JOB:
        return "its payload could not be read, so there is no job to run again"
    if function == UNKNOWN_FUNCTION:
        return "its record expired before it ran, so its function and arguments are not known"
    if function not in registry.requeueable():
        return (
            f"no job named {function!r} is registered in this version: "
            "requeue it from a version that has it"
        )
    return None


async def requeue_dead_letter(job_id: str) -> Job[Any]:
    """Put a dead-lettered job back on the queue as a new job; its record is removed.

    Raises LookupError if there is no record for `job_id` (or it was already requeued), and
    RequeueRefused (the record stays) for one `requeue_blocker` names a reason for.
    """
    pool = await get_task_pool()
    handle = job_by_id(job_id, pool)  # the letter's queue: the job goes back there
    queue_name = handle.queue_name
    listed = [letter for letter in await dead_letters.all_letters(pool, queue_name)]
    # By the id as listed (a letter moved by `just queue-migrate` keeps its old one), or by its
    # bare id, as `get_job` takes one.
    found = next((letter for letter in listed if letter.job_id in (job_id, handle.job_id)), None)
    job_id = job_id if found is None else found.job_id
    reason = None if found is None else requeue_blocker(found)
    if reason is not None:
        raise RequeueRefused(f"cannot requeue {job_id}: {reason}")
    letter = await dead_letters.take(pool, queue_name, job_id)
    if letter is None:
        raise LookupError(f"no dead letter for job {job_id!r} (already requeued or purged?)")
    try:
        return await enqueue_again(letter.function, letter.args, letter.kwargs, job_id, queue_name)
    except Exception:
        await dead_letters.add(pool, queue_name, letter, get_settings().dead_letter_limit)
        raise


async def retry_job(job_id: str) -> Job[Any]:
    """Queue a job that did not complete (failed, or aborted) again, as a new job with the
    arguments it was queued with, on its own queue; the new job records `job_id` as where it
    came from (`retried_from`). Its dead letter, if it has one, stays listed.

    The arguments come from the job's result (arq keeps the function and arguments in it), or,
    once that has expired, from its dead letter. Raises LookupError when neither is there, and
    RequeueRefused for a job that completed or that `rerun_blocker` names a reason for; and as
    `enqueue_task` does.
    """
    pool = await get_task_pool()
    handle = job_by_id(job_id, pool)
    result = await handle.result_info()
    if result is not None:
        if result.success:
            raise RequeueRefused(f"cannot retry {handle.job_id}: it completed")
        function, args, kwargs = result.function, list(result.args), result.kwargs
    else:
        letters = await dead_letters.all_letters(pool, handle.queue_name)
        found = next((each for each in letters if each.job_id in (job_id, handle.job_id)), None)
        if found is None:
            raise LookupError(f"no failed job {job_id!r}: never queued, or its result expired")
        function, args, kwargs = found.function, found.args, found.kwargs
    reason = rerun_blocker(function, args, kwargs)
    if reason is not None:
        raise RequeueRefused(f"cannot retry {handle.job_id}: {reason}")
    return await enqueue_again(function, args, kwargs, handle.job_id, handle.queue_name)


async def enqueue_again(
    function: str, args: Sequence[Any], kwargs: dict[str, Any], origin: str, queue_name: str
) -> Job[Any]:
    """A new job (a new id) of `function` with these arguments on the queue `queue_name` (a key),
    recording `origin`, the id it was queued again from: what a dead letter's requeue and a
    retry share."""
    queue = next(name for name, key in get_settings().queue_keys.items() if key == queue_name)
    job = await enqueue_checked(function, tuple(args), kwargs, queue=queue)
    assert job is not None  # a new job without _job_id is never a duplicate
    # Written after the job: a crash in between leaves a job that does not say where it came
    # from, never a record of a job that is not there. Kept as long as a result can be.
    lifetime = ORIGIN_SECONDS + int(get_settings().worker_keep_result)
    pool = await get_task_pool()
    await pool.set(retry_of_key(queue_name, job.job_id), origin, ex=lifetime)
    return job


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` from synchronous code and return its result (or raise its exception).

        job = run_sync(enqueue_task("example_task", message="Hello!"))
        status = run_sync(job.status())

    For Flask and Django views, scripts and threads. Every call runs on one event loop in a
    background thread, so all of them share one pool instead of connecting each time. Raises
    RuntimeError when called from a running event loop: there, `await` the coroutine.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run_coroutine_threadsafe(coroutine, _background_loop()).result()
    coroutine.close()
    raise RuntimeError("run_sync() is for synchronous code: await the coroutine instead")


_background: tuple[int, asyncio.AbstractEventLoop] | None = None
_background_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _background
    with _background_lock:
        # A forked child (a pre-forking web server) inherits the loop but not its thread.
        if _background is None or _background[0] != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="task-queue", daemon=True)
            thread.start()
            atexit.register(_stop_background_loop, os.getpid(), loop, thread)
            _background = (os.getpid(), loop)
        return _background[1]


def _stop_background_loop(
    owner: int, loop: asyncio.AbstractEventLoop, thread: threading.Thread
) -> None:
    if os.getpid() != owner:  # a forked child: the thread is not there
        return
    asyncio.run_coroutine_threadsafe(close_task_pool(), loop).result(timeout=5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()
