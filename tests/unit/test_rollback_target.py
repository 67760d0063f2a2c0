"""Which release ``quayside rollback --to`` goes to (quayside.flows.rollback.choose_target), on a
real SQLite ledger: a version names the newest release of it that served, not the newest row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.errors import InputError, NotFoundError
from quayside.flows.rollback import choose_target
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release
from quayside.release_id import new_release_id


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def release(engine: Engine, version: str, sha: str, status: ReleaseStatus, minute: int) -> int:
    rid = new_release_id(sha * 40, datetime(2026, 12, 1, 10, minute, tzinfo=UTC))
    row = start_release(
        engine,
        "web",
        "prod",
        ReleaseKind.deploy,
        requested_by="ann",
        version=version,
        commit_sha=sha * 40,
        details={"release_id": rid},
    )
    if status is not ReleaseStatus.cancelled:
        mark_running(engine, row.id)
    finish_release(engine, row.id, status)
    return int(row.id)


def test_a_version_names_its_newest_release_that_served(ledger: Engine) -> None:
    served = release(ledger, "v1", "a", ReleaseStatus.succeeded, 1)
    release(ledger, "v2", "b", ReleaseStatus.succeeded, 2)
    release(ledger, "v1", "a", ReleaseStatus.cancelled, 3)  # a later run of v1 that never ran
    release(ledger, "v1", "a", ReleaseStatus.failed, 4)
    current = release(ledger, "v3", "c", ReleaseStatus.succeeded, 5)
    now, dest = choose_target(ledger, "web", "prod", "v1")
    assert (now.id, dest.id) == (current, served)


def test_a_version_that_never_served_is_refused_with_its_status(ledger: Engine) -> None:
    release(ledger, "v1", "a", ReleaseStatus.succeeded, 1)
    release(ledger, "v9", "d", ReleaseStatus.failed, 2)
    release(ledger, "v3", "c", ReleaseStatus.succeeded, 3)
    with pytest.raises(InputError, match=r"\(v9\) is failed; only a release that succeeded"):
        choose_target(ledger, "web", "prod", "v9")


def config_release(engine: Engine, minute: int, version: int | None = None) -> int:
    row = start_release(
        engine,
        "web",
        "prod",
        ReleaseKind.config,
        requested_by="ann",
        version=f"dnsmasq {minute}",
        details={"service": "dnsmasq", "files": {"hosts": {"version": version or minute}}},
    )
    mark_running(engine, row.id)
    finish_release(engine, row.id, ReleaseStatus.succeeded)
    return int(row.id)


def test_a_config_release_after_a_deploy_does_not_hide_the_code_s_current_release(
    ledger: Engine,
) -> None:
    """The code's rollback goes back from the code's current release, whatever config was
    published since; `quayside rollback` picks the kind from the newest release or --to."""
    from quayside.release.rollback_kind import rollback_run

    def kind(to: str | None, asked: str | None) -> str:
        return rollback_run(ledger, "web", "prod", to=to, kind=asked, requested_by="ann").kind

    v1 = release(ledger, "v1", "a", ReleaseStatus.succeeded, 1)
    v2 = release(ledger, "v2", "b", ReleaseStatus.succeeded, 2)
    conf = config_release(ledger, 3)
    now, dest = choose_target(ledger, "web", "prod", None)
    assert (now.id, dest.id) == (v2, v1)
    with pytest.raises(NotFoundError, match="no earlier config release of dnsmasq"):
        kind(None, None)  # the newest is config: its rollback, with nothing earlier to go to
    assert kind(str(v1), None) == "git"
    assert kind(str(conf), None) == "config"
    assert kind(None, "git") == "git"
    with pytest.raises(NotFoundError, match="no succeeded image release"):
        kind(None, "image")
    with pytest.raises(InputError, match="neither git, config nor image"):
        kind(None, "plugin")
    second = config_release(ledger, 4, version=2)
    run = rollback_run(ledger, "web", "prod", to=None, kind=None, requested_by="ann")
    assert (run.kind, run.deployment) == ("config", "config-publish")
    assert run.parameters["versions"] == {"hosts": 3} and run.parameters["rollback_of"] == second


def test_without_to_an_interrupted_release_is_undone_back_to_what_served_before_it(
    ledger: Engine,
) -> None:
    """A run died mid-release (``interrupted``, some hosts on it): `quayside rollback` without
    --to goes back to the current release, the one that served before it - not the one before
    that. Failed and cancelled releases after it change nothing; a later success ends it."""
    from quayside.ledger.release_interruptions import mark_interrupted

    def interrupted(version: str, sha: str, minute: int) -> int:
        rid = new_release_id(sha * 40, datetime(2026, 12, 1, 10, minute, tzinfo=UTC))
        row = start_release(
            ledger, "web", "prod", ReleaseKind.deploy, requested_by="ann", version=version,
            commit_sha=sha * 40, details={"release_id": rid},
        )  # fmt: skip
        mark_running(ledger, row.id)
        mark_interrupted(ledger, row.id, [], actor="reconcile:test", reason="run crashed")
        return int(row.id)

    release(ledger, "v1", "a", ReleaseStatus.succeeded, 1)
    v3 = release(ledger, "v3", "c", ReleaseStatus.succeeded, 2)
    split = interrupted("v2", "b", 3)
    release(ledger, "v4", "d", ReleaseStatus.failed, 4)  # switched back: changed nothing
    release(ledger, "v4", "d", ReleaseStatus.cancelled, 5)
    now, dest = choose_target(ledger, "web", "prod", None)
    assert (now.id, dest.id) == (split, v3)
    now, dest = choose_target(ledger, "web", "prod", "v1")  # --to is as asked
    assert dest.version == "v1"
    v5 = release(ledger, "v5", "e", ReleaseStatus.succeeded, 6)  # converged by a deploy
    now, dest = choose_target(ledger, "web", "prod", None)
    assert (now.id, dest.id) == (v5, v3)
