"""``POST /api/approvals/{run_id}``: answer an approval gate with the caller's token.

The run's pending approval request is found in the ledger by the run's id (nothing the caller
sends names a request). Before a suspended run is woken, the caller must be allowed to answer
it (the policy's role in the app's space, no forbidden self-approval): a refusal is recorded
and the run is not touched. An allowed answer resumes the run with ``{"decision", "comment",
"token"}`` and the gate verifies it again. A *scheduled* run that has not started (approval
asked at submit time) is decided in the ledger through :func:`quayside.auth.approvals.decide`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from quayside.auth.approvals import decide, find_for_run, screen_answerer
from quayside.errors import InputError, NotFoundError
from quayside.gateway.auth import CallerDep
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Conflict
from quayside.runs import read_run, resume_run
from quayside.runs.scheduled_approval import pending_request_of

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
    status: str
    detail: str


def answer(
    ctx: GatewayContext, run_id: str, user: str, token: str, decision: str, comment: str
) -> ApprovalResult:
    """Give ``decision`` on run ``run_id`` with ``token`` (used by the API and by chat).

    Raises:
        NotFoundError: no such run (or not a run id).
        Conflict: the run is neither paused for approval nor scheduled with an approval request.
    """
    try:
        status = read_run(run_id)
    except InputError:
        raise NotFoundError(f"no flow run {run_id[:64]!r}") from None
    engine = ctx.engine()
    if status.paused:
        request = find_for_run(engine, status.id)
        if request is None:
            raise Conflict(
                f"run {status.id} is paused, but not for a Quayside approval",
                hint="resume it from the Prefect UI",
            )
        screen_answerer(engine, request.id, user=user, decision=decision, comment=comment)
        result = resume_run(status.id, {"decision": decision, "comment": comment, "token": token})
        return ApprovalResult(
            flow_run_id=status.id,
            decision=decision,
            status=result,
            detail="answer forwarded to the run's approval gate",
        )
    request_id = pending_request_of(engine, status)
    if request_id is not None:
        outcome = decide(engine, request_id, token_text=token, decision=decision, comment=comment)
        return ApprovalResult(
            flow_run_id=status.id,
            decision=decision,
            status=outcome.status.value.upper(),
            detail=f"decision recorded on approval request {request_id}"
            + ("" if outcome.accepted else f" but it does not count: {outcome.reason}"),
        )
    raise Conflict(
        f"run {status.id} is {status.state_name}, not waiting for approval",
        hint="only paused runs (or scheduled runs with an approval request) take answers",
    )


@router.post(
    "/api/approvals/{run_id}",
    summary="Approve or reject a run waiting for approval",
    response_model=ApprovalResult,
    responses={404: {"description": "unknown run"}, 409: {"description": "run not waiting"}},
)
def approve(
    run_id: Annotated[str, Path(max_length=64)],
    body: ApprovalAnswer,
    caller: CallerDep,
    ctx: CtxDep,
) -> ApprovalResult:
    """Forward the caller's decision (and their token, which the gate verifies) to the run."""
    return answer(ctx, run_id, caller.name, caller.token, body.decision, body.comment)
