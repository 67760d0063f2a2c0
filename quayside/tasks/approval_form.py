"""The approval gate's answer form in the Prefect UI, and the answers it brings.

The form (:class:`ApprovalInput`) takes a single-use approval code instead of a token
(``quayside approvals code RUN``): the gate takes the form's input, deletes it from Prefect at
once, and has :func:`quayside.auth.approval_codes.decide_with_code` check the code (this
request's, its user's newest, unused, unexpired), consume it and record the answer as the
code's user (:func:`judge_answer`). Each wait has its own pause key (:func:`pause_key`); an
answer sent while the run was suspended waits in Prefect under that key until the run starts
again (:func:`take_stored_answers`).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.input import RunInput
from pydantic import Field, ValidationError

from quayside.auth import approvals as core
from quayside.auth.approval_codes import ANONYMOUS, decide_with_code
from quayside.auth.approval_keys import KEY_PREFIX, pause_key_prefix
from quayside.tasks.ledger import ledger_engine

SUSPENDED_STATE = "suspended"  # Prefect's keyset base is "<state name lower>-<pause key>"
PAUSED_STATE = "paused"


class ApprovalInput(RunInput):
    """The answer form of an approval gate (the Prefect UI shows it under the description).

    Every field has a default: the CLI, the gateway and chat record their answer in the ledger
    and resume the run with no input at all, which Prefect checks against this schema."""

    code: str = Field(
        "",
        max_length=40,
        description="needed to answer here: your single-use approval code for this run, "
        "from `quayside approvals code RUN_ID` (never your token)",
    )
    decision: Literal["approve", "reject"] = Field(
        "approve", description="approve or reject the release"
    )
    comment: str = Field("", max_length=1000, description="optional note, kept in the ledger")
    approver: str = Field(
        "",
        max_length=200,
        description="optional: your Quayside user name; the code is refused if it is not yours",
    )


def fired_attempts(flow_run_id: str, request_id: int) -> int:
    """How many waits on request ``request_id`` the run has had: the highest attempt among the
    pause keys Prefect recorded on the flow run (0: none)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    keys = run.empirical_policy.pause_keys or set()
    prefix = pause_key_prefix(request_id)
    attempts = [int(k[len(prefix) :]) for k in keys if k.startswith(prefix)]
    return max(attempts, default=0)


def take_stored_answers(flow_run_id: str, request_id: int) -> list[dict[str, Any]]:
    """The form answers stored for this request's waits (answers to a suspension wait for the
    run to start again), oldest first, each deleted from Prefect at once."""
    run_id = UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        found = [
            item
            for state in (PAUSED_STATE, SUSPENDED_STATE)
            for item in client.filter_flow_run_input(
                flow_run_id=run_id,
                key_prefix=f"{state}-{KEY_PREFIX}-{request_id}-",
                limit=200,
                exclude_keys=set(),
            )
            if item.key.endswith("-response")
        ]
        found.sort(key=lambda item: (item.created is None, str(item.created)))
        answers = []
        for item in found:
            client.delete_flow_run_input(run_id, item.key)
            value = item.decoded_value
            answers.append(value if isinstance(value, dict) else {})
        return answers


def judge_answer(request_id: int, raw: dict[str, Any], logger: Any) -> str | None:
    """Check one answer from the Prefect UI's form; returns the refusal reason, or None if
    it counted. The code is never logged."""
    try:
        answer = ApprovalInput(**raw)
    except ValidationError:
        answer = None
    if answer is None:
        resolution = core.refuse(
            ledger_engine(),
            request_id,
            ANONYMOUS,
            "reject",
            "",
            "the answer form's input was not understood",
        )
    else:
        resolution = decide_with_code(
            ledger_engine(),
            request_id,
            code_text=answer.code,
            decision=answer.decision,
            comment=answer.comment,
            approver=answer.approver,
        )
    if resolution.accepted:
        logger.info(
            "approval request #%s: %s from %s accepted (approval code)",
            request_id,
            answer.decision if answer is not None else "answer",
            resolution.user,
        )
        return None
    logger.warning(
        "approval request #%s: answer from %s refused: %s",
        request_id,
        resolution.user or "an unknown code",
        resolution.reason,
    )
    return resolution.reason


def judge_stored_answers(
    flow_run_id: str, request_id: int, logger: Any, last_refusal: str | None
) -> str | None:
    """Check every answer the form stored for this request's waits, oldest first; returns the
    last one's refusal reason (None: it counted), or ``last_refusal`` when none was stored."""
    for raw in take_stored_answers(flow_run_id, request_id):
        last_refusal = judge_answer(request_id, raw, logger)
    return last_refusal
