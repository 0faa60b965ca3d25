# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Prometheus metrics (prometheus-client): what each worker has done and is doing, and what the
queue holds. docs/monitoring.md lists every series, with the scrape config, alert rules and
Grafana dashboard that use them (deploy/monitoring/).

With `WORKER_METRICS_PORT` set, each worker serves `http://WORKER_METRICS_HOST:PORT/metrics`
from a thread of its own (prometheus-client's HTTP server):

- per function (label `function`), counted per try: `arq_jobs_started_total`, and how each try
  ended: `arq_jobs_completed_total`, `arq_jobs_retried_total` (failed, queued again),
  `arq_jobs_failed_total` (failed for good: a dead letter) and `arq_jobs_aborted_total`
  (cancelled: `Job.abort()`, or a worker stopping); the histograms `arq_job_duration_seconds`
  (each try's run time) and `arq_job_wait_seconds` (from enqueue to the start of the first try;
  a deferred job's wait includes its deferral);
- per worker, read from the worker when Prometheus scrapes: `arq_worker_jobs_running` and
  `arq_worker_free_slots` (0 while it shuts down); the project's worker only (worker.py), not
  arq's own `arq` command;
- `arq_unreadable_records_total` (label `kind`): records in Redis the process skipped because
  it could not read them (records.py), also on the API's `/metrics`;
- the process's CPU, memory and garbage collector (prometheus-client's own collectors).

The per-function series are fed by job_events: retries.py reports each try of every job, and
`JobMetrics.record` turns an event into a dict lookup and a few integer updates, in the job's
own task, without a lock; a scrape reads them (`JobMetrics.collect`), and nothing leaves the
process until then. Every function the worker runs has its series from the start, at 0, so
that `rate()` sees its first job and a ratio of two counters is never missing a side.

The queue-level gauges (`arq_queue_jobs_waiting`, `_deferred`, `_running`,
`arq_queue_dead_letters`, `arq_queue_live_workers`), one series per queue of QUEUES labelled
`queue` with the queue's key, are read from Redis when they are asked for (depth.py's
`queue_stats` per queue, no SCAN) and rendered by `render_queue_gauges`:
{%- if cookiecutter.api_framework == "fastapi" %} the API serves
them at `/metrics` (api/metrics.py), `just metrics` prints them. Each worker's `/metrics` has
them too, as it last read them (every QUEUE_STATS_SECONDS): where there is no API, that is
where Prometheus and KEDA find the backlog.
{%- else %} `just metrics`
prints them. Each worker's `/metrics` has them too, as it last read them (every
QUEUE_STATS_SECONDS): that is where Prometheus and KEDA find the backlog.
{%- endif %}

prometheus-client adds about 50 ms to a worker's start: tasks.py imports this module only when
metrics are on.
"""

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from threading import Thread
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import job_events
from ..store.depth import QueueStats, queue_stats_of
from ..store.records import unreadable_records

logger = logging.getLogger(__name__)


class WorkerView(Protocol):
    """What the metrics read of a running worker (worker/loop.py's `Worker`): ops/ never
    imports the worker, which imports this module to start its metrics."""

    running_functions: int
    max_jobs: int
    allow_pick_jobs: bool
    functions: dict[str, Any]


# The text format's media type, as Prometheus asks for it (0.0.4: every Prometheus reads it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. A try runs for up to WORKER_JOB_TIMEOUT (300 s by default); a woken worker starts a
# job about a millisecond after it is queued, a busy queue makes it wait longer.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# How a try ended (job_events.Outcome), and the counter that counts it.
OUTCOME_COUNTERS = {
    "complete": ("arq_jobs_completed", "Tries of jobs that completed"),
    "retried": ("arq_jobs_retried", "Tries of jobs that failed and were queued again"),
    "failed": ("arq_jobs_failed", "Jobs that failed for good (a dead letter each)"),
    "aborted": ("arq_jobs_aborted", "Tries of jobs cancelled: aborted, or their worker stopped"),
}

# How often a worker reads the queues' gauges for its own /metrics (the API reads them when
# asked): one depth.py `queue_stats` per queue per worker per period, about five Redis
# commands each.
QUEUE_STATS_SECONDS = 5.0

# depth.py's QueueStats field, the gauge's name, and its help text.
QUEUE_GAUGES = (
    ("waiting", "arq_queue_jobs_waiting", "Jobs due to start, not started yet"),
    ("deferred", "arq_queue_jobs_deferred", "Jobs queued to start later (deferred, retry backoff)"),
    ("running", "arq_queue_jobs_running", "Jobs the live workers run or have read to run next"),
    ("dead_letters", "arq_queue_dead_letters", "Records in the dead-letter list"),
    ("live_workers", "arq_queue_live_workers", "Workers whose heartbeat is current"),
    ("is_paused", "arq_queue_paused", "1 while the queue is paused: no new job starts from it"),
)


class Buckets:
    """A histogram's counts: one per bucket (the last one is +Inf), not yet cumulative."""

    __slots__ = ("bounds", "counts", "labels", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        # Their `le` labels as prometheus-client writes them: 0.005, 1.0, +Inf.
        self.labels = [repr(float(bound)) for bound in bounds] + ["+Inf"]

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: a value on a bound is in it
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus's buckets: (le, count of values at most le), +Inf last."""
        running = 0
        buckets: list[tuple[str, float]] = []
        for label, count in zip(self.labels, self.counts, strict=True):
            running += count
            buckets.append((label, running))
        return buckets


@dataclass(slots=True)
class FunctionCounts:
    """One function's counts since the worker started."""

    started: int = 0
    ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COUNTERS, 0))
    duration: Buckets = field(default_factory=lambda: Buckets(DURATION_BUCKETS))
    wait: Buckets = field(default_factory=lambda: Buckets(WAIT_BUCKETS))


class JobMetrics(Collector):
    """The per-function counters and histograms: `record` (a job_events listener) counts, and
    `collect` (prometheus-client, at a scrape) reports.

    The counts are plain integers, written only by the event loop's thread: prometheus-client's
    own Counter and Histogram take a lock for every update (3 to 5 µs a histogram observation
    here), which every job would pay. A scrape, in the server's thread, reads them as they are;
    each histogram's count is the sum of its buckets, so it always agrees with them.
    """

    def __init__(self, functions: Iterable[str] = ()) -> None:
        self.counts: dict[str, FunctionCounts] = {name: FunctionCounts() for name in functions}

    def record(self, event: job_events.JobStarted | job_events.JobFinished) -> None:
        counts = self.counts.get(event.function)
        if counts is None:
            counts = self.counts[event.function] = FunctionCounts()
        if isinstance(event, job_events.JobStarted):
            counts.started += 1
            if event.job_try == 1:  # a retry's wait would be its backoff, not the queue's
                counts.wait.observe(event.wait_seconds)
        else:
            counts.ended[event.outcome] += 1
            counts.duration.observe(event.duration_seconds)

    def collect(self) -> Iterator[Metric]:
        functions = sorted(self.counts.items())
        started = CounterMetricFamily(
            "arq_jobs_started", "Tries of jobs started", labels=["function"]
        )
        for name, counts in functions:
            started.add_metric([name], counts.started)
        yield started
        for outcome, (metric, help_text) in OUTCOME_COUNTERS.items():
            ended = CounterMetricFamily(metric, help_text, labels=["function"])
            for name, counts in functions:
                ended.add_metric([name], counts.ended[outcome])
            yield ended
        for metric, help_text, attribute in (
            ("arq_job_duration_seconds", "Run time of each try", "duration"),
            ("arq_job_wait_seconds", "From enqueue to the start of a job's first try", "wait"),
        ):
            histogram = HistogramMetricFamily(metric, help_text, labels=["function"])
            for name, counts in functions:
                buckets: Buckets = getattr(counts, attribute)
                histogram.add_metric([name], buckets.cumulative(), buckets.total)
            yield histogram


class WorkerSlots(Collector):
    """The worker's running jobs and free slots, read when Prometheus scrapes (from the HTTP
    server's thread: two integer reads, no lock needed)."""

    def __init__(self, worker: "WorkerView") -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        running = self.worker.running_functions
        yield GaugeMetricFamily(
            "arq_worker_jobs_running", "Jobs this worker is running", value=running
        )
        free = self.worker.max_jobs - running if self.worker.allow_pick_jobs else 0
        yield GaugeMetricFamily(
            "arq_worker_free_slots",
            "Jobs this worker could start now (0 while it shuts down)",
            value=free,
        )


class LastQueueStats(Collector):
    """The queues' gauges as this worker last read them (`refresh`, every QUEUE_STATS_SECONDS
    on the worker's event loop), one series per queue; none until the first read, or while
    Redis does not answer.

    So that a worker serves them too, not only the API: where there is no API, Prometheus and
    KEDA (deploy/kubernetes/) read the backlog here. Every worker reports the same queues,
    whichever it serves, so rules and dashboards take the max by queue
    (deploy/monitoring/alerts.yml)."""

    def __init__(self, redis: Redis, queue_names: str | Sequence[str]) -> None:
        self.redis = redis
        # The keys of the queues to read; one key alone is one queue.
        self.queue_names = [queue_names] if isinstance(queue_names, str) else list(queue_names)
        self.stats: dict[str, QueueStats] | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats  # one read: the event loop may replace it meanwhile
        if stats is not None:
            yield from _QueueGauges(stats).collect()

    async def refresh(self) -> None:
        while True:
            try:
                self.stats = await queue_stats_of(self.redis, self.queue_names)
            except (RedisError, OSError):
                self.stats = None  # no stale figures: the series go missing instead
            await asyncio.sleep(QUEUE_STATS_SECONDS)


@dataclass
class WorkerMetrics:
    """A worker's `/metrics`: its HTTP server, the job_events listener that feeds it, and the
    task that reads the queue's gauges."""

    server: WSGIServer
    thread: Thread
    stop_listening: Callable[[], None]
    reading_queue: asyncio.Task[None]

    @classmethod
    def start(
        cls,
        worker: "WorkerView | None",
        host: str,
        port: int,
        redis: Redis,
        queue_names: str | Sequence[str],
    ) -> "WorkerMetrics | None":
        """Serve `worker`'s metrics (no per-worker gauges for None: arq's own worker) and the
        gauges of the queues whose keys are `queue_names` (every queue of QUEUES: the settings'
        `queue_keys`, not only those the worker serves) on `host:port`. A port that cannot be
        bound is logged, and the worker runs without metrics (None): its jobs matter more, and
        Prometheus reports the target down."""
        registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        jobs = JobMetrics(() if worker is None else function_names(worker))
        registry.register(jobs)
        if worker is not None:
            registry.register(WorkerSlots(worker))
        queue = LastQueueStats(redis, queue_names)
        registry.register(queue)
        registry.register(UnreadableRecords())
        try:
            server, thread = start_http_server(port, host, registry)
        except OSError as error:
            reason = f"{host}:{port}: {error} (check WORKER_METRICS_PORT and WORKER_METRICS_HOST)"
            logger.error("cannot serve metrics on %s; running without them", reason)
            return None
        logger.info("metrics at http://%s:%d/metrics", host, server.server_port)
        reading = asyncio.create_task(queue.refresh(), name="metrics-queue-stats")
        return cls(server, thread, job_events.listen(jobs.record), reading)

    async def stop(self) -> None:
        self.reading_queue.cancel()
        await asyncio.gather(self.reading_queue, return_exceptions=True)
        self.stop_listening()
        # shutdown() waits for the server's loop to notice (up to 0.5 s): not on the event loop.
        await asyncio.to_thread(self.server.shutdown)
        self.server.server_close()


def function_names(worker: "WorkerView") -> list[str]:
    """The names job_events reports for the worker's functions (cron jobs by their function's
    name, as `job()` and `cron_job()` wrap them)."""
    names = {getattr(f.coroutine, "__name__", name) for name, f in worker.functions.items()}
    return sorted(names)


class UnreadableRecords(Collector):
    """`arq_unreadable_records_total{kind}`: the records in Redis this process's readers could
    not read and skipped (records.py), by the kind of key (heartbeat, dead-letter, result, ...)."""

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(
            "arq_unreadable_records",
            "Records in Redis this process skipped because it could not read them",
            labels=["kind"],
        )
        for kind, count in sorted(unreadable_records().items()):
            counter.add_metric([kind], count)
        yield counter


class _QueueGauges(Collector):
    """Each gauge once, with a series per queue (label `queue`: the queue's key)."""

    def __init__(self, stats: Mapping[str, QueueStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        for count, name, help_text in QUEUE_GAUGES:
            gauge = GaugeMetricFamily(name, help_text, labels=["queue"])
            for queue_name, stats in self.stats.items():
                gauge.add_metric([queue_name], getattr(stats, count))
            yield gauge


def render_queue_gauges(stats: Mapping[str, QueueStats]) -> bytes:
    """The queue-level gauges of each queue (its key -> depth.py's `queue_stats_of`), in
    Prometheus's text format (CONTENT_TYPE)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_QueueGauges(stats))
    registry.register(UnreadableRecords())
    return generate_latest(registry)


def render_queue_stats(stats: QueueStats, queue_name: str) -> bytes:
    """One queue's gauges, as `render_queue_gauges` renders them."""
    return render_queue_gauges({queue_name: stats})
