"""How many jobs a queue holds, counted apart: waiting, deferred and running.

arq keeps every job in one sorted set, scored by when it may start, until it finishes: running
jobs stay in it, and so do deferred ones (`_defer_by`, cron ticks ahead, retries in backoff). A
plain ZCARD counts all three as "waiting". Here the set is split at now, and the running jobs are
those the workers list as running (heartbeat.py), found in either part: a job the project's
worker claimed is scored when its in-progress mark expires (worker.py), one an `arq` worker runs
keeps its score.
"""

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from .heartbeat import escape_glob, running_prefix


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
        key async for key in redis.scan_iter(match=escape_glob(running_prefix(queue_name)) + "*")
    ]
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(queue_name, "-inf", now_ms)
        pipe.zcount(queue_name, f"({now_ms}", "+inf")
        for key in running_lists:
            pipe.smembers(key)
        due, later, *listed = await pipe.execute()
    running_ids = sorted(set().union(*listed))
    scores = await redis.zmscore(queue_name, running_ids) if running_ids else []
    # A listed job no longer in the queue has just finished: it is none of the three.
    running_due = sum(1 for score in scores if score is not None and score <= now_ms)
    running_later = sum(1 for score in scores if score is not None and score > now_ms)
    return QueueDepth(
        waiting=max(0, due - running_due),
        deferred=max(0, later - running_later),
        running=running_due + running_later,
    )
