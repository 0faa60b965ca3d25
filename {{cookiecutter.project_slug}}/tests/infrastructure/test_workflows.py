# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Chains and groups (client/workflows.py, store/workflows.py): steps in order on their own
queues, each given the one before's result; a failed step stops its chain; a group's callback
runs once with every member's result; aborting; bad workflows refused before anything is
queued; and a worker killed mid-workflow loses and doubles nothing (real processes)."""

import asyncio
import importlib
import os
import re
import signal
from types import ModuleType
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

from {{ cookiecutter.package_name }}.config import get_settings
from {{ cookiecutter.package_name }}.infrastructure import registry
from {{ cookiecutter.package_name }}.infrastructure.store.workflows import (
    MemberRun,
    advance_call,
    handoff,
    handoffs_key,
    membership,
)
from {{ cookiecutter.package_name }}.queue import (
    JobAborted,
    JobArgumentError,
    JobCall,
    JobFailed,
    UnknownTaskError,
    WorkflowNotFound,
    WorkflowStatus,
    enqueue_chain,
    enqueue_group,
    get_job,
    get_workflow,
)

from .conftest import Configure, RunningWorker, WorkerProcesses, command_calls

QUEUES = "critical,default,bulk"
SETTINGS = "tests.infrastructure.workflow_jobs.WorkerSettings"


@pytest.fixture(autouse=True)
def workflow_jobs(configure: Configure, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """QUEUES=critical,default,bulk, and workflow_jobs.py's jobs declared for this test only."""
    configure(QUEUES=QUEUES)
    registry.load_jobs()
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    from . import workflow_jobs

    return importlib.reload(workflow_jobs)


def every_queue(jobs: ModuleType) -> dict[str, Any]:
    """Worker overrides: these jobs, and every queue of QUEUES served."""
    keys = get_settings().queue_keys
    return {"functions": jobs.WorkerSettings["functions"], "queue_names": list(keys.values())}


async def ran(pool: ArqRedis) -> list[str]:
    return [entry.decode() for entry in await pool.lrange("ran", 0, -1)]  # type: ignore[misc]


async def test_a_chain_runs_its_steps_in_order_each_on_its_queue_with_the_previous_result(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    flow = await enqueue_chain(
        jobs.flow_add.call(1, 2),
        jobs.flow_add.options(queue="bulk").step(10),
        jobs.flow_double.options(queue="critical").step(),
    )
    assert flow is not None
    state = await flow.state()
    assert state.status == WorkflowStatus.running
    assert [m.status for m in state.members] == ["queued", "waiting", "waiting"]

    async with running_worker(**every_queue(jobs)):
        assert await flow.result(timeout=10, poll_delay=0.05) == 26

    assert await ran(task_pool) == ["add 1 2", "add 3 10", "double 13"]
    state = await flow.state()
    assert state.status == WorkflowStatus.complete
    assert [(m.function, m.queue, m.status) for m in state.members] == [
        ("flow_add", "default", "complete"),
        ("flow_add", "bulk", "complete"),
        ("flow_double", "critical", "complete"),
    ]
    assert (await get_workflow(flow.id)).id == flow.id
    assert await task_pool.keys("*:handoffs") == []  # the moves to other queues all ran


async def test_a_chain_on_one_queue_moves_on_in_each_outcome_s_script_not_a_transaction(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    # Each step's outcome and the move to the next step are one script call
    # (FINISH_AND_ADVANCE), the last step's a plain outcome (finishes.py): none is a MULTI.
    jobs = workflow_jobs
    flow = await enqueue_chain(
        jobs.flow_add.call(1, 2), *(jobs.flow_double.step() for _ in range(4))
    )
    assert flow is not None
    steps = (await flow.state()).members
    last_result = result_key_prefix + steps[-1].job_id
    before = await command_calls(task_pool, "exec")

    async with running_worker(**every_queue(jobs)):
        for _ in range(250):  # up to 5 s; not the flow's result(), which reads in a MULTI
            if await task_pool.exists(last_result):
                break
            await asyncio.sleep(0.02)
        assert await command_calls(task_pool, "exec") == before

    assert await flow.result(timeout=1) == 48
    assert await ran(task_pool) == ["add 1 2", "double 3", "double 6", "double 12", "double 24"]
    for step in steps:
        for prefix in (job_key_prefix, in_progress_key_prefix, retry_key_prefix):
            assert not await task_pool.exists(prefix + step.job_id)
        assert 0 < await task_pool.pttl(result_key_prefix + step.job_id) <= 3_600_000
    assert await task_pool.zcard(get_settings().queue_keys["default"]) == 0


async def test_a_failed_step_stops_the_chain_and_the_failure_names_it(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    flow = await enqueue_chain(
        jobs.flow_add.call(1, 2),
        jobs.flow_refuse.step(3),
        jobs.flow_double.step(),
        jobs.flow_double.step(),
    )
    assert flow is not None
    async with running_worker(**every_queue(jobs)):
        with pytest.raises(
            JobFailed, match=r"step 1 \(flow_refuse\) failed: ValueError: 3 is refused"
        ):
            await flow.result(timeout=10, poll_delay=0.05)
        await asyncio.sleep(0.3)  # nothing more runs

    state = await flow.state()
    assert state.status == WorkflowStatus.failed
    assert [m.status for m in state.members] == ["complete", "failed", "cancelled", "cancelled"]
    assert await ran(task_pool) == ["add 1 2"]


async def test_a_group_s_callback_runs_once_with_every_result_in_order(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    members = [jobs.flow_member.call(n, 0.01 * (n % 3)) for n in range(30)]
    flow = await enqueue_group(members, then=jobs.flow_gather.options(queue="critical").step("all"))
    assert flow is not None
    async with running_worker(**every_queue(jobs), max_jobs=10):
        result = await flow.result(timeout=10, poll_delay=0.05)

    assert result == {"label": "all", "values": list(range(30)), "errors": []}
    assert await task_pool.get("callback-runs") == b"1"
    state = await flow.state()
    assert state.status == WorkflowStatus.complete
    assert state.callback is not None
    assert (state.callback.role, state.callback.queue) == ("callback", "critical")
    assert {m.status for m in state.members} == {"complete"}


async def test_a_group_fails_with_a_member_or_passes_its_error_to_the_callback(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    members = [jobs.flow_refuse.call(n, 2) for n in range(4)]
    failing = await enqueue_group(members, then=jobs.flow_gather.step("fail"))
    passing = await enqueue_group(members, then=jobs.flow_gather.step("pass"), on_error="pass")
    no_callback = await enqueue_group([jobs.flow_refuse.call(n, 9) for n in range(3)])
    assert failing is not None
    assert passing is not None
    assert no_callback is not None
    async with running_worker(**every_queue(jobs)):
        with pytest.raises(JobFailed, match=r"member 2 \(flow_refuse, .*\) failed: ValueError"):
            await failing.result(timeout=10, poll_delay=0.05)
        assert await passing.result(timeout=10, poll_delay=0.05) == {
            "label": "pass",
            "values": [0, 1, 3],
            "errors": ["ValueError: 2 is refused"],
        }
        assert await no_callback.result(timeout=10, poll_delay=0.05) == [0, 1, 2]

    assert await task_pool.get("callback-runs") == b"1"  # the failed group's never ran
    state = await failing.state()
    assert state.status == WorkflowStatus.failed
    assert state.callback is not None
    assert state.callback.status == "failed"


async def test_aborting_a_chain_aborts_its_running_step_and_cancels_the_rest(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    flow = await enqueue_chain(
        jobs.flow_waits.call(1), jobs.flow_double.step(), jobs.flow_double.step()
    )
    assert flow is not None
    async with running_worker(**every_queue(jobs)):
        for _ in range(250):
            if await task_pool.llen("started"):  # type: ignore[misc]
                break
            await asyncio.sleep(0.02)
        assert await flow.abort(timeout=5, poll_delay=0.05)
        with pytest.raises(JobAborted, match=r"step 0 \(flow_waits\) aborted"):
            await flow.result(timeout=5, poll_delay=0.05)

    state = await flow.state()
    assert state.status == WorkflowStatus.aborted
    assert [m.status for m in state.members] == ["aborted", "aborted", "aborted"]
    assert await ran(task_pool) == []


async def test_a_member_aborted_alone_aborts_its_group_or_passes_as_jobaborted(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    members = [jobs.flow_add.call(1, 1), jobs.flow_waits.call(7)]
    failing = await enqueue_group(members, then=jobs.flow_gather.step("fail"))
    passing = await enqueue_group(members, then=jobs.flow_echo.step(), on_error="pass")
    assert failing is not None
    assert passing is not None
    async with running_worker(**every_queue(jobs)):
        for _ in range(250):
            if await task_pool.llen("started") == 2:  # type: ignore[misc]
                break
            await asyncio.sleep(0.02)
        for flow in (failing, passing):
            waiting = (await flow.state()).members[1]
            assert await (await get_job(waiting.job_id)).abort(timeout=5, poll_delay=0.05)
        with pytest.raises(JobAborted) as aborted:
            await failing.result(timeout=5, poll_delay=0.05)
        passed = await passing.result(timeout=5, poll_delay=0.05)

    # As a chain whose step is aborted: the group reads aborted, naming the member, not
    # "failed: CancelledError: ".
    said = "member 1 (flow_waits, {}) aborted: JobAborted: the job was aborted"
    state = await failing.state()
    assert str(aborted.value) == said.format(state.members[1].job_id)
    assert (state.status, state.failure) == (WorkflowStatus.aborted, str(aborted.value))
    assert state.callback is not None
    assert state.callback.status == "aborted"
    assert await task_pool.get("callback-runs") is None  # it never ran
    # With on_error="pass" the callback runs, given the member's JobAborted in its place.
    assert passed[0] == 2
    assert isinstance(passed[1], JobAborted)
    assert str(passed[1]) == "the job was aborted"


async def test_a_job_whose_wait_outlasts_its_expires_ends_its_workflow_naming_it(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    first = jobs.flow_slow_add.call(1, 2, 0.5)
    chain = await enqueue_chain(first, jobs.flow_double.options(expires=0.2).step())
    group = await enqueue_group([first], then=jobs.flow_gather.options(expires=0.2).step("x"))
    assert chain is not None
    assert group is not None
    async with running_worker(**every_queue(jobs)):
        with pytest.raises(JobFailed, match=r"step 1 \(flow_double\) failed: .*job expired"):
            await chain.result(timeout=10, poll_delay=0.05)
        with pytest.raises(JobFailed, match=r"callback \(flow_gather\) failed: .*job expired"):
            await group.result(timeout=10, poll_delay=0.05)

    # Not "running" for good: the step read not_found, and nothing ever queued it.
    step = (await chain.state()).members[1]
    assert (step.status, step.error) == ("failed", "JobExecutionFailed: job expired")
    assert await ran(task_pool) == ["add 1 2", "add 1 2"]


async def test_a_workflow_whose_jobs_results_have_expired_is_not_found_not_running(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    flow = await enqueue_chain(jobs.flow_add.call(1, 2), jobs.flow_double.step())
    assert flow is not None
    async with running_worker(**every_queue(jobs), keep_result=0):
        for _ in range(250):
            if len(await ran(task_pool)) == 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # its last outcome written

    with pytest.raises(WorkflowNotFound, match="results have expired"):
        await flow.state()
    with pytest.raises(WorkflowNotFound):  # at once, where it waited out its timeout
        await flow.result(timeout=5, poll_delay=0.05)


async def test_a_step_for_another_queue_recorded_by_a_worker_that_died_runs_at_a_heartbeat(
    running_worker: RunningWorker, task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    """A worker that wrote a step's outcome, with the move to the next step's queue recorded
    (`Q:handoffs`), and died before it ran it: the next worker on that queue runs it."""
    jobs = workflow_jobs
    flow = await enqueue_chain(
        jobs.flow_add.call(1, 2), jobs.flow_double.options(queue="bulk").step()
    )
    assert flow is not None
    first, second = (m.job_id for m in (await flow.state()).members)
    payload = await task_pool.get(f"arq:job:{first}")
    joined = membership(payload)
    assert joined is not None
    call = advance_call(first, MemberRun(joined, "flow_add", (True, 3)), 0)
    assert call is not None
    queue_name = get_settings().queue_name
    # What the dead worker left: the first step done (taken off its queue), the move recorded.
    await task_pool.zrem(queue_name, first)
    await task_pool.hset(handoffs_key(queue_name), first, handoff(*call))  # type: ignore[misc]

    async with running_worker(**every_queue(jobs)):
        assert await flow.result(timeout=10, poll_delay=0.05) == 6
    assert await ran(task_pool) == ["double 3"]
    assert await task_pool.hlen(handoffs_key(queue_name)) == 0  # type: ignore[misc]
    assert second.startswith(get_settings().queue_keys["bulk"])


async def test_bad_workflows_are_refused_before_anything_is_queued(
    task_pool: ArqRedis, workflow_jobs: ModuleType
) -> None:
    jobs = workflow_jobs
    refusals: list[tuple[Any, str]] = [
        (enqueue_chain(), "a chain needs at least one step"),
        (enqueue_group([]), "a group needs at least one member"),
        (
            enqueue_chain(jobs.flow_add.call(1, 2), jobs.flow_add.step()),
            r"step 1: cannot enqueue 'flow_add' \(its first argument is what the job before it "
            r"returns\): missing a required argument: 'more'",
        ),
        (
            enqueue_chain(jobs.flow_add.call(1, 2), jobs.flow_add.call(1, 2)),
            r"step 1: cannot enqueue 'flow_add' .*too many positional arguments",
        ),
        (
            enqueue_chain(jobs.flow_add.call(1, 2), jobs.flow_double.options(defer_by=5).step()),
            "step 1: cannot enqueue 'flow_double' deferred: it starts when the step before it succeeds",
        ),
        (
            enqueue_group(
                [jobs.flow_add.call(1, 2)], then=jobs.flow_gather.options(defer_by=5).step("x")
            ),
            "the callback: cannot enqueue 'flow_gather' deferred: it starts when the last member ends",
        ),
        (
            enqueue_group([jobs.flow_add.call(1, 2)], then=jobs.flow_gather.call([], "x")),
            r"the callback: cannot enqueue 'flow_gather' \(its first argument is what the job "
            r"before it returns\): too many positional arguments",
        ),
        (
            enqueue_chain(jobs.flow_add.call(1, 2), jobs.flow_double),
            "step 1: give a job's call\\(...\\) or step\\(...\\), not JobHandle",
        ),
        (
            enqueue_group([jobs.flow_add.options(job_id="mine").call(1, 2)]),
            "member 0: cannot enqueue 'flow_add' with its own job id",
        ),
        (
            enqueue_group([jobs.flow_add.call(1, 2)], on_error="ignore"),  # type: ignore[arg-type]
            "on_error must be 'fail' or 'pass'",
        ),
        (enqueue_chain(jobs.flow_add.call(1, 2), workflow_id="a.b"), r"\(no '\.'"),
        # Ids the API could not look up: refused here, not found nowhere later.
        (
            enqueue_chain(jobs.flow_add.call(1, 2), workflow_id="a b/c\n{x}"),
            "a workflow id is letters, digits and _ - :",
        ),
        (
            enqueue_group([jobs.flow_add.call(1, 2)], workflow_id="n" * 240),
            "workflow id too long: its jobs' ids would take up to 2.. characters, over the 256",
        ),
    ]
    for coroutine, message in refusals:
        with pytest.raises(JobArgumentError, match=message):
            await coroutine
    unknown = enqueue_group([jobs.flow_add.call(1, 2), JobCall("nope", ())])
    with pytest.raises(UnknownTaskError, match="member 1: no job named 'nope'"):
        await unknown
    assert await task_pool.keys("*") == []

    once = await enqueue_chain(jobs.flow_add.call(1, 2), workflow_id="nightly")
    assert once is not None
    assert await enqueue_chain(jobs.flow_add.call(1, 2), workflow_id="nightly") is None
    with pytest.raises(WorkflowNotFound):
        await (await get_workflow("no-such-flow")).state()
    # By its whole id, without its queue's key, or by the id it was given, as over HTTP.
    for name in (once.id, "wf-nightly", "nightly"):
        assert (await get_workflow(name)).id == once.id
    with pytest.raises(WorkflowNotFound):  # a job of it is not the workflow
        await (await get_workflow("wf-nightly.0")).state()


@pytest.mark.slow
async def test_a_worker_killed_mid_workflow_loses_and_doubles_nothing(
    task_pool: ArqRedis, worker_processes: WorkerProcesses, workflow_jobs: ModuleType
) -> None:
    """Three worker processes run a group of 300 members (on `bulk`, with a callback on
    `default`) and a chain of 40 steps (two on `critical`, two on `default`, and so on: a step
    hands the next to its own worker, or moves it to the other queue; those queues go first).
    One worker is killed (SIGKILL) with both under way. Every member and step runs (the killed
    worker's again, after the heartbeat), only those it was running run twice, and the
    callback runs exactly once with every result."""
    jobs = workflow_jobs
    # A job claimed within heartbeat.py's GATHER_SECONDS of the kill is not listed as running
    # yet: it waits out its in-progress mark, the job timeout plus arq's 10 s.
    for _ in range(3):
        worker_processes.start(
            SETTINGS,
            QUEUES=QUEUES,
            WORKER_QUEUES=QUEUES,
            WORKER_JOB_TIMEOUT="2",
            WORKER_MAX_JOBS="10",
        )
    group = await enqueue_group(
        [jobs.flow_member.options(queue="bulk").call(n, 0.1) for n in range(300)],
        then=jobs.flow_gather.step("group"),
    )
    steps = [jobs.flow_slow_add.call(0, 1, 0.05)]
    steps += [
        jobs.flow_slow_add.options(queue="critical" if n // 2 % 2 else "default").step(1, 0.05)
        for n in range(39)
    ]
    chain = await enqueue_chain(*steps)
    assert group is not None
    assert chain is not None
    for _ in range(1000):
        if await task_pool.hlen("runs") >= 100 and await task_pool.llen("ran") >= 5:  # type: ignore[misc]
            break
        await asyncio.sleep(0.01)
    # Both under way: the callback has not run, the chain's last step neither.
    assert await task_pool.get("callback-runs") is None
    assert await task_pool.llen("ran") < 40  # type: ignore[misc]
    victim = worker_processes.started[0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    log = worker_processes.log(0)
    # What the killed worker had started: those may run again (its log says a function
    # returned before the outcome is written, so a finished line proves nothing).
    started_there = {int(n) for n in re.findall(r":flow_member\((\d+),", log)}

    result = await group.result(timeout=60, poll_delay=0.1)
    assert result == {"label": "group", "values": list(range(300)), "errors": []}
    assert await chain.result(timeout=60, poll_delay=0.1) == 40
    assert await task_pool.get("callback-runs") == b"1"
    runs = {int(n): int(count) for n, count in (await task_pool.hgetall("runs")).items()}  # type: ignore[misc]
    assert sorted(runs) == list(range(300))
    ran_twice = {n for n, count in runs.items() if count > 1}
    assert ran_twice <= started_there
    assert len(ran_twice) <= 10  # at most what it was running: WORKER_MAX_JOBS
    steps_ran = await ran(task_pool)  # the step the killed worker ran, if any, twice in a row
    assert [entry for i, entry in enumerate(steps_ran) if steps_ran[i - 1 : i] != [entry]] == [
        f"add {n} 1" for n in range(40)
    ]
    assert len(steps_ran) <= 41
    print(
        f"kill -9 mid-workflow: 300 members and 40 steps ran; {len(ran_twice)} members and "
        f"{len(steps_ran) - 40} steps cut short ran again; the callback ran once"
    )
