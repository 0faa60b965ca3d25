# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What a worker runs for each declared job: arq's `Function` (`arq_function()`) for jobs clients
enqueue, arq's `CronJob` (`arq_cron_job()`) for jobs the worker queues itself on a schedule. Both
run the function inside `retrying()`; `worker_functions()` builds them all from the registry.

Cron ticks have two arq traps, both handled here:
- arq gives each tick a job id (`cron:<function>:<time in ms>`), but a fast tick whose result is
  not kept can be queued again by a slower worker and run twice (arq #196). Each tick is claimed in
  `<queue>:cron-claims:<job id>`, tied to the tick's enqueue time: a retry of the same job passes,
  a second job with the same id is skipped.
- arq keeps a finished cron job's in-progress mark for 60 s, also when the tick is to be retried,
  so a retry would wait a minute whatever its backoff. `release_retried_tick` (called when a job
  ends) removes that mark while the tick is queued again.
"""

import functools
import logging
from typing import Any

from arq import cron
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob
from arq.worker import Function, func

from ...config import get_settings
from .. import registry
from ..job_types import JobContext, JobFunction
from ..keys import bare_job_id, queue_of_job
from ..registry import CRON_PREFIX, JobSpec
from ..store.job_handle import enqueue_time_ms
from .retries import retrying

logger = logging.getLogger(__name__)

# arq's own time limit sits this much after ours (see retries.py), as a backstop.
TIMEOUT_BACKSTOP_SECONDS = 5.0
# How long a cron tick stays claimed: far longer than any gap between two workers' polls.
CRON_CLAIM_SECONDS = 3600

# KEYS: the claim; ARGV: the tick's enqueue time (ms), the claim's lifetime (s).
# 1 if this job holds the claim (now, or since an earlier try), 0 if another job does.
CLAIM_TICK = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0
"""

# KEYS: the tick's in-progress mark, the queue; ARGV: the job id.
RELEASE_RETRIED_TICK = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
"""


def worker_functions() -> tuple[list[Function], list[CronJob]]:
    """arq's functions and cron jobs for every job declared with `@job` and `@cron_job`.

    Raises ValueError, naming them, for jobs whose queue QUEUES does not list: a worker would
    never serve it, and `enqueue_task` refuses it.
    """
    functions: list[Function] = []
    cron_jobs: list[CronJob] = []
    queues = get_settings().queues
    astray = [
        f"{spec.name} ({spec.queue})" for spec in registry.declared() if spec.queue not in queues
    ]
    if astray:
        raise ValueError(
            f"jobs declared on queues QUEUES does not list ({', '.join(queues)}): "
            f"{', '.join(astray)}; add the queues to QUEUES (docs/queues.md)"
        )
    for spec in registry.declared():
        if spec.schedule is None:
            functions.append(arq_function(spec.function, **_limits(spec), name=spec.name))
        else:
            cron_jobs.append(
                arq_cron_job(spec.function, **_limits(spec), name=spec.name, **spec.schedule)
            )
    return functions, cron_jobs


def cron_queues() -> dict[str, str]:
    """Each declared cron job's name -> the key of the queue its ticks go to."""
    keys = get_settings().queue_keys
    return {spec.name: keys[spec.queue] for spec in registry.declared() if spec.is_cron}


def limited_queues() -> set[str]:
    """The keys of the queues some declared job with limits (limits.py) goes to."""
    keys = get_settings().queue_keys
    return {keys[spec.queue] for spec in registry.declared() if spec.limits}


def _limits(spec: JobSpec) -> dict[str, Any]:
    return {"max_tries": spec.max_tries, "timeout": spec.timeout}


def arq_function(
    coroutine: JobFunction,
    *,
    name: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
) -> Function:
    """arq's `Function` for a job: retries with backoff, dead letters, and an optional per-job
    `max_tries` / `timeout` (seconds) in place of the worker-wide settings. Tests build worker
    settings from it for jobs they do not declare."""
    name = name or coroutine.__name__
    return func(
        retrying(coroutine, max_tries=max_tries, timeout=timeout, registered_as=name),  # type: ignore[arg-type]
        name=name,
        max_tries=max_tries,
        timeout=_backstop(timeout),
    )


def arq_cron_job(
    coroutine: JobFunction,
    *,
    name: str | None = None,
    max_tries: int | None = None,
    timeout: float | None = None,
    **schedule: Any,
) -> CronJob:
    """arq's `CronJob` for a cron job that runs once per tick however many workers run it, with
    the same retries, backoff and dead letters as `arq_function()`.

    `schedule` goes to arq's `cron()`: `month`, `day`, `weekday`, `hour`, `minute`, `second`
    (an int or a set), `run_at_startup`, `keep_result`, ... `max_tries` (default
    `WORKER_MAX_TRIES`) and `timeout` (seconds, default `WORKER_JOB_TIMEOUT`) are per try, as in
    `arq_function()`.
    """
    # arq's cron() defaults to one try: pass the number `retrying()` counts with.
    tries = max_tries if max_tries is not None else get_settings().worker_max_tries
    name = name or CRON_PREFIX + coroutine.__name__
    run = retrying(coroutine, max_tries=tries, timeout=timeout, registered_as=name)

    @functools.wraps(coroutine)
    async def once_per_tick(ctx: JobContext) -> Any:
        if not await _claim_tick(ctx):
            logger.info(
                "%s skipped: a job with this id already ran this tick "
                "(queued again after it finished, arq #196)",
                ctx["job_id"],
            )
            return None
        heartbeat = ctx.get("heartbeats", {}).get(queue_of_job(ctx))
        if heartbeat is not None:
            # Ticks often report on the queue: list this one as running before it counts.
            await heartbeat.running_jobs.written()
        return await run(ctx)

    return cron(
        once_per_tick,
        name=name,
        max_tries=tries,
        timeout=_backstop(timeout),
        **schedule,
    )


async def _claim_tick(ctx: JobContext) -> bool:
    claim = f"{queue_of_job(ctx)}:cron-claims:{ctx['job_id']}"
    enqueued_ms = enqueue_time_ms(ctx["enqueue_time"])
    held = await ctx["redis"].eval(CLAIM_TICK, 1, claim, str(enqueued_ms), str(CRON_CLAIM_SECONDS))
    return bool(held)


async def release_retried_tick(ctx: JobContext) -> None:
    """When a cron tick ends and is queued again (a retry), drop the 60 s in-progress mark arq
    keeps on cron jobs, so the retry starts after its backoff, not a minute later."""
    if bare_job_id(ctx["job_id"]).startswith(CRON_PREFIX):
        await ctx["redis"].eval(
            RELEASE_RETRIED_TICK,
            2,
            in_progress_key_prefix + ctx["job_id"],
            queue_of_job(ctx),
            ctx["job_id"],
        )


def _backstop(timeout: float | None) -> float | None:
    return None if timeout is None else timeout + TIMEOUT_BACKSTOP_SECONDS
