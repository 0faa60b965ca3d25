# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What a worker does when it starts and stops, and around each job: the hooks `WorkerSettings`
(tasks.py) hands to arq.

Start-up configures logging, error tracking and tracing (tracing.py), starts the worker's heartbeat, its record of
finished jobs and (when WORKER_METRICS_PORT is set) its metrics, then opens the project's
`worker_lifespan` (worker_lifespan.py): what the jobs share. Shutdown closes them in reverse.
"""

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from redis.exceptions import RedisError

from ... import tracing
from ...config import get_settings
from ...error_tracking import init_error_tracking
from ...logs import configure_logging, logging_configured
from .. import job_events
from ..job_types import JobContext
from ..keys import queue_of_job
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
        tracing.init_tracing()
        # Jobs that queue follow-up work with ctx["redis"].enqueue_job wake a worker (job_writes.py).
        ctx["redis"] = job_pool(ctx["redis"])
        if settings.log_format == "json":
            job_events.listen(job_events.log_finished)
        # The queues served (worker/loop.py), highest priority first; a worker run by arq's
        # own command serves the first alone (tasks.py).
        worker = ctx.get("worker")
        served = [settings.queue_keys[queue] for queue in settings.served_queues]
        queue_names = list(worker.queue_names) if worker is not None else served[:1]
        ctx["queue_name"] = queue_names[0]
        # A heartbeat per queue: `worker-check` and the live-worker counts are per queue, and a
        # dead worker's jobs are released by any worker serving their queue (heartbeat.py).
        interval = settings.worker_health_check_interval
        ctx["heartbeats"] = {name: Heartbeat(ctx["redis"], name, interval) for name in queue_names}
        ctx["heartbeat"] = heartbeat = ctx["heartbeats"][queue_names[0]]
        for each in ctx["heartbeats"].values():
            await each.start()
        # The record of finished jobs the dashboard and `just queue-stats` read (activity.py),
        # a recorder per queue.
        ctx["activities"] = {
            name: ActivityRecorder(ctx["redis"], name, takes_bare_ids=name == queue_names[0])
            for name in queue_names
        }
        for recorder in ctx["activities"].values():
            recorder.start()
        if settings.worker_metrics_port is not None:
            from ..ops.metrics import (
                WorkerMetrics,  # here: prometheus-client only when metrics are on
            )

            ctx["metrics"] = WorkerMetrics.start(
                ctx.get("worker"),
                settings.worker_metrics_host,
                settings.worker_metrics_port,
                ctx["redis"],
                # Every queue's gauges, not only those it serves: without the API, the workers
                # are what Prometheus and KEDA read for each queue (docs/monitoring.md).
                list(settings.queue_keys.values()),
            )
        # Last: the project's resources may log, and use ctx["redis"].
        ctx["lifespan"] = resources = AsyncExitStack()
        await resources.enter_async_context(self.lifespan(ctx))
        served_now = ", ".join(queue_names)
        logger.info("worker started on queue %s (heartbeat %s)", served_now, heartbeat.key)

    async def on_shutdown(self, ctx: JobContext) -> None:
        """Runs once when a worker stops: closes what `on_startup` opened, in reverse."""
        if ctx.get("lifespan") is not None:
            await ctx["lifespan"].aclose()
        for heartbeat in ctx["heartbeats"].values():
            try:
                await heartbeat.stop()
            except (RedisError, OSError) as error:  # Redis gone: it expires by itself
                logger.warning("could not remove this worker's heartbeat: %s", error)
        for recorder in ctx["activities"].values():
            await recorder.stop()
        if ctx.get("metrics") is not None:
            await ctx["metrics"].stop()
        await close_sentinel_connections(ctx["redis"])  # arq closes the pool itself
        tracing.stop_tracing()  # the last tries' spans, sent before the process ends
        logger.info("worker on queue %s stopped", ", ".join(ctx["heartbeats"]))

    async def on_job_start(self, ctx: JobContext) -> None:
        heartbeat_of(ctx).job_started(ctx["job_id"])

    async def after_job_end(self, ctx: JobContext) -> None:
        # After arq has recorded the outcome and removed the job's in-progress mark.
        heartbeat_of(ctx).job_ended(ctx["job_id"])
        await release_retried_tick(ctx)


def heartbeat_of(ctx: JobContext) -> Heartbeat:
    """The heartbeat of the queue the running job came from (the first queue's for an id that
    names none of the queues served)."""
    heartbeat: Heartbeat = ctx["heartbeats"].get(queue_of_job(ctx), ctx["heartbeat"])
    return heartbeat
