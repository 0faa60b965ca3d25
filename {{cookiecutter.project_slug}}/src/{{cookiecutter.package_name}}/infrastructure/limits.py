# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Limits per function, across every worker: `@job(max_concurrency=3)`, `@job(rate_limit="60/m")`.

    @job(rate_limit="60/m", rate_limit_key="domain")
    async def fetch_page(ctx: JobContext, domain: str, path: str) -> str: ...

A limited job carries its limits in Redis, written with it by `enqueue_task` or a handle's
`enqueue` (`Q:limited:J`, "the job's limits" below). A worker's claim (worker/loop.py) reads them
for each due job before it takes the job, in the same script, so the check is atomic across
every worker process and host:

- **max_concurrency**: the jobs running hold a lease each in `Q:limit:<limit>:running` (a sorted
  set, job id -> when the lease expires). With every lease taken, the job is not claimed: it
  joins `Q:limit:<limit>:waiting` (oldest first) and its score in the queue moves on by one
  lease lifetime. A job that ends (or is retried, or given back) gives its lease back and makes
  the oldest waiting job due at once, with a wake-up token: no polling while it waits. A worker
  renews the leases of its running jobs every half heartbeat interval; a lease expires
  `WORKER_HEALTH_CHECK_INTERVAL` + 2 s after its last renewal, so a worker killed while holding
  one gives it back within its heartbeat window, and a waiting job looks again at that moment.
- **rate_limit** (`<n>/s`, `/m`, `/h` or `/d`): starts are spaced evenly, one every period/n
  (GCRA with no burst, as Celery spreads `rate_limit` over its period).
  `Q:limit:<limit>:next-start` holds the earliest time the next start may take. A job over the
  rate is not claimed: it reserves that time, and its score in the queue moves to it, so each
  job is looked at twice at most. The turns are one interval apart: any one-second window holds
  at most n/period + 1 of them. A job starts at its turn, plus the milliseconds its worker
  takes to claim and read it (bench/limits.py measures both).

A job waiting for its limit has not been read: it has used no try and holds no worker slot.
`Q:limit-wait:J` says why it waits ("concurrency", or "rate" with the start it reserved), which
`Job.limit_wait()` reads for the API and the dashboard. `rate_limit_key` / `max_concurrency_key`
name an argument of the function (or give a function of its arguments) whose value keys the
limit: one limit per customer, per domain.

A limit lives in the namespace of the job's queue (keys.py), so a limited job runs on the queue
it declares: `enqueue_task` refuses another. Jobs written by a plain arq client, or run by arq's
own loop (`arq ...WorkerSettings`), are not limited.
"""

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# How a rate limit is written: a count, a slash, a unit (Celery's form, with days).
RATE_PATTERN = re.compile(r"\s*(\d+)\s*/\s*([smhd])\s*")
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest value a limit key may take (an argument's value, as text).
LIMIT_KEY_MAX_CHARS = 200
# How a lease outlives its last renewal, beyond the heartbeat interval (heartbeat.py's margin).
LEASE_MARGIN_SECONDS = 2.0

# An argument name, or a function of the job's arguments, whose value keys a limit.
LimitKey = str | Callable[..., Any]


@dataclass(frozen=True)
class RateLimit:
    """`count` starts per `period_s` seconds, spaced `interval_ms` apart; `text` as declared."""

    count: int
    period_s: int
    text: str

    @property
    def interval_ms(self) -> float:
        return self.period_s * 1000 / self.count


def parse_rate_limit(text: str) -> RateLimit:
    """`"60/m"` -> RateLimit(60, 60, "60/m"). Raises ValueError for anything else, or a count of 0."""
    match = RATE_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"rate_limit must be a count per second, minute, hour or day, like '50/s' or "
            f"'60/m', not {text!r}"
        )
    if int(match[1]) < 1:
        raise ValueError(f"rate_limit must allow at least 1 start, not {text!r}")
    count, unit = int(match[1]), match[2]
    return RateLimit(count, PERIOD_SECONDS[unit], f"{count}/{unit}")


@dataclass(frozen=True)
class Limits:
    """A job's limits, each None when it has none (`@job(...)`'s keywords)."""

    max_concurrency: int | None = None
    max_concurrency_key: LimitKey | None = None
    rate_limit: RateLimit | None = None
    rate_limit_key: LimitKey | None = None

    def __bool__(self) -> bool:
        return self.max_concurrency is not None or self.rate_limit is not None

    def describe(self) -> str:
        """`max_concurrency=3, rate_limit=60/m`, for messages."""
        parts = []
        if self.max_concurrency is not None:
            parts.append(f"max_concurrency={self.max_concurrency}")
        if self.rate_limit is not None:
            parts.append(f"rate_limit={self.rate_limit.text}")
        return ", ".join(parts)


def limited_key(queue_name: str, job_id: str) -> str:
    """The job's limits, written with it: the text `job_limits()` makes."""
    return f"{queue_name}:limited:{job_id}"


def limit_wait_key(queue_name: str, job_id: str) -> str:
    """Why a limited job waits: "concurrency:" or "rate:", then the start it reserved (ms)."""
    return f"{queue_name}:limit-wait:{job_id}"


def concurrency_keys(queue_name: str, limit: str) -> tuple[str, str]:
    """The leases of a concurrency limit (job id -> expiry ms) and its waiting jobs (job id ->
    their score when they began to wait)."""
    return f"{queue_name}:limit:{limit}:running", f"{queue_name}:limit:{limit}:waiting"


def limit_name(
    function: str,
    key: LimitKey | None,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    signature: inspect.Signature,
) -> str:
    """The limit a job counts against: its function's name, then the key's value if keyed
    (`fetch_page:example.com`): the argument `key` names (`signature` is the job function's,
    ctx first), or what `key(*args, **kwargs)` returns. Raises ValueError for a value that is
    None, has a line break, or is longer than LIMIT_KEY_MAX_CHARS."""
    if key is None:
        return function
    if callable(key):
        source = "its limit key function"
        try:
            value = key(*args, **kwargs)
        except Exception as error:
            raise ValueError(f"the limit key function of {function!r} raised {error!r}") from error
    else:
        source = f"its limit key, argument {key!r},"
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        value = bound.arguments[key]
    text = str(value)
    if value is None:
        problem = "is None"
    elif "\n" in text:
        problem = "has a line break"
    elif len(text) > LIMIT_KEY_MAX_CHARS:
        problem = f"is {len(text)} characters long, over {LIMIT_KEY_MAX_CHARS}"
    else:
        return f"{function}:{text}"
    raise ValueError(f"{source} {problem}: {function!r} needs a key to count its limit by")


def job_limits(
    function: str,
    limits: Limits,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    signature: inspect.Signature,
) -> str:
    """The text a limited job carries (`limited_key`), read by LIMIT_CHECK: five lines, the
    concurrency limit's name and maximum, the rate limit's name, spacing (ms) and text, each
    empty when the job has no such limit. Raises ValueError as `limit_name` does."""
    concurrency = rate = ("", "")
    if limits.max_concurrency is not None:
        name = limit_name(function, limits.max_concurrency_key, args, kwargs, signature)
        concurrency = (name, str(limits.max_concurrency))
    if limits.rate_limit is not None:
        name = limit_name(function, limits.rate_limit_key, args, kwargs, signature)
        rate = (name, repr(limits.rate_limit.interval_ms))
    text = limits.rate_limit.text if limits.rate_limit is not None else ""
    return "\n".join([*concurrency, *rate, text])


@dataclass(frozen=True)
class LimitWait:
    """Why a queued job has not started: `kind` is "max_concurrency" or "rate_limit"; `limit`
    the limit's name (function, and key value if keyed); `allowed` the limit as declared (3,
    "60/m"); `starts_at` the start a rate-limited job reserved."""

    kind: str
    limit: str
    allowed: str
    starts_at: datetime | None = None

    def describe(self) -> str:
        """For people: `max_concurrency: 3 jobs of render_report are running`, `rate_limit:
        60/m for call_api, its turn at 2026-12-06T20:19:34.389Z`."""
        if self.kind == "max_concurrency":
            jobs = "1 job" if self.allowed == "1" else f"{self.allowed} jobs"
            running = "is" if self.allowed == "1" else "are"
            return f"max_concurrency: {jobs} of {self.limit} {running} running"
        if self.starts_at is None:
            return f"rate_limit: {self.allowed} for {self.limit}"
        turn = self.starts_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"rate_limit: {self.allowed} for {self.limit}, its turn at {turn}"


def read_limit_wait(wait: bytes | None, limits: bytes | None) -> LimitWait | None:
    """A `LimitWait` from the values of `limit_wait_key` and `limited_key` (None when either is
    missing or unreadable: the job is not waiting for a limit, as far as they tell)."""
    if wait is None or limits is None:
        return None
    kind, _, reserved = wait.decode(errors="replace").partition(":")
    lines = limits.decode(errors="replace").split("\n")
    if len(lines) != 5:
        return None
    concurrency_limit, maximum, rate_limit, _, rate_text = lines
    if kind == "concurrency":
        return LimitWait("max_concurrency", concurrency_limit, maximum)
    if kind == "rate":
        try:
            starts_at = datetime.fromtimestamp(float(reserved) / 1000, tz=UTC)
        except ValueError:
            starts_at = None
        return LimitWait("rate_limit", rate_limit, rate_text, starts_at)
    return None


# A Lua function for CLAIM (worker/loop.py), run for each due job that is not in progress:
# whether the job may start now under its limits. `limit_check(q, id, score, now, lease_ms)` ->
# 'run', or 'run' and the concurrency limit whose lease it now holds, or 'wait' (it waits: its
# score has moved on, as the module docstring says), or 'free' (no limits: nothing written);
# each as a table: {'run', limit}, {'wait', its new score}, {'free'}.
LIMIT_CHECK = """
local function limit_check(q, id, score, now, lease_ms)
  local limits = redis.call('GET', q .. ':limited:' .. id)
  if not limits then return {'free'} end
  local f = {}
  for line in (limits .. '\\n'):gmatch('(.-)\\n') do f[#f + 1] = line end
  local maximum, interval = tonumber(f[2]), tonumber(f[4])
  local wait_key = q .. ':limit-wait:' .. id
  local wait = redis.call('GET', wait_key)
  local reserved = wait and tonumber(string.match(wait, ':(.*)$'))
  local keep_ms = 2 * lease_ms
  local running, waiting
  if maximum then
    running = q .. ':limit:' .. f[1] .. ':running'
    waiting = q .. ':limit:' .. f[1] .. ':waiting'
    redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
    if not redis.call('ZSCORE', running, id) and redis.call('ZCARD', running) >= maximum then
      redis.call('ZADD', waiting, 'NX', score, id)
      redis.call('ZADD', q, 'XX', now + lease_ms, id)
      redis.call('SET', wait_key, 'concurrency:' .. (reserved or ''), 'PX', keep_ms)
      return {'wait', now + lease_ms}
    end
  end
  if interval and not reserved then
    local next_key = q .. ':limit:' .. f[3] .. ':next-start'
    local next_start = tonumber(redis.call('GET', next_key) or '0')
    if next_start > now then
      redis.call('SET', next_key, tostring(next_start + interval), 'PX',
                 math.ceil(next_start + interval - now))
      redis.call('ZADD', q, 'XX', next_start, id)
      redis.call('SET', wait_key, 'rate:' .. tostring(next_start), 'PX',
                 math.ceil(next_start - now) + keep_ms)
      return {'wait', next_start}
    end
    redis.call('SET', next_key, tostring(now + interval), 'PX', math.ceil(interval))
  end
  if wait then redis.call('DEL', wait_key) end
  if maximum then
    redis.call('ZADD', running, now + lease_ms, id)
    redis.call('ZREM', waiting, id)
    return {'run', f[1]}
  end
  return {'run', ''}
end
"""

# KEYS: the limit's leases and waiting jobs (concurrency_keys), the queue, its wake-up list, its
# pause (store/pause.py: a paused queue's job is made due, not claimed).
# ARGV: the job id giving its lease back, now (ms), '1' if the worker giving it back takes the
# next job itself, arq's in-progress key prefix, the in-progress lifetime (ms), the lease
# lifetime (ms). The oldest waiting job still queued gets the slot: claimed for that worker in
# this same script (a lease, its in-progress mark), or else made due now with a token that wakes
# a worker for it. Returns {id, score, limits} for a job claimed here (as CLAIM_JOBS returns
# each), else false.
RELEASE_LEASE = (
    LIMIT_CHECK
    + """
local now = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
while true do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 then return false end
  local id = oldest[1]
  redis.call('ZREM', KEYS[2], id)
  if redis.call('ZSCORE', KEYS[3], id) then
    local mark = ARGV[4] .. id
    if ARGV[3] == '1' and redis.call('EXISTS', mark, KEYS[5]) == 0 then
      local verdict = limit_check(KEYS[3], id, now, now, tonumber(ARGV[6]))
      if verdict[1] == 'wait' then return false end  -- its rate turn has not come
      redis.call('SET', mark, '1', 'PX', ARGV[5])
      redis.call('ZADD', KEYS[3], 'XX', now + tonumber(ARGV[5]), id)
      return {id, tostring(now), verdict[1] == 'run' and '=' .. verdict[2] or ''}
    end
    redis.call('ZADD', KEYS[3], 'XX', 'LT', now, id)
    redis.call('LPUSH', KEYS[4], '1')
    return false
  end
end
"""
)
