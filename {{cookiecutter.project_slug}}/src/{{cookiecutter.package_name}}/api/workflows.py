# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Following and aborting a chain or group by id: `GET /workflows/{workflow_id}` and
`DELETE /workflows/{workflow_id}`.

The id is the one `enqueue_chain` and `enqueue_group` return (`Workflow.id`), whole or without
its queue's key. The view is the workflow's `state()` (client/workflows.py): its status, which
job failed and why, and each of its jobs with its own status; a job's full view is at
`GET /jobs/{job_id}` once it is queued (one that waits for the jobs before it is not yet).
"""

from dataclasses import asdict
from typing import Literal

from arq.connections import ArqRedis
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from ..infrastructure.client.workflows import find_workflow
from ..queue import MemberState, Workflow, WorkflowNotFound, WorkflowState
from .dependencies import AppSettings, JobId, TaskPool, authorize
from .problems import problem_responses

router = APIRouter(prefix="/workflows", tags=["workflows"], dependencies=[Depends(authorize)])

# How often DELETE looks whether the workers have cancelled the running jobs.
ABORT_POLL_SECONDS = 0.1


class MemberView(BaseModel):
    """One job of a workflow: `status` is a job's status, or `waiting` (for the jobs before it)
    or `cancelled` (a chain's step after one that failed); `error` says why it failed."""

    job_id: str
    function: str
    queue: str
    role: Literal["step", "member", "callback"]
    status: str
    error: str | None

    @classmethod
    def of(cls, member: MemberState) -> "MemberView":
        return cls(**asdict(member))  # the same fields


class WorkflowView(BaseModel):
    """A chain or group: `status` (running, complete, failed, aborted), `failure` (which job
    failed, and why), its steps or members in order, and a group's callback."""

    workflow_id: str
    kind: Literal["chain", "group"]
    status: str
    failure: str | None
    members: list[MemberView]
    callback: MemberView | None

    @classmethod
    def of(cls, state: WorkflowState) -> "WorkflowView":
        return cls(
            workflow_id=state.id,
            kind=state.kind,
            status=state.status.value,
            failure=state.failure,
            members=[MemberView.of(member) for member in state.members],
            callback=None if state.callback is None else MemberView.of(state.callback),
        )


async def find(workflow_id: str, pool: ArqRedis) -> Workflow:
    """The workflow `workflow_id` names: its whole id, the part after its queue's key (`wf-...`,
    looked for in each queue, as `GET /jobs` looks a short job id up), or the id it was queued
    with (client/workflows.py's `find_workflow`). 404 if none (a job of a workflow is not it)."""
    workflow = await find_workflow(workflow_id, pool)
    if workflow is None:
        raise HTTPException(404, f"no workflow {workflow_id!r} (or it has expired)")
    return workflow


async def read_state(workflow: Workflow) -> WorkflowState:
    try:
        return await workflow.state()
    except WorkflowNotFound as error:  # expired since it was found
        raise HTTPException(404, f"{error}") from error


@router.get("/{workflow_id}", responses=problem_responses(404, 422, 503))
async def read_workflow(workflow_id: JobId, pool: TaskPool) -> WorkflowView:
    """The workflow's status and each of its jobs'."""
    return WorkflowView.of(await read_state(await find(workflow_id, pool)))


@router.delete("/{workflow_id}", responses=problem_responses(404, 409, 422, 503))
async def abort_workflow(workflow_id: JobId, settings: AppSettings, pool: TaskPool) -> WorkflowView:
    """Abort the workflow: its waiting jobs are cancelled, its queued ones dropped, and its
    running ones cancelled by their workers (waited for up to `API_ABORT_WAIT` seconds; the
    abort stands after that). 404 for an unknown workflow, 409 for one that has ended."""
    workflow = await find(workflow_id, pool)
    before = await read_state(workflow)
    if before.status.value != "running":
        raise HTTPException(409, f"workflow {workflow.id!r} has already ended ({before.status})")
    await workflow.abort(timeout=settings.api_abort_wait, poll_delay=ABORT_POLL_SECONDS)
    return WorkflowView.of(await read_state(workflow))
