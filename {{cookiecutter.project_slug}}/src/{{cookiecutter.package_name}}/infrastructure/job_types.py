"""The types the plumbing and the jobs share, in one place (as arq keeps its own in `arq/typing.py`).

Nothing here imports the project's other modules, so every module may import from it.
"""

from collections.abc import Awaitable, Callable
from typing import Any

# arq passes every job a plain dict: `ctx["redis"]`, `ctx["job_id"]`, `ctx["job_try"]`,
# `ctx["enqueue_time"]`, and what `on_worker_startup` adds (docs/background-tasks.md).
JobContext = dict[str, Any]

# What `job()` and `cron_job()` register: `async def name(ctx, ...) -> result`.
JobFunction = Callable[..., Awaitable[Any]]

# The function a worker runs in place of a job whose payload it cannot read (unreadable.py).
UNREADABLE_JOB = "reject_unreadable_job"
