# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The worker process: arq's `Worker` with a loop that starts jobs as soon as they are queued.

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.worker [SETTINGS] [--burst] [--verbose]

(`just worker`; the image's command). SETTINGS is a dotted path, `{{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings`
by default, read as `arq SETTINGS` reads it.

arq's own loop reads the queue, starts what it read, then sleeps `poll_delay` whatever happens:
a free slot waits for the next poll while jobs wait, an idle worker asks Redis 20 times a second,
and every worker reads the same head of the queue and races the others for the same ids, one
WATCH/MULTI per id. Here, instead:

- **Claims are atomic.** One Lua script (`CLAIM_JOBS`) takes up to as many due jobs as there are
  free slots: for each, it sets arq's in-progress key (so arq's own workers, and everything that
  reads job status, see it running), moves its score to when that key expires, and reads the
  job and counts its try as arq's start of a job would (run.py), in the same round trip. Running jobs
  thus leave the due part of the queue: the next claim, by any worker, reads fresh ids, not the
  ones others are running. If the worker dies, both expire together and the job is due again,
  as with arq; a live worker that finds a dead one's jobs (heartbeat.py) makes them due at once.
  A job to be run again (a retry, a job cancelled at shutdown) gets its score back first, so
  arq's retry delay counts from it as before (`finish_job`). The same script checks the limits
  of jobs that have some (limits.py), and claims from every queue served, highest first: one
  round trip per claim, however many queues.
- **No idle slot while jobs wait.** When a claim fills every free slot and more jobs are due,
  the worker claims again as soon as a slot frees, without sleeping.
- **The next jobs are read while the slots are busy.** `WORKER_MAX_JOBS` bounds the job
  functions running at once, not the jobs in hand: the worker claims and reads up to READ_AHEAD
  more, which wait for a free slot with their reading done. A slot that frees starts one at
  once, instead of first claiming and reading it (two round trips, about 1.5 ms, a sixth of a
  10 ms job). A slot frees as its function returns, in the function's own task (run.py), a
  turn of the event loop before arq's `on_job_end` would free it, and a job whose outcome is
  being written no longer counts against the jobs in hand, so the next claim goes out while
  that write is under way. A job read ahead is listed as running (heartbeat.py), so a live
  worker runs it again if this one dies; one this worker cancels before its function starts
  (shutdown) is given back, due at once. A slot that frees goes to the job in hand of the
  highest queue (slots.py).
- **Outcomes are written together.** The jobs that end in the same turn of the loop have their
  outcomes written in one script call per queue (finishes.py): one DEL and one ZREM for all of
  them, where arq sends a transaction of six commands per job.
- **Woken, not polling.** `enqueue_task` pushes a token onto `<queue>:wake` with each job
  (job_writes.py), and a worker with free slots and nothing due waits on that list (BRPOP): a
  job due now starts about a millisecond after it is queued, and a deferred one wakes a worker
  that then waits for its start time. The claim goes right behind the BRPOP, on the same
  connection (`wait_then_claim`): Redis runs it as the wait ends, on its own clock, and its
  reply comes with the token's, one round trip sooner than a claim sent on waking. The jobs it
  took that no longer fit (slots filled meanwhile by a claim on the deferred start's timer) are
  given back. The claim that finds nothing more due deletes the tokens, so one burst of jobs
  wakes as many workers as it needs, not all of them for every job; one that leaves jobs due
  keeps WAKE_TOKENS_KEPT (64), at most every TRIM_TOKENS_SECONDS, so a queue that is never
  empty keeps a short list without a command per job to trim it.
- **Nothing is missed without a token.** The wait ends at the start time of the next deferred
  job the worker knows of (a `_defer_by`, a cron tick, a retry's backoff) and at the latest
  after FALLBACK_POLL_SECONDS (1 s), so a job queued without a token (by arq's own
  `enqueue_job`, another service) still starts within a second of its time. The deferred start
  is timed by the worker's own clock, the BRPOP going on meanwhile: Redis ends a blocking wait
  only on its 100 ms tick. An idle worker thus sends 3 commands a second (a BRPOP, and a claim
  that reads the queue once; one more read per extra queue served), where arq's loop sends
  about 100.

`arq {{ cookiecutter.package_name }}.infrastructure.tasks.WorkerSettings` still runs the same jobs correctly, with arq's
loop: it honours the same in-progress keys, so both kinds of worker can share a queue. What it
lacks is the above: it polls every `WORKER_POLL_DELAY`, so jobs start up to that much later, and
it scales out as arq does.

Tries are counted as arq counts them, when a job is read; a job this worker gives back without
running its function (read ahead, then the worker stops; cancelled before it started) has that
try taken back, so it never fails with "max retries exceeded" having never run. A job for a
function this worker lacks waits for a worker that has it (missing_functions.py). A job arq fails
without running it (its tries used up by workers that died, or expired before it started)
is reported like any other try's end (job_events.py), and one whose tries ran out becomes a dead
letter. The counts arq logs (`j_failed`, the shutdown line) leave out aborted jobs, as the
metrics and the dashboard do.

Cron, health records and the retry rules are arq's, unchanged, and so is aborting a running
job, but for where the requests are read: the queue's own set (keys.py), not arq's global one.
They are read every `WORKER_POLL_DELAY` while jobs run (not at all while none does: a queued
job is aborted without a worker, job_handle.py), and cron and the health record are looked at
before each claim, at most every `WORKER_POLL_DELAY` and at least every FALLBACK_POLL_SECONDS.
"""

import asyncio
import contextlib
import importlib
import logging
import math
import random
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from arq.constants import (
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import JobResult, deserialize_result
from arq.utils import timestamp_ms, to_ms, to_unix_ms
from arq.worker import Worker as ArqWorker
from arq.worker import get_kwargs
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from ...config import get_settings
from .. import job_events
from ..keys import abort_requests_key, queue_of
from ..limits import (
    LEASE_MARGIN_SECONDS,
    LIMIT_CHECK,
    RELEASE_LEASE,
    concurrency_keys,
    limit_wait_key,
    limited_key,
)
from ..store.connection import send_in_turn, stop_waiting_for_redis
from ..store.heartbeat import MARGIN_SECONDS
from ..store.job_writes import WAKE_TOKENS_KEPT, wake_key
from ..store.pause import PAUSE_CHECK_SECONDS, paused_key
from ..store.serialization import JobFailed, deserialize, serialize
from ..store.workflows import (
    ADVANCE,
    FINISH_AND_ADVANCE,
    MemberRun,
    advance_call,
    finish_and_advance_call,
    handoff,
    handoffs_key,
    membership,
    run_handoff,
)
from . import run
from .finishes import Outcome, OutcomeWriter
from .functions import cron_queues, limited_queues
from .missing_functions import FunctionTable, wait_for_function
from .retries import record_dead_letter
from .run import TRY_COUNT_LIFETIME_SECONDS, JobRead, read_job
from .slots import FunctionSlots

logger = logging.getLogger(__name__)

# The longest a worker with free slots waits before it looks at the queue again, in seconds.
FALLBACK_POLL_SECONDS = 1.0
# A stopping worker gives Redis this long to take its last writes (arq's health-check key, the
# heartbeat, the activity record), not WORKER_RECONNECT_SECONDS: with Redis gone, a stop would
# otherwise take a minute, past compose's and Kubernetes' grace. What is not written expires by
# itself (the heartbeat within its interval plus a margin).
SHUTDOWN_REDIS_SECONDS = 2.0
# Redis reads a block timeout of 0 as "forever": never ask for less than this.
SHORTEST_WAIT_SECONDS = 0.001
# How many due ids a claim looks past, at most, that run elsewhere (arq's own workers).
CLAIM_LOOK_PAST = 1000
# How often, at most, a worker trims the wake-up list of a queue that still has jobs due, in
# seconds. A trim per claim cost a command per four jobs in a drain; what is pushed meanwhile
# (a job's token each) waits for the next trim or the claim that empties the queue.
TRIM_TOKENS_SECONDS = 0.1
# Jobs claimed and read ahead of the function slots, as a share of WORKER_MAX_JOBS (at least 1):
# enough to cover the claim and read of the jobs whose slots free while those run.
READ_AHEAD_SHARE = 0.25

# KEYS: each queue to claim from, in the order to claim, its wake-up list and its pause
# (store/pause.py): queue, list, pause, queue, list, pause, ... ARGV: now (ms), how many to claim,
# arq's in-progress key prefix, the in-progress lifetime (ms), CLAIM_LOOK_PAST, '1' to delete a
# queue's wake-up tokens once it has nothing due ('0' when the lists were just found empty: a DEL is
# one more command; '2' only once this call has claimed a job from it, for a claim sent behind a
# wait, which cannot know whether the wait ended with a token or with its timeout), a concurrency
# lease's lifetime (ms), a '1' or '0' per queue: '1' to check the limits of jobs that have some
# (limits.py; '0' for a queue where no job declares any: a GET per job saved), arq's job and
# try-count key prefixes, a try count's lifetime (s), and how many wake-up tokens to keep in the
# list of a queue that still has jobs due (job_writes.py), and a '0', '1' or '2' per queue: '1' to
# look at its pause once it has a job due (pause.py), '2' to look before anything else (a queue
# found paused before: its resume is seen even while empty), a '1' or '0' per queue: '1' to trim its
# wake-up list (at most every TRIM_TOKENS_SECONDS), and '1' for a claim sent behind a wait
# (`wait_then_claim`), which runs later than the `now` it was sent with: a job not due by that `now`
# is looked at again on Redis's clock (TIME, read once and only then: an idle worker's claim of an
# empty queue does without it; rounded to the millisecond as arq's `timestamp_ms` rounds a score,
# so a job queued in the millisecond the claim runs is due to it).
# Reads each queue in score order, one id past what it still wants, so that the first id not
# due yet tells when the next one starts; takes a queue's due jobs before it looks at the next
# queue. A paused queue (looked at) is not claimed from, its wake-up tokens trimmed or deleted as
# for a drained one. A job its limits hold back is not claimed: its score moves on
# (LIMIT_CHECK) and the scan goes on past it. Each job claimed is also read, and its try counted, as arq's read does
# (run.py). Returns [drained, next start (ms) or false, what was seen of each queue's pause
# ('1' paused, '0' not, '-' not looked at: one character per queue, in KEYS' order), then for
# each job claimed: id, score,
# limits, payload (false once the job has expired), try]: drained is 1 when no queue has a due
# id left unclaimed (as far as it looked); limits is '' for a job without limits, else '=' and
# the concurrency limit whose lease it holds ('=' alone for a rate limit only). One script for
# every queue served: one round trip per claim however many queues there are.
CLAIM_JOBS = (
    LIMIT_CHECK
    + """
local now = tonumber(ARGV[1])
local clock_read = ARGV[15] ~= '1'
local function due(score)
  if tonumber(score) <= now then return true end
  if clock_read then return false end
  clock_read = true
  local time = redis.call('TIME')  -- rounded as arq rounds a score: a job just queued is due
  now = math.max(now, math.floor(tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000 + 0.5))
  return tonumber(score) <= now
end
local wanted = tonumber(ARGV[2])
local look_past = tonumber(ARGV[5])
local lease_ms = tonumber(ARGV[7])
local claimed = {}  -- per_job entries for each job claimed
local per_job = 5
local all_drained = 1
-- This try's number, counted as arq counts it when it reads a job (INCR, and the count kept
-- for a day): a first try, the usual case, in one command.
local function count_try(key)
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[11]) then return 1 end
  local count = redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[11])
  return count
end
local next_start = false
local function earlier(score)
  if not next_start or tonumber(score) < tonumber(next_start) then next_start = score end
end
local pauses = ''
for q = 1, #KEYS / 3 do
  if #claimed >= per_job * wanted then
    all_drained = 0  -- a queue not asked may have jobs due
    break
  end
  local queue = KEYS[3 * q - 2]
  local check_limits = string.sub(ARGV[8], q, q) == '1'
  local look = string.sub(ARGV[13], q, q)
  local pause = look == '0' and '-' or '?'
  if look == '2' then pause = redis.call('EXISTS', KEYS[3 * q]) == 1 and '1' or '0' end
  local skipped = 0
  local held_back = 0
  local claimed_before = #claimed
  local drained = pause == '1' and 1 or 0
  while drained == 0 and #claimed < per_job * wanted and skipped + held_back < look_past do
    local asked = wanted - #claimed / per_job + 1
    local ids = redis.call('ZRANGEBYSCORE', queue, '-inf', '+inf', 'WITHSCORES', 'LIMIT',
                           skipped, asked)
    for i = 1, #ids, 2 do
      if not due(ids[i + 1]) then
        earlier(ids[i + 1])
        drained = 1
        break
      end
      if pause == '?' then  -- looked at once a job is due: an empty queue costs nothing
        pause = redis.call('EXISTS', KEYS[3 * q]) == 1 and '1' or '0'
      end
      if pause == '1' then
        drained = 1
        break
      end
      local mark = ARGV[3] .. ids[i]
      local verdict = {'free'}
      if #claimed >= per_job * wanted then
        verdict = {'skip'}  -- one more than wanted
      elseif check_limits then
        if redis.call('EXISTS', mark) == 1 then
          verdict = {'skip'}
        else
          verdict = limit_check(queue, ids[i], tonumber(ids[i + 1]), now, lease_ms)
        end
      end
      if verdict[1] == 'wait' then
        held_back = held_back + 1  -- out of the due range now: the offset stays
        earlier(verdict[2])
      elseif verdict[1] ~= 'skip' and redis.call('SET', mark, '1', 'NX', 'PX', ARGV[4]) then
        redis.call('ZADD', queue, 'XX', now + tonumber(ARGV[4]), ids[i])
        claimed[#claimed + 1] = ids[i]
        claimed[#claimed + 1] = ids[i + 1]
        claimed[#claimed + 1] = verdict[1] == 'run' and '=' .. verdict[2] or ''
        claimed[#claimed + 1] = redis.call('GET', ARGV[9] .. ids[i])
        claimed[#claimed + 1] = count_try(ARGV[10] .. ids[i])
      else
        skipped = skipped + 1  -- running elsewhere, or one more than wanted
      end
    end
    if #ids < 2 * asked then drained = 1 end
  end
  if drained == 1 and (ARGV[6] == '1' or (ARGV[6] == '2' and #claimed > claimed_before)) then
    redis.call('DEL', KEYS[3 * q - 1])
  end
  if drained == 0 then
    all_drained = 0
    if string.sub(ARGV[14], q, q) == '1' then  -- enough to wake that many
      redis.call('LTRIM', KEYS[3 * q - 1], 0, tonumber(ARGV[12]) - 1)
    end
  end
  pauses = pauses .. (pause == '?' and '-' or pause)
end
table.insert(claimed, 1, pauses)
table.insert(claimed, 1, next_start)
table.insert(claimed, 1, all_drained)
return claimed
"""
)


# What a claim took: ([(job id, score)], drained, the next start (ms) or None).
ClaimTaken = tuple[list[tuple[str, int]], bool, float | None]


class Worker(ArqWorker):
    """arq's worker, with the loop described in this module's docstring.

    arq's `main()` sets up (the pool, `on_startup`) and then calls `_poll_iteration()` after
    every `poll_delay`; here `_poll_iteration()` is the whole loop, so that set-up, shutdown and
    signal handling stay arq's. It returns only in burst mode, once the queue is empty.
    """

    def __init__(
        self,
        *args: Any,
        queue_names: Sequence[str] = (),
        queue_weights: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The queues served, highest priority first (their keys); arq's own `queue_name` is the
        # first: its health check and `arq --check` look at that one.
        self.queue_names = list(queue_names) or [self.queue_name]
        self.queue_name = self.queue_names[0]
        self.health_check_key = self.queue_name + health_check_key_suffix
        self.queue_weights = dict(queue_weights or {})
        # A result records the queue the job ran on (arq writes the worker's one): its own.
        self._serialize = self.job_serializer or serialize
        self.job_serializer = self._serialize_with_job_queue
        self._cron_queues = cron_queues()
        # The queues where some job has limits (limits.py), and the jobs in hand that have
        # them: id -> the concurrency limit whose lease it holds ('' for none).
        self._limited_queues = limited_queues()
        self._limited_jobs: dict[str, str] = {}
        interval = get_settings().worker_health_check_interval
        self._lease_ms = int((interval + LEASE_MARGIN_SECONDS) * 1000)
        self._lease_renewal_s = interval / 2
        self._last_lease_renewal = 0.0
        self.read_ahead = max(1, math.ceil(self.max_jobs * READ_AHEAD_SHARE))
        # arq's semaphore bounds the jobs in hand (max_jobs + 1 in arq), here with room for as
        # many more whose outcome is being written (free_slots counts them as gone); the
        # functions running at once are bounded by _function_slots (max_jobs).
        self.sem = asyncio.BoundedSemaphore(2 * self.max_jobs + self.read_ahead + 1)
        self._function_slots = FunctionSlots(self.max_jobs)
        self._functions_running: set[str] = set()
        self._slot_freed = asyncio.Event()
        self._last_look_around = 0.0
        # The wait for a wake-up token (BRPOP), while it is under way (wait_for_jobs).
        self._token_wait: asyncio.Future[tuple[bool, ClaimTaken | None]] | None = None
        # What the claim sent behind the last wait took, until the loop starts it.
        self._taken_at_wake: ClaimTaken | None = None
        self._token_wait_ends = 0.0  # time.monotonic() when it ends, unless a token comes
        self._claim_jobs: AsyncScript | None = None
        self._outcome_writer: OutcomeWriter | None = None
        self._finish_and_advance: AsyncScript | None = None
        # A result kept at least this long (s) keeps its id from being queued again until the
        # heartbeats have dropped a stale abort request for it (finishes.py).
        self._abort_request_horizon_s = 2 * interval + MARGIN_SECONDS
        # The served queues found paused (store/pause.py), and when each queue's pause was last
        # looked at (time.monotonic()).
        self._paused: set[str] = set()
        self._pause_seen_at: dict[str, float] = {}
        # When each queue's wake-up list was last trimmed (time.monotonic(), CLAIM_JOBS).
        self._tokens_trimmed_at: dict[str, float] = {}
        self._scores_before_claim: dict[str, int] = {}
        # Jobs whose function arq is about to run (its on_job_start hook has been called).
        self._functions_starting: set[str] = set()
        self._on_job_start = self.on_job_start
        self.on_job_start = self._job_function_starting
        self._on_job_end = self.on_job_end
        self.on_job_end = self._job_function_ended
        # For the start-up hook (hooks.py): the per-worker metrics read its slots (metrics.py).
        self.ctx["worker"] = self
        # What the claim read of each job claimed, until the job's task takes it (run.py).
        self._claimed_reads: dict[str, JobRead] = {}
        # The task writing each job's outcome (finish_job, which arq shields), once it starts.
        self._outcome_writes: dict[str, asyncio.Task[Any] | None] = {}
        # The jobs in hand that belong to a workflow (store/workflows.py), and how they end;
        # the input of those handed over to this worker by the job before them (ADVANCE).
        self._members: dict[str, MemberRun] = {}
        self._given_inputs: dict[str, Any] = {}
        self.functions = FunctionTable(self.functions, wait_for_function)
        # arq counts an abort as a failure (jobs_failed); here it counts as an abort.
        self.jobs_aborted = 0
        self.aborting_tasks = AbortingJobs(self)
        # Abort requests come from the queue's own set (keys.py), read by `_cancel_aborted_jobs`
        # below. arq's flag would also make its read of each job touch arq's global set, a key
        # outside the queue's namespace and cluster slot.
        self.abort_running_jobs = self.allow_abort_jobs
        self.allow_abort_jobs = False

    async def _job_function_starting(self, ctx: dict[str, Any]) -> None:
        """arq's on_job_start: the job is read. List it as running (the project's hook), wait for
        a function slot, then let arq run the function."""
        job_id = ctx["job_id"]
        if self._on_job_start is not None:
            await self._on_job_start(ctx)
        # Jobs of a higher queue in hand start first (slots.py); cancelled here, run_job gives
        # the job back.
        await self._function_slots.acquire(self.priority_of(job_id))
        self._functions_running.add(job_id)
        if not self.allow_pick_jobs:  # shutting down: a job read ahead is not started now
            raise asyncio.CancelledError
        self._functions_starting.add(job_id)

    async def _job_function_ended(self, ctx: dict[str, Any]) -> None:
        """arq's on_job_end: the function has returned or raised; its slot is free for the next
        job in hand while arq records the outcome."""
        self._free_function_slot(ctx["job_id"])
        if self._on_job_end is not None:
            await self._on_job_end(ctx)

    def priority_of(self, job_id: str) -> int:
        """The job's queue's place in priority order (0: the first queue served); 0 for every
        job with WORKER_QUEUE_WEIGHTS, whose promise is each queue's share, not an order."""
        if self.queue_weights:
            return 0
        return self.queue_names.index(self.queue_of(job_id))

    def _free_function_slot(self, job_id: str) -> None:
        if job_id in self._functions_running:
            self._functions_running.discard(job_id)
            self._function_slots.release()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _poll_iteration(self) -> None:
        tokens_may_wait = True
        while True:
            await self.between_claims()
            if self._token_wait is not None and self._token_wait.done():
                tokens_may_wait = self.end_token_wait()  # ended while the loop was elsewhere
            claimed_all = drained = False
            next_start_ms: float | None = None
            taken, self._taken_at_wake = self._taken_at_wake, None
            if taken is not None and (taken[0] or not tokens_may_wait):
                # The claim Redis ran as the wait ended (`wait_then_claim`). One that took
                # nothing after a token is not used: the claim below deletes what tokens are
                # left, which that one could not know to do.
                jobs, drained, next_start_ms = taken
                await self.start_claimed(await self.keep_what_fits(jobs))
                claimed_all = not drained
            elif wanted := self.free_slots():
                jobs, drained, next_start_ms = await self.claim_in_order(wanted, tokens_may_wait)
                await self.start_claimed(jobs)
                claimed_all = len(jobs) == wanted
            if self.burst and await self.burst_is_over(drained):
                return
            tokens_may_wait = True
            if not self.allow_pick_jobs:  # shutting down: take nothing, leave tokens to others
                await asyncio.sleep(self.poll_delay_s)
            elif self.free_slots() == 0:
                await self.wait_for_a_free_slot()
            elif drained or not claimed_all:
                tokens_may_wait = await self.wait_for_jobs(next_start_ms)
            # else: the claim filled every free slot, more are free now, and more jobs are due:
            # claim again at once

    async def run_job(self, job_id: str, score: int) -> None:
        """Run a claimed job (run.py), read by its claim or (handed over by a limit's
        release) read now; a job this worker gives back unrun has its try taken back."""
        self._scores_before_claim[job_id] = score
        read = self._claimed_reads.pop(job_id, None)
        try:
            if read is None:
                read = await read_job(self, job_id)
            member = None
            given = self._given_inputs.pop(job_id, None)
            if read.payload is not None and (joined := membership(read.payload)) is not None:
                member = self._members[job_id] = MemberRun(joined, given_input=given)
            await run.run_job(self, job_id, score, read, member, self._free_function_slot)
        except asyncio.CancelledError:
            writing = self._outcome_writes.get(job_id)
            if writing is not None:
                # Cancelled (arq's close()) once its outcome was being written, or after: arq
                # shields that write, so it goes on. Let it finish, then end normally, so that
                # close(), which gathers the job tasks and then closes the pool, completes.
                if writing is not asyncio.current_task():
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.shield(writing)
                return
            if job_id in self._functions_starting:
                raise  # arq's own handling of a cancelled job did not finish: not ours to undo
            # Cancelled (arq's shutdown cancels every job task) while arq was still reading the
            # job: its function never ran. Give the job back, due at once, instead of leaving it
            # claimed until its in-progress mark expires; and end this task normally, so that
            # arq's close() (which gathers the job tasks) completes.
            await asyncio.shield(self.give_back(job_id, score, read is not None))
        finally:
            self._free_function_slot(job_id)  # if arq did not reach on_job_end
            self._scores_before_claim.pop(job_id, None)
            self._functions_starting.discard(job_id)
            self._outcome_writes.pop(job_id, None)
            self._members.pop(job_id, None)
            # A lease not given back above (an error in arq's own handling) is no longer
            # renewed: it runs out within a lease's lifetime (limits.py).
            self._limited_jobs.pop(job_id, None)

    async def give_back(self, job_id: str, score: int, try_counted: bool) -> None:
        """Undo a claim: the job is due again at `score`, no longer in progress, and (with
        `try_counted`) with the try arq counted when it read the job taken back."""
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.zadd(self.queue_of(job_id), {job_id: score}, xx=True)
            pipe.delete(in_progress_key_prefix + job_id)
            if try_counted:
                pipe.decr(retry_key_prefix + job_id)
            self.release_limits(pipe, job_id, finished=False)
            await pipe.execute()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq fails a job without running its function: report that try's end, and record a
        dead letter when the job's tries were used up (by workers that died running it)."""
        if result_data is None:
            await self.write_failure(job_id, result_data)
            return
        result = deserialize_result(result_data, deserializer=deserialize)
        await self.write_failure(job_id, result_data)
        _report_unrun(job_id, result, self._scores_before_claim.get(job_id))
        if _tries_used_up(result):
            ctx = {
                "redis": self.pool,
                "queue_name": self.queue_name,
                "job_id": job_id,
                "job_try": result.job_try,  # the tries that ran (run.py's `result_record`)
                "enqueue_time": result.enqueue_time,
            }
            assert isinstance(result.result, JobFailed)
            error = TriesUsedUp(result.result.message)
            await record_dead_letter(ctx, result.function, result.args, result.kwargs, error)

    def _jobs_started(self) -> int:
        return super()._jobs_started() + self.jobs_aborted

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """Write the job's outcome (arq's), keeping the job claimed while the write waits.

        A write Redis refuses for want of memory is tried again until it goes through
        (connection.py's `ReconnectingRetry`), for as long as memory stays full. Meanwhile the
        job's in-progress mark is renewed (PEXPIRE, which Redis takes even then), so that no
        worker runs the job again when the mark would have expired: it runs once, and its
        outcome is written once memory frees.
        """

        async def keep_claimed() -> None:
            lifetime_ms = int(self.in_progress_timeout_s * 1000)
            # At least 10 s of the mark is left when a job ends (arq's margin over its time
            # limit); the first renewal comes after 5 s at most, and a quick write needs none.
            while True:
                await asyncio.sleep(min(5.0, self.in_progress_timeout_s / 3))
                await self.pool.pexpire(in_progress_key_prefix + job_id, lifetime_ms)

        self._outcome_writes[job_id] = asyncio.current_task()
        self._slot_freed.set()  # its place counts as free now (free_slots)
        renewals = asyncio.create_task(keep_claimed())
        try:
            if not finish:
                # To run again: arq counts a retry's delay from the job's score before the claim
                # (its ZINCRBY), and a retry without delay must be due now, not when the claim
                # ends. Its in-progress mark still stands, so no claim takes it before arq's
                # write below.
                score = self._scores_before_claim[job_id]
                await self.pool.zadd(self.queue_of(job_id), {job_id: score}, xx=True)
            await self.write_outcome(
                job_id,
                finish,
                result_data,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
        finally:
            renewals.cancel()
            # A renewal that failed (Redis away for good) changes nothing for the write above.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewals

    async def write_outcome(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's `finish_job` write, in the job's own queue and without arq's global abort set:
        every key of the transaction is the job's queue's (keys.py). A workflow's job moves its
        workflow on in the same write (`advance_workflow`). A finished job with nothing else to
        write is written with the others that end in the same turn (`finish_quickly`); one that
        moves its workflow on in its own queue, with that move in one script (`finish_moving_on`)."""
        move = await self.plan_move(job_id, finish)
        if finish and keep_in_progress is None and job_id not in self._limited_jobs:
            expire = None if keep_result_forever else result_timeout_s
            if move is None:
                await self.finish_quickly(job_id, result_data, expire)
                return
            if move.same_queue:
                await self.finish_moving_on(job_id, result_data, expire, move)
                return
        queue_name = self.queue_of(job_id)
        async with self.pool.pipeline(transaction=True) as tr:
            delete_keys = []
            in_progress_key = in_progress_key_prefix + job_id
            if keep_in_progress is None:
                delete_keys.append(in_progress_key)
            else:
                tr.pexpire(in_progress_key, to_ms(keep_in_progress))
            if finish:
                if result_data:
                    expire = None if keep_result_forever else result_timeout_s
                    tr.set(result_key_prefix + job_id, result_data, px=to_ms(expire))
                delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
                tr.zrem(abort_requests_key(queue_name), job_id)
                tr.zrem(queue_name, job_id)
            elif incr_score:
                tr.zincrby(queue_name, incr_score, job_id)
            if delete_keys:
                tr.delete(*delete_keys)
            await self.execute_moving_on(tr, job_id, finish, move)

    async def finish_quickly(
        self, job_id: str, result_data: bytes | None, result_lifetime_s: float | None
    ) -> None:
        """`write_outcome` for a finished job with nothing else in its write: with the others
        that end in this turn of the loop, in one script call per queue (finishes.py).
        `result_lifetime_s` None: the result is kept for good."""
        if self._outcome_writer is None:
            self._outcome_writer = OutcomeWriter(self.pool)
        drop = self.drops_abort_request(result_data, result_lifetime_s)
        outcome = Outcome(job_id, result_data, result_lifetime_s, drop)
        await self._outcome_writer.write(self.queue_of(job_id), outcome)

    def drops_abort_request(
        self, result_data: bytes | None, result_lifetime_s: float | None
    ) -> bool:
        """Whether a finished job's outcome write drops an abort request for it: only when its
        result is not kept past the heartbeats' sweep of stale requests (finishes.py says why;
        `result_lifetime_s` None: kept for good)."""
        kept_long = result_data is not None and (
            result_lifetime_s is None or result_lifetime_s >= self._abort_request_horizon_s
        )
        return not kept_long

    async def finish_moving_on(
        self,
        job_id: str,
        result_data: bytes | None,
        result_lifetime_s: float | None,
        move: "PlannedMove",
    ) -> None:
        """`write_outcome` for a finished workflow job whose move (`plan_move`) stays in its
        queue: the outcome and the move in one script call (store/workflows.py's
        FINISH_AND_ADVANCE), then what follows the move. `result_lifetime_s` None: the result
        is kept for good."""
        if self._finish_and_advance is None:  # sent by its SHA1, loaded again if Redis lost it
            self._finish_and_advance = self.pool.register_script(FINISH_AND_ADVANCE)
        keys, arguments = finish_and_advance_call(
            self.queue_of(job_id),
            job_id,
            result_data,
            result_lifetime_s,
            self.drops_abort_request(result_data, result_lifetime_s),
            (move.keys, move.arguments),
        )
        try:
            reply = await self._finish_and_advance(keys=keys, args=arguments)
        except BaseException:
            if move.held:
                self.sem.release()  # the place held for a job it would have taken
            raise
        await self.after_advance(job_id, WorkflowMove(reply_index=0, held=move.held), [reply])

    async def write_failure(self, job_id: str, result_data: bytes | None) -> None:
        """arq's `finish_failed_job` write, in the job's own queue (as `write_outcome`)."""
        queue_name = self.queue_of(job_id)
        async with self.pool.pipeline(transaction=True) as tr:
            tr.delete(
                retry_key_prefix + job_id,
                in_progress_key_prefix + job_id,
                job_key_prefix + job_id,
            )
            tr.zrem(abort_requests_key(queue_name), job_id)
            tr.zrem(queue_name, job_id)
            keep_result = self.keep_result_forever or self.keep_result_s > 0
            if result_data is not None and keep_result:
                expire = 0 if self.keep_result_forever else self.keep_result_s
                tr.set(result_key_prefix + job_id, result_data, px=to_ms(expire))
            await self.execute_moving_on(tr, job_id, True, await self.plan_move(job_id, True))

    async def execute_moving_on(
        self,
        transaction: Pipeline,
        job_id: str,
        finished: bool,
        planned: "PlannedMove | None",
    ) -> None:
        """Run an outcome write with its workflow's move (`planned`, `advance_workflow`) and its
        limits' release (`execute_releasing_limits`) in it, then what follows the move."""
        move = self.advance_workflow(transaction, job_id, planned)
        try:
            replies = await self.execute_releasing_limits(transaction, job_id, finished)
        except BaseException:
            if move is not None and move.held:
                self.sem.release()  # the place held for a job it would have taken
            raise
        await self.after_advance(job_id, move, replies)

    async def plan_move(self, job_id: str, finished: bool) -> "PlannedMove | None":
        """The move to the job after this one (store/workflows.py's ADVANCE), once it has
        `finished` and belongs to a workflow; None for none (not a workflow's job, or nothing
        follows it). The move takes the job for this worker when it is in the same queue, and
        this worker serves that queue, has its function and a place free (a chain then runs
        step after step without a claim): that place is held now."""
        member = self._members.get(job_id)
        if not finished or member is None or member.outcome is None:
            return None
        then = member.membership.then
        # The same queue is the same cluster slot: the move goes in this write.
        same_queue = then is not None and queue_of(then) == queue_of(job_id)
        take = None
        held = False
        if (
            same_queue
            and queue_of(job_id) in self.queue_names
            and member.membership.then_function in self.functions
        ):
            # This job's function has ended: its place is as good as free (the next step may
            # well be quicker to reach its own write than this job's task to end).
            held = await self.hold_a_place()
            if held:
                take = (int(self.in_progress_timeout_s * 1000), TRY_COUNT_LIFETIME_SECONDS)
        call = advance_call(job_id, member, timestamp_ms(), take)
        if call is None:
            if held:
                self.sem.release()
            return None
        keys, arguments = call
        return PlannedMove(keys, arguments, same_queue, held)

    def advance_workflow(
        self, transaction: Pipeline, job_id: str, planned: "PlannedMove | None"
    ) -> "WorkflowMove | None":
        """Add a workflow's move (`plan_move`) to a job's outcome write: itself, when the job it
        goes to is in the same queue (the same cluster slot); else its record in the queue's
        handoffs. What `after_advance` needs, or None."""
        if planned is None:
            return None
        if planned.same_queue:
            reply_index = len(transaction.command_stack)
            transaction.eval(ADVANCE, len(planned.keys), *planned.keys, *planned.arguments)
            return WorkflowMove(reply_index=reply_index, held=planned.held)
        record = handoff(planned.keys, planned.arguments)  # nothing was held: another queue's job
        transaction.hset(handoffs_key(self.queue_of(job_id)), job_id, record)
        return WorkflowMove(record=record)

    async def after_advance(
        self, job_id: str, move: "WorkflowMove | None", replies: list[Any]
    ) -> None:
        """After the outcome write: start the job ADVANCE took for this worker (in the place
        held for it, given back if it took none), or run the move recorded for another queue;
        one that fails is run by the next heartbeat of any worker on this queue."""
        if move is None:
            return
        if move.record is None:
            reply = replies[move.reply_index] if len(replies) > move.reply_index else None
            if not isinstance(reply, list):
                if move.held:
                    self.sem.release()
                return
            then_id, score, payload, job_try, given = reply
            then_id = then_id.decode()
            self._claimed_reads[then_id] = JobRead(payload, int(job_try))
            self._given_inputs[then_id] = given
            self._start_job(then_id, int(float(score)))
            return
        try:
            await run_handoff(self.pool, self.queue_of(job_id), job_id, move.record)
        except (RedisError, OSError) as error:
            logger.warning(
                "job %s: the next job of its workflow waits for a heartbeat: %s", job_id, error
            )

    async def execute_releasing_limits(
        self, transaction: Pipeline, job_id: str, finished: bool
    ) -> list[Any]:
        """Run a job's outcome write (`transaction`) with its limits released in it
        (`release_limits`); the job it hands over to this worker, if any, starts. Returns the
        transaction's replies."""
        held = job_id in self._limited_jobs and await self.hold_a_place()
        released, replies = False, []
        try:
            released = self.release_limits(transaction, job_id, finished, take_next=held)
            replies = await transaction.execute()
        finally:
            self.start_handed_over(held, replies[-1] if replies and released else None)
        return replies

    def release_limits(
        self, transaction: Pipeline, job_id: str, finished: bool, take_next: bool = False
    ) -> bool:
        """Add to `transaction`, for a job with limits this worker claimed: once `finished`,
        drop its limits; and give its lease back, last, which passes the slot to the oldest job
        waiting for it (limits.py): claimed for this worker with `take_next`, else made due for
        any. True if the lease goes back (the transaction's last reply is then RELEASE_LEASE's,
        for `start_handed_over`). Nothing for a job without limits."""
        lease = self._limited_jobs.pop(job_id, None)
        if lease is None:
            return False
        queue_name = self.queue_of(job_id)
        if finished:
            transaction.delete(limited_key(queue_name, job_id), limit_wait_key(queue_name, job_id))
        if not lease:
            return False
        running, waiting = concurrency_keys(queue_name, lease)
        keys = (running, waiting, queue_name, wake_key(queue_name), paused_key(queue_name))
        transaction.eval(
            RELEASE_LEASE,
            len(keys),
            *keys,
            job_id,
            str(timestamp_ms()),
            "1" if take_next else "0",
            in_progress_key_prefix,
            str(int(self.in_progress_timeout_s * 1000)),
            str(self._lease_ms),
        )
        return True

    async def hold_a_place(self) -> bool:
        """Whether this worker takes one more job in hand now (`free_slots`); if so,
        its place is held (the semaphore), to be used by `start_handed_over` or given back by
        it. Never waits."""
        if self.free_slots() == 0 or self.sem.locked():
            return False
        await self.sem.acquire()  # not locked: returns at once
        return True

    def start_handed_over(self, held: bool, reply: Any) -> None:
        """Start the job RELEASE_LEASE claimed for this worker (`reply`, or false: none), in the
        place `hold_a_place` held; without a job, give that place back."""
        if not held:
            return
        if not reply:
            self.sem.release()
            return
        job_id, score, limits = (part.decode() for part in reply)
        if limits:
            self._limited_jobs[job_id] = limits[1:]
        self._start_job(job_id, int(float(score)))

    async def renew_leases(self) -> None:
        """Every half heartbeat interval: the concurrency leases of this worker's jobs last
        another lifetime (limits.py), so that only a dead worker's run out."""
        now = time.monotonic()
        if now - self._last_lease_renewal < self._lease_renewal_s:
            return
        self._last_lease_renewal = now
        leases = [(job_id, lease) for job_id, lease in self._limited_jobs.items() if lease]
        if not leases:
            return
        expiry = timestamp_ms() + self._lease_ms
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id, lease in leases:
                running, _ = concurrency_keys(self.queue_of(job_id), lease)
                pipe.zadd(running, {job_id: expiry}, xx=True)
            await pipe.execute()

    def queue_of(self, job_id: str) -> str:
        """The key of the queue a job this worker claimed came from: its id says (keys.py); a
        plain arq client's id does not, and such a job came from the first queue served."""
        queue_name = queue_of(job_id)
        return queue_name if queue_name in self.queue_names else self.queue_name

    def _serialize_with_job_queue(self, data: dict[str, Any]) -> bytes:
        if "q" in data and "id" in data:  # a result: arq gave it this worker's first queue
            data["q"] = self.queue_of(data["id"])
        return self._serialize(data)

    def pause_check_due(self, queue_name: str, now: float) -> bool:
        """Whether a claim from this queue should look at its pause (at most every
        PAUSE_CHECK_SECONDS)."""
        return (
            now - self._pause_seen_at.get(queue_name, -PAUSE_CHECK_SECONDS) >= PAUSE_CHECK_SECONDS
        )

    def pause_look(self, queue_name: str, now: float) -> str:
        """How a claim looks at the queue's pause (CLAIM_JOBS): '0' not now, '1' once a job is
        due, '2' first thing (a queue found paused: its resume shows while it is empty)."""
        if not self.pause_check_due(queue_name, now):
            return "0"
        return "2" if queue_name in self._paused else "1"

    def claimable(self, now: float) -> list[str]:
        """The served queues, in priority order, less those found paused that are not due for
        another look."""
        if not self._paused:
            return self.queue_names
        return [
            q for q in self.queue_names if q not in self._paused or self.pause_check_due(q, now)
        ]

    def claim_order(self, every_queue: bool = False) -> list[str]:
        """The served queues in the order to claim from now: priority order, or with
        WORKER_QUEUE_WEIGHTS a weighted draw (each queue first in its weight's share); a queue
        found paused is left out until it is due for another look (store/pause.py), unless
        `every_queue`."""
        claimable = self.queue_names if every_queue else self.claimable(time.monotonic())
        if not self.queue_weights:
            return claimable
        left = list(claimable)
        order = []
        while left:
            [picked] = random.choices(left, [self.queue_weights[queue] for queue in left])
            order.append(picked)
            left.remove(picked)
        return order

    async def claim_in_order(self, wanted: int, clear_tokens: bool) -> ClaimTaken:
        """Up to `wanted` due jobs from the served queues, each queue's taken before the next
        one's (`claim_order`): ([(id, score)], drained, next start ms). Drained when no queue
        has a due job left; the next start is the earliest any of them told."""
        return await self.claim(self.claim_order(), wanted, clear_tokens)

    @property
    def running_functions(self) -> int:
        """Jobs whose function is running now (at most `max_jobs`)."""
        return len(self._functions_running)

    def free_slots(self) -> int:
        """How many more jobs this worker takes in hand now: free function slots, plus the
        read-ahead; 0 while it shuts down. A job whose outcome is being written counts as gone:
        its function has ended."""
        if not self.allow_pick_jobs:
            return 0
        in_hand = self.job_counter - len(self._outcome_writes)
        free = self.max_jobs + self.read_ahead - in_hand
        if self.burst and self.max_burst_jobs >= 0:
            free = min(free, self.max_burst_jobs - self._jobs_started())
        return max(free, 0)

    async def claim(
        self, queue_names: Sequence[str], wanted: int, clear_tokens: bool
    ) -> ClaimTaken:
        """Up to `wanted` due jobs of these queues, in this order, now this worker's: ([(id,
        score)], drained, next start ms). One script call (CLAIM_JOBS); none for no queue (all
        of them paused)."""
        if not queue_names:
            return [], True, None
        keys, arguments, asked_at = self.claim_call(
            queue_names, wanted, "1" if clear_tokens else "0"
        )
        reply = await self.claim_script(keys=keys, args=arguments)
        return self.read_claim(queue_names, reply, asked_at)

    @property
    def claim_script(self) -> AsyncScript:
        """CLAIM_JOBS, sent by its SHA1 and loaded again if Redis lost it."""
        if self._claim_jobs is None:
            self._claim_jobs = self.pool.register_script(CLAIM_JOBS)
        return self._claim_jobs

    def claim_call(
        self,
        queue_names: Sequence[str],
        wanted: int,
        clear_tokens: str,
        behind_a_wait: bool = False,
    ) -> tuple[list[str], list[Any], float]:
        """CLAIM_JOBS's keys and arguments (`clear_tokens` as its ARGV[6] says; `behind_a_wait`
        for a claim sent behind a BRPOP), and when they were made (time.monotonic(), for
        `read_claim`)."""
        keys = []
        for queue_name in queue_names:
            keys += [queue_name, wake_key(queue_name), paused_key(queue_name)]
        check_limits = "".join("1" if q in self._limited_queues else "0" for q in queue_names)
        now = time.monotonic()
        if behind_a_wait:  # it runs when the wait ends: whether a look is due is not known now
            check_pauses = "".join("2" if q in self._paused else "1" for q in queue_names)
        else:
            check_pauses = "".join(self.pause_look(q, now) for q in queue_names)
        trims = "".join(self.trim_due(q, now) for q in queue_names)
        arguments = [
            timestamp_ms(),
            wanted,
            in_progress_key_prefix,
            int(self.in_progress_timeout_s * 1000),
            CLAIM_LOOK_PAST,
            clear_tokens,
            self._lease_ms,
            check_limits,
            job_key_prefix,
            retry_key_prefix,
            TRY_COUNT_LIFETIME_SECONDS,
            WAKE_TOKENS_KEPT,
            check_pauses,
            trims,
            "1" if behind_a_wait else "0",
        ]
        return keys, arguments, now

    def read_claim(self, queue_names: Sequence[str], reply: Any, asked_at: float) -> ClaimTaken:
        """What a CLAIM_JOBS call for these queues took: ([(id, score)], drained, next start
        ms), each job's read and limits kept for its start."""
        drained, next_start, pauses, *flat = reply
        self.note_pauses(queue_names, pauses.decode(), asked_at)
        jobs = []
        for i in range(0, len(flat), 5):
            job_id, score, limits, payload, job_try = flat[i : i + 5]
            job_id = job_id.decode()
            jobs.append((job_id, int(float(score))))
            if limits:
                self._limited_jobs[job_id] = limits.decode()[1:]
            self._claimed_reads[job_id] = JobRead(payload, int(job_try))
        return jobs, bool(drained), float(next_start) if next_start else None

    def trim_due(self, queue_name: str, now: float) -> str:
        """'1' if a claim that leaves jobs due in this queue should trim its wake-up list (at
        most every TRIM_TOKENS_SECONDS; the time counts from when it was asked), else '0'."""
        if (
            now - self._tokens_trimmed_at.get(queue_name, -TRIM_TOKENS_SECONDS)
            < TRIM_TOKENS_SECONDS
        ):
            return "0"
        self._tokens_trimmed_at[queue_name] = now
        return "1"

    def note_pauses(self, queue_names: Sequence[str], seen: str, now: float) -> None:
        """Remember what a claim saw of each queue's pause ('1' paused, '0' not, '-' not looked
        at), logged when it changes. `seen` may be shorter than `queue_names`: a claim that has
        all it wanted stops before the queues after it."""
        for queue_name, flag in zip(queue_names, seen, strict=False):
            if flag == "-":
                continue
            self._pause_seen_at[queue_name] = now
            if flag == "1" and queue_name not in self._paused:
                self._paused.add(queue_name)
                logger.info("queue %s is paused: taking no new jobs from it", queue_name)
            elif flag == "0" and queue_name in self._paused:
                self._paused.discard(queue_name)
                logger.info("queue %s is resumed", queue_name)

    async def start_claimed(self, jobs: list[tuple[str, int]]) -> None:
        """Start claimed jobs as arq's `start_jobs` does once it has its in-progress key."""
        for job_id, score in jobs:
            await self.sem.acquire()  # free: a claim takes at most the free slots
            self._start_job(job_id, score)

    def _start_job(self, job_id: str, score: int) -> None:
        self.job_counter += 1
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task

    async def run_cron(self, n: datetime, delay: float, num_windows: int = 2) -> None:
        """arq's, but each cron job's ticks go to its own queue (`@cron_job(queue=...)`), and
        only workers serving that queue queue them: every one of those queues the same tick
        under the same id, so it runs once, and a worker group that never runs a cron job's
        ticks does not pile them up on a queue it does not serve."""
        futures = []
        cutoff = n + timedelta(seconds=delay * num_windows)
        for cron_job in self.cron_jobs:
            queue_name = self._cron_queues.get(cron_job.name, self.queue_name)
            if queue_name not in self.queue_names:
                continue
            if cron_job.next_run is None:
                if cron_job.run_at_startup:
                    cron_job.next_run = n
                else:
                    cron_job.calculate_next(n)
                    continue
            if cron_job.next_run < cutoff:
                job_id = cron_job.job_id
                if job_id is None and cron_job.unique:
                    job_id = f"{cron_job.name}:{to_unix_ms(cron_job.next_run)}"
                later = cron_job.next_run > datetime.now(tz=self.timezone)
                futures.append(
                    self.pool.enqueue_job(
                        cron_job.name,
                        _job_id=job_id,
                        _queue_name=queue_name,
                        _defer_until=cron_job.next_run if later else None,
                    )
                )
                cron_job.calculate_next(cron_job.next_run)
        if futures:
            await asyncio.gather(*futures)

    async def between_claims(self) -> None:
        """What arq's poll does besides reading: drop finished tasks; and, at most once per
        `poll_delay` (a busy worker claims far more often), abort requests, health record, cron."""
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error in run_job itself is raised here
        now = time.monotonic()
        if now - self._last_look_around < self.poll_delay_s:
            return
        self._last_look_around = now
        if self.abort_running_jobs and self.job_tasks:
            await self._cancel_aborted_jobs()
        await self.renew_leases()
        await self.heart_beat()

    async def _cancel_aborted_jobs(self) -> None:
        """arq's: cancel the running jobs asked to abort, read from the queue's abort requests
        (job_handle.py) instead of arq's global set."""
        for queue_name in self.queue_names:
            key = abort_requests_key(queue_name)
            requested: list[bytes] = await self.pool.zrange(key, 0, -1)
            aborted = {job_id.decode() for job_id in requested} & set(self.job_tasks)
            for job_id in aborted:
                self.job_tasks[job_id].cancel()
            if aborted:
                self.aborting_tasks.update(aborted)
                await self.pool.zrem(key, *aborted)

    async def _sleep_until_tasks_complete(self) -> None:
        """arq's wait, on a stop, for the running jobs: while any job task is not done.

        arq waits while its task list holds any task, finished ones too, and only the loop takes
        a finished one out (`between_claims`). A loop waiting on a Redis that has gone never
        does, so a worker stopped then waited out all of WORKER_SHUTDOWN_GRACE with no job
        running (killed `just dev` left it behind that long).
        """
        # Again after each wait: a claim under way when the stop came may have added tasks.
        while running := [task for task in self.tasks.values() if not task.done()]:
            await asyncio.wait(running)

    async def close(self) -> None:
        """arq's `close()`, with Redis given SHUTDOWN_REDIS_SECONDS (not the reconnect window)
        and the shutdown hook run even when Redis does not answer."""
        if self._token_wait is not None:
            self._token_wait.cancel()  # its connection is dropped, the claim behind it unrun
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._token_wait
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self.end_token_wait()  # unless it had ended: what its claim took goes back
        taken, self._taken_at_wake = self._taken_at_wake, None
        if taken is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.give_back_unstarted(taken[0])
        if self._pool is not None:
            stop_waiting_for_redis(self._pool, SHUTDOWN_REDIS_SECONDS)
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values())
        try:
            await self.pool.delete(self.health_check_key)
        except (RedisError, OSError) as error:
            logger.warning("stopping without Redis (%s): what is left unwritten expires", error)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)  # arq's close(), redis-py 5's name
        self._pool = None

    async def burst_is_over(self, drained: bool) -> bool:
        """In burst mode: True once the burst's jobs are started, or nothing is left queued."""
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            return True
        if not drained:
            return False
        for queue_name in self.queue_names:
            if await self.pool.zcard(queue_name):
                return False
        return True

    async def wait_for_a_free_slot(self) -> None:
        """Every slot is busy: wait for one to free, for at most `poll_delay` (abort checks)."""
        self._slot_freed.clear()
        if self.free_slots() == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), self.poll_delay_s)

    async def wait_for_jobs(self, next_start_ms: float | None) -> bool:
        """Nothing due: wait for a wake-up token, the next deferred start, or the fallback.
        True if a token came (more may be waiting in the list)."""
        timeout = FALLBACK_POLL_SECONDS
        if self.job_tasks:  # running jobs: look for abort requests every poll_delay
            timeout = min(timeout, self.poll_delay_s)
        if next_start_ms is not None:
            timeout = min(timeout, (next_start_ms - timestamp_ms()) / 1000)
        timeout = max(timeout, SHORTEST_WAIT_SECONDS)
        if self.burst:  # a burst worker does not wait for jobs queued later
            await asyncio.sleep(min(timeout, self.poll_delay_s))
            return True
        # One wait on every served queue's list (one command, however many queues), for up to
        # FALLBACK_POLL_SECONDS, left running when the next start comes first: Redis ends a
        # blocking wait only on its 100 ms clock (`hz` 10), so a wait timed to a deferred
        # start (a retry's backoff, a rate limit's turn) would start it up to 100 ms late.
        if self._paused:  # a paused queue's tokens would wake it for nothing: look again later
            timeout = min(timeout, PAUSE_CHECK_SECONDS)
        if self._token_wait is None:
            wake_keys = [wake_key(q) for q in self.queue_names if q not in self._paused]
            if not wake_keys:  # every queue served is paused
                await asyncio.sleep(timeout)
                return False
            self._token_wait = asyncio.ensure_future(self.wait_then_claim(wake_keys))
            self._token_wait_ends = time.monotonic() + FALLBACK_POLL_SECONDS
        # The BRPOP ending first is the fallback poll: no timer of its own then.
        timer = None if time.monotonic() + timeout >= self._token_wait_ends else timeout
        done, _ = await asyncio.wait({self._token_wait}, timeout=timer)
        if not done:
            return False  # the list is still empty: the wait goes on
        return self.end_token_wait()

    async def wait_then_claim(self, wake_keys: list[str]) -> tuple[bool, ClaimTaken | None]:
        """Wait for a wake-up token (BRPOP, up to FALLBACK_POLL_SECONDS) with a claim sent right
        behind it on the same connection: Redis runs a client's next command the moment its
        blocking one ends, so the claim is made as the token comes (or as the wait times out:
        the fallback poll), without the round trip of a claim sent once the worker has the
        token (about 0.5 ms here after an idle spell). A job not due by the worker's clock when
        the claim was sent is looked at again on Redis's clock when it runs. Returns whether a
        token came, and what the claim took (None if it failed: the loop claims again itself).
        Cancelled (the worker stops), the connection is dropped before the wait ends, and Redis
        never runs the claim (`send_in_turn`).

        The claim may run a second after it was sent, and a loop that has it claims no more
        itself: it takes from every queue served and looks at each one's pause as it runs (an
        EXISTS for a queue with a job due, or found paused before), so a queue paused or
        resumed meanwhile is seen then, not a wait later."""
        queue_names = self.claim_order(every_queue=True)
        keys, arguments, asked_at = self.claim_call(queue_names, self.free_slots(), "2", True)
        token, reply = await send_in_turn(
            self.pool,
            ("BRPOP", *wake_keys, FALLBACK_POLL_SECONDS),
            ("EVALSHA", self.claim_script.sha, len(keys), *keys, *arguments),
        )
        if isinstance(token, ResponseError):
            raise token
        if isinstance(reply, ResponseError):  # NOSCRIPT (Redis lost its scripts), or other
            return token is not None, None
        return token is not None, self.read_claim(queue_names, reply, asked_at)

    def end_token_wait(self) -> bool:
        """Take the ended `wait_then_claim`'s outcome: what its claim took is kept for the loop;
        True if a token came. Raises what the BRPOP raised."""
        token_wait, self._token_wait = self._token_wait, None
        assert token_wait is not None
        came, taken = token_wait.result()
        self._taken_at_wake = taken
        return bool(came)

    async def keep_what_fits(self, jobs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The jobs a claim sent behind a wait took that this worker has room for now (its free
        places may have gone to jobs claimed meanwhile; none while it stops); the rest are given
        back, due as before, their try taken back."""
        room = self.free_slots()
        await self.give_back_unstarted(jobs[room:])
        return jobs[:room]

    async def give_back_unstarted(self, jobs: list[tuple[str, int]]) -> None:
        """Give back jobs a claim took and this worker never started ([(id, score)]): due as
        before, their try taken back, their read dropped."""
        for job_id, score in jobs:
            self._claimed_reads.pop(job_id, None)
            await self.give_back(job_id, score, try_counted=True)


@dataclass(frozen=True)
class PlannedMove:
    """A workflow's move after a job (`Worker.plan_move`): ADVANCE's keys and arguments, whether
    the job it goes to is in the same queue, and whether a place is held for it to take."""

    keys: list[str]
    arguments: list[str]
    same_queue: bool
    held: bool


@dataclass(frozen=True)
class WorkflowMove:
    """A workflow's move in an outcome write (`Worker.advance_workflow`): the ADVANCE call's
    place among the write's replies, and whether a place was held for the job it may take; or
    the record of a move to another queue, to run after the write."""

    reply_index: int = -1
    held: bool = False
    record: str | None = None


class TriesUsedUp(Exception):
    """arq found the job's tries used up when it read it: the workers that ran it died."""


class AbortingJobs(set[str]):
    """arq's `aborting_tasks`: the ids of running jobs it cancelled for an abort. arq removes an
    id when the job ends aborted and counts it as failed; this counts it as aborted instead."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def remove(self, job_id: str) -> None:
        super().remove(job_id)
        self.worker.jobs_aborted += 1
        self.worker.jobs_failed -= 1


def _tries_used_up(result: JobResult) -> bool:
    # arq's words for it, in the version pinned (arq.worker.Worker.run_job).
    return (
        isinstance(result.result, JobFailed)
        and result.result.error_type == "JobExecutionFailed"
        and result.result.message.startswith("max ")
        and result.result.message.endswith(" retries exceeded")
    )


def _report_unrun(job_id: str, result: JobResult, due_ms: int | None) -> None:
    """The try arq ended without running the job, told as any try's end (job_events.py): no
    JobStarted, as no function started. `due_ms` is when the try was due (the job's score
    before its claim): a job whose record expired before it ran has no enqueue time (arq
    records 0), so its wait counts from then, not from 1970."""
    if not job_events.listening():
        return
    now = job_events.now()
    job_events.emit(
        job_events.JobFinished(
            job_id=job_id,
            function=result.function,
            job_try=result.job_try,
            enqueued_at=result.enqueue_time.timestamp(),
            started_at=now,  # it never started: it took no time
            finished_at=now,
            outcome="failed",
            error=str(result.result),
            due_at=None if due_ms is None else due_ms / 1000,
        )
    )


def create_worker(settings: Any, **overrides: Any) -> Worker:
    """A `Worker` built from `settings` (a class or dict, as `arq` reads it: the project's is
    `infrastructure.tasks.WorkerSettings`), with keyword `overrides`: arq's `create_worker`,
    this class.

    The queues served come from the project's settings (WORKER_QUEUES, WORKER_QUEUE_WEIGHTS)
    when `settings` names the first of them as its `queue_name`, as the project's do; other
    settings serve their `queue_name` alone, unless `overrides` give `queue_names`.
    """
    kwargs = {**get_kwargs(settings), **overrides}
    project = get_settings()
    served = [project.queue_keys[queue] for queue in project.served_queues]
    if kwargs.get("queue_name", served[0]) == served[0]:
        kwargs.setdefault("queue_names", served)
        weights = project.worker_queue_weights
        kwargs.setdefault(
            "queue_weights", {project.queue_keys[queue]: weights[queue] for queue in weights}
        )
    return Worker(**kwargs)


def use_uvloop_if_installed() -> None:
    """Run on uvloop where it is installed (`uvicorn[standard]` installs it with the API), as
    uvicorn does: about 5% more 10 ms jobs per second here (bench/compare.py), from cheaper
    socket reads and writes. Without it, asyncio's own loop."""
    try:
        uvloop = importlib.import_module("uvloop")  # by name: not a dependency of its own
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
