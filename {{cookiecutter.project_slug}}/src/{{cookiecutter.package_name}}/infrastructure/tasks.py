"""Queue plumbing: the shared ARQ pool, enqueueing and reading jobs, and the worker's settings.

Clients (a web app, a script, a test) call `enqueue_task` and `get_job`; the worker is started
with `uv run arq {{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings` (`just worker`).
The jobs themselves live in `{{ cookiecutter.package_name }}/jobs.py`; retries and dead letters in `retries.py`.
"""

import functools
import inspect
import logging
from datetime import datetime, timedelta
from typing import Any

from arq import cron
from arq.connections import ArqRedis
from arq.cron import CronJob
from arq.jobs import Job, SerializationError
from arq.worker import Function, func
from redis.exceptions import RedisError

from ..config import get_settings
from ..jobs import JobContext, example_task, {% if cookiecutter.cache_backend == "falkordb" %}record_visit, {% endif %}report_queue_depth
from . import dead_letters
from .connection import (
    close_pool,
    close_sentinel_connections,
    connect,
    redis_settings,
    unavailable,
)
from .heartbeat import Heartbeat
from .retries import JobFunction, retrying
from .serialization import deserialize, serialize, serialize_at_most
from .unreadable import UNREADABLE_JOB, deserialize_job, reject_unreadable_job

logger = logging.getLogger(__name__)

# arq's own time limit sits this much after ours (see retries.py), as a backstop.
TIMEOUT_BACKSTOP_SECONDS = 5.0
# How long a cron tick stays claimed: far longer than any gap between two workers' polls.
CRON_CLAIM_SECONDS = 3600

_pool: ArqRedis | None = None


class UnknownTaskError(ValueError):
    """Raised by `enqueue_task` for a name no worker would run."""


class JobArgumentError(TypeError):
    """Raised by `enqueue_task` for arguments that cannot be serialized; nothing is queued."""


async def get_task_pool() -> ArqRedis:
    """The process-wide pool, created on first use from `REDIS_URL` (see connection.py).

    Raises `RedisUnavailableError`, with a one-line reason, when Redis cannot be reached.
    """
    global _pool
    if _pool is None:
        pool = await connect(
            job_serializer=serialize_at_most(get_settings().job_max_bytes),
            job_deserializer=deserialize,
            default_queue_name=get_settings().queue_name,
        )
        # Two first callers may race through the await above: keep one pool, close the other.
        if _pool is None:
            _pool = pool
        else:
            await close_pool(pool)
    return _pool


async def close_task_pool() -> None:
    """Close the pool (call it on application shutdown); the next use opens a new one."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        await close_pool(pool)


async def enqueue_task(
    name: str,
    *args: Any,
    _job_id: str | None = None,
    _defer_by: int | float | timedelta | None = None,
    _defer_until: datetime | None = None,
    _expires: int | float | timedelta | None = None,
    **kwargs: Any,
) -> Job | None:
    """Queue the job `name` with these arguments and return arq's `Job` handle.

    `_job_id` makes the job unique: while a job with that id is queued, running, or its result
    is still kept, enqueueing it again returns None and queues nothing. `_defer_by` and
    `_defer_until` delay the start; `_expires` drops the job if it has not started in time.
    Raises `UnknownTaskError` for a name no worker runs, and `JobArgumentError` for arguments
    the job does not take, cannot be serialized (see serialization.py) or are larger than
    `JOB_MAX_BYTES`; in every case nothing is queued.
    """
    if name not in TASK_SIGNATURES:
        known = ", ".join(sorted(TASK_SIGNATURES))
        raise UnknownTaskError(f"no job named {name!r} is registered; known jobs: {known}")
    mismatch = argument_error(name, len(args), tuple(kwargs))
    if mismatch is not None:
        raise JobArgumentError(f"cannot enqueue {name!r}: {mismatch}")
    pool = await get_task_pool()
    try:
        return await pool.enqueue_job(
            name,
            *args,
            _job_id=_job_id,
            _defer_by=_defer_by,
            _defer_until=_defer_until,
            _expires=_expires,
            **kwargs,
        )
    except SerializationError as error:
        raise JobArgumentError(f"cannot enqueue {name!r}: {error.__cause__}") from error
    except (RedisError, OSError) as error:  # Redis went away after the pool was made
        raise unavailable(error) from error


@functools.lru_cache(maxsize=1024)
def argument_error(name: str, positional: int, keywords: tuple[str, ...]) -> str | None:
    """Why `positional` arguments plus these keywords do not fit job `name`, or None if they do.

    Whether arguments fit a signature depends on how many are positional and which keywords are
    named, never on their values, so the answer is cached per shape: `Signature.bind` on every
    call cost `enqueue_task` about 3% of its time (the template's bench/compare.py).
    """
    placeholders = [None] * positional  # None stands in for arq's ctx and for every value
    try:
        TASK_SIGNATURES[name].bind(None, *placeholders, **dict.fromkeys(keywords))
    except TypeError as error:
        return str(error)
    return None


async def get_job(job_id: str) -> Job:
    """arq's `Job` for an id, read with this project's serializer and queue.

    `await job.status()`, `await job.result(timeout=...)`, `await job.info()`, and
    `await job.abort()` (a queued job is dropped, a running one cancelled).
    """
    return Job(
        job_id,
        await get_task_pool(),
        _queue_name=get_settings().queue_name,
        _deserializer=deserialize,
    )


async def requeue_dead_letter(job_id: str) -> Job:
    """Put a dead-lettered job back on the queue as a new job; its record is removed.

    Raises LookupError if there is no record for `job_id` (or it was already requeued).
    """
    pool = await get_task_pool()
    queue_name = get_settings().queue_name
    letter = await dead_letters.take(pool, queue_name, job_id)
    if letter is None:
        raise LookupError(f"no dead letter for job {job_id!r} (already requeued or purged?)")
    try:
        job = await enqueue_task(letter.function, *letter.args, **letter.kwargs)
    except Exception:
        await dead_letters.add(pool, queue_name, letter, get_settings().dead_letter_limit)
        raise
    assert job is not None  # a new job without _job_id is never a duplicate
    return job


def job(
    coroutine: JobFunction, *, max_tries: int | None = None, timeout: float | None = None
) -> Function:
    """Register a job function: retries with backoff, dead letters, and an optional per-job
    `max_tries` / `timeout` (seconds) in place of the worker-wide settings."""
    return func(
        retrying(coroutine, max_tries=max_tries, timeout=timeout),  # type: ignore[arg-type]
        name=coroutine.__name__,
        max_tries=max_tries,
        timeout=None if timeout is None else timeout + TIMEOUT_BACKSTOP_SECONDS,
    )


def cron_job(coroutine: JobFunction, **schedule: Any) -> CronJob:
    """A cron job that runs once per tick however many workers run it.

    arq gives each tick a job id, but a fast job whose result is not kept can be queued again
    by a slower worker (arq #196). Each tick is claimed in Redis first; a worker that loses
    the claim skips it.
    """

    @functools.wraps(coroutine)
    async def once_per_tick(ctx: JobContext) -> Any:
        claim = f"{get_settings().queue_name}:cron-claims:{ctx['job_id']}"
        if not await ctx["redis"].set(claim, 1, nx=True, ex=CRON_CLAIM_SECONDS):
            logger.info("%s already ran on another worker; skipping", ctx["job_id"])
            return None
        return await coroutine(ctx)

    return cron(once_per_tick, name=f"cron:{coroutine.__name__}", **schedule)


def log_to_terminal(level: str) -> None:
    """Show this project's log records next to arq's, in arq's format.

    The `arq` command configures logging for arq's own logger only: without this, the jobs'
    `logger.info(...)` lines would go nowhere. The level is `LOG_LEVEL`.
    """
    project_logger = logging.getLogger(__name__.partition(".")[0])
    if not project_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s: %(message)s", datefmt="%H:%M:%S"))
        project_logger.addHandler(handler)
    project_logger.setLevel(level)


async def on_worker_startup(ctx: JobContext) -> None:
    """Runs once when a worker starts: put shared clients for your jobs into `ctx` here."""
    settings = get_settings()
    log_to_terminal(settings.log_level)
    ctx["queue_name"] = settings.queue_name
    ctx["heartbeat"] = heartbeat = Heartbeat(
        ctx["redis"], settings.queue_name, settings.worker_health_check_interval
    )
    await heartbeat.start()
    logger.info("worker started on queue %s (heartbeat %s)", settings.queue_name, heartbeat.key)


async def on_job_start(ctx: JobContext) -> None:
    ctx["heartbeat"].job_started(ctx["job_id"])


async def after_job_end(ctx: JobContext) -> None:
    # After arq has recorded the outcome and removed the job's in-progress mark.
    ctx["heartbeat"].job_ended(ctx["job_id"])


async def on_worker_shutdown(ctx: JobContext) -> None:
    """Runs once when a worker stops: close what `on_worker_startup` opened."""
    await ctx["heartbeat"].stop()
    await close_sentinel_connections(ctx["redis"])  # arq closes the pool itself
    logger.info("worker on queue %s stopped", ctx["queue_name"])


_settings = get_settings()


class WorkerSettings:
    """What `arq` reads to build a worker.

    arq reads only this class's own attributes (no inheritance) and silently ignores names it
    does not know, so every attribute below is a real `arq.worker.Worker` argument.
    """

    functions = (
        job(reject_unreadable_job, max_tries=1),
        job(example_task),
{%- if cookiecutter.cache_backend == "falkordb" %}
        job(record_visit),
{%- endif %}
    )
    cron_jobs = (cron_job(report_queue_depth, second=0),)
    on_startup = on_worker_startup
    on_shutdown = on_worker_shutdown
    # Lets live workers restart a dead worker's jobs without waiting out their time limit.
    on_job_start = on_job_start
    after_job_end = after_job_end
    # A worker rides out a Redis restart: it keeps trying for WORKER_RECONNECT_SECONDS.
    redis_settings = redis_settings(reconnect_for=_settings.worker_reconnect_seconds)
    job_serializer = serialize
    # A payload the worker cannot read becomes a dead letter (unreadable.py), never code run.
    job_deserializer = deserialize_job
    queue_name = _settings.queue_name
    max_jobs = _settings.worker_max_jobs
    job_timeout = _settings.worker_job_timeout + TIMEOUT_BACKSTOP_SECONDS
    keep_result = _settings.worker_keep_result
    poll_delay = _settings.worker_poll_delay
    max_tries = _settings.worker_max_tries
    health_check_interval = _settings.worker_health_check_interval
    job_completion_wait = _settings.worker_shutdown_grace
    allow_abort_jobs = True


# What clients may enqueue, and the arguments each job takes (`job()` keeps the signature).
TASK_SIGNATURES = {
    function.name: inspect.signature(function.coroutine)
    for function in WorkerSettings.functions
    if function.name != UNREADABLE_JOB
}
