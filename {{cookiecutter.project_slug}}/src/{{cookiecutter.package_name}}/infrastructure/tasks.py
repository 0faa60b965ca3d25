"""The worker: `WorkerSettings`, the class `arq` reads, and the hooks it runs.

Start it with `uv run python -m {{ cookiecutter.package_name }}.infrastructure.worker` (`just worker`; worker.py): arq's
worker with a loop that starts queued jobs at once. `uv run arq {{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings`
runs the same jobs with arq's own loop.
The jobs live in `{{ cookiecutter.package_name }}/jobs.py`; register each one below with `job()` or `cron_job()`.
Clients import from `{{ cookiecutter.package_name }}.queue`; the client names are also importable from here,
as they always were (`from {{ cookiecutter.package_name }}.infrastructure.tasks import enqueue_task`).
"""

import inspect
import logging

from ..config import get_settings, settings_or_exit
from ..error_tracking import init_error_tracking
from ..jobs import example_task, {% if cookiecutter.cache_backend == "falkordb" %}record_visit, {% endif %}report_queue_depth
from ..logs import configure_logging, logging_configured
from . import job_events
from .activity import ActivityRecorder
from .client import (
    JobArgumentError,
    RequeueRefused,
    UnknownTaskError,
    close_task_pool,
    enqueue_task,
    get_job,
    get_task_pool,
    requeue_blocker,
    requeue_dead_letter,
)
from .connection import close_sentinel_connections, redis_settings
from .functions import TIMEOUT_BACKSTOP_SECONDS, cron_job, job, release_retried_tick
from .heartbeat import Heartbeat
from .job_types import UNREADABLE_JOB, JobContext
from .job_writes import job_pool
from .serialization import serialize
from .unreadable import deserialize_job, reject_unreadable_job

__all__ = [
    "TASK_SIGNATURES",
    "JobArgumentError",
    "RequeueRefused",
    "UnknownTaskError",
    "WorkerSettings",
    "close_task_pool",
    "cron_job",
    "enqueue_task",
    "get_job",
    "get_task_pool",
    "job",
    "requeue_blocker",
    "requeue_dead_letter",
]

logger = logging.getLogger(__name__)


async def on_worker_startup(ctx: JobContext) -> None:
    """Runs once when a worker starts: put shared clients for your jobs into `ctx` here."""
    settings = get_settings()
    if not logging_configured():
        # The `arq` command configures only arq's logger: without this, the jobs' own lines
        # would go nowhere. (The project's entry point, worker.py, has done it already.)
        configure_logging(settings.log_level, settings.log_format)
    init_error_tracking()
    # Jobs that queue follow-up work with ctx["redis"].enqueue_job wake a worker (job_writes.py).
    ctx["redis"] = job_pool(ctx["redis"])
    if settings.log_format == "json":
        job_events.listen(job_events.log_finished)
    ctx["queue_name"] = settings.queue_name
    ctx["heartbeat"] = heartbeat = Heartbeat(
        ctx["redis"], settings.queue_name, settings.worker_health_check_interval
    )
    await heartbeat.start()
    # The record of finished jobs the dashboard and `just queue-stats` read (activity.py).
    ctx["activity"] = activity = ActivityRecorder(ctx["redis"], settings.queue_name)
    activity.start()
    if settings.worker_metrics_port is not None:
        from .metrics import WorkerMetrics  # here: prometheus-client only when metrics are on

        ctx["metrics"] = WorkerMetrics.start(
            ctx.get("worker"),
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            ctx["redis"],
            settings.queue_name,
        )
    logger.info("worker started on queue %s (heartbeat %s)", settings.queue_name, heartbeat.key)


async def on_job_start(ctx: JobContext) -> None:
    ctx["heartbeat"].job_started(ctx["job_id"])


async def after_job_end(ctx: JobContext) -> None:
    # After arq has recorded the outcome and removed the job's in-progress mark.
    ctx["heartbeat"].job_ended(ctx["job_id"])
    await release_retried_tick(ctx)


async def on_worker_shutdown(ctx: JobContext) -> None:
    """Runs once when a worker stops: close what `on_worker_startup` opened."""
    await ctx["heartbeat"].stop()
    await ctx["activity"].stop()
    if ctx.get("metrics") is not None:
        await ctx["metrics"].stop()
    await close_sentinel_connections(ctx["redis"])  # arq closes the pool itself
    logger.info("worker on queue %s stopped", ctx["queue_name"])


# Read when the `arq` command (or worker.py) imports this module: a bad setting ends it here.
_settings = settings_or_exit()


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
# What a dead letter may be requeued as: those, and the cron jobs (`cron:<name>`).
REQUEUE_SIGNATURES = TASK_SIGNATURES | {
    cron.name: inspect.signature(cron.coroutine) for cron in WorkerSettings.cron_jobs
}
