"""The prune on real sshd hosts with the ids the ledger protects: a release recorded not
restorable (its payload never reached the artifact store) keeps its directory through deploys
and a rollback while exactly keep_releases of the others stay; once the ledger names a stored
payload for it, the next deploy prunes it like any other (issue 15 item 3). The flow-level
test with a full artifact store is tests/platform/test_prune_sole_copy.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.host_rollback import rollback_host
from quayside.deploy.release_spec import ReleaseSpec, RollbackSpec
from quayside.executors import SSHExecutor
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release
from quayside.ledger.sole_copies import sole_copies
from quayside.manifest import build_manifest
from testbed.release_fixtures import release_ids
from testbed.rollback_prune import wait_for_rollback_prune
from testbed.sshd import SshdFleet, SshdHost

pytestmark = pytest.mark.ssh

IDS = [f"2024050{d}T120000Z-{c * 12}" for d, c in zip(range(1, 8), "abcdef0", strict=True)]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def record(engine: Engine, rid: str, *, stored: bool) -> None:
    """A finished deploy as git deploy records it: a store failure clears the location and
    says ``restorable: false``."""
    row = start_release(
        engine,
        "web",
        "prod",
        ReleaseKind.deploy,
        requested_by="ann",
        version=rid[-4:],
        artifact_location=f"file:///store/{rid}" if stored else None,
        details={"release_id": rid},
    )
    mark_running(engine, row.id)
    finish_release(engine, row.id, ReleaseStatus.succeeded, details={"restorable": stored})


def executor(host: SshdHost) -> SSHExecutor:
    return SSHExecutor(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        key_file=host.key_file,
        known_hosts=host.known_hosts,
    )


def deploy(
    fleet: list[SshdHost], tmp_path: Path, rid: str, protected: frozenset[str], keep: int = 2
) -> list[tuple[str, str | None]]:
    payload = tmp_path / rid
    payload.mkdir()
    (payload / "index.php").write_text(rid)
    reports = []
    for host in fleet:
        spec = ReleaseSpec(
            app="web",
            env="prod",
            release_id=rid,
            commit_sha=rid[-12:] * 3,
            ref=rid,
            payload_dir=payload,
            manifest=build_manifest(payload),
            deploy_root=str(host.root),
            keep_releases=keep,
            protected=protected,
        )
        with executor(host) as ex:
            report = deploy_host(ex, host.name, spec)
        assert report.status == "succeeded", report
        reports.append((host.name, report.facts_after))
    return reports


def test_a_release_only_the_hosts_hold_survives_deploys_and_rollbacks(
    clean_ssh_fleet: SshdFleet, tmp_path: Path, ledger: Engine
) -> None:
    fleet = list(clean_ssh_fleet)[:2]
    deploy(fleet, tmp_path, IDS[0], sole_copies(ledger, "web", "prod"))
    record(ledger, IDS[0], stored=True)
    deploy(fleet, tmp_path, IDS[1], sole_copies(ledger, "web", "prod"))
    record(ledger, IDS[1], stored=False)  # the artifact store was full
    for n in (2, 3, 4):
        protected = sole_copies(ledger, "web", "prod")
        assert protected == {IDS[1]}
        reports = deploy(fleet, tmp_path, IDS[n], protected)
        record(ledger, IDS[n], stored=True)
        others = sorted({IDS[0], *IDS[2 : n + 1]})[-2:]  # keep_releases of the others
        for host in fleet:
            assert release_ids(host) == sorted([IDS[1], *others]), (host.name, n)
        for _, facts in reports:  # what the run reads back to name the kept directories
            assert facts is not None and f"release:{IDS[1]}" in facts

    # one more release while keep_releases is 3: IDS[3] stays on, so the rollback below must
    # prune an unprotected directory
    deploy(fleet, tmp_path, IDS[5], sole_copies(ledger, "web", "prod"), keep=3)
    record(ledger, IDS[5], stored=True)
    for host in fleet:
        assert release_ids(host) == sorted([IDS[1], IDS[3], IDS[4], IDS[5]]), host.name

    # a rollback to IDS[4]: its prune (in the background) deletes IDS[3] and keeps IDS[1]
    for host in fleet:
        spec = RollbackSpec(
            app="web",
            env="prod",
            release_id=IDS[4],
            commit_sha=IDS[4][-12:] * 3,
            ref=IDS[4],
            deploy_root=str(host.root),
            keep_releases=2,
            protected=sole_copies(ledger, "web", "prod"),
        )
        with executor(host) as ex:
            report = rollback_host(ex, host.name, spec, fetch_payload=lambda: tmp_path)
        assert report.status == "succeeded", report
    # the prune deletes oldest first: were IDS[1] unprotected, it would go before IDS[3]
    deadline = time.monotonic() + 30
    while any(IDS[3] in release_ids(h) for h in fleet) and time.monotonic() < deadline:
        time.sleep(0.05)
    wait_for_rollback_prune(h.root for h in fleet)
    for host in fleet:
        assert release_ids(host) == sorted([IDS[1], IDS[4], IDS[5]]), host.name

    # once the ledger names a stored payload for it, it is pruned like any other
    record(ledger, IDS[1], stored=True)
    assert sole_copies(ledger, "web", "prod") == frozenset()
    deploy(fleet, tmp_path, IDS[6], frozenset())
    for host in fleet:
        assert release_ids(host) == sorted([IDS[4], IDS[6]])
