# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Writing finished jobs' outcomes: one script call per queue for all the jobs that end in the
same turn of the event loop.

arq writes each finished job's outcome in a transaction of its own: MULTI, SET its result, DEL
its job, try count and in-progress mark, ZREM it from the abort set and from the queue, EXEC,
six commands and a round trip per job. A busy worker ends several jobs in one turn of its loop
(functions that await the same timer tick, or none), and FINISH_JOBS writes all of a queue's in
one script: one DEL and one ZREM for all of them and a SET per result, `3 + n` commands for `n`
jobs counting the EVALSHA (4 for a job alone, 1.75 a job for four). The first job to end in a
turn schedules the write for the next turn; the jobs that end before it runs join it, as
`enqueue_task`'s writes do (store/job_writes.py). A job alone waits one turn longer, a few
microseconds.

Only an outcome with nothing else in its write comes here (loop.py's `write_outcome`): a job to
run again, a cron job (whose in-progress mark stays) and a job with limits (which gives its
lease back in it) keep arq's transaction; a workflow's job that moves its workflow on does so in
the same write (store/workflows.py's FINISH_AND_ADVANCE, or arq's transaction with ADVANCE in it).

arq also drops any abort request for the job, one command per job that nearly never has one. An
abort request is only added while the job exists (store/job_handle.py), so one left once the job
is gone is stale, and every worker's heartbeat drops those each interval
(`drop_stale_abort_requests`). Until then it could only abort a later job given the same id, and
the id rule keeps an id from being queued again while its result exists. So a job whose result
is kept longer than two heartbeat intervals and a margin leaves its request to the heartbeats;
one whose result is kept less, or not at all, drops it here (one ZREM for the whole call), as
FINISH_AND_ADVANCE does for a workflow's job (loop.py's `drops_abort_request`). A request the
worker has acted on, it has dropped already (loop.py's `_cancel_aborted_jobs`).
"""

import asyncio
from dataclasses import dataclass

from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ..keys import abort_requests_key, queue_of
from ..store.job_writes import result_lifetime_arg

# KEYS: the queue, its abort requests, then per job: the job, its in-progress mark, its try
# count, its result. ARGV: per job, its id, its result ('' to keep none), the result's lifetime
# (ms, '0' for no end), and '1' to drop an abort request for it. The results are written first:
# a Redis at its `maxmemory` refuses a script's first write that could use more memory, and
# only its first (it runs the rest of a script that has written something), so a full Redis
# refuses the whole call and nothing of it is done; the worker keeps the jobs claimed and tries
# again (loop.py's `finish_job`). A DEL first would go through, and the SETs after it too.
FINISH_JOBS = """
local ids, keys, dropped = {}, {}, {}
for i = 1, (#KEYS - 2) / 4 do
  local k, a = 2 + (i - 1) * 4, (i - 1) * 4
  ids[i] = ARGV[a + 1]
  for j = 1, 3 do keys[#keys + 1] = KEYS[k + j] end
  if ARGV[a + 4] == '1' then dropped[#dropped + 1] = ARGV[a + 1] end
  if ARGV[a + 2] ~= '' then
    if ARGV[a + 3] == '0' then
      redis.call('SET', KEYS[k + 4], ARGV[a + 2])
    else
      redis.call('SET', KEYS[k + 4], ARGV[a + 2], 'PX', ARGV[a + 3])
    end
  end
end
redis.call('DEL', unpack(keys))
redis.call('ZREM', KEYS[1], unpack(ids))
if #dropped > 0 then redis.call('ZREM', KEYS[2], unpack(dropped)) end
return #ids
"""

# The most outcomes in one call: Lua's `unpack` takes about 8,000 values, and the DEL gets three
# keys a job. A worker ends at most its jobs in hand in one turn (WORKER_MAX_JOBS and a quarter).
OUTCOMES_PER_CALL = 1000


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished job's outcome to write: its id, its result (None to keep none), how long the
    result is kept (seconds; None for good), and whether to drop an abort request for it."""

    job_id: str
    result: bytes | None
    result_lifetime_s: float | None
    drop_abort_request: bool


class OutcomeWriter:
    """Writes finished jobs' outcomes through one pool: a FINISH_JOBS call per queue per turn of
    the event loop."""

    def __init__(self, pool: Redis) -> None:
        self.pool = pool
        self.script: AsyncScript = pool.register_script(FINISH_JOBS)  # EVALSHA, loaded if lost
        # Per queue, and apart for ids without the queue's key (a plain arq client's, whose
        # keys are arq's global ones): the jobs of one call then share one cluster slot.
        self.waiting: dict[tuple[str, bool], list[tuple[Outcome, asyncio.Future[None]]]] = {}
        # The loop keeps only weak references to tasks: hold each flush until it is done.
        self.flushes: set[asyncio.Task[None]] = set()

    async def write(self, queue_name: str, outcome: Outcome) -> None:
        """Write `outcome` for a job of `queue_name` (a queue's key), with the others of this
        turn. Raises what redis-py raises for the call (`RedisError`, `OSError`)."""
        loop = asyncio.get_running_loop()
        if not self.waiting:
            flush = loop.create_task(self.flush())  # runs in the next turn of the loop
            self.flushes.add(flush)
            flush.add_done_callback(self.flushes.discard)
        written: asyncio.Future[None] = loop.create_future()
        plain = queue_of(outcome.job_id) is None
        self.waiting.setdefault((queue_name, plain), []).append((outcome, written))
        await written

    async def flush(self) -> None:
        batches, self.waiting = self.waiting, {}
        await asyncio.gather(
            *(
                self.send(queue, batch[start : start + OUTCOMES_PER_CALL])
                for (queue, _), batch in batches.items()
                for start in range(0, len(batch), OUTCOMES_PER_CALL)
            )
        )

    async def send(
        self, queue_name: str, batch: list[tuple[Outcome, asyncio.Future[None]]]
    ) -> None:
        """One FINISH_JOBS call for these outcomes; each waiter gets its end (an error for all
        if the call fails)."""
        try:
            await self.script(*finish_call(queue_name, [outcome for outcome, _ in batch]))
        except BaseException as error:
            for _, written in batch:
                if written.done():  # its waiter was cancelled
                    continue
                if isinstance(error, asyncio.CancelledError):
                    written.cancel()
                else:
                    written.set_exception(error)
            if isinstance(error, Exception):
                return
            raise
        for _, written in batch:
            if not written.done():  # its waiter was cancelled: the outcome is written all the same
                written.set_result(None)


def finish_call(queue_name: str, outcomes: list[Outcome]) -> tuple[list[str], list[str | bytes]]:
    """FINISH_JOBS's keys and arguments for these outcomes of one queue (a queue's key)."""
    keys = [queue_name, abort_requests_key(queue_name)]
    args: list[str | bytes] = []
    for outcome in outcomes:
        job_id = outcome.job_id
        keys += [
            job_key_prefix + job_id,
            in_progress_key_prefix + job_id,
            retry_key_prefix + job_id,
            result_key_prefix + job_id,
        ]
        args += [
            job_id,
            outcome.result or b"",
            result_lifetime_arg(outcome.result_lifetime_s),
            "1" if outcome.drop_abort_request else "0",
        ]
    return keys, args
