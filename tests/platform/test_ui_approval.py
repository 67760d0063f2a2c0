"""Approving in the Prefect UI with an approval code, in headless Chromium: log in with the
API auth string, open the waiting run, press Resume, type the code from `quayside approvals
code` into the form and submit. Two approvals are needed: the first code counts; the same
code again, another run's code and an expired code are refused and recorded, and the gate
waits again each time (the form then says why the last answer was refused); a second
approver's fresh code completes the run. The form never asks for a token."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import Engine, update

from quayside.auth import service
from quayside.auth.approvals import find_for_run
from quayside.ledger.db import make_engine, session_scope
from quayside.ledger.models import ApprovalCode, ApprovalDecision, ApprovalStatus, utcnow
from quayside.runs import read_run, start_run
from testbed.platform import PROJECT_DIR, Platform
from tests.platform.test_ui import browser_page, log_in  # noqa: F401  (browser_page is a fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

WAIT_S = 180.0


def wait_for(what: str, probe: Callable[[], object], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def decisions(ledger: Engine, run_id: str) -> list[ApprovalDecision]:
    request = find_for_run(ledger, run_id)
    return list(request.decisions) if request is not None else []


def cli_code(platform: Platform, token: str, run_id: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approvals", "code", run_id],
        env=platform.env | {"QUAYSIDE_TOKEN": token},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"approval code: ([2-9A-Z]{5}-[2-9A-Z]{5})", out.stdout)
    assert found, out.stdout
    return found.group(1)


def answer_in_the_ui(page: Page, ui: str, run_id: str, code: str, shot: Path) -> str:
    """Open the run, Resume, fill the code and a comment, submit; the form's text."""
    page.goto(f"{ui}/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Resume").first.click()
    dialog = page.get_by_role("dialog")
    fields = dialog.locator("textarea")
    fields.first.wait_for(timeout=30_000)
    text = dialog.inner_text()
    assert "token" not in [label.lower() for label in re.findall(r"^(\w+)", text, re.M)]
    fields.nth(0).fill(code)
    fields.nth(1).fill("from the browser")
    page.screenshot(path=str(shot))
    dialog.get_by_role("button", name="Submit").click()
    dialog.wait_for(state="hidden", timeout=30_000)
    return text


def test_approve_in_the_prefect_ui_with_a_code(
    platform: Platform,
    browser_page: object,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import Page

    page = browser_page
    assert isinstance(page, Page)
    ledger = make_engine(f"sqlite:///{platform.home / 'ledger.db'}")
    tokens = {}
    for name, role in (("ui-dev", "DEVELOPER"), ("ui-lead", "MASTER"), ("ui-lead2", "MASTER")):
        service.create_user(ledger, name)
        service.grant_role(ledger, name, role, space="default")
        tokens[name] = service.create_token(ledger, name)
    run = start_run("approval-demo", {"app": "ui-a", "requested_by": "ui-dev", "required": 2}).id
    other = start_run("approval-demo", {"app": "ui-b", "requested_by": "ui-dev"}).id
    for run_id in (run, other):
        wait_for("the gate", lambda: read_run(run_id).state_name == "Paused")  # noqa: B023

    first = cli_code(platform, tokens["ui-lead"], run)
    foreign = httpx.post(
        f"{platform.gateway_url}/api/approvals/{other}/code",
        headers={"Authorization": f"Bearer {tokens['ui-lead2']}"},
        timeout=60,
    ).json()["code"]
    expired = cli_code(platform, tokens["ui-lead2"], run)
    with session_scope(ledger) as session:  # an old code: expired before its request
        session.execute(
            update(ApprovalCode)
            .where(
                ApprovalCode.user == "ui-lead2", ApprovalCode.request_id == _request_id(ledger, run)
            )
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )

    ui = platform.api_url.removesuffix("/api")
    log_in(page, ui, platform.auth_string, tmp_path)

    def answer(code: str, count: int, name: str) -> str:
        text = answer_in_the_ui(page, ui, run, code, tmp_path / f"{name}.png")
        wait_for(
            f"the {name} answer to be recorded and the gate to wait again",
            lambda: len(decisions(ledger, run)) == count and read_run(run).state_name == "Paused",
        )
        return text

    form = answer(first, 1, "first")
    assert "quayside approvals code" in form and "0 of 2" in form
    assert [(d.user, d.valid, d.comment) for d in decisions(ledger, run)] == [
        ("ui-lead", True, "from the browser")
    ]
    form = answer(first, 2, "reused")
    assert "1 of 2" in form and "ui-lead" in form
    answer(foreign, 3, "foreign")
    form = answer(expired, 4, "expired")
    assert "issued for approval request" in form  # the form says why the last one failed
    refused = decisions(ledger, run)[1:]
    assert [(d.user, d.valid) for d in refused] == [
        ("ui-lead", False),
        ("ui-lead2", False),
        ("ui-lead2", False),
    ]
    reasons = [d.reason or "" for d in refused]
    assert "already used" in reasons[0]
    assert "issued for approval request" in reasons[1]
    assert "expired" in reasons[2]
    request = find_for_run(ledger, run)
    assert request is not None and request.status is ApprovalStatus.pending

    fresh = cli_code(platform, tokens["ui-lead2"], run)
    answer_in_the_ui(page, ui, run, fresh, tmp_path / "second.png")
    wait_for("the run to complete", lambda: read_run(run).final)
    assert read_run(run).state_type == "COMPLETED", read_run(run).message
    page.goto(f"{ui}/runs/flow-run/{run}")
    page.get_by_text("Completed").first.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "completed.png"))
    request = find_for_run(ledger, run)
    assert request is not None and request.status is ApprovalStatus.approved
    assert [d.user for d in request.decisions if d.valid] == ["ui-lead", "ui-lead2"]

    reply = httpx.post(  # the other run is not needed any more
        f"{platform.gateway_url}/api/approvals/{other}",
        json={"decision": "reject", "comment": "test over"},
        headers={"Authorization": f"Bearer {tokens['ui-lead']}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    ledger.dispose()


def _request_id(ledger: Engine, run_id: str) -> int:
    request = find_for_run(ledger, run_id)
    assert request is not None
    return request.id
