# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Retries with exponential backoff and jitter, a time limit per try, and dead letters.

arq retries a job only when it raises `arq.Retry`; any other exception fails it at once. Every
job registered with `job()` runs inside `retrying()`, which turns an ordinary exception into
`Retry(defer=<backoff>)` until the job's tries are used up, then records a dead letter and lets
the job fail. A job raises `PermanentError` for a failure that retrying cannot fix, or `Retry`
itself to choose its own delay. A job cancelled by `Job.abort()` records that it was aborted
(job_handle.py) and is not retried; one cancelled because its worker stops runs again.

A job's return value is checked here too: one that JSON cannot hold (a `set`, an object) fails
the try as `ResultNotSerializable`, a `PermanentError`, instead of arq writing a placeholder
result that every reader would take for something else. So each try's outcome is decided once,
here, and everything that reports it (the stored result read by `status()`, `result()` and the
API, the activity record, metrics, logs) reads that one decision: `JobFinished.outcome`.
"""

import asyncio
import functools
import logging
import random
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from arq import Retry
from redis.exceptions import RedisError

from ... import tracing
from ...config import get_settings
from ...error_tracking import capture_job_failure
from ...logs import job_fields
from ...redaction import error_message, error_text
from .. import job_events
from ..job_types import JobContext, JobFunction, PermanentError
from ..keys import queue_of_job
from ..store import dead_letters
from ..store.job_handle import mark_aborted
from ..store.progress import close_progress
from ..store.serialization import serialize

if TYPE_CHECKING:
    from opentelemetry.trace import Span

logger = logging.getLogger(__name__)

# What stands in for a try's span with tracing off: reusable, made once.
_NO_SPAN = nullcontext()


class RetriesExhausted(Exception):
    """A job raised `arq.Retry` on its last try: it fails for good instead."""


class ResultNotSerializable(PermanentError):
    """The job returned a value JSON cannot hold (serialization.py): retrying cannot fix it."""


def backoff_delay(job_try: int, base: float, cap: float) -> float:
    """Seconds to wait after try number `job_try` failed: exponential, capped, with jitter.

    The ceiling doubles with each try (base, 2 x base, 4 x base, ... up to cap) and the delay is
    drawn from [ceiling / 2, ceiling] ("equal jitter"): workers that failed together spread out,
    and until the ceiling reaches the cap no delay is shorter than the one before it.
    """
    ceiling = min(cap, base * 2.0 ** (job_try - 1))
    return ceiling / 2 + random.random() * ceiling / 2


def retrying(
    job: JobFunction,
    *,
    max_tries: int | None = None,
    timeout: float | None = None,
    registered_as: str | None = None,
) -> JobFunction:
    """Wrap `job` with the retry policy; `max_tries` and `timeout` default to the settings.
    `registered_as` is the name the worker knows it by, if not the function's (a cron job's
    `cron:<name>`): every report of a try names it (log lines, the activity record behind the
    dashboard and `queue-stats`, metrics, spans), as the queued job and its result do, and a
    dead letter is requeued under it."""
    name = registered_as or job.__name__

    @functools.wraps(job)
    async def run(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
        # Every line logged during this try names the job (logs.py).
        fields = job_fields.set({"job_id": ctx["job_id"], "function": name, "try": ctx["job_try"]})
        started = report_start(ctx, name)
        # With tracing on, the try is a span under its enqueue's (tracing.py), current while
        # it runs: its log lines carry the trace, the jobs it enqueues are its children.
        with _try_span(ctx, name) if tracing.enabled else _NO_SPAN as span:
            try:
                result = await _run_try(ctx, *args, **kwargs)
            except asyncio.CancelledError as cancelled:
                # Aborted, or interrupted by its worker stopping: arq runs that job again.
                aborted = ctx.get("aborted", False)
                outcome: job_events.Outcome = "aborted" if aborted else "retried"
                report_end(started, outcome, None if aborted else cancelled, span)
                raise
            except Retry as retry:
                report_end(started, "retried", retry.__cause__, span)
                raise
            except Exception as error:
                report_end(started, "failed", error, span)
                raise
            finally:
                await close_progress(ctx)  # the try's last report, before its outcome is written
                job_fields.reset(fields)
            report_end(started, "complete", None, span)
            return result

    async def _run_try(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
        settings = get_settings()
        tries = max_tries or settings.worker_max_tries
        try:
            # The time limit is ours, not arq's, so that a timeout counts as a failed try.
            async with asyncio.timeout(timeout or settings.worker_job_timeout):
                result = await job(ctx, *args, **kwargs)
            _check_serializable(result)
            return result
        except asyncio.CancelledError:
            # An abort, or a worker shutting down (arq runs the job again then).
            ctx["aborted"] = await asyncio.shield(_record_abort(ctx))
            raise
        except Retry as retry:
            # The job chose its own delay, which arq counts against max_tries. On the last try
            # arq would queue it only to fail it unrun: fail it here, with a dead letter.
            if ctx["job_try"] < tries:
                raise
            exhausted = RetriesExhausted(f"asked to retry on its last try ({tries} of {tries})")
            await record_dead_letter(ctx, name, args, kwargs, exhausted)
            raise exhausted from retry
        except Exception as error:
            job_try: int = ctx["job_try"]
            if isinstance(error, PermanentError) or job_try >= tries:
                await record_dead_letter(ctx, name, args, kwargs, error)
                raise
            delay = backoff_delay(job_try, settings.worker_retry_base, settings.worker_retry_cap)
            logger.warning(
                "%s try %d of %d failed (%s); retrying in %.2f s",
                ctx["job_id"], job_try, tries, error_text(error), delay,
            )  # fmt: skip
            raise Retry(defer=delay) from error

    return run


def _check_serializable(result: Any) -> None:
    """Raise ResultNotSerializable if arq could not store `result` with the job."""
    if result is None:
        return
    try:
        serialize(result)
    except (TypeError, ValueError) as error:
        raise ResultNotSerializable(
            f"the job returned a value JSON cannot hold ({error}); return what serialization.py "
            "lists: dict, list, str, int, float, bool, None, datetime, date, UUID, Decimal"
        ) from None


def report_start(ctx: JobContext, function: str) -> job_events.JobStarted | None:
    if not job_events.listening():  # no event objects at all when nobody listens
        return None
    started = job_events.JobStarted(
        job_id=ctx["job_id"],
        function=function,
        job_try=ctx["job_try"],
        enqueued_at=ctx["enqueue_time"].timestamp(),
        started_at=job_events.now(),
        # The job's score before its claim (ms), as the worker passes it: when this try was due.
        due_at=ctx["score"] / 1000 if "score" in ctx else None,
    )
    job_events.emit(started)
    return started


def _try_span(ctx: JobContext, function: str) -> "AbstractContextManager[Span]":
    return tracing.try_span(
        ctx.get("trace_context"), ctx["job_id"], function, queue_of_job(ctx), ctx["job_try"]
    )


def report_end(
    started: job_events.JobStarted | None,
    outcome: job_events.Outcome,
    error: BaseException | None,
    span: "Span | None" = None,
) -> None:
    """Tell the listeners (and the try's span, with tracing on) how a try ended."""
    if span is not None:
        tracing.set_outcome(span, outcome, error)
    if started is None:
        return
    job_events.emit(
        job_events.JobFinished(
            job_id=started.job_id,
            function=started.function,
            job_try=started.job_try,
            enqueued_at=started.enqueued_at,
            started_at=started.started_at,
            due_at=started.due_at,
            finished_at=job_events.now(),
            outcome=outcome,
            error=None if error is None else error_text(error),
        )
    )


async def _record_abort(ctx: JobContext) -> bool:
    """For a cancelled job: True if it was aborted (by `Job.abort()`, which marks the request, or
    by arq's own abort, which the project's worker lists), False if its worker is stopping."""
    worker = ctx.get("worker")
    aborted_by_arq = worker is not None and ctx["job_id"] in worker.aborting_tasks
    try:
        marked = await mark_aborted(
            ctx["redis"], queue_of_job(ctx), ctx["job_id"], ctx["enqueue_time"]
        )
    except (RedisError, OSError) as error:
        logger.warning(
            "%s was cancelled; could not record whether it was aborted: %s", ctx["job_id"], error
        )
        marked = False
    return marked or aborted_by_arq


async def record_dead_letter(
    ctx: JobContext,
    function: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Exception,
) -> None:
    settings = get_settings()
    letter = dead_letters.DeadLetter(
        job_id=ctx["job_id"],
        function=function,
        args=list(args),
        kwargs=kwargs,
        error_type=type(error).__name__,
        error=error_message(error),
        tries=ctx["job_try"],
        enqueued_at=ctx["enqueue_time"],
        failed_at=datetime.now(UTC),
    )
    queue_name = queue_of_job(ctx)
    await dead_letters.add(ctx["redis"], queue_name, letter, settings.dead_letter_limit)
    logger.error(
        "%s failed for good after %d tries: dead letter recorded", letter.job_id, letter.tries
    )
    capture_job_failure(error, letter.job_id, function, letter.tries)
