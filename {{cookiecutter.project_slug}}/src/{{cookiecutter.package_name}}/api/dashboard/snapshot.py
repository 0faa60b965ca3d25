# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What the dashboard shows, read in one go: the page renders it, `/dashboard/snapshot.json`
serves it as is.

Everything comes from the infrastructure's own readers: the counts (depth.py's `queue_stats`),
the heartbeats and running-lists (heartbeat.py), the running jobs' progress (progress.py), the
dead letters (dead_letters.py) and the workers' activity record (activity.py). About 100 Redis
commands in about 10 round trips, most of them the chart's 90 buckets in one pipeline, and no
SCAN: nothing a refresh every 2 s would notice.
"""

from datetime import UTC, datetime
from typing import Literal

from arq.connections import ArqRedis
from pydantic import BaseModel, ConfigDict, Field

from ...infrastructure.ops import activity
from ...infrastructure.store import dead_letters, progress
from ...infrastructure.store.dead_letters import DeadLetter
from ..jobs import ProgressView

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
    # The running jobs that reported progress, by id.
    progress: dict[str, ProgressView] = {}


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
    running = [job_id for status in workers for job_id in status.running]
    reports = await progress.read_many(redis, queue_name, running)
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
                progress={
                    job_id: ProgressView.of(report)
                    for job_id in status.running
                    if (report := reports.get(job_id)) is not None
                },
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
    (retried, failed, aborted) stacked on them; `title` is its tooltip."""

    x: float
    complete_y: float
    complete_height: float
    others_y: float
    others_height: float
    title: str


class Tick(BaseModel):
    """A mark on an axis: its label, where it is as a percentage of the chart's width (time) or
    height from the top (counts), for the labels beside the chart, and the same in SVG user
    units, for the grid line inside it."""

    label: str
    percent: float
    user: float


class Chart(BaseModel):
    """The chart's shapes in a WIDTH x HEIGHT box: a bar per bucket with tries, scaled to the
    left axis (`tries_ticks`, tries ended per bucket), and a line through the depth samples,
    scaled to the right axis (`depth_ticks`, jobs waiting); `time_ticks` mark the clock (UTC)."""

    bars: list[Bar]
    bar_width: float
    depth_points: str  # an SVG polyline's points, "x,y x,y ..."
    tries_ticks: list[Tick]
    depth_ticks: list[Tick]
    time_ticks: list[Tick]


WIDTH, HEIGHT = 900.0, 200.0
# At most this many steps up a count axis, each 1, 2 or 5 times a power of ten.
STEPS = 5
# A time label every this many seconds, on the clock's round minutes.
TIME_TICK_SECONDS = 180


def count_axis(most: int) -> list[int]:
    """The values marked on a count axis that reaches at least `most`: 0 and round steps
    (0, 5, 10, 15 for 14; 0, 100, ..., 500 for 411; 0, 1 for 0)."""
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * STEPS >= most:
                return [step * index for index in range(max(1, -(-most // step)) + 1)]
        magnitude *= 10


def count_ticks(values: list[int]) -> list[Tick]:
    top = values[-1]
    return [
        Tick(
            label=str(value),
            percent=round(100 * (1 - value / top), 2),
            user=round(HEIGHT * (1 - value / top), 2),
        )
        for value in values
    ]


def time_ticks(buckets: list[ChartBucket]) -> list[Tick]:
    """HH:MM at every TIME_TICK_SECONDS of the clock the buckets span, its right edge left out:
    always the same number of labels (5 in 15 minutes), wherever the window starts."""
    if not buckets:
        return []
    start = buckets[0].start.timestamp()
    span = len(buckets) * activity.BUCKET_SECONDS
    first = -(-int(start) // TIME_TICK_SECONDS) * TIME_TICK_SECONDS
    return [
        Tick(
            label=utc(moment).strftime("%H:%M"),
            percent=round(100 * (moment - start) / span, 2),
            user=round(WIDTH * (moment - start) / span, 2),
        )
        for moment in range(first, int(start + span), TIME_TICK_SECONDS)
    ]


def bar_title(bucket: ChartBucket) -> str:
    until = utc(bucket.start.timestamp() + activity.BUCKET_SECONDS)
    others = bucket.retried + bucket.failed + bucket.aborted
    return (
        f"{bucket.start:%H:%M:%S}-{until:%H:%M:%S} UTC: {bucket.complete} completed, "
        f"{others} retried, failed or aborted"
    )


def chart(buckets: list[ChartBucket]) -> Chart:
    tries = [
        bucket.complete + bucket.retried + bucket.failed + bucket.aborted for bucket in buckets
    ]
    tries_axis = count_axis(max(tries, default=0))
    depth_axis = count_axis(max((bucket.depth or 0 for bucket in buckets), default=0))
    step = WIDTH / max(len(buckets), 1)
    bars = []
    for index, (bucket, total) in enumerate(zip(buckets, tries, strict=True)):
        if total:
            height = HEIGHT * total / tries_axis[-1]
            complete = height * bucket.complete / total
            top = HEIGHT - height
            bars.append(
                Bar(
                    x=round(index * step + step * 0.1, 2),
                    complete_y=round(top + height - complete, 2),
                    complete_height=round(complete, 2),
                    others_y=round(top, 2),
                    others_height=round(height - complete, 2),
                    title=bar_title(bucket),
                )
            )
    points = [
        (index * step + step / 2, HEIGHT - HEIGHT * bucket.depth / depth_axis[-1])
        for index, bucket in enumerate(buckets)
        if bucket.depth is not None
    ]
    return Chart(
        bars=bars,
        bar_width=round(step * 0.8, 2),
        depth_points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        tries_ticks=count_ticks(tries_axis),
        depth_ticks=count_ticks(depth_axis),
        time_ticks=time_ticks(buckets),
    )
