"""The approval form's description (quayside.tasks.approval_description.describe_request
around the git-deploy plan of quayside.deploy.summary) built from a real ledger request: a
requester name, an approver name, a commit subject, a file name and a refusal reason carrying
Markdown add no table row, link, image or HTML — in the text, and in what the Prefect UI's own
lexer makes of it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.auth import approvals as core
from quayside.auth import service
from quayside.deploy.summary import approval_markdown
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals as ledger_approvals
from quayside.ledger.db import make_engine, migrate
from quayside.markdown_text import plain
from quayside.runs.scheduled_approval import open_for_scheduled_run
from quayside.source.mirror import Commit
from quayside.tasks.approval_description import describe_request
from testbed.ui_markdown import Rendered

REQUESTER = "eve\n| approvals | 1 of 1 — pre-approved by boss |\n| self-approval | allowed |"
APPROVER = "boss | x\n| approvals | 2 of 2 |"
SUBJECT = "fix ![t](http://evil/t.png) [click](javascript:alert(1)) <img src=x> | x\n| y | z |"
AUTHOR = "mallory <m@evil.example>"
FILE = "a`b``.php"
REFUSAL = "token of eve\n| approvals | 2 of 2 |\n![t](http://evil/r.png)"
RUN_ID = "0b7c4a59-8f5e-4c2e-9f6b-1c2d3e4f5a6b"
SHA = "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"
POLICY = ApprovalPolicy(required=2, role="MASTER", allow_self_approval=False)
ROW_KEYS = [
    "app",
    "environment",
    "version",
    "requested by",
    "approvals",
    "approvers",
    "self-approval",
    "expires",
    "approval request",
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    db = make_engine(url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def description(engine: Engine) -> str:
    """The description the gate shows after one of two approvals, from a hostile approver."""
    service.create_user(engine, APPROVER)
    service.grant_role(engine, APPROVER, "MASTER", space="team")
    token = service.create_token(engine, APPROVER)
    summary = approval_markdown(
        app="web",
        env="prod",
        version="release-1",
        commit_sha=SHA,
        current_version=None,
        current_sha=None,
        commits=[Commit(SHA, SUBJECT, AUTHOR)],
        changed_files=[FILE, "ok.txt"],
        hosts=["web-1", "web-2"],
        requested_by=REQUESTER,
    )
    opened = core.open_request(
        engine,
        app="web",
        env="prod",
        space="team",
        summary=summary,
        requested_by=REQUESTER,
        policy=POLICY,
        flow_run_id=RUN_ID,
    )
    answer = core.decide(engine, opened.id, token_text=token, decision="approve")
    assert answer.accepted
    request = ledger_approvals.resolve(engine, opened.id, actor=f"flow-run:{RUN_ID}")
    return describe_request(
        request,
        version="release-1",
        summary_markdown=summary,
        flow_run_id=RUN_ID,
        last_refusal=REFUSAL,
    )


def _cells(line: str) -> int:
    """Cell boundaries GFM sees on a table line: ``|`` not escaped by a backslash."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def _unescaped(marker: str, text: str) -> re.Match[str] | None:
    """``marker`` where no backslash escapes its first character."""
    return re.search(r"(?<!\\)(?:\\\\)*" + re.escape(marker), text)


def test_the_table_has_its_rows_and_nothing_active(description: str) -> None:
    lines = description.split("\n")
    start = lines.index("| | |")
    table = lines[start : lines.index("", start)]
    assert len(table) == 2 + len(ROW_KEYS)
    assert [row.split(" | ")[0].removeprefix("| ") for row in table[2:]] == ROW_KEYS
    assert all(_cells(row) == 3 for row in table)
    assert "| approvals | 1 of 2 |" in table
    assert "| self-approval | not allowed |" in table
    assert description.count("| approvals |") == 1
    for active in ("![", "<", "[click", "](http", "](javascript"):
        assert _unescaped(active, description) is None, active
    assert "Approved so far by: boss \\| x \\| approvals \\| 2 of 2 \\|." in lines
    commits = [line for line in lines if line.startswith("| ") and SHA[:12] in line]
    assert len(commits) == 1 and _cells(commits[0]) == 4


def test_the_ui_shows_every_value_as_written(
    description: str, ui_markdown: Callable[[str], Rendered]
) -> None:
    result = ui_markdown(description)
    assert result.links == [] and result.images == [] and result.html == []
    request_table, commit_table = result.tables
    assert [row[0] for row in request_table[1:]] == ROW_KEYS
    rows = {row[0]: row[1] for row in request_table[1:]}
    assert rows["requested by"] == plain(REQUESTER)
    assert rows["approvals"] == "1 of 2"
    assert rows["self-approval"] == "not allowed"
    assert commit_table == [
        ["commit", "author", "subject"],
        [SHA[:12], AUTHOR, plain(SUBJECT)],
    ]
    assert FILE in result.code
    assert f"quayside approve {RUN_ID} [--reject] [-m COMMENT]" in result.code
    assert result.blocks.count("table") == 2


def test_a_scheduled_request_summary_shows_its_details_as_text(
    engine: Engine, ui_markdown: Callable[[str], Rendered]
) -> None:
    """The task API's free-text task name and remarks become plain lines of the summary."""
    details = f"Task: {SUBJECT}\n\n# not a heading\n| a | b |\n| --- | --- |\n{REFUSAL}"
    request_id = open_for_scheduled_run(
        engine,
        flow_run_id=RUN_ID,
        deployment="git-deploy",
        app="web",
        env="prod",
        version="release-[1](http://evil/v)",
        space="team",
        policy=POLICY,
        scheduled_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        requested_by=REQUESTER,
        via="the task API",
        details=details,
    )
    summary = ledger_approvals.get_request(engine, request_id).summary
    result = ui_markdown(summary)
    assert result.links == [] and result.images == [] and result.html == []
    assert result.tables == [] and set(result.blocks) == {"paragraph"}
    assert plain(REQUESTER) in summary.replace("\\", "")
