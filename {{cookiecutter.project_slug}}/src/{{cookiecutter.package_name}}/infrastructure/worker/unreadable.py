# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs whose payload cannot be read (a pickle, broken JSON, a foreign format) become dead letters.

arq fails such a job without running anything, which is right, but keeps no record anyone would
look at. The worker reads payloads with `deserialize_job` instead: a payload it cannot read is
handed to `reject_unreadable_job`, which fails at once with the reason, so the job shows up in
`just dead-letters` like any other job that failed for good. Nothing in the payload is run.
"""

import time
from typing import Any

from ..job_types import UNREADABLE_JOB, JobContext, PermanentError
from ..store.serialization import deserialize

PREVIEW_BYTES = 80


def deserialize_job(data: bytes) -> Any:
    """A job as arq stores it (`{"f": ..., "a": [...], "k": {...}, "t": ..., "et": ...}`), or a
    job of `reject_unreadable_job` when `data` is not one."""
    try:
        job = deserialize(data)
        if not _is_job(job):
            raise ValueError("not an arq job")
    except ValueError as error:  # also JSON's and UTF-8's decoding errors
        reason = f"{type(error).__name__}: {error}"
        preview = data[:PREVIEW_BYTES].decode("utf-8", errors="backslashreplace")
        return {"f": UNREADABLE_JOB, "a": [reason, preview], "k": {}, "t": 1, "et": _now_ms()}
    return job


async def reject_unreadable_job(ctx: JobContext, reason: str, payload_start: str) -> None:
    raise PermanentError(f"unreadable job payload ({reason}); it starts with {payload_start!r}")


def _is_job(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("f"), str)
        and isinstance(value.get("a"), list)
        and isinstance(value.get("k"), dict)
        and isinstance(value.get("et"), int)
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
