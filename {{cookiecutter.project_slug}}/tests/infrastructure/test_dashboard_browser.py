# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The dashboard in a real browser: headless Chromium, driven by Selenium through chromedriver,
against a real uvicorn server and real worker processes.

Marked `browser`: `just test-browser` runs these, `just test` does not. They need Chromium and
its driver (Debian: `apt install chromium chromium-driver`); `CHROMIUM` and `CHROMEDRIVER` give
other paths. Selenium downloads nothing. The last test saves a screenshot of the page with jobs
flowing to `$DASHBOARD_SCREENSHOT` (else into its tmp folder); `DASHBOARD_FLOW_SECONDS` (12)
sets how long jobs flow first. docs/dashboard.png was made with:

    DASHBOARD_SCREENSHOT=docs/dashboard.png DASHBOARD_FLOW_SECONDS=150 just test-browser -k screenshot --timeout 300
"""

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from arq.connections import ArqRedis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.keys import bare_job_id
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings as ProjectSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import (
    Job,
    JobContext,
    PermanentError,
    enqueue_group,
    enqueue_task,
    job,
    report_progress,
)

from .conftest import WorkerProcesses
from .test_api_server import wait_until_serving

pytestmark = pytest.mark.browser

PASSWORD = "let me see the queue"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# Each wait for the page polls for up to this long: two refreshes and then some.
PAGE_WAIT_SECONDS = 15


async def takes_a_while(ctx: JobContext, seconds: float) -> float:
    """Sleeps `seconds` in ten steps, reporting each: the dashboard shows its progress."""
    for step in range(1, 11):
        await asyncio.sleep(seconds / 10)
        await report_progress(ctx, step, 10, note=f"step {step} of 10")
    return seconds


async def fails_now_and_then(ctx: JobContext, number: int) -> int:
    if number % 23 == 0:
        raise PermanentError(f"order {number} has no address")
    if number % 37 == 0:
        lines = ", ".join(f"line {line}: 1 x SKU-{number}-{line} at 9.99" for line in range(40))
        raise PermanentError(f"order {number} was refused by the warehouse: {lines}")
    if number % 9 == 0 and ctx["job_try"] == 1:
        raise TimeoutError(f"the payment service took too long for order {number}")
    return number


async def adds_up(ctx: JobContext, results: list[float]) -> float:
    """A group's callback: the sum of its members' results."""
    return sum(results)


# What the worker processes run: the project's jobs and the three above, no cron jobs.
WorkerSettings = {
    **vars(ProjectSettings),
    "functions": (
        *ProjectSettings.functions,
        arq_function(takes_a_while),
        arq_function(fails_now_and_then),
        arq_function(adds_up),
    ),
    "cron_jobs": (),
}
WORKER_SETTINGS = f"{__name__}.WorkerSettings"


@pytest.fixture
async def server(
    redis_server: LocalRedisServer, task_pool: ArqRedis, tmp_path: Path
) -> AsyncIterator[str]:
    """The app in a real uvicorn process with the dashboard on; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", f"{create_app.__module__}:create_app", "--factory"]
    environment = {**os.environ, "REDIS_URL": redis_server.url, "DASHBOARD_PASSWORD": PASSWORD}
    with (tmp_path / "uvicorn.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            *("--host", "127.0.0.1", "--port", str(port)),
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            await wait_until_serving(client, process)
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium, not logged in; `log_in(browser)` sends the password from then on."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).is_file(), f"{path} is missing: apt install chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: webdriver.Chrome, password: str = PASSWORD) -> None:
    """Send HTTP Basic credentials with every request, the page's own fetches included."""
    credentials = base64.b64encode(f"operator:{password}".encode()).decode()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {credentials}"}}
    )


def texts(browser: webdriver.Chrome, css: str) -> list[str]:
    """The text of each element matching `css`, read in one go: the page replaces its live part
    every refresh, and an element found in one call may be gone by the next. An SVG element has
    no innerText: its textContent, then."""
    found: list[str] = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText ?? e.textContent)",
        css,
    )
    return found


async def page_shows(browser: webdriver.Chrome, css: str, text: str) -> str:
    """Wait until an element matching `css` contains `text` (the page refreshes itself)."""
    for _ in range(int(PAGE_WAIT_SECONDS / 0.1)):
        found = texts(browser, css)
        if any(text in element for element in found):
            return next(element for element in found if text in element)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {css} showed {text!r} within {PAGE_WAIT_SECONDS} s: {found}")


async def finished(job: Job[Any] | None) -> Job[Any]:
    assert job is not None
    await job.result(timeout=15)
    return job


async def test_the_page_needs_the_password(browser: webdriver.Chrome, server: str) -> None:
    browser.get(f"{server}/dashboard")
    without = (browser.title, browser.find_elements(By.ID, "live"))
    log_in(browser, "a wrong password")
    browser.get(f"{server}/dashboard")
    wrong = (browser.title, browser.find_elements(By.ID, "live"))
    log_in(browser)
    browser.get(f"{server}/dashboard")

    # Headless Chromium cancels the Basic challenge and shows an empty page.
    assert without == wrong == ("", [])
    assert browser.find_elements(By.ID, "live")
    assert browser.title.endswith("queue dashboard")


async def test_the_page_shows_a_live_worker_and_the_jobs_it_ran(
    browser: webdriver.Chrome, server: str, worker_processes: WorkerProcesses
) -> None:
    worker = worker_processes.start(WORKER_SETTINGS)
    before = await finished(await enqueue_task("example_task", message="before the page"))
    log_in(browser)
    browser.get(f"{server}/dashboard")

    row = await page_shows(browser, "#workers tr.worker", str(worker.pid))
    await page_shows(browser, "#recent tr.finished", bare_job_id(before.job_id))
    # A job that runs once the page is open shows up without a reload.
    after = await finished(await enqueue_task("example_task", message="after"))
    await page_shows(browser, "#recent tr.finished", bare_job_id(after.job_id))

    assert os.uname().nodename in row
    assert texts(browser, "#count-workers") == ["1"]
    assert "updated" in browser.find_element(By.ID, "updated").text


async def test_a_page_opened_with_the_password_in_its_url_refreshes_itself(
    browser: webdriver.Chrome, server: str, worker_processes: WorkerProcesses
) -> None:
    worker_processes.start(WORKER_SETTINGS)
    host = server.removeprefix("http://")
    browser.get(f"http://operator:{quote(PASSWORD, safe='')}@{host}/dashboard")
    assert browser.find_elements(By.ID, "live")

    # fetch() refuses a URL with credentials in it, as a path resolved against this page's is.
    after = await finished(await enqueue_task("example_task", message="after"))
    await page_shows(browser, "#recent tr.finished", bare_job_id(after.job_id))
    assert "not updated" not in browser.find_element(By.ID, "updated").text


async def test_a_long_dead_letter_fits_its_row_and_requeue_moves_it_back_onto_the_queue(
    browser: webdriver.Chrome, server: str, task_pool: ArqRedis
) -> None:
    queue = get_settings().queue_name
    job_id = "0123456789abcdef0123456789abcdef"
    error = "the warehouse refused: " + ", ".join(f"SKU-{line} out of stock" for line in range(300))
    now = datetime.now(UTC)
    letter = dead_letters.DeadLetter(
        job_id, "example_task", [], {"message": "again"}, "TimeoutError", error, 3, now, now
    )
    await dead_letters.add(task_pool, queue, letter, limit=1000)
    log_in(browser)
    browser.get(f"{server}/dashboard")
    await page_shows(browser, "#dead-letters tr.dead-letter", job_id)
    shown = browser.execute_script(
        """const row = document.querySelector('#dead-letters tr.dead-letter');
        const id = row.querySelector('code.id'), text = row.querySelector('td.error .clip');
        return {
          idCut: id.scrollWidth > id.clientWidth, idTitle: id.title, idText: id.textContent,
          idWidth: id.getBoundingClientRect().width,
          textCut: text.scrollHeight > text.clientHeight, textTitle: text.title,
          rowHeight: row.getBoundingClientRect().height,
          link: row.querySelector('a').getAttribute('href'),
          overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        };"""
    )

    browser.execute_script("document.querySelector('#dead-letters tr.dead-letter button').click()")
    notice = await page_shows(browser, ".notice", "requeued")
    new_id = unquote(browser.current_url.rsplit("job=", 1)[1])  # its queue's braces encoded

    # The long id and error fit their row: cut, the whole of each on hover.
    assert shown["idCut"]
    assert shown["idWidth"] < 120  # about 12 characters of the 32
    assert shown["idTitle"] == shown["idText"] == job_id  # on hover, and copied whole
    assert shown["link"] == f"/dashboard?job={job_id}"
    assert shown["textCut"]
    assert shown["textTitle"] == f"TimeoutError: {error}"
    assert shown["rowHeight"] < 120  # three lines of error text, not 60
    assert shown["overflow"] == 0
    # Requeued as a new job.
    assert job_id not in notice
    assert await dead_letters.count(task_pool, queue) == 0
    assert await task_pool.zscore(queue, new_id) is not None  # on the queue, waiting
    assert texts(browser, "#count-dead-letters") == ["0"]
    assert browser.find_element(By.ID, "job-args").text == '[] {"message": "again"}'


async def test_markup_in_a_jobs_argument_and_result_shows_as_text(
    browser: webdriver.Chrome, server: str, worker_processes: WorkerProcesses
) -> None:
    worker_processes.start(WORKER_SETTINGS)
    markup = "<script>window.pwned = true</script><b>bold</b>"
    job_done = await finished(await enqueue_task("example_task", message=markup))
    log_in(browser)
    browser.get(f"{server}/dashboard?job={job_done.job_id}")

    arguments = browser.find_element(By.ID, "job-args").text
    result = browser.find_element(By.ID, "job-result").text

    assert arguments == "[] " + json.dumps({"message": markup})
    assert result == json.dumps(f"Processed: {markup}")
    assert browser.execute_script("return window.pwned === undefined") is True
    assert browser.find_elements(By.CSS_SELECTOR, "#job-details b, #job-details script") == []
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1  # the dashboard's own


def overlapping_labels(browser: webdriver.Chrome) -> list[str]:
    """The chart's axis labels whose boxes overlap another's, or stick out of the section."""
    found: list[str] = browser.execute_script(
        """const section = document.querySelector('#chart').getBoundingClientRect();
        const boxes = Array.from(document.querySelectorAll('#chart .plot text'),
          e => [e.textContent, e.getBoundingClientRect()]);
        return boxes.filter(([text, box], index) =>
          box.left < section.left || box.right > section.right || box.width === 0 ||
          boxes.some(([, other], j) => j !== index && box.left < other.right &&
            other.left < box.right && box.top < other.bottom && other.top < box.bottom)
        ).map(([text]) => text);"""
    )
    return found


async def jobs_flow(pool: ArqRedis, seconds: float) -> None:
    """Bursts of jobs, more than two workers run at once, then a pause: the backlog rises and
    falls; now and then a job fails, and is retried or becomes a dead letter."""
    randomly = random.Random(15)
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    number = 0
    while loop.time() < until:
        for _ in range(randomly.randint(5, 40)):
            number += 1
            await pool.enqueue_job("takes_a_while", randomly.uniform(0.05, 0.6))
            await pool.enqueue_job("fails_now_and_then", number)
        await asyncio.sleep(randomly.uniform(0.5, 2))


async def test_a_group_looked_up_shows_its_members_beside_the_running_ones_progress(
    browser: webdriver.Chrome,
    server: str,
    worker_processes: WorkerProcesses,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A group of four, two quick and two slow, with a callback: its view lists them (done,
    running, the callback waiting), and the live part shows the slow ones' progress bars. The
    screenshot goes to `$WORKFLOW_SCREENSHOT`, else into the test's tmp folder."""
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    slow_steps, callback = job(takes_a_while), job(adds_up)
    worker_processes.start(WORKER_SETTINGS)
    members = [slow_steps.call(seconds) for seconds in (0.3, 12.0, 10.0, 0.5)]
    flow = await enqueue_group(members, then=callback.step())
    assert flow is not None
    log_in(browser)
    for _ in range(int(PAGE_WAIT_SECONDS / 0.2)):  # until the quick ones are done
        browser.get(f"{server}/dashboard?job={quote(flow.id)}")
        if texts(browser, "#workflow tr.member .badge").count("complete") == 2:
            break
        await asyncio.sleep(0.2)
    await page_shows(browser, "#live .progress", "of 10")

    badges = texts(browser, "#workflow tr.member .badge")
    assert badges == ["complete", "in_progress", "in_progress", "complete", "waiting"]
    assert texts(browser, "#workflow h3 .badge") == ["running"]
    browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight") + 120)
    await asyncio.sleep(0.5)
    path = Path(os.environ.get("WORKFLOW_SCREENSHOT", tmp_path / "workflow.png"))
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    assert await flow.result(timeout=30, poll_delay=0.2) == pytest.approx(22.8)


async def test_a_screenshot_with_jobs_flowing_and_the_page_at_phone_width(
    browser: webdriver.Chrome,
    server: str,
    task_pool: ArqRedis,
    worker_processes: WorkerProcesses,
    tmp_path: Path,
) -> None:
    for _ in range(2):
        worker_processes.start(WORKER_SETTINGS)
    seconds = float(os.environ.get("DASHBOARD_FLOW_SECONDS", "12"))
    log_in(browser)
    browser.get(f"{server}/dashboard")
    await page_shows(browser, "#count-workers", "2")
    flowing = asyncio.create_task(jobs_flow(task_pool, seconds + 5))
    await asyncio.sleep(seconds)  # the screenshot is taken while jobs still flow
    await page_shows(browser, "#recent tr.finished", "takes_a_while")
    for _ in range(int(PAGE_WAIT_SECONDS / 0.1)):  # a moment with jobs running
        if texts(browser, "#count-running") != ["0"]:
            break
        await asyncio.sleep(0.1)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 120)
    await asyncio.sleep(0.5)
    path = Path(os.environ.get("DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    flowing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flowing
    wide_overlaps = overlapping_labels(browser)
    browser.set_window_size(390, 844)  # a phone
    await asyncio.sleep(0.5)
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    phone_overlaps = overlapping_labels(browser)

    assert (await asyncio.to_thread(path.read_bytes)).startswith(b"\x89PNG\r\n\x1a\n")
    assert int(texts(browser, "#count-dead-letters")[0]) > 0
    assert texts(browser, "#chart rect.complete")
    # Axes: the clock along the bottom, every 3 minutes; the counts up each side.
    assert len(texts(browser, "#chart .x-axis text")) == 5
    assert texts(browser, "#chart .y-axis.tries text")[0] == "0"
    assert texts(browser, "#chart .y-axis.depth text")[0] == "0"
    assert wide_overlaps == phone_overlaps == []
    assert re.fullmatch(r"updated \d\d:\d\d:\d\d UTC", texts(browser, "#updated")[0])
    assert texts(browser, "#failures tr.finished")
    assert overflow == 0  # wide tables scroll inside their box, the page does not


async def click(browser: webdriver.Chrome, css: str, text: str, button: str) -> None:
    """Click the button `button` in the first element matching `css` that contains `text`, in
    one go (the live part may be replaced between a find and a click); confirms it."""
    await page_shows(browser, css, text)
    clicked = browser.execute_script(
        """window.confirm = () => true;
        const row = Array.from(document.querySelectorAll(arguments[0]))
          .find(e => e.innerText.includes(arguments[1]));
        const found = row && Array.from(row.querySelectorAll('button'))
          .find(b => b.innerText === arguments[2]);
        if (found) { found.click(); }
        return Boolean(found);""",
        css,
        text,
        button,
    )
    assert clicked, f"no {button!r} button in {css} with {text!r}"


def screenshot(browser: webdriver.Chrome, folder: Path, name: str) -> Path:
    """The whole page, saved as `<name>.png` in `folder`."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 120)
    path = folder / f"{name}.png"
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


async def test_an_operator_aborts_a_running_job_retries_it_and_filters_the_tables(
    browser: webdriver.Chrome, server: str, worker_processes: WorkerProcesses, tmp_path: Path
) -> None:
    """Each action from the page, on a worker process: abort a running job from the workers'
    table, retry it (aborted, so it did not complete) from the failures' table as a new job that
    names it, then filter the tables. A screenshot of each view goes to
    `$OPERATOR_SCREENSHOTS` (a folder), else into the test's tmp folder."""
    folder = Path(os.environ.get("OPERATOR_SCREENSHOTS", tmp_path))
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    worker_processes.start(WORKER_SETTINGS)
    await finished(await enqueue_task("example_task", message="quick"))
    slow = await enqueue_task("example_task", message="slow", seconds=60)
    assert slow is not None
    log_in(browser)
    browser.get(f"{server}/dashboard")

    await click(browser, "#workers .running-job", bare_job_id(slow.job_id), "Abort")
    aborted = await page_shows(browser, ".notice", slow.job_id)
    screenshot(browser, folder, "dashboard-aborted")
    await click(browser, "#failures tr.finished", bare_job_id(slow.job_id), "Retry")
    retried = await page_shows(browser, ".notice", "Queued again as job")
    origin = browser.find_element(By.ID, "job-retried-from").text
    new_id = unquote(browser.current_url.rsplit("job=", 1)[1])
    screenshot(browser, folder, "dashboard-retried")
    browser.execute_script(
        """document.querySelector('#function').value = 'example_task';
        document.querySelector('#outcome').value = 'aborted';
        document.querySelector('#filter form').submit();"""
    )
    await page_shows(browser, "#recent h2", "aborted")
    filtered = texts(browser, "#recent tr.finished .badge")
    figures = texts(browser, "#functions tr.function")
    cron = texts(browser, "#cron tr.cron")
    screenshot(browser, folder, "dashboard-filtered")

    assert "aborted" in aborted or "cancel" in aborted
    assert new_id != slow.job_id
    assert new_id in retried
    assert origin == slow.job_id
    assert filtered == ["aborted"]  # the quick job completed: filtered out
    assert any(row.startswith("example_task") for row in figures)
    assert [row.split()[0] for row in cron] == ["cron:report_queue_depth"]


async def test_an_operator_pauses_the_queue_and_resumes_it(
    browser: webdriver.Chrome, server: str, worker_processes: WorkerProcesses, tmp_path: Path
) -> None:
    """Pause from the page: a job queued meanwhile waits on a live worker process, the page says
    who paused it; Resume, and the job runs. Screenshot: `dashboard-paused` (as above)."""
    folder = Path(os.environ.get("OPERATOR_SCREENSHOTS", tmp_path))
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    worker_processes.start(WORKER_SETTINGS)
    await finished(await enqueue_task("example_task", message="before"))
    log_in(browser)
    browser.get(f"{server}/dashboard")

    await click(browser, "#counts", "taking jobs", "Pause queue")
    paused = await page_shows(browser, "#counts form.pause", "by operator")
    await asyncio.sleep(1.0)  # within a second, the worker has seen it
    waiting = await enqueue_task("example_task", message="while paused")
    assert waiting is not None
    await asyncio.sleep(1.5)
    status_while_paused = await waiting.status()
    browser.refresh()
    await page_shows(browser, "#count-waiting", "1")
    screenshot(browser, folder, "dashboard-paused")
    await click(browser, "#counts", "by operator", "Resume")
    await page_shows(browser, ".notice", "resumed")
    result = await waiting.result(timeout=10, poll_delay=0.05)

    assert "no new job starts" in paused
    assert status_while_paused == "queued"
    assert result == "Processed: while paused"
