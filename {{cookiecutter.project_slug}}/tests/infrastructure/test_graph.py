# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The embedded server has the FalkorDB module loaded; graph queries and the graph job work."""

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.graph import graph_query
from {{ cookiecutter.package_name }}.infrastructure.tasks import enqueue_task

from .conftest import RunWorker


async def test_graph_query_creates_and_reads_nodes(task_pool: ArqRedis) -> None:
    create = "CREATE (:Person {name: 'Ada'}), (:Person {name: 'Alan'})"
    await graph_query(task_pool, "people", create)

    rows = await graph_query(task_pool, "people", "MATCH (p:Person) RETURN p.name ORDER BY p.name")

    assert [row[0] for row in rows] == ["Ada", "Alan"]


async def test_parameters_are_values_never_cypher(task_pool: ArqRedis) -> None:
    sly = "Robert\"}) DETACH DELETE n //\\ 'quoted' ünïcode"
    await graph_query(
        task_pool, "people", "CREATE (:Person {name: $name, age: $age})", name=sly, age=36
    )

    rows = await graph_query(
        task_pool, "people", "MATCH (p:Person {name: $name}) RETURN p.name, p.age, $flag, $none",
        name=sly, flag=True, none=None,
    )  # fmt: skip

    assert rows == [[sly, 36, "true", None]]


async def test_record_visit_job_counts_a_pages_visitors(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    visitor_counts = []
    for visitor, page in [("ada", "/pricing"), ("alan", "/pricing"), ("ada", "/docs")]:
        job = await enqueue_task("record_visit", visitor, page)
        assert job is not None
        await run_burst_worker()  # one visit at a time, so the counts come in order
        visitor_counts.append(await job.result(timeout=5))

    assert visitor_counts == [1, 2, 1]
