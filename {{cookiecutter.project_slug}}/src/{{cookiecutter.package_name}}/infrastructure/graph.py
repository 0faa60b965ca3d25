# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Graph queries on FalkorDB, over the same Redis connection the job queue uses.

The official `falkordb` client needs redis-py 8, and arq requires redis<6, so the two cannot be
installed together. Queries go through redis-py's `execute_command("GRAPH.QUERY", ...)` instead,
which every redis-py version supports.

Pass values as parameters (`$name` in the query, `name=value` here), never by formatting them
into the query: a parameter is always read as a value, never as Cypher.
"""

import json
from typing import Any

from redis.asyncio import Redis

# What a query parameter may be; FalkorDB also takes lists and maps, this helper keeps to scalars.
Parameter = str | int | float | bool | None


async def graph_query(
    redis: Redis, graph: str, cypher: str, **params: Parameter
) -> list[list[Any]]:
    """Run a Cypher query on `graph` and return its rows (the header and statistics dropped)."""
    if params:
        assignments = " ".join(f"{name}={_literal(value)}" for name, value in params.items())
        cypher = f"CYPHER {assignments} {cypher}"
    # redis-py ships execute_command without type annotations.
    reply = await redis.execute_command("GRAPH.QUERY", graph, cypher)  # type: ignore[no-untyped-call]
    # A reply is [header, rows, statistics]; a query that returns nothing is [statistics].
    if len(reply) < 3:
        return []
    return [[_decoded(value) for value in row] for row in reply[1]]


def _literal(value: Parameter) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # A double-quoted Cypher string escapes quotes and backslashes as JSON does.
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _decoded(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
