# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What the queue has been doing lately: the record behind `just queue-stats` and the web API's
dashboard, where the project has one.

Workers write it; readers only read it. In Redis, next to the queue:

- `<queue>:recent`: the last RECENT_LIMIT tries that ended, on any worker, newest first, one JSON
  object each (`FinishedJob`): id, function, outcome, try, duration, wait, error, when, which
  worker. RECENT_LIMIT is 10,000 so that it holds the last 15 minutes of a queue that ends up to
  11 tries a second, and the dashboard's per-function figures (`function_stats`) come from it;
  a busier queue's figures say how far back they reach (`Window`);
- `<queue>:recent-failures`: the last FAILURES_LIMIT of the tries that did not complete (failed,
  retried, aborted), so that a failure stays in view while thousands of jobs complete after it.
  A worker writes at most RECORDED_PER_WRITE records a write (a second), the newest: above that
  many tries a second per worker the lists hold a sample, and the buckets count the tries left
  out (`unrecorded`), so that a reader knows (`Window.sampled`) and counts from the buckets;
- `<queue>:last-tries`: a hash, each function's newest try that ended (a `FinishedJob`), kept
  LAST_TRIES_SECONDS after its last write: the dashboard's cron table reads a cron job's last
  tick there, however long ago and however busy the queue (the lists keep the latest only);
- `<queue>:activity:<t>`: for the BUCKET_SECONDS starting at Unix time t, how many tries ended in
  each outcome (complete, retried, failed, aborted: job_events.py), and `depth`, how many jobs
  were due to start and waiting at the latest sample taken in it. A bucket expires once it is
  older than WINDOW_SECONDS, the span the chart shows.

A job costs no Redis command: `ActivityRecorder` hears of each try's end through job_events.py,
notes it in memory, and a background task writes what was noted at most once per WRITE_SECONDS,
in one pipeline, as heartbeat.py's RunningJobs does. Each write also samples the depth; an idle
worker samples it once per bucket, so a backlog shows on the chart even while nothing finishes.
The price: a worker killed with SIGKILL loses what it noted in its last second; a clean stop
writes it out first.
"""

import asyncio
import json
import logging
import math
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .. import job_events
from ..keys import queue_of
from ..store.depth import QueueStats, queue_stats
from ..store.heartbeat import (
    WorkerBeat,
    key_prefix,
    live_identities,
    live_workers_key,
    read_beat,
    running_prefix,
)
from ..store.records import (
    is_wrong_type,
    read_list,
    read_or_skip,
    reply_or,
    skip,
    text,
    timestamp,
    typed,
)

logger = logging.getLogger(__name__)

RECENT_LIMIT = 10_000
FAILURES_LIMIT = 100
# The most records one worker writes in one write (WRITE_SECONDS): a record costs about 10 µs to
# make and Redis a few more to keep, so recording every try cost a busy worker's drain 5 to 8 %
# (bench/tracing.py --before on 2 cores); 200 a second is below that noise.
RECORDED_PER_WRITE = 200
# How long the hash of each function's last try outlives its last write: a week and a day, so a
# weekly cron job's last tick is still there when the next one is due.
LAST_TRIES_SECONDS = 8 * 24 * 3600
BUCKET_SECONDS = 10
WINDOW_SECONDS = 15 * 60
WRITE_SECONDS = 1.0
# An error message longer than this is cut: the list is read every couple of seconds.
ERROR_CHARS = 500
OUTCOMES: tuple[job_events.Outcome, ...] = ("complete", "retried", "failed", "aborted")

# KEYS: the queue, the bucket; ARGV: now (ms), the bucket's lifetime (s). Atomic, so the count
# and the write cost one command and no round trip of their own.
SAMPLE_DEPTH = """
redis.call('HSET', KEYS[2], 'depth', redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1]))
redis.call('EXPIRE', KEYS[2], ARGV[2])
"""


def recent_key(queue_name: str) -> str:
    return f"{queue_name}:recent"


def failures_key(queue_name: str) -> str:
    return f"{queue_name}:recent-failures"


def last_tries_key(queue_name: str) -> str:
    return f"{queue_name}:last-tries"


def limit_of(key: str) -> int:
    """How many records the list `key` keeps."""
    return FAILURES_LIMIT if key.endswith(":recent-failures") else RECENT_LIMIT


def bucket_key(queue_name: str, start: int) -> str:
    return f"{queue_name}:activity:{start}"


def bucket_start(unix_seconds: float) -> int:
    """The start of the bucket that holds this moment."""
    return int(unix_seconds // BUCKET_SECONDS) * BUCKET_SECONDS


# A bucket outlives the window by two buckets: the oldest one read is never half gone.
BUCKET_LIFETIME_SECONDS = WINDOW_SECONDS + 2 * BUCKET_SECONDS


@dataclass(frozen=True)
class FinishedJob:
    """One try that ended. Times are Unix seconds; `error` is "<type>: <message>" unless it
    completed; `worker` is "<host>:<pid>"; `wait` is how long the try waited to start, from when
    the job was due (enqueued, or the time it was deferred to) to its start: None in a record
    from a version before it was kept."""

    job_id: str
    function: str
    outcome: job_events.Outcome
    job_try: int
    duration: float
    error: str | None
    finished_at: float
    worker: str
    wait: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: bytes | str) -> "FinishedJob":
        """The record `to_json` wrote; raises ValueError (records.py's Unreadable, or a decoding
        error) for anything else."""
        value = json.loads(data)
        record = cls._plain(value)
        if record is None:  # typed() reads it still, or names what is wrong with it
            record = typed(cls, value)
        timestamp(record.finished_at)
        return record

    @classmethod
    def _plain(cls, value: Any) -> "FinishedJob | None":
        """The record, if each field is plainly of its type (what workers write); else None.
        `typed` checks the same, but reads the class's type hints each time: 0.1 ms a record,
        a second for the dashboard's 10,000 at every refresh."""
        if type(value) is not dict:
            return None
        try:
            job_id, function, outcome = value["job_id"], value["function"], value["outcome"]
            job_try, duration, error = value["job_try"], value["duration"], value["error"]
            finished_at, worker = value["finished_at"], value["worker"]
        except KeyError:
            return None
        wait = value.get("wait")
        if not (
            type(job_id) is str
            and type(function) is str
            and type(worker) is str
            and type(job_try) is int
            and (error is None or type(error) is str)
            and type(outcome) is str
            and outcome in OUTCOMES
            and all(
                type(number) in (int, float) and math.isfinite(number)
                for number in (duration, finished_at, 0.0 if wait is None else wait)
            )
        ):
            return None
        return cls(job_id, function, outcome, job_try, duration, error, finished_at, worker, wait)


@dataclass(frozen=True)
class Bucket:
    """The tries that ended in the BUCKET_SECONDS from `start` (Unix seconds), by outcome, and
    the latest depth sample in it (None: no worker took one); `unrecorded` of those tries are
    not in the recent list (RECORDED_PER_WRITE)."""

    start: int
    complete: int
    retried: int
    failed: int
    aborted: int
    depth: int | None
    unrecorded: int = 0


class ActivityRecorder:
    """This worker's part of the record: notes each try's end, writes them in the background.

    `start()` from the worker's startup, `stop()` from its shutdown (tasks.py). Nothing a job
    does waits for Redis here; a failed write is logged and its notes go into the next one.
    """

    def __init__(self, redis: Redis, queue_name: str, takes_bare_ids: bool = True) -> None:
        self.redis = redis
        self.queue_name = queue_name
        # A worker serving several queues has a recorder per queue, each noting its queue's
        # jobs (their ids say which, keys.py); one of them notes a plain arq client's jobs.
        self.takes_bare_ids = takes_bare_ids
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._finished: deque[job_events.JobFinished] = deque(maxlen=RECORDED_PER_WRITE)
        self._counts: Counter[tuple[int, job_events.Outcome]] = Counter()
        # Tries noted but left out of the next write (the deque was full), by bucket.
        self._unrecorded: Counter[int] = Counter()
        # Each function's newest try since the last write: for the hash of last tries.
        self._last: dict[str, job_events.JobFinished] = {}
        self._sampled = -1  # the bucket of the latest depth sample
        self._stop_listening: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop_listening = job_events.listen(self.heard)
        self._task = asyncio.create_task(self._write_forever(), name="activity")

    async def stop(self) -> None:
        """Stop listening and write what is left."""
        if self._stop_listening is not None:
            self._stop_listening()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.write()
        except (RedisError, OSError) as error:
            logger.warning("could not write the last of the activity record: %s", error)

    def heard(self, event: job_events.JobStarted | job_events.JobFinished) -> None:
        """The job_events listener: in the job's own task, so it only notes."""
        if isinstance(event, job_events.JobFinished):
            queue_name = queue_of(event.job_id)
            if queue_name != self.queue_name and not (queue_name is None and self.takes_bare_ids):
                return
            if len(self._finished) == RECORDED_PER_WRITE:  # the oldest note makes room
                self._unrecorded[bucket_start(self._finished[0].finished_at)] += 1
            self._finished.append(event)
            self._counts[bucket_start(event.finished_at), event.outcome] += 1
            last = self._last.get(event.function)
            if last is None or last.finished_at <= event.finished_at:
                self._last[event.function] = event

    async def write(self) -> None:
        """Send what was noted since the last write, and a depth sample, in one pipeline."""
        now = time.time()
        bucket = bucket_start(now)
        if not self._finished and bucket == self._sampled:
            return
        finished, self._finished = list(self._finished), deque(maxlen=RECORDED_PER_WRITE)
        counts, self._counts = self._counts, Counter()
        unrecorded, self._unrecorded = self._unrecorded, Counter()
        last, self._last = self._last, {}
        try:
            await self._send(finished, counts, unrecorded, last, bucket, now)
        except (RedisError, OSError):
            # Older notes first, so that the newest are the ones kept when the deque is full.
            kept = [*finished, *self._finished]
            for event in kept[:-RECORDED_PER_WRITE]:
                unrecorded[bucket_start(event.finished_at)] += 1
            self._finished = deque(kept, maxlen=RECORDED_PER_WRITE)
            self._counts.update(counts)
            self._unrecorded.update(unrecorded)
            self._last = {**last, **self._last}  # a note made meanwhile is the newer
            raise
        self._sampled = bucket

    async def _send(
        self,
        finished: list[job_events.JobFinished],
        counts: Counter[tuple[int, job_events.Outcome]],
        unrecorded: Counter[int],
        last: dict[str, job_events.JobFinished],
        bucket: int,
        now: float,
    ) -> None:
        records = [self._record(event) for event in finished]
        failures = [record for record in records if record.outcome != "complete"]
        lists = {recent_key(self.queue_name): records, failures_key(self.queue_name): failures}
        async with self.redis.pipeline(transaction=False) as pipe:
            # LPUSH puts each record in front of the one before it: newest first.
            for key, listed in lists.items():
                if listed:
                    pipe.lpush(key, *(record.to_json() for record in listed))
                    pipe.ltrim(key, 0, limit_of(key) - 1)
            for (start, outcome), tries in counts.items():
                pipe.hincrby(bucket_key(self.queue_name, start), outcome, tries)
            for start, tries in unrecorded.items():
                pipe.hincrby(bucket_key(self.queue_name, start), "unrecorded", tries)
            if last:
                newest = {name: self._record(event).to_json() for name, event in last.items()}
                pipe.hset(last_tries_key(self.queue_name), mapping=newest)
                pipe.expire(last_tries_key(self.queue_name), LAST_TRIES_SECONDS)
            for start in {start for start, _ in counts}:
                pipe.expire(bucket_key(self.queue_name, start), BUCKET_LIFETIME_SECONDS)
            pipe.eval(
                SAMPLE_DEPTH,
                2,
                self.queue_name,
                bucket_key(self.queue_name, bucket),
                str(int(now * 1000)),
                str(BUCKET_LIFETIME_SECONDS),
            )
            await pipe.execute()

    def _record(self, event: job_events.JobFinished) -> FinishedJob:
        # From when the try was due (a deferred job's time, a retry's backoff, a cron tick),
        # not from the enqueue: the wait is the queue's, not the one the caller asked for.
        due = event.enqueued_at if event.due_at is None else event.due_at
        return FinishedJob(
            job_id=event.job_id,
            function=event.function,
            outcome=event.outcome,
            job_try=event.job_try,
            duration=round(event.duration_seconds, 6),
            error=None if event.error is None else event.error[:ERROR_CHARS],
            finished_at=event.finished_at,
            worker=self.worker,
            wait=round(max(0.0, event.started_at - due), 6),
        )

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(WRITE_SECONDS)
            try:
                await self.write()
            except (RedisError, OSError) as error:
                logger.warning("could not write the activity record: %s", error)


async def recent_jobs(
    redis: Redis, queue_name: str, limit: int = RECENT_LIMIT, *, failures: bool = False
) -> list[FinishedJob]:
    """The latest tries that ended (with `failures`, that did not complete), newest first, at
    most `limit` (RECENT_LIMIT are kept, FAILURES_LIMIT failures). Each worker adds its own in batches: the list is in
    the order of the writes, and sorted here by when each try ended."""
    key = failures_key(queue_name) if failures else recent_key(queue_name)
    # One that cannot be read is skipped, and the next read in its place (records.py).
    records = [
        record for _, record in await read_list(redis, "recent", key, FinishedJob.from_json, limit)
    ]
    return sorted(records, key=lambda record: record.finished_at, reverse=True)


async def last_tries(redis: Redis, queue_name: str) -> dict[str, FinishedJob]:
    """Each function's newest try that ended on `queue_name` (the last write of it, if workers
    race), by function name; a record that cannot be read is skipped (records.py)."""
    key = last_tries_key(queue_name)
    try:
        fields = await redis.hgetall(key)  # type: ignore[misc]  # redis-py's union
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        skip("recent", key, error)
        return {}
    tries = {}
    for record in fields.values():
        read = read_or_skip("recent", key, FinishedJob.from_json, record)
        if read is not None:
            tries[read.function] = read
    return tries


@dataclass(frozen=True)
class Window:
    """What a figure read from the recent list covers: the tries that ended from `since` to
    `until` (Unix seconds), `jobs` of them. `whole` is False when the list ran out first (it
    keeps RECENT_LIMIT): the figures then cover only the last `jobs` tries, from `since`.
    `sampled` is True when workers left some of those tries out of the list (more than
    RECORDED_PER_WRITE a second each): the `jobs` are a sample, the buckets count them all."""

    since: float
    until: float
    jobs: int
    whole: bool
    sampled: bool = False


def window_of(
    records: list[FinishedJob], now: float, seconds: float, window: list[Bucket]
) -> tuple[Window, list[FinishedJob]]:
    """The records (newest first, as `recent_jobs` reads them) of the `seconds` before `now`, and
    what they cover; `window` is the buckets read with them, which say whether any try of those
    seconds was left out of the list."""
    since = now - seconds
    inside = [record for record in records if record.finished_at >= since]
    # A list shorter than it keeps holds every try there was; a full one covers the window only
    # if one of its records is older than the window.
    whole = len(records) < RECENT_LIMIT or len(inside) < len(records)
    start = since if whole or not inside else inside[-1].finished_at
    sampled = any(b.unrecorded for b in window if b.start + BUCKET_SECONDS > start)
    return Window(since=start, until=now, jobs=len(inside), whole=whole, sampled=sampled), inside


@dataclass(frozen=True)
class FunctionStats:
    """One function's tries that ended in a window: how many (`runs`), how many failed for good,
    were retried or aborted, and the 50th and 95th percentiles of their run time and the 95th of
    their wait to start (seconds; `wait_p95` None when no record has a wait)."""

    function: str
    runs: int
    failed: int
    retried: int
    aborted: int
    duration_p50: float
    duration_p95: float
    wait_p95: float | None


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 for the median) of non-empty `values`: a
    value that was measured, never one made up between two."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def function_stats(records: list[FinishedJob]) -> list[FunctionStats]:
    """Per function, by name, the figures of these tries (`window_of`'s)."""
    by_function: dict[str, list[FinishedJob]] = {}
    for record in records:
        by_function.setdefault(record.function, []).append(record)
    stats = []
    for function, tries in sorted(by_function.items()):
        outcomes = Counter(record.outcome for record in tries)
        durations = [record.duration for record in tries]
        waits = [record.wait for record in tries if record.wait is not None]
        stats.append(
            FunctionStats(
                function=function,
                runs=len(tries),
                failed=outcomes["failed"],
                retried=outcomes["retried"],
                aborted=outcomes["aborted"],
                duration_p50=percentile(durations, 0.5),
                duration_p95=percentile(durations, 0.95),
                wait_p95=percentile(waits, 0.95) if waits else None,
            )
        )
    return stats


async def buckets(redis: Redis, queue_name: str, now: float | None = None) -> list[Bucket]:
    """The buckets of the last WINDOW_SECONDS, oldest first, the one holding `now` last; a
    bucket nobody wrote counts zero tries and no depth."""
    last = bucket_start(time.time() if now is None else now)
    starts = range(last - WINDOW_SECONDS + BUCKET_SECONDS, last + 1, BUCKET_SECONDS)
    async with redis.pipeline(transaction=False) as pipe:
        for start in starts:
            pipe.hgetall(bucket_key(queue_name, start))
        replies = await pipe.execute(raise_on_error=False)
    return [
        read_bucket(queue_name, start, reply_or("bucket", bucket_key(queue_name, start), reply, {}))
        for start, reply in zip(starts, replies, strict=True)
    ]


def read_bucket(queue_name: str, start: int, counts: dict[bytes, bytes]) -> Bucket:
    """A bucket from its hash; a count that is not a whole number of tries is read as none (and
    skipped, records.py), a depth as unknown."""
    numbers: dict[str, int | None] = {}
    for name in (*OUTCOMES, "depth", "unrecorded"):
        value = counts.get(name.encode())
        if value is None:
            numbers[name] = None
            continue
        try:
            number = int(value)
            if number < 0:
                raise ValueError(f"{number} is below 0")
        except ValueError as error:  # also UnicodeDecodeError
            skip("bucket", bucket_key(queue_name, start), error, value)
            number = None
        numbers[name] = number
    return Bucket(
        start=start,
        complete=numbers["complete"] or 0,
        retried=numbers["retried"] or 0,
        failed=numbers["failed"] or 0,
        aborted=numbers["aborted"] or 0,
        depth=numbers["depth"],
        unrecorded=numbers["unrecorded"] or 0,
    )


@dataclass(frozen=True)
class WorkerStatus:
    """A live worker (heartbeat.py) and the ids of the jobs it runs now."""

    beat: WorkerBeat
    running: list[str]


async def worker_statuses(redis: Redis, queue_name: str) -> list[WorkerStatus]:
    """The live workers on `queue_name`, longest running first, each with its running jobs, read
    from its running-list (at most heartbeat.py's GATHER_SECONDS behind). Two round trips: the
    live workers' sorted set, then each one's heartbeat and running-list."""
    now_ms = int(time.time() * 1000)
    live = live_workers_key(queue_name)
    try:
        members = await redis.zrangebyscore(live, now_ms, "+inf")
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        skip("live-workers", live, error)
        return []
    identities = live_identities(queue_name, members)
    if not identities:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for name in identities:
            pipe.get(key_prefix(queue_name) + name)
            pipe.smembers(running_prefix(queue_name) + name)
        replies = await pipe.execute(raise_on_error=False)
    # A heartbeat or running-list that cannot be read is skipped (records.py): its worker
    # without the one, its job without the other.
    statuses = []
    for name, payload, running in zip(identities, replies[::2], replies[1::2], strict=True):
        beat_key, running_key = key_prefix(queue_name) + name, running_prefix(queue_name) + name
        payload = reply_or("heartbeat", beat_key, payload, None)
        beat = None if payload is None else read_or_skip("heartbeat", beat_key, read_beat, payload)
        if beat is None:  # stopped since its last beat, or unreadable
            continue
        job_ids = []
        for job_id in reply_or("running", running_key, running, set()):
            try:
                job_ids.append(text(job_id))
            except UnicodeDecodeError as error:
                skip("running", running_key, error, job_id)
        statuses.append(WorkerStatus(beat=beat, running=sorted(job_ids)))
    return sorted(statuses, key=lambda status: status.beat.started_at)


@dataclass(frozen=True)
class QueueCounts:
    """The queue at a glance: its jobs, dead letters and live workers (depth.py's `queue_stats`),
    and the tries that ended in the last minute and in the last WINDOW_SECONDS, by outcome.

    `last_minute` counts the 60 s that `minute` spans: the 60 s to now, from the recent list,
    when the list holds every try of them; else (more than RECENT_LIMIT tries a minute, or some
    left out: `Window.sampled`) the last six whole buckets, the 60 s to the start of the current
    one."""

    stats: QueueStats
    last_minute: dict[job_events.Outcome, int]
    minute: Window
    last_window: dict[job_events.Outcome, int]


async def queue_counts(
    redis: Redis,
    queue_name: str,
    window: list[Bucket] | None = None,
    recent: list[FinishedJob] | None = None,
    now: float | None = None,
) -> QueueCounts:
    """Count it all; pass the `buckets()` and `recent_jobs()` already read, if any (for the same
    `now`), to read them only once."""
    now = time.time() if now is None else now
    window = await buckets(redis, queue_name, now) if window is None else window
    recent = await recent_jobs(redis, queue_name) if recent is None else recent
    minute, inside = window_of(recent, now, 60, window)
    if minute.whole and not minute.sampled:
        last_minute = Counter(record.outcome for record in inside)
    else:
        # Six whole buckets: never the one still filling, which made the count jump.
        whole = window[-1 - 60 // BUCKET_SECONDS : -1]
        last_minute = Counter(
            {outcome: sum(getattr(b, outcome) for b in whole) for outcome in OUTCOMES}
        )
        until = window[-1].start
        minute = Window(since=until - 60, until=until, jobs=sum(last_minute.values()), whole=True)
    return QueueCounts(
        stats=await queue_stats(redis, queue_name),
        last_minute={outcome: last_minute[outcome] for outcome in OUTCOMES},
        minute=minute,
        last_window={outcome: sum(getattr(b, outcome) for b in window) for outcome in OUTCOMES},
    )
