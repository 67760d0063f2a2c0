"""``quayside config`` and ``quayside vars`` as a user runs them (a separate process, a real
ledger on SQLite and PostgreSQL): drafts, stale saves, history, diff, restore, bad filenames,
secrets that never print, and roles with a token (DEVELOPER edits, REPORTER reads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quayside.auth import service
from quayside.ledger.db import make_engine
from testbed.platform import PROJECT_DIR
from testbed.vault import VAULT_TOKEN, FakeVault

ITEM = "DNS/release/dnsmasq/dnsmasq_hosts"


@pytest.fixture
def env(tmp_path: Path, ledger_url: str) -> dict[str, str]:
    (tmp_path / "quayside.yaml").write_text(
        "apps:\n  DNS:\n    space: ops\n    environments:\n      release: {}\n"
    )
    environ = dict(os.environ) | {
        "QUAYSIDE_DATABASE_URL": ledger_url,
        "QUAYSIDE_HOME": str(tmp_path / "home"),
        "QUAYSIDE_INVENTORY": str(tmp_path / "quayside.yaml"),
        "COLUMNS": "200",
    }
    for name in ("QUAYSIDE_TOKEN", "QUAYSIDE_CONFIG_BACKEND", "VAULT_ADDR", "VAULT_TOKEN"):
        environ.pop(name, None)
    return environ


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    return done


def test_drafts_history_diff_restore_and_stale_saves(env: dict[str, str]) -> None:
    ok(cli(env, "config", "set", ITEM, "-m", "first", stdin="10.0.0.1 a\n"))
    again = cli(env, "config", "set", ITEM, stdin="10.0.0.9 z\n")
    assert again.returncode == 1 and "--base 1" in again.stderr  # no blind overwrite
    ok(cli(env, "config", "set", ITEM, "--base", "1", stdin="10.0.0.1 a\n10.0.0.2 b\n"))
    stale = cli(env, "config", "set", ITEM, "--base", "1", stdin="10.0.0.1 a\n10.0.0.3 c\n")
    assert stale.returncode == 1
    assert "stale save refused, nothing was saved" in stale.stderr
    assert "-10.0.0.2 b" in stale.stderr and "+10.0.0.3 c" in stale.stderr
    assert "--base 2" in stale.stderr
    got = ok(cli(env, "config", "get", ITEM))
    assert got.stdout == "10.0.0.1 a\n10.0.0.2 b\n" and "v2" in got.stderr
    assert ok(cli(env, "config", "get", ITEM, "--version", "1")).stdout == "10.0.0.1 a\n"
    diff = ok(cli(env, "config", "diff", ITEM, "1", "2")).stdout
    assert diff.startswith(f"--- {ITEM} v1\n+++ {ITEM} v2\n") and "+10.0.0.2 b\n" in diff
    restored = ok(cli(env, "config", "restore", ITEM, "1"))
    assert "restored as version 3" in restored.stderr
    history = ok(cli(env, "config", "history", ITEM)).stdout
    assert "restores v1" in history and "first" in history and "draft" in history
    never = cli(env, "config", "get", ITEM, "--published")
    assert never.returncode == 1 and "never published" in never.stderr
    listed = ok(cli(env, "config", "list", "DNS/release")).stdout
    assert ITEM in listed and "v3" in listed and "unpublished draft" in listed
    assert ITEM in ok(cli(env, "config", "list", "DNS")).stdout
    unknown = cli(env, "config", "list", "DNS/prod")
    assert unknown.returncode == 1 and "'prod' is not an environment" in unknown.stderr


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("DNS/release/dnsmasq/../../etc/passwd", "filename: '../../etc/passwd' has a '.' or '..'"),
        ("DNS/release/dnsmasq//etc/passwd", "filename: '/etc/passwd' is absolute"),
        ("DNS/release/dnsmasq/a\nb", "filename: 'a\\nb' contains a newline"),
        ("DNS/release/dnsmasq/a//b", "filename: 'a//b' has an empty path segment"),
    ],
)
def test_bad_filenames_are_refused(env: dict[str, str], address: str, problem: str) -> None:
    done = cli(env, "config", "set", address, stdin="x\n")
    assert done.returncode == 1 and problem in done.stderr


def test_oversized_file_is_refused_with_the_limit(env: dict[str, str]) -> None:
    done = cli(env, "config", "set", ITEM, stdin="x" * (1024 * 1024 + 1))
    assert done.returncode == 1 and "over the config file limit of 1048576 bytes" in done.stderr


def test_variables_and_secrets(env: dict[str, str]) -> None:
    ok(cli(env, "vars", "set", "DNS/release", "upstream", "10.1.1.1"))
    refused = cli(env, "vars", "set", "DNS/release", "pw", "hunter2-pw", "--secret")
    assert refused.returncode == 1 and "never goes on the command line" in refused.stderr
    made = ok(cli(env, "vars", "set", "DNS/release", "pw", "--secret", stdin="hunter2-pw\n"))
    assert "•••• (v1)" in made.stderr and "hunter2" not in made.stderr + made.stdout
    listed = ok(cli(env, "vars", "list", "DNS/release"))
    assert "10.1.1.1" in listed.stdout and "•••• (v1)" in listed.stdout
    assert "hunter2" not in listed.stdout
    assert ok(cli(env, "vars", "get", "DNS/release", "pw")).stdout == "•••• (v1)\n"
    assert ok(cli(env, "vars", "get", "DNS/release", "pw", "--reveal")).stdout == "hunter2-pw\n"
    key = Path(env["QUAYSIDE_HOME"]) / "config-secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600
    source = "server={{ upstream }}\npassword={{ pw }}\n"
    ok(cli(env, "config", "set", "DNS/release/app/app.conf", "--template", stdin=source))
    rendered = ok(cli(env, "config", "get", "DNS/release/app/app.conf", "--rendered")).stdout
    assert rendered == "server=10.1.1.1\npassword=•••• (v1)\n"
    ok(cli(env, "config", "set", "DNS/release/app/bad.conf", "--template", stdin="a\n{{ nope }}\n"))
    failed = cli(env, "config", "get", "DNS/release/app/bad.conf", "--rendered")
    assert "template DNS/release/app/bad.conf, line 2: variable 'nope' is not defined" in (
        failed.stderr
    )


def test_roles_with_a_token(env: dict[str, str], tmp_path: Path) -> None:
    engine = make_engine(env["QUAYSIDE_DATABASE_URL"])
    try:
        for name, role in (("dev", "DEVELOPER"), ("rep", "REPORTER")):
            service.create_user(engine, name)
            service.grant_role(engine, name, role, space="ops")
        tokens = {name: service.create_token(engine, name) for name in ("dev", "rep")}
    finally:
        engine.dispose()
    dev, rep = env | {"QUAYSIDE_TOKEN": tokens["dev"]}, env | {"QUAYSIDE_TOKEN": tokens["rep"]}
    ok(cli(dev, "config", "set", ITEM, stdin="10.0.0.1 a\n"))
    assert "dev" in ok(cli(dev, "config", "history", ITEM)).stdout  # the author is the user
    denied = cli(rep, "config", "set", ITEM, "--base", "1", stdin="x\n")
    assert denied.returncode == 1 and "rep needs DEVELOPER or higher" in denied.stderr
    assert ok(cli(rep, "config", "get", ITEM)).stdout == "10.0.0.1 a\n"
    ok(cli(dev, "vars", "set", "DNS/release", "pw", "--secret", stdin="s3cret\n"))
    assert ok(cli(rep, "vars", "get", "DNS/release", "pw")).stdout == "•••• (v1)\n"
    peek = cli(rep, "vars", "get", "DNS/release", "pw", "--reveal")
    assert peek.returncode == 1 and "DEVELOPER" in peek.stderr and "s3cret" not in peek.stdout
    for args in (("config", "restore", ITEM, "1"), ("vars", "set", "DNS/release", "x", "1")):
        assert cli(rep, *args).returncode == 1


EDITOR_SCRIPT = """\
import os, sys
from pathlib import Path
path = Path(sys.argv[-1])
if os.environ.get("RACE"):  # someone saves while this editor is open
    from quayside.config import items
    from quayside.config.address import ItemAddress
    from quayside.config.sql_store import SqlConfigStore
    from quayside.ledger.db import make_engine
    store = SqlConfigStore(make_engine(os.environ["QUAYSIDE_DATABASE_URL"]))
    item = ItemAddress.parse(os.environ["RACE"])
    items.save(store, item, "theirs\\n", author="bob",
               base_version=items.latest_version_number(store, item))
path.write_text(path.read_text() + "10.0.0.7 g\\n")
"""


def test_edit_saves_from_the_version_it_opened(env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT)
    editing = env | {"EDITOR": f"{sys.executable} {script}", "VISUAL": ""}
    ok(cli(env, "config", "set", ITEM, stdin="10.0.0.1 a\n"))
    done = ok(cli(editing, "config", "edit", ITEM, "-m", "add g"))
    assert "saved version 2" in done.stderr
    assert ok(cli(env, "config", "get", ITEM)).stdout == "10.0.0.1 a\n10.0.0.7 g\n"
    raced = cli(editing | {"RACE": ITEM}, "config", "edit", ITEM)
    assert raced.returncode == 1 and "you started from version 2" in raced.stderr
    assert "latest is version 3 by bob" in raced.stderr
    kept = raced.stderr.split("your edit is kept in ")[1].split()[0]
    assert Path(kept).read_text() == "10.0.0.1 a\n10.0.0.7 g\n10.0.0.7 g\n"  # nothing lost
    assert ok(cli(env, "config", "get", ITEM)).stdout == "theirs\n"
    Path(kept).unlink()


def test_the_vault_backend_from_the_cli(env: dict[str, str], fake_vault: FakeVault) -> None:
    vault = env | {
        "QUAYSIDE_CONFIG_BACKEND": "vault",
        "VAULT_ADDR": fake_vault.url,
        "VAULT_TOKEN": VAULT_TOKEN,
    }
    ok(cli(vault, "config", "set", ITEM, stdin="10.0.0.1 a\n"))
    ok(cli(vault, "config", "set", ITEM, "--base", "1", stdin="10.0.0.2 b\n"))
    assert ok(cli(vault, "config", "get", ITEM, "--version", "1")).stdout == "10.0.0.1 a\n"
    assert "quayside/items/" + ITEM in fake_vault.keys
    assert fake_vault.keys["quayside/items/" + ITEM].current_version == 2
    fake_vault.handle("POST", "/v1/secret/data/dns/api", VAULT_TOKEN, {"data": {"k": "v-1"}})
    ok(cli(vault, "vars", "set", "DNS/release", "api", "--vault", "secret/dns/api#k"))
    missing = cli(vault, "vars", "set", "DNS/release", "x", "--vault", "secret/dns/none#k")
    assert missing.returncode == 1 and "Vault path secret/dns/none does not exist" in missing.stderr
    ok(cli(vault, "config", "set", "DNS/release/app/a.conf", "--template", stdin="{{ api }}\n"))
    shown = ok(cli(vault, "config", "get", "DNS/release/app/a.conf", "--rendered")).stdout
    assert shown == "•••• (v1)\n"
    assert cli(env, "config", "get", ITEM).returncode == 1  # nothing went to the ledger
