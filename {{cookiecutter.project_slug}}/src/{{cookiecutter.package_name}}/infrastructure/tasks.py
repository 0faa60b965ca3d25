"""Queue plumbing: the shared ARQ pool, enqueueing jobs, and the worker's settings.

Clients (a web app, a script, a test) call `enqueue_task`; the worker is started with
`uv run arq {{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings` (`just worker`).
The jobs themselves live in `{{ cookiecutter.package_name }}/jobs.py`.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from arq import create_pool, cron
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.jobs import JobContext, example_task, report_queue_depth

logger = logging.getLogger(__name__)

_pool: ArqRedis | None = None


class UnknownTaskError(ValueError):
    """Raised by `enqueue_task` for a name no worker would run."""


def redis_settings() -> RedisSettings:
    """arq's connection settings, parsed from `REDIS_URL` (host, port, db, auth, TLS)."""
    return RedisSettings.from_dsn(str(get_settings().redis_url))


async def get_task_pool() -> ArqRedis:
    """The process-wide pool, created on first use from `REDIS_URL`."""
    global _pool
    if _pool is None:
        pool = await create_pool(redis_settings(), default_queue_name=get_settings().queue_name)
        # Two first callers may race through the await above: keep one pool, close the other.
        if _pool is None:
            _pool = pool
        else:
            await pool.aclose()
    return _pool


async def close_task_pool() -> None:
    """Close the pool (call it on application shutdown); the next use opens a new one."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        await pool.aclose()


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
    """
    if name not in TASK_NAMES:
        known = ", ".join(sorted(TASK_NAMES))
        raise UnknownTaskError(f"no job named {name!r} is registered; known jobs: {known}")
    pool = await get_task_pool()
    return await pool.enqueue_job(
        name,
        *args,
        _job_id=_job_id,
        _defer_by=_defer_by,
        _defer_until=_defer_until,
        _expires=_expires,
        **kwargs,
    )


async def on_worker_startup(ctx: JobContext) -> None:
    """Runs once when a worker starts: put shared clients for your jobs into `ctx` here."""
    ctx["queue_name"] = get_settings().queue_name
    logger.info("worker started on queue %s", ctx["queue_name"])


async def on_worker_shutdown(ctx: JobContext) -> None:
    """Runs once when a worker stops: close what `on_worker_startup` opened."""
    logger.info("worker on queue %s stopped", ctx["queue_name"])


_settings = get_settings()


class WorkerSettings:
    """What `arq` reads to build a worker.

    arq reads only this class's own attributes (no inheritance) and silently ignores names it
    does not know, so every attribute below is a real `arq.worker.Worker` argument.
    """

    functions = (example_task,)
    cron_jobs = (cron(report_queue_depth, second=0, run_at_startup=False),)
    on_startup = on_worker_startup
    on_shutdown = on_worker_shutdown
    redis_settings = redis_settings()
    queue_name = _settings.queue_name
    max_jobs = _settings.worker_max_jobs
    job_timeout = _settings.worker_job_timeout
    keep_result = _settings.worker_keep_result
    poll_delay = _settings.worker_poll_delay
    max_tries = _settings.worker_max_tries
    health_check_interval = _settings.worker_health_check_interval
    allow_abort_jobs = True


TASK_NAMES = frozenset(function.__name__ for function in WorkerSettings.functions)
