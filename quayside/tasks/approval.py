"""The approval gate every flow uses: record a request, tell the approvers, wait until the
ledger says the release is approved or rejected.

The ledger is the only place answers count. Answers sent with a Quayside token (``quayside
approve``, ``POST /api/approvals/{run}``) or by a signed chat user are verified where they
arrive, recorded there (:func:`quayside.auth.approvals.decide`), and the run is then woken
*without any input*: the gate re-reads its request, goes on if it is approved, raises if it was
rejected, and waits again while more approvals are needed. No token passes through Prefect.

The Prefect UI's answer form takes a single-use approval code instead of a token
(:mod:`quayside.tasks.approval_form`: the form, the answers it stored and how each is checked;
what it shows above the form is :mod:`quayside.tasks.approval_description`). A refused answer
is recorded (``valid=False`` with the reason) and the gate waits again: it never fails open.

Waiting: first in the run's own process (:mod:`quayside.tasks.approval_wait`, Prefect's ``Paused``
state, polled every 0.5 s) for ``QUAYSIDE_APPROVAL_PAUSE_S`` (10 minutes), then suspended
(``suspend_flow_run``: the process exits, no worker slot and no lock are held while a release
waits a day; answering resumes the run and Prefect runs the flow again *from the top*). So the
gate is idempotent: the ledger request is found again by flow run id, and each wait has its
own key ``approval-<request id>-<n>``; Prefect records the keys on the flow run
(``empirical_policy.pause_keys``), and the form's answer to a suspension is found by its key.

Timeout: each wait carries the policy's remaining time. A suspended run whose request expires
is failed by the Prefect server ("never resumed") without running any code, so the ledger's
Expired record is written by :func:`quayside.auth.approvals.expire_overdue` (the periodic
sweep, or ``quayside approvals expire``) — or by this gate when the run does run again, or
when it is still waiting in its own process.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import Pause
from prefect.flow_runs import suspend_flow_run

from quayside.auth import approvals as core
from quayside.auth.approval_keys import pause_key
from quayside.errors import InputError, QuaysideError
from quayside.inventory import load_inventory
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals as ledger_approvals
from quayside.ledger.models import ApprovalRequest, ApprovalStatus, utcnow
from quayside.settings import load_settings
from quayside.tasks.approval_description import describe_request
from quayside.tasks.approval_form import (
    ApprovalInput,
    fired_attempts,
    judge_answer,
    judge_stored_answers,
)
from quayside.tasks.approval_wait import pause_for_answer, wait_settings
from quayside.tasks.ledger import current_flow_run_id, ledger_engine

#: a wait in the process shorter than this is not worth it: the gate suspends instead
MIN_PAUSE_S = 1.0


class ApprovalRejected(QuaysideError):
    """An approver rejected the release (recorded in the ledger)."""


class ApprovalExpired(QuaysideError):
    """Nobody approved the release before the policy's timeout (recorded as Expired)."""

    hint = "start the release again, and tell the approvers"


class ApprovalInterrupted(QuaysideError):
    """The run stopped waiting for its approval without an answer (cancelled, failed)."""


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


def _space_of(app: str) -> str:
    try:
        inventory = load_inventory(load_settings().inventory_path)
    except QuaysideError:
        return core.DEFAULT_SPACE
    found = inventory.apps.get(app)
    return found.space if found is not None else core.DEFAULT_SPACE


def _notify(app: str, env: str, event: str, text: str, version: str, actor: str) -> None:
    try:
        from quayside.tasks.notify import notify_release_event
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
    engine: Any,
    flow_run_id: str,
    *,
    app: str,
    env: str,
    version: str,
    digest: str,
    excluded: dict[str, str],
    gate: str,
) -> ApprovalRequest | None:
    """The request this run's gate may use: opened for this run and this gate (by the gate,
    or - the first gate - by the trigger that scheduled the run), for this app and env, this
    exact version and - when the gate opened it - this exact plan. Anything else is voided
    and None is returned: the gate opens a new request. Nothing a caller sends can name a
    request, and another gate's request (approved or not) is never this gate's."""
    found = core.find_for_run(engine, flow_run_id, app=app, env=env, gate=gate)
    if found is None or found.status is ApprovalStatus.voided:
        return None
    if found.version != version:
        reason = f"this run now releases {version!r}, not {found.version!r}"
    elif found.plan_hash is not None and found.plan_hash != digest:
        reason = "the plan changed since it was shown to the approvers"
    elif set(core.excluded_of(found)) != set(excluded):
        reason = "who may not approve it changed (the versions' editors)"
    else:
        return found
    ledger_approvals.void_request(engine, found.id, reason, actor=f"flow-run:{flow_run_id}")
    get_run_logger().warning("approval request #%s voided: %s", found.id, reason)
    return None


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
    pause_s: float | None = None,
    excluded_approvers: Mapping[str, str] | None = None,
    gate: str = core.DEFAULT_GATE,
) -> str:
    """Wait until the release is approved under ``policy``; call it from a flow (not a task).

    The run first waits in its own process (Paused, answers reach a verdict in about a
    second) for ``pause_s``, then it is suspended (it leaves its worker; on resume Prefect
    runs the flow again from the top, so work before the gate should be cheap or cached).
    Either way it must not hold a deploy lock. Answers count only as recorded in the ledger;
    the Prefect UI's form is checked here (a single-use approval code).

    Args:
        app: app name (roles are checked on this project of the app's space).
        env: environment name.
        version: tag, ref or version being released.
        summary_markdown: what will happen (commit range or diff summary, hosts); shown to
            approvers above the answer form.
        requested_by: who asked; may not approve unless the policy allows it.
        policy: the environment's approval policy (``required`` below 1 counts as 1).
        release_id: the ledger release waiting for the approval.
        pause_s: how long to wait in the run's process before suspending it (default
            ``QUAYSIDE_APPROVAL_PAUSE_S``, else 600; 0 suspends at once).
        excluded_approvers: who else may not approve, user -> why (the rule that excludes
            them), beside the requester: kept on the request, so every answer path (CLI,
            gateway, chat, the UI's code) refuses them, records why, and the gate waits on.
        gate: which gate of the run this is, for a run with more than one (a canary publish:
            ``release`` before the canary, ``rest`` after it): each gate has its own request,
            codes and decisions, and answering one never answers the other.

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
        ApprovalInterrupted: the run stopped waiting without an answer (cancelled).
        InputError: called outside a flow run, or a bad ``QUAYSIDE_APPROVAL_*`` setting.

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
    excluded = dict(excluded_approvers or {})
    found = _bound_request(
        engine,
        flow_run_id,
        app=app,
        env=env,
        version=version,
        digest=digest,
        excluded=excluded,
        gate=gate,
    )
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
            excluded_approvers=excluded,
            gate=gate,
        )
        logger.info("approval request #%s opened for %s → %s (gate %s)", request.id, app, env, gate)
    else:
        request = found

    settings = wait_settings()
    window_s = settings.window_s if pause_s is None else max(0.0, pause_s)
    # answers sent while it was suspended
    last_refusal = judge_stored_answers(flow_run_id, request.id, logger, None)
    window_ends: float | None = None
    left: str | None = None  # the state the run went to when it left a wait without an answer
    while True:
        request = ledger_approvals.resolve(engine, request.id, actor=f"flow-run:{flow_run_id}")
        try:
            done = _finish(request, app=app, env=env, version=version, requested_by=requested_by)
            if left is not None:
                raise ApprovalInterrupted(
                    f"the run left its wait for approval request #{request.id} ({left})",
                    hint="start the release again if it is still wanted",
                )
        except ApprovalRejected as e:
            logger.info("approval request #%s rejected", request.id)
            _notify(app, env, "rejected", str(e), version, requested_by)
            raise
        except ApprovalExpired:
            logger.warning("approval request #%s expired", request.id)
            raise
        if done is not None:
            logger.info("approval request #%s approved by %s", request.id, done)
            _notify(app, env, "approved", f"approved by {done}", version, done)
            return done

        attempt = fired_attempts(flow_run_id, request.id)
        if attempt == 0:
            how = (
                f"Approve: `quayside approve {flow_run_id}` or, in the Prefect UI, with your "
                f"own code from `quayside approvals code {flow_run_id}` (never post it here)."
            )
            text = f"{summary_markdown}\n\n{how}"
            _notify(app, env, "approval_needed", text, version, requested_by)
        remaining = _remaining_s(request.expires_at)
        form = ApprovalInput.with_initial_data(
            description=describe_request(
                request,
                version=version,
                summary_markdown=summary_markdown,
                flow_run_id=flow_run_id,
                last_refusal=last_refusal,
            )
        )
        key = pause_key(request.id, attempt + 1)
        if window_ends is None:
            window_ends = time.monotonic() + window_s
        here_s = min(window_ends - time.monotonic(), remaining)
        if here_s >= MIN_PAUSE_S:
            logger.info(
                "waiting for approval of request #%s (wait %d, here for up to %ds, %ds left)",
                request.id,
                attempt + 1,
                here_s,
                remaining,
            )
            seen = _counted(request)
            outcome = pause_for_answer(
                flow_run_id=flow_run_id,
                key=key,
                form=form,
                window_s=here_s,
                poll_s=settings.poll_s,
                changed=_ledger_news(engine, request.id, seen),
            )
            if outcome.answer is not None:
                last_refusal = judge_answer(request.id, outcome.answer, logger)
            elif outcome.ended == "answered":
                logger.info("approval request #%s: woken to read the ledger", request.id)
            if outcome.ended == "left":
                left = outcome.state
            continue
        logger.info(
            "waiting for approval of request #%s (wait %d, suspended, %ds left)",
            request.id,
            attempt + 1,
            remaining,
        )
        # Raises Pause (the process exits); returns only if this key had fired already, i.e.
        # Prefect answered the same suspension twice: read the ledger and the answers again.
        suspend_flow_run(wait_for_input=form, timeout=remaining, key=key)
        last_refusal = judge_stored_answers(flow_run_id, request.id, logger, last_refusal)


def _ledger_news(engine: Any, request_id: int, seen: tuple[str, int]) -> Callable[[], bool]:
    """Whether the request's status or valid decisions differ from ``seen``."""
    return lambda: _counted(ledger_approvals.get_request(engine, request_id)) != seen


def _counted(request: ApprovalRequest) -> tuple[str, int]:
    """What the gate acts on: the request's status and its valid decisions (a refused answer
    recorded elsewhere changes nothing for it)."""
    return request.status.value, sum(1 for d in request.decisions if d.valid)


def _remaining_s(expires_at: datetime | None) -> int:
    if expires_at is None:
        return 24 * 3600
    return max(1, math.ceil((expires_at - utcnow()).total_seconds()))
