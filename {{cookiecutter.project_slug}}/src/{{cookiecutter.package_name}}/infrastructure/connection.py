"""How this project reaches Redis: `REDIS_URL` plus a few settings, turned into arq's
`RedisSettings`, and one clear error when the server cannot be reached.

`REDIS_URL` carries host, port, database, user, password and TLS (`rediss://`); the `REDIS_*`
settings in config.py add a CA bundle, connection timeout and retries, and Redis Sentinel.
Redis Cluster is not supported: arq does not support it.

A worker rides out a Redis restart (`redis_settings(reconnect_for=...)`): redis-py's `Retry`
tries each command again, and `ReconnectingRetry` adds what it lacks. redis-py copies the
`Retry` for every client and every connection, and every command retries on its own (arq's
poll loop, the heartbeat, each running job), so the outage is one `Outage` shared by all the
copies: one WARNING when Redis is lost, one INFO when it is back, and one deadline for all. With
attempts counted per command instead, a command whose reconnects are themselves retried
(redis-py nests the two) waited the window again for each attempt: 4 minutes for 10 s.
"""

import dataclasses
import logging
import time
from asyncio import sleep
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar
from urllib.parse import unquote

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import Settings, get_settings

logger = logging.getLogger(__name__)

# Delays between attempts to reach Redis again: from 0.05 s, doubling, at most 2 s, with jitter.
RECONNECT_BACKOFF_BASE = 0.05
RECONNECT_BACKOFF_CAP = 2.0

T = TypeVar("T")


class RedisUnavailableError(ConnectionError):
    """Redis could not be reached; the message says where, why, and which settings to check."""


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
            reason = str(error) or type(error).__name__
            logger.warning(
                "cannot reach Redis at %s (%s): retrying for up to %g s (WORKER_RECONNECT_SECONDS)",
                self.location,
                reason,
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


class ReconnectingRetry(Retry):
    """Retry commands that cannot reach Redis until it has been away for `seconds`, logging
    once when it is lost and once when it is back (see the module docstring)."""

    __slots__ = ("outage",)

    def __init__(self, location: str, seconds: float) -> None:
        backoff = EqualJitterBackoff(cap=RECONNECT_BACKOFF_CAP, base=RECONNECT_BACKOFF_BASE)
        super().__init__(backoff, retries=-1)  # no count: `Outage.seconds` ends the retries
        self.outage = Outage(location, seconds)

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        """redis-py 5's loop, reporting to the shared `Outage` and ending at its deadline.

        Without the backoff's `reset()`: an `EqualJitterBackoff` keeps no state.
        """
        outage = self.outage
        failures = 0
        try:
            while True:
                try:
                    result = await do()
                except self._supported_errors as error:
                    failures += 1
                    if failures == 1:
                        outage.retrying += 1
                    outage.failed(error)
                    await fail(error)
                    if outage.is_over_time():
                        raise
                    await sleep(self._backoff.compute(failures))
                else:
                    if outage.since is not None:
                        outage.answered(after_failures=failures > 0)
                    return result
        finally:
            if failures:
                outage.retrying -= 1


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
            "retry_on_error": [RedisConnectionError, RedisTimeoutError, OSError],
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
    except ValueError as error:  # e.g. a raw "/" or "@" in the password shifts the URL's parts
        raise ValueError(
            f"REDIS_URL is not a usable Redis URL ({error}): URL-encode special characters "
            "in the user and password (@ as %40, / as %2F, : as %3A)"
        ) from None
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
    settings = settings or get_settings()
    if isinstance(error, AuthenticationError):
        return "the user and password in REDIS_URL"
    names = ["REDIS_URL"]
    if settings.redis_sentinels:
        names += ["REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"]
    if settings.redis_url.scheme == "rediss":
        names.append("REDIS_SSL_CA_CERTS")
    return ", ".join(names) + ", and that the server is running"


async def connect(*, retries: int | None = None, **pool_options: Any) -> ArqRedis:
    """An arq pool, after a successful PING; `RedisUnavailableError` if Redis cannot be reached.

    arq tries `REDIS_CONNECT_RETRIES` more times, `REDIS_CONNECT_RETRY_DELAY` seconds apart.
    """
    try:
        return await create_pool(redis_settings(retries=retries), **pool_options)
    except (RedisError, OSError, ValueError) as error:  # TimeoutError is an OSError
        raise unavailable(error) from error


def unavailable(error: Exception) -> RedisUnavailableError:
    """The one-line error for `error`, met while talking to Redis."""
    reason = str(error) or type(error).__name__
    return RedisUnavailableError(
        f"cannot reach Redis at {redis_location()}: {reason} (check {settings_to_check(error)})"
    )


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
