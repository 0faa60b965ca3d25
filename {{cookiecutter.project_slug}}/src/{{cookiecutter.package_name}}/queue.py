# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Everything job authors and clients use, in one place (tests/infrastructure/test_queue.py pins
the list).

    from {{ cookiecutter.package_name }}.queue import JobContext, enqueue_task, get_job, job

Job authors: `@job` / `@cron_job` to declare a job where it lives (jobs.py), `JobContext`,
`PermanentError`, `Retry`, `report_progress`. Clients: a declared job's `enqueue(...)` (typed:
`Job[R]`; many at once with `enqueue_many` and `call(...)`), or `enqueue_task("name", ...)` by
name (many: `enqueue_many`); `get_job` and the `Job` handle (its `progress()` too), `run_sync`
from synchronous code, `queue_depth`, `retry_job` (a failed job again, as the dashboard's Retry), and
the errors. Work that spans jobs: `enqueue_chain`,
`enqueue_group` (with a handle's `step(...)`) and their `Workflow` handle (`get_workflow`). See
docs/background-tasks.md and docs/workflows.md.
"""

from arq import Retry
from arq.jobs import ResultNotFound

from .infrastructure.client.bulk import JobCall, enqueue_many
from .infrastructure.client.enqueue import (
    JobArgumentError,
    RequeueRefused,
    UnknownQueueError,
    UnknownTaskError,
    close_task_pool,
    enqueue_task,
    get_job,
    get_task_pool,
    requeue_blocker,
    requeue_dead_letter,
    retry_job,
    run_sync,
)
from .infrastructure.client.handles import (
    CronJobHandle,
    DeclaredJob,
    JobHandle,
    UniqueJobHandle,
    cron_job,
    job,
)
from .infrastructure.client.workflows import (
    MemberState,
    Workflow,
    WorkflowNotFound,
    WorkflowState,
    WorkflowStatus,
    enqueue_chain,
    enqueue_group,
    get_workflow,
)
from .infrastructure.job_types import JobContext, JobFunction, PermanentError
from .infrastructure.limits import LimitWait
from .infrastructure.registry import DuplicateJobError
from .infrastructure.store.connection import RedisUnavailableError
from .infrastructure.store.depth import QueueDepth, queue_depth
from .infrastructure.store.job_handle import Job, JobState, JobStatus
from .infrastructure.store.progress import Progress, report_progress
from .infrastructure.store.serialization import JobAborted, JobFailed

__all__ = [
    "CronJobHandle",
    "DeclaredJob",
    "DuplicateJobError",
    "Job",
    "JobAborted",
    "JobArgumentError",
    "JobCall",
    "JobContext",
    "JobFailed",
    "JobFunction",
    "JobHandle",
    "JobState",
    "JobStatus",
    "LimitWait",
    "MemberState",
    "PermanentError",
    "Progress",
    "QueueDepth",
    "RedisUnavailableError",
    "RequeueRefused",
    "ResultNotFound",
    "Retry",
    "UniqueJobHandle",
    "UnknownQueueError",
    "UnknownTaskError",
    "Workflow",
    "WorkflowNotFound",
    "WorkflowState",
    "WorkflowStatus",
    "close_task_pool",
    "cron_job",
    "enqueue_chain",
    "enqueue_group",
    "enqueue_many",
    "enqueue_task",
    "get_job",
    "get_task_pool",
    "get_workflow",
    "job",
    "queue_depth",
    "report_progress",
    "requeue_blocker",
    "requeue_dead_letter",
    "retry_job",
    "run_sync",
]
