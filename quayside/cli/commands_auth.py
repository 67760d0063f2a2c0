"""Users, tokens, roles and approvals.

``users``, ``tokens``, ``roles`` and ``approvals expire`` are operator commands for the
platform host: they write the ledger directly (QUAYSIDE_DATABASE_URL, else the SQLite ledger
in QUAYSIDE_HOME), with the operator's login recorded in the audit log. ``approve`` checks
the approver's token, role and the policy against the ledger, records the decision there and
wakes the waiting run without any input (the token never goes to Prefect);
``approvals code`` gives an approver a single-use code for the Prefect UI's approval form.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from quayside.cli.app import app, console, err_console
from quayside.cli.requester import operator_name
from quayside.errors import InputError, QuaysideError
from quayside.settings import load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

users_app = typer.Typer(
    help="Users (operator command on the platform host: writes the ledger directly).",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens (operator command on the platform host: writes the ledger directly).",
    no_args_is_help=True,
)
roles_app = typer.Typer(
    help="Roles per space or project (operator command on the platform host).",
    no_args_is_help=True,
)
approvals_app = typer.Typer(help="Approval requests in the ledger.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(roles_app, name="roles")
app.add_typer(approvals_app, name="approvals")


def _actor() -> str:
    return operator_name()


def _engine() -> Engine:
    from quayside.ledger.db import check_schema, make_engine

    engine = make_engine(load_settings().database_url)
    check_schema(engine)
    return engine


@contextmanager
def _ledger() -> Iterator[Engine]:
    """The ledger engine for one command, disposed at the end."""
    engine = _engine()
    try:
        yield engine
    finally:
        engine.dispose()


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="login name"),
    super_: bool = typer.Option(False, "--super", help="platform administrator (SUPER)"),
    dingtalk_id: str | None = typer.Option(
        None, "--dingtalk-id", help="DingTalk senderStaffId, for chat commands"
    ),
    email: str | None = typer.Option(None, "--email"),
    display_name: str | None = typer.Option(None, "--display-name"),
) -> None:
    """Add a user."""
    from quayside.auth import service

    engine = _engine()
    try:
        service.create_user(
            engine,
            name,
            is_super=super_,
            dingtalk_id=dingtalk_id,
            email=email,
            display_name=display_name,
            actor=_actor(),
        )
    finally:
        engine.dispose()
    console.print(f"user {name} added" + (" (SUPER)" if super_ else ""), highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List users with their roles."""
    from rich.table import Table

    from quayside.auth import service
    from quayside.ledger import users

    engine = _engine()
    try:
        people = service.list_users(engine)
        grants = users.list_grants(engine)
    finally:
        engine.dispose()
    roles: dict[str, list[str]] = {}
    for grant in grants:
        place = grant.space.name + (f"/{grant.project}" if grant.project else "")
        roles.setdefault(grant.user.name, []).append(f"{grant.role}@{place}")
    table = Table("name", "display name", "email", "dingtalk id", "roles", "state")
    for user in people:
        state = "disabled" if user.disabled else "active"
        everywhere = ["SUPER"] if user.is_super else []
        table.add_row(
            user.name,
            user.display_name or "",
            user.email or "",
            user.dingtalk_id or "",
            ", ".join(everywhere + roles.get(user.name, [])),
            state,
        )
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    user: str = typer.Argument(..., help="the token's owner"),
    expires_days: float | None = typer.Option(
        None, "--expires-days", help="lifetime in days (default: until revoked)"
    ),
    description: str = typer.Option("", "--description", "-d", help="what it is for"),
) -> None:
    """Create an API token and print it once (it cannot be shown again)."""
    from quayside.auth import service, tokens

    if expires_days is not None and expires_days <= 0:
        raise InputError("--expires-days must be positive")
    engine = _engine()
    try:
        plaintext = service.create_token(
            engine,
            user,
            description=description,
            expires_in=timedelta(days=expires_days) if expires_days is not None else None,
            actor=_actor(),
        )
    finally:
        engine.dispose()
    token_id, _ = tokens.parse_token(plaintext)
    err_console.print(
        f"token {tokens.display(token_id)} for {user} created; it is shown once:",
        highlight=False,
    )
    print(plaintext)


@tokens_app.command("list")
def tokens_list(user: str | None = typer.Argument(None, help="only this user's")) -> None:
    """List tokens (ids only, never secrets)."""
    from rich.table import Table

    from quayside.auth import tokens
    from quayside.ledger import users

    engine = _engine()
    try:
        rows = users.list_tokens(engine, user)
    finally:
        engine.dispose()
    table = Table("token", "user", "purpose", "description", "expires", "last used", "state")
    for row in rows:
        state = "revoked" if row.revoked_at else "used" if row.consumed_at else "active"
        table.add_row(
            tokens.display(row.token_id),
            row.user.name,
            row.purpose.value,
            row.description,
            f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "never",
            f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "",
            state,
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str = typer.Argument(..., help="the id (qs_<id>_…)")) -> None:
    """Revoke a token."""
    from quayside.auth import service

    engine = _engine()
    try:
        service.revoke_token(engine, token_id, actor=_actor())
    finally:
        engine.dispose()
    console.print("token revoked", highlight=False)


@roles_app.command("grant")
def roles_grant(
    user: str = typer.Argument(...),
    role: str = typer.Argument(..., help="OWNER, MASTER, DEVELOPER or REPORTER"),
    space: str = typer.Option(..., "--space", "-s", help="the space (apps' `space:`)"),
    project: str | None = typer.Option(
        None, "--project", "-p", help="one app of the space (overrides the space role)"
    ),
) -> None:
    """Give a user a role in a space, or in one project (app) of it."""
    from quayside.auth import service

    engine = _engine()
    try:
        grant = service.grant_role(engine, user, role, space=space, project=project, actor=_actor())
    finally:
        engine.dispose()
    where = f"project {project} of space {space}" if project else f"space {space}"
    console.print(f"{user} is {grant.role} in {where}", highlight=False)


@roles_app.command("revoke")
def roles_revoke(
    user: str = typer.Argument(...),
    space: str = typer.Option(..., "--space", "-s"),
    project: str | None = typer.Option(None, "--project", "-p"),
) -> None:
    """Remove a user's role in a space or project."""
    from quayside.auth import service

    with _ledger() as engine:
        removed = service.revoke_role(engine, user, space=space, project=project, actor=_actor())
        console.print(
            "role revoked" if removed else "no such grant; nothing changed", highlight=False
        )
        if removed:
            _cancel_withdrawn_runs(engine, user)


@users_app.command("disable")
def users_disable(user: str = typer.Argument(..., help="the user to disable")) -> None:
    """Disable a user: their tokens and roles stop working, their scheduled runs are cancelled."""
    from quayside.ledger.users import set_disabled

    with _ledger() as engine:
        set_disabled(engine, user, True, actor=_actor())
        console.print(f"{user} disabled", highlight=False)
        _cancel_withdrawn_runs(engine, user)


@users_app.command("enable")
def users_enable(user: str = typer.Argument(..., help="the user to enable again")) -> None:
    """Enable a disabled user (runs cancelled while they were disabled stay cancelled)."""
    from quayside.ledger.users import set_disabled

    with _ledger() as engine:
        set_disabled(engine, user, False, actor=_actor())
    console.print(f"{user} enabled", highlight=False)


def _cancel_withdrawn_runs(engine: Engine, user: str) -> None:
    """Cancel ``user``'s scheduled runs they may no longer start, each with an audit event.

    A run the platform cannot be reached to cancel is still refused when it starts (it checks
    its submitter again); the command says so.
    """
    from quayside.auth.run_start import withdrawn_submissions
    from quayside.inventory import load_inventory
    from quayside.ledger.models import SubmissionStatus
    from quayside.ledger.submissions import mark_submission
    from quayside.runs import cancel_run

    try:
        inventory = load_inventory(load_settings().inventory_path)
    except QuaysideError as e:
        err_console.print(
            f"scheduled runs of {user} not checked now ({e.message}); each is checked again "
            "when it starts",
            highlight=False,
        )
        return
    withdrawn = withdrawn_submissions(engine, inventory, user)
    for submission, reason in withdrawn:
        why = f"cancelled: {reason}"
        try:
            cancel_run(submission.flow_run_id, why)
        except QuaysideError as e:
            err_console.print(
                f"could not cancel scheduled run {submission.flow_run_id} ({e.message}); "
                "it will be refused when it starts",
                highlight=False,
            )
        mark_submission(
            engine, submission.flow_run_id, SubmissionStatus.cancelled, actor=_actor(), reason=why
        )
        console.print(
            f"scheduled run {submission.flow_run_id} ({submission.deployment} "
            f"{submission.app or ''}/{submission.env or ''}) cancelled: {reason}",
            highlight=False,
        )


@approvals_app.command("expire")
def approvals_expire() -> None:
    """Record Expired on every pending approval request past its timeout."""
    from quayside.auth.approvals import expire_overdue

    engine = _engine()
    try:
        expired = expire_overdue(engine, actor=_actor())
    finally:
        engine.dispose()
    console.print(f"{len(expired)} request(s) expired", highlight=False)


@approvals_app.command("sweep")
def approvals_sweep() -> None:
    """Do now what the gateway's approval sweep does every minute: record Expired on overdue
    requests, wake the runs still suspended although their request was decided (a wake lost
    to a Prefect restart), and close the pending requests whose run ended (cancelled while it
    waited), ending their releases as cancelled."""
    from quayside.cli.prefect_target import require_platform

    require_platform()
    from quayside.auth.approvals import expire_overdue
    from quayside.runs.approval_sweep import wake_and_close

    engine = _engine()
    try:
        expired = expire_overdue(engine, actor=_actor())
        for request_id in expired:  # recorded: said before Prefect is asked anything
            console.print(f"approval request {request_id} expired", highlight=False)
        lines = wake_and_close(engine)
    finally:
        engine.dispose()
    for line in lines:
        console.print(line, highlight=False)
    if not expired and not lines:
        console.print(
            "nothing to sweep: no request is overdue, decided while its run waits, "
            "or left by a run that ended",
            highlight=False,
        )


@approvals_app.command("code")
def approvals_code(
    run_id: str = typer.Argument(..., help="the flow run waiting for approval"),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="file holding your token, readable by you only (default: the QUAYSIDE_TOKEN "
        "environment variable, else a hidden prompt in a terminal)",
        dir_okay=False,
    ),
) -> None:
    """A single-use code to answer RUN_ID's approval in the Prefect UI's form (field code),
    so your token never goes into the UI. Only someone who may answer gets one; a new code
    replaces your previous one; it expires with the request."""
    from quayside.cli.prefect_target import require_platform
    from quayside.cli.token_input import read_token

    secret = read_token(token_file, os.environ).strip()
    require_platform()  # before seconds of Prefect imports
    from quayside.auth.service import authenticate
    from quayside.runs import ui_url_for
    from quayside.runs.approval_answers import code_for_run, read_waiting_run

    read_waiting_run(run_id)  # an unknown run is named before the token is looked at
    with _ledger() as engine:
        who = authenticate(engine, secret)
        issued = code_for_run(engine, run_id, user=who.name)
    console.print(f"approval code: {issued.code}", highlight=False)
    console.print(
        f"for {issued.user} on approval request {issued.request_id} of run {run_id}; enter it "
        f"in the run's approval form (field code): {ui_url_for(run_id)}\n"
        f"it works once, until {issued.expires_at:%Y-%m-%d %H:%M} UTC; do not share it",
        highlight=False,
    )


_WAKE_TEXT = {
    "woken": "run {run} woken",
    "queued": "run {run} reads it when it starts",
    "not waiting": "run {run} reads it before it waits again",
    "ended": "run {run} has ended",
    "not woken": "run {run} could not be woken now ({why}); it reads the ledger when it is: "
    "once its request is decided, the gateway's approval sweep wakes it within a minute "
    "(or: quayside approvals sweep)",
}


@app.command()
def approve(
    run_id: str = typer.Argument(..., help="the waiting (or scheduled) flow run's id"),
    reject: bool = typer.Option(False, "--reject", help="reject instead of approve"),
    message: str = typer.Option("", "--message", "-m", help="comment for the ledger"),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="file holding your token, readable by you only (default: the QUAYSIDE_TOKEN "
        "environment variable, else a hidden prompt in a terminal)",
        dir_okay=False,
    ),
    wait_s: float = typer.Option(
        90, "--wait", help="seconds to wait for the run to go on once it is decided"
    ),
) -> None:
    """Answer a flow run waiting for approval: your token, role and the policy are checked
    here, the decision is recorded in the ledger, and the run is woken to read it.

    Your token never goes on the command line (--token-file, QUAYSIDE_TOKEN or the prompt)
    and never to Prefect.
    """
    from quayside.cli.prefect_target import require_platform
    from quayside.cli.token_input import read_token

    secret = read_token(token_file, os.environ).strip()
    require_platform()  # before seconds of Prefect imports
    from quayside.auth.service import authenticate
    from quayside.runs.approval_answers import answer_run, read_waiting_run

    decision = "reject" if reject else "approve"
    read_waiting_run(run_id)  # an unknown run is named before the token is looked at
    with _ledger() as engine:
        who = authenticate(engine, secret)
        done = answer_run(
            engine, run_id, user=who.name, decision=decision, comment=message, token=secret
        )
    outcome = done.resolution
    console.print(
        f"{decision} from {outcome.user} accepted; request is {outcome.status.value} "
        f"(approval request {done.request_id}); "
        + _WAKE_TEXT[done.wake].format(run=done.run_id, why=done.why),
        highlight=False,
    )
    if outcome.status.value == "pending":
        console.print(
            f"{len(outcome.approvers)} approval(s) so far; the run keeps waiting for more",
            highlight=False,
        )
    elif done.wake in ("woken", "not waiting"):
        _follow(done.run_id, wait_s)


def _follow(run_id: str, wait_s: float) -> None:
    """Wait until the decided run has left its wait, and say where it is."""
    from quayside.runs import read_run, ui_url_for

    deadline = time.monotonic() + wait_s
    while True:
        status = read_run(run_id)
        if status.state_type not in ("PAUSED", "SCHEDULED", "PENDING"):
            console.print(f"run {run_id} is {status.state_name}", highlight=False)
            return
        if time.monotonic() >= deadline:
            console.print(
                f"run {run_id} is still {status.state_name} after {wait_s:.0f}s; "
                f"follow it in the Prefect UI: {ui_url_for(run_id)}",
                highlight=False,
            )
            return
        time.sleep(0.25)
