# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Prometheus metrics (infrastructure/ops/metrics.py): a real worker process counts each function's
tries and how they ended, and shows its slots, at its own /metrics port; with the port unset,
nothing of this is loaded. The queue's gauges are read from Redis by `just metrics`{% if cookiecutter.api_framework == "fastapi" %} and by
the API's `/metrics`{% endif %}, one series per queue of QUEUES, labelled with the queue's key."""

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from arq.connections import ArqRedis
{%- if cookiecutter.api_framework == "fastapi" %}
from fastapi import FastAPI
{%- endif %}
from prometheus_client.parser import text_string_to_metric_families

{% if cookiecutter.api_framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.api.app import create_app
{% endif -%}
from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
{%- if cookiecutter.api_framework == "fastapi" %}
from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import CONTENT_TYPE, render_queue_stats
{%- else %}
from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import render_queue_stats
{%- endif %}
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.depth import queue_stats
from {{ cookiecutter.package_name }}.infrastructure.store.records import unreadable_records
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
{%- if cookiecutter.api_framework == "fastapi" %}
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
{%- endif %}
from {{ cookiecutter.package_name }}.queue import enqueue_task

from .conftest import (
    Configure,
    RunningWorker,
    WorkerProcesses,
    add_dead_letter,
{%- if cookiecutter.api_framework == "fastapi" %}
    sleeps,
    wait_until_listed,
    wait_until_started,
{%- endif %}
)
{%- if cookiecutter.api_framework == "fastapi" %}
from .test_api_health import serving
{%- endif %}

FAULT_JOBS = "tests.infrastructure.fault_jobs.WorkerSettings"
QUEUE = WorkerSettings.queue_name
QUEUES = "critical,default,bulk"
GAUGES = (
    "arq_queue_jobs_waiting",
    "arq_queue_jobs_deferred",
    "arq_queue_jobs_running",
    "arq_queue_dead_letters",
    "arq_queue_live_workers",
)


def value(text: str, name: str, **labels: str) -> float:
    """The one sample called `name` whose labels include `labels`, in a text exposition."""
    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    assert len(found) == 1, f"{len(found)} samples of {name} {labels}"
    return found[0]


async def scrape(port: int) -> str:
    """GET http://127.0.0.1:<port>/metrics; waits up to 30 s for the server to listen."""

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    for _ in range(300):
        try:
            return await asyncio.to_thread(get)
        except OSError:  # not listening yet
            await asyncio.sleep(0.1)
    raise AssertionError(f"nothing served metrics on port {port} within 30 s")


async def test_a_worker_process_counts_each_function_s_tries_and_how_they_ended(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    port = free_port()
    worker_processes.start(FAULT_JOBS, WORKER_METRICS_PORT=str(port), WORKER_RETRY_BASE="0.05")
    before = await scrape(port)

    # The project's pool (its serializer) with arq's enqueue_job: enqueue_task knows only the
    # project's own jobs. Without a wake-up token, the worker finds them within a second.
    for number in range(5):
        await task_pool.enqueue_job("numbered", number)
    await task_pool.enqueue_job("numbered", 5, fail_first_try=True)  # one retry, then complete
    await task_pool.enqueue_job("refuses")  # fails for good
    await task_pool.enqueue_job("sleepy", "held", 30)  # still running at the scrape
    awaited = {("completed", "numbered"): 6, ("failed", "refuses"): 1, ("started", "sleepy"): 1}
    for _ in range(100):  # up to 10 s
        after = await scrape(port)
        counts = {
            (counter, function): value(after, f"arq_jobs_{counter}_total", function=function)
            for counter, function in awaited
        }
        if counts == awaited:
            break
        await asyncio.sleep(0.1)

    # Every function the worker runs has its series from the start, at 0.
    assert value(before, "arq_jobs_started_total", function="example_task") == 0
    assert value(before, "arq_jobs_failed_total", function="numbered") == 0
    # Counted per try: 6 numbered jobs, one of them tried twice.
    assert value(after, "arq_jobs_started_total", function="numbered") == 7
    assert value(after, "arq_jobs_completed_total", function="numbered") == 6
    assert value(after, "arq_jobs_retried_total", function="numbered") == 1
    assert value(after, "arq_jobs_failed_total", function="numbered") == 0
    assert value(after, "arq_jobs_aborted_total", function="numbered") == 0
    assert value(after, "arq_job_duration_seconds_count", function="numbered") == 7
    assert value(after, "arq_job_wait_seconds_count", function="numbered") == 6  # first tries
    assert value(after, "arq_jobs_started_total", function="refuses") == 1
    assert value(after, "arq_jobs_failed_total", function="refuses") == 1
    assert value(after, "arq_jobs_completed_total", function="refuses") == 0
    assert value(after, "arq_jobs_started_total", function="example_task") == 0
    # The held job runs: one slot of WORKER_MAX_JOBS (10) taken.
    assert value(after, "arq_worker_jobs_running") == 1
    assert value(after, "arq_worker_free_slots") == 9
    assert value(after, "process_resident_memory_bytes") > 0


def histogram_samples(text: str, name: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_the_worker_s_histograms_read_as_prometheus_client_s_own() -> None:
    # metrics.py counts without prometheus-client's locks: it must expose the same series.
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import DURATION_BUCKETS, JobMetrics

    ours = JobMetrics(["f"])
    registry = CollectorRegistry()
    theirs = Histogram(
        "arq_job_duration_seconds",
        "Run time of each try",
        ["function"],
        buckets=DURATION_BUCKETS,
        registry=registry,
    ).labels("f")
    for seconds in (0.0, 0.005, 0.0051, 1, 1.5, 299.9, 300, 301, 1e6):  # on, between, past bounds
        ours.counts["f"].duration.observe(seconds)
        theirs.observe(seconds)
    ours_registry = CollectorRegistry()
    ours_registry.register(ours)

    expected = histogram_samples(generate_latest(registry).decode(), "arq_job_duration_seconds")
    got = histogram_samples(generate_latest(ours_registry).decode(), "arq_job_duration_seconds")
    assert got == expected
    assert got[("arq_job_duration_seconds_bucket", "0.005")] == 2  # a value on a bound is in it
    assert got[("arq_job_duration_seconds_count", "")] == 9


def test_a_worker_without_the_port_imports_no_metrics_code() -> None:
    environment = {**os.environ}
    environment.pop("WORKER_METRICS_PORT", None)
    imports = f"import sys, {WorkerSettings.__module__}; print('prometheus_client' in sys.modules)"

    loaded = subprocess.run(
        [sys.executable, "-c", imports], env=environment, capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == "False"  # prometheus-client costs no start-up time


async def test_a_worker_without_the_port_serves_no_metrics(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    async with running_worker() as worker:
        queued = await enqueue_task("example_task", message="no metrics")
        assert queued is not None
        await queued.result(timeout=5)

    assert "metrics" not in worker.ctx


async def test_a_port_in_use_is_logged_and_the_worker_runs_its_jobs_anyway(
    task_pool: ArqRedis,
    running_worker: RunningWorker,
    configure: Configure,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import WorkerMetrics

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        configure(WORKER_METRICS_PORT=str(port))
        async with running_worker() as worker:
            queued = await enqueue_task("example_task", message="still runs")
            assert queued is not None
            assert await queued.result(timeout=5) == "Processed: still runs"
        caplog.clear()
        assert WorkerMetrics.start(None, "127.0.0.1", port, task_pool, QUEUE) is None

    assert worker.ctx["metrics"] is None
    [message] = [r.getMessage() for r in caplog.records if r.name == WorkerMetrics.__module__]
    assert message.startswith(f"cannot serve metrics on 127.0.0.1:{port}: ")
    assert message.endswith(
        "(check WORKER_METRICS_PORT and WORKER_METRICS_HOST); running without them"
    )


async def queue_with_one_of_each(pool: ArqRedis) -> None:
    """Two jobs waiting, one deferred, one dead letter; no worker."""
    await enqueue_task("example_task", message="waits 1")
    await enqueue_task("example_task", message="waits 2")
    await enqueue_task("example_task", message="later", _defer_by=60)
    await add_dead_letter(pool)


async def test_just_metrics_prints_the_queue_gauges(
    task_pool: ArqRedis, redis_server: LocalRedisServer
) -> None:
    await queue_with_one_of_each(task_pool)
    environment = {**os.environ, "REDIS_URL": redis_server.url}
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.infrastructure.ops.cli", "metrics"]

    printed = await asyncio.to_thread(
        subprocess.run, command, env=environment, capture_output=True, text=True, timeout=30
    )

    assert printed.returncode == 0, printed.stderr
    assert "# TYPE arq_queue_jobs_waiting gauge" in printed.stdout
    figures = {
        name: value(printed.stdout, name, queue=QUEUE)
        for name in (
            "arq_queue_jobs_waiting",
            "arq_queue_jobs_deferred",
            "arq_queue_jobs_running",
            "arq_queue_dead_letters",
            "arq_queue_live_workers",
        )
    }
    assert figures == {
        "arq_queue_jobs_waiting": 2,
        "arq_queue_jobs_deferred": 1,
        "arq_queue_jobs_running": 0,
        "arq_queue_dead_letters": 1,
        "arq_queue_live_workers": 0,
    }


async def test_a_worker_serves_the_queue_gauges_as_it_last_read_them(
    task_pool: ArqRedis, worker_processes: WorkerProcesses
) -> None:
    # Where there is no API, Prometheus and KEDA read the backlog from the workers.
    await queue_with_one_of_each(task_pool)
    port = free_port()
    worker_processes.start(FAULT_JOBS, WORKER_METRICS_PORT=str(port))
    figures: dict[str, float] = {}
    for _ in range(100):  # up to 10 s: read at start, then every QUEUE_STATS_SECONDS
        text = await scrape(port)
        if "arq_queue_live_workers" in text:
            figures = {
                name: value(text, name, queue=QUEUE)
                for name in (
                    "arq_queue_jobs_deferred",
                    "arq_queue_dead_letters",
                    "arq_queue_live_workers",
                )
            }
            if figures["arq_queue_live_workers"] == 1:
                break
        await asyncio.sleep(0.1)

    # The two waiting jobs ran at once; the deferred one waits its minute.
    assert figures == {
        "arq_queue_jobs_deferred": 1,
        "arq_queue_dead_letters": 1,
        "arq_queue_live_workers": 1,
    }


async def three_queues_with_their_own_figures(pool: ArqRedis, configure: Configure) -> None:
    """QUEUES=critical,default,bulk: critical one job waiting, default `queue_with_one_of_each`,
    bulk three waiting and two dead letters; no worker."""
    configure(QUEUES=QUEUES)
    await queue_with_one_of_each(pool)
    await pool.enqueue_job("example_task", message="soon", _queue_name="critical")
    for number in range(3):
        await pool.enqueue_job("example_task", message=str(number), _queue_name="bulk")
    bulk = get_settings().queue_keys["bulk"]
    letter = (await dead_letters.all_letters(pool, QUEUE))[0]
    for _ in range(2):
        await dead_letters.add(pool, bulk, letter, limit=10)


def queue_figures(text: str) -> dict[str, dict[str, float]]:
    """Each gauge's value by queue name, every series labelled with its queue's key."""
    keys = get_settings().queue_keys
    return {
        queue: {name.removeprefix("arq_queue_"): value(text, name, queue=key) for name in GAUGES}
        for queue, key in keys.items()
    }


THREE_QUEUES_FIGURES = {
    "critical": {"jobs_waiting": 1, "jobs_deferred": 0, "jobs_running": 0, "dead_letters": 0, "live_workers": 0},
    "default": {"jobs_waiting": 2, "jobs_deferred": 1, "jobs_running": 0, "dead_letters": 1, "live_workers": 0},
    "bulk": {"jobs_waiting": 3, "jobs_deferred": 0, "jobs_running": 0, "dead_letters": 2, "live_workers": 0},
}  # fmt: skip


async def test_just_metrics_prints_each_queue_s_gauges_under_its_key(
    task_pool: ArqRedis, redis_server: LocalRedisServer, configure: Configure
) -> None:
    await three_queues_with_their_own_figures(task_pool, configure)
    environment = {**os.environ, "REDIS_URL": redis_server.url, "QUEUES": QUEUES}
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.infrastructure.ops.cli", "metrics"]

    printed = await asyncio.to_thread(
        subprocess.run, command, env=environment, capture_output=True, text=True, timeout=30
    )

    assert printed.returncode == 0, printed.stderr
    assert queue_figures(printed.stdout) == THREE_QUEUES_FIGURES
    assert printed.stdout.count("# TYPE arq_queue_jobs_waiting gauge") == 1  # one family


async def test_a_worker_s_metrics_carry_the_gauges_of_each_queue_it_is_given(
    task_pool: ArqRedis, configure: Configure
) -> None:
    from {{ cookiecutter.package_name }}.infrastructure.ops.metrics import WorkerMetrics

    await three_queues_with_their_own_figures(task_pool, configure)
    port = free_port()
    queue_names = list(get_settings().queue_keys.values())
    metrics = WorkerMetrics.start(None, "127.0.0.1", port, task_pool, queue_names)
    assert metrics is not None
    try:
        for _ in range(100):  # up to 10 s: read at start, then every QUEUE_STATS_SECONDS
            text = await scrape(port)
            if "arq_queue_live_workers" in text:
                break
            await asyncio.sleep(0.1)
    finally:
        await metrics.stop()

    assert queue_figures(text) == THREE_QUEUES_FIGURES


async def test_records_that_cannot_be_read_are_counted_by_kind(task_pool: ArqRedis) -> None:
    await add_dead_letter(task_pool)
    await task_pool.lpush(dead_letters.dead_letter_key(QUEUE), b"not a dead letter")  # type: ignore[misc]
    before = unreadable_records().get("dead-letter", 0)

    assert len(await dead_letters.all_letters(task_pool, QUEUE)) == 1  # the bad one skipped

    text = render_queue_stats(await queue_stats(task_pool, QUEUE), QUEUE).decode()
    assert value(text, "arq_unreadable_records_total", kind="dead-letter") == before + 1

{%- if cookiecutter.api_framework == "fastapi" %}


async def test_the_api_serves_the_queue_gauges_read_at_each_request(
    task_pool: ArqRedis, running_worker: RunningWorker
) -> None:
    await task_pool.enqueue_job("sleeps")
    async with running_worker(
        functions=[arq_function(sleeps), *WorkerSettings.functions], max_jobs=1
    ):
        await wait_until_started(task_pool)
        await queue_with_one_of_each(task_pool)
        await wait_until_listed(task_pool, 2)  # the job running, and the one read ahead
        async with serving(create_app()) as client:
            response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    text = response.text
    # One waiting job is in the worker's hand, read ahead for its one slot (worker.py): running.
    assert value(text, "arq_queue_jobs_waiting", queue=QUEUE) == 1
    assert value(text, "arq_queue_jobs_deferred", queue=QUEUE) == 1
    assert value(text, "arq_queue_jobs_running", queue=QUEUE) == 2
    assert value(text, "arq_queue_dead_letters", queue=QUEUE) == 1
    assert value(text, "arq_queue_live_workers", queue=QUEUE) == 1


async def test_the_api_serves_each_queue_s_gauges_under_its_key(
    task_pool: ArqRedis, configure: Configure
) -> None:
    await three_queues_with_their_own_figures(task_pool, configure)

    async with serving(create_app()) as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert queue_figures(response.text) == THREE_QUEUES_FIGURES


def test_the_api_s_metrics_route_is_not_in_its_schema() -> None:
    app: FastAPI = create_app()
    assert "/metrics" not in app.openapi()["paths"]


async def test_the_api_s_metrics_answer_503_while_redis_is_away(configure: Configure) -> None:
    configure(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    async with serving(create_app()) as client:
        response = await client.get("/metrics")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("cannot reach Redis at redis://127.0.0.1:")
{%- endif %}
