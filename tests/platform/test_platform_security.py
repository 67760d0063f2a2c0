"""Against the session's real `quayside up`: the Prefect API refuses a request without the
auth string (401) and takes it with it, its health endpoint stays open for the launcher; the
data directory and its databases are private; the CLI authenticates with the data
directory's string, never sends it to another API, and `quayside approve` reads its token
from a private file or the environment."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from testbed.platform import PROJECT_DIR, Platform

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]

UNKNOWN_RUN = "00000000-0000-4000-8000-000000000000"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_prefect_api_needs_the_auth_string(platform: Platform) -> None:
    api = platform.api_url
    good = httpx.BasicAuth(*platform.auth_string.split(":", 1))
    wrong = httpx.BasicAuth("admin", "not-the-secret")
    # what any local user could do before: list deployments, create a run, read blocks
    attempts = [
        ("POST", f"{api}/deployments/filter", {}),
        ("POST", f"{api}/flow_runs/", {"flow_id": str(uuid4())}),
        ("POST", f"{api}/block_documents/filter", {}),
        ("POST", f"{api}/flow_runs/{UNKNOWN_RUN}/resume", {}),
        ("GET", f"{api}/admin/version", None),
    ]
    for method, url, body in attempts:
        for auth in (None, wrong):
            answer = httpx.request(method, url, json=body, auth=auth, timeout=10)
            assert answer.status_code == 401, (method, url, auth, answer.text)
    listed = httpx.post(f"{api}/deployments/filter", json={}, auth=good, timeout=10)
    assert listed.status_code == 200
    assert "hello-release" in {d["name"] for d in listed.json()}
    # the launcher's (and any probe's) health check needs no credentials
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    # the UI is told to show its login form
    ui = httpx.get(api.removesuffix("/api") + "/ui-settings", timeout=10).json()
    assert ui["auth"] == "BASIC"


def test_the_data_directory_and_its_databases_are_private(platform: Platform) -> None:
    home = platform.home
    socket = home / "run" / "launcher.sock"  # the fork server's, once it has preloaded
    deadline = time.monotonic() + 120
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert mode(home) == 0o700
    for directory in (home / "prefect", home / "logs", home / "run"):
        assert mode(directory) == 0o700, directory
    assert mode(socket) & 0o077 == 0
    for private in (
        home / "prefect" / "prefect.db",
        home / "ledger.db",
        home / "api-auth",
        *(home / "logs").iterdir(),
    ):
        assert mode(private) == 0o600, private
    for companion in home.glob("**/*.db-*"):  # SQLite's -wal / -shm files
        assert mode(companion) & 0o077 == 0, companion


def test_the_cli_authenticates_with_the_data_directorys_string(platform: Platform) -> None:
    env = platform.env | {"QUAYSIDE_TOKEN": "qs_unused"}
    assert "PREFECT_API_AUTH_STRING" not in env
    # reaching Prefect with the file's string: the run is looked up (and is not there)
    found = cli(env, "approve", UNKNOWN_RUN)
    assert found.returncode == 1
    assert f"no flow run '{UNKNOWN_RUN}'" in found.stderr, found.stderr

    refused = cli(env | {"PREFECT_API_AUTH_STRING": "admin:wrong"}, "approve", UNKNOWN_RUN)
    assert refused.returncode == 1
    assert "refused Quayside's credentials (401 Unauthorized)" in refused.stderr
    assert "hint:" in refused.stderr and "Traceback" not in refused.stderr

    # the same server under another name is "elsewhere": the file's string is not sent
    other = platform.api_url.replace("127.0.0.1", "localhost")
    elsewhere = cli(env | {"PREFECT_API_URL": other}, "approve", UNKNOWN_RUN)
    assert elsewhere.returncode == 1
    assert "refused Quayside's credentials" in elsewhere.stderr
    assert "is not this platform's API" in elsewhere.stderr
    assert platform.auth_string not in elsewhere.stderr + elsewhere.stdout


def test_approve_reads_a_private_token_file(platform: Platform, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("qs_from_a_file\n")
    token.chmod(0o600)
    env = platform.env
    env.pop("QUAYSIDE_TOKEN", None)
    taken = cli(env, "approve", UNKNOWN_RUN, "--token-file", str(token))
    assert taken.returncode == 1
    assert f"no flow run '{UNKNOWN_RUN}'" in taken.stderr, taken.stderr

    token.chmod(0o640)
    refused = cli(env, "approve", UNKNOWN_RUN, "--token-file", str(token))
    assert refused.returncode == 1
    assert "has mode 0640" in refused.stderr and f"chmod 600 {token}" in refused.stderr
