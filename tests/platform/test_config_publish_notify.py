"""Outcome notifications from the end of config-publish, as tests/platform/test_release_notify.py
has them for git deploys and rollbacks: a publish that lands is announced "succeeded" and one
stopped by its hosts' checks "rolled back" naming the host and step, each with the link to its
run, sent by a real DingTalk block loaded from the session platform's Prefect API to the
loopback robot endpoint of tests/unit/test_notify.py; a no-change publish tells nobody."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from quayside.blocks.notify_dingtalk import DingTalkRobot
from quayside.config import items
from quayside.config.address import ItemAddress
from quayside.config.backend import open_store
from quayside.deploy.errors import ThresholdExceeded
from quayside.flows.config_publish import config_publish
from quayside.ledger.models import ReleaseStatus
from quayside.ledger.release_queries import list_releases
from testbed.dnsmasq import DnsmasqFleet
from testbed.platform import Platform
from testbed.release_fixtures import host_entries, ledger, run_flow_fixture  # noqa: F401
from testbed.sshd import SshdFleet
from tests.unit.test_notify import (  # noqa: F401 - fixtures
    DT_SECRET,
    Receivers,
    receivers,
    rx,
)

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]

DING = "quayside-dingtalk-robot/qs-config-ops"
OLD_HOSTS = "10.0.0.1 api.internal\n"
NEW_HOSTS = "10.0.0.2 api.internal\n"


@pytest.fixture
def robot(platform: Platform, rx: Receivers) -> Receivers:  # noqa: F811
    """A DingTalk robot pointed at the loopback receiver, saved as a block in the platform."""
    DingTalkRobot(webhook_url=SecretStr(rx.dingtalk_url), secret=SecretStr(DT_SECRET)).save(
        DING.split("/")[1], overwrite=True
    )
    return rx


def sent(receiver: Receivers) -> list[dict[str, Any]]:
    """The DingTalk markdown messages received (title, text)."""
    return [r.json["markdown"] for r in receiver.requests if r.path == "/robot/send"]


def setup(inventory: Path, fleet: SshdFleet, dns: DnsmasqFleet, app: str) -> Any:
    """App ``app`` (environment ``release``, notifying the robot) publishing dnsmasq files to
    every fleet host; the servers started with OLD_HOSTS; the config store."""
    environment = {"hosts": [h.name for h in fleet], "config": {"dnsmasq": dns.service()}}
    apps = {app: {"notify": [DING], "environments": {"release": environment}}}
    inventory.write_text(yaml.safe_dump({"hosts": host_entries(fleet), "apps": apps}))
    dns.start(OLD_HOSTS)
    return open_store(ledger())


def save(store: Any, app: str, name: str, content: str) -> None:
    address = ItemAddress(app, "release", "dnsmasq", name)
    base = items.latest_version_number(store, address)
    items.save(store, address, content, author="alice", base_version=base)


def linked_release(app: str, text: str) -> Any:
    """The newest release of ``app``; ``text`` links to its run."""
    row = list_releases(ledger(), app, "release", limit=1)[0]
    assert row.flow_run_id and f"/runs/flow-run/{row.flow_run_id})" in text, text
    return row


def test_a_config_publish_that_lands_is_announced_succeeded(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    dnsmasq_fleet: DnsmasqFleet,
    robot: Receivers,
) -> None:
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-n1")
    save(store, "dns-n1", "hosts", NEW_HOSTS)
    out = run_flow(config_publish, "dns-n1", "release", "dnsmasq", requested_by="alice")
    assert out["result"] == "published" and not out["failed"]
    (ok,) = sent(robot)
    assert ok["title"] == "[Quayside] dns-n1 release: 发布成功 / Succeeded"
    assert "3 of 3 host(s)" in ok["text"] and "alice" in ok["text"]
    assert linked_release("dns-n1", ok["text"]).status is ReleaseStatus.succeeded

    robot.requests.clear()  # the same files again: no change, nobody told
    assert run_flow(config_publish, "dns-n1", "release", "dnsmasq")["result"] == "no change"
    assert sent(robot) == []


def test_a_config_publish_its_checks_stop_is_announced_naming_the_host(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    dnsmasq_fleet: DnsmasqFleet,
    robot: Receivers,
) -> None:
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-n2")
    conf = (dnsmasq_fleet.servers[0].conf / "dnsmasq.conf").read_text()
    save(store, "dns-n2", "dnsmasq.conf", conf + "no-such-option=1\n")  # every checker fails
    with pytest.raises(ThresholdExceeded):
        run_flow(config_publish, "dns-n2", "release", "dnsmasq", requested_by="bob")
    (failed,) = sent(robot)
    # past the threshold: whatever switched went back, and the release failed as "rolled back"
    assert failed["title"] == "[Quayside] dns-n2 release: 已回滚 / Rolled back"
    assert "web-1" in failed["text"] and "[check]" in failed["text"] and "bob" in failed["text"]
    row = linked_release("dns-n2", failed["text"])
    assert row.status is ReleaseStatus.failed
