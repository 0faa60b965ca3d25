# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Running one claimed job: arq 0.28's `Worker.run_job`, with the job read by the claim.

arq reads a job when it starts it, in a transaction of its own: MULTI, GET the job, INCR and
EXPIRE its try count, EXEC (five commands, one round trip). The claim script (loop.py's
CLAIM_JOBS) has the job in hand already, so it reads the job and counts the try in the same
script, with no round trip of its own: two commands for a first try (GET, SET NX), four for a
later one (GET, SET NX, INCR, EXPIRE). That is `JobRead`. What follows the read is arq's,
unchanged but for names: the function is called with arq's `ctx`, its outcome is logged and
written by the worker's `finish_job` (or `finish_failed_job`) exactly as arq's would be, so the
retry rules, time limits, aborts and hooks stay arq's. Two things are not arq's: the function's
task starts at once where Python can (`start_task`), and the worker hears that the function has
ended from inside that task (`function_ended`), a turn of the event loop before `on_job_end`.

A job handed over by a concurrency limit's release (limits.py) was claimed without its read;
`read_job` reads it as arq does.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from arq.constants import job_key_prefix, keep_cronjob_progress, retry_key_prefix
from arq.cron import CronJob
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms, truncate
from arq.worker import Function, JobExecutionFailed, Retry, RetryJob, Worker, no_result

from ... import tracing
from ..job_types import UNKNOWN_FUNCTION
from ..store.workflows import MemberRun, MissingInput, read_input

logger = logging.getLogger("arq.worker")  # arq's logger: its lines read as arq's always did

# How long a try count is kept, in seconds (arq's figure: a day and a bit).
T = TypeVar("T")

TRY_COUNT_LIFETIME_SECONDS = 88400


@dataclass(frozen=True)
class JobRead:
    """A claimed job as read from Redis: its payload (None if it has expired) and this try's
    number (1 for the first), counted when it was read."""

    payload: bytes | None
    job_try: int


async def read_job(worker: Worker, job_id: str) -> JobRead:
    """Read a claimed job and count its try, as arq does (one transaction)."""
    async with worker.pool.pipeline(transaction=True) as pipe:
        pipe.get(job_key_prefix + job_id)
        pipe.incr(retry_key_prefix + job_id)
        pipe.expire(retry_key_prefix + job_id, TRY_COUNT_LIFETIME_SECONDS)
        payload, job_try, _ = await pipe.execute()
    return JobRead(payload, int(job_try))


# Python 3.12's `asyncio.eager_task_factory`; None on 3.11, where a task starts a turn later.
_eager_task: Callable[..., Any] | None = getattr(asyncio, "eager_task_factory", None)


def start_task(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]
) -> "asyncio.Task[T]":
    """A task for a job's function, started at once where Python can (3.12+, `eager_start`):
    the function runs up to its first wait in the caller's turn of the event loop, not one turn
    later, so a job starts a turn sooner (a no-op job ends without its task ever waiting)."""
    if _eager_task is not None:
        return cast("asyncio.Task[T]", _eager_task(loop, coroutine))
    return loop.create_task(coroutine)


async def _then(coroutine: Awaitable[T], function_ended: Callable[[str], None], job_id: str) -> T:
    """Await the job's function, then say so in the same turn of the event loop: its slot is
    free for the next job while the worker records this one's outcome."""
    try:
        return await coroutine
    finally:
        function_ended(job_id)


async def run_job(
    worker: Worker,
    job_id: str,
    score: int,
    read: JobRead,
    member: MemberRun | None = None,
    function_ended: Callable[[str], None] | None = None,
) -> None:
    """arq's `run_job` after its read: run the job's function and record its outcome. A job of
    a workflow (`member`, store/workflows.py) that waited for others gets their outcome as its
    first argument, and its own outcome is kept in `member` for the write that moves on.
    `function_ended(job_id)` is called as the function returns or raises, in its own task."""
    start_ms = timestamp_ms()
    job_try = read.job_try
    function_name, enqueue_time_ms = UNKNOWN_FUNCTION, 0  # as arq, until the payload is read
    args: tuple[Any, ...] = ()
    kwargs: dict[Any, Any] = {}

    def result_record(
        success: bool, result: Any, finished_ms: int, ref: str, ran: bool = True
    ) -> bytes | None:
        """The job's outcome as arq records it, from what is known of the job so far. Its try
        is the last one that ran: one less than arq's count for a try ended before the function
        ran (`ran` False), which arq counts all the same: 0 for a job that never ran at all, so
        that it reads as not started (job_handle.py's `Outcome`)."""
        return serialize_result(
            function_name,
            args,
            kwargs,
            job_try if ran else job_try - 1,
            enqueue_time_ms,
            success,
            result,
            start_ms,
            finished_ms,
            ref,
            worker.queue_name,
            job_id=job_id,
            serializer=worker.job_serializer,
        )

    async def job_failed(exc: BaseException) -> None:
        worker.jobs_failed += 1
        if member is not None:
            member.outcome = (False, exc)
        ref = f"{job_id}:{function_name}"
        result_data_ = result_record(False, exc, timestamp_ms(), ref, ran=False)
        await asyncio.shield(worker.finish_failed_job(job_id, result_data_))

    if not read.payload:
        logger.warning("job %s expired", job_id)
        return await job_failed(JobExecutionFailed("job expired"))

    try:
        function_name, args, kwargs, enqueue_job_try, enqueue_time_ms = deserialize_job_raw(
            read.payload, deserializer=worker.job_deserializer
        )
    except SerializationError as e:
        logger.exception("deserializing job %s failed", job_id)
        return await job_failed(e)

    if member is not None:
        member.function = function_name
        if member.membership.takes is not None:
            try:
                args = (await read_input(worker.pool, job_id, member), *args)
            except (MissingInput, ValueError) as e:
                logger.warning("job %s: %s", job_id, e)
                return await job_failed(e)

    try:
        function: Function | CronJob = worker.functions[function_name]
    except KeyError:
        logger.warning("job %s, function %r not found", job_id, function_name)
        return await job_failed(JobExecutionFailed(f"function {function_name!r} not found"))

    keep_in_progress: float | None
    if hasattr(function, "next_run"):  # a cron job
        ref = function_name
        keep_in_progress = keep_cronjob_progress
    else:
        ref = f"{job_id}:{function_name}"
        keep_in_progress = None

    if enqueue_job_try and enqueue_job_try > job_try:
        job_try = enqueue_job_try
        await worker.pool.setex(retry_key_prefix + job_id, TRY_COUNT_LIFETIME_SECONDS, str(job_try))

    max_tries = worker.max_tries if function.max_tries is None else function.max_tries
    if job_try > max_tries:
        t = (timestamp_ms() - enqueue_time_ms) / 1000
        logger.warning("%6.2fs ! %s max retries %d exceeded", t, ref, max_tries)
        worker.jobs_failed += 1
        exceeded = JobExecutionFailed(f"max {max_tries} retries exceeded")
        result_data = result_record(False, exceeded, timestamp_ms(), ref, ran=False)
        if member is not None:
            member.outcome = (False, exceeded)
        return await asyncio.shield(worker.finish_failed_job(job_id, result_data))

    result: Any = no_result
    exc_extra = None
    finish = False
    timeout_s = worker.job_timeout_s if function.timeout_s is None else function.timeout_s
    incr_score: int | None = None
    job_ctx = {
        "job_id": job_id,
        "job_try": job_try,
        "enqueue_time": ms_to_datetime(enqueue_time_ms),
        "score": score,
    }
    if tracing.enabled:  # the enqueue's trace context, for the try's span (retries.py)
        job_ctx["trace_context"] = tracing.payload_trace_context(read.payload)
    ctx = {**worker.ctx, **job_ctx}

    if worker.on_job_start:
        await worker.on_job_start(ctx)

    start_ms = timestamp_ms()
    success = False
    try:
        s = args_to_string(args, kwargs)
        extra = f" try={job_try}" if job_try > 1 else ""
        if (start_ms - score) > 1200:
            extra += f" delayed={(start_ms - score) / 1000:0.2f}s"
        logger.info("%6.2fs → %s(%s)%s", (start_ms - enqueue_time_ms) / 1000, ref, s, extra)
        running = function.coroutine(ctx, *args, **kwargs)
        if function_ended is not None:
            running = _then(running, function_ended, job_id)
        worker.job_tasks[job_id] = task = start_task(worker.loop, running)
        # repr(result) and extra can raise: inside the try
        try:
            result = await asyncio.wait_for(task, timeout_s)
        except (Exception, asyncio.CancelledError) as e:
            exc_extra = getattr(e, "extra", None)
            if callable(exc_extra):
                exc_extra = exc_extra()
            raise
        else:
            result_str = "" if result is None or not worker.log_results else truncate(repr(result))
        finally:
            del worker.job_tasks[job_id]

    except (Exception, asyncio.CancelledError) as e:
        finished_ms = timestamp_ms()
        t = (finished_ms - start_ms) / 1000
        if worker.retry_jobs and isinstance(e, Retry):
            incr_score = e.defer_score
            logger.info("%6.2fs ↻ %s retrying job in %0.2fs", t, ref, (e.defer_score or 0) / 1000)
            if e.defer_score:
                incr_score = e.defer_score + (timestamp_ms() - score)
            worker.jobs_retried += 1
        elif job_id in worker.aborting_tasks and isinstance(e, asyncio.CancelledError):
            logger.info("%6.2fs ⊘ %s aborted", t, ref)
            result = e
            finish = True
            worker.aborting_tasks.remove(job_id)
            worker.jobs_failed += 1
        elif worker.retry_jobs and isinstance(e, asyncio.CancelledError | RetryJob):
            logger.info("%6.2fs ↻ %s cancelled, will be run again", t, ref)
            worker.jobs_retried += 1
        else:
            logger.exception(
                "%6.2fs ! %s failed, %s: %s", t, ref, e.__class__.__name__, e,
                extra={"extra": exc_extra},
            )  # fmt: skip
            result = e
            finish = True
            worker.jobs_failed += 1
    else:
        success = True
        finished_ms = timestamp_ms()
        logger.info("%6.2fs ← %s ● %s", (finished_ms - start_ms) / 1000, ref, result_str)
        finish = True
        worker.jobs_complete += 1

    keep_result_forever = (
        worker.keep_result_forever
        if function.keep_result_forever is None
        else function.keep_result_forever
    )
    result_timeout_s = (
        worker.keep_result_s if function.keep_result_s is None else function.keep_result_s
    )
    result_data = None
    if result is not no_result and (keep_result_forever or result_timeout_s > 0):
        result_data = result_record(success, result, finished_ms, ref)

    if member is not None and finish:
        member.outcome = (success, result)

    if worker.on_job_end:
        await worker.on_job_end(ctx)

    await asyncio.shield(
        worker.finish_job(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )
    )

    if worker.after_job_end:
        await worker.after_job_end(ctx)
