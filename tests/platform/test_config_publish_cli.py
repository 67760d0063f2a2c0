"""`quayside config publish` as a user runs it: a subprocess against the session platform
(runs go through the Prefect API and the worker) publishing to real dnsmasq servers behind real
sshd hosts."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from quayside.auth import service
from quayside.config import items
from quayside.config.address import ItemAddress
from quayside.config.backend import open_store
from quayside.ledger.models import ApprovalRequest, ApprovalStatus, ReleaseKind, RunSubmission
from quayside.ledger.release_queries import releases_of_run
from quayside.ledger.submissions import submission_of_run
from testbed.dnsmasq import DnsmasqFleet
from testbed.platform import PROJECT_DIR, Platform
from testbed.release_fixtures import host_entries, ledger
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]

OLD_HOSTS = "10.0.0.1 api.internal\n"
NEW_HOSTS = "10.0.0.2 api.internal\n"
NEWER_HOSTS = "10.0.0.5 api.internal\n"
APP = "dns-cli"
RUN_ID = re.compile(r"/runs/flow-run/([0-9a-f-]{36})")


def quayside(
    platform: Platform, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env={**platform.env, "COLUMNS": "200", **({"QUAYSIDE_TOKEN": token} if token else {})},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


def answers(dns: DnsmasqFleet) -> dict[str, Any]:
    return {s.name: s.query("api.internal") for s in dns}


def submissions(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(RunSubmission)) or 0)


def run_id_of(out: subprocess.CompletedProcess[str]) -> str:
    found = RUN_ID.search(out.stdout)
    assert found, out.stdout + out.stderr
    return found.group(1)


def test_config_publish_from_the_cli(
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    dnsmasq_fleet: DnsmasqFleet,
) -> None:
    from quayside.runs import read_run

    environment = {
        "hosts": [h.name for h in clean_ssh_fleet],
        "config": {"dnsmasq": dnsmasq_fleet.service()},
    }
    platform_inventory.write_text(
        yaml.safe_dump(
            {
                "hosts": host_entries(clean_ssh_fleet),
                "apps": {APP: {"environments": {"release": environment}}},
            }  # fmt: skip
        )
    )
    dnsmasq_fleet.start(OLD_HOSTS)
    engine = ledger()
    store = open_store(engine)
    address = ItemAddress(APP, "release", "dnsmasq", "hosts")
    items.save(store, address, NEW_HOSTS, author="alice", base_version=0)
    for name, role in (("cli-dev", "DEVELOPER"), ("cli-lead", "MASTER")):
        service.create_user(engine, name)
        service.grant_role(engine, name, role, space="default")
    dev, lead = service.create_token(engine, "cli-dev"), service.create_token(engine, "cli-lead")

    # bad input: one line naming it and the next step, no traceback, nothing created
    before = submissions(engine)
    cases = [
        ((("nope", "release"), "unknown project 'nope' (projects: "), "quayside check"),
        (((APP, "prod"), f"project '{APP}' has no environment 'prod'"), "quayside check"),
        (((APP, "release", "nginx"), "publishes no config service 'nginx' (services: dnsmasq)"),
         f"add apps.{APP}.environments.release.config.nginx"),
        (((APP, "release", "--canary", "3"), "--canary 3: dns-cli/release has 3 host(s)"),
         "give 1 to 2"),
    ]  # fmt: skip
    for (args, message), hint in cases:
        out = quayside(platform, "config", "publish", *args, token=dev)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], (args, out.stderr)
        assert "hint:" in out.stderr and hint in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr + out.stdout and "started" not in out.stdout
    assert submissions(engine) == before

    # with a token the publish is the token's user's, through the deploy CLI's submit path
    out = quayside(platform, "config", "publish", APP, "release", "dnsmasq", token=dev)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(out)
    submission = submission_of_run(engine, run_id)
    assert submission is not None and (submission.principal, submission.via) == ("cli-dev", "cli")
    assert "(config-publish)" in out.stdout and "completed" in out.stdout
    [release] = releases_of_run(engine, run_id)
    assert release.kind is ReleaseKind.config and release.requested_by == "cli-dev"
    assert f"release {release.id} (dnsmasq: hosts@v1): succeeded" in out.stdout
    for h in clean_ssh_fleet:
        assert re.search(rf"{h.name}\W+succeeded\W", out.stdout), out.stdout
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}

    again = quayside(platform, "config", "publish", APP, "release", token=dev)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"no change: every host of {APP}/release already has dnsmasq's files" in again.stdout

    # --no-wait: the link, and back at once; the canary's rest waits for an approval, which
    # `quayside approve` answers (the requester may not)
    items.save(store, address, NEWER_HOSTS, author="alice", base_version=1)
    started = quayside(
        platform, "config", "publish", APP, "release", "--canary", "1", "--no-wait", token=dev
    )
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = run_id_of(started)
    assert "completed" not in started.stdout
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            gate = conn.scalar(
                select(ApprovalRequest.gate).where(
                    ApprovalRequest.flow_run_id == run_id,
                    ApprovalRequest.status == ApprovalStatus.pending,
                )
            )
        if gate is not None:
            break
        time.sleep(0.3)
    assert gate == "rest"
    assert answers(dnsmasq_fleet) == {"web-1": {"10.0.0.5"}, "web-2": {"10.0.0.2"},
                                      "web-3": {"10.0.0.2"}}  # fmt: skip
    approved = quayside(platform, "approve", run_id, token=lead)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    while not (status := read_run(run_id)).final and time.monotonic() < deadline:
        time.sleep(0.3)
    assert status.state_type == "COMPLETED", status.message
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.5"} for h in clean_ssh_fleet}
    phases = [r.details["phase"] for r in releases_of_run(engine, run_id)]
    assert phases == ["canary", "rest"]


def test_quayside_rollback_republishes_the_previous_config_release(
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    dnsmasq_fleet: DnsmasqFleet,
) -> None:
    """`quayside rollback APP ENV` after two config publishes: the newest release is a config
    release, so the rollback is a `config-publish` of the versions the one before published,
    recorded as a config release with rollback_of set."""
    app = "dns-cli-rb"
    environment = {
        "hosts": [h.name for h in clean_ssh_fleet],
        "config": {"dnsmasq": dnsmasq_fleet.service()},
    }
    platform_inventory.write_text(
        yaml.safe_dump(
            {
                "hosts": host_entries(clean_ssh_fleet),
                "apps": {app: {"environments": {"release": environment}}},
            }  # fmt: skip
        )
    )
    dnsmasq_fleet.start(OLD_HOSTS)
    engine = ledger()
    store = open_store(engine)
    address = ItemAddress(app, "release", "dnsmasq", "hosts")
    service.create_user(engine, "rb-lead")
    service.grant_role(engine, "rb-lead", "MASTER", space="default")
    lead = service.create_token(engine, "rb-lead")

    releases = []
    for base, content in ((0, NEW_HOSTS), (1, NEWER_HOSTS)):
        items.save(store, address, content, author="alice", base_version=base)
        out = quayside(platform, "config", "publish", app, "release", "dnsmasq", token=lead)
        assert out.returncode == 0, out.stdout + out.stderr
        [release] = releases_of_run(engine, run_id_of(out))
        releases.append(release)
    first, second = releases
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.5"} for h in clean_ssh_fleet}

    back = quayside(platform, "rollback", app, "release", token=lead)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "(config-publish)" in back.stdout and "completed" in back.stdout
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    [row] = releases_of_run(engine, run_id_of(back))
    assert row.kind is ReleaseKind.config and row.id not in (first.id, second.id)
    assert row.rollback_of_id == second.id and row.requested_by == "rb-lead"
    assert row.details["files"]["hosts"]["version"] == first.details["files"]["hosts"]["version"]
    assert {h.host: h.status.value for h in row.hosts} == {
        h.name: "succeeded" for h in clean_ssh_fleet
    }
    published = items.published(store, address)
    assert published is not None and published.version == 1


def test_quayside_rollback_puts_back_the_variable_versions_its_release_rendered_with(
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    dnsmasq_fleet: DnsmasqFleet,
) -> None:
    """A template reading $API_IP published with API_IP v1, then (the file unchanged) with
    v2: `quayside rollback APP ENV` goes back to the first release and renders its file
    version with the variable version that release recorded - the hosts answer and hold the
    v1 content again, not the file with today's variables."""
    from quayside.config import variables
    from quayside.config.address import EnvAddress

    app = "dns-cli-rbv"
    environment = {
        "hosts": [h.name for h in clean_ssh_fleet],
        "config": {"dnsmasq": dnsmasq_fleet.service()},
    }
    platform_inventory.write_text(
        yaml.safe_dump(
            {
                "hosts": host_entries(clean_ssh_fleet),
                "apps": {app: {"environments": {"release": environment}}},
            }  # fmt: skip
        )
    )
    dnsmasq_fleet.start(OLD_HOSTS)
    engine = ledger()
    store = open_store(engine)
    env = EnvAddress(app, "release")
    address = ItemAddress(app, "release", "dnsmasq", "hosts")
    service.create_user(engine, "rbv-lead")
    service.grant_role(engine, "rbv-lead", "MASTER", space="default")
    lead = service.create_token(engine, "rbv-lead")
    items.save(
        store, address, "{{ API_IP }} api.internal\n", author="alice", base_version=0,
        template=True,
    )  # fmt: skip

    releases = []
    for value in ("10.0.0.2", "10.0.0.5"):
        variables.set_value(store, None, env, "API_IP", value, author="alice")
        out = quayside(platform, "config", "publish", app, "release", "dnsmasq", token=lead)
        assert out.returncode == 0, out.stdout + out.stderr
        [release] = releases_of_run(engine, run_id_of(out))
        releases.append(release)
    first, second = releases
    assert first.details["files"]["hosts"]["variables"] == {"API_IP": 1}
    assert second.details["files"]["hosts"]["variables"] == {"API_IP": 2}
    assert second.details["files"]["hosts"]["version"] == 1  # only the variable changed
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.5"} for h in clean_ssh_fleet}

    back = quayside(platform, "rollback", app, "release", token=lead)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "(config-publish)" in back.stdout and "completed" in back.stdout
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    for server in dnsmasq_fleet:
        assert (server.conf / "hosts").read_text() == "10.0.0.2 api.internal\n"
    [row] = releases_of_run(engine, run_id_of(back))
    assert row.kind is ReleaseKind.config and row.rollback_of_id == second.id
    assert row.details["files"]["hosts"] == first.details["files"]["hosts"]
    marker = store.published_marker(address)
    assert marker is not None and (marker.version, marker.variables) == (1, {"API_IP": 1})
    # what the pull endpoint and `config get --published --rendered` serve: the v1 content
    got = quayside(
        platform, "config", "get", f"{app}/release/dnsmasq/hosts", "--published", "--rendered",
        token=lead,
    )  # fmt: skip
    assert got.returncode == 0, got.stdout + got.stderr
    assert "10.0.0.2 api.internal" in got.stdout and "10.0.0.5" not in got.stdout
