"""Graph queries on FalkorDB, over the same Redis the job queue uses.

The official `falkordb` client needs a newer redis-py than arq allows (arq pins redis<6), so
queries go through redis-py's `execute_command("GRAPH.QUERY", ...)`, which any version supports.
"""

from typing import Any

from redis.asyncio import Redis


async def graph_query(redis: Redis, graph: str, cypher: str) -> list[list[Any]]:
    """Run a Cypher query on `graph` and return its rows (the header and statistics dropped)."""
    # redis-py ships execute_command without type annotations.
    reply = await redis.execute_command("GRAPH.QUERY", graph, cypher)  # type: ignore[no-untyped-call]
    # A reply is [header, rows, statistics]; a query that returns nothing is [statistics].
    if len(reply) < 3:
        return []
    return [[_decoded(value) for value in row] for row in reply[1]]


def _decoded(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
