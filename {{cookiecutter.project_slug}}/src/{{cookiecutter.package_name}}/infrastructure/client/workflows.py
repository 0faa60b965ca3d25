# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Work that spans jobs: chains and groups, made here and followed with one handle.

    flow = await enqueue_chain(fetch_page.call(url), parse_page.step(), store_page.step("pages"))
    flow = await enqueue_group([resize.call(image, size) for size in SIZES], then=notify.step(user))
    state = await flow.state()           # WorkflowState: its status, and each job's
    value = await flow.result(timeout=60)
    await flow.abort()

A chain runs its steps one after the other, each on its own queue: a step after the first gets
the previous step's result as its first argument (`handle.step(...)` leaves it out). A failed
step (after its retries) stops the chain: the steps after it are cancelled, and the chain's
failure names the step. A group runs its members at once, over every worker; its callback
(`then=`), if any, runs once, after the last member ends, with the members' results in order.
With `on_error="fail"` (Celery's chord) a member that fails fails the group and the callback
never runs; with `"pass"` the callback runs anyway and finds the member's error (`JobFailed`)
in its place.

How the store keeps them, and why nothing is lost or doubled when a worker dies: see
store/workflows.py. A workflow's state is read from its jobs, the one record of what happened:
it is known as long as their results are kept (WORKER_KEEP_RESULT).
"""

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from ...config import get_settings
from ..keys import JOB_ID_MAX_LENGTH, bare_job_id, namespaced_job_id, new_job_id, queue_of
from ..limits import limited_key
from ..store.connection import unavailable
from ..store.job_handle import Job, JobStatus, enqueue_time_ms, outcome_of
from ..store.serialization import JobAborted, JobFailed
from ..store.workflows import (
    CANCEL_WAITING,
    STATE_LIFETIME_MS,
    WORKFLOW_ID_PREFIX,
    MemberFailed,
    Membership,
    workflow_key,
)
from .bulk import JobCall, check_call, chunks_of, write_all, write_of
from .enqueue import JobArgumentError, PreparedJob, get_task_pool, job_by_id, prepare_job

OnError = Literal["fail", "pass"]


# What a workflow id given to enqueue_chain or enqueue_group may hold (`_new_id`).
WORKFLOW_ID_PATTERN = re.compile(r"[A-Za-z0-9_:-]+")


class WorkflowNotFound(LookupError):
    """No workflow has this id, or its record has expired."""


class WorkflowStatus(StrEnum):
    running = "running"  # some of its jobs are still to run
    complete = "complete"  # its last step, or its callback (else every member), succeeded
    failed = "failed"  # a step, a member or the callback failed: `failure` says which
    aborted = "aborted"  # aborted (`abort()`), or one of its jobs was


@dataclass(frozen=True)
class MemberState:
    """One job of a workflow: its id, function, queue (a name in QUEUES), role (`step`,
    `member` or `callback`) and status: a `JobStatus` value, or `waiting` (for the jobs before
    it) or `cancelled` (a chain's step after one that failed). `error` says why it failed or was
    aborted."""

    job_id: str
    function: str
    queue: str
    role: Literal["step", "member", "callback"]
    status: str
    error: str | None = None


@dataclass(frozen=True)
class WorkflowState:
    """A workflow's `status`, its jobs (`members`: a chain's steps or a group's members, in
    order; `callback`: a group's, or None), and `failure`: which job failed and why."""

    id: str
    kind: Literal["chain", "group"]
    status: WorkflowStatus
    members: list[MemberState]
    callback: MemberState | None
    failure: str | None


async def enqueue_chain(
    *steps: JobCall[Any, Any], workflow_id: str | None = None
) -> "Workflow | None":
    """Queue a chain: `steps[0]` now (`handle.call(...)`, with its options: `defer_by`...), each
    next step when the one before it succeeds, with that step's result as its first argument
    (`handle.step(...)`). `workflow_id` makes it unique, as `_job_id` makes a job: None if a
    workflow with that id is kept. Raises as `enqueue_task` does, naming the step ("step 2:
    ..."), before anything is queued; RedisUnavailableError."""
    if not steps:
        raise JobArgumentError("a chain needs at least one step")
    _refuse_other_than_calls(steps, "step")
    checks: dict[tuple[Any, ...], str] = {}
    checked = [
        check_call(index, call, checks, takes_input=index > 0, label="step")
        for index, call in enumerate(steps)
    ]
    for index, call in enumerate(steps[1:], 1):
        _refuse_start_options(call, f"step {index}", "starts when the step before it succeeds")
    _refuse_own_ids(steps, "step")
    home = checked[0][1]
    flow_id, bare = _new_id(home, workflow_id)
    ids = [
        namespaced_job_id(queue_name, f"{bare}.{k}") for k, (_, queue_name, _) in enumerate(checked)
    ]
    _refuse_long_ids(ids, workflow_id)
    members = []
    for k in range(len(checked)):
        last = k == len(checked) - 1
        members.append(
            Membership(
                flow_id,
                "chain",
                k,
                then=None if last else ids[k + 1],
                then_function=None if last else steps[k + 1].name,
                takes="result" if k else None,
            )
        )
    record = {"kind": "chain", "members": [[i, c.name] for i, c in zip(ids, steps, strict=True)]}
    written = await _write(flow_id, record, checked, ids, members, starters=1)
    return written


async def enqueue_group(
    members: Iterable[JobCall[Any, Any]],
    *,
    then: JobCall[Any, Any] | None = None,
    on_error: OnError = "fail",
    workflow_id: str | None = None,
) -> "Workflow | None":
    """Queue a group: every member now, to run at once over the workers, and `then` (a
    callback, `handle.step(...)`) once, when the last member ends, with the list of their
    results, in order, as its first argument. `on_error`: "fail" (a failed member fails the
    group; the callback does not run) or "pass" (the callback gets the member's `JobFailed` in
    its place). `workflow_id` as for `enqueue_chain`. Raises as `enqueue_task` does, naming the
    member ("member 7: ...") or the callback, before anything is queued; RedisUnavailableError."""
    calls = list(members)
    if not calls:
        raise JobArgumentError("a group needs at least one member")
    _refuse_other_than_calls(calls, "member")
    if then is not None:
        _refuse_other_than_calls([then], "the callback")
    if on_error not in ("fail", "pass"):
        raise JobArgumentError(f"on_error must be 'fail' or 'pass', not {on_error!r}")
    checks: dict[tuple[Any, ...], str] = {}
    checked = [check_call(i, call, checks, label="member") for i, call in enumerate(calls)]
    _refuse_own_ids(calls, "member")
    if then is not None:
        checked.append(check_call(None, then, checks, takes_input=True, label="the callback"))
        _refuse_start_options(then, "the callback", "starts when the last member ends")
        if then.job_id is not None:
            raise JobArgumentError(
                f"the callback: cannot enqueue {then.name!r} with its own job id: a workflow's "
                "jobs are named after it (give enqueue_group a workflow_id)"
            )
    home = checked[-1][1]  # the callback's queue, else the last member's
    flow_id, bare = _new_id(home, workflow_id)
    size = len(calls)
    ids = [
        namespaced_job_id(queue_name, f"{bare}.{i}") for i, (_, queue_name, _) in enumerate(checked)
    ]
    callback_id = None
    if then is not None:
        ids[-1] = callback_id = namespaced_job_id(checked[-1][1], f"{bare}.then")
    _refuse_long_ids(ids, workflow_id)
    fail_group = on_error == "fail"
    memberships = [
        Membership(flow_id, "group", i, callback_id, then.name if then else None, size, fail_group)
        for i in range(size)
    ]
    if then is not None:
        memberships.append(Membership(flow_id, "group", -1, size=size, takes="results"))
    record = {
        "kind": "group",
        "members": [[i, c.name] for i, c in zip(ids, calls, strict=False)],
        "then": None if then is None else [callback_id, then.name],
        "on_error": on_error,
    }
    return await _write(flow_id, record, checked, ids, memberships, starters=size)


async def get_workflow(workflow_id: str) -> "Workflow":
    """The handle of a workflow by its id (`Workflow.id`, with no I/O), or by what `find_workflow`
    takes besides, as the API does: `wf-...`, or the `workflow_id` it was queued with. One not
    found is a handle all the same, whose `state()` raises WorkflowNotFound."""
    pool = await get_task_pool()
    if queue_of(workflow_id) is None:
        found = await find_workflow(workflow_id, pool)
        if found is not None:
            return found
    return Workflow(workflow_id, pool)


async def find_workflow(workflow_id: str, pool: ArqRedis) -> "Workflow | None":
    """The workflow `workflow_id` names, or None: its whole id, the part after its queue's key
    (`wf-...`, looked for in each queue), or the `workflow_id` given to `enqueue_chain` or
    `enqueue_group` (`nightly` for `wf-nightly`). A job's id (`wf-....1`) is not its workflow's."""
    bare = bare_job_id(workflow_id)
    if "." in bare:
        return None
    names = [bare] if bare.startswith(WORKFLOW_ID_PREFIX) else []
    for name in [*names, WORKFLOW_ID_PREFIX + bare]:
        found = await workflow_of(name, pool)
        if found is not None:
            return found
    return None


async def workflow_of(job_id: str, pool: ArqRedis) -> "Workflow | None":
    """The workflow a job belongs to (or that an id names), or None: a job's id says which
    workflow (`<queue key>:wf-<id>.<n>`), not its home queue, so each queue's is looked for."""
    bare = bare_job_id(job_id)
    if not bare.startswith(WORKFLOW_ID_PREFIX):
        return None
    flow = bare.partition(".")[0]
    candidates = [namespaced_job_id(key, flow) for key in get_settings().queue_keys.values()]
    async with pool.pipeline(transaction=False) as pipe:
        for candidate in candidates:
            pipe.exists(workflow_key(queue_of(candidate) or "", candidate))
        found = await pipe.execute()
    return next(
        (Workflow(c, pool) for c, kept in zip(candidates, found, strict=True) if kept), None
    )


class Workflow:
    """A chain or group: its `id`, its `state()`, its `result()`, and `abort()`."""

    def __init__(self, workflow_id: str, pool: ArqRedis) -> None:
        self.id = workflow_id
        self._pool = pool

    def __repr__(self) -> str:
        return f"<Workflow {self.id}>"

    async def state(self) -> WorkflowState:
        """The workflow and each of its jobs, read now. Raises WorkflowNotFound, also once its
        jobs' results have expired."""
        record = await self._record()
        jobs = self._jobs(record)
        async with self._pool.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.get(result_key_prefix + job.job_id)
                pipe.exists(in_progress_key_prefix + job.job_id)
                pipe.zscore(job.queue_name, job.job_id)
                pipe.exists(job_key_prefix + job.job_id)
            replies = await pipe.execute(raise_on_error=False)
        states = []
        queues = {key: name for name, key in get_settings().queue_keys.items()}
        functions = [name for _, name in record["members"]]
        if record.get("then"):
            functions.append(record["then"][1])
        for index, job in enumerate(jobs):
            result, in_progress, score, exists = replies[4 * index : 4 * index + 4]
            status: str = job._status_from(result, in_progress, score)
            error = None
            if isinstance(result, bytes) and status in (JobStatus.failed, JobStatus.aborted):
                outcome = outcome_of(job._read_result(result))
                error = f"{outcome.error_type}: {outcome.message}"
            if status == JobStatus.not_found and exists:
                status = "waiting"
            role: Literal["step", "member", "callback"] = "step"
            if record["kind"] == "group":
                role = "callback" if index == len(record["members"]) else "member"
            queue = queues.get(job.queue_name, job.queue_name)
            states.append(MemberState(job.job_id, functions[index], queue, role, status, error))
        if all(state.status == JobStatus.not_found for state in states):
            # Nothing of it left but its record: its jobs' results have expired (they are kept
            # WORKER_KEEP_RESULT, the record two days). Not "running", which it is not.
            raise WorkflowNotFound(
                f"workflow {self.id!r}: its jobs' results have expired (WORKER_KEEP_RESULT)"
            )
        return _summed_up(self.id, record, states)

    async def result(self, timeout: float | None = None, *, poll_delay: float = 0.5) -> Any:  # noqa: ASYNC109
        """What the workflow returns, waiting up to `timeout` seconds (None: no limit): a
        chain's last step's result, a group's callback's, or (no callback) the list of its
        members' results. Raises JobFailed or JobAborted naming the job (`failure`),
        `TimeoutError`, WorkflowNotFound."""
        waited = 0.0
        while True:
            state = await self.state()
            if state.status is WorkflowStatus.failed:
                raise JobFailed("WorkflowFailed", state.failure or "")
            if state.status is WorkflowStatus.aborted:
                raise JobAborted(state.failure or "the workflow was aborted")
            if state.status is WorkflowStatus.complete:
                break
            if timeout is not None and waited >= timeout:
                raise TimeoutError
            await asyncio.sleep(poll_delay)
            waited += poll_delay
        if state.kind == "chain":
            return await self._job(state.members[-1]).result()
        if state.callback is not None:
            return await self._job(state.callback).result()
        return [await self._job(member).result() for member in state.members]

    async def abort(self, *, timeout: float | None = None, poll_delay: float = 0.5) -> bool:  # noqa: ASYNC109
        """Abort the workflow: its waiting jobs are cancelled, its queued ones dropped, and its
        running ones cancelled by their workers (as `Job.abort`, waiting up to `timeout`
        seconds for that). True if some job of it was aborted, now or before. Raises
        WorkflowNotFound."""
        record = await self._record()
        jobs = self._jobs(record)
        keep_ms = max(round(get_settings().worker_keep_result * 1000), STATE_LIFETIME_MS)
        # The waiting ones first: a step that succeeds meanwhile then finds its next one
        # cancelled, and queues nothing (store/workflows.py's ADVANCE).
        async with self._pool.pipeline(transaction=False) as reads:  # not MGET: many slots
            for job in jobs:
                reads.get(job_key_prefix + job.job_id)
            payloads = await reads.execute()
        async with self._pool.pipeline(transaction=False) as pipe:
            for job, payload in zip(jobs, payloads, strict=True):
                if payload is None:  # finished, or never written
                    continue
                queued = job._read_job(payload)
                aborted = job._aborted_result(queued, enqueue_time_ms(queued.enqueue_time))
                keys = [
                    job_key_prefix + job.job_id,
                    result_key_prefix + job.job_id,
                    in_progress_key_prefix + job.job_id,
                    job.queue_name,
                ]
                pipe.eval(CANCEL_WAITING, len(keys), *keys, job.job_id, aborted, str(keep_ms))
            cancelled = await pipe.execute()
        aborted_any = any(cancelled)
        for job in jobs:
            status = await job.status()
            if status in (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress):
                aborted_any = await job.abort(timeout=timeout, poll_delay=poll_delay) or aborted_any
            elif status == JobStatus.aborted:
                aborted_any = True
        return aborted_any

    async def _record(self) -> dict[str, Any]:
        queue_name = queue_of(self.id)
        if queue_name is None or queue_name not in get_settings().queue_keys.values():
            raise WorkflowNotFound(f"no workflow {self.id!r}")
        data = await self._pool.get(workflow_key(queue_name, self.id))
        if data is None:
            raise WorkflowNotFound(f"no workflow {self.id!r} (or it has expired)")
        record: dict[str, Any] = json.loads(data)
        return record

    def _jobs(self, record: dict[str, Any]) -> list[Job[Any]]:
        ids = [job_id for job_id, _ in record["members"]]
        if record.get("then"):
            ids.append(record["then"][0])
        return [job_by_id(job_id, self._pool) for job_id in ids]

    def _job(self, member: MemberState) -> Job[Any]:
        return job_by_id(member.job_id, self._pool)


def _summed_up(flow_id: str, record: dict[str, Any], states: list[MemberState]) -> WorkflowState:
    """The workflow's status from its jobs' (see WorkflowStatus)."""
    kind = record["kind"]
    ended = {
        JobStatus.failed.value: WorkflowStatus.failed,
        JobStatus.aborted.value: WorkflowStatus.aborted,
    }
    if kind == "chain":
        for index, step in enumerate(states):
            if step.status in ended:
                after = [
                    MemberState(s.job_id, s.function, s.queue, s.role, "cancelled")
                    if s.status in ("waiting", JobStatus.not_found) else s
                    for s in states[index + 1 :]
                ]  # fmt: skip
                failure = f"step {index} ({step.function}) {step.status}: {step.error}"
                return WorkflowState(
                    flow_id, kind, ended[step.status], states[: index + 1] + after, None, failure
                )
        status = (
            WorkflowStatus.complete
            if states[-1].status == JobStatus.complete
            else WorkflowStatus.running
        )
        return WorkflowState(flow_id, kind, status, states, None, None)
    callback = states[-1] if record.get("then") else None
    members = states[:-1] if callback else states
    if callback is not None:
        if callback.status in ended:
            failure = f"callback ({callback.function}) {callback.status}: {callback.error}"
            error_type, _, message = (callback.error or "").partition(": ")
            if error_type in (MemberFailed.__name__, JobAborted.__name__) and message.startswith(
                "member "
            ):
                failure = message  # the group ended with a member (store/workflows.py says how)
            return WorkflowState(flow_id, kind, ended[callback.status], members, callback, failure)
        status = (
            WorkflowStatus.complete
            if callback.status == JobStatus.complete
            else WorkflowStatus.running
        )
        return WorkflowState(flow_id, kind, status, members, callback, None)
    finished = {JobStatus.complete.value, *ended}
    if any(m.status not in finished for m in members):
        return WorkflowState(flow_id, kind, WorkflowStatus.running, members, None, None)
    for index, member in enumerate(members):
        if member.status in ended:
            failure = f"member {index} ({member.function}) {member.status}: {member.error}"
            return WorkflowState(flow_id, kind, ended[member.status], members, None, failure)
    return WorkflowState(flow_id, kind, WorkflowStatus.complete, members, None, None)


def _new_id(home: str, workflow_id: str | None) -> tuple[str, str]:
    """A new workflow's id in its home queue, and the bare id its jobs' ids start with. A
    `workflow_id` must give jobs ids the API can look up (keys.py's JOB_ID_PATTERN, which
    `_refuse_long_ids` completes) and hold no '.', which starts a job's part of such an id:
    else JobArgumentError."""
    if workflow_id is not None and not WORKFLOW_ID_PATTERN.fullmatch(workflow_id):
        raise JobArgumentError(
            "a workflow id is letters, digits and _ - : (no '.', which starts a job's part of "
            f"its jobs' ids): {workflow_id!r}"
        )
    flow_id = namespaced_job_id(home, WORKFLOW_ID_PREFIX + (workflow_id or new_job_id()))
    return flow_id, bare_job_id(flow_id)


def _refuse_long_ids(ids: list[str], workflow_id: str | None) -> None:
    """JobArgumentError if a workflow's job would have an id longer than the API looks up."""
    longest = max(len(job_id) for job_id in ids)
    if longest > JOB_ID_MAX_LENGTH:
        raise JobArgumentError(
            f"workflow id too long: its jobs' ids would take up to {longest} characters, over "
            f"the {JOB_ID_MAX_LENGTH} the API looks up: {workflow_id!r}"
        )


def _refuse_start_options(call: JobCall[Any, Any], what: str, when: str) -> None:
    if call.defer_by is not None or call.defer_until is not None:
        raise JobArgumentError(f"{what}: cannot enqueue {call.name!r} deferred: it {when}")


def _refuse_other_than_calls(calls: Sequence[Any], what: str) -> None:
    for index, call in enumerate(calls):
        if not isinstance(call, JobCall):
            where = what if what == "the callback" else f"{what} {index}"
            raise JobArgumentError(
                f"{where}: give a job's call(...) or step(...), not {type(call).__name__}"
            )


def _refuse_own_ids(calls: Sequence[JobCall[Any, Any]], what: str) -> None:
    for index, call in enumerate(calls):
        if call.job_id is not None:
            raise JobArgumentError(
                f"{what} {index}: cannot enqueue {call.name!r} with its own job id: a "
                "workflow's jobs are named after it (give enqueue_chain or enqueue_group a "
                "workflow_id)"
            )


async def _write(
    flow_id: str,
    record: dict[str, Any],
    checked: list[tuple[JobCall[Any, Any], str, str | None]],
    ids: list[str],
    memberships: list[Membership],
    starters: int,
) -> "Workflow | None":
    """Write a workflow: its record (None if one with its id is kept), then the jobs that wait
    (written, not queued), then the first `starters` jobs, queued. A failure part way leaves
    nothing queued, and the record is taken back."""
    pool = await get_task_pool()
    prepared: list[PreparedJob] = []
    for (call, queue_name, limits), job_id, member in zip(checked, ids, memberships, strict=True):
        prepared.append(
            prepare_job(
                pool, call.name, call.args, call.kwargs, queue_name, limits, job_id,
                call.defer_by, call.defer_until, call.expires, member,
            )
        )  # fmt: skip
    home = queue_of(flow_id) or ""
    key = workflow_key(home, flow_id)
    # The record, and each waiting job without an `expires` of its own, are kept two days past
    # the first jobs' start (a first step deferred by a week waits a week more): a waiting job
    # whose record runs out is not run, and its workflow fails naming it (store/workflows.py).
    delay_ms = max(0, max(job.score for job in prepared[:starters]) - timestamp_ms())
    lifetime_ms = STATE_LIFETIME_MS + delay_ms
    try:
        if not await pool.set(key, json.dumps(record), nx=True, px=lifetime_ms):
            return None
        try:
            async with pool.pipeline(transaction=False) as pipe:
                for (call, _, _), job in zip(checked[starters:], prepared[starters:], strict=True):
                    waits_ms = lifetime_ms if call.expires is None else job.lifetime_ms
                    pipe.psetex(job_key_prefix + job.job_id, waits_ms, job.payload)
                    if job.limits is not None:
                        limits_key = limited_key(job.queue_name, job.job_id)
                        pipe.psetex(limits_key, waits_ms, job.limits)
                await pipe.execute()
            await write_all(pool, [write_of(chunk) for chunk in chunks_of(prepared[:starters])])
        except BaseException:
            await pool.delete(key)
            raise
    except (RedisError, OSError) as error:
        raise unavailable(error) from error
    return Workflow(flow_id, pool)
