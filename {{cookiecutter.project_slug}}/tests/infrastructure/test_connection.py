# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Reaching Redis: what REDIS_URL and the REDIS_* settings turn into, password and database on a
real server, Redis Sentinel with a real sentinel, and one clear error when Redis is not there."""

import asyncio
import contextlib
import logging
import re
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import trustme
from arq import create_pool
from arq.connections import ArqRedis
from pydantic import RedisDsn, ValidationError

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import (
    LocalRedisServer,
    free_port,
    server_command,
)
from {{ cookiecutter.package_name }}.infrastructure.store import connection
from {{ cookiecutter.package_name }}.infrastructure.store.connection import (
    ReconnectingRetry,
    RedisUnavailableError,
    connect,
    describe_redis_error,
    redis_location,
    redis_settings,
    send_in_turn,
)
from {{ cookiecutter.package_name }}.infrastructure.tasks import close_task_pool, enqueue_task

from .conftest import PASSWORD, Configure, RunWorker


def test_url_and_settings_become_arq_settings(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not read here")
    settings = Settings(
        _env_file=None,
        redis_url="rediss://app:s3cret@redis.internal:6380/2",
        redis_ssl_ca_certs=ca_file,
        redis_connect_timeout=3,
        redis_connect_retries=7,
    )

    arq_settings = redis_settings(settings)

    assert (arq_settings.host, arq_settings.port) == ("redis.internal", 6380)
    assert arq_settings.database == 2
    assert (arq_settings.username, arq_settings.password) == ("app", "s3cret")
    assert arq_settings.ssl
    assert arq_settings.ssl_ca_certs == str(ca_file)
    assert (arq_settings.conn_timeout, arq_settings.conn_retries) == (3, 7)
    assert "s3cret" not in redis_location(settings)
    assert redis_location(settings) == "rediss://app:***@redis.internal:6380/2"


def test_sentinels_replace_the_url_host() -> None:
    settings = Settings(
        _env_file=None,
        redis_url="redis://:s3cret@ignored:6379/1",
        redis_sentinels="10.0.0.1:26379, 10.0.0.2:26379",
        redis_sentinel_master="queue",
    )

    arq_settings = redis_settings(settings)

    assert arq_settings.sentinel
    assert arq_settings.host == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert (arq_settings.sentinel_master, arq_settings.password) == ("queue", "s3cret")
    assert redis_location(settings).startswith("master 'queue' via sentinels 10.0.0.1:26379")
    # arq builds Sentinel pools without redis-py retries: a worker keeps arq's connect retries.
    worker_settings = redis_settings(settings, reconnect_for=60)
    assert (worker_settings.retry, worker_settings.conn_retries) == (None, 5)


def test_a_worker_reconnects_for_the_configured_time() -> None:
    settings = Settings(_env_file=None, redis_url="redis://:s3cret@redis.internal:6379/0")

    worker_settings = redis_settings(settings, reconnect_for=60)

    assert worker_settings.conn_retries == 0  # the reconnect wait covers the first connection
    assert isinstance(worker_settings.retry, ReconnectingRetry)
    assert worker_settings.retry.outage.seconds == 60
    # What its log lines name: never the password.
    assert worker_settings.retry.outage.location == "redis://:***@redis.internal:6379/0"
    assert OSError in (worker_settings.retry_on_error or [])


async def test_a_lost_redis_is_logged_once_when_lost_and_once_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=connection.__name__)
    server = LocalRedisServer().start()
    pool = await create_pool(
        redis_settings(Settings(_env_file=None, redis_url=server.url), reconnect_for=30)
    )
    try:
        for _ in range(2):  # two outages: one pair of lines each
            server.stop()
            # Five commands at once, on five connections, each with its own copy of the Retry.
            commands = asyncio.gather(*(pool.ping() for _ in range(5)))
            await asyncio.sleep(0.5)
            server = LocalRedisServer(server.port).start()
            assert await commands == [True] * 5
    finally:
        await pool.aclose()
        server.stop()

    records = [record for record in caplog.records if record.name == connection.__name__]
    assert [record.levelname for record in records] == ["WARNING", "INFO"] * 2
    lost, back = records[0].getMessage(), records[1].getMessage()
    assert lost.startswith(f"cannot reach Redis at {server.url} (")
    assert lost.endswith("): retrying for up to 30 s (WORKER_RECONNECT_SECONDS)")
    assert re.fullmatch(rf"Redis at {re.escape(server.url)} is back after \d+\.\d s", back)


async def test_commands_sent_in_turn_reply_in_order_across_a_restart() -> None:
    # `send_in_turn` (a worker's wait for a token with its claim behind it): raw replies in the
    # order sent, an error reply returned in its place, and, when Redis is away, sent again once
    # it is back, as the pool retries one command.
    server = LocalRedisServer().start()
    pool = await create_pool(
        redis_settings(Settings(_env_file=None, redis_url=server.url), reconnect_for=30)
    )
    try:
        replies = await send_in_turn(pool, ("SET", "turn", "a"), ("INCR", "turn"), ("GET", "turn"))
        assert replies[0] == b"OK"
        assert isinstance(replies[1], redis.ResponseError)
        assert replies[2] == b"a"

        server.stop()
        sent = asyncio.ensure_future(send_in_turn(pool, ("SET", "turn", "b"), ("GET", "turn")))
        await asyncio.sleep(0.5)
        assert not sent.done()
        server = LocalRedisServer(server.port).start()
        assert await asyncio.wait_for(sent, 10) == [b"OK", b"b"]
        assert not pool.connection_pool._in_use_connections  # each given back
    finally:
        await pool.aclose()
        server.stop()


async def test_commands_behind_a_cancelled_wait_never_run(redis_server: LocalRedisServer) -> None:
    # A stopping worker cancels its wait for a wake-up token (BRPOP) that has its claim behind it
    # (loop.py, `wait_then_claim`). The connection is dropped, not given back with two replies
    # still to come: Redis ends the wait without taking the token pushed later, never runs the
    # command behind it, and the pool has no connection left out.
    pool = await create_pool(
        redis_settings(Settings(_env_file=None, redis_url=redis_server.url), reconnect_for=30)
    )
    tokens, behind = f"test:{uuid.uuid4().hex}:tokens", f"test:{uuid.uuid4().hex}:behind"
    try:
        waiting = asyncio.ensure_future(
            send_in_turn(pool, ("BRPOP", tokens, 5), ("SET", behind, "ran"))
        )
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await pool.lpush(tokens, "token")  # type: ignore[misc]
        await asyncio.sleep(0.2)
        assert await pool.llen(tokens) == 1  # type: ignore[misc]
        assert not await pool.exists(behind)
        assert not pool.connection_pool._in_use_connections
    finally:
        await pool.delete(tokens, behind)
        await pool.aclose()


async def test_unreachable_redis_is_one_clear_error_without_the_password(
    configure: Configure,
) -> None:
    port = free_port()
    configure(REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")

    with pytest.raises(RedisUnavailableError) as raised:
        await connect(retries=0)

    message = str(raised.value)
    assert message.startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert "check REDIS_URL" in message
    assert "hunter2" not in message
    assert "\n" not in message


async def test_password_and_database_from_the_url(
    password_server: LocalRedisServer, configure: Configure
) -> None:
    configure(REDIS_URL=f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{password_server.port}/3")
    try:
        job = await enqueue_task("example_task", message="to db 3")
        assert job is not None
    finally:
        await close_task_pool()

    with redis.Redis(port=password_server.port, password=PASSWORD, db=3) as database_3:
        assert database_3.exists(f"arq:job:{job.job_id}")


async def test_a_password_that_breaks_the_url_is_refused_with_the_settings(
    password_server: LocalRedisServer, configure: Configure
) -> None:
    """Refused when the settings are read, at every entry point's start (config.py), never
    read wrongly: a raw "@", "/", "?" or "#" in the password would move part of it into the
    host, port or path, which messages show."""
    configure(REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{password_server.port}/0")

    with pytest.raises(ValidationError, match="percent-encode special characters") as raised:
        await connect(retries=0)
    assert PASSWORD not in str(raised.value)


def test_a_url_arq_cannot_read_says_to_encode_it_and_shows_none_of_it() -> None:
    """`redis_settings` given settings that were not validated (built with `model_construct`):
    arq's own error quotes the part it could not read, here the password's."""
    settings = Settings.model_construct(redis_url=RedisDsn("redis://127.0.0.1:6379/Jd8Hm3z"))

    with pytest.raises(ValueError, match="percent-encode special characters") as raised:
        redis_settings(settings)
    assert "Jd8Hm3z" not in str(raised.value)


# Passwords that need encoding, encoded: where Redis is, in messages and logs, shows none.
ODD_PASSWORDS = ["Xy@zz/Secretpart9", "Qv7:Wk2?Lp#", "%Tq4 Lp9x%"]


@pytest.mark.parametrize("password", ODD_PASSWORDS)
def test_no_message_or_log_line_shows_any_part_of_the_password(password: str) -> None:
    encoded = quote(password, safe="")
    pieces = {
        password[i:j] for i in range(len(password)) for j in range(i + 3, len(password) + 1)
    } | {encoded[i:j] for i in range(len(encoded)) for j in range(i + 6, len(encoded) + 1)}
    url = f"redis://app:{encoded}@redis.internal:6379/0"
    for settings in (
        Settings(_env_file=None, redis_url=url),
        Settings(_env_file=None, redis_url=url, redis_sentinels="127.0.0.1:26379,10.0.0.2:26379"),
    ):
        retry = redis_settings(settings, reconnect_for=10).retry  # none with sentinels
        shown = [
            redis_location(settings),
            *([retry.outage.location] if isinstance(retry, ReconnectingRetry) else []),
            *(
                describe_redis_error(error, settings).message
                for error in (
                    redis.ConnectionError("Error 111 connecting to redis.internal:6379."),
                    redis.AuthenticationError("invalid username-password pair"),
                    redis.exceptions.OutOfMemoryError("command not allowed"),
                    redis.ReadOnlyError("You can't write against a read only replica."),
                    ValueError("bad port"),
                )
            ),
        ]
        assert redis_settings(settings).password == password  # taken whole, decoded
        for line in shown:
            assert not {piece for piece in pieces if piece in line}, line


async def test_a_wrong_password_names_the_setting_to_check(
    password_server: LocalRedisServer, configure: Configure
) -> None:
    configure(REDIS_URL=f"redis://:wrong@127.0.0.1:{password_server.port}/0")

    with pytest.raises(RedisUnavailableError, match="check the user and password in REDIS_URL"):
        await connect(retries=0)


@pytest.fixture
def sentinel(redis_server: LocalRedisServer, tmp_path: Path) -> Iterator[int]:
    """A real Redis Sentinel watching the test server as master "mymaster"; yields its port."""
    port = free_port()
    config = tmp_path / "sentinel.conf"  # sentinel rewrites its config file: it must be writable
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n"
    )
    process = subprocess.Popen(
        [server_command()[0], str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        with redis.Redis(port=port) as client:
            for _ in range(100):
                try:
                    if client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"):
                        break
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
            else:
                raise RuntimeError("redis sentinel did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_jobs_run_through_redis_sentinel(
    sentinel: int, task_pool: ArqRedis, configure: Configure, run_burst_worker: RunWorker
) -> None:
    configure(REDIS_URL="redis://unused:1/0", REDIS_SENTINELS=f"127.0.0.1:{sentinel}")
    await close_task_pool()  # the next pool is made with the sentinel settings

    job = await enqueue_task("example_task", message="via sentinel")
    assert job is not None
    await run_burst_worker(redis_settings=redis_settings())

    assert await job.result(timeout=5) == "Processed: via sentinel"


@pytest.fixture
async def tls_redis(
    redis_server: LocalRedisServer, tmp_path: Path
) -> AsyncIterator[tuple[int, Path]]:
    """TLS in front of the test server, with a certificate from a throwaway CA.

    The bundled redis-server is built without TLS, so a small relay does the TLS part: the client
    side (rediss://, certificate checked against REDIS_SSL_CA_CERTS) is what is tested.
    Yields the TLS port and the CA file.
    """
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    writers: list[asyncio.StreamWriter] = []

    async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                target.write(data)
                await target.drain()
        target.close()

    async def relay(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
        writers.extend([client_writer, server_writer])
        await asyncio.gather(copy(client_reader, server_writer), copy(server_reader, client_writer))

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    try:
        yield relay_server.sockets[0].getsockname()[1], ca_file
    finally:
        relay_server.close()
        for writer in writers:
            writer.close()
        await relay_server.wait_closed()


async def test_tls_with_a_private_ca(
    tls_redis: tuple[int, Path], task_pool: ArqRedis, configure: Configure
) -> None:
    port, ca_file = tls_redis
    configure(REDIS_URL=f"rediss://127.0.0.1:{port}/0", REDIS_SSL_CA_CERTS=str(ca_file))

    pool = await connect(retries=0)
    try:
        assert await pool.ping()
    finally:
        await pool.aclose()


async def test_tls_without_the_ca_names_the_ca_setting(
    tls_redis: tuple[int, Path], configure: Configure
) -> None:
    port, _ = tls_redis
    configure(REDIS_URL=f"rediss://127.0.0.1:{port}/0")  # the system's CAs do not know ours

    with pytest.raises(RedisUnavailableError, match="REDIS_SSL_CA_CERTS") as raised:
        await connect(retries=0)
    assert "certificate verify failed" in str(raised.value)
