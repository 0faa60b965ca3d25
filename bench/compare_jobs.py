"""The jobs every arq worker in compare.py runs: the same functions for the generated worker and
for plain arq, so that what differs between their rows is the worker around the job.

They live apart from the workers so that a worker process (compare_arq.py's `queue_worker`) can
set `RECORDER` before any job runs: in a worker process of --workers' measurements each job
notes its end (and `stamp` its wait) in the file shared with the measuring side, so a drain's end
is seen without any Redis command. In-process drains leave `RECORDER` unset; only `noop` runs
there. Standard library and benchkit only at the top level.
"""

import asyncio
from typing import Any

from benchkit import IO_SECONDS, JobRecorder

# Set in a worker process of --workers' measurements: the jobs below report to it.
RECORDER: JobRecorder | None = None


async def noop(ctx: dict[str, Any]) -> None:
    """The measured job: does nothing, so what is timed is the queue around it."""
    if RECORDER is not None:
        RECORDER.ended()


async def io(ctx: dict[str, Any]) -> None:
    """--workers' I/O-bound job: waits 10 ms, as a job waiting on a service would."""
    await asyncio.sleep(IO_SECONDS)
    assert RECORDER is not None
    RECORDER.ended()


async def stamp(ctx: dict[str, Any], enqueued_at: float) -> None:
    """--workers' latency job: notes its wait, time.time() less the caller's before enqueueing."""
    assert RECORDER is not None
    RECORDER.started(enqueued_at)
    RECORDER.ended()


BENCH_JOBS = (noop, io, stamp)
