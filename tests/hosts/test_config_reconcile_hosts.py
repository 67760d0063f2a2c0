"""A config release whose run died mid-publish is reconciled with what the real dnsmasq hosts
serve (their live version directory, read through sshd), as git releases are from
``current``: per-host rows (switched / still on the old version / never published), the
release ``interrupted`` with the fleet's split, the lock freed, and ``quayside releases``
showing the mixed fleet (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from quayside.config.address import ItemAddress
from quayside.config.host_publish import HostJob, publish_host, read_host
from quayside.config.publish_plan import PublishFile, plan_host
from quayside.config.records import content_hash
from quayside.executors.factory import executor_for
from quayside.inventory import load_inventory
from quayside.inventory.config_services import ConfigService
from quayside.inventory.models import Inventory
from quayside.ledger import audit, locks
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release
from quayside.ledger.releases import finish_release, mark_running, start_release
from quayside.release.fleet_summary import fleet_line
from quayside.release.reconcile import reconcile_dead
from testbed.dnsmasq import DnsmasqFleet
from testbed.release_fixtures import host_entries
from testbed.sshd import SshdFleet, SshdHost

pytestmark = [pytest.mark.ssh]

APP, ENV = "DNS", "release"
RUN = "0b9c7a52-0000-4000-8000-0000000c0f19"
OLD_HOSTS = "10.0.0.1 api.internal\n"
V1_HOSTS = "10.0.0.11 api.internal\n"
V2_HOSTS = "10.0.0.12 api.internal\n"
V1 = "20260101T000000Z-v1aaaaaaaa"
V2 = "20260102T000000Z-v2bbbbbbbb"
LABEL_V1, LABEL_V2 = "dnsmasq: hosts@v1", "dnsmasq: hosts@v2"


def inventory_file(tmp_path: Path, fleet: SshdFleet, dns: DnsmasqFleet) -> Path:
    path = tmp_path / "quayside.yaml"
    environment = {"hosts": [h.name for h in fleet], "config": {"dnsmasq": dns.service()}}
    app = {"environments": {ENV: environment}}
    path.write_text(yaml.safe_dump({"hosts": host_entries(fleet), "apps": {APP: app}}))
    return path


def publish(
    inventory: Inventory, h: SshdHost, service: ConfigService, content: str, vid: str
) -> None:
    """Publish the hosts file to ``h`` for real (stage, check, swap, reload, verify)."""
    address = ItemAddress(APP, ENV, "dnsmasq", "hosts")
    files = [PublishFile("hosts", address, 1, content, content_hash(content), content)]
    executor = executor_for(h.name, inventory.hosts[h.name])
    try:
        plan = plan_host(service, read_host(executor, service, ["hosts"]), files, lambda t: t)
        report = publish_host(executor, HostJob(h.name, h.address, service, plan, files, vid))
    finally:
        executor.close()
    assert report.status == "succeeded", report.message


def record(
    engine: Engine, label: str, vid: str, hosts: list[str], *, run: str | None = None
) -> int:
    """A config release as config publish records it (``details``: service, version_dir,
    hosts), left pending."""
    row = start_release(
        engine, APP, ENV, ReleaseKind.config, requested_by="ann", version=label,
        flow_run_id=run,
        details={"service": "dnsmasq", "version_dir": vid, "hosts": hosts, "phase": "all",
                 "files": {"hosts": {"version": int(label[-1])}}},
    )  # fmt: skip
    return int(row.id)


def releases_listing(ledger_url: str, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "QUAYSIDE_DATABASE_URL": ledger_url,
        "QUAYSIDE_HOME": str(tmp_path / "home"),
        "COLUMNS": "250",
    }
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "releases", APP, ENV],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_config_release_left_running_is_reconciled_with_what_the_dns_hosts_serve(
    ledger_url: str,
    ledger_engine: Engine,
    dnsmasq_fleet: DnsmasqFleet,
    clean_ssh_fleet: SshdFleet,
    tmp_path: Path,
) -> None:
    fleet = clean_ssh_fleet
    dnsmasq_fleet.start(OLD_HOSTS)
    inventory = load_inventory(inventory_file(tmp_path, fleet, dnsmasq_fleet))
    service = inventory.apps[APP].environments[ENV].config["dnsmasq"]
    names = [h.name for h in fleet]
    # v1 published everywhere and recorded
    v1 = record(ledger_engine, LABEL_V1, V1, names)
    mark_running(ledger_engine, v1)
    for h in fleet:
        publish(inventory, h, service, V1_HOSTS, V1)
    finish_release(ledger_engine, v1, ReleaseStatus.succeeded)
    # v2's run took the lock, switched web-1 and web-2, and died before web-3 or any record
    v2 = record(ledger_engine, LABEL_V2, V2, names, run=RUN)
    mark_running(ledger_engine, v2)
    locks.acquire(ledger_engine, APP, ENV, "ann (flow run doomed)", flow_run_id=RUN)
    for h in fleet[:2]:
        publish(inventory, h, service, V2_HOSTS, V2)
    answers = [dnsmasq_fleet.server(h.name).query("api.internal") for h in fleet]
    assert answers == [{"10.0.0.12"}, {"10.0.0.12"}, {"10.0.0.11"}]

    why = f"flow run {RUN} is Crashed: process killed by SIGKILL"
    done = reconcile_dead(
        ledger_engine,
        inventory,
        lambda r: why if r.flow_run_id == RUN else None,
        actor="reconcile:test",
    )

    assert len(done) == 1 and done[0].release_id == v2
    assert done[0].switched == ("web-1", "web-2") and done[0].not_switched == ("web-3",)
    assert done[0].lock_freed and locks.current_lock(ledger_engine, APP, ENV) is None
    assert f"2 of 3 hosts on {LABEL_V2}, 1 on {LABEL_V1}" in done[0].line
    assert "switched: web-1, web-2" in done[0].line
    row = get_release(ledger_engine, v2)
    assert row.status == ReleaseStatus.interrupted
    hosts = {h.host: (h.status, h.serves) for h in row.hosts}
    assert hosts == {
        "web-1": (HostStatus.switched, V2),
        "web-2": (HostStatus.switched, V2),
        "web-3": (HostStatus.skipped, V1),
    }
    web3 = next(h.message for h in row.hosts if h.host == "web-3")
    assert f"still serves {LABEL_V1} ({V1})" in (web3 or "")
    assert fleet_line(row.summary) == f"2 of 3 hosts on {LABEL_V2}, 1 on {LABEL_V1}"
    # the ledger says what the servers answer: the reconcile only read them
    answers = [dnsmasq_fleet.server(h.name).query("api.internal") for h in fleet]
    assert answers == [{"10.0.0.12"}, {"10.0.0.12"}, {"10.0.0.11"}]
    events = audit.list_events(ledger_engine, subject_type="release", subject_id=v2)
    assert [e.action for e in events].count("release.interrupted") == 1

    listing = releases_listing(ledger_url, tmp_path)
    line = next(x for x in listing.splitlines() if f" {v2} " in x)
    assert f"interrupted: 2 of 3 hosts on {LABEL_V2}, 1 on {LABEL_V1}" in line, listing

    # once is enough: a second reconcile writes nothing
    assert reconcile_dead(ledger_engine, inventory, lambda r: why, actor="reconcile:test") == []


def test_a_canary_config_release_is_reconciled_on_its_own_hosts_only(
    ledger_engine: Engine,
    dnsmasq_fleet: DnsmasqFleet,
    clean_ssh_fleet: SshdFleet,
    tmp_path: Path,
) -> None:
    """A canary phase's release names its hosts: only those get rows; a host never published
    to (a plain directory) is named as such, and an unreachable one as unreadable."""
    fleet = clean_ssh_fleet
    dnsmasq_fleet.start(OLD_HOSTS)
    inventory = load_inventory(inventory_file(tmp_path, fleet, dnsmasq_fleet))
    service = inventory.apps[APP].environments[ENV].config["dnsmasq"]
    canary = record(ledger_engine, LABEL_V2, V2, ["web-1", "web-2"], run=RUN)
    mark_running(ledger_engine, canary)
    publish(inventory, fleet[0], service, V2_HOSTS, V2)

    done = reconcile_dead(ledger_engine, inventory, lambda r: "dead", actor="reconcile:test")

    assert done[0].switched == ("web-1",) and done[0].not_switched == ("web-2",)
    row = get_release(ledger_engine, canary)
    assert {h.host: (h.status, h.serves) for h in row.hosts} == {
        "web-1": (HostStatus.switched, V2),
        "web-2": (HostStatus.skipped, None),
    }
    web2 = next(h.message for h in row.hosts if h.host == "web-2")
    assert web2 == "not switched: still serves files never published"
    assert fleet_line(row.summary) == f"1 of 2 hosts on {LABEL_V2}, 1 on files never published"
