# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Health checks, for a load balancer, compose or Kubernetes probes.

`GET /health/live` answers 200 as long as the process serves requests, and does no I/O: point
liveness probes at it, so that {% if cookiecutter.cache_backend != "none" %}a Redis outage{% else %}a slow dependency{% endif %} never gets the API restarted.
{%- if cookiecutter.cache_backend != "none" %}
`GET /health/ready` answers 200 when Redis replies to a PING within `API_READY_TIMEOUT` seconds
and would take a write, else 503 with the reason (connection.py's line for it: out of reach, out
of memory (used_memory past maxmemory, from INFO), a read-only replica): point readiness probes
at it. Its body counts the live workers
(heartbeat.py), and with several QUEUES those of each queue too, but no worker does not make the
API unready: jobs wait in the queue until a worker starts, so alert on the count instead.
{%- else %}
`GET /health/ready` answers 200 once the app has started: point readiness probes at it, and make
it check what requests need when the app comes to depend on other services.
{%- endif %}
"""

{% if cookiecutter.cache_backend != "none" -%}
import asyncio
{% endif -%}
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
{%- if cookiecutter.cache_backend != "none" %}

from ..infrastructure.store.connection import RedisUnavailableError, unavailable, write_refusal
from ..infrastructure.store.heartbeat import live_workers
from ..queue import get_task_pool
from .dependencies import AppSettings
from .problems import problem_responses
{%- endif %}

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready"]
{%- if cookiecutter.cache_backend != "none" %}
    # Workers whose heartbeat is current; 0 is not a failure, but nothing runs the jobs. None
    # when Redis answered but did not finish counting them within API_READY_TIMEOUT.
    workers: int | None
    # With several QUEUES: the live workers serving each (a worker serving two counts in both).
    queues: dict[str, int] | None = None
{%- endif %}


@router.get("/live")
async def live() -> Liveness:
    """The process is up and serving requests."""
    return Liveness(status="alive")
{%- if cookiecutter.cache_backend != "none" %}


@router.get("/ready", responses=problem_responses(503), response_model_exclude_unset=True)
async def ready(settings: AppSettings) -> Readiness:
    """Redis answers within `API_READY_TIMEOUT` seconds and would take a write (it is not out
    of memory, nor a read-only replica); the body counts the live workers, and with several
    QUEUES those serving each queue."""
    # The pool is opened here rather than through `TaskPool`, so that the time limit covers
    # connecting too (REDIS_CONNECT_TIMEOUT alone allows 5 s).
    try:
        async with asyncio.timeout(settings.api_ready_timeout) as time_limit:
            pool = await get_task_pool(retries=0)
            await pool.ping()
            refusal = await write_refusal(pool)
    except TimeoutError as error:  # asyncio's, and socket timeouts, alike
        reason = TimeoutError(f"no answer within {settings.api_ready_timeout:g} s")
        raise unavailable(reason) from error
    if refusal is not None:
        raise RedisUnavailableError(refusal.message, refusal.kind)
    # Counting scans the keyspace (heartbeat.py), which a large Redis answers slower than a
    # PING; readiness does not depend on it.
    try:
        async with asyncio.timeout_at(time_limit.when()):
            beats = {
                queue: await live_workers(pool, key) for queue, key in settings.queue_keys.items()
            }
    except TimeoutError:
        return Readiness(status="ready", workers=None)
    # A worker serving several queues beats in each: counted once, by host and process.
    workers = len({(beat.host, beat.pid) for each in beats.values() for beat in each})
    if len(beats) == 1:
        return Readiness(status="ready", workers=workers)
    queues = {queue: len(each) for queue, each in beats.items()}
    return Readiness(status="ready", workers=workers, queues=queues)
{%- else %}


@router.get("/ready")
async def ready() -> Readiness:
    """The app has started and can serve requests."""
    return Readiness(status="ready")
{%- endif %}
