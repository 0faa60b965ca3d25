# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The workflow routes (api/workflows.py), in process, against the test Redis and a worker: a
chain followed to its end, a group aborted while it runs, and unknown or ended workflows; the
dashboard's view of a workflow; and a member's error, passed to a callback, in every JSON view."""

import asyncio
import html
import importlib
import json
import re
from collections.abc import AsyncIterator
from types import ModuleType
from urllib.parse import quote

import httpx
import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.keys import bare_job_id
from {{ cookiecutter.package_name }}.queue import JobFailed, enqueue_chain, enqueue_group

from .conftest import Configure, RunningWorker
from .test_api_jobs import serving
from .test_workflows import QUEUES, every_queue


@pytest.fixture(autouse=True)
def workflow_jobs(configure: Configure, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """QUEUES=critical,default,bulk, the dashboard on, and workflow_jobs.py's jobs declared for
    this test only."""
    configure(QUEUES=QUEUES, DASHBOARD_PASSWORD=PASSWORD)
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import workflow_jobs

    return importlib.reload(workflow_jobs)


@pytest.fixture
async def client(task_pool: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app on the test server (QUEUES as this module sets them)."""
    async with serving(create_app()) as client:
        yield client


PASSWORD = "correct horse battery staple"


def path(workflow_id: str) -> str:
    return f"/workflows/{quote(workflow_id, safe=':')}"


async def test_a_chain_is_followed_to_its_end_step_by_step(
    client: httpx.AsyncClient, running_worker: RunningWorker, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    flow = await enqueue_chain(
        jobs.flow_add.call(1, 2), jobs.flow_double.options(queue="bulk").step()
    )
    assert flow is not None
    waiting = (await client.get(path(flow.id))).json()
    assert waiting["status"] == "running"
    assert [m["status"] for m in waiting["members"]] == ["queued", "waiting"]

    async with running_worker(**every_queue(jobs)):
        await flow.result(timeout=10, poll_delay=0.05)
    reply = await client.get(path(flow.id))

    assert reply.status_code == 200
    view = reply.json()
    assert view["kind"] == "chain"
    assert view["status"] == "complete"
    assert view["failure"] is None
    assert view["callback"] is None
    assert [(m["function"], m["queue"], m["role"], m["status"]) for m in view["members"]] == [
        ("flow_add", "default", "step", "complete"),
        ("flow_double", "bulk", "step", "complete"),
    ]
    job = await client.get(f"/jobs/{quote(view['members'][1]['job_id'], safe=':')}")
    assert job.json()["result"] == 6
    short = await client.get(path(bare_job_id(flow.id)))  # without its queue's key
    assert short.json() == view
    a_job = await client.get(path(view["members"][0]["job_id"]))
    assert a_job.status_code == 404  # a job of the workflow is not the workflow
    ended = await client.delete(path(flow.id))
    assert ended.status_code == 409
    assert ended.json()["detail"].endswith("has already ended (complete)")


async def test_a_running_group_is_aborted_with_its_callback(
    client: httpx.AsyncClient, running_worker: RunningWorker, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    flow = await enqueue_group(
        [jobs.flow_waits.call(n) for n in range(3)], then=jobs.flow_gather.step("x")
    )
    assert flow is not None
    async with running_worker(**every_queue(jobs)):
        for _ in range(250):
            if (await client.get(path(flow.id))).json()["members"][2]["status"] == "in_progress":
                break
            await asyncio.sleep(0.02)
        reply = await client.delete(path(flow.id))

    assert reply.status_code == 200
    view = reply.json()
    assert view["status"] == "aborted"
    assert [m["status"] for m in view["members"]] == ["aborted"] * 3
    assert view["callback"]["status"] == "aborted"
    assert view["failure"].startswith("callback (flow_gather) aborted")


async def test_an_unknown_or_malformed_workflow_id_is_a_problem(client: httpx.AsyncClient) -> None:
    unknown = await client.get(path("{my:default}:wf-nope"))
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert (await client.delete(path("wf-nope"))).status_code == 404
    assert (await client.get("/workflows/a%20b")).status_code == 422


async def test_a_workflow_is_found_by_the_id_it_was_queued_with(
    client: httpx.AsyncClient, workflow_jobs: ModuleType
) -> None:
    flow = await enqueue_chain(workflow_jobs.flow_add.call(1, 2), workflow_id="nightly")
    assert flow is not None
    login = ("operator", PASSWORD)

    views = [(await client.get(path(name))).json() for name in (flow.id, "wf-nightly", "nightly")]
    page = await client.get("/dashboard", params={"job": "nightly"}, auth=login)

    assert [view["workflow_id"] for view in views] == [flow.id] * 3
    assert '<tr class="member' in page.text


async def test_the_dashboard_shows_a_workflow_looked_up_by_its_id_or_a_member_s(
    client: httpx.AsyncClient, running_worker: RunningWorker, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    members = [jobs.flow_refuse.call(n, 1) for n in range(3)]
    flow = await enqueue_group(members, then=jobs.flow_gather.options(queue="critical").step("x"))
    assert flow is not None
    async with running_worker(**every_queue(jobs)):
        with pytest.raises(JobFailed):
            await flow.result(timeout=10, poll_delay=0.05)
    state = await flow.state()
    login = ("operator", PASSWORD)

    by_id = (await client.get("/dashboard", params={"job": flow.id}, auth=login)).text
    by_member = await client.get("/dashboard", params={"job": state.members[1].job_id}, auth=login)

    assert 'id="job-details"' not in by_id  # a workflow, not a job
    rows = re.findall(r'<tr class="member[^"]*">(.*?)</tr>', by_id, re.DOTALL)
    assert len(rows) == 4
    assert [re.findall(r'class="badge (\w+)"', row) for row in rows] == [
        ["complete"],
        ["failed"],
        ["complete"],
        ["failed"],
    ]
    assert "member 1 (flow_refuse, " in by_id  # the failure, named
    assert re.search(r"<td>then</td>\s*<td><code>flow_gather</code>", by_id)
    assert 'id="job-details"' in by_member.text  # the job, and its workflow below
    assert '<tr class="member current">' in by_member.text


async def test_a_member_s_error_in_a_callback_s_result_or_arguments_reads_as_json(
    client: httpx.AsyncClient, running_worker: RunningWorker, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    members = [jobs.flow_refuse.call(2, 1), jobs.flow_refuse.call(5, 5)]
    echoed = await enqueue_group(members, then=jobs.flow_echo.step(), on_error="pass")
    summed = await enqueue_group(members, then=jobs.flow_sum.step(), on_error="pass")
    assert echoed is not None
    assert summed is not None
    async with running_worker(**every_queue(jobs)):
        await echoed.result(timeout=10, poll_delay=0.05)
        with pytest.raises(JobFailed):
            await summed.result(timeout=10, poll_delay=0.05)
    callback = (await echoed.state()).callback
    assert callback is not None
    callback_path = f"/jobs/{quote(callback.job_id, safe=':')}"
    error = {"type": "ValueError", "message": "5 is refused"}

    job = await client.get(callback_path)
    async with client.stream("GET", f"{callback_path}/events") as stream:
        events = [line async for line in stream.aiter_lines() if line.startswith("data: ")]
    snapshot = await client.get("/dashboard/snapshot.json", auth=("operator", PASSWORD))
    page = await client.get("/dashboard", auth=("operator", PASSWORD))

    # The callback's result holds a member's JobFailed: JSON shows it as a job's error.
    assert job.status_code == 200
    assert job.json()["result"] == [2, error]
    assert json.loads(events[-1].removeprefix("data: "))["result"] == [2, error]
    # flow_sum failed on it (max_tries 1): a dead letter whose argument holds the JobFailed.
    assert snapshot.status_code == 200
    letters = snapshot.json()["dead_letters"]
    assert [letter["args"] for letter in letters if letter["function"] == "flow_sum"] == [
        [[2, error]]
    ]
    assert page.status_code == 200
    assert json.dumps([[2, error]], ensure_ascii=False) in html.unescape(page.text)
