# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
{% if cookiecutter.cache_backend != "none" -%}
"""What routes receive through `Depends`: the settings, the task pool, the job a path names, and
`authorize`. Tests replace any of them with `app.dependency_overrides[...]`.
{%- else -%}
"""What routes receive through `Depends`: the settings, and `authorize`. Tests replace either
with `app.dependency_overrides[...]`.
{%- endif %}
"""

{% if cookiecutter.cache_backend != "none" -%}
import asyncio
{% endif -%}
from typing import Annotated{% if cookiecutter.cache_backend != "none" %}, Any{% endif %}

{% if cookiecutter.cache_backend != "none" -%}
from arq.connections import ArqRedis
from fastapi import Depends, Path
{%- else -%}
from fastapi import Depends
{%- endif %}

from ..config import Settings, get_settings
{%- if cookiecutter.cache_backend != "none" %}
from ..infrastructure.client.enqueue import job_by_id, open_task_pool
from ..infrastructure.keys import JOB_ID_MAX_LENGTH, JOB_ID_PATTERN
from ..infrastructure.store.connection import unavailable
from ..queue import Job, get_task_pool
{%- endif %}


async def current_settings() -> Settings:
    """The process-wide settings (config.py)."""
    # `async`: FastAPI runs a plain `def` dependency in a thread, which cost every job request
    # about 185 µs (the template's bench/api.py); this one does no I/O.
    return get_settings()


AppSettings = Annotated[Settings, Depends(current_settings)]
{%- if cookiecutter.cache_backend != "none" %}


async def task_pool() -> ArqRedis:
    """The running event loop's task pool, the one `enqueue_task` and `get_job` use too.

    The app's lifespan opens it; if Redis was down then, the first request after Redis is back
    opens it. One attempt, no retries, within `REDIS_CONNECT_TIMEOUT` seconds: while Redis is
    down a request answers 503 at once, instead of after `REDIS_CONNECT_RETRIES` retries, and a
    server that accepts connections but never answers cannot hold it forever. Raises
    `RedisUnavailableError`.

    FastAPI runs dependencies before it validates the path and the body, so while the pool is
    not open an invalid request is answered 503 too; once it is open this does no I/O, and an
    invalid request gets its 422 without Redis being asked anything.
    """
    pool = open_task_pool()
    if pool is not None:  # the common case: no I/O, and no timer to arm
        return pool
    # The process's settings, as `get_task_pool` reads them; not a dependency, which FastAPI
    # would solve on every request for a value needed only while the pool is being opened.
    settings = get_settings()
    try:
        async with asyncio.timeout(settings.redis_connect_timeout):
            return await get_task_pool(retries=0)
    except TimeoutError as error:
        reason = TimeoutError(f"no answer within {settings.redis_connect_timeout} s")
        raise unavailable(reason) from error


TaskPool = Annotated[ArqRedis, Depends(task_pool)]

# keys.py's id rule; anything else is refused with 422 before Redis is asked about it.
JobId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=JOB_ID_MAX_LENGTH,
        pattern=JOB_ID_PATTERN,
        description="The job's id: 1-256 of A-Z, a-z, 0-9 and . _ : - { }",
    ),
]


async def job_handle(job_id: JobId, pool: TaskPool) -> Job[Any]:
    """The `Job` handle (job_handle.py) for the job the path names; it may not exist."""
    return job_by_id(job_id, pool)


JobHandle = Annotated[Job[Any], Depends(job_handle)]
{%- endif %}


async def authorize() -> None:
    """Decide whether the caller may use a route: the one place to plug in real authentication.
{%- if cookiecutter.cache_backend != "none" %}

    It allows every request: until you change it, the job routes that depend on it (examples.py,
    jobs.py) are open to anyone who can reach the API. The health checks do not depend on it.
{%- else %}

    It allows every request. Routes that act on data should depend on it, with
    `APIRouter(dependencies=[Depends(authorize)])`; the health checks do not.
{%- endif %}

    To require a bearer token, write here what docs/api.md (Authentication) shows{% if cookiecutter.cache_backend != "none" %};
    tests/test_api_jobs.py runs that very code against the job routes{% endif %}. A 401 or 403
    raised here is sent as a problem document, as every error is (problems.py). Return the
    caller's identity when routes need it{% if cookiecutter.cache_backend != "none" %}, and then scope Idempotency-Keys by it too
    (examples.py){% endif %}.
    """
