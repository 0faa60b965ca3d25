# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""JSON serialization for jobs and results, in place of arq's default pickle.

Pickle lets anyone who can write to Redis run code in the worker; JSON only ever builds data.
Arguments and results may be what JSON holds (dict with str keys, list, tuple (read back as a
list), str, int, float, bool, None) plus `datetime`, `date`, `UUID` and `Decimal`, which are tagged
and read back as the same type. Anything else is refused when the job is enqueued.

A failed job's result is its exception: it is stored as its type name and message and read back as
`JobFailed`, so a client can show why a job failed without importing the worker's code. An aborted
job's result is the `CancelledError` arq stores for it; it is read back as `JobAborted`, an ordinary
`Exception`: a `CancelledError` raised from `result()` would look like the caller itself being
cancelled, and `except Exception` (and a web framework) would let it through. An exception's
message is stored redacted and capped (redaction.py): no credentials, at most ERROR_TEXT_LIMIT
characters.
"""

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ...redaction import error_message

# One reserved key marks a tagged value: {"__type__": "datetime", "value": "2026-01-01T00:00:00"}.
TYPE_KEY = "__type__"


class JobFailed(Exception):
    """A job's exception, as read back from Redis: the original type's name and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Copied and pickled with its own arguments: Exception's default rebuilds it from
        # `args` (the one joined message), which this __init__ does not take. A dead letter's
        # record deep-copies its arguments, and a group's callback gets JobFailed among them.
        return (type(self), (self.error_type, self.message))


class JobAborted(Exception):
    """The job was aborted (`Job.abort()`): dropped before it started, or cancelled while running."""


# What arq stores as the result of an aborted job, and what an abort done here stores too.
ABORTED_ERROR_TYPE = "CancelledError"


def _encode(value: Any) -> dict[str, Any]:
    # json calls this only for what it cannot write itself; datetime first: it is also a date.
    if isinstance(value, datetime):
        return {TYPE_KEY: "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {TYPE_KEY: "date", "value": value.isoformat()}
    if isinstance(value, UUID):
        return {TYPE_KEY: "uuid", "value": str(value)}
    if isinstance(value, Decimal):
        return {TYPE_KEY: "decimal", "value": str(value)}
    if isinstance(value, JobFailed):
        return {TYPE_KEY: "exception", "error_type": value.error_type, "message": value.message}
    if isinstance(value, JobAborted):
        return {TYPE_KEY: "exception", "error_type": ABORTED_ERROR_TYPE, "message": str(value)}
    if isinstance(value, BaseException):
        return {
            TYPE_KEY: "exception",
            "error_type": type(value).__name__,
            "message": error_message(value),
        }
    raise TypeError(f"{type(value).__name__} is not JSON-serializable: {value!r}")


def _decode(obj: dict[str, Any]) -> Any:
    match obj.get(TYPE_KEY):
        case None:
            return obj
        case "datetime":
            return datetime.fromisoformat(obj["value"])
        case "date":
            return date.fromisoformat(obj["value"])
        case "uuid":
            return UUID(obj["value"])
        case "decimal":
            return Decimal(obj["value"])
        case "exception" if obj["error_type"] == ABORTED_ERROR_TYPE:
            return JobAborted(obj["message"] or "the job was aborted")
        case "exception":
            return JobFailed(obj["error_type"], obj["message"])
        case unknown:
            raise ValueError(f"unknown tagged type {unknown!r}")


# Built once: `json.dumps` and `json.loads` with options build a new encoder or decoder per call,
# which the worker would pay for every job and result.
_ENCODER = json.JSONEncoder(default=_encode, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()
_TAGGED_DECODER = json.JSONDecoder(object_hook=_decode)
_TAG = f'"{TYPE_KEY}"'


def json_view(value: Any) -> Any:
    """A value read back with `deserialize`, as the API and the dashboard show it in JSON: a job's
    error in it (`JobFailed`, `JobAborted`: what a group's callback gets for a member that failed,
    with `on_error="pass"`) as `{"type": ..., "message": ...}`, the shape of a failed job's
    `error` in `GET /jobs/{id}`, in lists, tuples and dicts at any depth. The rest is left to the
    view's JSON encoder (pydantic's writes a datetime, UUID or Decimal as text)."""
    if isinstance(value, JobFailed):
        return {"type": value.error_type, "message": value.message}
    if isinstance(value, JobAborted):
        return {"type": "JobAborted", "message": str(value)}
    if isinstance(value, list | tuple):
        return [json_view(item) for item in value]
    if isinstance(value, dict):
        return {key: json_view(item) for key, item in value.items()}
    return value


def serialize(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def serialize_at_most(max_bytes: int) -> Callable[[Any], bytes]:
    """`serialize`, refusing a result longer than `max_bytes`: what clients enqueue with, so a
    huge argument is refused at `enqueue_task` instead of filling Redis."""

    def serialize_job(value: Any) -> bytes:
        data = serialize(value)
        if len(data) > max_bytes:
            raise ValueError(
                f"the job takes {len(data):,} bytes as JSON, over JOB_MAX_BYTES ({max_bytes:,})"
            )
        return data

    return serialize_job


def deserialize(data: bytes) -> Any:
    """Read what `serialize` wrote; raises ValueError (UnicodeDecodeError, JSONDecodeError, or
    an unknown tag) for anything else."""
    text = data.decode()
    # The object hook runs for every dict; only a payload with a tagged value needs it.
    return (_TAGGED_DECODER if _TAG in text else _DECODER).decode(text)
