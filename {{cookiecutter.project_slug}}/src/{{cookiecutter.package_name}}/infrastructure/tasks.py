# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The worker's settings: `WorkerSettings`, the class `arq` reads, built from the jobs you declare.

Start a worker with `uv run python -m {{ cookiecutter.package_name }}.infrastructure.worker` (`just worker`): arq's
worker with a loop that starts queued jobs at once (worker/loop.py).
`uv run arq {{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings` runs the same jobs with arq's own loop.
The jobs are declared with `@job` and `@cron_job` in `{{ cookiecutter.package_name }}/jobs.py`; the resources they
share open in `{{ cookiecutter.package_name }}/worker_lifespan.py`. Neither needs a line here.
Clients import from `{{ cookiecutter.package_name }}.queue`; the client names are also importable from here,
as they always were (`from {{ cookiecutter.package_name }}.infrastructure.tasks import enqueue_task`).
"""

from ..config import get_settings
from ..worker_lifespan import worker_lifespan
from .client.enqueue import (
    JobArgumentError,
    RequeueRefused,
    UnknownTaskError,
    close_task_pool,
    enqueue_task,
    get_job,
    get_task_pool,
    requeue_blocker,
    requeue_dead_letter,
)
from .client.handles import cron_job, job
from .settings import settings_or_exit
from .store.connection import redis_settings
from .store.serialization import serialize
from .worker.functions import TIMEOUT_BACKSTOP_SECONDS, arq_function, worker_functions
from .worker.hooks import WorkerHooks
from .worker.unreadable import deserialize_job, reject_unreadable_job

__all__ = [
    "JobArgumentError",
    "RequeueRefused",
    "UnknownTaskError",
    "WorkerSettings",
    "close_task_pool",
    "cron_job",
    "enqueue_task",
    "get_job",
    "get_task_pool",
    "job",
    "requeue_blocker",
    "requeue_dead_letter",
]

# Read when the `arq` command (or worker/__main__.py) imports this module: a bad setting ends it here.
_settings = settings_or_exit(get_settings)
# Every job declared with @job / @cron_job (registry.py), as arq's functions and cron jobs.
_functions, _cron_jobs = worker_functions()
_hooks = WorkerHooks(worker_lifespan)


class WorkerSettings:
    """What `arq` reads to build a worker.

    arq reads only this class's own attributes (no inheritance) and silently ignores names it
    does not know, so every attribute below is a real `arq.worker.Worker` argument.
    """

    functions = (arq_function(reject_unreadable_job, max_tries=1), *_functions)
    cron_jobs = tuple(_cron_jobs)
    on_startup = _hooks.on_startup
    on_shutdown = _hooks.on_shutdown
    # Lets live workers restart a dead worker's jobs without waiting out their time limit.
    on_job_start = _hooks.on_job_start
    after_job_end = _hooks.after_job_end
    # A worker rides out a Redis restart: it keeps trying for WORKER_RECONNECT_SECONDS.
    redis_settings = redis_settings(reconnect_for=_settings.worker_reconnect_seconds)
    job_serializer = serialize
    # A payload the worker cannot read becomes a dead letter (unreadable.py), never code run.
    job_deserializer = deserialize_job
    # The first queue served (WORKER_QUEUES): all that arq's own `arq` command serves; the
    # project's worker serves them all (worker/loop.py's `create_worker`).
    queue_name = _settings.queue_keys[_settings.served_queues[0]]
    max_jobs = _settings.worker_max_jobs
    job_timeout = _settings.worker_job_timeout + TIMEOUT_BACKSTOP_SECONDS
    keep_result = _settings.worker_keep_result
    poll_delay = _settings.worker_poll_delay
    max_tries = _settings.worker_max_tries
    health_check_interval = _settings.worker_health_check_interval
    job_completion_wait = _settings.worker_shutdown_grace
    allow_abort_jobs = True
