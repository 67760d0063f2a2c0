"""Operator CLI: users, tokens and roles act on the ledger at QUAYSIDE_DATABASE_URL; the token
is printed once and never appears in lists; approve needs a token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quayside.auth import service
from quayside.auth.roles import Role, effective_role
from quayside.ledger.db import make_engine, migrate
from testbed.platform import PROJECT_DIR


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,  # `approve` would ask for a token on a terminal
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_users_tokens_roles(tmp_path: Path) -> None:
    import os

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    env = dict(os.environ) | {
        "QUAYSIDE_DATABASE_URL": url,
        "QUAYSIDE_HOME": str(tmp_path),
        "COLUMNS": "250",
    }
    env.pop("QUAYSIDE_TOKEN", None)
    assert cli(env, "users", "add", "ann", "--dingtalk-id", "s1").returncode == 0
    assert cli(env, "users", "add", "root", "--super").returncode == 0
    again = cli(env, "users", "add", "ann")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli(env, "roles", "grant", "ann", "master", "--space", "ops").returncode == 0
    assert cli(env, "roles", "grant", "ann", "reporter", "-s", "ops", "-p", "db").returncode == 0
    listed = cli(env, "users", "list")
    assert "MASTER@ops" in listed.stdout and "REPORTER@ops/db" in listed.stdout

    made = cli(env, "tokens", "create", "ann", "--expires-days", "7", "-d", "laptop")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    engine = make_engine(url)
    try:
        assert service.authenticate(engine, token).name == "ann"
        assert effective_role(engine, "ann", "ops", "web") is Role.MASTER
        assert effective_role(engine, "ann", "ops", "db") is Role.REPORTER
        token_id = token.split("_")[1]
        tokens_listed = cli(env, "tokens", "list")
        assert token_id in tokens_listed.stdout
        assert token.rsplit("_", 1)[1] not in tokens_listed.stdout
        assert cli(env, "tokens", "revoke", token_id).returncode == 0
        assert cli(env, "roles", "revoke", "ann", "-s", "ops", "-p", "db").returncode == 0
        assert effective_role(engine, "ann", "ops", "db") is Role.MASTER
    finally:
        engine.dispose()
    no_token = cli(env, "approve", "00000000-0000-0000-0000-000000000000")
    assert no_token.returncode == 1 and "no token" in no_token.stderr
