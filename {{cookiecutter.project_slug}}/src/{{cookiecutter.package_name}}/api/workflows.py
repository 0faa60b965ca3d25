# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Following and aborting a chain or group by id: `GET /workflows/{workflow_id}` and
`DELETE /workflows/{workflow_id}`.

The id is the one `enqueue_chain` and `enqueue_group` return (`Workflow.id`). The view is the
workflow's `state()` (client/workflows.py): its status, which job failed and why, and each of its
jobs with its own status, each one's full view at `GET /jobs/{job_id}`.
"""

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from ..queue import MemberState, WorkflowNotFound, WorkflowState, get_workflow
from .dependencies import AppSettings, JobId, authorize
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


async def read_state(workflow_id: str) -> WorkflowState:
    try:
        return await (await get_workflow(workflow_id)).state()
    except WorkflowNotFound as error:
        raise HTTPException(404, f"{error}") from error


@router.get("/{workflow_id}", responses=problem_responses(404, 422, 503))
async def read_workflow(workflow_id: JobId) -> WorkflowView:
    """The workflow's status and each of its jobs'."""
    return WorkflowView.of(await read_state(workflow_id))


@router.delete("/{workflow_id}", responses=problem_responses(404, 409, 422, 503))
async def abort_workflow(workflow_id: JobId, settings: AppSettings) -> WorkflowView:
    """Abort the workflow: its waiting jobs are cancelled, its queued ones dropped, and its
    running ones cancelled by their workers (waited for up to `API_ABORT_WAIT` seconds; the
    abort stands after that). 404 for an unknown workflow, 409 for one that has ended."""
    before = await read_state(workflow_id)
    if before.status.value != "running":
        raise HTTPException(409, f"workflow {workflow_id!r} has already ended ({before.status})")
    workflow = await get_workflow(workflow_id)
    await workflow.abort(timeout=settings.api_abort_wait, poll_delay=ABORT_POLL_SECONDS)
    return WorkflowView.of(await read_state(workflow_id))
