"""Ledger users, tokens, spaces and role grants: migration 0002 up and down on SQLite and
PostgreSQL (with data), uniqueness, and one audit event per state change."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from quayside.errors import InputError, NotFoundError
from quayside.ledger import approvals, audit, users
from quayside.ledger.db import current_revision, downgrade, head_revision, make_engine, migrate
from quayside.ledger.models import TokenPurpose, utcnow

NEW_TABLES = {"users", "api_tokens", "spaces", "role_grants"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_0002_up_down_keeps_0001_data(empty_ledger_url: str) -> None:
    migrate(empty_ledger_url, "0001")
    engine = make_engine(empty_ledger_url)
    try:  # rows as 0001 wrote them (the models already know the 0002 columns)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO approval_requests (id, app, env, summary, required_approvals,"
                    " status, requested_by, created_at) VALUES (1, 'web', 'prod', 's', 1,"
                    " 'pending', 'ann', :t)"
                ),
                {"t": utcnow().replace(tzinfo=None)},
            )
            conn.execute(
                text(
                    'INSERT INTO approval_decisions (request_id, "user", decision,'
                    " created_at, valid) VALUES (1, 'bob', 'approve', :t, :v)"
                ),
                {"t": utcnow().replace(tzinfo=None), "v": True},
            )
    finally:
        engine.dispose()
    migrate(empty_ledger_url)
    assert NEW_TABLES <= _tables(empty_ledger_url)
    engine = make_engine(empty_ledger_url)
    try:
        assert current_revision(engine) == head_revision()
        kept = approvals.get_request(engine, 1)
        assert kept.approver_role is None and kept.allow_self_approval is False
        assert [d.user for d in kept.decisions] == ["bob"]
        users.create_user(engine, "ann")
        users.grant_role(engine, "ann", "ops", "MASTER")
        users.add_token(engine, "ann", token_id="a" * 12, secret_hash="h")
    finally:
        engine.dispose()
    downgrade(empty_ledger_url, "0001")
    assert not NEW_TABLES & _tables(empty_ledger_url)
    engine = make_engine(empty_ledger_url)
    try:
        assert current_revision(engine) == "0001"
        columns = {c["name"] for c in inspect(engine).get_columns("approval_requests")}
        assert "approver_role" not in columns
        with engine.connect() as conn:  # the decisions survived the column drop
            count = conn.execute(text("SELECT count(*) FROM approval_decisions")).scalar_one()
        assert count == 1
    finally:
        engine.dispose()
    migrate(empty_ledger_url)
    assert NEW_TABLES <= _tables(empty_ledger_url)


def test_users_unique_names_and_dingtalk_ids(ledger_engine: Engine) -> None:
    users.create_user(ledger_engine, "ann", dingtalk_id="staff-1", email="ann@example.com")
    with pytest.raises(InputError, match="already exists"):
        users.create_user(ledger_engine, "ann")
    with pytest.raises(InputError, match="already belongs to user 'ann'"):
        users.create_user(ledger_engine, "bob", dingtalk_id="staff-1")
    users.create_user(ledger_engine, "bob")
    users.create_user(ledger_engine, "cat")  # two NULL dingtalk ids are fine
    assert [u.name for u in users.list_users(ledger_engine)] == ["ann", "bob", "cat"]
    found = users.user_by_dingtalk_id(ledger_engine, "staff-1")
    assert found is not None and found.name == "ann"
    assert users.user_by_dingtalk_id(ledger_engine, "nobody") is None
    events = audit.list_events(ledger_engine, action="user.created")
    assert len(events) == 3


def test_grants_replace_and_space_level_is_unique(ledger_engine: Engine) -> None:
    users.create_user(ledger_engine, "ann")
    users.grant_role(ledger_engine, "ann", "ops", "DEVELOPER")
    users.grant_role(ledger_engine, "ann", "ops", "MASTER")  # replaces, does not add
    users.grant_role(ledger_engine, "ann", "ops", "REPORTER", project="web")
    assert users.grants_for(ledger_engine, "ann", "ops", "web") == ("MASTER", "REPORTER")
    assert users.grants_for(ledger_engine, "ann", "ops", None) == ("MASTER", None)
    assert len(users.list_grants(ledger_engine, "ann")) == 2
    # the partial unique index refuses a second space-level grant written behind our back
    with pytest.raises(IntegrityError), ledger_engine.begin() as conn:
        grant = conn.execute(text("SELECT user_id, space_id FROM role_grants LIMIT 1")).one()
        conn.execute(
            text(
                "INSERT INTO role_grants (user_id, space_id, project, role, created_at) "
                "VALUES (:u, :s, NULL, 'OWNER', :t)"
            ),
            {"u": grant[0], "s": grant[1], "t": utcnow().replace(tzinfo=None)},
        )
    assert users.revoke_role(ledger_engine, "ann", "ops", project="web")
    assert not users.revoke_role(ledger_engine, "ann", "ops", project="web")
    assert not users.revoke_role(ledger_engine, "ann", "nowhere")
    actions = [e.action for e in reversed(audit.list_events(ledger_engine))]
    assert actions == [
        "user.created",
        "space.created",
        "role.granted",
        "role.granted",
        "role.granted",
        "role.revoked",
    ]
    with pytest.raises(NotFoundError):
        users.grant_role(ledger_engine, "nobody", "ops", "MASTER")


def test_token_rows_revoke_and_consume_once(ledger_engine: Engine) -> None:
    users.create_user(ledger_engine, "ann")
    users.add_token(
        ledger_engine,
        "ann",
        token_id="b" * 12,
        secret_hash="h",
        purpose=TokenPurpose.approval_once,
    )
    now = utcnow()
    assert users.consume_token(ledger_engine, "b" * 12, now, actor="ann")
    assert not users.consume_token(ledger_engine, "b" * 12, now, actor="ann")
    first = users.revoke_token(ledger_engine, "b" * 12).revoked_at
    assert users.revoke_token(ledger_engine, "b" * 12).revoked_at == first
    with pytest.raises(NotFoundError):
        users.revoke_token(ledger_engine, "c" * 12)
    with pytest.raises(InputError, match="purpose"):
        users.add_token(ledger_engine, "ann", token_id="d" * 12, secret_hash="h", purpose="x")
    actions = [e.action for e in audit.list_events(ledger_engine, subject_type="api_token")]
    assert actions == ["token.revoked", "token.consumed", "token.created"]
