# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What happens to each job in this worker process, told to whoever listens: metrics, the
dashboard's activity record, or your own code.

`retrying()` (retries.py) wraps every job and reports two events: `JobStarted` when a try begins
and `JobFinished` when it ends. Listeners are plain functions registered with `listen()`; they
run inline, in the job's task, so they must be quick and must not await or touch Redis (gather
what you need and write it in the background, as heartbeat.py does). A listener that raises is
logged and skipped: it never fails a job.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

# complete: returned; retried: failed and queued again (backoff or `Retry`); failed: failed for
# good (dead letter); aborted: cancelled, by `Job.abort()` or a worker stopping (arq queues a
# job cancelled by a stop again).
Outcome = Literal["complete", "retried", "failed", "aborted"]


@dataclass(frozen=True, slots=True)
class JobStarted:
    """One try of a job begins. Times are Unix seconds; `due_at` is when this try was due to
    start (the job's score before its claim: its enqueue, the time it was deferred to, a retry's
    backoff or a cron tick), None where the worker did not say."""

    job_id: str
    function: str
    job_try: int
    enqueued_at: float
    started_at: float
    due_at: float | None = None

    @property
    def wait_seconds(self) -> float:
        """From enqueue (or the deferred time) to this start; never negative."""
        return max(0.0, self.started_at - self.enqueued_at)


@dataclass(frozen=True, slots=True)
class JobFinished:
    """One try of a job ends. `error` is "<type>: <message>" unless it completed; `due_at` as
    for `JobStarted`."""

    job_id: str
    function: str
    job_try: int
    enqueued_at: float
    started_at: float
    finished_at: float
    outcome: Outcome
    error: str | None = None
    due_at: float | None = None

    @property
    def duration_seconds(self) -> float:
        return self.finished_at - self.started_at


Listener = Callable[[JobStarted | JobFinished], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Call `listener` with every event from now on (once, however often it is added); returns a
    function that stops it."""
    if listener not in _listeners:
        _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def listening() -> bool:
    return bool(_listeners)


def emit(event: JobStarted | JobFinished) -> None:
    for listener in tuple(_listeners):
        try:
            listener(event)
        except Exception:
            logger.exception("job event listener %r failed", listener)


def now() -> float:
    return time.time()


def log_finished(event: JobStarted | JobFinished) -> None:
    """A listener that logs one line per finished try, with its outcome and `duration_ms` as
    fields (the worker adds it with LOG_FORMAT=json, where arq's own lines carry no duration)."""
    if isinstance(event, JobFinished):
        logger.info(
            "job finished: %s",
            event.outcome,
            extra={
                "job_id": event.job_id,
                "function": event.function,
                "try": event.job_try,
                "duration_ms": round(event.duration_seconds * 1000, 3),
                "outcome": event.outcome,
            },
        )
