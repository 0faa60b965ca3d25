"""Your background jobs: declare each one here, with `@job` (or `@cron_job` for a schedule).

A job is an `async def` whose first argument is arq's context dict: `ctx["redis"]` (the pool),
`ctx["job_id"]`, `ctx["job_try"]` (1 on the first run), and what worker_lifespan.py opens.
`@job` gives it retries with backoff and dead letters, and the worker runs it: nothing else to
edit. Enqueue it with its typed handle, `await example_task.enqueue(message="Hello!")`, or by
name, `await enqueue_task("example_task", message="Hello!")`. What jobs and clients use comes
from `{{ cookiecutter.package_name }}.queue`. See docs/background-tasks.md; docs/testing.md shows how to test a job.
"""

import asyncio
import dataclasses
import logging

{% if cookiecutter.cache_backend == "falkordb" -%}
from .infrastructure.graph import graph_query
{% endif -%}
from .queue import JobContext, cron_job, job, queue_depth

logger = logging.getLogger(__name__)


@job
async def example_task(ctx: JobContext, message: str = "Hello!", *, seconds: float = 0) -> str:
    """Echo a message back, after `seconds` standing in for real work (none by default).

    The job the docs, the demo and the tests enqueue; `seconds` leaves time to follow it, or to
    abort it as the README shows.
    """
    logger.info("example_task %s (try %s): %s", ctx["job_id"], ctx["job_try"], message)
    if seconds > 0:
        await asyncio.sleep(seconds)
    return f"Processed: {message}"


@cron_job(second=0)
async def report_queue_depth(ctx: JobContext) -> dict[str, int]:
    """Cron job: log how many jobs wait, are deferred and run, so a growing backlog shows up in
    the logs; returns the three counts."""
    queue_name: str = ctx["queue_name"]
    depth = await queue_depth(ctx["redis"], queue_name)
    logger.info(
        "queue %s: %d waiting, %d deferred, %d running",
        queue_name,
        depth.waiting,
        depth.deferred,
        depth.running,
    )
    return dataclasses.asdict(depth)
{%- if cookiecutter.cache_backend == "falkordb" %}


@job
async def record_visit(ctx: JobContext, visitor: str, page: str) -> int:
    """Graph example: record in FalkorDB that `visitor` viewed `page`; return the page's visitors."""
    rows = await graph_query(
        ctx["redis"],
        "visits",
        "MERGE (v:Visitor {name: $visitor}) MERGE (p:Page {path: $page}) MERGE (v)-[:VIEWED]->(p) "
        "WITH p MATCH (:Visitor)-[:VIEWED]->(p) RETURN count(*)",
        visitor=visitor,
        page=page,
    )
    visitors: int = rows[0][0]
    return visitors
{%- endif %}
