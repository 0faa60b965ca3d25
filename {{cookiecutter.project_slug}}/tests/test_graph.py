"""The embedded server has the FalkorDB module loaded, and graph queries work through redis-py."""

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.graph import graph_query


async def test_graph_query_creates_and_reads_nodes(task_pool: ArqRedis) -> None:
    create = "CREATE (:Person {name: 'Ada'}), (:Person {name: 'Alan'})"
    await graph_query(task_pool, "people", create)

    rows = await graph_query(task_pool, "people", "MATCH (p:Person) RETURN p.name ORDER BY p.name")

    assert [row[0] for row in rows] == ["Ada", "Alan"]
