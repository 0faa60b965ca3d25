"""How this project reaches Redis: `REDIS_URL` plus a few settings, turned into arq's
`RedisSettings`, and one clear error when the server cannot be reached.

`REDIS_URL` carries host, port, database, user, password and TLS (`rediss://`); the `REDIS_*`
settings in config.py add a CA bundle, connection timeout and retries, and Redis Sentinel.
Redis Cluster is not supported: arq does not support it.
"""

import dataclasses
from typing import Any
from urllib.parse import unquote

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import Settings, get_settings

# Delays between attempts to reach Redis again: from 0.05 s, doubling, at most 2 s, with jitter.
RECONNECT_BACKOFF_BASE = 0.05
RECONNECT_BACKOFF_CAP = 2.0


class RedisUnavailableError(ConnectionError):
    """Redis could not be reached; the message says where, why, and which settings to check."""


def reconnect_attempts(seconds: float) -> int:
    """How many attempts with the backoff above wait at least `seconds` in all."""
    attempts, waited = 0, 0.0
    while waited < seconds:
        attempts += 1
        # The shortest delay redis-py's EqualJitterBackoff draws after `attempts` failures.
        waited += min(RECONNECT_BACKOFF_CAP, RECONNECT_BACKOFF_BASE * 2**attempts) / 2
    return attempts


def redis_settings(
    settings: Settings | None = None, *, retries: int | None = None, reconnect_for: float = 0
) -> RedisSettings:
    """arq's connection settings from ours; `retries` overrides `REDIS_CONNECT_RETRIES`.

    With `reconnect_for` (seconds), every command that cannot reach Redis is tried again with
    growing delays for about that long before it fails: what a worker needs to ride out a Redis
    restart. Connecting at start is then covered by the same wait, not by arq's retries.
    """
    settings = settings or get_settings()
    options: dict[str, Any] = {
        "conn_timeout": settings.redis_connect_timeout,
        "conn_retries": settings.redis_connect_retries if retries is None else retries,
        "conn_retry_delay": settings.redis_connect_retry_delay,
    }
    # arq builds Sentinel pools without these retries: there, REDIS_CONNECT_RETRIES applies.
    if reconnect_for > 0 and not settings.redis_sentinels:
        backoff = EqualJitterBackoff(cap=RECONNECT_BACKOFF_CAP, base=RECONNECT_BACKOFF_BASE)
        options |= {
            "conn_retries": 0,
            "retry": Retry(backoff, reconnect_attempts(reconnect_for)),
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
