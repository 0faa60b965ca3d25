# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What a worker does when it starts and stops, and around each job: the hooks `WorkerSettings`
(tasks.py) hands to arq.

Start-up configures logging and error tracking, starts the worker's heartbeat, its record of
finished jobs and (when WORKER_METRICS_PORT is set) its metrics, then opens the project's
`worker_lifespan` (worker_lifespan.py): what the jobs share. Shutdown closes them in reverse.
"""

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from redis.exceptions import RedisError

from ...config import get_settings
from ...error_tracking import init_error_tracking
from ...logs import configure_logging, logging_configured
from .. import job_events
from ..job_types import JobContext
from ..ops.activity import ActivityRecorder
from ..store.connection import close_sentinel_connections
from ..store.heartbeat import Heartbeat
from ..store.job_writes import job_pool
from .functions import release_retried_tick

logger = logging.getLogger(__name__)

# `worker_lifespan` in worker_lifespan.py: an async context manager factory taking `ctx`.
WorkerLifespan = Callable[[JobContext], AbstractAsyncContextManager[None]]


class WorkerHooks:
    """arq's `on_startup`, `on_shutdown`, `on_job_start` and `after_job_end`, around `lifespan`."""

    def __init__(self, lifespan: WorkerLifespan) -> None:
        self.lifespan = lifespan

    async def on_startup(self, ctx: JobContext) -> None:
        """Runs once when a worker starts, before its first job."""
        settings = get_settings()
        if not logging_configured():
            # The `arq` command configures only arq's logger: without this, the jobs' own lines
            # would go nowhere. (The project's entry point, worker/__main__.py, has done it.)
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
            from ..ops.metrics import (
                WorkerMetrics,  # here: prometheus-client only when metrics are on
            )

            ctx["metrics"] = WorkerMetrics.start(
                ctx.get("worker"),
                settings.worker_metrics_host,
                settings.worker_metrics_port,
                ctx["redis"],
                settings.queue_name,
            )
        # Last: the project's resources may log, and use ctx["redis"].
        ctx["lifespan"] = resources = AsyncExitStack()
        await resources.enter_async_context(self.lifespan(ctx))
        logger.info("worker started on queue %s (heartbeat %s)", settings.queue_name, heartbeat.key)

    async def on_shutdown(self, ctx: JobContext) -> None:
        """Runs once when a worker stops: closes what `on_startup` opened, in reverse."""
        if ctx.get("lifespan") is not None:
            await ctx["lifespan"].aclose()
        try:
            await ctx["heartbeat"].stop()
        except (RedisError, OSError) as error:  # Redis gone: the heartbeat expires by itself
            logger.warning("could not remove this worker's heartbeat: %s", error)
        await ctx["activity"].stop()
        if ctx.get("metrics") is not None:
            await ctx["metrics"].stop()
        await close_sentinel_connections(ctx["redis"])  # arq closes the pool itself
        logger.info("worker on queue %s stopped", ctx["queue_name"])

    async def on_job_start(self, ctx: JobContext) -> None:
        ctx["heartbeat"].job_started(ctx["job_id"])

    async def after_job_end(self, ctx: JobContext) -> None:
        # After arq has recorded the outcome and removed the job's in-progress mark.
        ctx["heartbeat"].job_ended(ctx["job_id"])
        await release_retried_tick(ctx)
