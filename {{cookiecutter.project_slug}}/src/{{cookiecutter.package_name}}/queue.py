"""Everything job authors and clients use, in one place (tests/test_queue.py pins the list).

    from {{ cookiecutter.package_name }}.queue import enqueue_task, get_job, JobFailed

Job authors: `JobContext`, `PermanentError`, `Retry`, and `job()` / `cron_job()` to register a job
in `WorkerSettings` (infrastructure/tasks.py). Clients: `enqueue_task`, `get_job` and the `Job`
handle, `run_sync` from synchronous code, `queue_depth`, and the errors. See
docs/background-tasks.md.
"""

from arq import Retry
from arq.jobs import ResultNotFound

from .infrastructure.client import (
    JobArgumentError,
    RequeueRefused,
    UnknownTaskError,
    close_task_pool,
    enqueue_task,
    get_job,
    get_task_pool,
    requeue_blocker,
    requeue_dead_letter,
    run_sync,
)
from .infrastructure.connection import RedisUnavailableError
from .infrastructure.depth import QueueDepth, queue_depth
from .infrastructure.functions import cron_job, job
from .infrastructure.job_handle import Job, JobStatus
from .infrastructure.job_types import JobContext, JobFunction
from .infrastructure.retries import PermanentError
from .infrastructure.serialization import JobAborted, JobFailed

__all__ = [
    "Job",
    "JobAborted",
    "JobArgumentError",
    "JobContext",
    "JobFailed",
    "JobFunction",
    "JobStatus",
    "PermanentError",
    "QueueDepth",
    "RedisUnavailableError",
    "RequeueRefused",
    "ResultNotFound",
    "Retry",
    "UnknownTaskError",
    "close_task_pool",
    "cron_job",
    "enqueue_task",
    "get_job",
    "get_task_pool",
    "job",
    "queue_depth",
    "requeue_blocker",
    "requeue_dead_letter",
    "run_sync",
]
