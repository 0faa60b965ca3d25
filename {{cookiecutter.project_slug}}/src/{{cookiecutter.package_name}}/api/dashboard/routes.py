# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The dashboard's routes, all behind its login (security.py), none in the OpenAPI schema.

    GET  /dashboard                              the page; ?job=<id> looks a job up
    GET  /dashboard/live                         the part of the page the script refreshes
    GET  /dashboard/snapshot.json                the same data as JSON (snapshot.py), for scripts
    GET  /dashboard/static/{name}                its script and style sheet
    POST /dashboard/dead-letters/{job_id}/requeue
    POST /dashboard/dead-letters/purge
    POST /dashboard/jobs/{job_id}/abort

The page is rendered here, by Jinja2 with autoescaping: a job's arguments, result and error are
text in it, never markup. Its script (static/dashboard.js) fetches `/dashboard/live` every
REFRESH_SECONDS and swaps it in; it never builds HTML itself. The actions are plain HTML forms,
so they work without the script too: each answers 303, back to the page, which then says what
happened (`?notice=`).
"""

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from ...infrastructure.client.enqueue import job_by_id
from ...infrastructure.store import dead_letters
from ...queue import (
    Job,
    JobArgumentError,
    RequeueRefused,
    UnknownTaskError,
    requeue_blocker,
    requeue_dead_letter,
)
from ..dependencies import (
    JOB_ID_MAX_LENGTH,
    JOB_ID_PATTERN,
    AppSettings,
    JobHandle,
    JobId,
    TaskPool,
)
from ..jobs import FINISHED, JobView, read_view
from .security import SECURITY_HEADERS, check_form_post, form_token, login
from .snapshot import Snapshot, chart, read_snapshot

router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=[Depends(login)])

REFRESH_SECONDS = 2
HERE = Path(__file__).parent
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# What a job's arguments or result may show before it is cut: the page stays readable.
TEXT_CHARS = 2000

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value a template shows is escaped; none is marked safe
    undefined=jinja2.StrictUndefined,
    # Statements as [% ... %]: the project came from a Jinja template itself (cookiecutter),
    # and its usual statement braces in a generated file read as text it forgot to render.
    block_start_string="[%",
    block_end_string="%]",
)


def as_text(value: Any) -> str:
    """A job's argument or result as one line of JSON (or repr), cut at TEXT_CHARS."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"


def clock(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%H:%M:%S")


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


templates.filters.update(
    text=as_text, clock=clock, duration=duration, requeue_blocker=requeue_blocker
)

# What `?notice=` may say after an action; the page shows no other text from the query.
NOTICES = {
    "requeued": "Dead letter requeued as job {job}, shown below.",
    "no-dead-letter": "No dead letter {job}: requeued or purged already?",
    "not-requeued": "Dead letter {job} could not be requeued (the list says why); it stays listed.",
    "purged": "Dead letters purged.",
    "aborted": "Job {job} aborted.",
    "abort-requested": "Job {job} is running: its worker will cancel it on its next poll.",
    "finished": "Job {job} had already finished: nothing to abort.",
    "bad-id": "Not a job id: 1-256 of A-Z, a-z, 0-9, braces and . _ : -",
}


def html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def back_to_page(request: Request, **query: str) -> RedirectResponse:
    """303 to the page (behind the app's root path), with what it should say."""
    path = f"{request.scope.get('root_path', '')}{router.prefix}"
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303, headers=SECURITY_HEADERS)


def render_live(request: Request, snapshot: Snapshot, settings: AppSettings) -> str:
    return templates.get_template("live.html").render(
        snapshot=snapshot,
        chart=chart(snapshot.chart),
        token=form_token(settings),
        base=f"{request.scope.get('root_path', '')}{router.prefix}",
    )


async def look_up(job: Job[Any]) -> dict[str, Any] | None:
    """The job as GET /jobs/{id} shows it, with the arguments it was queued with."""
    view: JobView | None = await read_view(job)
    if view is None:
        return None
    info = await job.info()
    return {
        "view": view,
        "args": [] if info is None else list(info.args),
        "kwargs": {} if info is None else info.kwargs,
        "abortable": view.status not in FINISHED,
    }


@router.get("")
async def page(
    request: Request,
    pool: TaskPool,
    settings: AppSettings,
    job: str = "",
    notice: str = "",
) -> HTMLResponse:
    """The dashboard; `job` looks a job up by id, `notice` says what an action did."""
    snapshot = await read_snapshot(pool, settings.queue_name)
    looked_up = None
    if job and re.fullmatch(JOB_ID_PATTERN, job) and len(job) <= JOB_ID_MAX_LENGTH:
        looked_up = await look_up(job_by_id(job, pool))
    elif job:
        notice = "bad-id"
    body = templates.get_template("page.html").render(
        app_name=settings.app_name,
        snapshot=snapshot,
        chart=chart(snapshot.chart),
        token=form_token(settings),
        base=f"{request.scope.get('root_path', '')}{router.prefix}",
        refresh_ms=REFRESH_SECONDS * 1000,
        job_id=job,
        looked_up=looked_up,
        notice=NOTICES[notice].format(job=job) if notice in NOTICES else None,
    )
    return html(body)


@router.get("/live")
async def live(request: Request, pool: TaskPool, settings: AppSettings) -> HTMLResponse:
    """The refreshed part of the page, as HTML (escaped like the page)."""
    return html(render_live(request, await read_snapshot(pool, settings.queue_name), settings))


@router.get("/snapshot.json")
async def snapshot_json(pool: TaskPool, settings: AppSettings) -> JSONResponse:
    """Everything the page shows, as JSON (snapshot.py's `Snapshot`)."""
    snapshot = await read_snapshot(pool, settings.queue_name)
    return JSONResponse(snapshot.model_dump(mode="json", by_alias=True), headers=SECURITY_HEADERS)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, f"nothing at /dashboard/static/{name}")
    body = (HERE / "static" / name).read_bytes()
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(body, media_type=STATIC[name], headers=headers)


async def form_of(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the last value of each); a form is all the dashboard posts."""
    if request.headers.get("content-type", "").split(";")[0].strip() not in (
        "application/x-www-form-urlencoded",
        "",
    ):
        raise HTTPException(415, "the dashboard's actions take a url-encoded form")
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {name: values[-1] for name, values in fields.items()}


async def checked_form(request: Request, settings: AppSettings) -> dict[str, str]:
    form = await form_of(request)
    check_form_post(request, settings, form.get("token", ""))
    return form


@router.post("/dead-letters/{job_id}/requeue")
async def requeue(request: Request, job_id: JobId, settings: AppSettings) -> RedirectResponse:
    """Put the dead letter back on the queue as a new job, then show that job."""
    await checked_form(request, settings)
    try:
        job = await requeue_dead_letter(job_id)
    except LookupError:
        return back_to_page(request, notice="no-dead-letter", job=job_id)
    except (RequeueRefused, UnknownTaskError, JobArgumentError):
        return back_to_page(request, notice="not-requeued", job=job_id)
    return back_to_page(request, notice="requeued", job=job.job_id)


@router.post("/dead-letters/purge")
async def purge(request: Request, pool: TaskPool, settings: AppSettings) -> RedirectResponse:
    """Delete every dead letter."""
    await checked_form(request, settings)
    await dead_letters.purge(pool, settings.queue_name)
    return back_to_page(request, notice="purged")


@router.post("/jobs/{job_id}/abort")
async def abort(request: Request, job: JobHandle, settings: AppSettings) -> RedirectResponse:
    """Abort the job as DELETE /jobs/{id} does, then show it."""
    await checked_form(request, settings)
    status = await job.status()
    if status in FINISHED or status == "not_found":
        return back_to_page(request, notice="finished", job=job.job_id)
    aborted = await job.abort(timeout=settings.api_abort_wait, poll_delay=0.1)
    return back_to_page(request, notice="aborted" if aborted else "abort-requested", job=job.job_id)
