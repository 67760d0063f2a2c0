"""Auth service: roles with space inheritance and project override, SUPER, disabled users,
token failures each with its own message (never the secret), single-use approval tokens,
approver checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from quayside.auth import service
from quayside.auth.roles import (
    PermissionDenied,
    Role,
    check_approver,
    effective_role,
    effective_roles,
    require_role,
)
from quayside.auth.service import AuthFailed
from quayside.errors import InputError
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import audit, users

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_role_order_and_parse() -> None:
    assert Role.REPORTER < Role.DEVELOPER < Role.MASTER < Role.OWNER < Role.SUPER
    assert Role.parse("master") is Role.MASTER
    with pytest.raises(InputError, match="unknown role 'boss'"):
        Role.parse("boss")


def test_space_role_inherited_and_project_override(ledger_engine: Engine) -> None:
    for name in ("owen", "dev", "root"):
        service.create_user(ledger_engine, name, is_super=name == "root")
    service.grant_role(ledger_engine, "owen", "OWNER", space="ops")
    service.grant_role(ledger_engine, "owen", "REPORTER", space="ops", project="db")
    service.grant_role(ledger_engine, "dev", "DEVELOPER", space="ops")
    service.grant_role(ledger_engine, "dev", "MASTER", space="ops", project="web")

    assert effective_role(ledger_engine, "owen", "ops", None) is Role.OWNER
    assert effective_role(ledger_engine, "owen", "ops", "web") is Role.OWNER  # inherited
    assert effective_role(ledger_engine, "owen", "ops", "db") is Role.REPORTER  # overridden
    assert effective_role(ledger_engine, "dev", "ops", "web") is Role.MASTER
    assert effective_role(ledger_engine, "dev", "ops", "api") is Role.DEVELOPER
    assert effective_role(ledger_engine, "dev", "other", "web") is None
    assert effective_role(ledger_engine, "root", "anywhere", "x") is Role.SUPER
    assert effective_role(ledger_engine, "ghost", "ops", None) is None

    with pytest.raises(PermissionDenied) as denied:
        require_role(ledger_engine, "dev", "ops", "api", Role.MASTER)
    assert str(denied.value) == (
        "dev needs MASTER or higher in project 'api' of space 'ops' (has DEVELOPER)"
    )
    assert require_role(ledger_engine, "dev", "ops", "web", "MASTER") is Role.MASTER
    with pytest.raises(InputError, match="--super"):
        service.grant_role(ledger_engine, "dev", "SUPER", space="ops")

    assert service.revoke_role(ledger_engine, "dev", space="ops", project="web")
    assert effective_role(ledger_engine, "dev", "ops", "web") is Role.DEVELOPER


def test_effective_roles_at_many_places_follow_the_one_place_rule(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "owen")
    service.create_user(ledger_engine, "dev")
    service.create_user(ledger_engine, "root", is_super=True)
    service.create_user(ledger_engine, "gone")
    service.grant_role(ledger_engine, "owen", "OWNER", space="ops")
    service.grant_role(ledger_engine, "owen", "REPORTER", space="ops", project="db")
    service.grant_role(ledger_engine, "dev", "MASTER", space="ops", project="web")
    service.grant_role(ledger_engine, "gone", "OWNER", space="ops")
    users.set_disabled(ledger_engine, "gone", True)
    places: list[tuple[str, str | None]] = [
        ("ops", None), ("ops", "web"), ("ops", "db"), ("ops", "api"), ("other", "web"),
    ]  # fmt: skip
    for user in ("owen", "dev", "root", "gone", "ghost"):
        many = effective_roles(ledger_engine, user, places)
        assert many == {p: effective_role(ledger_engine, user, *p) for p in places}, user
    assert effective_roles(ledger_engine, "dev", places)[("ops", "web")] is Role.MASTER
    assert effective_roles(ledger_engine, "dev", places)[("ops", "api")] is None
    assert effective_roles(ledger_engine, "owen", places)[("ops", "db")] is Role.REPORTER
    assert set(effective_roles(ledger_engine, "gone", places).values()) == {None}


def test_disabled_user_has_no_role_and_no_token(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann", is_super=True)
    token = service.create_token(ledger_engine, "ann", description="ci")
    users.set_disabled(ledger_engine, "ann", True)
    assert effective_role(ledger_engine, "ann", "ops", None) is None
    with pytest.raises(AuthFailed, match="user 'ann' is disabled"):
        service.authenticate(ledger_engine, token)
    with pytest.raises(InputError, match="disabled"):
        service.create_token(ledger_engine, "ann")


def test_token_roundtrip_and_every_failure(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann")
    token = service.create_token(
        ledger_engine, "ann", description="laptop", expires_in=timedelta(days=1), now=T0
    )
    who = service.authenticate(ledger_engine, token, now=T0 + timedelta(hours=1))
    assert (who.name, who.is_super, who.purpose) == ("ann", False, "api")
    stored = users.get_token(ledger_engine, who.token_id)
    assert stored is not None and stored.last_used_at == T0 + timedelta(hours=1)
    secret = token.rsplit("_", 1)[1]
    assert secret not in stored.secret_hash

    failures: list[str] = []

    def fails(text: str, **kwargs: datetime) -> None:
        with pytest.raises(AuthFailed) as raised:
            service.authenticate(ledger_engine, text, **kwargs)
        assert secret not in str(raised.value)
        failures.append(str(raised.value))

    fails("Bearer nonsense")
    fails(token[:-1] + ("0" if token[-1] != "0" else "1"))  # right id, wrong secret
    fails("qs_" + "0" * 12 + "_" + "0" * 64)
    fails(token, now=T0 + timedelta(days=1))
    service.revoke_token(ledger_engine, who.token_id)
    fails(token, now=T0)
    assert failures[0].startswith("malformed token")
    assert failures[1] == f"unknown token qs_{who.token_id}_…"
    assert failures[2].startswith("unknown token qs_000000000000_")
    assert failures[3].startswith(f"token qs_{who.token_id}_… expired at 2026-03-02 12:00:00")
    assert failures[4] == f"token qs_{who.token_id}_… was revoked"
    for event in audit.list_events(ledger_engine):
        assert secret not in repr(event.details)


def test_approval_token_is_single_use(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann")
    token = service.issue_approval_token(ledger_engine, "ann", ttl_s=60)
    with pytest.raises(AuthFailed, match="single-use approval token, not an API token"):
        service.authenticate(ledger_engine, token)
    who = service.authenticate(ledger_engine, token, allow_approval_once=True)
    assert who.purpose == "approval-once"
    with pytest.raises(AuthFailed, match="already used"):
        service.authenticate(ledger_engine, token, allow_approval_once=True)
    later = datetime.now(UTC) + timedelta(seconds=61)
    expired = service.issue_approval_token(ledger_engine, "ann", ttl_s=60)
    with pytest.raises(AuthFailed, match="expired"):
        service.authenticate(ledger_engine, expired, now=later, allow_approval_once=True)


def test_chat_user_mapping(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann", dingtalk_id="0123")
    assert service.user_by_chat_id(ledger_engine, "dingtalk", "0123") == "ann"
    assert service.user_by_chat_id(ledger_engine, "dingtalk", "999") is None
    users.set_disabled(ledger_engine, "ann", True)
    assert service.user_by_chat_id(ledger_engine, "dingtalk", "0123") is None
    with pytest.raises(InputError, match="unknown chat provider"):
        service.user_by_chat_id(ledger_engine, "irc", "x")


def test_check_approver(ledger_engine: Engine) -> None:
    for name in ("dev", "lead", "rep"):
        service.create_user(ledger_engine, name)
    service.grant_role(ledger_engine, "dev", "DEVELOPER", space="ops")
    service.grant_role(ledger_engine, "lead", "MASTER", space="ops")
    service.grant_role(ledger_engine, "rep", "REPORTER", space="ops")
    prod = ApprovalPolicy(required=1, role="MASTER")
    where = {"space": "ops", "project": "web", "policy": prod}
    assert check_approver(ledger_engine, approver="lead", requester="dev", **where) is Role.MASTER
    with pytest.raises(PermissionDenied, match="rep needs MASTER or higher"):
        check_approver(ledger_engine, approver="rep", requester="dev", **where)
    with pytest.raises(PermissionDenied, match="lead requested this release"):
        check_approver(ledger_engine, approver="lead", requester="lead", **where)
    relaxed = ApprovalPolicy(required=1, role="DEVELOPER", allow_self_approval=True)
    assert (
        check_approver(
            ledger_engine,
            approver="dev",
            requester="dev",
            space="ops",
            project="web",
            policy=relaxed,
        )
        is Role.DEVELOPER
    )
