# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What the dashboard shows, read in one go: the page renders it, `/dashboard/snapshot.json`
serves it as is.

Everything comes from the infrastructure's own readers: the counts (depth.py's `queue_stats`),
the heartbeats and running-lists (heartbeat.py), the running jobs' progress (progress.py), the
dead letters (dead_letters.py), the workers' activity record (activity.py) and the cron jobs
the project declares (registry.py). About 100 Redis commands in about 10 round trips, most of
them the chart's 90 buckets in one pipeline, and no SCAN. The largest read is the recent list
(up to activity.RECENT_LIMIT records, about 2 MB when full), which the per-function figures, the
last minute's counts and the filtered tables come from: one read per refresh (bench/dashboard.py
times it). The cron jobs' last ticks come from the hash of each function's last try.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from arq.connections import ArqRedis
from arq.cron import next_cron
from pydantic import BaseModel, ConfigDict, Field

from ...config import get_settings
from ...infrastructure import registry
from ...infrastructure.client.enqueue import function_rerun_blocker
from ...infrastructure.ops import activity
from ...infrastructure.store import dead_letters, progress
from ...infrastructure.store.dead_letters import DeadLetter
from ...infrastructure.store.serialization import json_view
from ..jobs import ProgressView

# How many of each list the page shows (the JSON too): enough to see, little to send.
RECENT_SHOWN = 12
DEAD_LETTERS_SHOWN = 10
Outcome = Literal["complete", "retried", "failed", "aborted"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# arq's `cron()` keywords that say when it ticks (`next_cron`'s); the others say how it runs.
SCHEDULE_FIELDS = ("month", "day", "weekday", "hour", "minute", "second", "microsecond")


def utc(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


class Paused(BaseModel):
    """Who paused the queue (store/pause.py), and since when (None: a pause written by hand)."""

    by: str
    since: datetime | None


class Counts(BaseModel):
    """The queue at a glance. `last_minute` and `last_15_minutes` count the tries that ended,
    by outcome; `last_minute` in the 60 s from `last_minute_since` (the 60 s to now, unless
    the queue ends more tries a minute than the recent list keeps: activity.py's
    `queue_counts`)."""

    waiting: int
    deferred: int
    running: int
    dead_letters: int
    workers: int
    last_minute: dict[Outcome, int]
    last_minute_since: datetime
    last_15_minutes: dict[Outcome, int]
    # While the queue is paused; None while workers take its jobs.
    paused: Paused | None = None


class Span(BaseModel):
    """What the per-function figures cover: the tries that ended from `since` to `until`,
    `jobs` of them. `whole` is False when the recent list ran out before 15 minutes: the
    figures are then of the last `jobs` tries only. `sampled`: workers ended more tries than
    they record (activity.py's RECORDED_PER_WRITE a second each), so the figures are of a sample
    of `jobs` of the `ended` tries the chart counts in these 15 minutes."""

    since: datetime
    until: datetime
    jobs: int
    whole: bool
    sampled: bool = False
    ended: int = 0


class FunctionFigures(BaseModel):
    """One function's tries that ended in the span: how many, how many failed for good, were
    retried or aborted, and percentiles of their run time and of their wait to start (from due
    to started; None when no record has one), in seconds."""

    function: str
    runs: int
    failed: int
    retried: int
    aborted: int
    duration_p50_seconds: float
    duration_p95_seconds: float
    wait_p95_seconds: float | None


class CronEntry(BaseModel):
    """A declared cron job: its name (its ticks' function), its schedule (arq's `cron()`
    keywords), its next tick (the worker's clock: the system's time zone), and its latest tick
    that ended in the recent list, with its outcome (None: none in view)."""

    name: str
    queue: str
    schedule: str
    next_run: datetime | None
    last_run: datetime | None
    last_outcome: Outcome | None


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
    # From when it was due to when this try started; None in a record from an older version.
    wait_seconds: float | None = None
    error: str | None
    finished_at: datetime
    worker: str

    @property
    def retryable(self) -> bool:
        """Whether the page offers to queue it again: it failed or was aborted, and its function
        can run again (enqueue.py's `function_rerun_blocker`; the retry checks its arguments)."""
        return (
            self.outcome in ("failed", "aborted") and function_rerun_blocker(self.function) is None
        )


class Filters(BaseModel):
    """What the recent tables show: the tries of `function` (None: all) that ended in
    `outcome` (None: any). `functions` lists the names to pick from."""

    function: str | None
    outcome: Outcome | None
    functions: list[str]


class Snapshot(BaseModel):
    """The whole dashboard. Lists are newest first, but `chart`, oldest first (90 buckets of
    10 s: the last 15 minutes), `workers`, longest running first, and `functions` and `cron`,
    by name."""

    queue: str
    taken_at: datetime
    counts: Counts
    workers: list[Worker]
    chart: list[ChartBucket]
    span: Span
    functions: list[FunctionFigures]
    cron: list[CronEntry]
    filters: Filters
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
        wait_seconds=record.wait,
        error=record.error,
        finished_at=utc(record.finished_at),
        worker=record.worker,
    )


@dataclass(frozen=True)
class Wanted:
    """The recent tables' filter as the page's query gives it: a function's name and an
    outcome, each None for all."""

    function: str | None = None
    outcome: Outcome | None = None

    def admits(self, record: activity.FinishedJob) -> bool:
        return (self.function is None or record.function == self.function) and (
            self.outcome is None or record.outcome == self.outcome
        )


def schedule_text(schedule: dict[str, Any]) -> str:
    """arq's `cron()` keywords as written: `second=0`, `minute={0, 30}, hour=9`."""
    shown = []
    for name, value in schedule.items():
        if isinstance(value, set | frozenset):
            value = "{" + ", ".join(str(each) for each in sorted(value)) + "}"
        shown.append(f"{name}={value}")
    return ", ".join(shown)


def cron_entries(
    queue_name: str, last: dict[str, activity.FinishedJob], now: datetime
) -> list[CronEntry]:
    """The cron jobs that tick on `queue_name`, with their next tick after `now` (computed as
    arq's `CronJob` does, in the system's time zone the worker uses by default) and their latest
    tick that ended (`last`: activity.py's `last_tries`, each function's newest)."""
    keys = get_settings().queue_keys
    entries = []
    for spec in registry.declared():
        if spec.schedule is None or keys.get(spec.queue) != queue_name:
            continue
        when = {name: value for name, value in spec.schedule.items() if name in SCHEDULE_FIELDS}
        local_now = now.astimezone()
        try:
            next_run: datetime | None = next_cron(local_now, **when).astimezone(UTC)
        except ValueError:  # a schedule that never matches (day=31, month=2)
            next_run = None
        tick = last.get(spec.name)
        entries.append(
            CronEntry(
                name=spec.name,
                queue=spec.queue,
                schedule=schedule_text(spec.schedule),
                next_run=next_run,
                last_run=None if tick is None else utc(tick.finished_at),
                last_outcome=None if tick is None else tick.outcome,
            )
        )
    return sorted(entries, key=lambda entry: entry.name)


async def read_snapshot(redis: ArqRedis, queue_name: str, wanted: Wanted = Wanted()) -> Snapshot:
    """Read everything the dashboard shows about `queue_name`, its recent tables filtered as
    `wanted` says."""
    taken_at = datetime.now(UTC)
    now = taken_at.timestamp()
    # The workers before the counts: a worker listed is then counted too, unless it stopped.
    workers = await activity.worker_statuses(redis, queue_name)
    buckets = await activity.buckets(redis, queue_name, now=now)
    # The whole recent list: the figures, the counts of the last minute, the tables.
    everything = await activity.recent_jobs(redis, queue_name)
    counts = await activity.queue_counts(
        redis, queue_name, window=buckets, recent=everything, now=now
    )
    span, inside = activity.window_of(everything, now, activity.WINDOW_SECONDS, buckets)
    recent = [record for record in everything if wanted.admits(record)][:RECENT_SHOWN]
    failures = await activity.recent_jobs(redis, queue_name, failures=True)
    failures = [record for record in failures if wanted.admits(record)][:RECENT_SHOWN]
    letters = [
        replace(letter, args=json_view(letter.args), kwargs=json_view(letter.kwargs))
        for letter in await dead_letters.newest(redis, queue_name, DEAD_LETTERS_SHOWN)
    ]
    running = [job_id for status in workers for job_id in status.running]
    reports = await progress.read_many(redis, queue_name, running)
    figures = activity.function_stats(inside)
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
            last_minute_since=utc(counts.minute.since),
            last_15_minutes=counts.last_window,
            paused=None
            if (pause := counts.stats.paused) is None
            else Paused(by=pause.by, since=utc(pause.at) if pause.at else None),
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
        span=Span(
            since=utc(span.since),
            until=utc(span.until),
            jobs=span.jobs,
            whole=span.whole,
            sampled=span.sampled,
            ended=sum(
                b.complete + b.retried + b.failed + b.aborted
                for b in buckets
                if b.start + activity.BUCKET_SECONDS > span.since
            ),
        ),
        functions=[
            FunctionFigures(
                function=each.function,
                runs=each.runs,
                failed=each.failed,
                retried=each.retried,
                aborted=each.aborted,
                duration_p50_seconds=each.duration_p50,
                duration_p95_seconds=each.duration_p95,
                wait_p95_seconds=each.wait_p95,
            )
            for each in figures
        ],
        cron=cron_entries(queue_name, await activity.last_tries(redis, queue_name), taken_at),
        filters=Filters(
            function=wanted.function,
            outcome=wanted.outcome,
            functions=sorted(
                {spec.name for spec in registry.declared()}
                | {record.function for record in everything}
            ),
        ),
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
