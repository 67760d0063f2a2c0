"""The approval gate every flow uses: record a request, tell the approvers, suspend until a
valid answer arrives.

Suspend, not pause: ``suspend_flow_run`` takes the run off its worker (the process exits, no
worker slot and no environment lock are held while a release waits a day for approval);
answering resumes the run and Prefect runs the flow again *from the top*. So the gate is
idempotent: the ledger request is found again by flow run id, and each suspension has its own
key ``approval-<request id>-<n>``. Prefect records the keys that fired on the flow run
(``empirical_policy.pause_keys``), which tells the gate which suspension was answered.

Every answer — from the Prefect UI form, ``quayside approve``, the gateway or chat — arrives
as the same :class:`ApprovalInput` (decision, comment, the approver's token). The gate reads
it, deletes it from Prefect's database at once (the token must not stay there), and checks it
with :func:`quayside.auth.approvals.decide`: token, role, policy. A refused answer is
recorded (``valid=False`` with the reason) and the gate suspends again: it never fails open.

Timeout: the suspension carries the policy's timeout; when it passes, the Prefect server
fails the run ("never resumed") without running any code, so the ledger's Expired record is
written by :func:`quayside.auth.approvals.expire_overdue` (the periodic sweep, or
``quayside approvals expire``) — or by this gate when the run does run again.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import Pause
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.input.actions import delete_flow_run_input, read_flow_run_input
from pydantic import Field, SecretStr, ValidationError

from quayside.auth import approvals as core
from quayside.errors import InputError, QuaysideError
from quayside.inventory import load_inventory
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals as ledger_approvals
from quayside.ledger.models import ApprovalRequest, ApprovalStatus, utcnow
from quayside.markdown_text import cell, code, inline
from quayside.settings import load_settings
from tasks.ledger import current_flow_run_id, ledger_engine

KEY_PREFIX = "approval"
SUSPENDED_STATE = "suspended"  # Prefect's keyset base is "<state name lower>-<pause key>"


class ApprovalRejected(QuaysideError):
    """An approver rejected the release (recorded in the ledger)."""


class ApprovalExpired(QuaysideError):
    """Nobody approved the release before the policy's timeout (recorded as Expired)."""

    hint = "start the release again, and tell the approvers"


class ApprovalInput(RunInput):
    """The answer form of an approval gate (the Prefect UI shows it under the description)."""

    decision: Literal["approve", "reject"] = Field(description="approve or reject the release")
    comment: str = Field("", description="optional note, kept in the ledger")
    token: SecretStr = Field(
        description=(
            "your personal Quayside token (qs_…); it is checked, then deleted from Prefect"
        )
    )


def suspending(error: BaseException) -> bool:
    """True if ``error`` is Prefect's signal that the run is being suspended (the gate is
    waiting, not failed): a flow's ``except BaseException`` cleanup around the gate must
    re-raise it untouched instead of marking the release cancelled.

    Args:
        error: what the gate raised.

    Returns:
        Whether it is the suspension signal.
    """
    return isinstance(error, Pause)


def pause_key(request_id: int, attempt: int) -> str:
    """The suspension key of the ``attempt``-th wait on approval request ``request_id``."""
    return f"{KEY_PREFIX}-{request_id}-{attempt}"


def response_key(request_id: int, attempt: int) -> str:
    """Where Prefect stores the answer to that suspension (a flow run input key)."""
    return f"{SUSPENDED_STATE}-{pause_key(request_id, attempt)}-response"


def _space_of(app: str) -> str:
    try:
        inventory = load_inventory(load_settings().inventory_path)
    except QuaysideError:
        return core.DEFAULT_SPACE
    found = inventory.apps.get(app)
    return found.space if found is not None else core.DEFAULT_SPACE


def _fired_attempts(flow_run_id: str, request_id: int) -> int:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    keys = run.empirical_policy.pause_keys or set()
    prefix = f"{KEY_PREFIX}-{request_id}-"
    attempts = [int(k[len(prefix) :]) for k in keys if k.startswith(prefix)]
    return max(attempts, default=0)


def _take_answer(flow_run_id: str, key: str) -> dict[str, Any] | None:
    """Read a stored answer and delete it at once (it holds a token)."""
    run_id = UUID(flow_run_id)
    value = read_flow_run_input(key, flow_run_id=run_id)
    if value is None:
        return None
    delete_flow_run_input(key, flow_run_id=run_id)
    return value if isinstance(value, dict) else {}


def _notify(app: str, env: str, event: str, text: str, version: str, actor: str) -> None:
    try:
        from tasks.notify import notify_release_event
    except ImportError:
        return
    try:
        notify_release_event(app=app, env=env, event=event, text=text, version=version, actor=actor)
    except Exception as e:  # a notification never decides a release
        get_run_logger().warning("notification %s failed: %s", event, type(e).__name__)


def plan_hash(summary_markdown: str) -> str:
    """The digest an approval is bound to: the plan exactly as the approvers were shown it."""
    return hashlib.sha256(summary_markdown.encode("utf-8")).hexdigest()


def _bound_request(
    engine: Any, flow_run_id: str, *, app: str, env: str, version: str, digest: str
) -> ApprovalRequest | None:
    """The request this run's gate may use: opened for this run (by this gate, or by the
    trigger that scheduled the run), for this app and env, this exact version and - when the
    gate opened it - this exact plan. Anything else is voided and None is returned: the gate
    opens a new request. Nothing a caller sends can name a request."""
    found = core.find_for_run(engine, flow_run_id, app=app, env=env)
    if found is None or found.status is ApprovalStatus.voided:
        return None
    if found.version != version:
        reason = f"this run now releases {version!r}, not {found.version!r}"
    elif found.plan_hash is not None and found.plan_hash != digest:
        reason = "the plan changed since it was shown to the approvers"
    else:
        return found
    ledger_approvals.void_request(engine, found.id, reason, actor=f"flow-run:{flow_run_id}")
    get_run_logger().warning("approval request #%s voided: %s", found.id, reason)
    return None


def _describe(
    request: ApprovalRequest,
    *,
    version: str,
    summary_markdown: str,
    flow_run_id: str,
    last_refusal: str | None,
) -> str:
    """The Markdown above the approval form: the request's table, then the plan.

    Every value in the table and the lines around it (names, version, space, the refusal
    reason) is escaped here, so none adds a row, a link or an image; ``summary_markdown`` is
    Markdown its builder escaped (:mod:`quayside.deploy.summary`).
    """
    policy = core.policy_of(request)
    approvers = core.valid_approvers(request)
    expires = request.expires_at.strftime("%Y-%m-%d %H:%M UTC") if request.expires_at else "—"
    rows = [
        ("app", code(request.app, in_table=True)),
        ("environment", code(request.env, in_table=True)),
        ("version", code(version, in_table=True)),
        ("requested by", cell(request.requested_by) or "—"),
        ("approvals", f"{len(approvers)} of {request.required_approvals}"),
        (
            "approvers",
            f"{cell(policy.role)} or higher in space {code(request.space, in_table=True)}",
        ),
        ("self-approval", "allowed" if policy.allow_self_approval else "not allowed"),
        ("expires", expires),
        ("approval request", f"#{request.id}"),
    ]
    lines = [
        f"## Approve {code(request.app)} {inline(version)} → {code(request.env)}?",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    if approvers:
        lines += [f"Approved so far by: {', '.join(inline(a) for a in approvers)}.", ""]
    if last_refusal:
        lines += [f"> The previous answer was refused: {inline(last_refusal, limit=500)}", ""]
    lines += [
        summary_markdown.strip(),
        "",
        "---",
        "Paste your personal token (`quayside tokens create`) into **token**; it is verified "
        "and then deleted. From a shell: "
        f"{code(f'quayside approve {flow_run_id} [--reject] [-m COMMENT]')}.",
    ]
    return "\n".join(lines)


def _finish(
    request: ApprovalRequest, *, app: str, env: str, version: str, requested_by: str
) -> str | None:
    """Return the approvers if approved, raise if rejected/expired, None while pending."""
    if request.status is ApprovalStatus.approved:
        approvers = ", ".join(core.valid_approvers(request))
        return approvers or "(approved)"
    if request.status is ApprovalStatus.rejected:
        rejecting = [d for d in request.decisions if d.valid and d.decision.value == "reject"]
        who = rejecting[-1].user if rejecting else "an approver"
        note = f": {rejecting[-1].comment}" if rejecting and rejecting[-1].comment else ""
        raise ApprovalRejected(f"{app} {version} → {env} was rejected by {who}{note}")
    if request.status is ApprovalStatus.expired:
        raise ApprovalExpired(
            f"approval of {app} {version} → {env} (requested by {requested_by}) expired "
            f"without enough approvals (request #{request.id})"
        )
    return None


def approval_gate(
    *,
    app: str,
    env: str,
    version: str,
    summary_markdown: str,
    requested_by: str,
    policy: ApprovalPolicy,
    release_id: int | None = None,
) -> str:
    """Wait until the release is approved under ``policy``; call it from a flow (not a task).

    The flow run is suspended while it waits (it leaves its worker; on resume Prefect runs
    the flow again from the top, so work before the gate should be cheap or cached, and must
    not hold a deploy lock). Answers are verified here, whatever path they came by.

    Args:
        app: app name (roles are checked on this project of the app's space).
        env: environment name.
        version: tag, ref or version being released.
        summary_markdown: what will happen (commit range or diff summary, hosts); shown to
            approvers above the answer form.
        requested_by: who asked; may not approve unless the policy allows it.
        policy: the environment's approval policy (``required`` below 1 counts as 1).
        release_id: the ledger release waiting for the approval.

    The gate uses only a request opened for this flow run: by itself, or by the trigger that
    scheduled the run (approval asked at submit time; if it was approved in the meantime the
    gate returns at once). The request must be for this app, env and ``version``, and a
    request the gate opened must show this exact plan (``summary_markdown``): otherwise it is
    voided and a new one is opened.

    Returns:
        The approver name(s), comma-separated.

    Raises:
        ApprovalRejected: a valid rejection was recorded.
        ApprovalExpired: the policy's timeout passed (recorded as Expired).
        InputError: called outside a flow run.

    Example:
        ```python
        approver = approval_gate(
            app="web", env="prod", version="v1.4.0", summary_markdown=plan_md,
            requested_by="ann", policy=target.env.approval, release_id=release.id,
        )
        ```
    """
    logger = get_run_logger()
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        raise InputError("approval_gate must be called inside a flow run")
    engine = ledger_engine()

    digest = plan_hash(summary_markdown)
    found = _bound_request(engine, flow_run_id, app=app, env=env, version=version, digest=digest)
    if found is None:
        request = core.open_request(
            engine,
            app=app,
            env=env,
            space=_space_of(app),
            summary=summary_markdown,
            requested_by=requested_by,
            policy=policy,
            flow_run_id=flow_run_id,
            release_id=release_id,
            version=version,
            plan_hash=digest,
        )
        logger.info("approval request #%s opened for %s → %s", request.id, app, env)
    else:
        request = found

    last_refusal: str | None = None
    while True:
        request = ledger_approvals.resolve(engine, request.id, actor=f"flow-run:{flow_run_id}")
        try:
            done = _finish(request, app=app, env=env, version=version, requested_by=requested_by)
        except ApprovalRejected as e:
            _notify(app, env, "rejected", str(e), version, requested_by)
            raise
        if done is not None:
            logger.info("approval request #%s approved by %s", request.id, done)
            _notify(app, env, "approved", f"approved by {done}", version, done)
            return done

        attempt = _fired_attempts(flow_run_id, request.id)
        if attempt > 0:
            raw = _take_answer(flow_run_id, response_key(request.id, attempt))
            if raw is not None:
                last_refusal = _judge(request.id, raw, logger)
                continue
        if attempt == 0:
            _notify(app, env, "approval_needed", summary_markdown, version, requested_by)
        remaining = _remaining_s(request.expires_at)
        description = _describe(
            request,
            version=version,
            summary_markdown=summary_markdown,
            flow_run_id=flow_run_id,
            last_refusal=last_refusal,
        )
        logger.info(
            "waiting for approval of request #%s (suspension %d, %ds left)",
            request.id,
            attempt + 1,
            remaining,
        )
        # Raises Pause (the process exits) the first time; returns only if this key already
        # fired, i.e. Prefect answered the same suspension twice: treat it as an answer.
        answer = suspend_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=description),
            timeout=remaining,
            key=pause_key(request.id, attempt + 1),
        )
        delete_flow_run_input(response_key(request.id, attempt + 1), flow_run_id=UUID(flow_run_id))
        last_refusal = _judge(
            request.id,
            {
                "decision": answer.decision,
                "comment": answer.comment,
                "token": answer.token.get_secret_value(),
            },
            logger,
        )


def _remaining_s(expires_at: datetime | None) -> int:
    if expires_at is None:
        return 24 * 3600
    return max(1, math.ceil((expires_at - utcnow()).total_seconds()))


def _judge(request_id: int, raw: dict[str, Any], logger: Any) -> str | None:
    """Check one answer; returns the refusal reason, or None if it counted."""
    try:
        answer = ApprovalInput(**raw)
    except ValidationError:
        answer = None
    if answer is None:
        resolution = core.decide(
            ledger_engine(), request_id, token_text="", decision="reject", comment="malformed"
        )
    else:
        resolution = core.decide(
            ledger_engine(),
            request_id,
            token_text=answer.token.get_secret_value(),
            decision=answer.decision,
            comment=answer.comment,
        )
    if resolution.accepted:
        logger.info(
            "approval request #%s: %s accepted from %s", request_id, "answer", resolution.user
        )
        return None
    logger.warning(
        "approval request #%s: answer from %s refused: %s",
        request_id,
        resolution.user or "an unknown token",
        resolution.reason,
    )
    return resolution.reason
