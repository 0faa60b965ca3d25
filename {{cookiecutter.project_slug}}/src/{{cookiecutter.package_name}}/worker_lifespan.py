"""Resources your jobs share: opened once when a worker starts, closed when it stops.

Open them in `worker_lifespan` below and put them in `ctx`; every job then reads them from its
own `ctx` (`ctx["http"]`). A database pool or an HTTP client opened once per worker is far
cheaper than one per job. The worker runs this after its own start-up (logging is configured,
`ctx["redis"]` is the queue's pool) and closes it before its own shutdown; tests that run a job
inline (docs/testing.md) open it too.

The httpx client in `worker_lifespan`'s docstring needs `uv add httpx` first: httpx is only a dev
dependency here (the tests use it), and the image installs no dev dependencies.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .queue import JobContext


@asynccontextmanager
async def worker_lifespan(ctx: JobContext) -> AsyncIterator[None]:
    """Open what the jobs share, put it in `ctx`, then `yield`; what follows closes it.

    async with httpx.AsyncClient(timeout=10) as http:
        ctx["http"] = http
        yield
    """
    yield
