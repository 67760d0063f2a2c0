"""config-publish end to end: the flow in-process against the session platform's Prefect API,
the config center in its ledger, and real dnsmasq servers reached through real sshd hosts."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from quayside.auth import service
from quayside.auth.approvals import decide
from quayside.config import items, variables
from quayside.config.address import ItemAddress
from quayside.config.backend import open_store
from quayside.deploy.errors import HostsFailed, ThresholdExceeded
from quayside.errors import InputError
from quayside.flows.config_publish import config_publish
from quayside.ledger import approvals
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import (
    ApprovalRequest,
    ApprovalStatus,
    HostStatus,
    ReleaseKind,
    ReleaseStatus,
)
from quayside.ledger.release_queries import list_releases
from quayside.tasks.approval import ApprovalRejected
from testbed.dnsmasq import DnsmasqFleet
from testbed.release_fixtures import host_entries, ledger, run_flow_fixture  # noqa: F401
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]

OLD_HOSTS = "10.0.0.1 api.internal\n10.0.0.9 gone.internal\n"
NEW_HOSTS = "10.0.0.2 api.internal\n10.0.0.3 new.internal\n"


def setup(inventory: Path, fleet: SshdFleet, dns: DnsmasqFleet, app: str, **env: Any) -> Any:
    """App ``app`` (environment ``release``) publishing dnsmasq files to every fleet host; the
    servers started with OLD_HOSTS; the config store."""
    environment = {"hosts": [h.name for h in fleet], "config": {"dnsmasq": dns.service()}}
    environment.update(env)
    inventory.write_text(
        yaml.safe_dump(
            {
                "hosts": host_entries(fleet),
                "apps": {app: {"environments": {"release": environment}}},
            }
        )
    )
    dns.start(OLD_HOSTS)
    return open_store(ledger())


def save(store: Any, app: str, name: str, content: str) -> int:
    address = ItemAddress(app, "release", "dnsmasq", name)
    base = items.latest_version_number(store, address)
    return items.save(store, address, content, author="alice", base_version=base).version


def answers(dns: DnsmasqFleet, name: str = "api.internal") -> dict[str, Any]:
    return {s.name: s.query(name) for s in dns}


def test_publish_changes_the_answer_on_every_server_then_no_change(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-a")
    version = save(store, "dns-a", "hosts", NEW_HOSTS)
    dry = run_flow(config_publish, "dns-a", "release", "dnsmasq", dry_run=True)
    assert dry["result"] == "planned"
    assert "-10.0.0.1 api.internal" in dry["hosts"]["web-1"]
    assert "+10.0.0.2 api.internal" in dry["hosts"]["web-1"]
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.1"} for h in clean_ssh_fleet}

    out = run_flow(config_publish, "dns-a", "release", "dnsmasq", requested_by="alice")
    assert out["result"] == "published" and out["marker_moved"] and not out["failed"]
    assert out["hosts"] == {h.name: "succeeded" for h in clean_ssh_fleet}
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    assert answers(dnsmasq_fleet, "new.internal") == {h.name: {"10.0.0.3"} for h in clean_ssh_fleet}
    published = items.published(store, ItemAddress("dns-a", "release", "dnsmasq", "hosts"))
    assert published is not None and published.version == version

    row = list_releases(ledger(), "dns-a", "release", limit=1)[0]
    assert row.kind is ReleaseKind.config and row.status is ReleaseStatus.succeeded
    assert row.details["files"]["hosts"]["version"] == version
    assert {h.host: h.status for h in row.hosts} == {
        h.name: HostStatus.succeeded for h in clean_ssh_fleet
    }
    again = run_flow(config_publish, "dns-a", "release", "dnsmasq")
    assert again["result"] == "no change"
    assert len(list_releases(ledger(), "dns-a", "release", limit=10)) == 1


def test_a_broken_dnsmasq_conf_is_stopped_by_validation_everywhere(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-b")
    conf = (dnsmasq_fleet.servers[0].conf / "dnsmasq.conf").read_text()
    # one file for every host (web-1's listen address): its bad option fails every checker
    save(store, "dns-b", "dnsmasq.conf", conf + "no-such-option=1\n")
    with pytest.raises(ThresholdExceeded) as info:
        run_flow(config_publish, "dns-b", "release", "dnsmasq")
    assert "web-1 [check]" in str(info.value)
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.1"} for h in clean_ssh_fleet}
    assert all(not s.conf.is_symlink() for s in dnsmasq_fleet)  # nothing live touched
    address = ItemAddress("dns-b", "release", "dnsmasq", "dnsmasq.conf")
    assert items.published(store, address) is None
    row = list_releases(ledger(), "dns-b", "release", limit=1)[0]
    assert row.status is ReleaseStatus.failed
    assert {h.status for h in row.hosts} <= {HostStatus.failed, HostStatus.skipped}


def test_a_host_whose_reload_fails_past_the_threshold_restores_every_switched_host(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-c")
    broken = dnsmasq_fleet.server("web-2")
    broken.ctl.write_text('#!/bin/sh\necho "reload: broken on purpose" >&2\nexit 1\n')
    save(store, "dns-c", "hosts", NEW_HOSTS)
    with pytest.raises(ThresholdExceeded) as info:
        run_flow(config_publish, "dns-c", "release", "dnsmasq", batch=1)
    assert "web-2" in str(info.value)
    # batch 1: web-1 switched and verified; batch 2: web-2's reload failed (it restored
    # itself), past the threshold: web-1 restored, web-3 never started
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.1"} for h in clean_ssh_fleet}
    assert not dnsmasq_fleet.server("web-3").conf.is_symlink()
    row = list_releases(ledger(), "dns-c", "release", limit=1)[0]
    by_host = {h.host: h for h in row.hosts}
    assert by_host["web-2"].status is HostStatus.failed
    assert "reload: broken on purpose" in (by_host["web-2"].message or "")
    assert by_host["web-1"].status is HostStatus.rolled_back
    assert by_host["web-3"].status is HostStatus.skipped
    assert items.published(store, ItemAddress("dns-c", "release", "dnsmasq", "hosts")) is None


def test_every_host_failing_within_the_tolerance_fails_the_release(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    # every host may fail without stopping the publish, and every reload fails: each host
    # restores itself, nothing of the publish serves anywhere - the release failed
    store = setup(
        platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-z",
        failure_threshold=len(clean_ssh_fleet),
    )  # fmt: skip
    for server in dnsmasq_fleet:
        server.ctl.write_text('#!/bin/sh\necho "reload: broken on purpose" >&2\nexit 1\n')
    save(store, "dns-z", "hosts", NEW_HOSTS)
    with pytest.raises(HostsFailed, match="every host that needed the files failed"):
        run_flow(config_publish, "dns-z", "release", "dnsmasq")
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.1"} for h in clean_ssh_fleet}
    row = list_releases(ledger(), "dns-z", "release", limit=1)[0]
    assert row.status is ReleaseStatus.failed
    assert row.summary["result"] == "restored"
    assert {h.status for h in row.hosts} == {HostStatus.failed}
    assert items.published(store, ItemAddress("dns-z", "release", "dnsmasq", "hosts")) is None


def test_a_canary_publish_stopped_after_the_canary_leaves_the_others_untouched(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    engine = ledger()
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-d")
    service.create_user(engine, "dns-d-lead")
    service.grant_role(engine, "dns-d-lead", "MASTER", space="default")
    token = service.create_token(engine, "dns-d-lead")
    version = save(store, "dns-d", "hosts", NEW_HOSTS)
    rejected: list[int] = []

    def reject_the_rest() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with unit_of_work(engine, read_only=True) as session:
                found = session.scalars(
                    select(ApprovalRequest).where(
                        ApprovalRequest.app == "dns-d",
                        ApprovalRequest.status == ApprovalStatus.pending,
                    )
                ).first()
                request_id = found.id if found is not None else None
            if request_id is not None:
                # the canary is live before the gate asks about the rest
                assert dnsmasq_fleet.server("web-1").query("api.internal") == {"10.0.0.2"}
                assert decide(engine, request_id, token_text=token, decision="reject").accepted
                rejected.append(request_id)
                return
            time.sleep(0.2)

    rejecter = threading.Thread(target=reject_the_rest)
    rejecter.start()
    try:
        with pytest.raises(ApprovalRejected):
            run_flow(config_publish, "dns-d", "release", "dnsmasq", canary=1, requested_by="alice")
    finally:
        rejecter.join()
    assert rejected
    assert answers(dnsmasq_fleet) == {"web-1": {"10.0.0.2"}, "web-2": {"10.0.0.1"},
                                      "web-3": {"10.0.0.1"}}  # fmt: skip
    assert all(not s.conf.is_symlink() for s in dnsmasq_fleet.servers[1:])
    published = items.published(store, ItemAddress("dns-d", "release", "dnsmasq", "hosts"))
    assert published is not None and published.version == version  # the canary set succeeded
    canary_row, rest_row = reversed(list_releases(engine, "dns-d", "release", limit=2))
    assert canary_row.details["phase"] == "canary" and canary_row.status is ReleaseStatus.succeeded
    assert [h.host for h in canary_row.hosts] == ["web-1"]
    assert rest_row.details["phase"] == "rest" and rest_row.status is ReleaseStatus.cancelled


def test_rollback_republishes_the_previous_config_release_as_a_new_release(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    from quayside.config.publish_rollback import rollback_parameters

    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-e")
    first = save(store, "dns-e", "hosts", NEW_HOSTS)
    run_flow(config_publish, "dns-e", "release", "dnsmasq")
    save(store, "dns-e", "hosts", "10.0.0.4 api.internal\n")
    newer = run_flow(config_publish, "dns-e", "release", "dnsmasq")
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.4"} for h in clean_ssh_fleet}

    params = rollback_parameters(ledger(), "dns-e", "release", requested_by="alice")
    assert params["versions"] == {"hosts": first} and params["service"] == "dnsmasq"
    assert params["rollback_of"] == newer["release"]
    back = run_flow(config_publish, **params)
    assert back["result"] == "published"
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    row = list_releases(ledger(), "dns-e", "release", limit=1)[0]
    assert row.rollback_of_id == newer["release"] and row.kind is ReleaseKind.config
    published = items.published(store, ItemAddress("dns-e", "release", "dnsmasq", "hosts"))
    assert published is not None and published.version == first


def test_a_publish_through_the_api_and_the_worker(
    platform: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    from quayside.runs import read_run, start_run

    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-f")
    save(store, "dns-f", "hosts", NEW_HOSTS)
    handle = start_run("config-publish", {"app": "dns-f", "env": "release", "service": "dnsmasq"})
    deadline = time.monotonic() + 240
    while not (status := read_run(handle.id)).final and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status.state_type == "COMPLETED", status.message
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    row = list_releases(ledger(), "dns-f", "release", limit=1)[0]
    assert row.kind is ReleaseKind.config and row.flow_run_id == handle.id


def test_the_approval_shows_the_masked_diff_and_the_content_digest(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    from quayside.config import variables
    from quayside.config.address import EnvAddress
    from quayside.config.secret_box import SecretBox
    from quayside.settings import load_settings

    engine = ledger()
    policy = {"approval": {"required": 1, "role": "MASTER"}}
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-g", **policy)
    tokens = []
    for lead in ("dns-g-lead", "dns-g-lead2"):  # a run nobody authenticated needs two
        service.create_user(engine, lead)
        service.grant_role(engine, lead, "MASTER", space="default")
        tokens.append(service.create_token(engine, lead))
    box = SecretBox.from_home(load_settings().home)
    env = EnvAddress("dns-g", "release")
    variables.set_value(store, box, env, "API_IP", "10.0.0.2", author="alice")
    variables.set_value(store, box, env, "TOKEN", "s3cret-token", author="alice", secret=True)
    address = ItemAddress("dns-g", "release", "dnsmasq", "hosts")
    template = "{{ API_IP }} api.internal\n# token {{ TOKEN }}\n"
    items.save(store, address, template, author="alice", base_version=0, template=True)
    shown: list[str] = []

    def approve() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with unit_of_work(engine, read_only=True) as session:
                found = session.scalars(
                    select(ApprovalRequest).where(ApprovalRequest.app == "dns-g")
                ).first()
                if found is not None:
                    shown.append(found.summary or "")
                    request_id = found.id
                    break
            time.sleep(0.2)
        else:
            return
        for token in tokens:
            assert decide(engine, request_id, token_text=token, decision="approve").accepted

    approver = threading.Thread(target=approve)
    approver.start()
    try:
        out = run_flow(config_publish, "dns-g", "release", "dnsmasq", requested_by="alice")
    finally:
        approver.join()
    assert out["result"] == "published"
    [summary] = shown
    assert out["digest"] in summary and "+10.0.0.2 api.internal" in summary
    assert "s3cret-token" not in summary and "+# token •••• (v1)" in summary
    for s in dnsmasq_fleet:  # the hosts get the real value
        assert (s.conf / "hosts").read_text() == "10.0.0.2 api.internal\n# token s3cret-token\n"
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}


def test_a_canary_host_list_with_a_delay_goes_on_to_the_rest(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-h")
    save(store, "dns-h", "hosts", NEW_HOSTS)
    out = run_flow(
        config_publish, "dns-h", "release", "dnsmasq", canary=["web-2"], canary_wait_s=0.5
    )
    assert out["canary"] == ["web-2"] and out["canary_release"]["hosts"] == {"web-2": "succeeded"}
    assert out["phase"] == "rest" and out["hosts"] == {"web-1": "succeeded", "web-3": "succeeded"}
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    rest, canary = list_releases(ledger(), "dns-h", "release", limit=2)
    assert canary.details["phase"] == "canary" and rest.details["phase"] == "rest"
    assert canary.status is rest.status is ReleaseStatus.succeeded
    with pytest.raises(InputError, match="canary: web-9 not among the hosts"):
        run_flow(config_publish, "dns-h", "release", "dnsmasq", canary=["web-9"])
    with pytest.raises(InputError, match="canary: 3 host"):
        run_flow(config_publish, "dns-h", "release", "dnsmasq", canary=3)


def wait_for_pending(engine: Any, app: str, after: int = 0) -> ApprovalRequest:
    """The first pending approval request of ``app`` with an id above ``after``."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with unit_of_work(engine, read_only=True) as session:
            found = session.scalars(
                select(ApprovalRequest).where(
                    ApprovalRequest.app == app,
                    ApprovalRequest.status == ApprovalStatus.pending,
                    ApprovalRequest.id > after,
                )
            ).first()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no pending approval request of {app}")


def test_whoever_edited_the_version_may_not_approve_its_publish(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    engine = ledger()
    policy = {
        "approval": {
            "required": 1,
            "role": "MASTER",
            "allow_editor_approval": False,
            "unattributed": "one_approver",
        }
    }
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-i", **policy)
    tokens = {}
    for name in ("dns-i-editor", "dns-i-vars", "dns-i-lead"):
        service.create_user(engine, name)
        service.grant_role(engine, name, "MASTER", space="default")
        tokens[name] = service.create_token(engine, name)
    address = ItemAddress("dns-i", "release", "dnsmasq", "hosts")
    # a template reading a variable another MASTER set: both edited what is published
    variables.set_value(store, None, address.env, "api_ip", "10.0.0.2", author="dns-i-vars")
    template = NEW_HOSTS.replace("10.0.0.2", "{{ api_ip }}")
    items.save(store, address, template, author="dns-i-editor", base_version=0, template=True)
    seen: dict[str, Any] = {}

    def answer() -> None:
        request = wait_for_pending(engine, "dns-i")
        editor = decide(engine, request.id, token_text=tokens["dns-i-editor"], decision="approve")
        seen["editor"] = editor
        seen["vars"] = decide(
            engine, request.id, token_text=tokens["dns-i-vars"], decision="approve"
        )
        seen["excluded"] = request.excluded_approvers
        time.sleep(1.5)  # the gate has read the refusal and waits on
        seen["still"] = approvals.get_request(engine, request.id).status
        lead = tokens["dns-i-lead"]
        seen["lead"] = decide(engine, request.id, token_text=lead, decision="approve")

    approver = threading.Thread(target=answer)
    approver.start()
    try:
        out = run_flow(config_publish, "dns-i", "release", "dnsmasq", requested_by="alice")
    finally:
        approver.join()
    assert set(seen["excluded"]) == {"dns-i-editor", "dns-i-vars"}
    editor = seen["editor"]
    assert not editor.accepted and editor.status is ApprovalStatus.pending
    assert "dns-i-editor may not approve this release: dns-i-editor edited hosts up to v1" in (
        editor.reason or ""
    )
    assert "allow_editor_approval: false" in (editor.reason or "")
    by_vars = seen["vars"]
    assert not by_vars.accepted and by_vars.status is ApprovalStatus.pending
    assert "dns-i-vars may not approve this release: dns-i-vars edited $api_ip up to v1" in (
        by_vars.reason or ""
    )
    assert seen["still"] is ApprovalStatus.pending
    assert seen["lead"].accepted and seen["lead"].status is ApprovalStatus.approved
    assert out["result"] == "published"
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    row = list_releases(engine, "dns-i", "release", limit=1)[0]
    assert row.status is ReleaseStatus.succeeded
    assert row.details["editors"] == {
        "dns-i-editor": "hosts up to v1",
        "dns-i-vars": "$api_ip up to v1",
    }
    marker = store.published_marker(address)  # the flow recorded the variable versions
    assert marker is not None and (marker.version, marker.variables) == (1, {"api_ip": 1})


def test_a_canary_publish_asks_each_gate_with_a_request_of_its_own(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    from quayside.runs.approval_answers import answer_run

    engine = ledger()
    policy = {"approval": {"required": 1, "role": "MASTER", "unattributed": "one_approver"}}
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-j", **policy)
    service.create_user(engine, "dns-j-lead")
    service.grant_role(engine, "dns-j-lead", "MASTER", space="default")
    token = service.create_token(engine, "dns-j-lead")
    save(store, "dns-j", "hosts", NEW_HOSTS)
    seen: dict[str, Any] = {}

    def answer_both_gates() -> None:
        first = wait_for_pending(engine, "dns-j")
        seen["first"] = first
        seen["before the first"] = answers(dnsmasq_fleet)
        # as `quayside approve RUN` does: the run's request is looked up by its run id
        seen["first answer"] = answer_run(
            engine, first.flow_run_id or "", user="dns-j-lead", decision="approve", token=token
        )
        second = wait_for_pending(engine, "dns-j", after=first.id)
        seen["second"] = second
        seen["before the second"] = answers(dnsmasq_fleet)
        seen["first meanwhile"] = approvals.get_request(engine, first.id).status
        seen["second answer"] = answer_run(
            engine, second.flow_run_id or "", user="dns-j-lead", decision="approve", token=token
        )

    answerer = threading.Thread(target=answer_both_gates)
    answerer.start()
    try:
        out = run_flow(config_publish, "dns-j", "release", "dnsmasq", canary=1, requested_by="a")
    finally:
        answerer.join()
    first, second = seen["first"], seen["second"]
    assert seen["before the first"] == {h.name: {"10.0.0.1"} for h in clean_ssh_fleet}
    assert seen["first answer"].request_id == first.id and seen["first answer"].wake == "woken"
    # the second gate opened a request of its own, with no decisions: the first's approval
    # is not reused, and the first stays approved (not voided by the second)
    assert (first.gate, second.gate) == ("release", "rest")
    assert first.flow_run_id == second.flow_run_id and second.id != first.id
    assert not second.decisions and second.status is ApprovalStatus.pending
    assert seen["first meanwhile"] is ApprovalStatus.approved
    assert seen["before the second"] == {"web-1": {"10.0.0.2"}, "web-2": {"10.0.0.1"},
                                         "web-3": {"10.0.0.1"}}  # fmt: skip
    assert seen["second answer"].request_id == second.id
    assert seen["second answer"].resolution.accepted

    assert out["canary_release"]["hosts"] == {"web-1": "succeeded"}
    assert out["phase"] == "rest" and out["hosts"] == {"web-2": "succeeded", "web-3": "succeeded"}
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.2"} for h in clean_ssh_fleet}
    with unit_of_work(engine, read_only=True) as session:
        rows = session.scalars(
            select(ApprovalRequest)
            .where(ApprovalRequest.flow_run_id == first.flow_run_id)
            .order_by(ApprovalRequest.id)
        ).all()
        got = [(r.gate, r.status, [(d.user, d.valid) for d in r.decisions]) for r in rows]
    assert got == [
        ("release", ApprovalStatus.approved, [("dns-j-lead", True)]),
        ("rest", ApprovalStatus.approved, [("dns-j-lead", True)]),
    ]
    rest, canary = list_releases(engine, "dns-j", "release", limit=2)
    assert (canary.details["phase"], rest.details["phase"]) == ("canary", "rest")
    assert canary.status is rest.status is ReleaseStatus.succeeded


def test_content_changed_while_waiting_voids_the_approval_and_asks_again(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, dnsmasq_fleet: DnsmasqFleet
) -> None:
    """The approval is bound to the rendered content it showed: a variable the template uses
    changes while the gate waits, the old request's approval is void (reason: the plan
    changed), a new request shows the new content, and approving it publishes that."""
    from quayside.config import variables
    from quayside.config.address import EnvAddress
    from quayside.config.secret_box import SecretBox
    from quayside.ledger.audit import list_events
    from quayside.settings import load_settings

    engine = ledger()
    policy = {"approval": {"required": 1, "role": "MASTER", "unattributed": "one_approver"}}
    store = setup(platform_inventory, clean_ssh_fleet, dnsmasq_fleet, "dns-k", **policy)
    service.create_user(engine, "dns-k-lead")
    service.grant_role(engine, "dns-k-lead", "MASTER", space="default")
    token = service.create_token(engine, "dns-k-lead")
    box = SecretBox.from_home(load_settings().home)
    env = EnvAddress("dns-k", "release")
    variables.set_value(store, box, env, "API_IP", "10.0.0.2", author="alice")
    address = ItemAddress("dns-k", "release", "dnsmasq", "hosts")
    items.save(store, address, "{{ API_IP }} api.internal\n", author="alice", base_version=0,
               template=True)  # fmt: skip
    seen: dict[str, Any] = {}

    def change_then_approve_both() -> None:
        first = wait_for_pending(engine, "dns-k")
        seen["first"] = first
        # while the gate waits: the variable the template renders changes
        variables.set_value(store, box, env, "API_IP", "10.0.0.7", author="alice")
        seen["old answer"] = decide(engine, first.id, token_text=token, decision="approve")
        second = wait_for_pending(engine, "dns-k", after=first.id)
        seen["second"] = second
        seen["first then"] = approvals.get_request(engine, first.id).status
        seen["before the second"] = answers(dnsmasq_fleet)
        seen["new answer"] = decide(engine, second.id, token_text=token, decision="approve")

    answerer = threading.Thread(target=change_then_approve_both)
    answerer.start()
    try:
        out = run_flow(config_publish, "dns-k", "release", "dnsmasq", requested_by="alice")
    finally:
        answerer.join()
    first, second = seen["first"], seen["second"]
    assert "+10.0.0.2 api.internal" in first.summary
    assert seen["old answer"].accepted  # approved, then found void by the gate
    assert seen["first then"] is ApprovalStatus.voided
    [voided] = list_events(
        engine, subject_type="approval_request", subject_id=first.id, action="approval.voided"
    )
    assert "the plan changed" in (voided.details or {})["reason"]
    # the new request shows the new content; nothing was published before it was approved
    assert second.flow_run_id == first.flow_run_id and second.gate == first.gate
    assert "+10.0.0.7 api.internal" in second.summary and "10.0.0.2" not in second.summary
    assert out["digest"] in second.summary and out["digest"] not in first.summary
    assert seen["before the second"] == {h.name: {"10.0.0.1"} for h in clean_ssh_fleet}
    assert seen["new answer"].accepted
    assert out["result"] == "published"
    assert answers(dnsmasq_fleet) == {h.name: {"10.0.0.7"} for h in clean_ssh_fleet}
    for s in dnsmasq_fleet:
        assert (s.conf / "hosts").read_text() == "10.0.0.7 api.internal\n"
    # the release that waited for the old request ended cancelled, nothing published by it
    row, waited = list_releases(engine, "dns-k", "release", limit=5)
    assert waited.status is ReleaseStatus.cancelled and not waited.hosts
    assert "content to publish changed while waiting" in waited.details["error"]
    assert row.status is ReleaseStatus.succeeded and row.details["content_digest"] == out["digest"]
    assert approvals.get_request(engine, second.id).status is ApprovalStatus.approved
