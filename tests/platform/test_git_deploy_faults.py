"""git-deploy under bad input and faults, on real sshd hosts. After each: the run ends with a
clear message, ``current`` on every host points at a complete release, the ledger says what
happened. One test goes through the Prefect API and the platform's worker."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.exceptions import CancelledRun

from quayside.deploy.errors import BuildError, ThresholdExceeded
from quayside.errors import InputError, NotFoundError
from quayside.flows.git_deploy import git_deploy
from quayside.ledger.audit import list_events
from quayside.ledger.locks import acquire, current_lock, release
from quayside.ledger.models import HostStatus, ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.runs import follow_run, read_run, start_run
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    ledger,
    release_ids,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect, pytest.mark.ssh]


def latest(app: str = "shop", env: str = "test") -> Any:
    return list_releases(ledger(), app, env, limit=1)[0]


def all_at(fleet: SshdFleet, rid: str) -> None:
    for h in fleet:
        assert current_id(h) == rid, h.name
        assert_complete(h)


@pytest.mark.parametrize("ref", ["v1;touch /tmp/quayside-pwned", "../v1", "$(id)", "-v1", "a b"])
def test_unsafe_refs_are_refused_before_anything_runs(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo, ref: str
) -> None:
    write_inventory(platform_inventory, clean_ssh_fleet, repo)
    with pytest.raises(InputError, match="invalid git ref"):
        run_flow(git_deploy, "shop", "test", ref)
    assert not Path("/tmp/quayside-pwned").exists()
    assert all(release_ids(h) == [] for h in clean_ssh_fleet)


def test_unknown_tag_and_build_failure(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    build = ['echo "$QUAYSIDE_APP $QUAYSIDE_ENV $QUAYSIDE_REF $QUAYSIDE_COMMIT" > BUILD']
    write_inventory(platform_inventory, fleet, repo, app={"build": build})
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    sha = repo.git("rev-parse", "v1").strip()
    assert (fleet[0].root / "current/BUILD").read_text() == f"shop test v1 {sha}\n"

    with pytest.raises(NotFoundError, match="ref 'v9' not found"):
        run_flow(git_deploy, "shop", "test", "v9")

    write_inventory(platform_inventory, fleet, repo, app={"build": ["echo compiling", "exit 3"]})
    with pytest.raises(BuildError, match=r"build step 2 \(exit 3\) failed \(exit 3\)"):
        run_flow(git_deploy, "shop", "test", "v2")
    row = latest()
    assert row.status == ReleaseStatus.failed and "build" in (row.details or {}).get("error", "")
    all_at(fleet, rid1)


def test_failing_hook_unreachable_host_and_wrong_key(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    tmp_path: Path,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]

    hook = {"pre_switch": ['test "$QUAYSIDE_HOST" != web-2']}
    write_inventory(platform_inventory, fleet, repo, app={"hooks": hook})
    with pytest.raises(ThresholdExceeded, match=r"web-2 \[pre_switch\]"):
        run_flow(git_deploy, "shop", "test", "v2")
    all_at(fleet, rid1)
    assert release_ids(fleet[1]) == [rid1]  # the failed host's new release dir is removed

    write_inventory(platform_inventory, fleet, repo)
    fleet[2].stop()
    try:
        with pytest.raises(ThresholdExceeded, match=r"web-3 \[facts\].*connect"):
            run_flow(git_deploy, "shop", "test", "v2")
    finally:
        fleet[2].start()
    all_at(fleet, rid1)
    row = latest()
    assert {h.host: h.status for h in row.hosts}["web-3"] == HostStatus.failed

    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    h3 = fleet[2]
    bad = {
        "address": h3.address,
        "port": h3.port,
        "user": h3.user,
        "key_file": str(wrong),
        "known_hosts": str(h3.known_hosts),
    }
    write_inventory(
        platform_inventory,
        fleet,
        repo,
        env={"hosts": ["web-1", "web-2", "badkey"]},
        extra_hosts={"badkey": bad},
    )
    with pytest.raises(ThresholdExceeded, match=r"badkey \[facts\].*authentication"):
        run_flow(git_deploy, "shop", "test", "v2")
    all_at(fleet, rid1)


@pytest.fixture
def tiny_disk(clean_ssh_fleet: SshdFleet) -> Any:
    root = clean_ssh_fleet[1].root
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_disk_full_on_one_host(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    tiny_disk: Path,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    repo.commit({"big.bin": os.urandom(3 * 1024 * 1024)}, tag="big")
    with pytest.raises(ThresholdExceeded, match=r"web-2 \[stage\]"):
        run_flow(git_deploy, "shop", "test", "big")
    all_at(fleet, rid1)
    message = {h.host: h.message for h in latest().hosts}["web-2"] or ""
    assert "No space left" in message, message


def test_an_artifact_store_on_a_full_disk_leaves_the_release_not_restorable(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store (a 1 MiB tmpfs) cannot take a 3 MiB payload: the hosts serve the release,
    the ledger says it is not restorable (no artifact location) with a warning, not that a
    payload is kept where nothing is."""
    fleet = clean_ssh_fleet
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(store)], check=True)
    try:
        monkeypatch.setenv("QUAYSIDE_ARTIFACTS_URL", f"file://{store}")
        write_inventory(platform_inventory, fleet, repo)
        repo.commit({"big.bin": os.urandom(3 * 1024 * 1024)}, tag="big")
        result = run_flow(git_deploy, "shop", "test", "big")
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)
    assert result["result"] == "deployed"
    all_at(fleet, result["release_id"])
    row = latest()
    assert row.status == ReleaseStatus.succeeded
    assert row.artifact_location is None
    assert row.details["restorable"] is False and row.details["artifact_key"] is None
    assert "No space left" in row.details["store_error"]
    (warning,) = row.summary["warnings"]
    assert warning.startswith("not restorable: the artifact store failed")


def test_host_dies_mid_release(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    hook = 'touch "$QUAYSIDE_DEPLOY_ROOT/in-hook"; sleep 3'
    write_inventory(platform_inventory, fleet, repo, app={"hooks": {"pre_switch": [hook]}})
    victim = fleet[1]

    def kill_when_in_hook() -> None:
        deadline = time.monotonic() + 120
        while not (victim.root / "in-hook").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.stop()

    killer = threading.Thread(target=kill_when_in_hook)
    killer.start()
    try:
        with pytest.raises(ThresholdExceeded, match=r"web-2 \[pre_switch\]"):
            run_flow(git_deploy, "shop", "test", "v2")
    finally:
        killer.join()
        victim.start()
    all_at(fleet, rid1)
    row = latest()
    assert row.status == ReleaseStatus.failed
    assert {h.host: h.status for h in row.hosts}["web-2"] == HostStatus.failed


def test_second_deploy_is_refused_while_one_runs(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger()
    # a lock held by someone else is named in the refusal
    acquire(engine, "shop", "test", "carol (flow run x)", flow_run_id="other", version="v0")
    write_inventory(platform_inventory, fleet, repo)
    try:
        # not run: the run ends Cancelled (in-process: CancelledRun), not Failed
        with pytest.raises(CancelledRun, match="not run: shop/test is locked by carol"):
            run_flow(git_deploy, "shop", "test", "v1")
    finally:
        release(engine, "shop", "test", flow_run_id="other")
    refused = latest()  # the refusal is recorded: who holds the lock, for what
    assert refused.status == ReleaseStatus.cancelled and refused.hosts == []
    assert (refused.summary or {})["result"] == "not run"
    assert "locked by carol (flow run x) deploying v0" in (refused.summary or {})["reason"]
    events = list_events(engine, subject_type="release", subject_id=refused.id)
    assert {e.action for e in events} >= {"release.started", "release.finished"}, events
    assert all(release_ids(h) == [] for h in fleet)

    # a real run through the API and the worker holds it while a second one is refused
    write_inventory(platform_inventory, fleet, repo, app={"hooks": {"pre_switch": ["sleep 8"]}})
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v1", "requested_by": "dave"}
    )
    deadline = time.monotonic() + 120
    while current_lock(engine, "shop", "test") is None:
        assert time.monotonic() < deadline, read_run(handle.id)
        assert not read_run(handle.id).final, read_run(handle.id).message
        time.sleep(0.2)
    # refused through the API and the worker too: the run ends Cancelled, "not run"
    second = start_run("git-deploy", {"app": "shop", "env": "test", "ref": "v2"})
    with pytest.raises(CancelledRun, match="not run: shop/test is locked by dave"):
        run_flow(git_deploy, "shop", "test", "v2")
    for _ in follow_run(second.id, poll_s=0.5, timeout_s=180):
        pass
    refused_run = read_run(second.id)
    assert refused_run.state_type == "CANCELLED", refused_run
    assert "not run" in (refused_run.message or "") and "locked by dave" in refused_run.message
    for _ in follow_run(handle.id, poll_s=0.5, timeout_s=180):
        pass
    assert read_run(handle.id).state_type == "COMPLETED"
    assert current_lock(engine, "shop", "test") is None
    row = next(
        r for r in list_releases(engine, "shop", "test", limit=5) if r.flow_run_id == handle.id
    )
    assert row.status == ReleaseStatus.succeeded and row.requested_by == "dave"
    for h in fleet:
        assert_complete(h)
