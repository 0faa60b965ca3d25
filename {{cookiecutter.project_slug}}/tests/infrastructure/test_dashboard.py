# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The dashboard (api/dashboard/) without a browser: the app in process, the test Redis, real
workers. Its login, its forms' protection, its escaping, its JSON and its actions, and the page
of each queue of a project with several."""

import asyncio
import base64
import contextlib
import importlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.api.dashboard import security, snapshot
from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import job_events, registry
from {{ cookiecutter.package_name }}.infrastructure.keys import bare_job_id, namespaced_job_id, queue_of
from {{ cookiecutter.package_name }}.infrastructure.ops import activity
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_cron_job, arq_function
from {{ cookiecutter.package_name }}.jobs import report_queue_depth
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError, enqueue_task, get_job

from .conftest import Configure, RunningWorker, RunWorker, full_id

PASSWORD = "correct horse battery staple"
SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


async def fails_with_markup(ctx: JobContext, text: str) -> None:
    raise PermanentError(text)


# The project's jobs and the one above; the tests queue the latter with arq's own enqueue_job.
FUNCTIONS = [*WorkerSettings.functions, arq_function(fails_with_markup)]


@contextlib.asynccontextmanager
async def serving(app: FastAPI, auth: tuple[str, str] | None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`, in process, with the app's lifespan run around it."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", auth=auth) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def settings_read_afresh() -> Iterator[None]:
    yield
    get_settings.cache_clear()


@pytest.fixture
async def dashboard(task_pool: ArqRedis, configure: Configure) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with the dashboard on, logged in (any user name)."""
    configure(DASHBOARD_PASSWORD=PASSWORD)
    async with serving(create_app(), auth=("operator", PASSWORD)) as client:
        yield client


def redirect(answer: httpx.Response) -> tuple[int, str, dict[str, str]]:
    """A 303's status, path and query (each parameter once), its values decoded."""
    location = urlsplit(answer.headers["location"])
    query = parse_qs(location.query, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values()), location
    return answer.status_code, location.path, {name: values[0] for name, values in query.items()}


def token_in(page: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', page)
    assert match is not None, "the page has no form token"
    return match.group(1)


def form_in(page: str, action_ends: str) -> tuple[str, dict[str, str]]:
    """The action and the hidden fields of the page's one post form whose action ends with
    `action_ends`: what the browser would send."""
    pattern = (
        r'<form method="post" action="([^"]*' + re.escape(action_ends) + r')"[^>]*>(.*?)</form>'
    )
    [(action, body)] = re.findall(pattern, page, re.S)
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', body)
    return unescape(action), {name: unescape(value) for name, value in fields}


async def add_dead_letter(
    pool: ArqRedis, job_id: str, message: str, error: str, queue: str = "default"
) -> None:
    now = datetime.now(UTC)
    letter = dead_letters.DeadLetter(
        job_id, "example_task", [], {"message": message}, "PermanentError", error, 3, now, now
    )
    await dead_letters.add(pool, get_settings().queue_keys[queue], letter, limit=1000)


async def test_the_dashboard_is_not_there_without_a_password(task_pool: ArqRedis) -> None:
    async with serving(create_app(), auth=("operator", PASSWORD)) as client:
        page = await client.get("/dashboard")
        data = await client.get("/dashboard/snapshot.json")
        schema = (await client.get("/openapi.json")).json()

    assert (page.status_code, data.status_code) == (404, 404)
    assert not any(path.startswith("/dashboard") for path in schema["paths"])


@pytest.mark.parametrize("auth", [None, ("operator", "wrong"), ("operator", PASSWORD + "x")])
async def test_every_dashboard_route_needs_the_password(
    task_pool: ArqRedis, configure: Configure, auth: tuple[str, str] | None
) -> None:
    configure(DASHBOARD_PASSWORD=PASSWORD)
    async with serving(create_app(), auth=auth) as client:
        answers = [
            await client.get("/dashboard"),
            await client.get("/dashboard/live"),
            await client.get("/dashboard/snapshot.json"),
            await client.get("/dashboard/static/dashboard.js"),
            await client.post("/dashboard/dead-letters/purge", data={"token": "x"}),
        ]

    assert [answer.status_code for answer in answers] == [401] * 5
    assert answers[0].headers["www-authenticate"].startswith('Basic realm="dashboard"')
    assert "DASHBOARD_PASSWORD" in answers[0].json()["detail"]
    assert PASSWORD not in answers[0].text


class Clock:
    """security.clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved_by_hand = Clock()
    monkeypatch.setattr(security, "clock", moved_by_hand, raising=False)
    return moved_by_hand


def client_of(app: FastAPI, address: str, auth: tuple[str, str] | None) -> httpx.AsyncClient:
    """A client of `app` (lifespan run already) calling from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", auth=auth)


async def test_wrong_passwords_lock_the_client_address_out_for_a_minute(
    task_pool: ArqRedis, configure: Configure, clock: Clock
) -> None:
    configure(DASHBOARD_PASSWORD=PASSWORD)
    app = create_app()
    async with (
        app.router.lifespan_context(app),
        client_of(app, "203.0.113.7", ("operator", "guess")) as guesser,
        client_of(app, "203.0.113.7", ("operator", PASSWORD)) as same_address,
        client_of(app, "198.51.100.2", ("operator", PASSWORD)) as elsewhere,
    ):
        guesses = [
            (await guesser.get("/dashboard")).status_code for _ in range(security.LOGIN_FAILURES)
        ]
        locked = await same_address.get("/dashboard")
        guessing_on = await guesser.get("/dashboard/snapshot.json")
        clock.now += 45
        still_locked = await same_address.get("/dashboard/live")
        other_address = await elsewhere.get("/dashboard")
        clock.now += 15
        unlocked = await same_address.get("/dashboard")

    assert guesses == [401] * security.LOGIN_FAILURES
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "60"
    assert "try again in 60 s" in locked.json()["detail"]
    assert PASSWORD not in locked.text
    assert guessing_on.status_code == 429  # no more guesses while locked out
    assert (still_locked.status_code, still_locked.headers["retry-after"]) == (429, "15")
    assert other_address.status_code == 200
    assert unlocked.status_code == 200


async def test_failures_spread_out_or_without_a_password_do_not_lock_out(
    task_pool: ArqRedis, configure: Configure, clock: Clock
) -> None:
    configure(DASHBOARD_PASSWORD=PASSWORD)
    app = create_app()
    async with (
        app.router.lifespan_context(app),
        client_of(app, "203.0.113.7", ("operator", "typo")) as typo,
        client_of(app, "203.0.113.7", None) as no_credentials,
        client_of(app, "203.0.113.7", ("operator", PASSWORD)) as operator,
    ):
        # A browser's first request carries no credentials: that is a challenge, not a guess.
        challenges = [(await no_credentials.get("/dashboard")).status_code for _ in range(30)]
        typos = []
        for _ in range(3 * security.LOGIN_FAILURES):  # one every 7 s: 8 at most in a minute
            typos.append((await typo.get("/dashboard")).status_code)
            clock.now += 7
        answer = await operator.get("/dashboard")

    assert challenges == [401] * 30
    assert typos == [401] * 3 * security.LOGIN_FAILURES
    assert answer.status_code == 200


def basic(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


@pytest.mark.parametrize(
    "header",
    [
        b"Basic %%%",  # not base64
        b"Basic \xc2\xb2\xc2\xb2",  # not ASCII
        b"Basic \xff\xfe",  # not UTF-8 either
        b"Basic " + base64.b64encode(b"operator:" + PASSWORD.encode())[:-1],  # bad padding
        basic(b"operator:\xff\xfe"),  # a password that is not UTF-8
        basic(PASSWORD.encode()),  # no user name separator
        b"Basic",
        b"Basic ",
        b"Bearer " + base64.b64encode(PASSWORD.encode()),
    ],
)
async def test_a_malformed_authorization_header_is_a_401(
    task_pool: ArqRedis, configure: Configure, header: bytes
) -> None:
    configure(DASHBOARD_PASSWORD=PASSWORD)
    async with serving(create_app(), auth=None) as client:
        answer = await client.get("/dashboard", headers={b"Authorization": header})

    assert answer.status_code == 401


# Form tokens that are not `<digits>.<64 hex digits>`: none may get further than a 403.
MALFORMED_TOKENS = [
    "².x",  # a digit to str.isdigit, not to int()
    "1².x",
    "\u0661\u0662\u0663.x",  # Arabic-Indic digits: int() takes them
    f"{int(time.time())}.{'é' * 64}",  # a signature that is not ASCII
    f"{int(time.time())}." + "\uff10" * 64,  # full-width digits
    f"{int(time.time())}.\x00",
    "9" * 5000 + ".x",  # past int()'s 4300-digit limit
    f"-{int(time.time())}.{'0' * 64}",
    f" {int(time.time())}.{'0' * 64}",
    "." * 64,
    "x" * 4000,
]


async def test_a_malformed_form_token_is_a_403(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    await add_dead_letter(task_pool, "letter-1", "hi", "boom")
    answers = {
        token: await dashboard.post("/dashboard/dead-letters/purge", data={"token": token})
        for token in MALFORMED_TOKENS
    }
    raw_bodies = [b"token=\xff\xfe", b"token=%ff%fe", b"token=%", b"=&&token", b"\x00"]
    for body in raw_bodies:
        answers[repr(body)] = await dashboard.post(
            "/dashboard/dead-letters/letter-1/requeue",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    assert {token[:20]: answer.status_code for token, answer in answers.items()} == {
        token[:20]: 403 for token in answers
    }
    assert await dead_letters.count(task_pool, get_settings().queue_name) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({b"Origin": b"http://[::1"}, 403),  # urlsplit: "Invalid IPv6 URL"
        ({b"Origin": b"http://testserver:99999999"}, 403),
        ({b"Origin": b"http://t\xc3\xa9stserver"}, 403),
        ({b"Origin": b"null"}, 403),
        ({b"Content-Type": b"multipart/form-data; boundary=x"}, 415),
        ({b"Content-Type": b"application/x-www-form-urlencoded; charset=\xff"}, 303),  # ignored
    ],
)
async def test_malformed_headers_on_a_form_post_are_refused(
    dashboard: httpx.AsyncClient, headers: dict[bytes, bytes], status: int
) -> None:
    token = security.form_token(get_settings())

    answer = await dashboard.post(
        "/dashboard/dead-letters/purge", content=f"token={token}&queue=default", headers=headers
    )

    assert answer.status_code == status


@pytest.mark.parametrize(
    "target",
    [
        "/dashboard?job=%C2%B2",
        "/dashboard?job=%ff%fe",
        "/dashboard?job=a%00b",
        "/dashboard?job=" + "a" * 5000,
        "/dashboard?job=%",
        "/dashboard?notice=%ff&job=x",
        "/dashboard?notice=requeued&job=%7B0%7D%7Bjob%7D",
        "/dashboard?notice=requeued&job=%7Bjob.__class__%7D",
        "/dashboard/live?x=%ff",
        "/dashboard/snapshot.json?%ff=%fe",
        "/dashboard/static/%ff",
        "/dashboard/static/..%2F..%2Froutes.py",
    ],
)
async def test_malformed_query_parameters_are_never_a_server_error(
    dashboard: httpx.AsyncClient, target: str
) -> None:
    answer = await dashboard.get(target)

    assert answer.status_code in (200, 404)


@pytest.mark.parametrize(
    "job_id", ["%C2%B2", "%ff", "a%00b", "a" * 257, "a%20b", "..%2F..%2Fsecret", "%3Cb%3E"]
)
async def test_a_malformed_job_id_in_an_action_is_a_4xx(
    dashboard: httpx.AsyncClient, job_id: str
) -> None:
    token = security.form_token(get_settings())

    answers = [
        await dashboard.post(f"/dashboard/jobs/{job_id}/abort", data={"token": token}),
        await dashboard.post(f"/dashboard/dead-letters/{job_id}/requeue", data={"token": token}),
    ]

    assert all(400 <= answer.status_code < 500 for answer in answers), answers


async def test_the_page_and_its_files_are_served_with_a_strict_policy(
    dashboard: httpx.AsyncClient,
) -> None:
    page = await dashboard.get("/dashboard")
    script = await dashboard.get("/dashboard/static/dashboard.js")
    style = await dashboard.get("/dashboard/static/dashboard.css")
    other = await dashboard.get("/dashboard/static/secrets.txt")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'name="viewport"' in page.text  # phone width
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    assert style.status_code == 200
    assert other.status_code == 404


async def test_the_snapshot_shows_workers_counts_chart_and_jobs(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    done = await enqueue_task("example_task", message="one")
    assert done is not None
    await task_pool.enqueue_job("fails_with_markup", "broken")
    await run_burst_worker(functions=FUNCTIONS, cron_jobs=[])
    await enqueue_task("example_task", message="later", _defer_by=60)

    snapshot = (await dashboard.get("/dashboard/snapshot.json")).json()

    assert set(snapshot) == {
        "queue",
        "taken_at",
        "counts",
        "workers",
        "chart",
        "span",
        "functions",
        "cron",
        "filters",
        "recent",
        "failures",
        "dead_letters",
    }
    assert snapshot["queue"] == get_settings().queue_name
    counts = snapshot["counts"]
    assert (counts["waiting"], counts["deferred"], counts["running"]) == (0, 1, 0)
    assert (counts["dead_letters"], counts["workers"]) == (1, 0)  # the burst worker has stopped
    assert counts["last_minute"] == {"complete": 1, "retried": 0, "failed": 1, "aborted": 0}
    assert len(snapshot["chart"]) == 90
    assert set(snapshot["chart"][-1]) == {
        "start",
        "complete",
        "retried",
        "failed",
        "aborted",
        "depth",
    }
    assert sum(bucket["complete"] for bucket in snapshot["chart"]) == 1
    [failure] = snapshot["failures"]
    assert failure["error"] == "PermanentError: broken"
    assert failure["outcome"] == "failed"
    assert {job["job_id"] for job in snapshot["recent"]} == {done.job_id, failure["job_id"]}
    recent = next(job for job in snapshot["recent"] if job["job_id"] == done.job_id)
    assert set(recent) == {
        "job_id",
        "function",
        "outcome",
        "try",
        "duration_seconds",
        "wait_seconds",
        "error",
        "finished_at",
        "worker",
    }
    assert (recent["function"], recent["outcome"], recent["try"]) == ("example_task", "complete", 1)
    [letter] = snapshot["dead_letters"]
    assert (letter["job_id"], letter["error"]) == (failure["job_id"], "broken")


async def test_the_snapshot_lists_live_workers_with_their_beat(
    dashboard: httpx.AsyncClient, running_worker: RunningWorker
) -> None:
    async with running_worker(cron_jobs=[]):
        for _ in range(100):  # until it has started
            snapshot = (await dashboard.get("/dashboard/snapshot.json")).json()
            if snapshot["workers"]:
                break
            await asyncio.sleep(0.05)

    [worker] = snapshot["workers"]
    assert set(worker) == {"host", "pid", "started_at", "beat_at", "running", "progress"}
    assert worker["beat_at"] is not None
    assert snapshot["counts"]["workers"] == 1


async def test_job_text_is_escaped_everywhere_it_is_shown(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    shown = await enqueue_task("example_task", message=SCRIPT)
    assert shown is not None
    await task_pool.enqueue_job("fails_with_markup", SCRIPT)
    await add_dead_letter(task_pool, "letter-1", SCRIPT, SCRIPT)
    await run_burst_worker(functions=FUNCTIONS, cron_jobs=[])

    page = (await dashboard.get("/dashboard", params={"job": shown.job_id})).text
    live = (await dashboard.get("/dashboard/live")).text

    # In the lookup: the argument and the result; in the live part: the dead letters' arguments
    # and errors, the recent failure's error.
    assert page.count(ESCAPED) >= 2
    assert live.count(ESCAPED) >= 3
    for html in (page, live):
        assert "<script>alert" not in html
    # The only script element is the dashboard's own.
    assert re.findall(r"<script[^>]*>", page) == [
        '<script src="/dashboard/static/dashboard.js" defer>'
    ]
    assert f"Processed: {SCRIPT}" in unescape(page)


async def test_a_form_post_without_a_good_token_is_refused(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    await add_dead_letter(task_pool, "letter-1", "hi", "boom")
    page = (await dashboard.get("/dashboard")).text
    token = token_in(page)
    settings = get_settings()
    forged = f"{int(time.time())}.{'0' * 64}"
    expired = security.form_token(settings, now=time.time() - security.TOKEN_SECONDS - 5)

    answers = [
        await dashboard.post("/dashboard/dead-letters/purge"),
        await dashboard.post("/dashboard/dead-letters/purge", data={"token": ""}),
        await dashboard.post("/dashboard/dead-letters/purge", data={"token": forged}),
        await dashboard.post("/dashboard/dead-letters/purge", data={"token": expired}),
        await dashboard.post("/dashboard/dead-letters/purge", data={"token": "not.a-token"}),
        await dashboard.post(
            "/dashboard/dead-letters/purge",
            data={"token": token},
            headers={"Origin": "https://attacker.example"},
        ),
        await dashboard.post(
            "/dashboard/dead-letters/purge",
            data={"token": token},
            headers={"Sec-Fetch-Site": "cross-site"},
        ),
        await dashboard.post("/dashboard/dead-letters/letter-1/requeue", data={"token": forged}),
    ]

    assert [answer.status_code for answer in answers] == [403] * 8
    assert answers[-1].headers["content-type"] == "application/problem+json"
    assert await dead_letters.count(task_pool, settings.queue_name) == 1


async def test_a_token_from_another_password_is_refused(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, configure: Configure
) -> None:
    await add_dead_letter(task_pool, "letter-1", "hi", "boom")
    configure(DASHBOARD_PASSWORD="an older password")
    old_token = security.form_token(get_settings())
    configure(DASHBOARD_PASSWORD=PASSWORD)

    answer = await dashboard.post("/dashboard/dead-letters/purge", data={"token": old_token})

    assert answer.status_code == 403


async def test_purge_deletes_every_dead_letter(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    for number in range(3):
        await add_dead_letter(task_pool, f"letter-{number}", "hi", "boom")
    action, fields = form_in((await dashboard.get("/dashboard")).text, "/purge")

    answer = await dashboard.post(action, data=fields, headers={"Origin": "http://testserver"})
    page = await dashboard.get(answer.headers["location"])

    assert fields == {"token": fields["token"], "queue": "default"}  # the form names its queue
    assert (answer.status_code, answer.headers["location"]) == (303, "/dashboard?notice=purged")
    assert await dead_letters.count(task_pool, get_settings().queue_name) == 0
    assert "Dead letters of queue default purged." in page.text


async def test_a_purge_that_names_no_queue_of_the_project_purges_nothing(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    await add_dead_letter(task_pool, "letter-1", "hi", "boom")
    token = token_in((await dashboard.get("/dashboard")).text)

    answers = [
        await dashboard.post("/dashboard/dead-letters/purge", data={"token": token}),
        await dashboard.post("/dashboard/dead-letters/purge", data={"token": token, "queue": ""}),
        await dashboard.post(
            "/dashboard/dead-letters/purge", data={"token": token, "queue": "bulk"}
        ),
    ]
    page = await dashboard.get(answers[0].headers["location"])

    assert [redirect(answer) for answer in answers] == [
        (303, "/dashboard", {"notice": "not-purged"})
    ] * 3
    assert "Nothing purged" in page.text
    assert await dead_letters.count(task_pool, get_settings().queue_name) == 1


async def test_requeue_puts_the_dead_letter_back_on_the_queue(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    letter_id = full_id("letter-1")  # a dead letter keeps its job's id
    await add_dead_letter(task_pool, letter_id, "again", "boom")
    listed = (await dashboard.get("/dashboard")).text
    token = token_in(listed)
    # The page's own form, whose action percent-encodes the id.
    [action] = re.findall(r'<form method="post" action="([^"]+/requeue)"', listed)

    answer = await dashboard.post(action, data={"token": token})
    again = await dashboard.post(action, data={"token": token})
    page = await dashboard.get(answer.headers["location"])

    status, path, query = redirect(answer)
    assert (status, path, sorted(query)) == (303, "/dashboard", ["job", "notice"])
    assert query["notice"] == "requeued"
    new_id = query["job"]
    assert queue_of(new_id) == get_settings().queue_name
    assert re.fullmatch(r"[0-9a-f]{32}", bare_job_id(new_id))  # a new job, not the letter's
    new_job = await get_job(new_id)
    assert await new_job.status() == "queued"
    assert (await new_job.info()).kwargs == {"message": "again"}  # type: ignore[union-attr]
    # It says where it came from, in the API as on the page.
    assert (await dashboard.get(f"/jobs/{quote(new_id, safe=':')}")).json()[
        "retried_from"
    ] == letter_id
    assert await dead_letters.count(task_pool, get_settings().queue_name) == 0
    assert "requeued" in page.text
    assert new_id in page.text
    assert redirect(again) == (303, "/dashboard", {"notice": "no-dead-letter", "job": letter_id})


async def test_a_dead_letter_that_cannot_be_requeued_says_why_instead_of_a_button(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    now = datetime.now(UTC)
    letter = dead_letters.DeadLetter(
        "letter-2", "send_invoice", [7], {}, "FunctionNotFound", "not here", 1, now, now
    )
    await dead_letters.add(task_pool, get_settings().queue_name, letter, limit=1000)
    page = (await dashboard.get("/dashboard")).text

    assert "Cannot requeue: no job named &#39;send_invoice&#39; is registered" in page
    assert "/dead-letters/letter-2/requeue" not in page
    answer = await dashboard.post(
        "/dashboard/dead-letters/letter-2/requeue", data={"token": token_in(page)}
    )
    assert answer.headers["location"] == "/dashboard?notice=not-requeued&job=letter-2"
    assert await dead_letters.count(task_pool, get_settings().queue_name) == 1


async def test_a_job_aborted_before_it_started_shows_it_never_started(
    dashboard: httpx.AsyncClient,
) -> None:
    queued = await enqueue_task("example_task", message="later", _defer_by=60)
    assert queued is not None
    assert await queued.abort()
    page = (await dashboard.get("/dashboard", params={"job": queued.job_id})).text

    assert "(never started)" in page
    assert "(try" not in page


async def test_abort_removes_a_queued_job(dashboard: httpx.AsyncClient) -> None:
    queued = await enqueue_task("example_task", message="later", _defer_by=60)
    assert queued is not None
    page = (await dashboard.get("/dashboard", params={"job": queued.job_id})).text
    assert "Abort" in page
    assert "deferred" in page

    # The page's own form, whose action percent-encodes the id.
    [action] = re.findall(r'<form method="post" action="([^"]+/abort)"', page)
    answer = await dashboard.post(action, data={"token": token_in(page)})
    again = await dashboard.post(action, data={"token": token_in(page)})

    assert redirect(answer) == (303, "/dashboard", {"notice": "aborted", "job": queued.job_id})
    assert await queued.status() == "aborted"
    assert redirect(again) == (303, "/dashboard", {"notice": "finished", "job": queued.job_id})


async def test_looking_up_a_bad_or_unknown_id_says_so(dashboard: httpx.AsyncClient) -> None:
    bad = await dashboard.get("/dashboard", params={"job": "no spaces <b>"})
    unknown = await dashboard.get("/dashboard", params={"job": "never-queued"})
    made_up = await dashboard.get("/dashboard", params={"notice": "<b>anything</b>"})

    assert "Not a job id" in bad.text
    assert "<b>" not in bad.text
    assert "No job <code>never-queued</code>" in unknown.text
    assert "anything" not in made_up.text  # only the notices the dashboard knows are shown


async def test_the_live_part_counts_what_workers_recorded(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    for number in range(5):
        await enqueue_task("example_task", message=str(number))
    await run_burst_worker(cron_jobs=[])

    live = (await dashboard.get("/dashboard/live")).text

    assert re.search(r'<dt>Done, last 60 s</dt><dd id="count-done">5</dd>', live)
    assert live.count('class="complete"') >= 1  # a bar in the chart
    assert len(await activity.recent_jobs(task_pool, get_settings().queue_name)) == 5


async def test_a_running_job_s_progress_shows_as_a_bar_beside_it_and_in_its_view(
    dashboard: httpx.AsyncClient, running_worker: RunningWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import progress_jobs

    functions = importlib.reload(progress_jobs).WorkerSettings["functions"]
    async with running_worker(functions=functions, cron_jobs=[]):
        job = await enqueue_task("steps_then_waits", 3, 5.0)
        assert job is not None
        live = ""
        for _ in range(100):  # until the worker lists it as running, with its last report
            live = (await dashboard.get("/dashboard/live")).text
            if "3 of 3" in live:
                break
            await asyncio.sleep(0.05)
        page = (await dashboard.get("/dashboard", params={"job": job.job_id})).text
        running = (await dashboard.get("/dashboard/snapshot.json")).json()["workers"]
        await job.abort(timeout=5)

    bar = '<progress value="3" max="3"></progress> 3 of 3 (100%) · <span class="note">step 3</span>'
    assert bar in live
    [details] = re.findall(r'<dd id="job-progress">(.*?)</dd>', page)
    assert bar in details
    [report] = running[0]["progress"].values()
    assert list(running[0]["progress"]) == [job.job_id]
    assert {k: report[k] for k in ("done", "total", "note", "try")} == {
        "done": 3,
        "total": 3,
        "note": "step 3",
        "try": 1,
    }


def bucket(
    start: datetime, complete: int = 0, failed: int = 0, depth: int | None = None
) -> snapshot.ChartBucket:
    return snapshot.ChartBucket(
        start=start, complete=complete, retried=0, failed=failed, aborted=0, depth=depth
    )


def test_the_chart_has_a_time_axis_and_a_scale_for_each_count() -> None:
    start = datetime(2026, 12, 6, 11, 59, 10, tzinfo=UTC)  # 90 buckets of 10 s: to 12:14:10
    buckets = [bucket(start + timedelta(seconds=10 * index)) for index in range(90)]
    buckets[30] = bucket(buckets[30].start, complete=12, failed=2, depth=30)
    buckets[31] = bucket(buckets[31].start, complete=3, depth=7)

    chart = snapshot.chart(buckets)

    assert [tick.label for tick in chart.time_ticks] == [
        "12:00",
        "12:03",
        "12:06",
        "12:09",
        "12:12",
    ]
    first = chart.time_ticks[0]
    assert (first.percent, first.user) == (5.56, 50.0)  # 50 s after the chart's start
    # Round steps up to at least the largest count: 14 tries, 30 waiting.
    assert [tick.label for tick in chart.tries_ticks] == ["0", "5", "10", "15"]
    assert [tick.label for tick in chart.depth_ticks] == ["0", "10", "20", "30"]
    assert [tick.percent for tick in chart.tries_ticks] == [100, 66.67, 33.33, 0]
    tallest, _ = chart.bars
    assert tallest.others_y == 13.33  # 14 on a scale to 15: 200 * (1 - 14 / 15)
    assert tallest.title == "12:04:10-12:04:20 UTC: 12 completed, 2 retried, failed or aborted"
    assert chart.depth_points.split()[0] == "305.0,0.0"  # 30 waiting: the top of its scale


@pytest.mark.parametrize(
    ("most", "marks"),
    [(0, [0, 1]), (3, [0, 1, 2, 3]), (6, [0, 2, 4, 6]), (411, [0, 100, 200, 300, 400, 500])],
)
def test_a_count_axis_has_round_steps(most: int, marks: list[int]) -> None:
    assert snapshot.count_axis(most) == marks


async def test_the_live_chart_is_labelled_in_plain_words(
    dashboard: httpx.AsyncClient, run_burst_worker: RunWorker
) -> None:
    for number in range(3):
        await enqueue_task("example_task", message=str(number))
    await run_burst_worker(cron_jobs=[])

    live = (await dashboard.get("/dashboard/live")).text
    chart = live[live.index('<section id="chart">') : live.index('<section id="workers">')]

    def axis(name: str) -> list[str]:
        [labels] = re.findall(rf'<svg class="{name}"[^>]*>(.*?)</svg>', chart, re.S)
        return re.findall(r"<text[^>]*>([^<]*)</text>", labels)

    assert "Jobs finished per 10 s" in chart
    assert "Jobs waiting" in chart
    assert "times in UTC" in chart
    assert not re.search(r"top \d", chart)  # "per 10 s, top 14", "waiting (top 0)": gone
    assert axis("y-axis tries") == ["0", "1", "2", "3"]  # 3 jobs, all in one 10 s
    assert axis("y-axis depth") == ["0", "1"]
    times = axis("x-axis")
    assert len(times) == 5
    assert all(re.fullmatch(r"\d\d:\d\d", label) for label in times)
    assert all(int(label[-2:]) % 3 == 0 for label in times)  # every 3 minutes of the clock
    assert "<title>" in chart  # each bar says its 10 s and its counts on hover


async def test_tables_show_job_ids_short_with_the_whole_id_on_hover_and_in_the_link(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    done = await enqueue_task("example_task", message="one")
    assert done is not None
    await task_pool.enqueue_job("fails_with_markup", "broken")
    letter_id = full_id("a-dead-letter-with-a-long-id-0123456789")
    await add_dead_letter(task_pool, letter_id, "hi", "boom")
    await run_burst_worker(functions=FUNCTIONS, cron_jobs=[])

    live = (await dashboard.get("/dashboard/live")).text
    ids = re.findall(
        r'<a href="/dashboard\?job=([^"]+)"><code class="id" title="([^"]+)">([^<]+)</code></a>',
        live,
    )

    assert bare_job_id(done.job_id) in {shown for _, _, shown in ids}
    assert bare_job_id(letter_id) in {shown for _, _, shown in ids}
    # The link looks the whole id up (percent-encoded: braces and colons are not URL
    # characters), the title shows it on hover; the text is the id without its queue's key
    # (the page is the queue's), and the style sheet (code.id) shows its first characters.
    assert all("{" not in link and "}" not in link for link, _, _ in ids)
    assert all(unquote(link) == title for link, title, _ in ids)
    assert all(bare_job_id(title) == shown for _, title, shown in ids)
    assert len(ids) == len(re.findall(r"\?job=", live))  # every id in a table
    style = (await dashboard.get("/dashboard/static/dashboard.css")).text
    assert re.search(r"code\.id \{[^}]*max-width: 16ch;[^}]*text-overflow: ellipsis", style)


async def test_long_error_text_is_clipped_with_the_whole_text_on_hover(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    error = "the payment service said: " + "no " * 1500
    await add_dead_letter(task_pool, "letter-1", "x" * 1500, error)

    live = (await dashboard.get("/dashboard/live")).text
    row = live[live.index('<tr class="dead-letter">') :]
    row = row[: row.index("</tr>")]

    assert f'<div class="clip" title="PermanentError: {error}">' in row
    assert re.search(r'<code class="data clip" title="\[\] \{&#34;message&#34;: &#34;x{1500}', row)
    style = (await dashboard.get("/dashboard/static/dashboard.css")).text
    assert re.search(r"\.clip \{[^}]*-webkit-line-clamp: 3;[^}]*overflow: hidden", style)


async def test_a_project_with_one_queue_shows_no_queue_picker(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    await add_dead_letter(task_pool, full_id("letter-1"), "hi", "boom")

    page = (await dashboard.get("/dashboard")).text
    by_name = await dashboard.get("/dashboard", params={"queue": "default"})

    assert 'class="queues"' not in page
    assert 'id="queue-name"' not in page
    assert f"queue <code>{get_settings().queue_name}</code>" in page
    assert 'data-src="/dashboard/live"' in page  # the live part's URL as it always was
    assert '<a href="/dashboard/snapshot.json">' in page
    assert '<input type="hidden" name="queue"' not in page.split('<div id="live"')[0]
    assert by_name.status_code == 200
    assert by_name.text.count("letter-1") == page.count("letter-1") > 0


# A project with several queues, as docs/queues.md's example.
QUEUES = ["critical", "default", "bulk"]


@pytest.fixture
async def queues_dashboard(
    task_pool: ArqRedis, configure: Configure
) -> AsyncIterator[httpx.AsyncClient]:
    """`dashboard` in a project with QUEUES=critical,default,bulk."""
    configure(DASHBOARD_PASSWORD=PASSWORD, QUEUES=",".join(QUEUES))
    async with serving(create_app(), auth=("operator", PASSWORD)) as client:
        yield client


def key(queue: str) -> str:
    return get_settings().queue_keys[queue]


def tile(page: str, name: str) -> int:
    match = re.search(rf'<dd id="count-{name}">(\d+)</dd>', page)
    assert match is not None, name
    return int(match.group(1))


async def test_each_queue_s_page_shows_its_own_counts_jobs_and_dead_letters(
    queues_dashboard: httpx.AsyncClient, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    for number in range(3):  # run by the worker: bulk's figures and chart
        await task_pool.enqueue_job("example_task", message=f"bulk {number}", _queue_name="bulk")
    ran_critical = await task_pool.enqueue_job("example_task", message="c", _queue_name="critical")
    assert ran_critical is not None
    await run_burst_worker(cron_jobs=[], queue_names=[key(queue) for queue in QUEUES])
    for _ in range(2):  # waiting
        await task_pool.enqueue_job("example_task", message="x", _queue_name="bulk")
    waits = await task_pool.enqueue_job("example_task", message="x", _queue_name="critical")
    assert waits is not None
    for queue, letters in {"critical": 1, "bulk": 2}.items():
        for number in range(letters):
            letter_id = namespaced_job_id(key(queue), f"{queue}-letter-{number}")
            await add_dead_letter(task_pool, letter_id, "hi", "boom", queue=queue)

    pages = {queue: await queues_dashboard.get(f"/dashboard?queue={queue}") for queue in QUEUES}
    lives = {
        queue: (await queues_dashboard.get(f"/dashboard/live?queue={queue}")).text
        for queue in QUEUES
    }
    snapshots = {
        queue: (await queues_dashboard.get(f"/dashboard/snapshot.json?queue={queue}")).json()
        for queue in QUEUES
    }
    plain = (await queues_dashboard.get("/dashboard")).text

    assert {queue: page.status_code for queue, page in pages.items()} == dict.fromkeys(QUEUES, 200)
    expected = {"critical": (1, 1, 1), "default": (0, 0, 0), "bulk": (2, 2, 3)}
    for queue, (waiting, letters, done) in expected.items():
        page, live, data = pages[queue].text, lives[queue], snapshots[queue]
        counts = data["counts"]
        assert data["queue"] == key(queue)
        assert (counts["waiting"], counts["dead_letters"]) == (waiting, letters), queue
        assert counts["last_minute"]["complete"] == done, queue
        assert sum(bucket["complete"] for bucket in data["chart"]) == done, queue
        assert len(data["recent"]) == done, queue
        assert len(data["dead_letters"]) == letters, queue
        assert {queue_of(job["job_id"]) for job in data["recent"]} <= {key(queue)}
        for html in (page, live):
            assert (tile(html, "waiting"), tile(html, "dead-letters")) == (waiting, letters)
            assert tile(html, "done") == done, queue
            assert html.count('<tr class="dead-letter">') == letters
            assert html.count('<tr class="finished">') == done  # none failed: recent jobs only
            for other in QUEUES:  # only its own dead letters
                assert (f"{other}-letter-" in html) == (other == queue and letters > 0)
        # The page says which queue it shows, links to the others, and refreshes this one.
        assert f'<strong id="queue-name">{queue}</strong> <code>{key(queue)}</code>' in page
        assert re.search(rf"<title>[^<]*: {queue} · queue dashboard</title>", page)
        picker = re.findall(
            r'<a href="([^"]*)"( aria-current="page")?>([^<]+)</a>', page.split("</nav>")[0]
        )
        assert [(unescape(url), bool(current), name) for url, current, name in picker] == [
            ("/dashboard" if name == "default" else f"/dashboard?queue={name}", name == queue, name)
            for name in QUEUES
        ]
        suffix = "" if queue == "default" else f"?queue={queue}"
        assert f'data-src="/dashboard/live{suffix}"' in page
        assert f'<a href="/dashboard/snapshot.json{suffix}">' in live
        # A job's link looks it up on this queue's page.
        links = re.findall(r'<a href="([^"]*)"><code class="id"', live)
        assert len(links) == letters + done
        assert all(
            unescape(link).startswith(f"/dashboard{suffix}{'&' if suffix else '?'}job=")
            for link in links
        )
    assert plain.count('<tr class="dead-letter">') == 0  # no ?queue=: the default queue
    assert '<strong id="queue-name">default</strong>' in plain


async def test_purging_one_queue_leaves_the_others_dead_letters(
    queues_dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    for queue in QUEUES:
        for number in range(2):
            letter_id = namespaced_job_id(key(queue), f"letter-{number}")
            await add_dead_letter(task_pool, letter_id, "hi", "boom", queue=queue)
    page = (await queues_dashboard.get("/dashboard", params={"queue": "bulk"})).text
    action, fields = form_in(page, "/purge")

    answer = await queues_dashboard.post(action, data=fields)
    after = await queues_dashboard.get(answer.headers["location"])
    # The same token with another queue's name: the form says which queue goes, nothing else.
    critical = await queues_dashboard.post(action, data={**fields, "queue": "critical"})

    assert fields["queue"] == "bulk"
    assert "dead letters of queue bulk?" in page  # the browser's confirmation names it too
    assert redirect(answer) == (303, "/dashboard", {"queue": "bulk", "notice": "purged"})
    assert "Dead letters of queue bulk purged." in after.text
    assert '<strong id="queue-name">bulk</strong>' in after.text
    assert tile(after.text, "dead-letters") == 0
    assert redirect(critical) == (303, "/dashboard", {"queue": "critical", "notice": "purged"})
    counts = {queue: await dead_letters.count(task_pool, key(queue)) for queue in QUEUES}
    assert counts == {"critical": 0, "default": 2, "bulk": 0}


@pytest.mark.parametrize("queue", ["nope", "Bulk", "", "%ff", "{x}", "a" * 5000, "default,bulk"])
async def test_an_unknown_queue_is_a_404_never_a_500(
    queues_dashboard: httpx.AsyncClient, queue: str
) -> None:
    page = await queues_dashboard.get(f"/dashboard?queue={queue}")
    live = await queues_dashboard.get(f"/dashboard/live?queue={queue}")
    data = await queues_dashboard.get(f"/dashboard/snapshot.json?queue={queue}")

    assert (page.status_code, live.status_code, data.status_code) == (404, 404, 404)
    # The page says so, as it says anything, and shows the default queue and the picker.
    [notice] = re.findall(r'<p class="notice" role="alert">([^<]*)</p>', page.text)
    assert unescape(notice).startswith("No queue ")
    assert "(QUEUES: critical, default, bulk): showing default instead." in unescape(notice)
    assert '<strong id="queue-name">default</strong>' in page.text
    assert 'class="queues"' in page.text
    assert "QUEUES lists critical, default, bulk" in data.json()["detail"]
    assert "QUEUES lists critical, default, bulk" in live.json()["detail"]


async def test_the_lookup_finds_any_queue_s_job_from_any_queue_s_page(
    queues_dashboard: httpx.AsyncClient,
) -> None:
    bulk_job = await enqueue_task("example_task", message="big", _queue_name="bulk", _defer_by=60)
    assert bulk_job is not None

    on_default = (await queues_dashboard.get("/dashboard", params={"job": bulk_job.job_id})).text
    on_critical = await queues_dashboard.get(
        "/dashboard", params={"queue": "critical", "job": bulk_job.job_id}
    )
    bare = (
        await queues_dashboard.get("/dashboard", params={"job": bare_job_id(bulk_job.job_id)})
    ).text

    for html in (on_default, on_critical.text):
        assert 'id="job-details"' in html
        assert '<dt>Queue</dt><dd><a href="/dashboard?queue=bulk">bulk</a></dd>' in html
        assert "deferred" in html
    # The page stays on its queue: the lookup form carries it.
    assert '<strong id="queue-name">critical</strong>' in on_critical.text
    assert '<input type="hidden" name="queue" value="critical">' in on_critical.text
    lookup_form, filter_form = re.findall(r'<form method="get"[^>]*>(.*?)</form>', on_default, re.S)
    assert 'name="queue"' not in lookup_form + filter_form  # the default queue's page needs none
    # A bare id is looked for on every queue.
    assert '<dt>Queue</dt><dd><a href="/dashboard?queue=bulk">bulk</a></dd>' in bare


async def test_actions_from_a_queue_s_page_come_back_to_it(
    queues_dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    letter_id = namespaced_job_id(key("bulk"), "letter-1")
    await add_dead_letter(task_pool, letter_id, "again", "boom", queue="bulk")
    listed = (await queues_dashboard.get("/dashboard", params={"queue": "bulk"})).text
    action, fields = form_in(listed, "/requeue")

    requeued = await queues_dashboard.post(action, data=fields)
    _, _, query = redirect(requeued)
    new_id = query["job"]
    shown = (await queues_dashboard.get(requeued.headers["location"])).text
    abort_action, abort_fields = form_in(shown, "/abort")
    aborted = await queues_dashboard.post(abort_action, data=abort_fields)

    assert fields["queue"] == "bulk"
    assert redirect(requeued) == (
        303,
        "/dashboard",
        {"queue": "bulk", "notice": "requeued", "job": new_id},
    )
    assert queue_of(new_id) == key("bulk")  # back on its own queue
    assert await dead_letters.count(task_pool, key("bulk")) == 0
    assert '<strong id="queue-name">bulk</strong>' in shown
    assert abort_fields["queue"] == "bulk"
    assert redirect(aborted) == (
        303,
        "/dashboard",
        {"queue": "bulk", "notice": "aborted", "job": new_id},
    )
    assert await (await get_job(new_id)).status() == "aborted"


def finished(
    job_id: str,
    ago: float,
    function: str = "example_task",
    outcome: snapshot.Outcome = "complete",
    duration: float = 0.1,
    wait: float | None = 0.01,
) -> activity.FinishedJob:
    """A try that ended `ago` seconds before now, as a worker records it."""
    return activity.FinishedJob(
        job_id=full_id(job_id),
        function=function,
        outcome=outcome,
        job_try=1,
        duration=duration,
        error=None if outcome == "complete" else "PermanentError: broken",
        finished_at=time.time() - ago,
        worker="host:1",
        wait=wait,
    )


async def record(pool: ArqRedis, *tries: activity.FinishedJob) -> None:
    """Write `tries` into the queue's recent list (and the failures' list), as workers do."""
    queue_name = get_settings().queue_name
    await pool.lpush(activity.recent_key(queue_name), *(each.to_json() for each in tries))  # type: ignore[misc]
    failures = [each.to_json() for each in tries if each.outcome != "complete"]
    if failures:
        await pool.lpush(activity.failures_key(queue_name), *failures)  # type: ignore[misc]


def forms_in(page: str, action_ends: str) -> list[tuple[str, dict[str, str]]]:
    """Each post form of the page whose action ends with `action_ends`, as `form_in` reads one."""
    pattern = (
        r'<form method="post" action="([^"]*' + re.escape(action_ends) + r')"[^>]*>(.*?)</form>'
    )
    return [
        (
            unescape(action),
            {
                name: unescape(value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)">', body
                )
            },
        )
        for action, body in re.findall(pattern, page, re.S)
    ]


async def test_done_and_failed_count_the_60_seconds_to_now(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    await record(
        task_pool,
        finished("old", ago=65),  # a minute and more: not counted
        finished("a", ago=55),
        finished("b", ago=30, outcome="failed"),
        finished("c", ago=1),
    )

    data = (await dashboard.get("/dashboard/snapshot.json")).json()
    live = (await dashboard.get("/dashboard/live")).text

    counts = data["counts"]
    assert counts["last_minute"] == {"complete": 2, "retried": 0, "failed": 1, "aborted": 0}
    since = datetime.fromisoformat(counts["last_minute_since"])
    taken_at = datetime.fromisoformat(data["taken_at"])
    assert taken_at - since == timedelta(seconds=60)
    assert (tile(live, "done"), tile(live, "failed")) == (2, 1)


def test_the_figures_are_percentiles_of_the_tries_in_the_window() -> None:
    tries = [
        finished(f"j{number}", ago=number, duration=number, wait=number / 10)
        for number in range(1, 21)
    ]
    tries.append(finished("boom", ago=1, function="other", outcome="failed", wait=None))
    tries.append(finished("too-old", ago=20 * 60, duration=1000))

    span, inside = activity.window_of(tries, time.time(), activity.WINDOW_SECONDS, [])
    stats = activity.function_stats(inside)

    assert (span.jobs, span.whole) == (21, True)
    assert [each.function for each in stats] == ["example_task", "other"]
    example, other = stats
    assert (example.runs, example.failed, example.duration_p50, example.duration_p95) == (
        20,
        0,
        10,
        19,
    )
    assert example.wait_p95 == pytest.approx(1.9)
    assert (other.runs, other.failed, other.wait_p95) == (1, 1, None)


async def test_per_function_figures_come_from_what_the_workers_recorded(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    for number in range(3):
        await enqueue_task("example_task", message=str(number))
    await task_pool.enqueue_job("fails_with_markup", "broken")
    await run_burst_worker(functions=FUNCTIONS, cron_jobs=[])

    data = (await dashboard.get("/dashboard/snapshot.json")).json()
    live = (await dashboard.get("/dashboard/live")).text

    figures = {each["function"]: each for each in data["functions"]}
    assert set(figures) == {"example_task", "fails_with_markup"}
    assert (figures["example_task"]["runs"], figures["example_task"]["failed"]) == (3, 0)
    assert (figures["fails_with_markup"]["runs"], figures["fails_with_markup"]["failed"]) == (1, 1)
    for each in figures.values():
        assert 0 <= each["duration_p50_seconds"] <= each["duration_p95_seconds"]
        assert each["wait_p95_seconds"] >= 0  # None would be a TypeError
    assert all(job["wait_seconds"] is not None for job in data["recent"])
    assert (data["span"]["jobs"], data["span"]["whole"]) == (4, True)
    assert live.count('<tr class="function">') == 2
    assert 'id="span-note"' not in live


async def test_a_full_record_says_how_far_back_its_figures_reach(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity, "RECENT_LIMIT", 5)
    await record(task_pool, *(finished(f"j{number}", ago=number * 10) for number in range(5)))

    data = (await dashboard.get("/dashboard/snapshot.json")).json()
    live = (await dashboard.get("/dashboard/live")).text

    assert (data["span"]["jobs"], data["span"]["whole"]) == (5, False)
    assert "From the last 5 tries only, since" in live


async def test_the_recent_tables_filter_by_function_and_outcome(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    await record(
        task_pool,
        finished("done", ago=3),
        finished("broken", ago=2, outcome="failed"),
        finished("other", ago=1, function="other_job"),
    )
    wanted = {"function": "example_task", "outcome": "failed"}

    data = (await dashboard.get("/dashboard/snapshot.json", params=wanted)).json()
    live = (await dashboard.get("/dashboard/live", params=wanted)).text
    page = (await dashboard.get("/dashboard", params=wanted)).text
    unfiltered = (await dashboard.get("/dashboard/live", params={"outcome": "complete"})).text
    bad = await dashboard.get("/dashboard/snapshot.json", params={"outcome": "exploded"})
    bad_page = await dashboard.get("/dashboard", params={"outcome": "exploded"})

    assert [job["job_id"] for job in data["recent"]] == [full_id("broken")]
    assert [job["job_id"] for job in data["failures"]] == [full_id("broken")]
    assert data["filters"]["function"] == "example_task"
    assert "other_job" in data["filters"]["functions"]
    assert live.count('<tr class="finished">') == 2  # the one try, in both tables
    assert unfiltered.count('<tr class="finished">') == 2  # done and other, no failures
    # The page refreshes its live part with the same filter, and its form shows it.
    assert 'data-src="/dashboard/live?function=example_task&amp;outcome=failed"' in page
    assert "<option selected>failed</option>" in page
    assert bad.status_code == 422
    # Unfiltered: three recent tries, one of them in the failures too.
    assert (bad_page.status_code, bad_page.text.count('<tr class="finished">')) == (200, 4)


@pytest.fixture
def failing_job_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fails_with_markup` declared as a job, as `@job` would: what a retry queues again."""
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    registry.register(registry.JobSpec("fails_with_markup", fails_with_markup))


async def test_retry_queues_a_failed_job_again_as_a_new_job_that_says_where_it_came_from(
    dashboard: httpx.AsyncClient,
    run_burst_worker: RunWorker,
    failing_job_declared: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed = await enqueue_task("fails_with_markup", "broken")
    done = await enqueue_task("example_task", message="fine")
    assert failed is not None
    assert done is not None
    await run_burst_worker(functions=FUNCTIONS, cron_jobs=[])
    live = (await dashboard.get("/dashboard/live")).text
    # Both tables list the failure with a Retry button; the completed job has none.
    forms = forms_in(live, "/retry")
    assert {unquote(action) for action, _ in forms} == {f"/dashboard/jobs/{failed.job_id}/retry"}
    action, fields = forms[0]

    with caplog.at_level("INFO", logger="{{ cookiecutter.package_name }}.api.dashboard.routes"):
        answer = await dashboard.post(action, data=fields)
        refused = await dashboard.post(
            f"/dashboard/jobs/{quote(done.job_id, safe=':')}/retry", data=fields
        )
        unknown = await dashboard.post("/dashboard/jobs/never-queued/retry", data=fields)

    status, _, query = redirect(answer)
    assert (status, query["notice"]) == (303, "retried")
    new_id = query["job"]
    assert new_id != failed.job_id
    assert queue_of(new_id) == queue_of(failed.job_id)
    again = await get_job(new_id)
    assert await again.status() == "queued"
    assert list((await again.info()).args) == ["broken"]  # type: ignore[union-attr]
    assert (await dashboard.get(f"/jobs/{quote(new_id, safe=':')}")).json()[
        "retried_from"
    ] == failed.job_id
    shown = (await dashboard.get(answer.headers["location"])).text
    [origin] = re.findall(r'<dd id="job-retried-from">(.*?)</dd>', shown)
    assert failed.job_id in origin
    assert redirect(refused)[2]["notice"] == "not-retried"
    assert redirect(unknown)[2]["notice"] == "no-failed-job"
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert f"dashboard retry of {failed.job_id} by operator@127.0.0.1: queued as {new_id}" in lines
    assert any(line.startswith(f"dashboard retry of {done.job_id} by operator@") for line in lines)


async def test_a_running_job_is_aborted_from_the_workers_table(
    dashboard: httpx.AsyncClient, running_worker: RunningWorker, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_worker(cron_jobs=[]):
        job = await enqueue_task("example_task", message="slow", seconds=30)
        assert job is not None
        forms: list[tuple[str, dict[str, str]]] = []
        for _ in range(100):  # until the worker lists it as running
            forms = forms_in((await dashboard.get("/dashboard/live")).text, "/abort")
            if forms:
                break
            await asyncio.sleep(0.05)
        [(action, fields)] = forms
        with caplog.at_level("INFO", logger="{{ cookiecutter.package_name }}.api.dashboard.routes"):
            answer = await dashboard.post(action, data=fields)
        for _ in range(100):
            if await job.status() == "aborted":
                break
            await asyncio.sleep(0.05)

    assert redirect(answer)[2]["notice"] in ("aborted", "abort-requested")
    assert await job.status() == "aborted"
    assert any(
        r.getMessage().startswith(f"dashboard abort of {job.job_id} by operator@")
        for r in caplog.records
    )


def cron_entry(snapshot_json: dict[str, Any]) -> dict[str, Any]:
    """The project's own cron job's row (a project may declare more cron jobs of its own)."""
    entries: list[dict[str, Any]] = snapshot_json["cron"]
    [entry] = [each for each in entries if each["name"] == "cron:report_queue_depth"]
    return entry


async def test_the_cron_table_shows_each_cron_job_s_next_and_last_tick(
    dashboard: httpx.AsyncClient, running_worker: RunningWorker
) -> None:
    before = (await dashboard.get("/dashboard/snapshot.json")).json()
    # A real worker ticks the project's cron job every second (the page shows its declared
    # schedule): the tick is recorded under the job's name as arq runs it, `cron:<function>`.
    every_second = arq_cron_job(report_queue_depth, second=set(range(60)))
    async with running_worker(cron_jobs=[every_second]):
        for _ in range(100):
            after = (await dashboard.get("/dashboard/snapshot.json")).json()
            if cron_entry(after)["last_run"] is not None:
                break
            await asyncio.sleep(0.1)
    live = (await dashboard.get("/dashboard/live")).text

    entry = cron_entry(before)
    assert (entry["name"], entry["schedule"], entry["last_run"]) == (
        "cron:report_queue_depth",
        "second=0",
        None,
    )
    next_run = datetime.fromisoformat(entry["next_run"])
    taken_at = datetime.fromisoformat(before["taken_at"])
    assert next_run.second == 0  # @cron_job(second=0): every minute, on the minute
    assert timedelta(0) < next_run - taken_at <= timedelta(seconds=60)
    ticked = cron_entry(after)
    assert ticked["last_outcome"] == "complete"
    assert ticked["last_run"] is not None
    assert '<tr class="cron">' in live


async def test_pause_and_resume_the_queue_from_the_page(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    paused_key = get_settings().queue_name + ":paused"
    action, fields = form_in((await dashboard.get("/dashboard/live")).text, "/queues/pause")
    assert fields == {"token": fields["token"], "queue": "default"}

    with caplog.at_level("INFO", logger="{{ cookiecutter.package_name }}.api.dashboard.routes"):
        paused = await dashboard.post(action, data=fields)
        again = await dashboard.post(action, data=fields)
        live = (await dashboard.get("/dashboard/live")).text
        resume_action, resume_fields = form_in(live, "/queues/resume")
        resumed = await dashboard.post(resume_action, data=resume_fields)
        not_paused = await dashboard.post(resume_action, data=resume_fields)
        nowhere = await dashboard.post(action, data={**fields, "queue": "nowhere"})
        other = await dashboard.post("/dashboard/queues/drain", data=fields)

    assert [redirect(answer)[2]["notice"] for answer in (paused, again, resumed, not_paused)] == [
        "paused",
        "paused-already",
        "resumed",
        "not-paused",
    ]
    assert redirect(nowhere)[2]["notice"] == "no-queue"
    assert other.status_code == 404
    # While paused, the live part said so, by whom, with a Resume button instead of Pause.
    assert re.search(r'id="queue-paused">paused</span> by operator@127\.0\.0\.1 since', live)
    assert "/queues/pause" not in live
    assert not await task_pool.exists(paused_key)
    snapshot_json = (await dashboard.get("/dashboard/snapshot.json")).json()
    assert snapshot_json["counts"]["paused"] is None
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert "dashboard pause of queue default by operator@127.0.0.1: paused" in lines
    assert "dashboard resume of queue default by operator@127.0.0.1: resumed" in lines


async def test_pausing_needs_the_form_token(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    answer = await dashboard.post("/dashboard/queues/pause", data={"queue": "default"})

    assert answer.status_code == 403
    assert not await task_pool.exists(get_settings().queue_name + ":paused")


async def test_the_figures_say_when_they_come_from_a_sample(
    dashboard: httpx.AsyncClient, task_pool: ArqRedis
) -> None:
    recorder = activity.ActivityRecorder(task_pool, get_settings().queue_name)
    ended = time.time() - 20
    tries = activity.RECORDED_PER_WRITE + 300
    for number in range(tries):
        recorder.heard(
            job_events.JobFinished(
                f"busy-{number}", "example_task", 1, ended - 1, ended - 0.5, ended, "complete", None
            )
        )
    await recorder.write()

    live = (await dashboard.get("/dashboard/live")).text
    snapshot_json = (await dashboard.get("/dashboard/snapshot.json")).json()

    [note] = re.findall(r'<p class="empty bad" id="span-note">(.*?)</p>', live)
    assert note.startswith(f"From a sample of {activity.RECORDED_PER_WRITE} of the {tries} tries")
    assert (snapshot_json["span"]["sampled"], snapshot_json["span"]["ended"]) == (True, tries)
    assert snapshot_json["counts"]["last_minute"]["complete"] == tries
