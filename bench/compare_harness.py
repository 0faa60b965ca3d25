"""What compare.py's modules share: progress lines, time limits, and spreading work over rounds.

A module of its own so that the systems compared (compare_arq.py, compare_peers.py), the parts
that measure them (compare_default.py, compare_processes.py) and the report can all use these
without importing one another. What every bench script shares is in benchkit.py; this is
compare.py's own. Its top level imports the standard library only: both halves import it (the
template's environment, where arq is not installed, and the baked project's venv).
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

ENQUEUE_BATCH = 100  # concurrent enqueues when filling a queue before a drain
RUN_TIMEOUT_SECONDS = 900  # the inside half without --workers; one Celery run; one drain worker
WORKER_STOP_SECONDS = 10  # a worker process's grace after SIGTERM
PEER_TIMEOUT_SECONDS = 1800  # one queue's drains in worker processes, or one peer's run, one round


def say(message: str) -> None:
    """A progress line, on stderr: stdout carries the inside half's JSON and the tables."""
    print(f"compare: {message}", file=sys.stderr, flush=True)


def share(total: int, rounds: int, index: int) -> int:
    """Round `index`'s part of `total`, spread as evenly as whole numbers allow."""
    return total // rounds + (index < total % rounds)


async def enqueue_many(enqueue: Callable[[], Awaitable[Any]], count: int) -> None:
    """Queue `count` jobs with `enqueue`, ENQUEUE_BATCH at a time (not timed: a drain's setup)."""
    for first in range(0, count, ENQUEUE_BATCH):
        await asyncio.gather(*(enqueue() for _ in range(min(ENQUEUE_BATCH, count - first))))
