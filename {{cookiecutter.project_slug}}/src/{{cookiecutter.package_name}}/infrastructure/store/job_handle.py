# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Following one job by id: its status, its result, and aborting it.

arq's own `Job` misleads callers in three ways, each fixed here in a subclass:
- `status()` says `complete` for a job that failed or was aborted. Here it says `failed` or
  `aborted` (`JobStatus` below).
- `result()` of an aborted job raises `asyncio.CancelledError`, which `except Exception` lets
  through. Here it raises `JobAborted` (serialization.py reads the stored outcome as that).
- `abort()` adds the id to arq's one global abort set (`arq:abort`) whether or not a job has that
  id, and arq never trims the set: a later job given the same id is dropped before it runs. The
  set is shared by every queue on the server (keys.py). It also cannot tell whether a job was
  aborted when results are not kept (`keep_result` 0).

`abort()` here acts only on a job that exists. A queued or deferred job is removed at once, by
one atomic script: no worker is needed, and nothing is left behind. For a running job it adds the
id to its queue's abort requests (`<queue>:abort-requests`), which the job's worker reads on its
next poll and cancels the job, and it marks the request in `<queue>:abort:<job id>`, tied to the
job's enqueue time; the cancelled job's `retrying()` wrapper (retries.py) turns the mark into
"aborted", and that is how `abort()` knows the outcome whatever `keep_result` is. Workers also
drop abort requests for ids with no job (`drop_stale_abort_requests`, from the heartbeat). A
worker run by arq's own command reads arq's global set instead, so it does not cancel a running
job aborted here (docs/background-tasks.md).
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import Job as ArqJob
from arq.jobs import (
    JobDef,
    JobResult,
    ResultNotFound,
    deserialize_job,
    deserialize_result,
    serialize_result,
)
from arq.utils import poll, timestamp_ms
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ...config import get_settings
from ..job_types import UNKNOWN_FUNCTION, UNREADABLE_JOB
from ..keys import abort_requests_key, retry_of_key
from ..limits import LimitWait, limit_wait_key, limited_key, read_limit_wait
from .progress import Progress, progress_key
from .progress import read as read_progress
from .records import (
    LATEST_TIMESTAMP,
    PREVIEW_BYTES,
    Unreadable,
    is_wrong_type,
    read_or_skip,
    reply_or,
    skip,
)
from .serialization import JobAborted, JobFailed, deserialize, serialize

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


# KEYS: job, in-progress, queue, the queue's abort requests, retry, result, abort mark.
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

# KEYS: a queue's abort requests; ARGV: arq's job key prefix. Returns how many it dropped.
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


# The try of a result whose job never started (aborted first): no try ran.
NO_TRY = 0


@dataclass(frozen=True)
class Outcome:
    """How a finished job ended, read from its result: the one reading of a result that
    `status()`, `result()`, the API's job routes and the dashboard share.

    `status` is complete, failed or aborted; `error_type` and `message` say why it failed or was
    aborted (None when complete); `tries` counts the tries that ran (0: aborted before it
    started, so there is no start time either)."""

    status: JobStatus
    error_type: str | None
    message: str | None
    tries: int

    @property
    def started(self) -> bool:
        return self.tries > 0


def outcome_of(result: JobResult) -> Outcome:
    """The outcome a finished job's result records (see `Outcome`)."""
    error = result.result
    if result.success:
        return Outcome(JobStatus.complete, None, None, result.job_try)
    if isinstance(error, JobAborted):
        return Outcome(JobStatus.aborted, "JobAborted", str(error), result.job_try)
    if isinstance(error, JobFailed):
        return Outcome(JobStatus.failed, error.error_type, error.message, result.job_try)
    # Not written by this project's serializer: arq's own placeholder (a str) or an object.
    return Outcome(JobStatus.failed, type(error).__name__, str(error), result.job_try)


@dataclass(frozen=True)
class JobState:
    """A job's `status`, the `tries_started` (arq's count), while it is queued or deferred why
    one of its limits holds it back (`limit_wait`, else None), and its latest `progress` report
    (progress.py; None if it made none), all read at one moment."""

    status: JobStatus
    tries_started: int
    limit_wait: LimitWait | None
    progress: Progress | None = None


def _limit_wait_from(wait: Any, limits: Any) -> LimitWait | None:
    if not isinstance(wait, bytes) or not isinstance(limits, bytes):
        return None  # none, or a key of another type: nothing to tell
    return read_limit_wait(wait, limits)


# What the job returns (`Job[str]` for a job declared `-> str`; `Job[Any]` when only the name is known).
R = TypeVar("R")


class Job(ArqJob, Generic[R]):
    """arq's `Job` with truthful `status()`, `result()` and `abort()` (see the module docstring).

    `await job.status()` -> JobStatus; `await job.result(timeout=...)` -> the job's return value
    as JSON carried it back (a tuple comes back a list),
    or raises JobFailed, JobAborted, `asyncio.TimeoutError` (still running after `timeout`
    seconds) or arq's `ResultNotFound`; `await job.info()` -> arq's `JobDef` or None.
    """

    __slots__ = ()

    @property
    def queue_name(self) -> str:
        """The Redis key of the job's queue (keys.py)."""
        return self._queue_name

    async def status(self) -> JobStatus:  # type: ignore[override]
        """Where the job is; a job whose result cannot be read is `failed` (see `result_info`)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            self._read_status(pipe)
            replies = await pipe.execute(raise_on_error=False)
        return self._status_from(*replies)

    async def state(self) -> JobState:
        """The job's status, the tries started, why its limits hold it back and its latest
        progress report, read in one transaction (`JobState`): a worker that takes or parks the
        job between two reads could otherwise show a queued job waiting for a limit, or a
        queued job on its second try."""
        async with self._redis.pipeline(transaction=True) as pipe:
            self._read_status(pipe)
            pipe.get(retry_key_prefix + self.job_id)
            pipe.get(limit_wait_key(self._queue_name, self.job_id))
            pipe.get(limited_key(self._queue_name, self.job_id))
            pipe.get(self._progress_key)
            *replies, tries, wait, limits, report = await pipe.execute(raise_on_error=False)
        status = self._status_from(*replies)
        limit_wait = None
        if status in (JobStatus.queued, JobStatus.deferred):
            limit_wait = _limit_wait_from(wait, limits)
        progress = read_progress(self._progress_key, report)
        return JobState(status, self._tries_from(tries), limit_wait, progress)

    async def progress(self) -> Progress | None:
        """The job's latest progress report (`report_progress`, progress.py): `done`, `total`,
        `note`, the try that made it and when; None if it made none, or it has expired with the
        job's result."""
        try:
            reply: Any = await self._redis.get(self._progress_key)
        except ResponseError as error:
            reply = error
        return read_progress(self._progress_key, reply)

    async def retried_from(self) -> str | None:
        """The id of the job this one was queued again from (a dead letter's requeue or a
        retry, enqueue.py's `enqueue_again`), or None: it was queued afresh, or the record of
        where it came from has expired (two days after its result)."""
        try:
            origin: Any = await self._redis.get(retry_of_key(self._queue_name, self.job_id))
        except ResponseError as error:
            if not is_wrong_type(error):
                raise
            return None
        return None if origin is None else bytes(origin).decode("utf-8", "replace")

    @property
    def _progress_key(self) -> str:
        return progress_key(self._queue_name, self.job_id)

    def _read_status(self, pipe: Any) -> None:
        pipe.get(result_key_prefix + self.job_id)
        pipe.exists(in_progress_key_prefix + self.job_id)
        pipe.zscore(self._queue_name, self.job_id)

    def _status_from(self, result: Any, in_progress: Any, score: Any) -> JobStatus:
        if is_wrong_type(result):
            result = b""  # a result is there, of another type: unreadable
        elif isinstance(result, BaseException):
            raise result
        score = reply_or("queue", self._queue_name, score, None)
        if result is not None:
            return outcome_of(self._read_result(result)).status
        if in_progress:
            return JobStatus.in_progress
        if score is not None:
            # A job its limits hold back is deferred too (limits.py): `limit_wait()` says why.
            # Against the clock as the score was written (arq's timestamp_ms rounds to the
            # nearest ms): a job due now, read within half a millisecond, is queued, not deferred.
            return JobStatus.deferred if score > timestamp_ms() else JobStatus.queued
        return JobStatus.not_found

    async def limit_wait(self) -> LimitWait | None:
        """Why the job, queued, has not started yet, if one of its limits holds it back
        (`@job(max_concurrency=...)`, `rate_limit`: limits.py); None otherwise."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(limit_wait_key(self._queue_name, self.job_id))
            pipe.get(limited_key(self._queue_name, self.job_id))
            wait, limits = await pipe.execute(raise_on_error=False)
        return _limit_wait_from(wait, limits)

    # The parameters are arq's, so that code written for arq's `Job.result()` keeps working.
    async def result(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        poll_delay: float = 0.5,
        pole_delay: float | None = None,
    ) -> R:
        """The job's return value, waiting up to `timeout` seconds (None: no limit) for it,
        checking every `poll_delay` seconds. Raises what the job raised (JobFailed, JobAborted;
        `UnreadableResult`, a JobFailed, when its result cannot be read), `asyncio.TimeoutError`,
        or arq's `ResultNotFound` when there is neither a result nor a queued job."""
        poll_delay = poll_delay if pole_delay is None else pole_delay
        async for delay in poll(poll_delay):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(result_key_prefix + self.job_id)
                pipe.zscore(self._queue_name, self.job_id)
                data, score = await pipe.execute(raise_on_error=False)
            if is_wrong_type(data):
                data = b""  # a result is there, of another type: unreadable
            elif isinstance(data, BaseException):
                raise data
            if data is not None:
                info = self._read_result(data)
                if info.success:
                    return cast(R, info.result)
                if isinstance(info.result, Exception):
                    raise info.result
                raise JobFailed(type(info.result).__name__, str(info.result))
            if reply_or("queue", self._queue_name, score, None) is None:
                raise ResultNotFound(
                    "Not waiting for job result because the job is not in queue. "
                    "Is the worker function configured to keep result?"
                )
            if timeout is not None and delay > timeout:
                raise TimeoutError
        raise AssertionError("unreachable: poll() never ends")

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
        try:
            payload: bytes | None = await self._redis.get(job_key_prefix + self.job_id)
        except ResponseError as error:
            if not is_wrong_type(error):
                raise
            payload = b""  # a job of another type: unreadable, and aborted all the same
        if payload is None:  # finished, expired, or never queued: only its result can tell
            return await self._result_is_aborted()
        job = self._read_job(payload)  # one that cannot be read as the worker would run it
        enqueued_ms = enqueue_time_ms(job.enqueue_time)
        started = time.monotonic()
        async for _ in poll(poll_delay):
            outcome = await self._request_abort(job, enqueued_ms)
            if outcome == "aborted":
                return True
            if outcome == "finished":
                mark = await self._redis.get(abort_mark_key(self._queue_name, self.job_id))
                return mark == f"aborted:{enqueued_ms}".encode() or await self._result_is_aborted()
            if timeout is not None and time.monotonic() - started > timeout:
                return False
        raise AssertionError("unreachable: poll() never ends")

    async def _request_abort(self, job: JobDef, enqueued_ms: int) -> str:
        settings = get_settings()
        keep_ms = round(settings.worker_keep_result * 1000)
        outcome: bytes = await self._redis.eval(  # type: ignore[misc]
            ABORT_JOB,
            7,
            job_key_prefix + self.job_id,
            in_progress_key_prefix + self.job_id,
            self._queue_name,
            abort_requests_key(self._queue_name),
            retry_key_prefix + self.job_id,
            result_key_prefix + self.job_id,
            abort_mark_key(self._queue_name, self.job_id),
            self.job_id,
            str(round(time.time() * 1000)),
            self._aborted_result(job, enqueued_ms) if keep_ms > 0 else "",
            str(keep_ms),
            f"requested:{enqueued_ms}",
            f"aborted:{enqueued_ms}",
            str(ABORT_MARK_SECONDS * 1000),
        )
        return outcome.decode()

    def _aborted_result(self, job: JobDef, enqueued_ms: int) -> str:
        """The result a worker would store for this job, had it aborted it."""
        now_ms = round(time.time() * 1000)
        result = serialize_result(
            function=job.function,
            args=tuple(job.args),
            kwargs=job.kwargs,
            job_try=NO_TRY,
            enqueue_time_ms=enqueued_ms,
            success=False,
            result=JobAborted("aborted before it started"),
            start_ms=now_ms,
            finished_ms=now_ms,
            ref=f"{self.job_id}:{job.function}",
            queue_name=self._queue_name,
            job_id=self.job_id,
            serializer=serialize,
        )
        assert result is not None  # our serializer writes every exception
        return result.decode()

    async def result_info(self) -> JobResult | None:
        """The job's result (arq's `JobResult`) if it has finished, else None.

        A result that cannot be read (not JSON, another shape, a key of another type: records.py
        counts and logs it) reads as a failure, `UnreadableResult`, with what could be read of
        the function, try and times (times not read are the Unix epoch)."""
        try:
            data: bytes | None = await self._redis.get(result_key_prefix + self.job_id)
        except ResponseError as error:
            if not is_wrong_type(error):
                raise
            data = b""
        return None if data is None else self._read_result(data)

    async def info(self) -> JobDef | None:
        """The job's result if it has finished, else the job as queued, else None. A queued job
        that cannot be read reads as the worker will run it: `reject_unreadable_job` (unreadable.py)."""
        info: JobDef | None = await self.result_info()
        if info is None:
            try:
                payload: bytes | None = await self._redis.get(job_key_prefix + self.job_id)
            except ResponseError as error:
                if not is_wrong_type(error):
                    raise
                payload = b""  # a job of another type: unreadable
            if payload is not None:
                info = self._read_job(payload)
        if info is not None:
            score = reply_or("queue", self._queue_name, await self._score(), None)
            info.score = None if score is None else int(score)
        return info

    async def tries_started(self) -> int:
        """How many tries of the job have started, as arq counts them (`arq:retry:<id>`); 0 when
        none has, or when the count cannot be read (records.py counts and logs that)."""
        try:
            raw: Any = await self._redis.get(retry_key_prefix + self.job_id)
        except ResponseError as error:
            raw = error
        return self._tries_from(raw)

    def _tries_from(self, raw: Any) -> int:
        key = retry_key_prefix + self.job_id
        if isinstance(raw, BaseException):
            if not is_wrong_type(raw):
                raise raw
            skip("job", key, raw)
            return 0
        count = None if raw is None else read_or_skip("job", key, _count, raw)
        return count or 0

    async def _score(self) -> Any:
        try:
            return await self._redis.zscore(self._queue_name, self.job_id)
        except ResponseError as error:
            return error

    def _read_result(self, data: bytes) -> JobResult:
        key = result_key_prefix + self.job_id
        try:
            if not data:
                raise Unreadable("the key holds another type of value, or nothing")
            return read_result(data, self._deserializer or deserialize)
        except Exception as error:  # whatever the bytes make the reader raise
            skip("result", key, error, data or None)
            return unreadable_result(self.job_id, self._queue_name, data, error)

    def _read_job(self, payload: bytes) -> JobDef:
        try:
            return read_job(payload, self._deserializer or deserialize)
        except Exception as error:  # whatever the bytes make the reader raise
            skip("job", job_key_prefix + self.job_id, error, payload)
            preview = payload[:PREVIEW_BYTES].decode("utf-8", errors="backslashreplace")
            return JobDef(
                function=UNREADABLE_JOB,
                args=(f"{type(error).__name__}: {error}", preview),
                kwargs={},
                job_try=1,
                enqueue_time=_EPOCH,
                score=None,
                job_id=self.job_id,
            )

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


async def drop_stale_abort_requests(redis: Redis, queue_name: str) -> int:
    """Remove the queue's abort requests for ids that have no job; returns how many."""
    key = abort_requests_key(queue_name)
    dropped: Any = await redis.eval(DROP_STALE_ABORT_REQUESTS, 1, key, job_key_prefix)  # type: ignore[misc]
    return int(dropped)


class UnreadableResult(JobFailed):
    """The job has finished, but its result in Redis cannot be read (records.py)."""

    def __init__(self, reason: str, success: bool | None = None) -> None:
        how = {True: "completed", False: "failed", None: "finished"}[success]
        super().__init__(
            "UnreadableResult", f"the job {how}, but its result cannot be read ({reason})"
        )
        self.reason = reason
        self.success = success

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.success))


_EPOCH = datetime.fromtimestamp(0, UTC)
_LATEST_MS = LATEST_TIMESTAMP * 1000


def read_result(data: bytes, deserializer: Callable[[bytes], Any]) -> JobResult:
    """A result as arq writes it (`{"t": try, "f": function, "a": args, "k": kwargs, "et": ...,
    "s": success, "r": result, "st": ..., "ft": ..., "q": ..., "id": ...}`), every field of the
    type arq writes; raises ValueError (records.py's Unreadable, or a decoding error)."""
    record = deserializer(data)
    if not isinstance(record, dict):
        raise Unreadable(f"a {type(record).__name__}, not an object")
    checks: dict[str, Callable[[Any], bool]] = {
        "t": lambda value: _whole(value) and value >= NO_TRY,
        "f": lambda value: isinstance(value, str),
        "a": lambda value: isinstance(value, list | tuple),
        "k": lambda value: isinstance(value, dict),
        "s": lambda value: isinstance(value, bool),
        "et": _moment,
        "st": _moment,
        "ft": _moment,
    }
    for name, fits in checks.items():
        if name not in record:
            raise Unreadable(f"no {name!r}")
        if not fits(record[name]):
            raise Unreadable(f"{name!r} is {type(record[name]).__name__} {record[name]!r:.40}")
    return deserialize_result(data, deserializer=lambda _: record)


def read_job(payload: bytes, deserializer: Callable[[bytes], Any]) -> JobDef:
    """A queued job as arq writes it (`{"f": ..., "a": [...], "k": {...}, "t": ..., "et": ...}`);
    raises ValueError (records.py's Unreadable, or a decoding error) for anything else."""
    job = deserializer(payload)
    if not isinstance(job, dict):
        raise Unreadable(f"a {type(job).__name__}, not an object")
    if not (
        isinstance(job.get("f"), str)
        and isinstance(job.get("a"), list | tuple)
        and isinstance(job.get("k"), dict)
        and (job.get("t") is None or (_whole(job["t"]) and job["t"] >= 1))
        and _moment(job.get("et"))
    ):
        raise Unreadable("not an arq job")
    return deserialize_job(payload, deserializer=lambda _: job)


def unreadable_result(job_id: str, queue_name: str, data: bytes, error: BaseException) -> JobResult:
    """A result that cannot be read, as a failure that says so: with what can be read of it (as
    JSON, untagged), the rest unknown (the function `<unknown>`, try 1, times the epoch)."""
    try:
        fields = json.loads(data) if data else {}
    except (ValueError, RecursionError):  # also UnicodeDecodeError
        fields = {}
    if not isinstance(fields, dict):
        fields = {}

    def moment(name: str) -> datetime:
        value: Any = fields.get(name)
        return datetime.fromtimestamp(value / 1000, UTC) if _moment(value) else _EPOCH

    success = fields.get("s")
    return JobResult(
        function=fields["f"] if isinstance(fields.get("f"), str) else UNKNOWN_FUNCTION,
        args=(),
        kwargs={},
        job_try=fields["t"] if _whole(fields.get("t")) and fields["t"] >= NO_TRY else 1,
        enqueue_time=moment("et"),
        score=None,
        success=False,
        result=UnreadableResult(
            f"{type(error).__name__}: {error}"[:200], success if isinstance(success, bool) else None
        ),
        start_time=moment("st"),
        finish_time=moment("ft"),
        queue_name=queue_name,
        job_id=job_id,
    )


def _count(raw: bytes) -> int:
    count = int(raw)
    if count < 0:
        raise Unreadable(f"{count} is below 0")
    return count


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _moment(value: Any) -> bool:
    """Whether `value` is a time in ms as arq writes it, that a datetime can hold."""
    return _whole(value) and 0 <= value <= _LATEST_MS
