# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Dead letters: a bounded list in Redis of the jobs that failed for good.

A job lands here when its last try fails or it raises `PermanentError` (see `retries.py`). Each
record keeps what is needed to understand and re-run it: id, function, arguments, error, tries
and times. The list is capped (`DEAD_LETTER_LIMIT`): the oldest records fall off the end.
`just dead-letters`, `just requeue <id>` and `just purge-dead-letters` work on it.
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .records import is_wrong_type, read_list, skip, typed
from .serialization import deserialize, serialize

# redis-py types its list commands as `Awaitable[T] | T` (one signature for the sync and async
# clients), so mypy needs a `type: ignore[misc]` on awaiting them below.


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    error_type: str
    error: str
    tries: int
    enqueued_at: datetime
    failed_at: datetime

    def to_bytes(self) -> bytes:
        return serialize(asdict(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeadLetter":
        """The record `to_bytes` wrote; raises ValueError (records.py's Unreadable, or a
        decoding error) for bytes of any other shape."""
        return typed(cls, deserialize(data))


def dead_letter_key(queue_name: str) -> str:
    return f"{queue_name}:dead-letters"


async def add(redis: Redis, queue_name: str, letter: DeadLetter, limit: int) -> None:
    """Store `letter` first in the list and drop what is beyond `limit`."""
    key = dead_letter_key(queue_name)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(key, letter.to_bytes())
        pipe.ltrim(key, 0, limit - 1)
        await pipe.execute()


async def all_letters(redis: Redis, queue_name: str) -> list[DeadLetter]:
    """Every record, newest first; those that cannot be read are skipped (records.py)."""
    return [letter for _, letter in await _read(redis, queue_name, None)]


async def newest(redis: Redis, queue_name: str, limit: int) -> list[DeadLetter]:
    """The `limit` newest records that can be read (records.py), newest first."""
    return [letter for _, letter in await _read(redis, queue_name, limit)]


async def take(redis: Redis, queue_name: str, job_id: str) -> DeadLetter | None:
    """Remove the record of `job_id` and return it; None if there is none (or another took it)."""
    key = dead_letter_key(queue_name)
    for raw, letter in await _read(redis, queue_name, None):
        # LREM is atomic: of two concurrent takers of one record, only one removes it.
        if letter.job_id == job_id and await redis.lrem(key, 1, raw):  # type: ignore[misc, arg-type]
            return letter
    return None


async def count(redis: Redis, queue_name: str) -> int:
    """How many records the list holds, readable or not; 0 if its key is of another type."""
    key = dead_letter_key(queue_name)
    try:
        return int(await redis.llen(key))  # type: ignore[misc]
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        skip("dead-letter", key, error)
        return 0


async def _read(redis: Redis, queue_name: str, limit: int | None) -> list[tuple[bytes, DeadLetter]]:
    """The `limit` newest records that can be read (None: all), each with its bytes; one that
    cannot be read, or a key of another type, is skipped (records.py's `read_list`)."""
    return await read_list(
        redis, "dead-letter", dead_letter_key(queue_name), DeadLetter.from_bytes, limit
    )


async def purge(redis: Redis, queue_name: str) -> int:
    """Delete every record; returns how many there were."""
    key = dead_letter_key(queue_name)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.llen(key)
        pipe.delete(key)
        count, _ = await pipe.execute()
    return int(count)
