"""Following one job by id: its status, its result, and aborting it.

arq's own `Job` misleads callers in three ways, each fixed here in a subclass:
- `status()` says `complete` for a job that failed or was aborted. Here it says `failed` or
  `aborted` (`JobStatus` below).
- `result()` of an aborted job raises `asyncio.CancelledError`, which `except Exception` lets
  through. Here it raises `JobAborted` (serialization.py reads the stored outcome as that).
- `abort()` adds the id to arq's one global abort set (`arq:abort`) whether or not a job has that
  id, and arq never trims the set: a later job given the same id is dropped before it runs. It
  also cannot tell whether a job was aborted when results are not kept (`keep_result` 0).

`abort()` here acts only on a job that exists. A queued or deferred job is removed at once, by
one atomic script: no worker is needed, and nothing is left behind. For a running job it adds the
id to arq's abort set, which the job's worker reads on its next poll and cancels the job, and it
marks the request in `<queue>:abort:<job id>`, tied to the job's enqueue time; the cancelled job's
`retrying()` wrapper (retries.py) turns the mark into "aborted", and that is how `abort()` knows the
outcome whatever `keep_result` is. Workers also drop abort requests for ids with no job
(`drop_stale_abort_requests`, from the heartbeat), such as those arq's own `Job.abort()` leaves.
"""

import time
from datetime import datetime
from enum import StrEnum
from typing import Any

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import Job as ArqJob
from arq.jobs import deserialize_result, serialize_result
from arq.utils import poll
from redis.asyncio import Redis

from ..config import get_settings
from .serialization import JobAborted, deserialize, serialize

# How long an abort request for a running job is kept: longer than any job runs.
ABORT_MARK_SECONDS = 24 * 3600


class JobStatus(StrEnum):
    """Where a job is. The values arq's `JobStatus` has compare equal to its members."""

    deferred = "deferred"  # queued to start later (_defer_by, a cron tick, a retry's backoff)
    queued = "queued"  # ready to start, waiting for a free worker
    in_progress = "in_progress"
    complete = "complete"  # succeeded; `result()` returns its value
    failed = "failed"  # failed for good; `result()` raises JobFailed
    aborted = "aborted"  # aborted; `result()` raises JobAborted
    not_found = "not_found"  # no such job, or its result has expired (WORKER_KEEP_RESULT)


def abort_mark_key(queue_name: str, job_id: str) -> str:
    return f"{queue_name}:abort:{job_id}"


def enqueue_time_ms(enqueue_time: datetime) -> int:
    """arq's enqueue time in ms, back from the `datetime` a job's `ctx["enqueue_time"]` holds."""
    return round(enqueue_time.timestamp() * 1000)


# KEYS: job, in-progress, queue, abort set, retry, result, abort mark.
# ARGV: job id, now (ms), the aborted result ('' to keep none), its lifetime (ms),
#       the mark for "requested", the mark for "aborted", the marks' lifetime (ms).
# Returns 'running' (the worker was asked to cancel it), 'aborted' (removed here), or
# 'finished' (no job is queued or running under this id).
ABORT_JOB = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'finished' end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
  if redis.call('GET', KEYS[7]) ~= ARGV[6] then
    redis.call('SET', KEYS[7], ARGV[5], 'PX', ARGV[7])
  end
  return 'running'
end
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 'finished' end
-- A worker that has just read this id watches the in-progress key while it starts the job:
-- touching the key makes that start fail, instead of running a job that is gone.
redis.call('SET', KEYS[2], '1')
redis.call('DEL', KEYS[2], KEYS[1], KEYS[5])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[3] ~= '' then redis.call('SET', KEYS[6], ARGV[3], 'PX', ARGV[4]) end
redis.call('SET', KEYS[7], ARGV[6], 'PX', ARGV[7])
return 'aborted'
"""

# KEYS: the abort mark; ARGV: the mark for "requested", the mark for "aborted".
MARK_ABORTED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return false
"""

# KEYS: arq's abort set; ARGV: arq's job key prefix. Returns how many requests it dropped.
DROP_STALE_ABORT_REQUESTS = """
local dropped = 0
for _, job_id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. job_id) == 0 then
    redis.call('ZREM', KEYS[1], job_id)
    dropped = dropped + 1
  end
end
return dropped
"""


class Job(ArqJob):
    """arq's `Job` with truthful `status()`, `result()` and `abort()` (see the module docstring).

    `await job.status()` -> JobStatus; `await job.result(timeout=...)` -> the job's return value,
    or raises JobFailed, JobAborted, `asyncio.TimeoutError` (still running after `timeout`
    seconds) or arq's `ResultNotFound`; `await job.info()` -> arq's `JobDef` or None.
    """

    __slots__ = ()

    async def status(self) -> JobStatus:  # type: ignore[override]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(result_key_prefix + self.job_id)
            pipe.exists(in_progress_key_prefix + self.job_id)
            pipe.zscore(self._queue_name, self.job_id)
            result, in_progress, score = await pipe.execute()
        if result is not None:
            outcome = deserialize_result(result, deserializer=self._deserializer)
            if outcome.success:
                return JobStatus.complete
            return JobStatus.aborted if isinstance(outcome.result, JobAborted) else JobStatus.failed
        if in_progress:
            return JobStatus.in_progress
        if score is not None:
            return JobStatus.deferred if score > time.time() * 1000 else JobStatus.queued
        return JobStatus.not_found

    # The parameters are arq's, so that code written for arq's `Job.abort()` keeps working.
    async def abort(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        poll_delay: float = 0.5,
    ) -> bool:
        """Abort the job; True if it was aborted, now or before.

        A queued or deferred job is removed at once. A running job is cancelled by its worker
        within one poll (`WORKER_POLL_DELAY`); this waits up to `timeout` seconds (None: no
        limit) for that, checking every `poll_delay` seconds. False when there is no such job,
        when it finished first, or when it still runs after `timeout` (the request stands: the
        worker may still cancel it). An aborted job is not retried and is not a dead letter.
        """
        payload = await self._redis.get(job_key_prefix + self.job_id)
        if payload is None:  # finished, expired, or never queued: only its result can tell
            return await self._result_is_aborted()
        enqueued_ms: int = deserialize(payload)["et"]
        started = time.monotonic()
        async for _ in poll(poll_delay):
            outcome = await self._request_abort(payload, enqueued_ms)
            if outcome == "aborted":
                return True
            if outcome == "finished":
                mark = await self._redis.get(abort_mark_key(self._queue_name, self.job_id))
                return mark == f"aborted:{enqueued_ms}".encode() or await self._result_is_aborted()
            if timeout is not None and time.monotonic() - started > timeout:
                return False
        raise AssertionError("unreachable: poll() never ends")

    async def _request_abort(self, payload: bytes, enqueued_ms: int) -> str:
        settings = get_settings()
        keep_ms = round(settings.worker_keep_result * 1000)
        outcome: bytes = await self._redis.eval(  # type: ignore[misc]
            ABORT_JOB,
            7,
            job_key_prefix + self.job_id,
            in_progress_key_prefix + self.job_id,
            self._queue_name,
            abort_jobs_ss,
            retry_key_prefix + self.job_id,
            result_key_prefix + self.job_id,
            abort_mark_key(self._queue_name, self.job_id),
            self.job_id,
            str(round(time.time() * 1000)),
            self._aborted_result(payload) if keep_ms > 0 else "",
            str(keep_ms),
            f"requested:{enqueued_ms}",
            f"aborted:{enqueued_ms}",
            str(ABORT_MARK_SECONDS * 1000),
        )
        return outcome.decode()

    def _aborted_result(self, payload: bytes) -> str:
        """The result a worker would store for this job, had it aborted it."""
        job = deserialize(payload)
        now_ms = round(time.time() * 1000)
        result = serialize_result(
            function=job["f"],
            args=tuple(job["a"]),
            kwargs=job["k"],
            job_try=job.get("t") or 1,
            enqueue_time_ms=job["et"],
            success=False,
            result=JobAborted("aborted before it started"),
            start_ms=now_ms,
            finished_ms=now_ms,
            ref=f"{self.job_id}:{job['f']}",
            queue_name=self._queue_name,
            job_id=self.job_id,
            serializer=serialize,
        )
        assert result is not None  # our serializer writes every exception
        return result.decode()

    async def _result_is_aborted(self) -> bool:
        result = await self.result_info()
        return result is not None and isinstance(result.result, JobAborted)


async def mark_aborted(redis: Redis, queue_name: str, job_id: str, enqueue_time: datetime) -> bool:
    """Called by a job cancelled while running: if an abort of this very job was requested, record
    that it is aborted (for `Job.abort()`); True if so."""
    enqueued_ms = enqueue_time_ms(enqueue_time)
    marked = await redis.eval(  # type: ignore[misc]
        MARK_ABORTED,
        1,
        abort_mark_key(queue_name, job_id),
        f"requested:{enqueued_ms}",
        f"aborted:{enqueued_ms}",
    )
    return bool(marked)


async def drop_stale_abort_requests(redis: Redis) -> int:
    """Remove abort requests for ids that have no job (arq never does); returns how many."""
    dropped: Any = await redis.eval(DROP_STALE_ABORT_REQUESTS, 1, abort_jobs_ss, job_key_prefix)  # type: ignore[misc]
    return int(dropped)
