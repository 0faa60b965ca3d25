"""Per-worker liveness, for `just worker-check` and container healthchecks.

arq's own health check is one key per queue, and any worker that stops deletes it (arq #291):
with two workers, stopping one makes the check fail although the other still runs. Here each
worker owns a key, `<queue>:workers:<host>:<pid>:<random>`, rewritten every `interval` seconds
with a lifetime of `interval + MARGIN_SECONDS`. A clean stop deletes the key at once; a worker
killed with SIGKILL (or frozen) drops out of the count within one interval plus the margin.
"""

import asyncio
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class WorkerBeat:
    """What a live worker says about itself."""

    queue: str
    host: str
    pid: int
    started_at: str


def key_prefix(queue_name: str) -> str:
    return f"{queue_name}:workers:"


class Heartbeat:
    """Keeps this worker's key alive from a background task while the worker runs."""

    def __init__(self, redis: Redis, queue_name: str, interval: float) -> None:
        self.redis = redis
        self.interval = interval
        self.key = (
            f"{key_prefix(queue_name)}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.payload = json.dumps(
            {
                "queue": queue_name,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._beat()  # visible before the worker takes its first job
        self._task = asyncio.create_task(self._beat_forever(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.redis.delete(self.key)

    async def _beat(self) -> None:
        lifetime_ms = int((self.interval + MARGIN_SECONDS) * 1000)
        await self.redis.set(self.key, self.payload, px=lifetime_ms)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._beat()
            except RedisError as error:
                # Keep beating: the key expires by itself if Redis stays away.
                logger.warning("heartbeat to Redis failed: %s", error)


async def live_workers(redis: Redis, queue_name: str, host: str | None = None) -> list[WorkerBeat]:
    """The workers on `queue_name` whose key is alive, optionally only those on `host`."""
    pattern = _escape_glob(key_prefix(queue_name) + (f"{host}:" if host else "")) + "*"
    keys = [key async for key in redis.scan_iter(match=pattern, count=500)]
    if not keys:
        return []
    payloads = await redis.mget(keys)
    # A key can expire between SCAN and MGET: skip the gaps.
    return [WorkerBeat(**json.loads(payload)) for payload in payloads if payload is not None]


def _escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
