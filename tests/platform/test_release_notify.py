"""Outcome notifications from the end of git-deploy (succeeded / failed / rolled back past the
threshold), each with the link to its run, sent by real blocks loaded from the session
platform's Prefect API to the loopback robot endpoints of tests/unit/test_notify.py; a broken
notifier never fails the release."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from quayside.blocks.notify_dingtalk import DingTalkRobot
from quayside.blocks.notify_wecom import WeComRobot
from quayside.deploy.errors import BuildError, ThresholdExceeded
from quayside.flows.git_deploy import git_deploy
from quayside.flows.rollback import rollback
from quayside.ledger.environments import resume_auto_triggers
from quayside.ledger.models import ReleaseStatus
from quayside.ledger.release_queries import list_releases
from testbed.platform import Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    ledger,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet
from tests.unit.test_notify import (  # noqa: F401 - fixtures
    DT_SECRET,
    Receivers,
    assert_no_secrets,
    receivers,
    rx,
)

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect, pytest.mark.ssh]

DING = "quayside-dingtalk-robot/qs-release-ops"
BROKEN = "quayside-wecom-robot/qs-release-broken"


@pytest.fixture
def robots(platform: Platform, rx: Receivers) -> Receivers:  # noqa: F811
    """A DingTalk robot pointed at the loopback receiver, and a WeCom robot whose key the
    receiver refuses (errcode 93000), both saved as blocks in the platform."""
    DingTalkRobot(webhook_url=SecretStr(rx.dingtalk_url), secret=SecretStr(DT_SECRET)).save(
        DING.split("/")[1], overwrite=True
    )
    WeComRobot(
        webhook_url=SecretStr(rx.wecom_url.split("key=")[0] + "key=not-a-robot-key-0000")
    ).save(BROKEN.split("/")[1], overwrite=True)
    return rx


def sent(receiver: Receivers) -> list[dict[str, Any]]:
    """The DingTalk markdown messages received (title, text)."""
    return [r.json["markdown"] for r in receiver.requests if r.path == "/robot/send"]


def run_link(text: str) -> str:
    row = list_releases(ledger(), "shop", "test", limit=1)[0]
    assert row.flow_run_id
    assert f"/runs/flow-run/{row.flow_run_id})" in text, text
    return str(row.flow_run_id)


def test_failed_and_rolled_back_deploys_are_announced_with_the_run_link(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    robots: Receivers,
) -> None:
    fleet = clean_ssh_fleet
    app: dict[str, Any] = {"notify": [DING]}
    write_inventory(platform_inventory, fleet, repo, app=app)
    rid1 = run_flow(git_deploy, "shop", "test", "v1", requested_by="alice")["release_id"]
    (ok,) = sent(robots)
    assert ok["title"] == "[Quayside] shop test: 发布成功 / Succeeded"
    assert "v1" in ok["text"] and "alice" in ok["text"] and "3 of 3 host(s)" in ok["text"]
    run_link(ok["text"])

    # a no-change re-run tells nobody
    robots.requests.clear()
    assert run_flow(git_deploy, "shop", "test", "v1")["result"] == "no change"
    assert sent(robots) == []

    # the build fails: "failed", with the reason
    write_inventory(platform_inventory, fleet, repo, app={**app, "build": ["exit 3"]})
    with pytest.raises(BuildError):
        run_flow(git_deploy, "shop", "test", "v2", requested_by="bob")
    (failed,) = sent(robots)
    assert failed["title"] == "[Quayside] shop test: 发布失败 / Failed"
    assert "build" in failed["text"] and "exit 3" in failed["text"] and "bob" in failed["text"]
    run_link(failed["text"])

    # past the threshold: switched hosts go back, then "rolled back" naming the failed host
    robots.requests.clear()
    health = {"command": '! test -e "$QUAYSIDE_DEPLOY_ROOT/sick"', "retries": 1, "interval_s": 0}
    write_inventory(platform_inventory, fleet, repo, app={**app, "health_check": health})
    (fleet[1].root / "sick").touch()
    with pytest.raises(ThresholdExceeded):
        run_flow(git_deploy, "shop", "test", "v2")
    for h in fleet:
        assert current_id(h) == rid1
        assert_complete(h)
    (back,) = sent(robots)
    assert back["title"] == "[Quayside] shop test: 已回滚 / Rolled back"
    assert "web-2" in back["text"] and "health" in back["text"]
    run_link(back["text"])
    row = list_releases(ledger(), "shop", "test", limit=1)[0]
    assert row.status == ReleaseStatus.failed and (row.summary or {}).get("rolled_back")


def test_a_broken_notifier_does_not_fail_the_release(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    robots: Receivers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    notify = [BROKEN, "quayside-wecom-robot/qs-release-never-saved", DING]
    write_inventory(platform_inventory, clean_ssh_fleet, repo, app={"notify": notify})
    result = run_flow(git_deploy, "shop", "test", "v3")
    assert result["result"] == "deployed"
    assert list_releases(ledger(), "shop", "test", limit=1)[0].status == ReleaseStatus.succeeded
    (ok,) = sent(robots)  # the channel that works still hears of it
    assert ok["title"].endswith("Succeeded")
    run_link(ok["text"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("qs-release-broken" in w and "93000" in w for w in warnings), warnings
    assert any("qs-release-never-saved" in w for w in warnings), warnings
    assert_no_secrets(caplog.text)


def test_a_rollback_is_announced_with_the_run_link(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    robots: Receivers,
) -> None:
    write_inventory(platform_inventory, clean_ssh_fleet, repo, app={"notify": [DING]})
    ids = {v: run_flow(git_deploy, "shop", "test", v)["release_id"] for v in ("v1", "v2")}
    robots.requests.clear()
    try:
        back = run_flow(rollback, "shop", "test", requested_by="carol")
    finally:
        resume_auto_triggers(ledger(), "shop", "test", actor="carol")
    assert back["release_id"] == ids["v1"]
    (told,) = sent(robots)
    assert told["title"] == "[Quayside] shop test: 已回滚 / Rolled back"
    assert "rollback to v1" in told["text"] and "carol" in told["text"]
    run_link(told["text"])
