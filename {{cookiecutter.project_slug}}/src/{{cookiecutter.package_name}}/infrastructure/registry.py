# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The job registry: every job and cron job the project declares, by name.

`@job` and `@cron_job` (client/handles.py) record a `JobSpec` here when the user's jobs module is
imported; nothing else happens at import (no pool, no Redis). The worker's settings (tasks.py)
and the client's argument checks (client/enqueue.py) read it. The registry imports no job: it
loads the user's job module by name the first time it is read (`load_jobs()`), so the client,
which jobs import, never imports the jobs back (the way Celery's `autodiscover_tasks` and
procrastinate's `import_paths` find tasks).
"""

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from .job_types import JobFunction
from .keys import DEFAULT_QUEUE
from .limits import Limits

# The module whose import declares the project's jobs: `jobs.py`, or a `jobs/` package whose
# `__init__.py` imports its modules.
JOBS_MODULE = f"{__name__.partition('.')[0]}.jobs"
# Every cron job's name starts with this (arq's own prefix), and so does every tick's job id.
CRON_PREFIX = "cron:"


class DuplicateJobError(ValueError):
    """Two different functions declared under one job name."""


# eq=False: each declaration is its own spec (hashed by identity), which caches can key on.
@dataclass(frozen=True, eq=False)
class JobSpec:
    """One declared job: the function, its name, its queue, and its own limits (None: the
    worker-wide setting). `timeout` is in seconds, per try. `schedule` is set for a cron job only: arq's
    `cron()` keywords (`minute={0, 30}`, `run_at_startup=True`, ...)."""

    name: str
    function: JobFunction
    max_tries: int | None = None
    timeout: float | None = None
    schedule: dict[str, Any] | None = None
    # The queue it goes to unless the caller names another (QUEUES).
    queue: str = DEFAULT_QUEUE
    # Limits across every worker (limits.py); none by default.
    limits: Limits = field(default_factory=Limits)
    signature: inspect.Signature = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signature", inspect.signature(self.function))

    @property
    def is_cron(self) -> bool:
        return self.schedule is not None


_specs: dict[str, JobSpec] = {}
_loaded = False


def register(spec: JobSpec) -> JobSpec:
    """Record `spec`; the same function declared again (a module imported twice) is kept once.

    Raises DuplicateJobError when another function already holds the name.
    """
    held = _specs.get(spec.name)
    if held is not None and _origin(held.function) != _origin(spec.function):
        raise DuplicateJobError(
            f"two jobs are named {spec.name!r}: {_origin(held.function)} and "
            f"{_origin(spec.function)}; give one of them another name (@job(name=...))"
        )
    _specs[spec.name] = spec
    return spec


def load_jobs() -> None:
    """Import the project's jobs module once, which declares its jobs."""
    global _loaded
    if not _loaded:
        importlib.import_module(JOBS_MODULE)
        _loaded = True


def declared() -> list[JobSpec]:
    """Every declared job and cron job, in the order they were declared."""
    load_jobs()
    return list(_specs.values())


def enqueueable(name: str) -> JobSpec | None:
    """The job clients may enqueue as `name`, or None (no such job, or a cron job): one lookup,
    for `enqueue_task`'s every call."""
    load_jobs()
    spec = _specs.get(name)
    return None if spec is None or spec.is_cron else spec


def jobs() -> dict[str, JobSpec]:
    """What clients may enqueue by name: the declared jobs that are not cron jobs."""
    return {spec.name: spec for spec in declared() if not spec.is_cron}


def requeueable() -> dict[str, JobSpec]:
    """What a dead letter may be queued again as: every job, cron jobs (`cron:<name>`) too."""
    return {spec.name: spec for spec in declared()}


def _origin(function: JobFunction) -> str:
    return f"{function.__module__}.{function.__qualname__}"
