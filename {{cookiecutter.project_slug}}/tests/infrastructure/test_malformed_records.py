# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Records in Redis that cannot be read (infrastructure/store/records.py): every reader of the helper
keys (heartbeats, the live-workers set, running-lists, the activity record, dead letters,
results, queued jobs) skips them, logs each once and counts it, and still returns the good
records{% if cookiecutter.api_framework == "fastapi" %}; the routes that read them (readiness, metrics, the dashboard, a job lookup)
answer 200{% endif %}. Anyone who can write to Redis can put anything in these keys."""

{%- set api = cookiecutter.api_framework == "fastapi" %}

import contextlib
import json
import logging
from collections.abc import AsyncIterator{% if api %}, Iterator{% endif %}
from datetime import UTC, datetime
from typing import Any

{% if api -%}
import httpx
{% endif -%}
import pytest
from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
{%- if api %}
from prometheus_client.parser import text_string_to_metric_families
{%- endif %}
from redis.asyncio import Redis

{% if api -%}
from {{ cookiecutter.package_name }}.api.app import create_app
{% endif -%}
from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure.ops import activity
from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters, records
from {{ cookiecutter.package_name }}.infrastructure.store.depth import queue_depth, queue_stats
from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import (
    Heartbeat,
    key_prefix,
    live_workers,
    live_workers_key,
    running_prefix,
)
from {{ cookiecutter.package_name }}.infrastructure.store.job_handle import Job, UnreadableResult
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import JobFailed, deserialize, serialize
from {{ cookiecutter.package_name }}.infrastructure.tasks import WorkerSettings
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function
from {{ cookiecutter.package_name }}.queue import JobContext, PermanentError

from .conftest import {% if api %}Configure, {% endif %}RunWorker, full_id
{%- if api %}

PASSWORD = "correct horse battery staple"
{%- endif %}


async def fails_for_good(ctx: JobContext) -> None:
    raise PermanentError("for good")


# What can be in a key instead of a record: each reader must skip all of it.
BAD_BYTES = {
    "not JSON": b"{not json",
    "not UTF-8": b"\xff\xfe\x80 not UTF-8",
    "JSON of another shape": b"[1, 2, 3]",
    "a number": b"42",
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,  # JSON's decoder: a RecursionError
}


def spoiled(record: dict[str, Any], **changes: Any) -> list[bytes]:
    """`record` with each of `changes` applied on its own (a field of the wrong type, or a
    missing one where the value is `...`), as JSON."""
    variants = []
    for name, value in changes.items():
        changed = {**record, name: value}
        if value is ...:
            del changed[name]
        variants.append(json.dumps(changed).encode())
    return variants
{%- if api %}


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, in process, that gets a route's 500 as a 500 (not as an exception),
    logged in to the dashboard."""
    app = create_app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", auth=("operator", PASSWORD)
        ) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def dashboard_on(configure: Configure) -> Iterator[None]:
    configure(DASHBOARD_PASSWORD=PASSWORD)
    yield
    get_settings.cache_clear()


async def every_route(client: httpx.AsyncClient, job_id: str = "") -> dict[str, httpx.Response]:
    """GET each route that reads the helper keys; each must answer 200."""
    paths = [
        "/health/ready",
        "/metrics",
        "/dashboard",
        "/dashboard/live",
        "/dashboard/snapshot.json",
    ]
    if job_id:
        paths += [f"/jobs/{job_id}", f"/dashboard?job={job_id}"]
    responses = {path: await client.get(path) for path in paths}
    statuses = {path: response.status_code for path, response in responses.items()}
    assert statuses == dict.fromkeys(paths, 200), {p: r.text[:300] for p, r in responses.items()}
    return responses


def metric(text: str, name: str) -> float:
    [found] = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels.get("queue") == queue()
    ]
    return found
{%- endif %}


def queue() -> str:
    return get_settings().queue_name


def skipped(kind: str) -> int:
    return records.unreadable_records().get(kind, 0)


async def good_records(pool: ArqRedis, run_burst_worker: RunWorker) -> tuple[str, str]:
    """A job that completed and one that failed for good, run by a real worker: a result each,
    the activity record, one dead letter. Returns their ids."""
    done = await pool.enqueue_job("example_task", message="good")
    failed = await pool.enqueue_job("fails_for_good")
    assert done is not None
    assert failed is not None
    await run_burst_worker(functions=[*WorkerSettings.functions, arq_function(fails_for_good)])
    return done.job_id, failed.job_id


@contextlib.asynccontextmanager
async def beating() -> AsyncIterator[Heartbeat]:
    """A live worker's heartbeat, as a worker keeps it, on a client of its own{% if api %} (the app's
    lifespan closes the shared pool){% endif %}."""
    async with Redis.from_url(str(get_settings().redis_url)) as own:
        heartbeat = Heartbeat(own, queue(), interval=30)
        await heartbeat.start()
        try:
            yield heartbeat
        finally:
            await heartbeat.stop()


# Heartbeats: {% if api %}/health/ready counts them, the dashboard lists them, {% endif %}`just worker-check` counts them.


async def test_unreadable_heartbeats_are_skipped_and_the_live_worker_still_counts(
    task_pool: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    async with beating() as heartbeat:
        good = json.loads(await task_pool.get(heartbeat.key))
        bad = [
            *BAD_BYTES.values(),
            *spoiled(good, pid="many", host=None, queue=..., started_at="yesterday", beat_at=17),
        ]
        for index, payload in enumerate(bad):
            identity = f"bad-host:{index}:aaaaaa"
            await task_pool.set(key_prefix(queue()) + identity, payload)
            await task_pool.zadd(live_workers_key(queue()), {identity: 2**52})
        # A heartbeat key of another type: MGET reads it as no key, GET refuses it.
        await task_pool.hset(key_prefix(queue()) + "bad-host:x:hash", "not", "a beat")  # type: ignore[misc]
        await task_pool.zadd(live_workers_key(queue()), {"bad-host:x:hash": 2**52})
        before = skipped("heartbeat")

        for _ in range(2):  # read again and again, logged once
            assert [beat.pid for beat in await live_workers(task_pool, queue())] == [good["pid"]]
            statuses = await activity.worker_statuses(task_pool, queue())
            assert [status.beat.pid for status in statuses] == [good["pid"]]
{%- if api %}
        async with serving() as client:
            responses = await every_route(client)
        assert responses["/health/ready"].json() == {"status": "ready", "workers": 1}
        snapshot = responses["/dashboard/snapshot.json"].json()
        assert [worker["pid"] for worker in snapshot["workers"]] == [good["pid"]]
{%- endif %}
        assert skipped("heartbeat") - before >= 4 * len(bad)

    logged = [record for record in caplog.records if "bad-host:0:" in record.getMessage()]
    assert len(logged) == 1


async def test_a_live_workers_set_of_another_type_counts_no_workers_and_breaks_nothing(
    task_pool: ArqRedis,
) -> None:
    await task_pool.set(live_workers_key(queue()), b"not a sorted set")
    before = skipped("live-workers")

    assert (await queue_stats(task_pool, queue())).live_workers == 0
    assert await activity.worker_statuses(task_pool, queue()) == []
{%- if api %}
    async with serving() as client:
        responses = await every_route(client)
    assert metric(responses["/metrics"].text, "arq_queue_live_workers") == 0
    assert responses["/dashboard/snapshot.json"].json()["workers"] == []
{%- endif %}
    assert skipped("live-workers") > before


async def test_a_live_worker_whose_name_is_not_utf8_is_skipped(task_pool: ArqRedis) -> None:
    async with beating() as heartbeat:
        await task_pool.zadd(live_workers_key(queue()), {b"\xff\xfe:1:x": 2**52})
        await task_pool.sadd(running_prefix(queue()).encode() + b"\xff\xfe:1:x", b"job")  # type: ignore[misc, arg-type]
        before = skipped("live-workers")

        assert (await queue_stats(task_pool, queue())).live_workers == 1
        statuses = await activity.worker_statuses(task_pool, queue())
        assert [status.beat.pid for status in statuses] == [heartbeat.about["pid"]]
{%- if api %}
        async with serving() as client:
            responses = await every_route(client)
        assert metric(responses["/metrics"].text, "arq_queue_live_workers") == 1
        snapshot = responses["/dashboard/snapshot.json"].json()
        assert [worker["pid"] for worker in snapshot["workers"]] == [heartbeat.about["pid"]]
{%- endif %}
        assert skipped("live-workers") > before


# Running-lists: the queue's counts{% if api %}, the metrics and the dashboard's workers{% endif %} read them.


async def test_running_lists_of_another_type_or_with_ids_not_utf8_are_skipped(
    task_pool: ArqRedis,
) -> None:
    async with beating() as heartbeat, beating() as other:
        await task_pool.zadd(queue(), {"running-job": 1})
        await task_pool.sadd(heartbeat.running_key, "running-job", b"\xff\xfe")  # type: ignore[misc]
        await task_pool.set(other.running_key, b"not a set")
        before = skipped("running")

        depth = await queue_depth(task_pool, queue())
        stats = await queue_stats(task_pool, queue())
        statuses = await activity.worker_statuses(task_pool, queue())
{%- if api %}
        async with serving() as client:
            responses = await every_route(client)
{%- endif %}

    assert (depth.running, stats.running, stats.live_workers) == (1, 1, 2)
    assert sorted(status.running for status in statuses) == [[], ["running-job"]]
{%- if api %}
    assert metric(responses["/metrics"].text, "arq_queue_jobs_running") == 1
    workers = responses["/dashboard/snapshot.json"].json()["workers"]
    assert sorted(worker["running"] for worker in workers) == [[], ["running-job"]]
{%- endif %}
    assert skipped("running") > before


async def test_a_dead_worker_s_running_list_of_another_type_does_not_stop_the_others(
    task_pool: ArqRedis,
) -> None:
    # Two workers that died: one left a running-list of another type, one a job to run again.
    orphan = full_id("orphan")
    await task_pool.set(running_prefix(queue()) + "dead:1:aaaaaa", b"not a set")
    await task_pool.zadd(queue(), {orphan: 2**52})
    await task_pool.set(in_progress_key_prefix + orphan, b"1")
    await task_pool.sadd(running_prefix(queue()) + "dead:2:bbbbbb", orphan)  # type: ignore[misc]

    async with beating():  # a worker that starts reaps them
        pass

    assert not await task_pool.exists(in_progress_key_prefix + orphan)
    score = await task_pool.zscore(queue(), orphan)
    assert score is not None
    assert score < 2**52


# The activity record: {% if api %}the dashboard's recent jobs, failures and chart, {% endif %}`just queue-stats`.


async def test_unreadable_activity_records_are_skipped_and_the_good_ones_shown(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    done, failed = await good_records(task_pool, run_burst_worker)
    failures = await task_pool.lrange(activity.failures_key(queue()), 0, 0)  # type: ignore[misc]
    [good] = [json.loads(raw) for raw in failures]
    bad = [
        *BAD_BYTES.values(),
        *spoiled(
            good,
            job_id=1,
            outcome="exploded",
            job_try="one",
            duration=None,
            finished_at=1e300,
            worker=...,
        ),
        b'{"job_id": "x", "function": "f", "outcome": "failed", "job_try": 1, "duration": NaN,'
        b' "error": null, "finished_at": 1.0, "worker": "w"}',
    ]
    # In front of the good ones: a reader reads on past them.
    for key in (activity.recent_key(queue()), activity.failures_key(queue())):
        await task_pool.lpush(key, *bad)  # type: ignore[misc]
    bucket = activity.bucket_key(queue(), activity.bucket_start(datetime.now(UTC).timestamp()))
    await task_pool.hset(bucket, mapping={"retried": b"many", "aborted": b"\xff", "depth": b"-3"})  # type: ignore[misc]
    before = (skipped("recent"), skipped("bucket"))

    recent = await activity.recent_jobs(task_pool, queue(), 2)
    assert {record.job_id for record in recent} == {done, failed}
    failed_tries = await activity.recent_jobs(task_pool, queue(), 2, failures=True)
    assert [record.job_id for record in failed_tries] == [failed]
    window = await activity.buckets(task_pool, queue())
    assert (sum(b.complete for b in window), sum(b.failed for b in window)) == (1, 1)
    assert window[-1].depth is None
{%- if api %}
    async with serving() as client:
        responses = await every_route(client, job_id=done)
    snapshot = responses["/dashboard/snapshot.json"].json()
    assert {record["job_id"] for record in snapshot["recent"]} == {done, failed}
    assert [record["job_id"] for record in snapshot["failures"]] == [failed]
    assert sum(bucket["complete"] for bucket in snapshot["chart"]) == 1
    assert sum(bucket["failed"] for bucket in snapshot["chart"]) == 1
{%- endif %}
    assert skipped("recent") - before[0] >= 2 * len(bad)
    assert skipped("bucket") - before[1] >= 3


async def test_activity_keys_of_another_type_show_nothing_and_break_nothing(
    task_pool: ArqRedis,
) -> None:
    await task_pool.hset(activity.recent_key(queue()), "not", "a list")  # type: ignore[misc]
    await task_pool.sadd(activity.failures_key(queue()), "not a list")  # type: ignore[misc]
    bucket = activity.bucket_key(queue(), activity.bucket_start(datetime.now(UTC).timestamp()))
    await task_pool.rpush(bucket, "not a hash")  # type: ignore[misc]

    assert await activity.recent_jobs(task_pool, queue()) == []
    assert await activity.recent_jobs(task_pool, queue(), failures=True) == []
    counts = await activity.queue_counts(task_pool, queue())
    assert counts.last_minute == dict.fromkeys(activity.OUTCOMES, 0)
{%- if api %}
    async with serving() as client:
        responses = await every_route(client)
    snapshot = responses["/dashboard/snapshot.json"].json()
    assert (snapshot["recent"], snapshot["failures"]) == ([], [])
    assert snapshot["chart"][-1]["complete"] == 0
{%- endif %}


# Dead letters: {% if api %}the dashboard lists them, {% endif %}`just dead-letters` prints them, requeue takes one.


async def test_unreadable_dead_letters_are_skipped_and_the_good_one_shown_and_taken(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    _, failed = await good_records(task_pool, run_burst_worker)
    [raw] = await task_pool.lrange(dead_letters.dead_letter_key(queue()), 0, -1)  # type: ignore[misc]
    good = json.loads(raw)
    bad = [
        *BAD_BYTES.values(),
        *spoiled(good, job_id=None, args="not a list", kwargs=[], tries="3", failed_at=...),
        serialize({**deserialize(raw), "enqueued_at": "not a tagged time"}),
        raw.replace(b'"datetime"', b'"no-such-type"'),
    ]
    await task_pool.rpush(dead_letters.dead_letter_key(queue()), *bad)  # type: ignore[misc]
    await task_pool.lpush(dead_letters.dead_letter_key(queue()), *bad)  # type: ignore[misc]
    before = skipped("dead-letter")

    assert [letter.job_id for letter in await dead_letters.newest(task_pool, queue(), 1)] == [
        failed
    ]
    assert [letter.job_id for letter in await dead_letters.all_letters(task_pool, queue())] == [
        failed
    ]
{%- if api %}
    async with serving() as client:  # its lifespan closes the pool: no reads after it
        responses = await every_route(client)
        taken = await dead_letters.take(task_pool, queue(), failed)
    snapshot = responses["/dashboard/snapshot.json"].json()
    assert [letter["job_id"] for letter in snapshot["dead_letters"]] == [failed]
{%- else %}
    taken = await dead_letters.take(task_pool, queue(), failed)
{%- endif %}
    assert taken is not None
    assert taken.job_id == failed
    assert skipped("dead-letter") - before >= 2 * len(bad)


async def test_a_dead_letter_list_of_another_type_counts_none_and_breaks_nothing(
    task_pool: ArqRedis,
) -> None:
    await task_pool.set(dead_letters.dead_letter_key(queue()), b"not a list")

    assert await dead_letters.count(task_pool, queue()) == 0
    assert await dead_letters.all_letters(task_pool, queue()) == []
    assert await dead_letters.take(task_pool, queue(), "any") is None
    assert (await queue_stats(task_pool, queue())).dead_letters == 0
{%- if api %}
    async with serving() as client:
        responses = await every_route(client)
    assert metric(responses["/metrics"].text, "arq_queue_dead_letters") == 0
    assert responses["/dashboard/snapshot.json"].json()["dead_letters"] == []
{%- endif %}


# Results and queued jobs: a job's handle{% if api %}, GET /jobs/{id} and the dashboard's lookup{% endif %}.


def result_record(**changes: Any) -> bytes:
    """A result as arq writes it, with `changes`."""
    record = {
        "t": 1,
        "f": "example_task",
        "a": [],
        "k": {},
        "et": 1_700_000_000_000,
        "s": True,
        "r": "done",
        "st": 1_700_000_000_100,
        "ft": 1_700_000_000_200,
        "q": "arq:queue",
        "id": "x",
    }
    return json.dumps({**record, **changes}).encode()


BAD_RESULTS = {
    **BAD_BYTES,
    "a try of another type": result_record(t="1"),
    "a function of another type": result_record(f=["example_task"]),
    "a time of another type": result_record(et="yesterday"),
    "a time out of range": result_record(ft=10**30),
    "no outcome": result_record(s=None),
    "an unknown tagged value": result_record(r={"__type__": "pickle", "value": "..."}),
}


def handle(job_id: str, pool: ArqRedis) -> Job[Any]:
    return Job(job_id, pool, _queue_name=queue(), _deserializer=deserialize)


@pytest.mark.parametrize("payload", BAD_RESULTS.values(), ids=BAD_RESULTS.keys())
async def test_a_job_whose_result_cannot_be_read_reads_as_failed_with_a_note(
    task_pool: ArqRedis, payload: bytes
) -> None:
    job_id = full_id("unreadable")  # written by hand, under the id the project gives it
    await task_pool.set(result_key_prefix + job_id, payload)
    before = skipped("result")

    job = handle(job_id, task_pool)
    assert await job.status() == "failed"
    info = await job.info()
    assert info is not None
    result = await job.result_info()
    assert result is not None
    assert isinstance(result.result, UnreadableResult)
    assert "result cannot be read" in result.result.message
    with pytest.raises(UnreadableResult):
        await job.result(timeout=1)
{%- if api %}
    async with serving() as client:
        responses = await every_route(client, job_id=job_id)
    view = responses[f"/jobs/{job_id}"].json()
    assert view["status"] == "failed"
    assert view["error"]["type"] == "UnreadableResult"
    assert "result cannot be read" in view["error"]["message"]
{%- endif %}
    assert skipped("result") > before


async def test_a_result_of_another_type_reads_as_failed_with_a_note(task_pool: ArqRedis) -> None:
    job_id = full_id("unreadable")
    await task_pool.hset(result_key_prefix + job_id, "not", "a string")  # type: ignore[misc]

    assert await handle(job_id, task_pool).status() == "failed"
    result = await handle(job_id, task_pool).result_info()
    assert result is not None
    assert isinstance(result.result, UnreadableResult)
    with pytest.raises(UnreadableResult):
        await handle(job_id, task_pool).result(timeout=1)
{%- if api %}
    async with serving() as client:
        responses = await every_route(client, job_id=job_id)
    view = responses[f"/jobs/{job_id}"].json()
    assert (view["status"], view["error"]["type"]) == ("failed", "UnreadableResult")
    # Nothing of it can be read: no time is shown (not 1970).
    assert [view[name] for name in ("enqueued_at", "started_at", "finished_at")] == [None] * 3
{%- endif %}


async def test_a_result_whose_outcome_is_readable_says_how_the_job_ended(
    task_pool: ArqRedis,
) -> None:
    job_id = full_id("unreadable")
    await task_pool.set(result_key_prefix + job_id, result_record(t="1", f=7))

    result = await handle(job_id, task_pool).result_info()

    assert result is not None
    assert str(result.result).startswith(
        "UnreadableResult: the job completed, but its result cannot be read"
    )
    assert result.enqueue_time == datetime.fromtimestamp(1_700_000_000, UTC)  # what was read
{%- if api %}
    async with serving() as client:
        view = (await client.get(f"/jobs/{job_id}")).json()
    assert view["status"] == "failed"
    assert view["error"]["message"].startswith("the job completed, but its result cannot be read")
{%- endif %}


def job_record(**changes: Any) -> bytes:
    """A queued job as arq writes it, with `changes`."""
    return json.dumps({"f": "example_task", "a": [], "k": {}, "t": 1, "et": 1, **changes}).encode()


BAD_JOBS = {
    **BAD_BYTES,
    "a function of another type": job_record(f=7),
    "a try of another type": job_record(t="1"),
    "a time out of range": job_record(et=10**30),
    "no arguments": json.dumps({"f": "example_task", "k": {}, "et": 1}).encode(),
}


@pytest.mark.parametrize("payload", BAD_JOBS.values(), ids=BAD_JOBS.keys())
async def test_a_queued_job_that_cannot_be_read_shows_as_the_worker_will_run_it(
    task_pool: ArqRedis, payload: bytes
) -> None:
    job_id = full_id("unreadable")
    await task_pool.set(job_key_prefix + job_id, payload)
    await task_pool.zadd(queue(), {job_id: 1})

    info = await handle(job_id, task_pool).info()
    assert info is not None
    assert info.function == "reject_unreadable_job"
{%- if api %}
    async with serving() as client:
        responses = await every_route(client, job_id=job_id)
    view = responses[f"/jobs/{job_id}"].json()
    assert (view["status"], view["function"]) == ("queued", "reject_unreadable_job")
{%- endif %}


@pytest.mark.parametrize("payload", BAD_BYTES.values(), ids=BAD_BYTES.keys())
async def test_a_queued_job_that_cannot_be_read_can_be_aborted(
    task_pool: ArqRedis, payload: bytes
) -> None:
    job_id = full_id("unreadable")
    await task_pool.set(job_key_prefix + job_id, payload)
    await task_pool.zadd(queue(), {job_id: 1})
{%- if api %}

    async with serving() as client:
        response = await client.delete(f"/jobs/{job_id}")
        assert await task_pool.zscore(queue(), job_id) is None

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "aborted"
{%- else %}

    assert await handle(job_id, task_pool).abort(timeout=1)
    assert await task_pool.zscore(queue(), job_id) is None
{%- endif %}


async def test_a_queued_job_of_another_type_reads_as_the_worker_will_run_it(
    task_pool: ArqRedis,
) -> None:
    job_id = full_id("unreadable")
    await task_pool.hset(job_key_prefix + job_id, "not", "a string")  # type: ignore[misc]
    await task_pool.zadd(queue(), {job_id: 1})

    info = await handle(job_id, task_pool).info()

    assert info is not None
    assert info.function == "reject_unreadable_job"


@pytest.mark.parametrize("count", [b"many", b"\xff", b"-1", b"1e3"])
async def test_a_try_count_that_cannot_be_read_counts_none(
    task_pool: ArqRedis, count: bytes
) -> None:
    counted, hashed, good = full_id("counted"), full_id("hashed"), full_id("good")
    await task_pool.set(retry_key_prefix + counted, count)
    await task_pool.hset(retry_key_prefix + hashed, "not", "a count")  # type: ignore[misc]
    await task_pool.set(retry_key_prefix + good, b"2")

    assert await handle(counted, task_pool).tries_started() == 0
    assert await handle(hashed, task_pool).tries_started() == 0
    assert await handle(good, task_pool).tries_started() == 2
    assert await handle(full_id("none"), task_pool).tries_started() == 0
{%- if api %}

    queued = await task_pool.enqueue_job("example_task", message="counted", _job_id="counted")
    assert queued is not None
    assert queued.job_id == counted  # the job whose try count cannot be read
    async with serving() as client:
        responses = await every_route(client, job_id=counted)
    view = responses[f"/jobs/{counted}"].json()
    assert (view["status"], view["try"]) == ("queued", 1)
{%- endif %}


async def test_good_results_still_read_as_they_did(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    done, failed = await good_records(task_pool, run_burst_worker)
    before = skipped("result")

    assert await handle(done, task_pool).status() == "complete"
    assert await handle(failed, task_pool).status() == "failed"
    assert await handle(done, task_pool).result(timeout=1) == "Processed: good"
    with pytest.raises(JobFailed, match="for good"):
        await handle(failed, task_pool).result(timeout=1)
{%- if api %}
    async with serving() as client:
        completed = (await client.get(f"/jobs/{done}")).json()
        failure = (await client.get(f"/jobs/{failed}")).json()
    assert (completed["status"], completed["function"]) == ("complete", "example_task")
    assert (failure["status"], failure["error"]["type"]) == ("failed", "PermanentError")
{%- endif %}
    assert skipped("result") == before


# What is skipped is counted, and logged once.


def test_a_record_is_logged_once_however_often_it_is_read_and_counted_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = skipped("heartbeat")
    with caplog.at_level(logging.WARNING, logger=records.__name__):
        for _ in range(3):
            assert records.read_or_skip("heartbeat", "q:workers:x", json.loads, b"{") is None
        records.skip("heartbeat", "q:workers:x", "another record", b"other")

    assert skipped("heartbeat") - before == 4
    assert len(caplog.records) == 2
    assert "q:workers:x" in caplog.records[0].getMessage()


def test_the_records_it_remembers_as_logged_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=records.__name__):
        for index in range(records.LOGGED_LIMIT + 10):
            records.skip("recent", f"key-{index}", "bad")
        records.skip("recent", "key-0", "bad")  # forgotten by now: logged again

    assert len(caplog.records) == records.LOGGED_LIMIT + 11
