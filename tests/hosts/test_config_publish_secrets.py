"""A secret variable's value never leaves a host unmasked: real nginx behind real sshd hosts
echo a rendered line back (``nginx -t`` quotes the value it refuses, a verify command prints
the live file), and the host's report - what the host row, the run's log, the host table and
the notification show - carries ``••••`` and the version instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.host_publish import HostJob, publish_host, read_host
from quayside.config.publish_files import rendered_files, secret_masker
from quayside.config.publish_plan import PublishFile, plan_host
from quayside.config.secret_box import SecretBox
from quayside.config.sql_store import SqlConfigStore
from quayside.deploy.errors import HostsFailed
from quayside.executors.factory import executor_for
from quayside.inventory.config_services import ConfigService
from quayside.inventory.models import Host
from quayside.ledger.db import make_engine, migrate
from quayside.release.host_outcomes import failed_rows, outcome_text
from quayside.release.host_report import HostReport
from testbed.nginx import NginxFleet
from testbed.sshd import SshdFleet, SshdHost

pytestmark = [pytest.mark.ssh]

SECRET = "s3cret-tok3n-x9"
ENV = EnvAddress("web", "prod")
CONF = ItemAddress("web", "prod", "nginx", "nginx.conf")


def _host(h: SshdHost) -> Host:
    return Host(
        address=h.address, port=h.port, user=h.user, key_file=str(h.key_file),
        known_hosts=str(h.known_hosts), connect_timeout=3,
    )  # fmt: skip


def _secret_store(tmp_path: Path) -> tuple[SqlConfigStore, SecretBox]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    store = SqlConfigStore(make_engine(url))
    box = SecretBox.from_home(tmp_path / "home")
    variables.set_value(store, box, ENV, "TOKEN", SECRET, author="ann", secret=True)
    return store, box


def _render(store: SqlConfigStore, box: SecretBox, template: str) -> list[PublishFile]:
    base = items.latest_version_number(store, CONF)
    items.save(store, CONF, template, author="ann", base_version=base, template=True)
    files, _ = rendered_files(store, [(CONF, None)], box, None)
    return files


def _publish(
    h: SshdHost, service: ConfigService, files: list[PublishFile], vid: str, store: SqlConfigStore,
    box: SecretBox,
) -> HostReport:  # fmt: skip
    redact = secret_masker(store, box, ENV, None)
    executor = executor_for(h.name, _host(h))
    try:
        facts = read_host(executor, service, [f.filename for f in files])
        plan = plan_host(service, facts, files, redact)
        return publish_host(executor, HostJob(h.name, h.address, service, plan, files, vid, redact))
    finally:
        executor.close()


def _assert_masked(report: HostReport) -> None:
    """Nothing a person or a log sees of ``report`` holds the secret: the host row's message
    (also the log line and the host table's cell), the notification's text, the run's error."""
    rows = failed_rows([report])
    shown = [
        report.message,
        outcome_text("0 of 1 host(s) now serve web", rows),
        str(HostsFailed("1 host(s) failed", rows)),
    ]
    for text in shown:
        assert SECRET not in text, text
        assert "•••• (v1)" in text, text


def test_nginx_t_echoing_a_secret_directive_value_is_masked_in_the_report(
    tmp_path: Path, nginx_fleet: NginxFleet, clean_ssh_fleet: SshdFleet
) -> None:
    nginx_fleet.start("v1")
    h = clean_ssh_fleet[0]
    server = nginx_fleet.server(h.name)
    store, box = _secret_store(tmp_path)
    # nginx -t refuses the value and quotes it: invalid value "s3cret-..." in "server_tokens"
    template = server.config("v2").replace(
        "    access_log off;\n", "    access_log off;\n    server_tokens {{ TOKEN }};\n"
    )
    files = _render(store, box, template)
    assert SECRET in files[0].content  # the host would get the real value
    service = ConfigService(**nginx_fleet.service(verify_text="v2"))
    report = _publish(h, service, files, "v2", store, box)
    assert report.status == "failed" and report.step == "check", report.message
    assert 'invalid value "•••• (v1)"' in report.message  # what nginx said, value masked
    _assert_masked(report)
    assert not server.conf.is_symlink() and server.get() == "v1"  # nothing live touched


def test_a_verify_and_a_restore_printing_the_secret_are_masked(
    tmp_path: Path, nginx_fleet: NginxFleet, clean_ssh_fleet: SshdFleet
) -> None:
    nginx_fleet.start("v1")
    h = clean_ssh_fleet[1]
    server = nginx_fleet.server(h.name)
    store, box = _secret_store(tmp_path)
    files = _render(store, box, server.config("v2") + "# token {{ TOKEN }}\n")
    # a verify command that prints the live file's last line and fails: the new set fails it
    # (the secret in its stderr), the host is restored, and the restore's verify fails too
    verify = ["sh", "-c", "tail -n 1 {dir}/nginx.conf >&2; exit 1"]
    service = ConfigService(**nginx_fleet.service(verify=verify, verify_url=None))
    report = _publish(h, service, files, "v2", store, box)
    assert report.status == "failed" and report.step == "verify", report.message
    assert "verify command: exit 1: # token •••• (v1)" in report.message
    assert "restored the previous files, but verify command" in report.message
    _assert_masked(report)
    assert not os.path.realpath(server.conf).endswith("/v2")
