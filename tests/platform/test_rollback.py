"""rollback end to end: to the previous release, to a named version, after the target was
pruned (restored from the artifact store); a rollback pauses automatic triggers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from prefect.exceptions import CancelledRun

from quayside.flows.git_deploy import git_deploy
from quayside.flows.rollback import rollback
from quayside.ledger.environments import auto_triggers_paused, resume_auto_triggers
from quayside.ledger.locks import acquire, release
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases
from quayside.settings import load_settings
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


def test_rollback_to_previous_then_to_version_then_after_prune(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    # earlier tests deployed shop/test on this platform too: start a new delta chain, so that
    # v1 is stored whole and v2 as a delta of it (a chain at its maximum depth starts anew)
    shutil.rmtree(load_settings().payloads_dir / "shop", ignore_errors=True)
    hook = 'echo "$QUAYSIDE_RELEASE" >> "$QUAYSIDE_DEPLOY_ROOT/post.log"'
    write_inventory(
        platform_inventory,
        fleet,
        repo,
        app={"keep_releases": 2, "hooks": {"post_switch": [hook]}},
    )
    ids = {v: run_flow(git_deploy, "shop", "test", v)["release_id"] for v in ("v1", "v2")}

    back = run_flow(rollback, "shop", "test", requested_by="bob")
    assert back["release_id"] == ids["v1"]
    for h in fleet:
        assert current_id(h) == ids["v1"]
        assert_complete(h)
        assert (h.root / "post.log").read_text().splitlines()[-1] == ids["v1"]
    engine = ledger()
    row = get_release(engine, back["release"])
    assert row.kind == ReleaseKind.rollback and row.status == ReleaseStatus.succeeded
    assert row.requested_by == "bob" and row.version == "v1"
    assert get_release(engine, row.rollback_of_id or 0).status == ReleaseStatus.rolled_back
    paused = auto_triggers_paused(engine, "shop", "test")
    assert paused is not None and "bob" in paused
    resume_auto_triggers(engine, "shop", "test", actor="bob")

    # to a named version (the v2 release is rolled_back now, still a valid target)
    fwd = run_flow(rollback, "shop", "test", to="v2")
    assert all(current_id(h) == ids["v2"] for h in fleet)

    # deploy v3 twice more so that v1's directory is pruned everywhere, then roll back to it
    ids["v3"] = run_flow(git_deploy, "shop", "test", "v3")["release_id"]
    repo.commit({"new.txt": "4\n"}, tag="v4")
    ids["v4"] = run_flow(git_deploy, "shop", "test", "v4")["release_id"]
    for h in fleet:
        assert ids["v1"] not in release_ids(h)
    shutil.rmtree(fleet[0].root / "shared", ignore_errors=True)
    restored = run_flow(rollback, "shop", "test", to="v1")
    assert sorted(restored["restored"]) == [h.name for h in fleet]
    for h in fleet:
        assert current_id(h) == ids["v1"]
        assert (h.root / "current" / "index.php").read_text() == "<?php echo 'v1';\n"
        assert_complete(h)
    assert fwd["to"] != restored["to"]
    kinds = [r.kind for r in list_releases(engine, "shop", "test", limit=6)]
    assert kinds[0] == ReleaseKind.rollback

    # v2's payload was stored as a delta of v1's; restoring it (pruned too) replays the chain
    v2_row = get_release(engine, fwd["to"])
    v1_row = get_release(engine, restored["to"])
    assert (v2_row.details or {}).get("artifact_base") == (v1_row.details or {})["artifact_key"]
    for h in fleet:  # gone from the hosts (pruned by keep_releases: 2 already, or by hand)
        shutil.rmtree(h.root / "releases" / ids["v2"], ignore_errors=True)
        assert ids["v2"] not in release_ids(h)
    again = run_flow(rollback, "shop", "test", to="v2")
    assert sorted(again["restored"]) == [h.name for h in fleet]
    for h in fleet:
        assert current_id(h) == ids["v2"]
        assert_complete(h)

    # refused while another run holds the lock: recorded as not run, the run ends Cancelled
    acquire(engine, "shop", "test", "carol (flow run x)", flow_run_id="other", version="v9")
    try:
        with pytest.raises(CancelledRun, match="not run: shop/test is locked by carol"):
            run_flow(rollback, "shop", "test")
    finally:
        release(engine, "shop", "test", flow_run_id="other")
    refused = list_releases(engine, "shop", "test", limit=1)[0]
    assert refused.kind == ReleaseKind.rollback and refused.status == ReleaseStatus.cancelled
    assert (refused.summary or {})["result"] == "not run" and refused.hosts == []
    assert "locked by carol (flow run x) deploying v9" in (refused.summary or {})["reason"]
    assert all(current_id(h) == ids["v2"] for h in fleet)
