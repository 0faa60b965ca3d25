# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Declaring jobs: `@job` and `@cron_job`, and the typed handles they return.

    @job(max_tries=5)
    async def send_receipt(ctx: JobContext, order_id: str) -> str: ...

    queued = await send_receipt.enqueue("A-17")        # Job[str]; mypy checks the arguments
    later = await send_receipt.options(defer_by=60).enqueue("A-17")
    once = await send_receipt.options(job_id="receipt-A-17").enqueue("A-17")  # Job[str] | None
    many = await send_receipt.enqueue_many(send_receipt.call(o) for o in orders)  # bulk.py

Declaring only records a `JobSpec` in the registry (registry.py): no pool, no Redis, nothing
that could fail at import. The worker's settings (tasks.py) are built from the registry, so a
new job needs no line anywhere else. A handle's `enqueue(...)` takes exactly the function's
arguments after `ctx` (PEP 612: `ParamSpec`) and returns `Job[R]`, R being what the function
returns; `enqueue_task("name", ...)` stays for callers that know only the name. Enqueue options
go through `options()`, not extra keywords: PEP 612 allows no keyword between `*args: P.args`
and `**kwargs: P.kwargs` (python/mypy#14832).
"""

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, cast, overload

from arq.cron import cron

from ..job_types import JobContext, JobFn, P, R
from ..keys import DEFAULT_QUEUE, QUEUE_NAME_PATTERN
from ..limits import LimitKey, Limits, parse_rate_limit
from ..registry import CRON_PREFIX, JobSpec, register
from ..store.job_handle import Job
from .bulk import JobCall, enqueue_calls
from .enqueue import JobArgumentError, argument_error, enqueue_checked

Delay = int | float | timedelta


@dataclass(frozen=True)
class EnqueueOptions:
    """How `enqueue` queues: a unique job id, a start delay (seconds or a timedelta) or time,
    how long a job not yet started may wait before it is dropped, and the queue (None: the
    job's own)."""

    job_id: str | None = None
    defer_by: Delay | None = None
    defer_until: datetime | None = None
    expires: Delay | None = None
    queue: str | None = None


class DeclaredJob(Generic[P, R]):
    """A declared job: call it as the function (`await send_receipt(ctx, "A-17")`, as a job
    calling another runs it inline), read its `name` and `spec`."""

    def __init__(self, spec: JobSpec, function: JobFn[P, R]) -> None:
        self.spec = spec
        self.function = function
        functools.update_wrapper(self, function)

    @property
    def name(self) -> str:
        """The name workers run it by, and `enqueue_task` takes."""
        return self.spec.name

    async def __call__(self, ctx: JobContext, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.function(ctx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class JobHandle(DeclaredJob[P, R]):
    """A job clients enqueue: `await handle.enqueue(*args, **kwargs)` -> `Job[R]`."""

    def __init__(
        self, spec: JobSpec, function: JobFn[P, R], options: EnqueueOptions | None = None
    ) -> None:
        super().__init__(spec, function)
        self._options = options or EnqueueOptions()

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Queue the job with these arguments (checked as by `enqueue_task`: JobArgumentError
        for any that do not fit, cannot be serialized or exceed JOB_MAX_BYTES, nothing queued)."""
        queued = await self._enqueue(args, kwargs)
        assert queued is not None, "only a job with an id of its own can be a duplicate"
        return queued

    @overload
    def options(
        self,
        *,
        job_id: None = None,
        defer_by: Delay | None = None,
        defer_until: datetime | None = None,
        expires: Delay | None = None,
        queue: str | None = None,
    ) -> "JobHandle[P, R]": ...

    @overload
    def options(
        self,
        *,
        job_id: str,
        defer_by: Delay | None = None,
        defer_until: datetime | None = None,
        expires: Delay | None = None,
        queue: str | None = None,
    ) -> "UniqueJobHandle[P, R]": ...

    def options(
        self,
        *,
        job_id: str | None = None,
        defer_by: Delay | None = None,
        defer_until: datetime | None = None,
        expires: Delay | None = None,
        queue: str | None = None,
    ) -> "JobHandle[P, R] | UniqueJobHandle[P, R]":
        """This handle with enqueue options: `defer_by` (seconds or a timedelta) or
        `defer_until` (a datetime) delay the start; `expires` drops a job not started in time;
        `job_id` makes the job unique (see `UniqueJobHandle`); `queue` sends it to another of
        QUEUES than its own. The options replace any this handle had:
        `h.options(defer_by=60).options(job_id="x")` is unique, not deferred."""
        if defer_by is not None and defer_until is not None:
            raise JobArgumentError(f"{self.name}: give defer_until or defer_by, not both")
        options = EnqueueOptions(job_id, defer_by, defer_until, expires, queue)
        if job_id is not None:
            return UniqueJobHandle(self.spec, self.function, options)
        return JobHandle(self.spec, self.function, options)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> JobCall[P, R]:
        """The job with these arguments and this handle's options, not queued yet: what
        `enqueue_many` takes (bulk.py). The arguments are checked when it is queued."""
        options = self._options
        return JobCall(
            self.name, args, kwargs, options.job_id, options.queue,
            options.defer_by, options.defer_until, options.expires,
        )  # fmt: skip

    def step(self, *args: Any, **kwargs: Any) -> JobCall[..., R]:
        """The job as a later step of a chain, or a group's callback (workflows.py): these
        arguments follow the one it gets first when it runs, the result of the step before
        it (or the list of the group's results), with this handle's options. Checked when
        the workflow is queued, by count and name only: mypy cannot check them here."""
        options = self._options
        return JobCall(
            self.name, args, kwargs, options.job_id, options.queue,
            options.defer_by, options.defer_until, options.expires,
        )  # fmt: skip

    async def enqueue_many(self, calls: Iterable[JobCall[P, R]]) -> list[Job[R] | None]:
        """Queue many calls of this job (`handle.call(...)`) in few round trips: a `Job[R]` each,
        in order, or None for a call whose unique id is taken (bulk.py). Raises as
        `enqueue_task` does, naming the call, before anything is queued; JobArgumentError for
        a call of another job."""
        batch = list(calls)
        for index, each in enumerate(batch):
            if each.name != self.name:
                raise JobArgumentError(
                    f"job {index}: cannot enqueue {self.name!r}: it is a call of {each.name!r}"
                )
        return cast("list[Job[R] | None]", await enqueue_calls(batch))

    async def _enqueue(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job[R] | None:
        mismatch = argument_error(self.spec, len(args), tuple(kwargs))
        if mismatch is not None:
            raise JobArgumentError(f"cannot enqueue {self.name!r}: {mismatch}")
        options = self._options
        queued = await enqueue_checked(
            self.name,
            args,
            kwargs,
            options.job_id,
            options.defer_by,
            options.defer_until,
            options.expires,
            options.queue or self.spec.queue,
        )
        return cast("Job[R] | None", queued)


class UniqueJobHandle(JobHandle[P, R]):
    """A job enqueued under its own id: while a job with that id is queued, running, or its
    result is kept, `enqueue` queues nothing and returns None."""

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R] | None:  # type: ignore[override]
        """As `JobHandle.enqueue`, or None (nothing queued) for a duplicate id."""
        return await self._enqueue(args, kwargs)


class CronJobHandle(DeclaredJob[[], R]):
    """A cron job: workers queue it on its schedule, once per tick however many run it."""


@overload
def job(function: JobFn[P, R], /) -> JobHandle[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
    queue: str = DEFAULT_QUEUE,
    max_concurrency: int | None = None,
    max_concurrency_key: LimitKey | None = None,
    rate_limit: str | None = None,
    rate_limit_key: LimitKey | None = None,
) -> Callable[[JobFn[P, R]], JobHandle[P, R]]: ...


def job(
    function: JobFn[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
    queue: str = DEFAULT_QUEUE,
    max_concurrency: int | None = None,
    max_concurrency_key: LimitKey | None = None,
    rate_limit: str | None = None,
    rate_limit_key: LimitKey | None = None,
) -> JobHandle[P, R] | Callable[[JobFn[P, R]], JobHandle[P, R]]:
    """Declare a job: `@job`, or `@job(max_tries=5, timeout=30, queue="emails")`.

    `max_tries` (default WORKER_MAX_TRIES) counts every try, the first included; `timeout` is
    seconds per try (default WORKER_JOB_TIMEOUT); `name` defaults to the function's; `queue`
    is the one of QUEUES it goes to unless a caller names another.

    Limits hold across every worker (limits.py): `max_concurrency` jobs of it run at once at
    most; `rate_limit` ("50/s", "60/m", "1000/h", "10/d") spaces their starts evenly.
    `max_concurrency_key` / `rate_limit_key` key a limit by an argument: its name, or a
    function taking the job's arguments (after ctx) and returning the key. A limited job runs
    on its own queue only (its limits live there).

    Raises ValueError for a limit below its minimum, a malformed rate or queue name, or a
    limit key that names no argument (or comes without its limit); DuplicateJobError
    (registry.py) for a name taken. Whether QUEUES lists the queue is checked when the job is
    queued and when a worker starts (the settings may not be read yet here).
    """

    def declare(function: JobFn[P, R]) -> JobHandle[P, R]:
        spec = JobSpec(
            name or function.__name__,
            function,
            max_tries=_checked_tries(max_tries),
            timeout=_checked_timeout(timeout),
            queue=_checked_queue(queue),
            limits=_checked_limits(
                function, max_concurrency, max_concurrency_key, rate_limit, rate_limit_key
            ),
        )
        return JobHandle(register(spec), function)

    return declare if function is None else declare(function)


def cron_job(
    *,
    name: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
    queue: str = DEFAULT_QUEUE,
    **schedule: Any,
) -> Callable[[JobFn[[], R]], CronJobHandle[R]]:
    """Declare a cron job: `@cron_job(minute={0, 30})`, run once per tick however many workers
    run it, with the retries, backoff and dead letters of any job.

    `schedule` is arq's `cron()` keywords: `month`, `day`, `weekday`, `hour`, `minute`, `second`
    (an int or a set), `run_at_startup`, `keep_result`, ...; a keyword arq does not know raises
    TypeError here, at declaration. `max_tries`, `timeout` and `queue` (where its ticks go,
    whichever worker queues them) are as for `job()`. Its name, in logs and dead letters, is
    `cron:<function name>`.
    """

    def declare(function: JobFn[[], R]) -> CronJobHandle[R]:
        job_name = CRON_PREFIX + (name or function.__name__)
        try:
            # arq checks the schedule here: nothing runs, nothing connects.
            cron(cast(Any, function), name=job_name, **schedule)
        except (TypeError, ValueError) as error:
            raise type(error)(f"@cron_job for {function.__name__}: {error}") from None
        spec = JobSpec(
            job_name,
            function,
            max_tries=_checked_tries(max_tries),
            timeout=_checked_timeout(timeout),
            schedule=schedule,
            queue=_checked_queue(queue),
        )
        return CronJobHandle(register(spec), function)

    return declare


def _checked_tries(max_tries: int | None) -> int | None:
    if max_tries is not None and max_tries < 1:
        raise ValueError(f"max_tries must be at least 1 (the first try counts), not {max_tries}")
    return max_tries


def _checked_limits(
    function: JobFn[P, R],
    max_concurrency: int | None,
    max_concurrency_key: LimitKey | None,
    rate_limit: str | None,
    rate_limit_key: LimitKey | None,
) -> Limits:
    if max_concurrency is not None and (
        not isinstance(max_concurrency, int)
        or isinstance(max_concurrency, bool)
        or max_concurrency < 1
    ):
        raise ValueError(
            f"max_concurrency must be a whole number, at least 1, not {max_concurrency!r}"
        )
    arguments = list(inspect.signature(function).parameters)[1:]  # after ctx
    for keyword, key, limit in (
        ("max_concurrency_key", max_concurrency_key, max_concurrency),
        ("rate_limit_key", rate_limit_key, rate_limit),
    ):
        if key is None:
            continue
        if limit is None:
            limit_keyword = keyword.removesuffix("_key")
            raise ValueError(f"{keyword} keys a limit: give {limit_keyword} with it")
        if isinstance(key, str) and key not in arguments:
            raise ValueError(
                f"{keyword}={key!r} names no argument of {function.__name__} "
                f"({', '.join(arguments) or 'it takes none after ctx'})"
            )
    return Limits(
        max_concurrency=max_concurrency,
        max_concurrency_key=max_concurrency_key,
        rate_limit=None if rate_limit is None else parse_rate_limit(rate_limit),
        rate_limit_key=rate_limit_key,
    )


def _checked_queue(queue: str) -> str:
    if not QUEUE_NAME_PATTERN.fullmatch(queue):
        raise ValueError(f"queue must be a queue's name (A-Z a-z 0-9 . _ -), not {queue!r}")
    return queue


def _checked_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds above 0, not {timeout}")
    return timeout
