# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs for a function this worker does not have wait for a worker that does.

During a rolling deploy a newer client queues `send_invoice` while older workers still run. arq
fails such a job at once (`function 'send_invoice' not found`), for good, with no dead letter:
the newer workers never see it. Here the worker's function table answers an unknown name with
`wait_for_function` instead, which gives the job back, due again after a short delay, without
using one of its tries, so that a worker with the function runs it. Only once it has waited
WORKER_MISSING_FUNCTION_WAIT seconds (from the first time a worker found it lacked the function)
does it fail, as a dead letter whose error names the function: that last look is its one try.

The first give-back is reported as a try that ends `retried` with a `FunctionNotFound` error
(job_events.py), and logged: the metrics count it under the function's name and the dashboard
lists it with the recent failures. Later looks are not (one job waiting an hour would otherwise
fill the failure lists); the end, a dead letter, is.

Only the project's worker (worker.py) does this; arq's own loop (`arq ...WorkerSettings`) fails
such a job at once, as arq does.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from arq import Retry
from arq.constants import retry_key_prefix
from arq.worker import Function, func

from ...config import get_settings
from ..job_types import JobContext
from ..keys import queue_of_job
from .retries import record_dead_letter, report_end, report_start

logger = logging.getLogger(__name__)

# The delay before a job is offered again: a tenth of how long it has waited, within these bounds
# (seconds), so a short deploy costs seconds and a stuck one a look a minute.
SHORTEST_DELAY_SECONDS = 5.0
LONGEST_DELAY_SECONDS = 60.0


class FunctionNotFound(Exception):
    """No worker that took the job has its function."""


def waiting_since_key(queue_name: str, job_id: str) -> str:
    return f"{queue_name}:missing-function:{job_id}"


def wait_for_function(name: str) -> Function:
    """The function a worker runs for a job whose function `name` it does not have."""

    async def wait(ctx: JobContext, *args: Any, **kwargs: Any) -> None:
        redis = ctx["redis"]
        settings = get_settings()
        key = waiting_since_key(queue_of_job(ctx), ctx["job_id"])
        wait_seconds = settings.worker_missing_function_wait
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, str(time.time()), nx=True, ex=int(wait_seconds) + 86_400)
            pipe.get(key)
            first_look, since = await pipe.execute()
        waited = time.time() - float(since)
        if waited < wait_seconds:
            # arq counted a try when it read the job: it ran nothing, so take it back.
            await redis.decr(retry_key_prefix + ctx["job_id"])
            delay = min(LONGEST_DELAY_SECONDS, max(SHORTEST_DELAY_SECONDS, waited / 10))
            error = FunctionNotFound(
                f"function {name!r} is not registered on this worker; the job waits for a worker "
                f"that has it (waiting {waited:.0f} s of WORKER_MISSING_FUNCTION_WAIT "
                f"{wait_seconds:.0f} s)"
            )
            if first_look:
                logger.warning("%s: %s; offered again in %.1f s", ctx["job_id"], error, delay)
                report_end(report_start(ctx, name), "retried", error)
            else:
                logger.debug("%s: %s; offered again in %.1f s", ctx["job_id"], error, delay)
            raise Retry(defer=delay)
        error = FunctionNotFound(
            f"function {name!r} is not registered on any worker that took the job in "
            f"{waited:.0f} s (WORKER_MISSING_FUNCTION_WAIT is {wait_seconds:.0f} s)"
        )
        # This last look counts as the job's try: it fails, as every reader says (try 1).
        started = report_start(ctx, name)
        await record_dead_letter(ctx, name, args, kwargs, error)
        await redis.delete(key)
        report_end(started, "failed", error)
        raise error

    wait.__qualname__ = wait.__name__ = f"wait_for_function[{name}]"
    return func(wait, name=name)


class FunctionTable(dict[str, Any]):
    """A worker's functions by name (arq's `Worker.functions`), answering a name it does not
    have with `wait_for_function(name)`: arq reads the table with `functions[name]`."""

    def __init__(self, functions: dict[str, Any], fallback: Callable[[str], Function]) -> None:
        super().__init__(functions)
        self.fallback = fallback

    def __missing__(self, name: str) -> Function:
        return self.fallback(name)
