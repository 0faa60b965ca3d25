# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Pausing a queue: workers take no new job from it until it is resumed; jobs still queue.

A pause is one key next to the queue, `<queue>:paused`, holding who paused it and when (JSON:
`{"by": ..., "at": <unix seconds>}`). It has no lifetime, so it outlasts every worker: a worker
started while the queue is paused takes nothing from it. `just pause NAME` / `just resume NAME`
and the dashboard's buttons write it; `queue_stats` (depth.py) reads it with the counts, so the
dashboard, `just queue-stats` and the metrics (`arq_queue_paused`) all show the same key.

How workers notice (worker/loop.py): the claim script looks at the key only when the queue has
a job due, and a worker looks at most every PAUSE_CHECK_SECONDS per queue. A queue with nothing
due costs no command, idle or not, and a busy queue one EXISTS every half second per worker,
not one per job. A worker that found the queue paused leaves it out of its claims and of its
wait for wake-up tokens, and looks again every PAUSE_CHECK_SECONDS while jobs are due there.
So within a second of a pause no worker takes a new job from the queue. What a worker already
holds goes on: the jobs running, and the few it had read ahead to start as slots free (worker
loop's READ_AHEAD_SHARE). The moves that start a job without a claim look at the key too: a
workflow's next step handed to the worker that ran the step before (store/workflows.py) and a
concurrency lease's next waiting job (limits.py); a paused queue's job is queued instead.

Resuming deletes the key and pushes one wake-up token, which wakes a worker waiting on the
queue's list (one that had not seen the pause). A worker that found the queue paused waits on
its other queues' lists only, and sees the resume at its next look, within PAUSE_CHECK_SECONDS:
it then claims as usual.

Who did what is said by the callers: the dashboard logs each action with its user
(api/dashboard/routes.py), `just pause` / `just resume` print it; the pause itself keeps who
paused the queue and when, for every view.
"""

import json
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from .job_writes import wake_key

# What queue_stats reads for a pause key of another type than a string: still a pause.
UNREADABLE = b"?"
# How often a worker looks at whether a queue it serves is paused, at most, in seconds.
PAUSE_CHECK_SECONDS = 0.5


def paused_key(queue_name: str) -> str:
    """The queue's pause: present while it is paused (`Pause`)."""
    return f"{queue_name}:paused"


@dataclass(frozen=True)
class Pause:
    """Who paused a queue (`by`: a dashboard user, or `user@host` from a terminal) and when
    (`at`, Unix seconds)."""

    by: str
    at: float


def read_pause(value: bytes | str | None) -> Pause | None:
    """The pause a `<queue>:paused` value records, None for no key. A value of another shape
    (written by hand, or a key of another type: `UNREADABLE`) still means paused, by someone
    unknown at an unknown time (`at` 0): the key's presence is what workers obey."""
    if value is None:
        return None
    try:
        record = json.loads(value)
        return Pause(by=str(record["by"]), at=float(record["at"]))
    except (ValueError, TypeError, KeyError):
        return Pause(by="unknown", at=0.0)


async def pause_queue(redis: Redis, queue_name: str, by: str) -> Pause | None:
    """Pause the queue whose key is `queue_name`, on behalf of `by` (kept with the pause).
    Returns the pause already in force (None if this call paused it): pausing twice keeps the
    first pause's author and time. Raises redis-py's errors when Redis is out of reach."""
    pause = Pause(by=by, at=round(time.time(), 3))
    record = json.dumps({"by": pause.by, "at": pause.at})
    if await redis.set(paused_key(queue_name), record, nx=True):
        return None
    return read_pause(await redis.get(paused_key(queue_name)))


async def resume_queue(redis: Redis, queue_name: str) -> bool:
    """Resume the queue whose key is `queue_name` and wake a worker. False if it was not
    paused. Raises redis-py's errors when Redis is out of reach."""
    if not await redis.delete(paused_key(queue_name)):
        return False
    await redis.lpush(wake_key(queue_name), "1")  # type: ignore[misc]  # redis-py's typing
    return True
