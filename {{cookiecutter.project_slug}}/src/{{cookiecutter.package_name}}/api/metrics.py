# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`GET /metrics`: the queue-level gauges in Prometheus's text format, for Prometheus to scrape.

Waiting, deferred and running jobs, dead letters and live workers (infrastructure/ops/metrics.py
names them) of every queue of QUEUES, one series per queue labelled with its key, read from
Redis at each request without a SCAN (depth.py's `queue_stats` per queue, the queues read
concurrently: a few round trips in all, whatever the number of queues). Like
the health checks it needs no `authorize`: it shows counts only, and Prometheus scrapes from
inside the deployment. It is left out of the OpenAPI schema: it is not JSON, and no client of
the API calls it. Redis out of reach is a 503 problem, as on every route.

The per-function counters and histograms are the workers' own (`WORKER_METRICS_PORT`); the
API's process has none to add.
"""

from fastapi import APIRouter, Response

from ..infrastructure.ops.metrics import CONTENT_TYPE, render_queue_gauges
from ..infrastructure.store.depth import queue_stats_of
from .dependencies import AppSettings, TaskPool

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(pool: TaskPool, settings: AppSettings) -> Response:
    stats = await queue_stats_of(pool, list(settings.queue_keys.values()))
    return Response(render_queue_gauges(stats), media_type=CONTENT_TYPE)
