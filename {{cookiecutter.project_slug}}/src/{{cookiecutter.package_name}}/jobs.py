"""Background jobs: this is where you add work.

A job is an `async def` whose first argument is arq's context dict:
`ctx["redis"]` (the pool), `ctx["job_id"]`, `ctx["job_try"]` (1 on the first run).
Register it in `WorkerSettings.functions` (infrastructure/tasks.py) as `job(my_job)`, which adds
retries with backoff and dead letters, and enqueue it with
`await enqueue_task("example_task", message="Hello!")`. See docs/background-tasks.md.
"""

import logging
from typing import Any
{%- if cookiecutter.cache_backend == "falkordb" %}

from .infrastructure.graph import graph_query
{%- endif %}

logger = logging.getLogger(__name__)

# arq passes every job a plain dict; this alias documents what it is.
JobContext = dict[str, Any]


async def example_task(ctx: JobContext, message: str = "Hello!") -> str:
    """Echo a message back: the job the docs, the demo and the tests enqueue."""
    logger.info("example_task %s (try %s): %s", ctx["job_id"], ctx["job_try"], message)
    return f"Processed: {message}"


async def report_queue_depth(ctx: JobContext) -> int:
    """Cron job: log how many jobs are waiting, so a growing backlog shows up in the logs."""
    queue_name: str = ctx["queue_name"]
    depth: int = await ctx["redis"].zcard(queue_name)
    logger.info("queue %s holds %d waiting job(s)", queue_name, depth)
    return depth
{%- if cookiecutter.cache_backend == "falkordb" %}


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
