"""git-deploy end to end on real sshd hosts, real git repos and rsync, with the flow running
in-process against the session platform's Prefect API (and once through the API + worker)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from quayside.deploy.errors import ThresholdExceeded
from quayside.flows.git_deploy import git_deploy
from quayside.ledger.models import HostStatus, ReleaseStatus
from quayside.ledger.release_queries import list_releases
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

HOOK_LOG = (
    'echo "$QUAYSIDE_APP $QUAYSIDE_ENV $QUAYSIDE_RELEASE $QUAYSIDE_REF"'
    ' >> "$QUAYSIDE_DEPLOY_ROOT/hooks.log"'
)


def test_first_then_one_changed_file_then_no_change(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(
        platform_inventory,
        fleet,
        repo,
        app={"shared_paths": ["storage/logs"], "hooks": {"post_switch": [HOOK_LOG]}},
    )
    first = run_flow(git_deploy, "shop", "test", "v1", requested_by="alice")
    assert first["result"] == "deployed"
    rid1 = first["release_id"]
    for h in fleet:
        assert current_id(h) == rid1
        assert_complete(h)
        assert (h.root / "current" / "we'ird $(touch pwned) name.txt").read_text() == "quoted\n"
        assert os.readlink(h.root / "current" / "storage/logs") == str(
            h.root / "shared/storage/logs"
        )
        assert (h.root / "hooks.log").read_text() == f"shop test {rid1} v1\n"
    assert not Path("pwned").exists()

    second = run_flow(git_deploy, "shop", "test", "v2", requested_by="alice")
    rid2 = second["release_id"]
    for h in fleet:
        assert current_id(h) == rid2
        assert_complete(h)
        old, new = h.root / "releases" / rid1, h.root / "releases" / rid2
        assert (new / "index.php").read_text() == "<?php echo 'v2';\n"
        # unchanged files are hard links to the previous release; the changed one is not
        assert (new / "static/app.css").stat().st_ino == (old / "static/app.css").stat().st_ino
        assert (new / "index.php").stat().st_ino != (old / "index.php").stat().st_ino
        assert (old / "index.php").read_text() == "<?php echo 'v1';\n"
        assert second["bytes_sent"][h.name] < 20_000  # one small file + the manifest
    again = run_flow(git_deploy, "shop", "test", "v2")
    assert again["result"] == "no change"
    assert all(current_id(h) == rid2 for h in fleet)

    rows = list_releases(ledger(), "shop", "test", limit=3)
    assert [r.status for r in rows] == [
        ReleaseStatus.cancelled,  # the no-change run
        ReleaseStatus.succeeded,
        ReleaseStatus.succeeded,
    ]
    assert rows[1].version == "v2" and rows[1].commit_sha and rows[1].manifest_digest
    assert rows[1].artifact_location and rows[1].requested_by == "alice"
    assert {h.host: h.status for h in rows[1].hosts} == {
        h.name: HostStatus.succeeded for h in fleet
    }
    assert all((h.bytes_sent or 0) < 20_000 for h in rows[1].hosts)


def test_dry_run_touches_nothing(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    before = len(list_releases(ledger(), "shop", "test", limit=100))
    plan = run_flow(git_deploy, "shop", "test", "v3", dry_run=True)
    assert plan["result"] == "planned"
    text = plan["hosts"]["web-1"]
    assert "~ index.php" in text and "+ new.txt" in text
    for h in fleet:
        assert current_id(h) == rid1
        assert release_ids(h) == [rid1]
    assert len(list_releases(ledger(), "shop", "test", limit=100)) == before


def test_health_check_failure_past_threshold_rolls_every_host_back(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    health = {"command": '! test -e "$QUAYSIDE_DEPLOY_ROOT/sick"', "retries": 1, "interval_s": 0}
    write_inventory(platform_inventory, fleet, repo, app={"health_check": health})
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    (fleet[1].root / "sick").touch()
    with pytest.raises(ThresholdExceeded) as info:
        run_flow(git_deploy, "shop", "test", "v2")
    assert "web-2 [health]" in str(info.value)
    for h in fleet:
        assert current_id(h) == rid1
        assert_complete(h)
    row = list_releases(ledger(), "shop", "test", limit=1)[0]
    assert row.status == ReleaseStatus.failed
    statuses = {h.host: (h.status, h.step) for h in row.hosts}
    assert statuses["web-2"] == (HostStatus.failed, "health")
    assert statuses["web-1"][0] == HostStatus.rolled_back


def test_below_threshold_finishes_and_reports_failed_host(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    health = {"command": '! test -e "$QUAYSIDE_DEPLOY_ROOT/sick"', "retries": 0}
    write_inventory(
        platform_inventory, fleet, repo, app={"health_check": health}, env={"failure_threshold": 1}
    )
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    (fleet[2].root / "sick").touch()
    out = run_flow(git_deploy, "shop", "test", "v2")
    assert out["failed"] == ["web-3"]
    assert current_id(fleet[2]) == rid1  # switched back after its health check failed
    assert current_id(fleet[0]) == current_id(fleet[1]) == out["release_id"]
    for h in fleet:
        assert_complete(h)
    row = list_releases(ledger(), "shop", "test", limit=1)[0]
    assert row.status == ReleaseStatus.succeeded
    assert row.summary and row.summary["failed"] == 1


def test_batches_and_prune(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo, app={"keep_releases": 2}, env={"batch": 1})
    versions = ("v1", "v2", "v3", "v1")
    ids = [run_flow(git_deploy, "shop", "test", v)["release_id"] for v in versions]
    for h in fleet:
        # keep_releases=2: exactly two stay, the new release and the one it replaced
        assert release_ids(h) == ids[2:]
        assert current_id(h) == ids[3]
        assert_complete(h)


def test_large_changes_stream_one_tar_per_deploy_through_openssh(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Changes above the inline limit (0 here, so every change) are written to one tar file
    per deploy and streamed to every host through OpenSSH in the same single stage round
    trip; the same releases result, and the tar is gone when the run ends."""
    from quayside.settings import load_settings

    monkeypatch.setenv("QUAYSIDE_DEPLOY_INLINE_MAX_BYTES", "0")
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo, app={"shared_paths": ["storage/logs"]})
    first = run_flow(git_deploy, "shop", "test", "v1")
    second = run_flow(git_deploy, "shop", "test", "v2")
    for h in fleet:
        assert current_id(h) == second["release_id"]
        assert_complete(h)
        old = h.root / "releases" / first["release_id"]
        new = h.root / "releases" / second["release_id"]
        assert (new / "static/app.css").stat().st_ino == (old / "static/app.css").stat().st_ino
        assert (new / "index.php").read_text() == "<?php echo 'v2';\n"
        assert second["bytes_sent"][h.name] < 20_000
    latest = list_releases(ledger(), "shop", "test", limit=1)[0]
    assert latest.status == ReleaseStatus.succeeded
    assert sorted(h.host for h in latest.hosts) == sorted(h.name for h in fleet)
    assert all(h.bytes_sent and h.bytes_sent < 20_000 for h in latest.hosts)
    builds = load_settings().home / "builds"
    # the stream directory goes with the build dir, in a removal that may outlive the run
    deadline = time.monotonic() + 60
    while list(builds.glob("*.stream")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(builds.glob("*.stream")), list(builds.iterdir())
