# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Following a job live: `GET /jobs/{job_id}/events`, server-sent events.

    curl -gN http://127.0.0.1:8000/jobs/<job_id>/events

    event: status
    id: in_progress.1.1765102774389
    data: {"job_id": "...", "status": "in_progress", "try": 1, ..., "progress": {"done": 3, ...}}

    event: outcome
    id: complete.1.1765102775120
    data: {"job_id": "...", "status": "complete", ..., "result": "Processed: Hello!"}

The first event is the job as it is now; then one `status` event each time its status, try or
progress changes, and one `outcome` event when it has finished (complete, failed or aborted),
after which the stream ends. Each event's `data` is what `GET /jobs/{job_id}` answers at that
moment (jobs.py's `read_view`). Each event's `id` names that state: a client that reconnects
with `Last-Event-ID` (a browser's EventSource does it by itself) gets the job's state only if it
has changed since, so nothing is missed and nothing is sent twice; one that has the outcome
already gets 204 No Content, which tells a browser to stop reconnecting (still, close an
EventSource on `outcome`: `source.addEventListener("outcome", () => source.close())`). A job
that disappears (its result expired, or aborted when results are not kept) ends the stream with
a `gone` event.

Clients add no Redis connections: the API reads each job followed, once per
`WATCH_INTERVAL_SECONDS` for all of its streams together (`JobWatcher`), at most
`MAX_CONCURRENT_READS` jobs at a time over the app's pool. So 200 streams of one job cost one
read every 0.5 s, and of 200 jobs at most 4 connections. A stream ends when its client goes away
(FastAPI cancels it; the job's read stops with its last stream), and FastAPI sends a comment
line every 15 s of quiet so that proxies keep it open.
"""

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from redis.exceptions import RedisError

from ..queue import Job
from .dependencies import JobHandle, authorize
from .jobs import FINISHED, JobView, no_such_job, read_view
from .problems import problem_responses

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(authorize)])

# How often a followed job is read (for all of its streams together), in seconds.
WATCH_INTERVAL_SECONDS = 0.5
# How many jobs are read at once, over the app's pool: the most connections the streams use.
MAX_CONCURRENT_READS = 4


@dataclass
class Followed:
    """One job being followed: its latest view (None: gone), a number that grows with each
    change, the streams following it, and the task that reads it."""

    view: JobView | None = None
    version: int = 0
    streams: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    reader: asyncio.Task[None] | None = None


class JobWatcher:
    """Reads each followed job once per interval, for every stream that follows it."""

    def __init__(self) -> None:
        self._followed: dict[str, Followed] = {}
        self._reads = asyncio.Semaphore(MAX_CONCURRENT_READS)

    async def views(self, job: Job[Any]) -> AsyncIterator[JobView | None]:
        """The job's view now, then each time it changes; None once the job is gone. Ends when
        the caller stops (or after None, or a finished view)."""
        followed = self._followed.get(job.job_id)
        if followed is None:
            followed = self._followed[job.job_id] = Followed()
            followed.reader = asyncio.create_task(self._read(job, followed))
        followed.streams += 1
        seen = 0
        try:
            while True:
                async with followed.changed:
                    while followed.version == seen:
                        await followed.changed.wait()
                seen = followed.version
                yield followed.view
                if followed.view is None or followed.view.status in FINISHED:
                    return
        finally:
            followed.streams -= 1
            if followed.streams == 0:
                del self._followed[job.job_id]
                if followed.reader is not None:
                    followed.reader.cancel()

    async def read(self, job: Job[Any]) -> JobView | None:
        """The job's view now (`read_view`), reading at most MAX_CONCURRENT_READS jobs at once."""
        async with self._reads:
            return await read_view(job)

    async def _read(self, job: Job[Any], followed: Followed) -> None:
        while True:
            try:
                view = await self.read(job)
            except (RedisError, OSError) as error:  # Redis away: the streams wait, and read on
                logger.warning("could not read job %s for its event streams: %s", job.job_id, error)
                await asyncio.sleep(WATCH_INTERVAL_SECONDS)
                continue
            if view is None or followed.view is None or event_id(view) != event_id(followed.view):
                async with followed.changed:
                    followed.view = view
                    followed.version += 1
                    followed.changed.notify_all()
            if view is None or view.status in FINISHED:
                return
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)


def event_id(view: JobView) -> str:
    """The id of the job's state: its status, try and the time of its latest progress report."""
    progress = view.progress
    reported = 0 if progress is None else round(progress.updated_at.timestamp() * 1000)
    return f"{view.status}.{view.job_try}.{reported}"


def watcher(request: Request) -> JobWatcher:
    """The app's watcher (created with the app: app.py)."""
    found: JobWatcher = request.app.state.job_watcher
    return found


async def job_to_stream(
    job: JobHandle,
    jobs: Annotated[JobWatcher, Depends(watcher)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> Job[Any]:
    """The job the path names, before the stream starts: 404 if there is none; 204 if it has
    finished and the client's `Last-Event-ID` is its outcome's (it has seen the end: a 204 is
    what stops a browser's EventSource from reconnecting). Read through the watcher, so that
    many streams opening at once share its connections too."""
    view = await jobs.read(job)
    if view is None:
        raise no_such_job(job.job_id)
    if view.status in FINISHED and event_id(view) == last_event_id:
        raise HTTPException(204)
    return job


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        204: {"description": "The job has finished and `Last-Event-ID` is its outcome's."},
        **problem_responses(404, 422, 503),
    },
)
async def job_events(
    job: Annotated[Job[Any], Depends(job_to_stream)],
    jobs: Annotated[JobWatcher, Depends(watcher)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterable[ServerSentEvent]:
    """The job's status as it changes, as server-sent events: `status` (the job as GET
    /jobs/{job_id} shows it) now and at each change of status, try or progress, then `outcome`
    when it has finished, and the stream ends. Resumes after `Last-Event-ID`; 204 once the
    client has the outcome (close an EventSource on `outcome`)."""
    async for view in jobs.views(job):
        if view is None:
            yield ServerSentEvent(event="gone", raw_data="{}")
            return
        state = event_id(view)
        if state == last_event_id:  # the client has this state already
            continue
        finished = view.status in FINISHED
        data = view.model_dump_json(by_alias=True, exclude_unset=True)
        yield ServerSentEvent(event="outcome" if finished else "status", id=state, raw_data=data)
