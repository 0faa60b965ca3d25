# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Work that spans jobs, as Redis keeps it: chains and groups (client/workflows.py makes them,
the worker moves them on).

A workflow's jobs are ordinary jobs of their queues, each carrying its place in the workflow in
its payload (`"w"`, a `Membership`: which workflow, its index, which job its outcome goes to).
Jobs that wait for others (a chain's later steps, a group's callback) are written when the
workflow is made, like a queued job, but not put in their queue: they wait there, unclaimable,
until the job before them ends. What they receive (the previous step's result; each member's
result) is their input, `Q:input:J`, read by the worker when it runs them and passed as their
first argument after `ctx`.

**Moving on is part of writing the outcome.** When a member's last try ends, the worker's outcome
write (loop.py's `write_outcome`: one script, FINISH_AND_ADVANCE, when the job it goes to is in
its queue and the member has no limits; else one MULTI) also runs ADVANCE for that job:
a chain's next step gets its input and is queued; a group's callback gets this member's result,
and is queued by the write that adds the last one (HSETNX then HLEN, in one script: however many
members end at once, on however many workers, exactly one write sees the count complete). A
worker killed before that write runs the member again (heartbeat.py); after it, the next job is
queued. Nothing is lost or done twice.

When the worker serves the next job's queue, has its function and a free place, and the job has
no limits, ADVANCE also takes the job for it, as a claim would (its in-progress mark, its score,
its try), and returns its payload and input: the worker starts it at once (loop.py's
`after_advance`), so a chain on one queue runs step after step without a claim or a read.

A job in another queue than the member's lives in another Redis Cluster slot, which one MULTI
or script cannot touch. Then the outcome write records the ADVANCE call in the member's own queue
(`Q:handoffs`, in the same MULTI) and the worker runs it right after, then deletes the record;
if the worker dies in between, any worker serving that queue runs it at its next heartbeat
(`apply_handoffs`). ADVANCE is idempotent (the input is written once, a member's result is
counted once), so running a record twice changes nothing.

Keys, for a workflow `W` = `<home queue key>:wf-<hex>` (its first step's queue, or its callback's):

    Q:workflow:W                    the workflow: kind, members and callback (JSON), kept
                                    STATE_LIFETIME_MS
    Q:input:J                       a waiting job's input: the previous step's result (JSON), or
                                    a hash of member index -> result (a callback)
    Q:handoffs                      hash: member id -> an ADVANCE call for another queue, not run
                                    yet

A failed chain step (after its retries) queues nothing more: the steps after it stay waiting and
read as `cancelled` (client/workflows.py). A group member that fails, with `on_error="fail"`,
records the callback's outcome as failed, naming the member; with `"pass"`, the callback gets
the member's error (`JobFailed`) in its place in the list.
"""

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_result
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..job_types import UNKNOWN_FUNCTION
from ..keys import abort_requests_key, queue_of
from ..limits import limited_key
from .job_writes import result_lifetime_arg, wake_key
from .pause import paused_key
from .records import Unreadable
from .serialization import JobAborted, JobFailed, deserialize, serialize

logger = logging.getLogger(__name__)

# How long a workflow's record, its waiting jobs' inputs and a group's failure are kept, in ms:
# two days, longer than a waiting job's own lifetime (a day past its start, as arq's).
STATE_LIFETIME_MS = 2 * 24 * 3600 * 1000
# The start of a workflow's id after its queue's key.
WORKFLOW_ID_PREFIX = "wf-"
# A job's membership in its payload; a payload without it is an ordinary job's.
MEMBERSHIP_FIELD = "w"
_MARK = b'"w":{'

# What ADVANCE does, on its keys K and arguments A (the two scripts below set them).
_MOVE_ON = """
if redis.call('EXISTS', K[2]) == 1 then return 0 end
if A[1] == 'chain' then
  if not redis.call('SET', K[3], A[5], 'NX', 'PX', A[4]) then return 0 end
else
  if redis.call('HSETNX', K[3], A[6], A[5]) == 0 then return 0 end
  redis.call('PEXPIRE', K[3], A[4])
  if A[8] ~= '' then
    redis.call('SET', K[2], A[8], 'PX', A[4])
    redis.call('DEL', K[1])
    return 0
  end
  if redis.call('HLEN', K[3]) < tonumber(A[7]) then return 0 end
end
local payload = redis.call('GET', K[1])  -- read here, not again if the job is taken
if not payload then
  -- Its record ran out while it waited (its `expires`): its outcome says so, as a worker's
  -- for a job whose record expired (run.py), and its workflow ends, naming it.
  redis.call('SET', K[2], '{"t":0,"f":@UNKNOWN_FUNCTION@,"a":[],"k":{},"et":0,"s":false,'
    .. '"r":{"__type__":"exception","error_type":"JobExecutionFailed","message":"job expired"},'
    .. '"st":' .. A[3] .. ',"ft":' .. A[3] .. ',"q":' .. cjson.encode(K[4])
    .. ',"id":' .. cjson.encode(A[2]) .. '}', 'PX', A[4])
  return 0
end
if A[9] == '1' and redis.call('EXISTS', K[8], K[9]) == 0
   and redis.call('SET', K[6], '1', 'NX', 'PX', A[10]) then
  -- Taken, as a claim takes a job: its score moves to when its mark runs out, its try counts.
  redis.call('ZADD', K[4], 'NX', tonumber(A[3]) + tonumber(A[10]), A[2])
  local count = 1
  if not redis.call('SET', K[7], '1', 'NX', 'EX', A[11]) then
    count = redis.call('INCR', K[7])
    redis.call('EXPIRE', K[7], A[11])
  end
  local input = A[5]
  if A[1] ~= 'chain' then input = redis.call('HGETALL', K[3]) end
  return {A[2], A[3], payload, count, input}
end
redis.call('ZADD', K[4], 'NX', A[3], A[2])
redis.call('LPUSH', K[5], '1')
return 1
"""
# KEYS: the waiting job, its result, its input, its queue, the queue's wake-up list, its
# in-progress mark, its try count, where its limits would be, its queue's pause (pause.py).
# ARGV: 'chain' or 'group', the waiting job's id, its start (ms), STATE_LIFETIME_MS, the value
# (JSON), the member's index, the group's size, and for a failed member of a group that fails
# with it, the callback's failed result ('' otherwise); then '1' to take the job for this worker
# (`take`: not for a job with limits or on a paused queue, which is queued), the in-progress
# mark's lifetime (ms), the try count's lifetime (s).
# A waiting job whose record has run out is not queued: its result says it expired, as the
# worker writes it for a job it finds expired (its function UNKNOWN_FUNCTION, its try 0).
# Returns 0 when it queued nothing, 1 when it queued the job, and when it took the job, what a
# claim reads of it (loop.py's CLAIM_JOBS): {id, start, payload, try, input} (input: the value,
# or the callback's hash as a flat list).
_MOVE_ON = _MOVE_ON.replace("@UNKNOWN_FUNCTION@", json.dumps(UNKNOWN_FUNCTION))
ADVANCE = "local K, A = KEYS, ARGV\n" + _MOVE_ON

# A chain step's or group member's whole outcome write when the job it goes to is in its queue
# (loop.py's `finish_moving_on`): the finished job's outcome, as finishes.py's FINISH_JOBS
# writes one, then ADVANCE, in one script call where a transaction of arq's write and an EVAL
# took seven commands (MULTI to EXEC) and the packing of each in the worker.
# KEYS: the finished job's result, its in-progress mark, its try count, the job, its queue's
# abort requests, its queue; then ADVANCE's keys. ARGV: its id, its result ('' to keep none),
# the result's lifetime (ms, '0' for no end), '1' to drop an abort request for it (as
# FINISH_JOBS: only for a result not kept past the heartbeats' sweep, finishes.py says why);
# then ADVANCE's arguments. The result is written first, so that a Redis at its `maxmemory`
# refuses the whole call (finishes.py says why; a job that keeps no result has its call go
# through whole). Returns what ADVANCE returns.
_FINISH = """
if ARGV[2] ~= '' then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if ARGV[4] == '1' then redis.call('ZREM', KEYS[5], ARGV[1]) end
redis.call('ZREM', KEYS[6], ARGV[1])
local K, A = {unpack(KEYS, 7)}, {unpack(ARGV, 5)}
"""
FINISH_AND_ADVANCE = _FINISH + _MOVE_ON

# KEYS: a waiting job, its result, its in-progress mark, its queue. ARGV: its id, its aborted
# result, STATE_LIFETIME_MS. A job not queued, running or finished is cancelled: its result
# says aborted, so that ADVANCE never queues it. Returns 1 if it was cancelled here.
CANCEL_WAITING = """
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then return 0 end
if redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"""

Kind = Literal["chain", "group"]
Takes = Literal["result", "results"]


class MemberFailed(Exception):
    """A group that fails with its members (`on_error="fail"`): the member that failed first."""


class MissingInput(Exception):
    """A waiting job runs without its input (expired, or queued by hand): it fails with this."""


def workflow_key(queue_name: str, workflow_id: str) -> str:
    return f"{queue_name}:workflow:{workflow_id}"


def input_key(queue_name: str, job_id: str) -> str:
    return f"{queue_name}:input:{job_id}"


def handoffs_key(queue_name: str) -> str:
    return f"{queue_name}:handoffs"


@dataclass(frozen=True)
class Membership:
    """A job's place in a workflow, as its payload carries it: the workflow's `id` and `kind`,
    the job's `index` (a step's or member's, from 0; -1 for a callback), the job its outcome
    goes to (`then`, with its function `then_function`; None for none), the group's `size`, whether
    a member's failure fails the group (`fail_group`), and what the job receives first (`takes`:
    the previous step's result, or the members' results; None for nothing)."""

    id: str
    kind: Kind
    index: int
    then: str | None = None
    then_function: str | None = None
    size: int = 0
    fail_group: bool = False
    takes: Takes | None = None

    def as_payload(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


def membership(payload: bytes) -> Membership | None:
    """The membership a job's payload carries, or None for an ordinary job (or one whose
    membership cannot be read: it runs as an ordinary job, and that is logged)."""
    if _MARK not in payload:  # most jobs: no parsing
        return None
    try:
        data = deserialize(payload)
        value = data.get(MEMBERSHIP_FIELD) if isinstance(data, dict) else None
        return None if value is None else _membership_of(value)
    except (ValueError, Unreadable) as error:
        logger.warning("a job's workflow membership cannot be read, it runs alone: %s", error)
        return None


def _membership_of(value: Any) -> Membership:
    """`typed(Membership, value)`, checked by hand: it runs for each of a workflow's jobs, and
    `typed` reads the class's type hints each time (a tenth of a chain step's time)."""
    if not isinstance(value, dict):
        raise Unreadable(f"a {type(value).__name__}, not an object")
    workflow_id, kind, index = value.get("id"), value.get("kind"), value.get("index")
    then, then_function = value.get("then"), value.get("then_function")
    size, fail_group, takes = (
        value.get("size", 0),
        value.get("fail_group", False),
        value.get("takes"),
    )
    if not isinstance(workflow_id, str) or kind not in ("chain", "group"):
        raise Unreadable(f"no workflow id or kind: {value!r}"[:200])
    if type(index) is not int or type(size) is not int or type(fail_group) is not bool:
        raise Unreadable(f"an index, size or fail_group of the wrong type: {value!r}"[:200])
    if not all(v is None or isinstance(v, str) for v in (then, then_function)):
        raise Unreadable(f"a then or then_function that is not text: {value!r}"[:200])
    if takes not in (None, "result", "results"):
        raise Unreadable(f"takes is {takes!r}")
    return Membership(workflow_id, kind, index, then, then_function, size, fail_group, takes)


@dataclass
class MemberRun:
    """One try of a workflow's job in the worker: its membership, its function, and its outcome
    once its last try ended (`success`, the value or the error)."""

    membership: Membership
    function: str = ""
    outcome: tuple[bool, Any] | None = None
    given_input: Any = None  # what ADVANCE read when it handed the job over, if it did


async def read_input(redis: Redis, job_id: str, run: MemberRun) -> Any:
    """What a waiting job receives: the previous step's result, or the list of each member's
    result in order (a failed member's error, `JobFailed`, in its place); read now, unless the
    job was handed over with it (`run.given_input`). Raises MissingInput."""
    member = run.membership
    queue_name = queue_of(job_id) or ""
    key = input_key(queue_name, job_id)
    if member.takes == "result":
        data: bytes | None = run.given_input
        if data is None:
            data = await redis.get(key)
        if data is None:
            raise MissingInput(f"the input of {job_id} is missing: {key}")
        return deserialize(data)
    fields: dict[bytes, bytes]
    if isinstance(run.given_input, list):  # HGETALL's flat reply, as the script returns it
        flat = run.given_input
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
    else:
        fields = await redis.hgetall(key)  # type: ignore[misc]
    if len(fields) < member.size:
        raise MissingInput(f"{key} holds {len(fields)} of {member.size} members' results")
    return [deserialize(fields[str(index).encode()]) for index in range(member.size)]


def advance_call(
    job_id: str, run: MemberRun, now_ms: int, take: tuple[int, int] | None = None
) -> tuple[list[str], list[str]] | None:
    """ADVANCE's keys and arguments for a member whose last try ended (`run.outcome`), or None
    when nothing follows it (a chain's last or failed step, a group without a callback). With
    `take` (the in-progress mark's lifetime in ms, the try count's in s), a job it queues is
    taken for the caller instead, its read returned."""
    member, (success, value) = run.membership, run.outcome or (False, None)
    then = member.then
    if then is None or (member.kind == "chain" and not success):
        return None
    try:
        data = serialize(value)
    except (TypeError, ValueError) as error:  # a result JSON cannot hold: the job's own fault
        success, value = False, JobFailed(type(error).__name__, str(error))
        data = serialize(value)
        if member.kind == "chain":
            return None
    failed_result = ""
    if member.kind == "group" and member.fail_group and not success:
        failed_result = _group_failure(job_id, run, then, value, now_ms)
    queue_name = queue_of(then) or ""
    keys = [
        job_key_prefix + then,
        result_key_prefix + then,
        input_key(queue_name, then),
        queue_name,
        wake_key(queue_name),
        in_progress_key_prefix + then,
        retry_key_prefix + then,
        limited_key(queue_name, then),
        paused_key(queue_name),
    ]
    arguments = [
        member.kind,
        then,
        str(now_ms),
        str(STATE_LIFETIME_MS),
        data.decode(),
        str(member.index),
        str(member.size),
        failed_result,
        "0" if take is None else "1",
        str(take[0] if take else 0),
        str(take[1] if take else 0),
    ]
    return keys, arguments


def finish_and_advance_call(
    queue_name: str,
    job_id: str,
    result: bytes | None,
    result_lifetime_s: float | None,
    drop_abort_request: bool,
    advance: tuple[list[str], list[str]],
) -> tuple[list[str], list[str | bytes]]:
    """FINISH_AND_ADVANCE's keys and arguments: the outcome of job `job_id` of `queue_name` (a
    queue's key), finished, with its `result` (None to keep none) kept `result_lifetime_s`
    seconds (None: for good), whether to drop an abort request for it, and ADVANCE's call
    (`advance_call`, for a job in the same queue)."""
    keys = [
        result_key_prefix + job_id,
        in_progress_key_prefix + job_id,
        retry_key_prefix + job_id,
        job_key_prefix + job_id,
        abort_requests_key(queue_name),
        queue_name,
        *advance[0],
    ]
    lifetime = result_lifetime_arg(result_lifetime_s)
    drop = "1" if drop_abort_request else "0"
    return keys, [job_id, result or b"", lifetime, drop, *advance[1]]


def _group_failure(job_id: str, run: MemberRun, then: str, error: Any, now_ms: int) -> str:
    """The callback's result when a member fails a group that fails with it: failed, naming the
    member (`MemberFailed`); aborted, naming it, when the member was aborted (its error is the
    CancelledError arq records), as a chain reads aborted when its step was."""
    member = run.membership
    named = f"member {member.index} ({run.function}, {job_id})"
    reason: Exception
    if isinstance(error, asyncio.CancelledError | JobAborted):
        reason = JobAborted(f"{named} aborted: {JobAborted.__name__}: the job was aborted")
    else:
        why = str(error) if isinstance(error, JobFailed) else f"{type(error).__name__}: {error}"
        reason = MemberFailed(f"{named} failed: {why}")
    queue_name = queue_of(then) or ""
    function = member.then_function or "?"
    record = serialize_result(
        function, (), {}, 0, now_ms, False, reason, now_ms, now_ms,
        f"{then}:{function}", queue_name, job_id=then, serializer=serialize,
    )  # fmt: skip
    assert record is not None  # our serializer writes every exception
    return record.decode()


def handoff(keys: list[str], arguments: list[str]) -> str:
    """An ADVANCE call as a `Q:handoffs` record."""
    return json.dumps([keys, arguments])


async def run_handoff(redis: Redis, queue_name: str, job_id: str, record: str | bytes) -> None:
    """Run a recorded ADVANCE call in its own queue, then delete the record."""
    keys, arguments = json.loads(record)
    await redis.eval(ADVANCE, len(keys), *keys, *arguments)  # type: ignore[misc]
    await redis.hdel(handoffs_key(queue_name), job_id)  # type: ignore[misc]


async def apply_handoffs(redis: Redis, queue_name: str) -> int:
    """Run the ADVANCE calls a worker recorded in this queue and did not run (it died first);
    returns how many. Each runs in its own queue; one that fails stays for the next time."""
    records: dict[bytes, bytes] = await redis.hgetall(handoffs_key(queue_name))  # type: ignore[misc]
    done = 0
    for job_id, record in records.items():
        try:
            await run_handoff(redis, queue_name, job_id.decode(), record)
            done += 1
        except (RedisError, ValueError) as error:
            logger.warning("could not move workflow job %r on: %s", job_id, error)
    return done
