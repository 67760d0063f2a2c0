"""A release whose payload the artifact store could not keep lives only in its directories on
the hosts: which ids the ledger protects (quayside.ledger.sole_copies), and that every prune -
the deploy's plan, the restore's stage and the rollback switch script - keeps them while
keeping exactly keep_releases of the others (issue 15 item 3)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.deploy import scripts
from quayside.errors import InputError
from quayside.flows.git_deploy_body import kept_sole_copies
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release
from quayside.ledger.sole_copies import PayloadRecord, sole_copies, sole_copy_ids
from quayside.manifest import MANIFEST_FILENAME
from quayside.plans.release import prune_candidates
from quayside.release.host_report import HostReport
from quayside.release_id import new_release_id

R = [f"2024050{d}T120000Z-{c * 12}" for d, c in zip(range(1, 8), "abcdefa", strict=True)]
ROLLBACK = Path(scripts.__file__).with_name("rollback_switch.sh")


def test_only_unstored_not_restorable_releases_are_protected() -> None:
    records = [
        PayloadRecord(R[0], None, True),  # an ordinary stored release
        PayloadRecord(R[1], False, False),  # the store failed: the only copy is on the hosts
        PayloadRecord(R[1], None, False),  # a rollback to it (no payload either)
        PayloadRecord(R[2], False, False),  # the store failed ...
        PayloadRecord(R[2], None, True),  # ... but a later row names a stored payload
        PayloadRecord(R[3], None, False),  # running, or from before restorable was recorded
        PayloadRecord(R[4], True, True),
    ]
    assert sole_copy_ids(records) == {R[1]}
    assert sole_copy_ids([]) == frozenset()


def test_a_protected_release_is_never_pruned_nor_counted() -> None:
    existing = tuple(R[:5])
    new = R[5]
    # without protection: the new, the current and the newest other (keep 3)
    assert prune_candidates(existing, new=new, current=R[4], keep_releases=3) == tuple(R[:3])
    # R[1] protected: kept, and the three others are still exactly three
    assert prune_candidates(existing, new=new, current=R[4], keep_releases=3, protected={R[1]}) == (
        R[0],
        R[2],
    )
    # the protected one is the current (the deploy right after the store failed): it stays
    # and does not count either, so the new one and the newest other stay beside it
    assert prune_candidates(
        existing, new=new, current=R[4], keep_releases=2, protected={R[4]}
    ) == tuple(R[:3])
    # a protected id the host does not have changes nothing
    assert prune_candidates(
        existing, new=new, current=R[4], keep_releases=2, protected={R[6]}
    ) == tuple(R[:4])


def test_the_rollback_switch_takes_protected_ids_as_validated_arguments() -> None:
    argv = scripts.switch_if_complete("/srv/app", R[0], 2, {R[3], R[1]})
    assert argv[4:] == ["/srv/app", R[0], "2", R[1], R[3]]  # data, after the script text
    assert R[1] not in argv[2]
    assert scripts.switch_if_complete("/srv/app", R[0], None, {R[1]})[4:] == ["/srv/app", R[0]]
    with pytest.raises(InputError):
        scripts.switch_if_complete("/srv/app", R[0], 2, {"x; rm -rf /"})


def _releases(root: Path, *ids: str) -> None:
    for rid in ids:
        (root / "releases" / rid).mkdir(parents=True)
        (root / "releases" / rid / MANIFEST_FILENAME).write_text("{}")


@pytest.mark.parametrize(
    ("current", "target", "protected", "left"),
    [
        (5, 3, [1], [1, 3, 4, 5]),  # keep 3 of the others, and the protected one
        (5, 3, [1, 4], [1, 2, 3, 4, 5]),
        (5, 3, [5], [2, 3, 4, 5]),  # the replaced release is protected: not counted
        (5, 1, [1], [1, 3, 4, 5]),  # the target is protected: not counted either
        (5, 3, [], [3, 4, 5]),
    ],
)
def test_a_rollback_prune_keeps_protected_dirs_and_n_others(
    tmp_path: Path, current: int, target: int, protected: list[int], left: list[int]
) -> None:
    root = tmp_path / "root"
    _releases(root, *R[:6])
    os.symlink(f"releases/{R[current]}", root / "current")
    argv = scripts.switch_if_complete(str(root), R[target], 3, {R[i] for i in protected})
    result = subprocess.run(["sh", str(ROLLBACK), *argv[4:]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.readlink(root / "current") == f"releases/{R[target]}"
    wanted = sorted(R[i] for i in left)

    def state() -> list[str]:
        return sorted(p.name for p in (root / "releases").iterdir())

    deadline = time.monotonic() + 20  # pruned in the background, after the answer
    while state() != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state() == wanted


def test_the_run_names_the_protected_dirs_the_hosts_kept() -> None:
    facts = f"current:releases/{R[5]}\nrelease:{R[1]}\nrelease:{R[4]}\nrelease:{R[5]}"
    reports = [
        HostReport("web-1", "succeeded", "done", facts_after=facts),
        HostReport("web-2", "succeeded", "done", facts_after=f"current:releases/{R[5]}"),
        HostReport("web-3", "failed", "stage"),
    ]
    assert kept_sole_copies(reports, {R[1], R[2]}) == {R[1]: ["web-1"]}
    assert kept_sole_copies(reports, set()) == {}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _row(
    engine: Engine,
    rid: str,
    *,
    kind: ReleaseKind = ReleaseKind.deploy,
    location: str | None = None,
    restorable: bool | None = None,
    env: str = "prod",
) -> None:
    row = start_release(
        engine,
        "web",
        env,
        kind,
        requested_by="ann",
        version=rid[-4:],
        artifact_location=location,
        rollback_of_id=1 if kind is ReleaseKind.rollback else None,
        details={"release_id": rid},
    )
    mark_running(engine, row.id)
    finish_release(
        engine,
        row.id,
        ReleaseStatus.succeeded,
        details={} if restorable is None else {"restorable": restorable},
    )


def test_the_ledger_names_the_releases_only_the_hosts_hold(ledger: Engine) -> None:
    assert sole_copies(ledger, "web", "prod") == frozenset()
    _row(ledger, R[0], location="file:///store/a", restorable=True)
    _row(ledger, R[1], restorable=False)  # the store was full
    _row(ledger, R[1], kind=ReleaseKind.rollback)  # rolled back to it: still the only copy
    _row(ledger, R[2], restorable=False)
    _row(ledger, R[2], kind=ReleaseKind.rollback, location="file:///store/c")  # kept since
    _row(ledger, R[3], restorable=False, env="test")  # another environment
    config = start_release(
        ledger, "web", "prod", ReleaseKind.config, requested_by="ann", details={"release_id": R[4]}
    )
    finish_release(ledger, config.id, ReleaseStatus.cancelled, details={"restorable": False})
    new_id = new_release_id("f" * 40, datetime(2026, 12, 1, tzinfo=UTC))
    _row(ledger, new_id)  # recorded before restorable existed
    assert sole_copies(ledger, "web", "prod") == {R[1]}
    assert sole_copies(ledger, "web", "test") == {R[3]}
