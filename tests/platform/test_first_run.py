"""The first run, as a newcomer takes it: a real `quayside up` on a fresh, empty data
directory with no inventory writes the demo and prints the demo users' tokens once; git-deploy
of app demo to test (v1, then v2) lands on both demo hosts; a deploy to prod waits for a
MASTER, `quayside approve` with the printed token lets it switch; the per-host table is in
the run's artifacts; a rollback returns test to v1; `quayside releases demo test` lists them.
A second `up` on the same data directory creates nothing and prints no token.

Prints the times from `up`'s start to a healthy gateway and to the first completed deploy
(run with -s to see them)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from quayside.demo.create import NEXT_STEP
from quayside.demo.inventory import PROD_HOSTS, TEST_HOSTS, deploy_root, repo_path
from quayside.ledger.db import make_engine
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.ledger.users import list_users
from quayside.runs import prefect_client, read_run, start_run
from testbed.platform import PROJECT_DIR, Platform, _refresh_prefect_settings

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]

T = TypeVar("T")
TOKEN_LINE = re.compile(
    r"^\s+(demo-master|demo-developer)\s+(qs_[0-9a-f]{12}_[0-9a-f]{64})\s", re.M
)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class FirstRun:
    """The platform of this module, its `up` output and what the test measured."""

    def __init__(self, platform: Platform, started: float, up_s: float) -> None:
        self.platform = platform
        self.started = started
        self.up_s = up_s
        self.output = platform.output.read_text()
        self.tokens = dict(TOKEN_LINE.findall(self.output))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    base = tmp_path_factory.mktemp("first-run")
    home, inventory = base / "home", base / "quayside.yaml"
    assert not home.exists() and not inventory.exists()
    platform = Platform(home, inventory)
    started = time.monotonic()
    platform.start()
    up_s = time.monotonic() - started
    keys = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "QUAYSIDE_HOME", "QUAYSIDE_INVENTORY")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        PREFECT_API_URL=platform.api_url,
        PREFECT_API_AUTH_STRING=platform.auth_string,
        QUAYSIDE_HOME=str(home),
        QUAYSIDE_INVENTORY=str(inventory),
    )
    _refresh_prefect_settings()
    try:
        yield FirstRun(platform, started, up_s)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_prefect_settings()
        platform.stop()


def deploy(
    app_env: tuple[str, str], ref: str, *, wait: bool = True, kind: str = "git-deploy"
) -> str:
    app, env = app_env
    params = {"app": app, "env": env} | ({"ref": ref} if kind == "git-deploy" else {})
    handle = start_run(kind, params)
    if wait:
        status = wait_for(f"{kind} {ref}", lambda: (s := read_run(handle.id)).final and s)
        assert status.state_type == "COMPLETED", status.message
    return handle.id


def serving(home: Path, hosts: tuple[str, ...]) -> list[str]:
    """The version each host's current release shows (the page says it)."""
    out = []
    for host in hosts:
        page = deploy_root(home, host) / "current" / "index.html"
        found = re.search(r'class="version">(\w+)<', page.read_text()) if page.exists() else None
        out.append(found.group(1) if found else "-")
    return out


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def table_rows(run_id: str) -> list[dict[str, object]]:
    """The rows of the run's per-host table artifact."""
    import json

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> list[dict[str, object]]:
        async with prefect_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        tables = [a for a in artifacts if a.type == "table"]
        assert len(tables) == 1, [a.type for a in artifacts]
        data = tables[0].data
        rows: list[dict[str, object]] = json.loads(data) if isinstance(data, str) else data  # type: ignore[assignment]
        return rows

    return asyncio.run(read())


def test_a_newcomer_deploys_approves_and_rolls_back_the_demo(first_run: FirstRun) -> None:
    platform, home = first_run.platform, first_run.platform.home
    out = first_run.output
    assert f"no inventory was at {platform.inventory}: wrote the demo there" in out
    assert NEXT_STEP in out and "Traceback" not in out
    assert set(first_run.tokens) == {"demo-master", "demo-developer"}
    for token in first_run.tokens.values():
        assert out.count(token) == 1

    test, prod = ("demo", "test"), ("demo", "prod")
    first = deploy(test, "v1")
    first_deploy_s = time.monotonic() - first_run.started
    print(  # the figures to report
        f"\nfirst run: up to a healthy gateway {first_run.up_s:.1f}s, "
        f"to the first completed deploy {first_deploy_s:.1f}s"
    )
    assert serving(home, TEST_HOSTS) == ["v1", "v1"]
    assert {r["host"]: r["result"] for r in table_rows(first)} == dict.fromkeys(
        TEST_HOSTS, "succeeded"
    )
    deploy(test, "v2")
    assert serving(home, TEST_HOSTS) == ["v2", "v2"]

    gated = deploy(prod, "release-1", wait=False)
    wait_for("the approval gate", lambda: read_run(gated).state_name in ("Paused", "Suspended"))
    assert serving(home, PROD_HOSTS) == ["-", "-"]
    refused = cli(
        ["approve", gated, "--wait", "5"],
        platform.env | {"QUAYSIDE_TOKEN": first_run.tokens["demo-developer"]},
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "MASTER" in refused.stderr, refused.stderr
    assert read_run(gated).state_name in ("Paused", "Suspended")
    approved = cli(
        ["approve", gated, "-m", "first run", "--wait", "120"],
        platform.env | {"QUAYSIDE_TOKEN": first_run.tokens["demo-master"]},
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    status = wait_for("the prod deploy", lambda: (s := read_run(gated)).final and s)
    assert status.state_type == "COMPLETED", status.message
    assert serving(home, PROD_HOSTS) == ["v2", "v2"]
    assert [r["host"] for r in table_rows(gated)] == list(PROD_HOSTS)

    back = deploy(test, "", kind="rollback")
    assert serving(home, TEST_HOSTS) == ["v1", "v1"]
    assert [r["host"] for r in table_rows(back)] == list(TEST_HOSTS)
    listed = cli(["releases", "demo", "test"], platform.env | {"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in listed.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [(r[0], r[2], r[3], r[-1]) for r in rows] == [
        ("*", "rollback", "v1", "succeeded"),
        ("", "deploy", "v2", "rolled_back"),
        ("", "deploy", "v1", "succeeded"),
    ], listed.stdout

    engine = make_engine(f"sqlite:///{home / 'ledger.db'}")
    prod_rows = list_releases(engine, "demo", "prod")
    assert [(r.kind, r.status) for r in prod_rows] == [
        (ReleaseKind.deploy, ReleaseStatus.succeeded)
    ]


def test_a_second_up_on_the_same_home_creates_nothing(first_run: FirstRun) -> None:
    platform, home = first_run.platform, first_run.platform.home
    inventory = platform.inventory.read_bytes()
    refs = subprocess.run(
        ["git", "--git-dir", str(repo_path(home)), "show-ref"], capture_output=True, check=True
    ).stdout
    assert platform.stop() == 0
    offset = len(platform.output.read_bytes())
    started = time.monotonic()
    platform.start()
    warm_s = time.monotonic() - started
    again = platform.output.read_bytes()[offset:].decode()
    assert "Quayside is up" in again
    assert "wrote the demo" not in again and "demo tokens" not in again
    assert "qs_" not in again and NEXT_STEP not in again
    assert platform.inventory.read_bytes() == inventory
    assert (
        subprocess.run(
            ["git", "--git-dir", str(repo_path(home)), "show-ref"], capture_output=True, check=True
        ).stdout
        == refs
    )
    engine = make_engine(f"sqlite:///{home / 'ledger.db'}")
    assert sorted(u.name for u in list_users(engine)) == ["demo-developer", "demo-master"]
    # Prefect's database was started (copied from the machine's template, or migrated by
    # Prefect while the template was prepared) by the first start, and kept by this one
    server_log = (home / "logs" / "prefect-server.log").read_text()
    database = home / "prefect" / "prefect.db"
    starts = re.findall(rf"quayside: Prefect database {re.escape(str(database))}: (.+)", server_log)
    assert len(starts) == 2 and starts[1] == "exists", starts
    assert starts[0] == "copied" or starts[0].startswith("no template yet: preparing"), starts
    # the restarted platform still deploys the demo
    os.environ["PREFECT_API_URL"] = platform.api_url
    _refresh_prefect_settings()
    deploy(("demo", "test"), "v2")
    assert serving(home, TEST_HOSTS) == ["v2", "v2"]
    print(f"\nsecond up: to a healthy gateway {warm_s:.1f}s")
