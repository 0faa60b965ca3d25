# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""How this project reaches Redis: `REDIS_URL` plus a few settings, turned into arq's
`RedisSettings`, and one clear line for every kind of Redis error (`describe_redis_error`).

`REDIS_URL` carries host, port, database, user, password and TLS (`rediss://`); the `REDIS_*`
settings in config.py add a CA bundle, connection timeout and retries, and Redis Sentinel.
Redis Cluster is not supported: arq does not support it.

A worker rides out a Redis restart (`redis_settings(reconnect_for=...)`): redis-py's `Retry`
tries each command again, and `ReconnectingRetry` adds what it lacks. redis-py copies the
`Retry` for every client and every connection, and every command retries on its own (arq's
poll loop, the heartbeat, each running job), so the outage is one `Outage` shared by all the
copies: one WARNING when Redis is lost, one INFO when it is back, and one deadline for all. With
attempts counted per command instead, a command whose reconnects are themselves retried
(redis-py nests the two) waited the window again for each attempt: 4 minutes for 10 s. A
read-only replica (a failover that DNS has not followed yet), a server still loading its data
and one busy with a long script are waited out the same way, with a new connection each time.

A worker also rides out a full Redis (`maxmemory` reached, `noeviction`: compose's setting),
which refuses every write that needs memory with OOM: a write it refuses is tried again, with the
same backoff, until Redis takes it, with no deadline, so that a finished job's outcome is written
once memory frees instead of the worker exiting (and the job running again). `RefusedWrites`
says so once per REFUSED_WRITES_LOG_SECONDS, not per attempt, and once when writes go through.

Every entry point (enqueue_task, the API's problem handler and /health/ready, the CLI, the
worker's log lines) names an error through `describe_redis_error`: the cause and the setting or
server command to check, in one line that never shows the password (nor the command's data,
which redis-py puts in a pipeline's errors).
"""

import dataclasses
import logging
import math
import re
import time
from asyncio import sleep
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Self, TypeVar
from urllib.parse import unquote

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...config import Settings, get_settings
from .job_writes import JobPool, job_pool

logger = logging.getLogger(__name__)

# Delays between attempts to reach Redis again: from 0.05 s, doubling, at most 2 s, with jitter.
RECONNECT_BACKOFF_BASE = 0.05
RECONNECT_BACKOFF_CAP = 2.0
# While Redis refuses writes for want of memory, a worker says so at most this often (seconds).
REFUSED_WRITES_LOG_SECONDS = 60.0

T = TypeVar("T")

# What went wrong, by cause; `describe_redis_error` gives each its line.
RedisErrorKind = Literal[
    "unreachable",  # no connection: refused, reset, DNS, TLS
    "timeout",  # no answer in time
    "auth",  # wrong user or password
    "permission",  # the user's ACL does not allow a command
    "out_of_memory",  # maxmemory reached with noeviction: writes refused
    "read_only",  # a read-only replica, as after a failover
    "loading",  # still loading its data after a restart
    "busy",  # a script or function runs past busy-reply-threshold
    "no_script",  # a script not in its cache (restart, failover, SCRIPT FLUSH)
    "persistence",  # cannot save to disk (MISCONF): writes refused
    "cluster",  # a Redis Cluster, which arq does not support
    "bad_url",  # REDIS_URL cannot be read
    "refused",  # any other error reply
]
# Kinds a worker waits out: for up to WORKER_RECONNECT_SECONDS, reconnecting each time.
WAITED_OUT: frozenset[RedisErrorKind] = frozenset(
    {"unreachable", "timeout", "read_only", "loading", "busy"}
)
# Kinds a worker waits out with no deadline: Redis answers, and refuses writes until an
# operator frees memory or fixes its disk.
WRITES_REFUSED: frozenset[RedisErrorKind] = frozenset({"out_of_memory", "persistence"})


@dataclasses.dataclass(frozen=True)
class RedisProblem:
    """One Redis error, described: `kind`, and `message`, one line that says where, the cause,
    and what to check; never the password, nor the data of the command that failed."""

    kind: RedisErrorKind
    message: str


class RedisUnavailableError(ConnectionError):
    """Redis could not be reached, or refused a command; the message says where, why, and
    which settings to check; `kind` names the cause (`RedisErrorKind`)."""

    def __init__(self, message: str, kind: RedisErrorKind = "unreachable") -> None:
        super().__init__(message)
        self.kind: RedisErrorKind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.kind))  # copied and pickled with its kind


class Outage:
    """Since when Redis has been away, for every copy of one `ReconnectingRetry`.

    `location` names the server in the log lines (never with the password); `seconds` is how
    long commands keep trying once Redis is away.
    """

    def __init__(self, location: str, seconds: float) -> None:
        self.location = location
        self.seconds = seconds
        self.since: float | None = None  # time.monotonic() of the first failure; None: reachable
        self.retrying = 0  # commands between a failure and their outcome

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self  # redis-py copies the Retry per client and per connection: all share this

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            problem = _describe(error, self.location, "REDIS_URL")
            if problem.kind in ("unreachable", "timeout"):
                reason = _server_reason(error) or type(error).__name__
                logger.warning(
                    "cannot reach Redis at %s (%s): retrying for up to %g s "
                    "(WORKER_RECONNECT_SECONDS)",
                    self.location,
                    reason,
                    self.seconds,
                )
            else:
                logger.warning(
                    "%s: retrying for up to %g s (WORKER_RECONNECT_SECONDS)",
                    problem.message,
                    self.seconds,
                )

    def answered(self, after_failures: bool) -> None:
        """A command got its reply: Redis is back, unless this is a reply that was on its way
        when Redis went away while other commands are still failing."""
        if self.since is not None and (after_failures or self.retrying == 0):
            logger.info(
                "Redis at %s is back after %.1f s", self.location, time.monotonic() - self.since
            )
            self.since = None

    def is_over_time(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.seconds


class RefusedWrites:
    """Since when Redis has refused writes (out of memory, or it cannot save to disk), for
    every copy of one `ReconnectingRetry`: one WARNING per REFUSED_WRITES_LOG_SECONDS while it
    lasts, however many commands wait and however often they try, and one INFO once a refused
    write goes through."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.since: float | None = None  # time.monotonic() of the first refusal; None: accepted
        self.logged_at = -math.inf
        self.waiting = 0  # commands refused and not yet written

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def refused(self, error: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.logged_at >= REFUSED_WRITES_LOG_SECONDS:
            self.logged_at = now
            logger.warning(
                "%s; %d command(s) waiting, each tried again until Redis takes it "
                "(said again in %g s if it lasts)",
                _describe(error, self.location, "REDIS_URL").message,
                self.waiting,
                REFUSED_WRITES_LOG_SECONDS,
            )

    def accepted(self) -> None:
        if self.since is not None:
            logger.info(
                "Redis at %s accepts writes again after %.1f s",
                self.location,
                time.monotonic() - self.since,
            )
            self.since = None
            self.logged_at = -math.inf


class ReconnectingRetry(Retry):
    """Retry commands that cannot reach Redis until it has been away for `seconds`, logging
    once when it is lost and once when it is back; retry writes Redis refuses for want of
    memory until it takes them (see the module docstring)."""

    __slots__ = ("outage", "refused_writes")

    def __init__(self, location: str, seconds: float) -> None:
        backoff = EqualJitterBackoff(cap=RECONNECT_BACKOFF_CAP, base=RECONNECT_BACKOFF_BASE)
        super().__init__(backoff, retries=-1)  # no count: `Outage.seconds` ends the retries
        self.outage = Outage(location, seconds)
        self.refused_writes = RefusedWrites(location)

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        """redis-py 5's loop, reporting to the shared `Outage` and ending at its deadline, or to
        the shared `RefusedWrites`, with no deadline. Other error replies are raised at once.

        Without the backoff's `reset()`: an `EqualJitterBackoff` keeps no state.
        """
        outage = self.outage
        refused_writes = self.refused_writes
        failures = refusals = 0
        try:
            while True:
                try:
                    result = await do()
                except self._supported_errors as error:
                    kind = redis_error_kind(error)
                    if kind in WRITES_REFUSED:
                        refusals += 1
                        if refusals == 1:
                            refused_writes.waiting += 1
                        refused_writes.refused(error)
                        await fail(error)
                        await sleep(self._backoff.compute(refusals))
                        continue
                    if kind not in WAITED_OUT:
                        raise
                    failures += 1
                    if failures == 1:
                        outage.retrying += 1
                    outage.failed(error)
                    await fail(error)
                    if outage.is_over_time():
                        raise
                    await sleep(self._backoff.compute(failures))
                else:
                    if refusals:
                        refused_writes.accepted()
                    if outage.since is not None:
                        outage.answered(after_failures=failures > 0)
                    return result
        finally:
            if failures:
                outage.retrying -= 1
            if refusals:
                refused_writes.waiting -= 1


def redis_settings(
    settings: Settings | None = None, *, retries: int | None = None, reconnect_for: float = 0
) -> RedisSettings:
    """arq's connection settings from ours; `retries` overrides `REDIS_CONNECT_RETRIES`.

    With `reconnect_for` (seconds), every command that cannot reach Redis is tried again with
    growing delays until Redis has been away that long: what a worker needs to ride out a Redis
    restart. Connecting at start is then covered by the same wait, not by arq's retries. The
    first failure logs a WARNING, the first reply after it an INFO (`ReconnectingRetry`).
    """
    settings = settings or get_settings()
    options: dict[str, Any] = {
        "conn_timeout": settings.redis_connect_timeout,
        "conn_retries": settings.redis_connect_retries if retries is None else retries,
        "conn_retry_delay": settings.redis_connect_retry_delay,
    }
    # arq builds Sentinel pools without these retries: there, REDIS_CONNECT_RETRIES applies.
    if reconnect_for > 0 and not settings.redis_sentinels:
        options |= {
            "conn_retries": 0,
            "retry": ReconnectingRetry(redis_location(settings), reconnect_for),
            # OSError too: a refused connection is one while a new connection is made.
            # ResponseError: the loop retries only the kinds it waits out (OOM, READONLY,
            # BUSY, MISCONF) and raises the others at once, connection kept.
            "retry_on_error": [RedisConnectionError, RedisTimeoutError, OSError, ResponseError],
        }
    if settings.redis_ssl_ca_certs is not None:
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_certs)
    if settings.redis_sentinels:
        options |= {
            "host": settings.redis_sentinels,
            "sentinel": True,
            "sentinel_master": settings.redis_sentinel_master,
        }
    try:
        from_url = RedisSettings.from_dsn(str(settings.redis_url))
    except ValueError:  # e.g. a raw "/" or "@" in the password shifts the URL's parts
        # Not arq's message: it quotes the part it could not read, which may be the password.
        raise ValueError(BAD_URL_MESSAGE) from None
    # arq keeps the user and password percent-encoded, as they are in the URL: decode them.
    options["username"] = unquote(from_url.username) if from_url.username else None
    options["password"] = unquote(from_url.password) if from_url.password else None
    return dataclasses.replace(from_url, **options)


def redis_location(settings: Settings | None = None) -> str:
    """Where Redis is expected, for messages and logs: never with the password."""
    settings = settings or get_settings()
    url = settings.redis_url
    user = f"{url.username or ''}:***@" if url.password else ""
    location = f"{url.scheme}://{user}{url.host}:{url.port}{url.path or ''}"
    if settings.redis_sentinels:
        sentinels = ", ".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"master {settings.redis_sentinel_master!r} via sentinels {sentinels} ({location})"
    return location


def settings_to_check(error: BaseException, settings: Settings | None = None) -> str:
    """The settings to check when Redis cannot be reached (or refuses the login)."""
    settings = settings or get_settings()
    if isinstance(error, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return "the user and password in REDIS_URL"
    names = ["REDIS_URL"]
    if settings.redis_sentinels:
        names += ["REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"]
    if settings.redis_url.scheme == "rediss":
        names.append("REDIS_SSL_CA_CERTS")
    return ", ".join(names) + ", and that the server is running"


BAD_URL_MESSAGE = (
    "REDIS_URL is not a usable Redis URL: percent-encode special characters in the user and "
    "password (@ as %40, / as %2F, : as %3A, ? as %3F, # as %23, % as %25)"
)
# How redis-py prefixes a pipeline's error: with the command and its arguments (job data).
_PIPELINE_PREFIX = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)
# Error replies redis-py has no class for, by their first word.
_CLUSTER_REPLIES = ("MOVED", "ASK", "CLUSTERDOWN", "CROSSSLOT", "TRYAGAIN")


def _server_reason(error: BaseException) -> str:
    """The server's (or redis-py's) words, on one line, without the pipeline's command."""
    if isinstance(error, RedisError) and len(error.args) == 1:
        text = error.args[0]
        text = text[0] if isinstance(text, tuple) and text else text  # redis-py's pipelines
        text = str(text)
    else:
        text = str(error)
    text = _PIPELINE_PREFIX.sub("", text)
    return " ".join(text.split())[:200]


def redis_error_kind(error: BaseException) -> RedisErrorKind:
    """The cause of `error`, met while talking to Redis (see `RedisErrorKind`)."""
    if isinstance(error, RedisUnavailableError):
        return error.kind
    reason = _server_reason(error)
    first_word = reason.split(" ", 1)[0]
    if isinstance(error, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return "auth"
    if isinstance(error, NoPermissionError):
        return "permission"
    if isinstance(error, OutOfMemoryError):
        return "out_of_memory"
    if isinstance(error, ReadOnlyError) or first_word == "MASTERDOWN":
        return "read_only"
    if isinstance(error, BusyLoadingError):
        return "loading"
    if isinstance(error, NoScriptError):
        return "no_script"
    if isinstance(error, RedisTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, RedisConnectionError | OSError):
        return "unreachable"
    if isinstance(error, ResponseError):
        if first_word == "BUSY":
            return "busy"
        if first_word == "MISCONF":
            return "persistence"
        if first_word in _CLUSTER_REPLIES:
            return "cluster"
        return "refused"
    if isinstance(error, ValueError):
        return "bad_url"  # what redis_settings raises for a URL it cannot read
    return "refused"


def _describe(error: BaseException, location: str, checks: str) -> RedisProblem:
    kind = redis_error_kind(error)
    at = f"Redis at {location}"
    reason = _server_reason(error) or type(error).__name__
    messages: dict[RedisErrorKind, str] = {
        "unreachable": f"cannot reach {at}: {reason} (check {checks})",
        "timeout": f"cannot reach {at}: {reason} (check {checks}, REDIS_CONNECT_TIMEOUT)",
        "auth": f"{at} refused the login: {reason} (check the user and password in REDIS_URL)",
        "permission": f"{at} refused a command to the user in REDIS_URL: {reason} "
        "(check that user's ACL rules on the server)",
        "out_of_memory": f"{at} refused a write: out of memory, used_memory reached maxmemory "
        "(check the server's maxmemory and maxmemory-policy, and what fills it: queued jobs, "
        "results kept for WORKER_KEEP_RESULT s, up to DEAD_LETTER_LIMIT dead letters)",
        "persistence": f"{at} refused a write: it cannot save to disk (MISCONF) "
        "(check the server's log and disk; stop-writes-on-bgsave-error)",
        "read_only": f"{at} refused a write: it is a read-only replica, as after a failover "
        "(check that REDIS_URL names the master, or set REDIS_SENTINELS)",
        "loading": f"{at} is loading its data into memory after a restart "
        "(it answers once loaded; check the server's log if it lasts)",
        "busy": f"{at} is busy running a script past its busy-reply-threshold "
        "(check the server's SLOWLOG; SCRIPT KILL or FUNCTION KILL ends it)",
        "no_script": f"{at} does not have a script sent by its SHA1: its script cache was "
        "emptied (a restart, a failover, SCRIPT FLUSH) (the script is sent again on the next "
        "try; check for SCRIPT FLUSH if this repeats)",
        "cluster": f"{at} is a Redis Cluster node ({reason.split(' ', 1)[0]}), and arq does not "
        "support Redis Cluster (check REDIS_URL: a standalone server, or REDIS_SENTINELS)",
        "bad_url": BAD_URL_MESSAGE,
        "refused": f"{at} refused a command: {reason}",
    }
    return RedisProblem(kind, messages[kind])


def describe_redis_error(error: BaseException, settings: Settings | None = None) -> RedisProblem:
    """The one place that names Redis errors: `error` (from redis-py, a socket, or
    `redis_settings`) as its kind and one line that says where, the cause, and what to check,
    without the password and without the data of the command that failed."""
    if isinstance(error, RedisUnavailableError):
        return RedisProblem(error.kind, str(error))
    settings = settings or get_settings()
    return _describe(error, redis_location(settings), settings_to_check(error, settings))


async def connect(*, retries: int | None = None, **pool_options: Any) -> JobPool:
    """An arq pool (a `JobPool`, job_writes.py), after a successful PING; `RedisUnavailableError`
    if Redis cannot be reached.

    arq tries `REDIS_CONNECT_RETRIES` more times, `REDIS_CONNECT_RETRY_DELAY` seconds apart.
    """
    try:
        return job_pool(await create_pool(redis_settings(retries=retries), **pool_options))
    except (RedisError, OSError, ValueError) as error:  # TimeoutError is an OSError
        raise unavailable(error) from error


def unavailable(error: Exception) -> RedisUnavailableError:
    """The one-line error for `error`, met while talking to Redis (`describe_redis_error`)."""
    if isinstance(error, RedisUnavailableError):
        return error
    problem = describe_redis_error(error)
    return RedisUnavailableError(problem.message, problem.kind)


async def write_refusal(redis: Redis) -> RedisProblem | None:
    """Why Redis would refuse a write now, from INFO, though it answers: out of memory
    (used_memory past maxmemory, with maxmemory-policy noeviction) or a read-only replica;
    None if it would take one, or cannot tell: a user whose ACL denies INFO (it is in
    @dangerous), a managed server that renamed it. One round trip."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.info("memory")
            pipe.info("replication")
            memory, replication = await pipe.execute()
    except ResponseError:  # NOPERM, unknown command: not a reason to call Redis unusable
        return None
    maxmemory = int(memory.get("maxmemory", 0))
    counted = int(memory.get("used_memory", 0)) - int(memory.get("mem_not_counted_for_evict", 0))
    if maxmemory and counted > maxmemory and memory.get("maxmemory_policy") == "noeviction":
        return describe_redis_error(OutOfMemoryError("used_memory > maxmemory"))
    if replication.get("role") == "slave":
        return describe_redis_error(ReadOnlyError("a replica"))
    return None


def stop_waiting_for_redis(pool: ArqRedis, seconds: float) -> None:
    """From now on, a command on `pool` waits at most `seconds` (counted from when Redis was
    lost) for an unreachable Redis, whatever WORKER_RECONNECT_SECONDS says: for a worker that
    is stopping. Every connection of the pool shares its `ReconnectingRetry`'s `Outage`."""
    retry = pool.connection_pool.connection_kwargs.get("retry")
    if isinstance(retry, ReconnectingRetry):
        retry.outage.seconds = min(retry.outage.seconds, seconds)


async def send_in_turn(redis: Redis, *commands: tuple[Any, ...]) -> list[Any]:
    """Send `commands` together on one connection of `redis`'s pool and read their replies in
    order: raw replies (no response callbacks), an error reply returned as its `ResponseError`,
    not raised. A blocking command with commands behind it (a BRPOP, then a script) has them run
    by Redis the moment it ends, one round trip sooner than sent after its reply.

    Retried, once Redis is reachable again, as the pool retries one command (`ReconnectingRetry`):
    the connection is dropped on a failure or a cancel, so a reply is never left unread on it.
    redis-py's `Pipeline` would do the same with an object per call and response callbacks a
    worker's wait has no use for.
    """
    pool = redis.connection_pool
    connection = await pool.get_connection()
    packed = connection.pack_commands(commands)

    async def send_then_read() -> list[Any]:
        await connection.send_packed_command(packed)
        replies = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:  # read whole: the next reply follows it
                replies.append(error)
        return replies

    async def disconnect_raise(error: RedisError) -> None:
        # redis-py's `Redis._disconnect_raise`: tried again only where the connection says so.
        await connection.disconnect()
        retry_on = connection.retry_on_error
        if retry_on is None or not isinstance(error, tuple(retry_on)):
            raise error

    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            send_then_read, disconnect_raise
        )
        return replies
    except BaseException:
        await connection.disconnect()  # cancelled or failed, a reply perhaps still to come
        raise
    finally:
        await pool.release(connection)


async def close_sentinel_connections(pool: ArqRedis) -> None:
    """With Sentinel, close the connections to the sentinels: closing the pool leaves them open.

    Harmless otherwise, and harmless if the pool is still used: a closed client reconnects.
    """
    sentinel_manager = getattr(pool.connection_pool, "sentinel_manager", None)
    if sentinel_manager is not None:
        for sentinel in sentinel_manager.sentinels:
            await sentinel.aclose()


async def close_pool(pool: ArqRedis) -> None:
    """Close a pool made by `connect()`, with its sentinel connections if any."""
    await pool.aclose()
    await close_sentinel_connections(pool)
