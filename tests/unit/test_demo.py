"""The demo a first start writes when there is no inventory, without a server: the tagged
sample repository, a valid inventory of local hosts where QUAYSIDE_INVENTORY points, the demo
MASTER and DEVELOPER with working tokens that are printed once and kept only as hashes; a
second time creates nothing, and an existing inventory is never overwritten. `quayside demo`
as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quayside.auth import service
from quayside.auth.roles import Role, effective_role
from quayside.demo import describe_demo, first_run_demo, write_demo
from quayside.demo.inventory import repo_path
from quayside.errors import QuaysideError
from quayside.inventory import load_inventory
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.users import list_users
from quayside.settings import Settings, load_settings
from testbed.platform import PROJECT_DIR


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QUAYSIDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(tmp_path / "quayside.yaml"))
    monkeypatch.delenv("QUAYSIDE_DATABASE_URL", raising=False)
    found = load_settings()
    migrate(found.database_url)
    return found


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_the_demo_is_written_once_with_working_tokens(settings: Settings) -> None:
    report = write_demo(settings, actor="test")
    assert report.inventory == settings.inventory_path and report.repo_created

    repo = repo_path(settings.home)
    assert git(repo, "tag").split() == ["qa-1", "release-1", "v1", "v2"]
    v2 = git(repo, "rev-parse", "v2^{commit}")
    assert git(repo, "rev-parse", "qa-1^{commit}") == v2
    assert git(repo, "rev-parse", "release-1^{commit}") == v2
    assert "v1" in git(repo, "show", "v1:index.html")

    inventory = load_inventory(settings.inventory_path)
    assert {n: h.transport for n, h in inventory.hosts.items()} == dict.fromkeys(
        ["test-1", "test-2", "prod-1", "prod-2"], "local"
    )
    app = inventory.apps["demo"]
    assert app.repo == str(repo) and app.space == "demo"
    assert app.environments["test"].approval is None
    prod = app.environments["prod"].approval
    assert prod is not None and (prod.required, prod.role) == (1, "MASTER")

    engine = make_engine(settings.database_url)
    tokens = {u.name: u.token for u in report.users}
    assert set(tokens) == {"demo-master", "demo-developer"}
    for name, role in (("demo-master", Role.MASTER), ("demo-developer", Role.DEVELOPER)):
        token = tokens[name]
        assert token is not None
        assert service.authenticate(engine, token).name == name
        assert effective_role(engine, name, "demo", "demo") is role
        assert token not in repr(report)
    lines = "\n".join(describe_demo(report))
    assert all(t is not None and lines.count(t) == 1 for t in tokens.values())
    # the ledger keeps hashes: no token's secret is in its files (WAL included)
    stored = b"".join(p.read_bytes() for p in settings.home.glob("ledger.db*"))
    assert all(
        t is not None and t.rsplit("_", 1)[1].encode() not in stored for t in tokens.values()
    )

    # a second time: the inventory is there, nothing is created or overwritten
    before = settings.inventory_path.read_bytes()
    with pytest.raises(QuaysideError, match="never overwrites an inventory"):
        write_demo(settings, actor="test")
    assert not first_run_demo(settings, lambda line: pytest.fail(line), actor="test")
    assert settings.inventory_path.read_bytes() == before

    # the inventory deleted: written again, the users kept, no token printed
    settings.inventory_path.unlink()
    said: list[str] = []
    assert first_run_demo(settings, said.append, actor="test")
    assert settings.inventory_path.read_bytes() == before
    assert len(list_users(engine)) == 2
    assert not any("qs_" in line for line in said)
    assert "demo-master, demo-developer: there already" in "\n".join(said)
    assert service.authenticate(engine, tokens["demo-master"] or "").name == "demo-master"


def test_an_operators_inventory_is_never_overwritten(settings: Settings) -> None:
    settings.inventory_path.write_text("hosts: {}\n")
    assert not first_run_demo(settings, lambda line: pytest.fail(line), actor="test")
    with pytest.raises(QuaysideError, match="never overwrites") as caught:
        write_demo(settings, actor="test")
    assert "QUAYSIDE_INVENTORY" in (caught.value.hint or "")
    assert settings.inventory_path.read_text() == "hosts: {}\n"
    assert list_users(make_engine(settings.database_url)) == []
    assert not repo_path(settings.home).exists()


def test_quayside_demo_prints_the_tokens_once_then_refuses(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "QUAYSIDE_HOME": str(tmp_path / "home"),
        "QUAYSIDE_INVENTORY": str(tmp_path / "quayside.yaml"),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
    }

    def demo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "quayside.cli.main", "demo"],
            env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    first = demo()
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("qs_") == 2 and "demo-master" in first.stdout
    assert (tmp_path / "home").stat().st_mode & 0o077 == 0
    assert (tmp_path / "quayside.yaml").stat().st_mode & 0o077 == 0
    second = demo()
    assert second.returncode == 1 and "qs_" not in second.stdout + second.stderr
    assert f"{tmp_path / 'quayside.yaml'} exists: the demo never overwrites" in second.stderr
    assert "Traceback" not in second.stderr
