"""What the dashboard shows, read in one go: the page renders it, `/dashboard/snapshot.json`
serves it as is.

Everything comes from the infrastructure's own readers: the counts (depth.py's `queue_stats`),
the heartbeats and running-lists (heartbeat.py), the dead letters (dead_letters.py) and the
workers' activity record (activity.py). About 100 Redis commands in about 9 round trips, most of
them the chart's 90 buckets in one pipeline, and no SCAN: nothing a refresh every 2 s would
notice.
"""

from datetime import UTC, datetime
from typing import Literal

from arq.connections import ArqRedis
from pydantic import BaseModel, ConfigDict, Field

from ...infrastructure import activity, dead_letters
from ...infrastructure.dead_letters import DeadLetter

# How many of each list the page shows (the JSON too): enough to see, little to send.
RECENT_SHOWN = 12
DEAD_LETTERS_SHOWN = 10
Outcome = Literal["complete", "retried", "failed", "aborted"]


def utc(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


class Counts(BaseModel):
    """The queue at a glance. `last_minute` and `last_15_minutes` count the tries that ended,
    by outcome."""

    waiting: int
    deferred: int
    running: int
    dead_letters: int
    workers: int
    last_minute: dict[Outcome, int]
    last_15_minutes: dict[Outcome, int]


class Worker(BaseModel):
    host: str
    pid: int
    started_at: datetime
    # Its latest heartbeat; None from a worker of an older version of this project.
    beat_at: datetime | None
    running: list[str]


class ChartBucket(BaseModel):
    """The tries that ended in 10 s from `start`, by outcome, and the jobs waiting at the
    bucket's latest sample (None: no worker sampled it)."""

    start: datetime
    complete: int
    retried: int
    failed: int
    aborted: int
    depth: int | None


class FinishedJob(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    job_id: str
    function: str
    outcome: Outcome
    job_try: int = Field(alias="try")
    duration_seconds: float
    error: str | None
    finished_at: datetime
    worker: str


class Snapshot(BaseModel):
    """The whole dashboard. Lists are newest first, but `chart`, oldest first (90 buckets of
    10 s: the last 15 minutes), and `workers`, longest running first."""

    queue: str
    taken_at: datetime
    counts: Counts
    workers: list[Worker]
    chart: list[ChartBucket]
    recent: list[FinishedJob]
    failures: list[FinishedJob]
    dead_letters: list[DeadLetter]


def finished(record: activity.FinishedJob) -> FinishedJob:
    return FinishedJob(
        job_id=record.job_id,
        function=record.function,
        outcome=record.outcome,
        job_try=record.job_try,
        duration_seconds=record.duration,
        error=record.error,
        finished_at=utc(record.finished_at),
        worker=record.worker,
    )


async def read_snapshot(redis: ArqRedis, queue_name: str) -> Snapshot:
    """Read everything the dashboard shows about `queue_name`."""
    taken_at = datetime.now(UTC)
    buckets = await activity.buckets(redis, queue_name, now=taken_at.timestamp())
    counts = await activity.queue_counts(redis, queue_name, window=buckets)
    workers = await activity.worker_statuses(redis, queue_name)
    recent = await activity.recent_jobs(redis, queue_name, RECENT_SHOWN)
    failures = await activity.recent_jobs(redis, queue_name, RECENT_SHOWN, failures=True)
    letters = await dead_letters.newest(redis, queue_name, DEAD_LETTERS_SHOWN)
    return Snapshot(
        queue=queue_name,
        taken_at=taken_at,
        counts=Counts(
            waiting=counts.stats.waiting,
            deferred=counts.stats.deferred,
            running=counts.stats.running,
            dead_letters=counts.stats.dead_letters,
            workers=counts.stats.live_workers,
            last_minute=counts.last_minute,
            last_15_minutes=counts.last_window,
        ),
        workers=[
            Worker(
                host=status.beat.host,
                pid=status.beat.pid,
                started_at=datetime.fromisoformat(status.beat.started_at),
                beat_at=datetime.fromisoformat(status.beat.beat_at)
                if status.beat.beat_at
                else None,
                running=status.running,
            )
            for status in workers
        ],
        chart=[
            ChartBucket(
                start=utc(bucket.start),
                complete=bucket.complete,
                retried=bucket.retried,
                failed=bucket.failed,
                aborted=bucket.aborted,
                depth=bucket.depth,
            )
            for bucket in buckets
        ],
        recent=[finished(record) for record in recent],
        failures=[finished(record) for record in failures],
        dead_letters=letters,
    )


class Bar(BaseModel):
    """One bucket's bar in SVG user units: the tries that completed at the bottom, the others
    (retried, failed, aborted) stacked on them."""

    x: float
    complete_y: float
    complete_height: float
    others_y: float
    others_height: float


class Chart(BaseModel):
    """The chart's shapes in a WIDTH x HEIGHT box: a bar per bucket with tries, and a line
    through the depth samples, each scaled to its own maximum (given for the legend)."""

    bars: list[Bar]
    bar_width: float
    depth_points: str  # an SVG polyline's points, "x,y x,y ..."
    most_tries: int
    most_depth: int


WIDTH, HEIGHT = 900.0, 200.0


def chart(buckets: list[ChartBucket]) -> Chart:
    tries = [
        bucket.complete + bucket.retried + bucket.failed + bucket.aborted for bucket in buckets
    ]
    most_tries = max(tries, default=0)
    most_depth = max((bucket.depth or 0 for bucket in buckets), default=0)
    step = WIDTH / max(len(buckets), 1)
    bars = []
    for index, (bucket, total) in enumerate(zip(buckets, tries, strict=True)):
        if total:
            height = HEIGHT * total / most_tries
            complete = height * bucket.complete / total
            top = HEIGHT - height
            bars.append(
                Bar(
                    x=index * step,
                    complete_y=top + height - complete,
                    complete_height=complete,
                    others_y=top,
                    others_height=height - complete,
                )
            )
    points = [
        (index * step + step / 2, HEIGHT - HEIGHT * bucket.depth / max(most_depth, 1))
        for index, bucket in enumerate(buckets)
        if bucket.depth is not None
    ]
    return Chart(
        bars=bars,
        bar_width=step * 0.8,
        depth_points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        most_tries=most_tries,
        most_depth=most_depth,
    )
