# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A worker's function slots (`WORKER_MAX_JOBS`), handed out by priority.

A worker holds more jobs than it runs: it claims and reads a few ahead of its free slots
(worker/loop.py), and those wait here for a slot. With asyncio's semaphore they would take the
slots in the order they were read, so a job of the highest queue, claimed the moment it came,
would still wait for every job of a lower queue read before it: with `bulk` jobs of 10 ms in
hand, a `critical` job waited about 4 ms more than it needs to (bench/queues.py). Here a slot
that frees goes to the waiting job of the highest priority, the earliest read among those.
"""

import asyncio
import heapq
import itertools


class FunctionSlots:
    """`slots` slots; `acquire(priority)` waits for one (priority 0 first), `release()` frees
    one. Cancelled while waiting, an `acquire` takes no slot (one it was just given goes to the
    next waiter), as asyncio's `Semaphore`."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, priority: int = 0) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # given a slot, then cancelled before it could use it
            raise  # a cancelled waiter left in the heap is skipped by release()

    def release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1

    @property
    def free(self) -> int:
        """Slots free now."""
        return self._free
