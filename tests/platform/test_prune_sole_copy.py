"""A release the artifact store could not keep lives only in its directories on the hosts:
later deploys and rollbacks prune to exactly keep_releases of the others and leave it, and
the run says so (issue 15 item 3). Real sshd hosts, the real flows, the store on a full
tmpfs for that one release. Each rollback starts from a state its prune must change (a
directory to delete, or one that only stays because the protected release is not counted) and
the test waits for the prune to end before it looks."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from quayside.flows.git_deploy import git_deploy
from quayside.flows.rollback import rollback
from quayside.ledger.environments import resume_auto_triggers
from quayside.ledger.release_queries import get_release, list_releases
from quayside.ledger.sole_copies import SOLE_COPY_REASON
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
from testbed.rollback_prune import wait_for_rollback_prune
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]


def _wait_for_prune(fleet: SshdFleet, gone: str | None = None) -> None:
    """A rollback prunes in the background after the hosts answered: wait until ``gone`` has
    been deleted on every host, then until the prune has ended there."""
    deadline = time.monotonic() + 30
    while gone and any(gone in release_ids(h) for h in fleet) and time.monotonic() < deadline:
        time.sleep(0.05)
    wait_for_rollback_prune(h.root for h in fleet)


def test_a_release_without_a_stored_payload_survives_every_prune(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo, app={"keep_releases": 2})
    ids = {"v1": run_flow(git_deploy, "shop", "test", "v1")["release_id"]}

    # the store is a full 1 MiB tmpfs for this release only: it is not restorable
    repo.commit({"big.bin": os.urandom(3 * 1024 * 1024)}, tag="big")
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(store)], check=True)
    try:
        with monkeypatch.context() as m:
            m.setenv("QUAYSIDE_ARTIFACTS_URL", f"file://{store}")
            big = run_flow(git_deploy, "shop", "test", "big")
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)
    ids["big"] = big["release_id"]
    engine = ledger()
    assert get_release(engine, big["release"]).details["restorable"] is False

    for n in (4, 5, 6):
        repo.commit({"index.php": f"<?php echo 'v{n}';\n"}, tag=f"v{n}")
        ids[f"v{n}"] = run_flow(git_deploy, "shop", "test", f"v{n}")["release_id"]
        newest = [ids[v] for v in ("v1", "v4", "v5", "v6") if v in ids][-2:]
        for h in fleet:  # exactly keep_releases of the others, and the only copy of big
            assert release_ids(h) == sorted([ids["big"], *newest]), (h.name, n)
            assert current_id(h) == ids[f"v{n}"]
            assert_complete(h)

    row = list_releases(engine, "shop", "test", limit=1)[0]
    kept = row.summary["kept"]
    assert kept == {"releases": {ids["big"]: [h.name for h in fleet]}, "why": SOLE_COPY_REASON}

    # one more release while keep_releases is 3 (v5 stays on), so that the rollback's prune
    # (in the background, after the hosts answered) has an unprotected directory to delete
    write_inventory(platform_inventory, fleet, repo, app={"keep_releases": 3})
    repo.commit({"index.php": "<?php echo 'v7';\n"}, tag="v7")
    ids["v7"] = run_flow(git_deploy, "shop", "test", "v7")["release_id"]
    for h in fleet:
        assert release_ids(h) == sorted([ids["big"], ids["v5"], ids["v6"], ids["v7"]]), h.name
    write_inventory(platform_inventory, fleet, repo, app={"keep_releases": 2})

    back = run_flow(rollback, "shop", "test", requested_by="bob")
    assert back["release_id"] == ids["v6"]
    # the prune deletes oldest first: were big unprotected, it would go before v5
    _wait_for_prune(fleet, gone=ids["v5"])
    for h in fleet:
        assert release_ids(h) == sorted([ids["big"], ids["v6"], ids["v7"]]), h.name
    resume_auto_triggers(engine, "shop", "test", actor="bob")
    summary = get_release(engine, back["release"]).summary
    # what the prune was told to keep: big, and any other sole copy the shared platform's
    # ledger knows for shop/test from earlier tests (not on these clean hosts)
    assert ids["big"] in summary["protected"]["releases"]
    assert summary["protected"]["why"] == SOLE_COPY_REASON
    assert "kept" not in summary

    # to the protected release itself: it is not counted in keep_releases either, so beside it
    # v6 (what current pointed at) and one other (v7) stay; counted, v7 would be deleted
    to_big = run_flow(rollback, "shop", "test", to="big", requested_by="bob")
    assert to_big["restored"] == []  # served from the hosts' own copy
    _wait_for_prune(fleet)
    for h in fleet:
        assert release_ids(h) == sorted([ids["big"], ids["v6"], ids["v7"]]), h.name
        assert current_id(h) == ids["big"]
        assert_complete(h)
