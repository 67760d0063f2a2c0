"""``quayside triggers status|resume`` as a user runs them (a separate process, a real ledger on
SQLite and PostgreSQL): a rollback's pause is lifted by a MASTER of the app (or the platform
operator), audited; a DEVELOPER is refused with the role named and the pause stays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quayside.auth import service
from quayside.ledger import audit
from quayside.ledger.db import make_engine
from quayside.ledger.environments import auto_triggers_paused, ensure_app_env, pause_auto_triggers
from testbed.platform import PROJECT_DIR

REASON = "rolled back from v2 to v1 (rollback release 7)"


@pytest.fixture
def env(tmp_path: Path, ledger_url: str) -> dict[str, str]:
    (tmp_path / "quayside.yaml").write_text(
        "apps:\n  shop:\n    space: team\n    environments:\n      prod: {}\n"
    )
    engine = make_engine(ledger_url)
    try:
        ensure_app_env(engine, "shop", "prod")
        pause_auto_triggers(engine, "shop", "prod", actor="bob", reason=REASON)
        for name, role in (("dev", "DEVELOPER"), ("lead", "MASTER")):
            service.create_user(engine, name)
            service.grant_role(engine, name, role, space="team")
    finally:
        engine.dispose()
    environ = dict(os.environ) | {
        "QUAYSIDE_DATABASE_URL": ledger_url,
        "QUAYSIDE_HOME": str(tmp_path / "home"),
        "QUAYSIDE_INVENTORY": str(tmp_path / "quayside.yaml"),
        "COLUMNS": "200",
    }
    environ.pop("QUAYSIDE_TOKEN", None)
    return environ


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def token_of(env: dict[str, str], user: str) -> dict[str, str]:
    engine = make_engine(env["QUAYSIDE_DATABASE_URL"])
    try:
        return env | {"QUAYSIDE_TOKEN": service.create_token(engine, user)}
    finally:
        engine.dispose()


def still_paused(env: dict[str, str]) -> str | None:
    engine = make_engine(env["QUAYSIDE_DATABASE_URL"])
    try:
        return auto_triggers_paused(engine, "shop", "prod")
    finally:
        engine.dispose()


def resumed_by(env: dict[str, str]) -> list[str]:
    engine = make_engine(env["QUAYSIDE_DATABASE_URL"])
    try:
        events = audit.list_events(engine, action="environment.auto_triggers_resumed")
        return [e.actor for e in events]
    finally:
        engine.dispose()


def test_a_master_resumes_what_a_rollback_paused(env: dict[str, str]) -> None:
    lead = token_of(env, "lead")
    status = cli(lead, "triggers", "status", "shop", "prod")
    assert status.returncode == 0, status.stderr
    assert "paused by bob" in status.stdout and REASON in status.stdout
    assert "quayside triggers resume shop prod" in status.stdout  # the way out is named
    resumed = cli(lead, "triggers", "resume", "shop", "prod")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed automatic triggers for shop/prod (as lead)" in resumed.stdout
    assert still_paused(env) is None
    assert resumed_by(env) == ["lead"]
    again = cli(lead, "triggers", "resume", "shop", "prod")
    assert again.returncode == 0 and "not paused; nothing to resume" in again.stdout
    assert resumed_by(env) == ["lead"]  # nothing written the second time
    on = cli(lead, "triggers", "status", "shop", "prod")
    assert "automatic triggers for shop/prod are on" in on.stdout


def test_a_developer_is_refused_with_the_role_needed(env: dict[str, str]) -> None:
    refused = cli(token_of(env, "dev"), "triggers", "resume", "shop", "prod")
    assert refused.returncode == 1
    assert "dev needs MASTER or higher" in refused.stderr
    assert still_paused(env) is not None and resumed_by(env) == []
    # reading the state needs no more than REPORTER
    assert cli(token_of(env, "dev"), "triggers", "status", "shop", "prod").returncode == 0


def test_the_operator_resumes_without_a_token_and_unknown_names_are_refused(
    env: dict[str, str],
) -> None:
    unknown = cli(env, "triggers", "resume", "shop", "staging")
    assert unknown.returncode == 1 and "has no environment 'staging'" in unknown.stderr
    done = cli(env, "triggers", "resume", "shop", "prod")
    assert done.returncode == 0, done.stderr
    assert still_paused(env) is None
    assert [actor.startswith("cli:") or actor == "cli" for actor in resumed_by(env)] == [True]
