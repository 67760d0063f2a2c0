"""``POST /api/approvals/{run_id}``: answer an approval with the caller's token, and
``POST /api/approvals/{run_id}/code``: a single-use approval code for the Prefect UI's form.

The run's pending approval request is found in the ledger by the run's id (nothing the caller
sends names a request). The answer is checked and recorded in the ledger here (the caller's
role in the app's space, no forbidden self-approval, the request still open); a refusal is
recorded and the run is not touched. An accepted answer then wakes the run with no input: its
gate re-reads the request (:mod:`quayside.runs.approval_answers`). The token never goes to
Prefect. A *scheduled* run that has not started (approval asked at submit time) is decided in
the ledger the same way; its gate finds the decision when it starts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from quayside.gateway.auth import CallerDep
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.runs.approval_answers import answer_run, code_for_run

router = APIRouter(tags=["approvals"], route_class=AuthFirstRoute)
CtxDep = Annotated[GatewayContext, Depends(context)]


class ApprovalAnswer(BaseModel):
    """An approver's answer."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=1000)


class ApprovalResult(BaseModel):
    """What happened to the answer."""

    flow_run_id: str
    decision: str
    status: str = Field(description="the approval request's status after the answer")
    detail: str


class ApprovalCodeResult(BaseModel):
    """A single-use approval code: shown once, only its hash is kept."""

    flow_run_id: str
    request_id: int
    user: str
    code: str = Field(description="enter it in the Prefect UI's approval form (field code)")
    expires_at: datetime
    detail: str


_WAKE_TEXT = {
    "woken": "the run was woken and reads it now",
    "queued": "the run reads it when it starts",
    "not waiting": "the run reads it before it waits again",
    "ended": "the run has ended",
    "not woken": "the run could not be woken now ({why}); it reads the ledger when it is: "
    "once its request is decided, the approval sweep wakes it within a minute",
}


def answer(
    ctx: GatewayContext,
    run_id: str,
    user: str,
    decision: str,
    comment: str,
    *,
    token: str | None,
) -> ApprovalResult:
    """Record ``user``'s ``decision`` on run ``run_id``'s approval and wake the run (used by
    the API, with the caller's token, and by chat, whose user DingTalk's signature
    authenticated: ``token=None``).

    Raises:
        NotFoundError: no such run (or not a run id).
        NotWaitingForApproval: the run does not wait for an approval (409).
        PermissionDenied: the user may not answer, or the answer does not count (403;
            recorded in the ledger, the run untouched).
    """
    done = answer_run(
        ctx.engine(), run_id, user=user, decision=decision, comment=comment, token=token
    )
    outcome = done.resolution
    approvers = ", ".join(outcome.approvers) or "none yet"
    return ApprovalResult(
        flow_run_id=done.run_id,
        decision=decision,
        status=outcome.status.value.upper(),
        detail=f"{decision} from {user} recorded on approval request {done.request_id} "
        f"(approved by: {approvers}); {_WAKE_TEXT[done.wake].format(why=done.why)}",
    )


@router.post(
    "/api/approvals/{run_id}",
    summary="Approve or reject a run waiting for approval",
    response_model=ApprovalResult,
    responses={
        403: {"description": "the caller may not answer (recorded)"},
        404: {"description": "unknown run"},
        409: {"description": "run not waiting"},
    },
)
def approve(
    run_id: Annotated[str, Path(max_length=64)],
    body: ApprovalAnswer,
    caller: CallerDep,
    ctx: CtxDep,
) -> ApprovalResult:
    """Record the caller's decision in the ledger, then wake the run's approval gate."""
    return answer(ctx, run_id, caller.name, body.decision, body.comment, token=caller.token)


@router.post(
    "/api/approvals/{run_id}/code",
    summary="Get a single-use approval code for the Prefect UI's approval form",
    response_model=ApprovalCodeResult,
    responses={
        403: {"description": "the caller may not answer this approval"},
        404: {"description": "unknown run"},
        409: {"description": "run not waiting"},
    },
)
def approval_code(
    run_id: Annotated[str, Path(max_length=64)], caller: CallerDep, ctx: CtxDep
) -> ApprovalCodeResult:
    """A code that lets the caller answer this run's approval once in the Prefect UI (the
    form's **code** field) without their token; a new code replaces their previous one."""
    issued = code_for_run(ctx.engine(), run_id, user=caller.name)
    return ApprovalCodeResult(
        flow_run_id=run_id,
        request_id=issued.request_id,
        user=issued.user,
        code=issued.code,
        expires_at=issued.expires_at,
        detail="enter it in the Prefect UI's approval form of this run (field code); "
        "it works once, for you, until the request expires",
    )
