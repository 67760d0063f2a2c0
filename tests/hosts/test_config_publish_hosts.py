"""A config publish's host side on real dnsmasq servers reached through real sshd hosts:
read, plan, stage + check, swap + reload/restart, verify with DNS queries, restore."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from quayside.config.address import ItemAddress
from quayside.config.host_publish import HostJob, publish_host, read_host
from quayside.config.publish_plan import PublishFile, plan_host
from quayside.config.records import content_hash
from quayside.executors.factory import executor_for
from quayside.inventory.config_services import ConfigService
from quayside.inventory.models import Host
from testbed.dnsmasq import DnsmasqFleet
from testbed.nginx import NginxFleet
from testbed.sshd import SshdFleet, SshdHost

pytestmark = [pytest.mark.ssh]

OLD_HOSTS = "10.0.0.1 api.internal\n10.0.0.9 gone.internal\n"
NEW_HOSTS = "10.0.0.2 api.internal\n10.0.0.3 new.internal\n"


def _host(h: SshdHost) -> Host:
    return Host(
        address=h.address, port=h.port, user=h.user, key_file=str(h.key_file),
        known_hosts=str(h.known_hosts), connect_timeout=3,
    )  # fmt: skip


def _file(name: str, content: str, version: int = 2) -> PublishFile:
    address = ItemAddress("DNS", "release", "dnsmasq", name)
    return PublishFile(name, address, version, content, content_hash(content), content)


def _publish(
    h: SshdHost, service: ConfigService, files: list[PublishFile], vid: str
) -> tuple[str, object]:
    executor = executor_for(h.name, _host(h))
    try:
        facts = read_host(executor, service, [f.filename for f in files])
        plan = plan_host(service, facts, files, lambda t: t)
        job = HostJob(h.name, h.address, service, plan, files, vid)
        return plan.action or "", publish_host(executor, job)
    finally:
        executor.close()


def test_hosts_file_published_to_every_server_changes_the_answer(
    dnsmasq_fleet: DnsmasqFleet, clean_ssh_fleet: SshdFleet
) -> None:
    dnsmasq_fleet.start(OLD_HOSTS)
    service = ConfigService(**dnsmasq_fleet.service())
    for h in clean_ssh_fleet:
        server = dnsmasq_fleet.server(h.name)
        assert server.query("api.internal") == {"10.0.0.1"}
        action, report = _publish(h, service, [_file("hosts", NEW_HOSTS)], "20260101T000000Z-a")
        assert action == "reload"  # a hosts file: SIGHUP, no restart
        assert report.status == "succeeded", report.message
        assert "3 DNS record(s)" in report.message
        assert server.query("api.internal") == {"10.0.0.2"}
        assert server.query("new.internal") == {"10.0.0.3"}
        assert server.query("gone.internal") == frozenset()
        # the plain directory became the first version, the live path a symlink to the new one
        assert os.readlink(server.conf).endswith("/20260101T000000Z-a")
        backup = Path(str(server.conf) + ".versions") / "00000000T000000Z-initial"
        assert (backup / "hosts").read_text() == OLD_HOSTS
        assert report.previous == str(backup)
        # a second publish of the same content is no change
        executor = executor_for(h.name, _host(h))
        try:
            facts = read_host(executor, service, ["hosts"])
        finally:
            executor.close()
        assert plan_host(service, facts, [_file("hosts", NEW_HOSTS)], lambda t: t).no_change


def test_broken_dnsmasq_conf_is_stopped_by_validation_and_old_answers_resolve(
    dnsmasq_fleet: DnsmasqFleet, clean_ssh_fleet: SshdFleet
) -> None:
    dnsmasq_fleet.start(OLD_HOSTS)
    service = ConfigService(**dnsmasq_fleet.service())
    h = clean_ssh_fleet[0]
    server = dnsmasq_fleet.server(h.name)
    live_conf = (server.conf / "dnsmasq.conf").read_text()
    broken = live_conf + "no-such-option=1\n"
    action, report = _publish(
        h, service, [_file("dnsmasq.conf", broken), _file("hosts", NEW_HOSTS)], "v-broken"
    )
    assert action == "restart"  # dnsmasq.conf is not re-read on SIGHUP
    assert report.status == "failed" and report.step == "check"
    assert "nothing live was touched" in report.message and "bad option" in report.message
    assert not report.switched
    assert not server.conf.is_symlink()  # still the plain directory it was
    assert (server.conf / "dnsmasq.conf").read_text() == live_conf
    assert not (Path(str(server.conf) + ".versions") / "v-broken").exists()
    assert server.query("api.internal") == {"10.0.0.1"}


def test_conf_change_restarts_and_a_broken_reload_restores_the_old_answers(
    dnsmasq_fleet: DnsmasqFleet, clean_ssh_fleet: SshdFleet
) -> None:
    dnsmasq_fleet.start(OLD_HOSTS)
    service = ConfigService(**dnsmasq_fleet.service())
    h = clean_ssh_fleet[1]
    server = dnsmasq_fleet.server(h.name)
    conf = (server.conf / "dnsmasq.conf").read_text()
    # a dnsmasq.conf record: only a restart makes dnsmasq serve it
    action, report = _publish(
        h, service, [_file("dnsmasq.conf", conf + "address=/conf.internal/10.1.1.1\n")], "v1"
    )
    assert action == "restart" and report.status == "succeeded", report.message
    assert server.query("conf.internal") == {"10.1.1.1"}
    # the new set makes the control script refuse: the restart fails, the host is restored
    action, report = _publish(
        h, service, [_file("hosts", NEW_HOSTS), _file("break-reload", "x\n")], "v2"
    )
    assert report.status == "failed" and report.step == "restart", report.message
    assert "restored the previous files" in report.message
    assert "old answers back" in report.message
    assert os.readlink(server.conf).endswith("/v1")
    assert server.query("api.internal") == {"10.0.0.1"}
    assert server.query("conf.internal") == {"10.1.1.1"}


def test_a_reload_that_does_nothing_fails_verify_and_restores(
    dnsmasq_fleet: DnsmasqFleet, clean_ssh_fleet: SshdFleet
) -> None:
    dnsmasq_fleet.start(OLD_HOSTS)
    service = ConfigService(**dnsmasq_fleet.service(reload=["true"], verify_timeout_s=0.5))
    h = clean_ssh_fleet[2]
    server = dnsmasq_fleet.server(h.name)
    _, report = _publish(h, service, [_file("hosts", NEW_HOSTS)], "v1")
    assert report.status == "failed" and report.step == "verify"
    assert f"DNS verify against {h.address}:{dnsmasq_fleet.port}" in report.message
    assert "new.internal answers nothing, expected 10.0.0.3" in report.message
    assert "restored the previous files" in report.message
    assert not Path(os.readlink(server.conf)).name.startswith("v1")
    assert server.query("api.internal") == {"10.0.0.1"}


def _nginx_file(content: str) -> PublishFile:
    address = ItemAddress("web", "prod", "nginx", "nginx.conf")
    return PublishFile("nginx.conf", address, 2, content, content_hash(content), content)


def test_nginx_config_is_checked_swapped_reloaded_and_probed(
    nginx_fleet: NginxFleet, clean_ssh_fleet: SshdFleet
) -> None:
    nginx_fleet.start("v1")
    h = clean_ssh_fleet[0]
    server = nginx_fleet.server(h.name)
    service = ConfigService(**nginx_fleet.service(verify_text="v2"))
    action, report = _publish(h, service, [_nginx_file(server.config("v2"))], "v2")
    assert action == "reload" and report.status == "succeeded", report.message
    assert "HTTP" in report.message
    assert server.get() == "v2"
    # a config nginx -t refuses never goes live
    broken = server.config("v3").replace("listen", "lisen")
    service = ConfigService(**nginx_fleet.service(verify_text="v3"))
    _, report = _publish(h, service, [_nginx_file(broken)], "v3")
    assert report.status == "failed" and report.step == "check"
    assert "lisen" in report.message
    assert os.readlink(server.conf).endswith("/v2") and server.get() == "v2"


def test_nginx_answering_the_old_text_fails_the_probe_and_restores(
    nginx_fleet: NginxFleet, clean_ssh_fleet: SshdFleet
) -> None:
    nginx_fleet.start("v1")
    h = clean_ssh_fleet[1]
    server = nginx_fleet.server(h.name)
    # the probe wants text the new config does not serve: verify fails, the host is restored
    service = ConfigService(**nginx_fleet.service(verify_text="v9", verify_timeout_s=0.5))
    _, report = _publish(h, service, [_nginx_file(server.config("v2"))], "v2")
    assert report.status == "failed" and report.step == "verify"
    assert "without 'v9'" in report.message and "restored the previous files" in report.message
    assert not server.conf.is_symlink() or not os.readlink(server.conf).endswith("/v2")
    # after a reload nginx's old workers may still answer a new connection or two while they
    # retire (and a loaded machine makes that seconds): wait until v1 answers five times in a
    # row, generously
    deadline, in_a_row = time.monotonic() + 30, 0
    while in_a_row < 5 and time.monotonic() < deadline:
        in_a_row = in_a_row + 1 if server.get() == "v1" else 0
        time.sleep(0.05)
    assert in_a_row == 5, server.get()


def test_old_versions_are_pruned_but_never_the_live_one(
    dnsmasq_fleet: DnsmasqFleet, clean_ssh_fleet: SshdFleet
) -> None:
    dnsmasq_fleet.start(OLD_HOSTS)
    service = ConfigService(**dnsmasq_fleet.service(keep_versions=2))
    h = clean_ssh_fleet[0]
    server = dnsmasq_fleet.server(h.name)
    for i in range(1, 5):
        content = f"10.0.0.{10 + i} api.internal\n"
        _, report = _publish(h, service, [_file("hosts", content)], f"2026010{i}T000000Z-v")
        assert report.status == "succeeded", report.message
        assert server.query("api.internal") == {f"10.0.0.{10 + i}"}
    versions = sorted(p.name for p in Path(str(server.conf) + ".versions").iterdir())
    # the newest two: the live one and the previous one (the backup a restore needs)
    assert versions == ["20260103T000000Z-v", "20260104T000000Z-v"]
    assert os.readlink(server.conf).endswith("/20260104T000000Z-v")


def test_served_versions_name_each_hosts_live_version_for_a_reconcile(
    dnsmasq_fleet: DnsmasqFleet, clean_ssh_fleet: SshdFleet
) -> None:
    from quayside.config.publish_served import served_versions

    dnsmasq_fleet.start(OLD_HOSTS)
    service = ConfigService(**dnsmasq_fleet.service())
    first, second, third = clean_ssh_fleet
    _, report = _publish(first, service, [_file("hosts", NEW_HOSTS)], "20260105T000000Z-abc")
    assert report.status == "succeeded", report.message
    third.stop()
    try:
        found = served_versions({h.name: _host(h) for h in clean_ssh_fleet}, service)
    finally:
        third.start()
    assert found[0] == (first.name, "20260105T000000Z-abc", None)
    assert found[1] == (second.name, None, None)  # never published: a plain directory
    assert found[2][0] == third.name and found[2][1] is None and found[2][2]
