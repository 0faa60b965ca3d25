# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The types the plumbing and the jobs share, in one place (as arq keeps its own in `arq/typing.py`).

Nothing here imports the project's other modules, so every module may import from it.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

# arq passes every job a plain dict: `ctx["redis"]`, `ctx["job_id"]`, `ctx["job_try"]`,
# `ctx["enqueue_time"]`, and what the worker's start-up and your worker_lifespan.py add
# (docs/background-tasks.md).
JobContext = dict[str, Any]

# A job function's arguments after `ctx`, and what it returns.
P = ParamSpec("P")
R = TypeVar("R")

# What `@job` and `@cron_job` take: `async def name(ctx, ...) -> result`.
JobFn: TypeAlias = Callable[Concatenate[JobContext, P], Awaitable[R]]

# Any job function, its arguments unknown: what the worker's plumbing handles.
JobFunction = Callable[..., Awaitable[Any]]

# The function a worker runs in place of a job whose payload it cannot read (unreadable.py).
UNREADABLE_JOB = "reject_unreadable_job"
# The function arq records for a job the worker found nothing of but its id: its record
# expired (`_expires`) before it ran, so its function, arguments and enqueue time are unknown.
UNKNOWN_FUNCTION = "<unknown>"


class PermanentError(Exception):
    """Raise it (or a subclass) from a job when trying again cannot help: it fails at once."""
