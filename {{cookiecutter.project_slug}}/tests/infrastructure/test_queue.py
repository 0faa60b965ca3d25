# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The one import place for job authors and clients (queue.py): its list is a contract."""

import importlib

from {{ cookiecutter.package_name }} import queue


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(queue.__all__) == [
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
    assert all(hasattr(queue, name) for name in queue.__all__)


ERRORS = [
    queue.JobAborted,
    queue.JobArgumentError,
    queue.JobFailed,
    queue.PermanentError,
    queue.RedisUnavailableError,
    queue.RequeueRefused,
    queue.ResultNotFound,
    queue.UnknownQueueError,
    queue.UnknownTaskError,
]
# What earlier versions of this project documented importing from infrastructure/tasks.py.
TASKS_CONTRACT = [
    "enqueue_task",
    "get_task_pool",
    "close_task_pool",
    "get_job",
    "job",
    "cron_job",
    "requeue_dead_letter",
    "WorkerSettings",
]


def test_errors_are_ordinary_exceptions() -> None:
    # A web framework's handlers and `except Exception` catch every one of them.
    assert all(issubclass(error, Exception) for error in ERRORS)


def test_the_names_users_already_import_from_tasks_still_work() -> None:
    tasks = importlib.import_module("{{ cookiecutter.package_name }}.infrastructure.tasks")

    assert [name for name in TASKS_CONTRACT if not hasattr(tasks, name)] == []
    assert tasks.enqueue_task is queue.enqueue_task
