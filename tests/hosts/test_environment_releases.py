"""The listing ``quayside releases`` reads without the ORM (quayside.ledger.environment_releases)
gives what the ledger's own queries give (list_releases, current_release), on SQLite through
the standard library and on PostgreSQL through SQLAlchemy; and the CLI prints it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from quayside.ledger.db import make_engine
from quayside.ledger.environment_releases import ListedRelease, list_environment, sqlite_path
from quayside.ledger.models import Release, ReleaseKind, ReleaseStatus
from quayside.ledger.release_interruptions import mark_interrupted
from quayside.ledger.release_queries import current_release, list_releases
from quayside.ledger.releases import finish_release, mark_running, start_release
from testbed.platform import PROJECT_DIR

FLEET = {"hosts": 3, "fleet": [["v1.2", 2], ["v1.1", 1]]}


def _same(listed: ListedRelease, release: Release) -> None:
    assert (listed.id, listed.kind, listed.status) == (
        release.id,
        release.kind.value,
        release.status.value,
    )
    assert (listed.version, listed.commit_sha, listed.requested_by) == (
        release.version,
        release.commit_sha,
        release.requested_by,
    )
    assert listed.created_at == release.created_at and listed.created_at is not None
    assert listed.created_at.utcoffset() is not None and listed.summary == release.summary


def _release(engine: object, version: str, status: ReleaseStatus, **kw: object) -> int:
    r = start_release(
        engine, "shop", "prod", ReleaseKind.deploy, requested_by="dev", version=version,
        commit_sha="ab" * 20, **kw,
    )  # fmt: skip
    mark_running(engine, r.id)
    if status == ReleaseStatus.interrupted:
        mark_interrupted(engine, r.id, [], actor="reconcile:test", reason="crashed", summary=FLEET)
    else:
        finish_release(engine, r.id, status)
    return r.id


def test_listing_matches_the_ledger_queries(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        _release(engine, "v1.0", ReleaseStatus.succeeded)
        newest_good = _release(engine, "v1.1", ReleaseStatus.succeeded)
        for i in range(4):
            _release(engine, f"v1.{i + 2}", ReleaseStatus.failed)
        _release(engine, "v1.9", ReleaseStatus.interrupted)
        other = start_release(engine, "shop", "test", ReleaseKind.config, requested_by="ops")

        listing = list_environment(ledger_url, "shop", "prod", limit=3)
        expected = list_releases(engine, "shop", "prod", limit=3, with_hosts=False)
        assert [r.id for r in listing.releases] == [r.id for r in expected]
        for listed, release in zip(listing.releases, expected, strict=True):
            _same(listed, release)
        assert listing.releases[0].summary == FLEET
        # nothing listed succeeded: the current release is older than the page
        current = current_release(engine, "shop", "prod")
        assert current is not None and listing.current is not None
        _same(listing.current, current)
        assert listing.current.id == newest_good

        whole = list_environment(ledger_url, "shop", "prod", limit=50)
        assert whole.current is not None and whole.current.id == current.id
        assert [r.id for r in whole.releases] == [
            r.id for r in list_releases(engine, "shop", "prod", limit=50, with_hosts=False)
        ]
        assert other.id not in [r.id for r in whole.releases]  # shop/test's
        nothing = list_environment(ledger_url, "shop", "nope")
        assert nothing.releases == [] and nothing.current is None
    finally:
        engine.dispose()


def test_sqlite_path_only_for_plain_sqlite_urls(tmp_path: Path) -> None:
    assert sqlite_path(f"sqlite:///{tmp_path}/ledger.db") == tmp_path / "ledger.db"
    assert sqlite_path(f"sqlite+pysqlite:///{tmp_path}/ledger.db") == tmp_path / "ledger.db"
    for other in (
        "sqlite://",
        "sqlite:///:memory:",
        f"sqlite:///{tmp_path}/ledger.db?timeout=3",
        "postgresql+psycopg://u:p@127.0.0.1:5432/ledger",
    ):
        assert sqlite_path(other) is None, other


def test_cli_prints_the_listing(ledger_url: str, tmp_path: Path) -> None:
    engine = make_engine(ledger_url)
    try:
        first = _release(engine, "v1.0", ReleaseStatus.succeeded)
        broken = _release(engine, "v1.1", ReleaseStatus.interrupted)
    finally:
        engine.dispose()
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QUAYSIDE_"))}
    env.update({"QUAYSIDE_HOME": str(home), "QUAYSIDE_DATABASE_URL": ledger_url})
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "releases", "shop", "prod"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "v1." in line]
    assert len(rows) == 2, done.stdout
    cells = [[c.strip() for c in row.split("│")[1:-1]] for row in rows]
    assert cells[0][1:4] == [str(broken), "deploy", "v1.1"]
    assert cells[0][7] == "interrupted: 2 of 3 hosts on v1.2, 1 on v1.1"
    assert cells[1][:4] == ["*", str(first), "deploy", "v1.0"]
    assert cells[1][4:6] == ["abababababab", "dev"] and cells[1][7] == "succeeded"
