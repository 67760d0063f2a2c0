"""A second, guarded `quayside up` (its own data directory and ports, loopback only) given the
Prefect API's auth string the way an operator exposing the console does: a file named by
QUAYSIDE_PREFECT_AUTH_STRING_FILE, and an explicit --listen (QUAYSIDE_PREFECT_LISTEN).

Without credentials its API answers 401; a git deploy started through the gateway completes
(the gateway, the worker and the flow run authenticate with the file's string); the CLI deploys
with the string in PREFECT_API_AUTH_STRING or the file in QUAYSIDE_PREFECT_AUTH_STRING_FILE,
and names a 401 without it; the string is in no process's argv and no log; in Chromium the UI
asks for it, then shows the dashboard."""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
import yaml

from quayside.api_auth import CLIENT_SETTING, FILE_SETTING
from testbed.platform import PROJECT_DIR, Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    host_entries,
    repo_fixture,
)
from testbed.sshd import SshdFleet
from tests.platform.test_ui import CHROMIUM_ARGS

pytestmark = [pytest.mark.xdist_group("console-auth"), pytest.mark.prefect]

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class Guarded:
    """The guarded platform, the operator's string and the file holding it."""

    def __init__(self, platform: Platform, secret: str, secret_file: Path) -> None:
        self.platform = platform
        self.secret = secret
        self.secret_file = secret_file

    @property
    def ui(self) -> str:
        return self.platform.api_url.removesuffix("/api")

    def cli_env(self, **changes: str | None) -> dict[str, str]:
        """The platform's client environment with its API spelled ``localhost``: the data
        directory's copy of the string is not sent there, so only what the caller gives
        (``changes``) authenticates."""
        env = dict(self.platform.env)
        env.pop(FILE_SETTING, None)
        env.pop(CLIENT_SETTING, None)
        env["PREFECT_API_URL"] = self.platform.api_url.replace("127.0.0.1", "localhost")
        env["COLUMNS"] = "200"
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    home = tmp_path_factory.mktemp("guarded-home")
    secret_dir = tmp_path_factory.mktemp("guarded-secret")  # like a mounted compose secret
    secret = f"ops:{secrets.token_urlsafe(24)}"
    secret_file = secret_dir / "prefect-auth-string"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    inventory = home / "quayside.yaml"
    inventory.write_text("hosts: {}\n")
    platform = Platform(
        home,
        inventory,
        extra_env={FILE_SETTING: str(secret_file), "QUAYSIDE_PREFECT_LISTEN": "127.0.0.1"},
    )
    platform.start()
    try:
        yield Guarded(platform, secret, secret_file)
    finally:
        platform.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_final(api_url: str, auth: str, run_id: str, timeout: float = 180) -> str:
    """The run's final state type, read with the operator's string."""
    from prefect.client.orchestration import PrefectClient

    async def state() -> str:
        async with PrefectClient(api=api_url, auth_string=auth) as client:
            run = await client.read_flow_run(UUID(run_id))
            return run.state.type.value if run.state else "PENDING"

    deadline = time.monotonic() + timeout
    current = "PENDING"
    while time.monotonic() < deadline:
        current = asyncio.run(state())
        if current in FINAL:
            return current
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {current} after {timeout:.0f}s")


def test_without_credentials_the_api_answers_401(guarded: Guarded) -> None:
    api = guarded.platform.api_url
    good = httpx.BasicAuth(*guarded.secret.split(":", 1))
    for auth in (None, httpx.BasicAuth("ops", "wrong")):
        for method, url, body in (
            ("POST", f"{api}/deployments/filter", {}),
            ("POST", f"{api}/flow_runs/filter", {}),
            ("POST", f"{api}/block_documents/filter", {}),
            ("GET", f"{api}/admin/version", None),
        ):
            answer = httpx.request(method, url, json=body, auth=auth, timeout=10)
            assert answer.status_code == 401, (method, url, answer.text)
    listed = httpx.post(f"{api}/deployments/filter", json={}, auth=good, timeout=10)
    assert listed.status_code == 200
    assert "git-deploy" in {d["name"] for d in listed.json()}
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200  # probes stay open
    ui = httpx.get(f"{guarded.ui}/ui-settings", timeout=10).json()
    assert ui["auth"] == "BASIC" and ui["api_url"] == "/api"
    # the file's string is what `up` serves, copied for the CLI on the platform host
    assert (guarded.platform.home / "api-auth").read_text().strip() == guarded.secret
    out = guarded.platform.output.read_text()
    assert f"API auth        {guarded.secret_file} ({FILE_SETTING}), copied to" in out
    assert guarded.secret not in out


def write_shop(guarded: Guarded, fleet: SshdFleet, repo: Repo) -> None:
    """App ``shop``: environment ``test`` on the fleet, deployed on tags ``v*``."""
    guarded.platform.inventory.write_text(
        yaml.safe_dump(
            {
                "hosts": host_entries(fleet),
                "apps": {
                    "shop": {
                        "repo": str(repo.path),
                        "deploy_root": str(fleet.base_dir / "{host}" / "root"),
                        "environments": {"test": {"hosts": [h.name for h in fleet]}},
                        "tag_rules": [{"pattern": "^v", "environment": "test"}],
                    }
                },
            }
        )
    )


def ledger_token(guarded: Guarded, user: str) -> str:
    from quayside.auth import service
    from quayside.ledger.db import make_engine

    engine = make_engine(f"sqlite:///{guarded.platform.home / 'ledger.db'}")
    try:
        service.create_user(engine, user)
        service.grant_role(engine, user, "DEVELOPER", space="default")
        token: str = service.create_token(engine, user)
        return token
    finally:
        engine.dispose()


def test_gateway_worker_and_cli_work_with_the_string(
    guarded: Guarded, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    commit = repo.git("rev-parse", "v1^{commit}").strip()
    write_shop(guarded, fleet, repo)
    token = ledger_token(guarded, "gia")

    # the gateway starts the run through the guarded API; the worker picks it up and the
    # flow run reports to the API: both authenticate, or the run never completes
    pushed = httpx.post(
        f"{guarded.platform.gateway_url}/hooks/git",
        json={"app": "shop", "ref": "refs/tags/v1", "commit": commit},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert pushed.status_code == 202, pushed.text
    run_id = pushed.json()["flow_run_id"]
    api = guarded.platform.api_url
    assert wait_final(api, guarded.secret, run_id) == "COMPLETED"
    for host in fleet:
        assert (host.root / "current" / "index.php").read_text() == "<?php echo 'v1';\n"
        assert_complete(host)

    # the CLI with the string in its environment, against the API under another name
    deployed = cli(
        guarded.cli_env(**{CLIENT_SETTING: guarded.secret}), "deploy", "shop", "test", "v2"
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "completed" in deployed.stdout
    for host in fleet:
        assert (host.root / "current" / "index.php").read_text() == "<?php echo 'v2';\n"
    listing = cli(guarded.cli_env(**{CLIENT_SETTING: guarded.secret}), "releases", "shop", "test")
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "succeeded" in line]
    assert any("v2" in row and "*" in row for row in rows), listing.stdout
    assert any("v1" in row and "gia" in row for row in rows), listing.stdout

    # the CLI with the file: it reaches Prefect (no such run), where nothing else would
    missing = str(uuid4())
    env = guarded.cli_env(**{FILE_SETTING: str(guarded.secret_file), "QUAYSIDE_TOKEN": token})
    found = cli(env, "approve", missing)
    assert found.returncode == 1
    assert f"no flow run '{missing}'" in found.stderr, found.stderr

    # without it: a 401, in a line of its own that is not "unreachable", with what to set
    refused = cli(guarded.cli_env(), "deploy", "shop", "test", "v1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "401 Unauthorized" in refused.stderr and "not reachable" not in refused.stderr
    assert CLIENT_SETTING in refused.stderr and "Traceback" not in refused.stderr
    for done in (deployed, listing, found, refused):
        assert guarded.secret not in done.stdout + done.stderr


def process_args() -> list[str]:
    """Every readable process's argv on this machine, as one string each."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, UnicodeDecodeError):
                continue
    return found


def test_the_string_is_in_no_argv_and_no_log(guarded: Guarded) -> None:
    args = process_args()
    assert any("quayside.stack.server" in a for a in args)  # the guarded server is there
    assert not [a for a in args if guarded.secret in a]
    home = guarded.platform.home
    logs = [*(home / "logs").iterdir(), guarded.platform.output]
    assert len(logs) > 3
    for log in logs:
        assert guarded.secret.encode() not in log.read_bytes(), log


def test_the_ui_asks_for_the_string_then_shows_the_dashboard(
    guarded: Guarded, tmp_path: Path
) -> None:
    from testbed.require import missing, need_binary

    chromium = need_binary("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright", "run `make test`, which syncs the dev dependencies")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{guarded.ui}/dashboard")
            field = page.get_by_placeholder("admin:pass")
            field.wait_for(timeout=30_000)
            assert "/login" in page.url
            page.screenshot(path=str(tmp_path / "login.png"))
            field.fill(guarded.secret)
            refused: list[str] = []  # answers the UI gets from the API once logged in
            page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
            page.get_by_role("button", name="Login").click()
            page.wait_for_url(re.compile(r".*/dashboard"), timeout=30_000)
            page.locator(".page-heading").get_by_text("Dashboard").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "dashboard.png"))
            # the UI's own API calls (to its origin's /api) carry the string: it lists what
            # `up` registered
            page.goto(f"{guarded.ui}/deployments")
            page.get_by_text("git-deploy").first.wait_for(timeout=30_000)
            assert "/login" not in page.url
            assert refused == []
        finally:
            browser.close()
