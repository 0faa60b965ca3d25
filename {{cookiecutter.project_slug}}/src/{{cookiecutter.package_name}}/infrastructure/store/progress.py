# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A job's progress, reported from inside it and read by whoever follows the job.

    from {{ cookiecutter.package_name }}.queue import report_progress

    @job()
    async def import_rows(ctx: JobContext, rows: list[str]) -> int:
        for done, row in enumerate(rows, 1):
            await store(row)
            await report_progress(ctx, done, len(rows), note=f"row {done}")
        return len(rows)

Celery's `update_state(state="PROGRESS", meta={"current": i, "total": n})`, SAQ's
`job.update(progress=...)`. The latest report is one key, `Q:progress:J` (keys.py), a JSON
object: `done`, `total` (None when unknown), `note`, the try that wrote it and when. A job may
report in a tight loop: a try writes at most one report every `WRITE_INTERVAL_SECONDS` (so at
most 4 writes a second), the newest one each time, and the last report of a try is written when
the try ends, whatever the interval, before its result. A report is kept while the job runs and,
after its last write, as long as the job's result (`WORKER_KEEP_RESULT`) and a minute more. A
report made after its try has ended (by a task the job left running) is dropped, with one
warning: the report kept beside the result stays the try's last.

A report that cannot be written (Redis away) is logged once per try and dropped: progress is
what a person watches, not the job's outcome, so it never fails the job. A bad report (a
negative count, `done` above `total`, a note that is not text) raises ValueError in the job.
"""

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ...config import get_settings
from ..job_types import JobContext
from ..keys import queue_of_job
from .records import Unreadable, read_or_skip, reply_or

logger = logging.getLogger(__name__)

# A try writes at most one report this often: 4 a second, however often the job reports.
WRITE_INTERVAL_SECONDS = 0.25
# A report's note is cut to this many characters (it is for a person to read at a glance).
NOTE_MAX_CHARS = 200
# How much longer than its result a job's last report is kept, in seconds.
KEPT_AFTER_RESULT_SECONDS = 60
# Where a try keeps its reporter, in its `ctx`; and, once the try has ended, that it has.
REPORTER_CTX_KEY = "_progress_reporter"
ENDED_CTX_KEY = "_progress_ended"


# What a job reports: done, total (None when unknown), note.
Report = tuple[float, float | None, str | None]


def progress_key(queue_name: str, job_id: str) -> str:
    """The latest progress report of a job (`Q:progress:J`)."""
    return f"{queue_name}:progress:{job_id}"


@dataclass(frozen=True)
class Progress:
    """A job's latest progress report: `done` of `total` (None when the job did not say),
    `note`, the try that reported it (`job_try`) and when (`updated_at`, UTC)."""

    done: float
    total: float | None
    note: str | None
    job_try: int
    updated_at: datetime

    @property
    def fraction(self) -> float | None:
        """`done / total`, from 0 to 1; None without a total."""
        return None if not self.total else min(1.0, self.done / self.total)


def checked(done: float, total: float | None, note: str | None) -> Report:
    """The report as stored, or ValueError naming what is wrong with it."""
    for name, value in (("done", done), ("total", total)):
        if value is None and name == "total":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"progress {name} must be a number, not {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"progress {name} must be a finite number of 0 or more, not {value!r}")
    if total is not None and done > total:
        raise ValueError(f"progress done ({done!r}) is more than total ({total!r})")
    if note is not None and not isinstance(note, str):
        raise ValueError(f"progress note must be text, not {type(note).__name__}")
    return done, total, None if note is None else note[:NOTE_MAX_CHARS]


def encode(done: float, total: float | None, note: str | None, job_try: int) -> bytes:
    return json.dumps(
        {
            "done": done,
            "total": total,
            "note": note,
            "try": job_try,
            "at": round(time.time() * 1000),
        },
        ensure_ascii=False,
    ).encode()


def decode(data: bytes) -> Progress:
    """The report `encode` wrote; raises Unreadable for anything else."""
    try:
        value = json.loads(data)
        done, total, note, job_try, at = (
            value["done"], value["total"], value["note"], value["try"], value["at"]
        )  # fmt: skip
        checked(done, total, note)
        if not isinstance(job_try, int) or not isinstance(at, int | float):
            raise ValueError("its try or time is not a number")
        updated_at = datetime.fromtimestamp(at / 1000, UTC)
    except (ValueError, TypeError, KeyError, OverflowError, OSError) as error:
        raise Unreadable(f"not a progress report: {error}") from error
    return Progress(done, total, note, job_try, updated_at)


def read(key: str, reply: Any) -> Progress | None:
    """A report from a GET's reply (bytes, None, or a pipeline's error): None when there is none
    or it cannot be read (records.py counts and logs that); an error other than a key of another
    type is raised."""
    data = reply_or("progress", key, reply, None)
    return None if data is None else read_or_skip("progress", key, decode, data)


async def read_many(redis: Redis, queue_name: str, job_ids: list[str]) -> dict[str, Progress]:
    """The latest report of each of `job_ids` (jobs of the queue `queue_name`) that made one, in
    one MGET (the keys share the queue's cluster slot); reports that cannot be read are left out."""
    if not job_ids:
        return {}
    keys = [progress_key(queue_name, job_id) for job_id in job_ids]
    replies: list[bytes | None] = await redis.mget(keys)
    reports = {
        job_id: read(key, reply) for job_id, key, reply in zip(job_ids, keys, replies, strict=True)
    }
    return {job_id: report for job_id, report in reports.items() if report is not None}


class ProgressReporter:
    """One try's reports: the newest is written at once when the last write is
    `WRITE_INTERVAL_SECONDS` old, else by a background task when it is."""

    def __init__(self, redis: Redis, key: str, job_try: int) -> None:
        settings = get_settings()
        self._redis = redis
        self._key = key
        self._job_try = job_try
        # While the job runs, a report outlives a try's whole time limit and the result's.
        self._running_ms = round((settings.worker_job_timeout + settings.worker_keep_result) * 1000)
        self._kept_ms = round((settings.worker_keep_result + KEPT_AFTER_RESULT_SECONDS) * 1000)
        self._pending: Report | None = None
        self._last: Report | None = None
        self._next_write_at = 0.0
        self._trailing: asyncio.Task[None] | None = None
        self._warned = False

    async def report(self, done: float, total: float | None, note: str | None) -> None:
        self._pending = checked(done, total, note)  # encoded only if it is written
        if time.monotonic() >= self._next_write_at:
            await self._write(self._running_ms)
        elif self._trailing is None:
            self._trailing = asyncio.create_task(self._write_trailing())

    async def close(self) -> None:
        """At the try's end: the last report is written (if any was made), kept as long as the
        job's result."""
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        if self._pending is None and self._last is not None:
            self._pending = self._last  # written again: its lifetime now follows the result's
        if self._pending is not None:
            await self._write(self._kept_ms)

    async def _write_trailing(self) -> None:
        try:
            while self._pending is not None:
                await asyncio.sleep(max(0.0, self._next_write_at - time.monotonic()))
                if self._pending is not None and time.monotonic() >= self._next_write_at:
                    await self._write(self._running_ms)
        finally:
            self._trailing = None

    async def _write(self, lifetime_ms: int) -> None:
        value, self._pending = self._pending, None
        if value is None:
            return
        self._last = value
        self._next_write_at = time.monotonic() + WRITE_INTERVAL_SECONDS
        try:
            await self._redis.set(self._key, encode(*value, self._job_try), px=lifetime_ms)
        except (RedisError, OSError) as error:
            if not self._warned:
                self._warned = True
                logger.warning("could not write progress to %s (dropped): %s", self._key, error)


async def report_progress(
    ctx: JobContext, done: float, total: float | None = None, *, note: str | None = None
) -> None:
    """Report, from inside a job, that it has done `done` of `total` (units of your choosing:
    rows, bytes, pages; `total` None when unknown), with an optional `note` for a person.

    Cheap enough for a tight loop: at most 4 writes a second per job (see the module docstring).
    Raises ValueError for a negative or non-finite count, `done` above `total`, or a note that is
    not text; a report Redis cannot take is logged and dropped, never failing the job."""
    if ENDED_CTX_KEY in ctx:
        # The try has ended (a task it left running reports late): its last report was written
        # with its result, and this one would replace it. Dropped, said once.
        if not ctx[ENDED_CTX_KEY]:
            ctx[ENDED_CTX_KEY] = True
            logger.warning("job %s reported progress after its try ended: dropped", ctx["job_id"])
        return
    reporter: ProgressReporter | None = ctx.get(REPORTER_CTX_KEY)
    if reporter is None:
        key = progress_key(queue_of_job(ctx), ctx["job_id"])
        reporter = ctx[REPORTER_CTX_KEY] = ProgressReporter(ctx["redis"], key, ctx["job_try"])
    await reporter.report(done, total, note)


async def close_progress(ctx: JobContext) -> None:
    """At a try's end (retries.py): write the try's last report, if it made any; a report made
    after this is dropped."""
    ctx[ENDED_CTX_KEY] = False  # not yet warned about a late report
    reporter: ProgressReporter | None = ctx.pop(REPORTER_CTX_KEY, None)
    if reporter is not None:
        await reporter.close()
