# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""How many jobs a queue holds, counted apart: waiting, deferred and running.

arq keeps every job in one sorted set, scored by when it may start, until it finishes: running
jobs stay in it, and so do deferred ones (`_defer_by`, cron ticks ahead, retries in backoff). A
plain ZCARD counts all three as "waiting". Here the set is split at now, and the running jobs are
those the workers list as running (heartbeat.py), found in either part: a job the project's
worker claimed is scored when its in-progress mark expires (worker.py), one an `arq` worker runs
keeps its score. "Running" includes the few jobs a worker has read ahead to start as soon as a
slot frees (worker.py's READ_AHEAD_SHARE): they have left the queue for that worker.

`queue_depth` finds the running-lists with SCAN, which walks the whole keyspace. `queue_stats`,
read at every metrics scrape and by the dashboard, adds dead letters and live workers and finds
the running-lists through the live workers' sorted set instead (heartbeat.py): its cost grows
with the live workers and their running jobs, never with the queue's length (ZCOUNT: O(log N))
or the number of keys in Redis. Three round trips: the counts and the pause (pause.py), then the running ids (SUNION of
the live workers' lists), then their scores (ZMSCORE); none when no worker is alive.
`queue_stats_of` reads several queues at once (the metrics: every queue of QUEUES), each
queue's commands in a pipeline of their own, all of them concurrently.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .dead_letters import dead_letter_key
from .heartbeat import (
    KEYS_PER_SCAN,
    escape_glob,
    live_identities,
    live_workers_key,
    running_job_ids,
    running_prefix,
    text_or_repr,
)
from .pause import UNREADABLE, Pause, paused_key, read_pause
from .records import is_wrong_type, reply_or


@dataclass(frozen=True)
class QueueDepth:
    """Jobs on one queue: `waiting` may start now, `deferred` start later, `running` have started."""

    waiting: int
    deferred: int
    running: int


async def queue_depth(redis: Redis, queue_name: str) -> QueueDepth:
    """Count the jobs on `queue_name`. Running jobs are listed by their worker within 10 ms of
    their start (heartbeat.py's GATHER_SECONDS): a job younger than that counts as deferred."""
    running_lists = [
        key
        async for key in redis.scan_iter(
            match=escape_glob(running_prefix(queue_name)) + "*", count=KEYS_PER_SCAN
        )
    ]
    now_ms = timestamp_ms()  # rounded as the scores were written: a job due now is due
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(queue_name, "-inf", now_ms)
        pipe.zcount(queue_name, f"({now_ms}", "+inf")
        for key in running_lists:
            pipe.smembers(key)
        replies = await pipe.execute(raise_on_error=False)
    due, later = (reply_or("queue", queue_name, reply, 0) for reply in replies[:2])
    listed: list[set[bytes]] = [
        reply_or("running", text_or_repr(key), reply, set())
        for key, reply in zip(running_lists, replies[2:], strict=True)
    ]
    running_ids = sorted(set().union(*listed))
    scores = await queue_scores(redis, queue_name, running_ids)
    # A listed job no longer in the queue has just finished: it is none of the three.
    running_due = sum(1 for score in scores if score is not None and score <= now_ms)
    running_later = sum(1 for score in scores if score is not None and score > now_ms)
    return QueueDepth(
        waiting=max(0, due - running_due),
        deferred=max(0, later - running_later),
        running=running_due + running_later,
    )


@dataclass(frozen=True)
class QueueStats:
    """A snapshot of one queue: jobs `waiting` to start, `deferred` to later, `running`; records
    in its dead-letter list; workers with a current heartbeat; its pause, None while it is not
    paused (pause.py)."""

    waiting: int
    deferred: int
    running: int
    dead_letters: int
    live_workers: int
    paused: Pause | None = None

    @property
    def is_paused(self) -> int:
        """1 while the queue is paused, else 0 (the `arq_queue_paused` gauge)."""
        return 0 if self.paused is None else 1


async def queue_stats(redis: Redis, queue_name: str) -> QueueStats:
    """Count `queue_name`'s jobs, dead letters and live workers, and read its pause, without a
    SCAN.

    Running jobs are those the live workers list (within 10 ms of their start, as for
    `queue_depth`); a worker that died stops counting, and so do its jobs, once its heartbeat
    has expired. Raises redis-py's errors when Redis is out of reach.
    """
    now_ms = timestamp_ms()  # rounded as the scores were written: a job due now is due
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(queue_name, "-inf", now_ms)
        pipe.zcount(queue_name, f"({now_ms}", "+inf")
        pipe.llen(dead_letter_key(queue_name))
        pipe.zrangebyscore(live_workers_key(queue_name), now_ms, "+inf")
        pipe.get(paused_key(queue_name))
        replies = await pipe.execute(raise_on_error=False)
    # A key of another type counts nothing (records.py): the others are still counted.
    due, later = (reply_or("queue", queue_name, reply, 0) for reply in replies[:2])
    dead_letters = reply_or("dead-letter", dead_letter_key(queue_name), replies[2], 0)
    workers = live_identities(
        queue_name, reply_or("live-workers", live_workers_key(queue_name), replies[3], [])
    )
    running_due = running_later = 0
    if workers:
        lists = [running_prefix(queue_name) + name for name in workers]
        running_ids = sorted(await running_job_ids(redis, lists))
        scores = await queue_scores(redis, queue_name, running_ids)
        # A listed job no longer in the queue has just finished: it is none of the three.
        running_due = sum(1 for score in scores if score is not None and score <= now_ms)
        running_later = sum(1 for score in scores if score is not None and score > now_ms)
    return QueueStats(
        waiting=max(0, due - running_due),
        deferred=max(0, later - running_later),
        running=running_due + running_later,
        dead_letters=dead_letters,
        live_workers=len(workers),
        paused=read_pause(reply_or("pause", paused_key(queue_name), replies[4], UNREADABLE)),
    )


async def queue_stats_of(redis: Redis, queue_names: Sequence[str]) -> dict[str, QueueStats]:
    """`queue_stats` of each queue (by its key), read concurrently, in the order given."""
    stats = await asyncio.gather(*(queue_stats(redis, name) for name in queue_names))
    return dict(zip(queue_names, stats, strict=True))


async def queue_scores(redis: Redis, queue_name: str, job_ids: list[bytes]) -> list[float | None]:
    """Each job's score in the queue (None: not in it); none if the queue's key is of another
    type (records.py counts that where the queue is counted)."""
    if not job_ids:
        return []
    try:
        scores: list[float | None] = await redis.zmscore(queue_name, job_ids)  # type: ignore[arg-type]
        return scores
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        return [None] * len(job_ids)
