# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The dashboard's routes, all behind its login (security.py), none in the OpenAPI schema.

    GET  /dashboard                              the page; ?job=<id> looks a job up
    GET  /dashboard/live                         the part of the page the script refreshes
    GET  /dashboard/snapshot.json                the same data as JSON (snapshot.py), for scripts
    GET  /dashboard/static/{name}                its script and style sheet
    POST /dashboard/dead-letters/{job_id}/requeue
    POST /dashboard/dead-letters/purge           its form names the queue (`queue`)
    POST /dashboard/jobs/{job_id}/abort
    POST /dashboard/jobs/{job_id}/retry          a failed job, again, as a new job
    POST /dashboard/queues/pause                 its form names the queue (`queue`); and resume
    POST /dashboard/queues/resume

The recent tables take `?function=<name>&outcome=<outcome>` (page, live part and JSON alike);
each action is logged at INFO: who (the user name the browser sent, and its address), what, and
which job or queue.

Each page shows one queue of QUEUES: `?queue=<name>` (the default queue without it) on the page,
the live part and the JSON; a name QUEUES lacks is a 404. With several queues the page links to
each of them. The job lookup takes any queue's job id (a job id carries its queue, keys.py), or
a bare one, looked for on each queue.

The page is rendered here, by Jinja2 with autoescaping: a job's arguments, result and error are
text in it, never markup. Its script (static/dashboard.js) fetches `/dashboard/live` every
REFRESH_SECONDS and swaps it in; it never builds HTML itself. The actions are plain HTML forms,
so they work without the script too: each answers 303, back to the page, which then says what
happened (`?notice=`).
"""

import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from ...infrastructure.client.enqueue import job_by_id, rerun_blocker, retry_job
from ...infrastructure.client.workflows import (
    WorkflowNotFound,
    WorkflowState,
    find_workflow,
    workflow_of,
)
from ...infrastructure.keys import (
    DEFAULT_QUEUE,
    JOB_ID_MAX_LENGTH,
    JOB_ID_PATTERN,
    QUEUE_NAME_PATTERN,
    bare_job_id,
    namespaced_job_id,
    queue_of,
)
from ...infrastructure.ops.activity import RECORDED_PER_WRITE
from ...infrastructure.store import dead_letters
from ...infrastructure.store.pause import pause_queue, resume_queue
from ...infrastructure.store.serialization import json_view
from ...queue import (
    Job,
    JobArgumentError,
    RequeueRefused,
    UnknownTaskError,
    requeue_blocker,
    requeue_dead_letter,
)
from ..dependencies import AppSettings, JobHandle, JobId, TaskPool
from ..jobs import FINISHED, JobView, read_view
from .security import SECURITY_HEADERS, check_form_post, form_token, login, operator
from .snapshot import OUTCOMES, Outcome, Snapshot, Wanted, chart, read_snapshot

logger = logging.getLogger(__name__)

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
    """A job's argument or result as one line of JSON, as the JSON views show it
    (serialization.py's `json_view`; repr for what JSON cannot hold), cut at TEXT_CHARS."""
    try:
        text = json.dumps(json_view(value), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"


def clock(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%H:%M:%S")


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def count(number: float) -> str:
    """A progress count as a person reads it: 1,234 or 12.5."""
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,.2f}".rstrip("0")


def percent(done: float, total: float) -> str:
    return f"{min(100.0, 100 * done / total):.0f}%"


templates.filters.update(
    text=as_text,
    clock=clock,
    duration=duration,
    requeue_blocker=requeue_blocker,
    count=count,
    percent=percent,
    bare=bare_job_id,  # an id without its queue's key, where the queue is shown beside it
)

# What `?notice=` may say after an action; the page shows no other text from the query.
NOTICES = {
    "requeued": "Dead letter requeued as job {job}, shown below.",
    "no-dead-letter": "No dead letter {job}: requeued or purged already?",
    "not-requeued": "Dead letter {job} could not be requeued (the list says why); it stays listed.",
    "purged": "Dead letters of queue {queue} purged.",
    "not-purged": "Nothing purged: the form named no queue of this project. Reload the page.",
    "aborted": "Job {job} aborted.",
    "abort-requested": "Job {job} is running: its worker will cancel it on its next poll.",
    "finished": "Job {job} had already finished: nothing to abort.",
    "bad-id": "Not a job id: 1-256 of A-Z, a-z, 0-9, braces and . _ : -",
    "retried": "Queued again as job {job}, shown below.",
    "no-failed-job": "No failed job {job}: never queued, or its result has expired.",
    "not-retried": "Job {job} was not queued again: it completed, or its function or arguments "
    "no longer fit this version (the server's log says which).",
    "paused": "Queue {queue} paused: within a second no worker takes a new job from it.",
    "paused-already": "Queue {queue} was paused already.",
    "resumed": "Queue {queue} resumed.",
    "not-paused": "Queue {queue} was not paused.",
    "no-queue": "Nothing paused or resumed: the form named no queue of this project.",
}
# The longest function name the recent tables' filter takes.
FUNCTION_MAX_LENGTH = 200


def html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def base_of(request: Request, path: str = "") -> str:
    """The dashboard's path (behind the app's root path), plus `path`."""
    return f"{request.scope.get('root_path', '')}{router.prefix}{path}"


def url_of(request: Request, queue: str, path: str = "", **query: str) -> str:
    """A dashboard URL for `queue`: `?queue=<name>` first, left out for the default queue (so a
    project with one queue has the URLs it always had), then `query`."""
    parameters = ({} if queue == DEFAULT_QUEUE else {"queue": queue}) | query
    url = base_of(request, path)
    return f"{url}?{urlencode(parameters)}" if parameters else url


def back_to_page(request: Request, queue: str, **query: str) -> RedirectResponse:
    """303 to `queue`'s page, with what it should say."""
    return RedirectResponse(
        url_of(request, queue, **query), status_code=303, headers=SECURITY_HEADERS
    )


def queue_key(settings: AppSettings, queue: str) -> str:
    """The Redis key of the queue named `queue`; 404 for a name QUEUES lacks."""
    key = settings.queue_keys.get(queue)
    if key is None:
        raise HTTPException(
            404, f"no queue {queue[:100]!r}: QUEUES lists {', '.join(settings.queues)}"
        )
    return key


def form_queue(settings: AppSettings, form: dict[str, str]) -> str:
    """The queue an action's form came from (its page's), to go back to; the default queue if it
    names none of QUEUES."""
    queue = form.get("queue", "")
    return queue if queue in settings.queue_keys else DEFAULT_QUEUE


def unknown_queue_notice(settings: AppSettings, queue: str) -> str:
    named = f"named {queue!r}" if QUEUE_NAME_PATTERN.fullmatch(queue) and len(queue) <= 100 else ""
    return (
        f"No queue {named or 'of that name'} in this project (QUEUES: "
        f"{', '.join(settings.queues)}): showing {DEFAULT_QUEUE} instead."
    )


def filter_query(wanted: Wanted) -> dict[str, str]:
    """The recent tables' filter as query parameters, those set only."""
    return {
        name: value
        for name, value in (("function", wanted.function), ("outcome", wanted.outcome))
        if value is not None
    }


def live_context(
    request: Request, settings: AppSettings, queue: str, snapshot: Snapshot, wanted: Wanted
) -> dict[str, Any]:
    """What live.html shows: `queue`'s snapshot, the forms' token, the links to jobs."""
    return {
        "queue": queue,
        "snapshot": snapshot,
        "chart": chart(snapshot.chart),
        "token": form_token(settings),
        "base": base_of(request),
        # A job's link: looked up on this queue's page (`job_link` + the id, percent-encoded).
        "job_link": url_of(request, queue, job=""),
        "snapshot_url": url_of(request, queue, "/snapshot.json", **filter_query(wanted)),
        "outcomes": OUTCOMES,
        "recorded_per_write": RECORDED_PER_WRITE,
    }


def render_live(
    request: Request, settings: AppSettings, queue: str, snapshot: Snapshot, wanted: Wanted
) -> str:
    context = live_context(request, settings, queue, snapshot, wanted)
    return templates.get_template("live.html").render(**context)


def queue_named(settings: AppSettings, key: str) -> str:
    """The name of the queue whose key is `key`."""
    return next((name for name, each in settings.queue_keys.items() if each == key), key)


async def look_up(job: Job[Any], settings: AppSettings) -> dict[str, Any] | None:
    """The job as GET /jobs/{id} shows it, with the arguments it was queued with."""
    view: JobView | None = await read_view(job)
    if view is None:
        return None
    info = await job.info()
    args = [] if info is None else list(info.args)
    kwargs = {} if info is None else info.kwargs
    return {
        "view": view,
        "queue": queue_named(settings, job.queue_name),
        "args": args,
        "kwargs": kwargs,
        "abortable": view.status not in FINISHED,
        # As the retry itself decides (enqueue.py's `retry_job`): no button it would refuse.
        "retryable": view.status in ("failed", "aborted")
        and rerun_blocker(view.function, args, kwargs) is None,
    }


async def look_up_any(
    job_id: str, queue: str, pool: TaskPool, settings: AppSettings
) -> dict[str, Any] | None:
    """`look_up` for an id with its queue's key, or a bare one (`order-42`), tried on `queue`
    (the page's) and then on the other queues, in QUEUES' order: an operator pastes what a log
    line or a customer gave, which may lack the key."""
    if queue_of(job_id) is not None:
        return await look_up(job_by_id(job_id, pool), settings)
    keys = [settings.queue_keys[queue]] + [
        key for name, key in settings.queue_keys.items() if name != queue
    ]
    for key in keys:
        found = await look_up(job_by_id(namespaced_job_id(key, job_id), pool), settings)
        if found is not None:
            return found
    return None


async def look_up_workflow(job_id: str, pool: TaskPool) -> WorkflowState | None:
    """The workflow `job_id` names (`find_workflow`: the id it was queued with too), or the one
    the job belongs to; None for neither."""
    workflow = await workflow_of(job_id, pool) or await find_workflow(job_id, pool)
    try:
        return None if workflow is None else await workflow.state()
    except WorkflowNotFound:  # expired between the two reads
        return None


@router.get("")
async def page(
    request: Request,
    pool: TaskPool,
    settings: AppSettings,
    queue: str = DEFAULT_QUEUE,
    job: str = "",
    notice: str = "",
    function: str = "",
    outcome: str = "",
) -> HTMLResponse:
    """The dashboard of `queue`; `job` looks a job of any queue up by id, `notice` says what an
    action did, `function` and `outcome` filter the recent tables (one that is no outcome, or a
    name too long for a function, shows them unfiltered). A queue QUEUES lacks is a 404 that
    shows the default queue and says so."""
    wanted = wanted_of(function, outcome)
    status_code = 200
    message = NOTICES[notice].format(job=job, queue=queue) if notice in NOTICES else None
    if queue not in settings.queue_keys:
        status_code, message = 404, unknown_queue_notice(settings, queue)
        queue = DEFAULT_QUEUE
    snapshot = await read_snapshot(pool, settings.queue_keys[queue], wanted)
    looked_up = workflow = None
    if job and re.fullmatch(JOB_ID_PATTERN, job) and len(job) <= JOB_ID_MAX_LENGTH:
        workflow = await look_up_workflow(job, pool)
        if workflow is None or workflow.id != job:  # a job, maybe of a workflow
            looked_up = await look_up_any(job, queue, pool, settings)
    elif job:
        message = message if status_code != 200 else NOTICES["bad-id"]
    body = templates.get_template("page.html").render(
        **live_context(request, settings, queue, snapshot, wanted),
        app_name=settings.app_name,
        # The queue picker, shown with more than one queue: each one's name and page.
        queues=[(name, url_of(request, name)) for name in settings.queues],
        default_queue=DEFAULT_QUEUE,
        live_url=url_of(request, queue, "/live", **filter_query(wanted)),
        refresh_ms=REFRESH_SECONDS * 1000,
        job_id=job,
        looked_up=looked_up,
        workflow=workflow,
        notice=message,
    )
    return html(body, status_code)


def wanted_of(function: str, outcome: str) -> Wanted:
    """The page's filter from its query: what does not fit is no filter."""
    return Wanted(
        function=function if 0 < len(function) <= FUNCTION_MAX_LENGTH else None,
        outcome=next((each for each in OUTCOMES if each == outcome), None),
    )


@router.get("/live")
async def live(
    request: Request,
    pool: TaskPool,
    settings: AppSettings,
    queue: str = DEFAULT_QUEUE,
    function: str = "",
    outcome: str = "",
) -> HTMLResponse:
    """The refreshed part of `queue`'s page, as HTML (escaped like the page), filtered as the
    page is."""
    wanted = wanted_of(function, outcome)
    snapshot = await read_snapshot(pool, queue_key(settings, queue), wanted)
    return html(render_live(request, settings, queue, snapshot, wanted))


@router.get("/snapshot.json")
async def snapshot_json(
    pool: TaskPool,
    settings: AppSettings,
    queue: str = DEFAULT_QUEUE,
    function: str | None = Query(None, min_length=1, max_length=FUNCTION_MAX_LENGTH),
    outcome: Outcome | None = None,
) -> JSONResponse:
    """Everything `queue`'s page shows, as JSON (snapshot.py's `Snapshot`); `function` and
    `outcome` filter `recent` and `failures` (a bad one is a 422)."""
    wanted = Wanted(function=function, outcome=outcome)
    snapshot = await read_snapshot(pool, queue_key(settings, queue), wanted)
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
    """Put the dead letter back on its queue (its id says which) as a new job, then show that
    job, on the page the form came from."""
    queue = form_queue(settings, await checked_form(request, settings))
    try:
        job = await requeue_dead_letter(job_id)
    except LookupError:
        log_action(request, "requeue", job_id, "no such dead letter")
        return back_to_page(request, queue, notice="no-dead-letter", job=job_id)
    except (RequeueRefused, UnknownTaskError, JobArgumentError) as error:
        log_action(request, "requeue", job_id, f"refused: {error}")
        return back_to_page(request, queue, notice="not-requeued", job=job_id)
    log_action(request, "requeue", job_id, f"queued as {job.job_id}")
    return back_to_page(request, queue, notice="requeued", job=job.job_id)


@router.post("/dead-letters/purge")
async def purge(request: Request, pool: TaskPool, settings: AppSettings) -> RedirectResponse:
    """Delete every dead letter of the queue the form names (`queue`), only of that one. A form
    that names none of QUEUES purges nothing: the page says so."""
    form = await checked_form(request, settings)
    queue = form.get("queue", "")
    if queue not in settings.queue_keys:
        return back_to_page(request, DEFAULT_QUEUE, notice="not-purged")
    purged = await dead_letters.purge(pool, settings.queue_keys[queue])
    log_action(request, "purge", f"queue {queue}", f"{purged} dead letters deleted")
    return back_to_page(request, queue, notice="purged")


@router.post("/jobs/{job_id}/abort")
async def abort(request: Request, job: JobHandle, settings: AppSettings) -> RedirectResponse:
    """Abort the job as DELETE /jobs/{id} does, then show it, on the page the form came from."""
    queue = form_queue(settings, await checked_form(request, settings))
    status = await job.status()
    if status in FINISHED or status == "not_found":
        log_action(request, "abort", job.job_id, f"nothing to abort: {status}")
        return back_to_page(request, queue, notice="finished", job=job.job_id)
    aborted = await job.abort(timeout=settings.api_abort_wait, poll_delay=0.1)
    notice = "aborted" if aborted else "abort-requested"
    log_action(request, "abort", job.job_id, notice)
    return back_to_page(request, queue, notice=notice, job=job.job_id)


@router.post("/jobs/{job_id}/retry")
async def retry(request: Request, job: JobHandle, settings: AppSettings) -> RedirectResponse:
    """Queue a failed or aborted job again as a new job (enqueue.py's `retry_job`: its
    arguments, its queue, a new id that records this one), then show the new job."""
    queue = form_queue(settings, await checked_form(request, settings))
    try:
        again = await retry_job(job.job_id)
    except LookupError:
        log_action(request, "retry", job.job_id, "no such failed job")
        return back_to_page(request, queue, notice="no-failed-job", job=job.job_id)
    except (RequeueRefused, UnknownTaskError, JobArgumentError) as error:
        log_action(request, "retry", job.job_id, f"refused: {error}")
        return back_to_page(request, queue, notice="not-retried", job=job.job_id)
    log_action(request, "retry", job.job_id, f"queued as {again.job_id}")
    return back_to_page(request, queue, notice="retried", job=again.job_id)


@router.post("/queues/{action}")
async def pause_or_resume(
    request: Request, action: str, pool: TaskPool, settings: AppSettings
) -> RedirectResponse:
    """Pause or resume (`action`) the queue the form names (`queue`), as `just pause` and
    `just resume` do (store/pause.py), on behalf of the dashboard's user."""
    if action not in ("pause", "resume"):
        raise HTTPException(404, "no such action: pause or resume")
    form = await checked_form(request, settings)
    queue = form.get("queue", "")
    if queue not in settings.queue_keys:
        return back_to_page(request, DEFAULT_QUEUE, notice="no-queue")
    key, who = settings.queue_keys[queue], operator(request)
    if action == "pause":
        earlier = await pause_queue(pool, key, who)
        notice = "paused" if earlier is None else "paused-already"
    else:
        notice = "resumed" if await resume_queue(pool, key) else "not-paused"
    log_action(request, action, f"queue {queue}", notice)
    return back_to_page(request, queue, notice=notice)


def log_action(request: Request, action: str, target: str, result: str) -> None:
    """One INFO line per action: who (security.py's `operator`), what, on which job or queue,
    and what came of it; the same as fields, for LOG_FORMAT=json."""
    who = operator(request)
    logger.info(
        "dashboard %s of %s by %s: %s",
        action,
        target,
        who,
        result,
        extra={"user": who, "action": action, "target": target, "result": result},
    )
