# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Records in Redis that cannot be read: skipped, logged once, counted.

Workers write the helper keys the readers here read (heartbeats, the live-workers set, running
lists, the activity record, dead letters, results), but anyone who can write to Redis can put
anything there: bytes that are not UTF-8 or not JSON, JSON of another shape, a hash where a list
belongs (a WRONGTYPE error). One such record must not turn the health check, the metrics, the
dashboard or a job lookup into a 500. So each reader reads what it can and hands what it cannot
to `skip`, which counts it (by kind: `unreadable_records()`, for a metrics counter) and logs it
once: the same record read again at every scrape or page refresh is not logged again (the last
LOGGED_LIMIT records are remembered), but it is counted again, so a counter's rate stays above
zero for as long as the record is there.
"""

import hashlib
import logging
import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from datetime import datetime
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from redis.asyncio import Redis
from redis.exceptions import ResponseError

logger = logging.getLogger(__name__)

# The records whose warning was logged already, newest last; the oldest is forgotten first.
LOGGED_LIMIT = 1024
# How many records past the first `limit` a list's reader looks at, in place of unreadable ones.
SKIPPED_LIMIT = 1000
# How much of an unreadable record a warning quotes.
PREVIEW_BYTES = 80
# Unix seconds a time in a record may take: datetime's own range, so that it can be shown.
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z

T = TypeVar("T")

_counts: Counter[str] = Counter()
_logged: OrderedDict[tuple[str, str, bytes], None] = OrderedDict()


class Unreadable(ValueError):
    """A record is not of the shape its reader expects."""


def skip(
    kind: str, key: str, reason: BaseException | str, record: bytes | str | None = None
) -> None:
    """Note that a record of `kind` in `key` cannot be read (`record`: its bytes, None for the
    whole key, e.g. of the wrong Redis type): count it, and log it unless it was logged lately."""
    _counts[kind] += 1
    data = record.encode("utf-8", "surrogateescape") if isinstance(record, str) else record
    identity = (kind, key, b"" if data is None else hashlib.blake2b(data, digest_size=16).digest())
    if identity in _logged:
        _logged.move_to_end(identity)
        return
    _logged[identity] = None
    if len(_logged) > LOGGED_LIMIT:
        _logged.popitem(last=False)
    why = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    if data is None:
        logger.warning("skipped %s key %r, which cannot be read (%s)", kind, key, why[:200])
    else:
        logger.warning(
            "skipped an unreadable %s record in %r (%s); it starts with %r",
            kind,
            key,
            why[:200],
            data[:PREVIEW_BYTES],
        )


def unreadable_records() -> dict[str, int]:
    """How many unreadable records each kind of reader has skipped since the process started,
    counting a record again each time it is read: for `arq_unreadable_records_total{kind=...}`.
    Kinds: heartbeat, live-workers, running, recent, bucket, dead-letter, result, job, queue,
    progress."""
    return dict(_counts)


def read_or_skip(kind: str, key: str, read: Callable[[bytes], T], record: bytes) -> T | None:
    """`read(record)`, or None (and `skip`) when it raises: any error the bytes can make a
    reader raise (decoding, JSON, a wrong shape, a deep nesting's RecursionError) is the record's."""
    try:
        return read(record)
    except Exception as error:  # whatever the bytes make it raise
        skip(kind, key, error, record)
        return None


async def read_list(
    redis: Redis, kind: str, key: str, read: Callable[[bytes], T], limit: int | None = None
) -> list[tuple[bytes, T]]:
    """The first `limit` records of the list `key` that can be read (None: all of them), each
    with its bytes. Those that cannot be read are skipped and do not count: the next ones are
    read in their place, up to SKIPPED_LIMIT more, so a burst of bad records cannot hide the
    good ones behind it nor make each read long. A key of another type reads as empty."""
    last = -1 if limit is None else limit - 1
    try:
        raw: list[bytes] = await redis.lrange(key, 0, last)  # type: ignore[misc]
        records = [(item, read_or_skip(kind, key, read, item)) for item in raw]
        good = [(item, record) for item, record in records if record is not None]
        if limit is not None and len(good) < limit and len(raw) == limit:
            more: list[bytes] = await redis.lrange(key, limit, limit + SKIPPED_LIMIT - 1)  # type: ignore[misc]
            for item in more:
                record = read_or_skip(kind, key, read, item)
                if record is not None:
                    good.append((item, record))
                    if len(good) == limit:
                        break
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        skip(kind, key, error)
        return []
    return good


def is_wrong_type(error: BaseException) -> bool:
    """Whether Redis refused a command because the key holds another type of value."""
    return isinstance(error, ResponseError) and "WRONGTYPE" in str(error)


def reply_or(kind: str, key: str, reply: Any, default: T) -> Any | T:
    """One reply of a pipeline run with `raise_on_error=False`: `default` (and `skip`) for a key
    of the wrong type; other errors are raised."""
    if isinstance(reply, BaseException):
        if is_wrong_type(reply):
            skip(kind, key, reply)
            return default
        raise reply
    return reply


def text(value: bytes | str) -> str:
    """A key, member or id as text; raises UnicodeDecodeError for bytes that are not UTF-8."""
    return value.decode() if isinstance(value, bytes) else value


def typed(cls: type[T], value: Any) -> T:
    """The dataclass `cls` made from the mapping `value`, checking each field against its type
    (str, int, float, bool, None, datetime, Literal, list, dict and unions of them); keys it has
    no field for are ignored (a newer writer's). Raises Unreadable."""
    if not isinstance(value, Mapping):
        raise Unreadable(f"a {type(value).__name__}, not an object")
    hints = get_type_hints(cls)
    given: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        if field.name not in value:
            if field.default is MISSING and field.default_factory is MISSING:
                raise Unreadable(f"no {field.name!r}")
            continue
        if not _fits(value[field.name], hints[field.name]):
            raise Unreadable(f"{field.name!r} is {_shown(value[field.name])}")
        given[field.name] = value[field.name]
    return cls(**given)


def timestamp(value: float) -> float:
    """`value` if it is Unix seconds a datetime can hold, else raises Unreadable."""
    if not 0 <= value <= LATEST_TIMESTAMP:
        raise Unreadable(f"{value!r} is not a time")
    return value


def _fits(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, UnionType):
        return any(_fits(value, arm) for arm in get_args(hint))
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in get_args(hint))
    if origin is not None:
        hint = origin  # list[Any], dict[str, Any]: the container's type is enough
    if hint is NoneType:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is datetime:
        return isinstance(value, datetime)
    return isinstance(value, hint)


def _shown(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown[:40]}{'...' if len(shown) > 40 else ''}"
