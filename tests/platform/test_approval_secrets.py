"""No approval secret is left in Prefect's database files. On a real platform, runs are
approved through every path - `quayside approve` (token), `POST /api/approvals/{run}`
(token), and the Prefect UI's form with an approval code (sent as the UI sends it, to a run
waiting in its process and to a suspended one, after a wrong code) - and then the bytes of
``prefect.db`` and ``prefect.db-wal`` hold none of the token secrets and none of the codes.
A marker input that was not deleted is found in the same bytes (the check reads the right
files)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import Engine

from quayside.auth import codes, service
from quayside.auth.approvals import find_for_run
from quayside.ledger.db import make_engine
from quayside.ledger.models import ApprovalDecision
from quayside.runs import read_run, resume_run, start_run
from testbed.platform import PROJECT_DIR, Platform

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

WAIT_S = 240


def wait_for(what: str, probe: object, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def database_bytes(platform: Platform) -> bytes:
    base = platform.home / "prefect" / "prefect.db"
    return b"".join(p.read_bytes() for p in (base, Path(f"{base}-wal")) if p.exists())


def cli(platform: Platform, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=platform.env | {"QUAYSIDE_TOKEN": token},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def cli_code(platform: Platform, token: str, run_id: str) -> str:
    out = cli(platform, token, "approvals", "code", run_id)
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"approval code: ([2-9A-Z]{5}-[2-9A-Z]{5})", out.stdout)
    assert found, out.stdout
    return found.group(1)


def decisions_of(ledger: Engine, run_id: str) -> list[ApprovalDecision]:
    request = find_for_run(ledger, run_id)
    return list(request.decisions) if request is not None else []


def waiting(run_id: str) -> bool:
    return read_run(run_id).state_name in ("Paused", "Suspended")


def test_no_token_or_code_is_left_in_prefects_database(platform: Platform) -> None:
    ledger: Engine = make_engine(f"sqlite:///{platform.home / 'ledger.db'}")
    tokens = {}
    for name, role in (("sec-dev", "DEVELOPER"), ("sec-lead", "MASTER"), ("sec-lead2", "MASTER")):
        service.create_user(ledger, name)
        service.grant_role(ledger, name, role, space="default")
        tokens[name] = service.create_token(ledger, name)

    def start(app: str, **extra: object) -> str:
        run_id = start_run("approval-demo", {"app": app, "requested_by": "sec-dev", **extra}).id
        wait_for(f"{app} to wait", lambda: waiting(run_id))
        return run_id

    by_cli, by_gateway, by_code = start("sec-a"), start("sec-b"), start("sec-c")
    suspended = start("sec-d", pause_s=0)

    answered = cli(platform, tokens["sec-lead"], "approve", by_cli, "--wait", "60")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    reply = httpx.post(
        f"{platform.gateway_url}/api/approvals/{by_gateway}",
        json={"decision": "approve"},
        headers={"Authorization": f"Bearer {tokens['sec-lead2']}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text

    wrong = codes.display(codes.new_code())
    used = [wrong]
    assert resume_run(by_code, {"decision": "approve", "code": wrong}) == "ACCEPT"
    wait_for(
        "the gate to refuse the wrong code and wait again",
        lambda: len(decisions_of(ledger, by_code)) == 1 and waiting(by_code),
    )
    assert "wrong approval code" in (decisions_of(ledger, by_code)[0].reason or "")
    for run_id, who in ((by_code, "sec-lead"), (suspended, "sec-lead2")):
        code = cli_code(platform, tokens[who], run_id)
        used.append(code)
        wait_for("the run to wait", lambda: waiting(run_id))  # noqa: B023
        assert resume_run(run_id, {"decision": "approve", "code": code}) == "ACCEPT"
    for run_id in (by_cli, by_gateway, by_code, suspended):
        wait_for("the run to finish", lambda: read_run(run_id).final)  # noqa: B023
        assert read_run(run_id).state_type == "COMPLETED", read_run(run_id).message

    marker = f"KEPT-MARKER-{uuid.uuid4().hex}"

    async def keep_marker() -> None:
        async with platform.client() as client:
            await client.create_flow_run_input(UUID(by_cli), "marker", f'"{marker}"')

    asyncio.run(keep_marker())
    secrets = [t.rsplit("_", 1)[1] for t in tokens.values()]
    secrets += [c for code in used for c in (code, code.replace("-", ""))]

    def clean() -> bool:
        data = database_bytes(platform)
        assert marker.encode() in data
        return not [s for s in secrets if s.encode() in data]

    wait_for("the deleted answers to leave the files", clean, timeout=30)
    ledger.dispose()
