"""Releases: the full lifecycle with per-host outcomes and audit events, current/previous
queries, rollbacks, refused transitions, and all-or-nothing transactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from quayside.errors import InputError, LedgerError, NotFoundError
from quayside.ledger import audit, environments, release_queries, releases
from quayside.ledger.db import session_scope
from quayside.ledger.models import (
    AuditEvent,
    HostStatus,
    Release,
    ReleaseKind,
    ReleaseStatus,
)


def _counts(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(Release)) or 0,
            s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


def _deploy(engine: Engine, version: str, status: ReleaseStatus = ReleaseStatus.succeeded) -> int:
    release = releases.start_release(
        engine, "web", "prod", ReleaseKind.deploy, requested_by="ann", version=version
    )
    releases.mark_running(engine, release.id)
    releases.finish_release(engine, release.id, status)
    return release.id


def test_full_lifecycle(ledger_engine: Engine) -> None:
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    release = releases.start_release(
        ledger_engine,
        "web",
        "prod",
        "deploy",
        requested_by="ann",
        version="v1.2.0",
        ref="refs/tags/v1.2.0",
        commit_sha="a" * 40,
        flow_run_id="run-1",
        artifact_location="/var/lib/quayside/artifacts/web/v1.2.0.tar.gz",
        manifest_digest="sha256:" + "b" * 64,
        summary={"hosts": 2},
    )
    assert release.status is ReleaseStatus.pending
    assert (release.app_name, release.env_name) == ("web", "prod")
    assert release.previous_release_id is None

    releases.mark_running(ledger_engine, release.id, actor="flow-run:run-1", at=t0)
    releases.record_host_outcome(
        ledger_engine, release.id, "web-1", HostStatus.running, step="upload", started_at=t0
    )
    releases.record_host_outcome(
        ledger_engine,
        release.id,
        "web-1",
        "succeeded",
        step="health",
        bytes_sent=1234,
        duration_s=2.5,
        finished_at=t0 + timedelta(seconds=3),
    )
    releases.record_host_outcome(
        ledger_engine, release.id, "web-2", HostStatus.failed, step="switch", message="exit 1"
    )
    done = releases.finish_release(
        ledger_engine,
        release.id,
        ReleaseStatus.succeeded,
        details={"failed_hosts": ["web-2"]},
        at=t0 + timedelta(minutes=1),
    )
    assert done.status is ReleaseStatus.succeeded

    loaded = release_queries.get_release(ledger_engine, release.id)
    assert loaded.started_at == t0
    assert loaded.finished_at == t0 + timedelta(minutes=1)
    assert loaded.finished_at is not None and loaded.finished_at.tzinfo is not None
    assert loaded.summary == {"hosts": 2}
    assert loaded.details == {"failed_hosts": ["web-2"]}
    hosts = {h.host: h for h in loaded.hosts}
    assert set(hosts) == {"web-1", "web-2"}  # one row per host, the latest outcome wins
    assert hosts["web-1"].status is HostStatus.succeeded
    assert hosts["web-1"].step == "health"
    assert hosts["web-1"].started_at == t0
    assert hosts["web-1"].bytes_sent == 1234
    assert hosts["web-1"].duration_s == 2.5
    assert hosts["web-2"].message == "exit 1"

    events = audit.list_events(ledger_engine, subject_type="release", subject_id=release.id)
    assert [e.action for e in reversed(events)] == [
        "release.started",
        "release.running",
        "release.host_outcome",
        "release.host_outcome",
        "release.host_outcome",
        "release.finished",
    ]
    assert events[-1].actor == "ann"
    assert events[-1].details is not None and events[-1].details["version"] == "v1.2.0"
    assert events[-1].details["created_environment"] is True
    current = release_queries.current_release(ledger_engine, "web", "prod")
    assert current is not None and current.id == loaded.id


def test_current_and_rollback(ledger_engine: Engine) -> None:
    assert release_queries.current_release(ledger_engine, "web", "prod") is None
    first = _deploy(ledger_engine, "v1")
    _deploy(ledger_engine, "v2-broken", ReleaseStatus.failed)
    second = _deploy(ledger_engine, "v2")
    # another environment and another app do not count
    releases.start_release(ledger_engine, "web", "staging", "deploy", requested_by="ann")
    releases.start_release(ledger_engine, "api", "prod", "deploy", requested_by="ann")

    current = release_queries.current_release(ledger_engine, "web", "prod")
    assert current is not None and current.id == second
    assert current.previous_release_id == first  # the failed one never became current

    rollback = releases.start_release(
        ledger_engine,
        "web",
        "prod",
        ReleaseKind.rollback,
        requested_by="bob",
        version="v1",
        rollback_of_id=second,
    )
    assert rollback.previous_release_id == second
    releases.mark_running(ledger_engine, rollback.id)
    releases.finish_release(ledger_engine, rollback.id, ReleaseStatus.succeeded)

    assert release_queries.get_release(ledger_engine, second).status is ReleaseStatus.rolled_back
    current = release_queries.current_release(ledger_engine, "web", "prod")
    assert current is not None and current.id == rollback.id

    listed = release_queries.list_releases(ledger_engine, "web", "prod", limit=10)
    assert [r.version for r in listed] == ["v1", "v2", "v2-broken", "v1"]
    assert len(release_queries.list_releases(ledger_engine, "web", "prod", limit=2)) == 2
    failed = release_queries.list_releases(
        ledger_engine, "web", "prod", status=ReleaseStatus.failed
    )
    assert [r.version for r in failed] == ["v2-broken"]

    by_version = release_queries.get_release(ledger_engine, "v1", app="web", env="prod")
    assert by_version.id == rollback.id  # the newest release with that label
    assert release_queries.get_release(ledger_engine, str(first)).id == first


def test_refused_transitions_and_inputs(ledger_engine: Engine) -> None:
    release_id = _deploy(ledger_engine, "v1")
    with pytest.raises(LedgerError, match="already finished as succeeded"):
        releases.finish_release(ledger_engine, release_id, ReleaseStatus.failed)
    with pytest.raises(LedgerError, match="cannot start running"):
        releases.mark_running(ledger_engine, release_id)
    with pytest.raises(InputError, match="not a final status"):
        releases.finish_release(ledger_engine, release_id, ReleaseStatus.running)
    with pytest.raises(InputError, match="unknown release kind"):
        releases.start_release(ledger_engine, "web", "prod", "teleport", requested_by="ann")
    with pytest.raises(InputError, match="rollback_of_id"):
        releases.start_release(ledger_engine, "web", "prod", "rollback", requested_by="ann")
    with pytest.raises(NotFoundError, match="not a release of web/staging"):
        releases.start_release(
            ledger_engine, "web", "staging", "rollback", requested_by="a", rollback_of_id=release_id
        )
    with pytest.raises(NotFoundError):
        release_queries.get_release(ledger_engine, 999)
    with pytest.raises(NotFoundError):
        release_queries.get_release(ledger_engine, "v9", app="web", env="prod")
    with pytest.raises(InputError, match="needs the app and env"):
        release_queries.get_release(ledger_engine, "v1")
    with pytest.raises(NotFoundError):
        releases.record_host_outcome(ledger_engine, 999, "web-1", "failed")
    assert _counts(ledger_engine) == (1, 3)


def test_failure_inside_a_function_leaves_nothing(ledger_engine: Engine) -> None:
    # the new app and environment are flushed first, then the rollback target turns out not
    # to exist: the app and environment roll back with the rest
    with pytest.raises(NotFoundError, match="release 999"):
        releases.start_release(
            ledger_engine, "web", "prod", "rollback", requested_by="ann", rollback_of_id=999
        )
    assert _counts(ledger_engine) == (0, 0)
    with session_scope(ledger_engine) as s:
        assert environments.find_environment(s, "web", "prod") is None


def test_failure_midway_through_a_caller_transaction_leaves_nothing(ledger_engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="host exploded"), session_scope(ledger_engine) as s:
        release = releases.start_release(s, "web", "prod", "deploy", requested_by="ann")
        releases.mark_running(s, release.id)
        assert release.id is not None
        raise RuntimeError("host exploded")
    assert _counts(ledger_engine) == (0, 0)


def test_database_error_midway_rolls_back_earlier_steps(ledger_engine: Engine) -> None:
    with pytest.raises(LedgerError, match="refused"), session_scope(ledger_engine) as s:
        release = releases.start_release(s, "web", "prod", "deploy", requested_by="ann")
        # the release_hosts foreign key refuses an unknown release at flush
        s.add(releases.ReleaseHost(release_id=release.id + 100, host="h", status="failed"))
    assert _counts(ledger_engine) == (0, 0)


def test_naive_datetimes_are_refused(ledger_engine: Engine) -> None:
    release = releases.start_release(ledger_engine, "web", "prod", "deploy", requested_by="ann")
    with pytest.raises(LedgerError, match="naive datetime"):
        releases.mark_running(ledger_engine, release.id, at=datetime(2026, 1, 1))
    assert release_queries.get_release(ledger_engine, release.id).status is ReleaseStatus.pending


def test_pause_and_resume_auto_triggers(ledger_engine: Engine) -> None:
    assert environments.auto_triggers_paused(ledger_engine, "web", "prod") is None
    with pytest.raises(NotFoundError, match="web/prod"):
        environments.pause_auto_triggers(ledger_engine, "web", "prod", actor="ann", reason="freeze")
    environments.ensure_app_env(ledger_engine, "web", "prod", actor="ann")
    environments.ensure_app_env(ledger_engine, "web", "prod", actor="ann")  # no change
    paused = environments.pause_auto_triggers(
        ledger_engine, "web", "prod", actor="ann", reason="release freeze until Monday"
    )
    assert paused.auto_triggers_paused and paused.paused_by == "ann"
    message = environments.auto_triggers_paused(ledger_engine, "web", "prod")
    assert message is not None
    assert "paused by ann" in message and "release freeze until Monday" in message
    environments.resume_auto_triggers(ledger_engine, "web", "prod", actor="bob")
    assert environments.auto_triggers_paused(ledger_engine, "web", "prod") is None
    actions = [e.action for e in audit.list_events(ledger_engine, subject_type="environment")]
    assert actions == [
        "environment.auto_triggers_resumed",
        "environment.auto_triggers_paused",
        "environment.created",
    ]


def test_many_host_outcomes_in_one_transaction(ledger_engine: Engine) -> None:
    release = releases.start_release(
        ledger_engine, "web", "prod", "deploy", requested_by="ann", version="v1"
    )
    releases.record_host_outcome(ledger_engine, release.id, "web-1", "running", step="stage")
    before = audit_count(ledger_engine)
    rows = releases.record_host_outcomes(
        ledger_engine,
        release.id,
        [
            releases.HostOutcome("web-1", "succeeded", step="done", bytes_sent=10),
            releases.HostOutcome("web-2", HostStatus.failed, step="stage", message="exit 3"),
            releases.HostOutcome("web-3", "skipped", step="not started"),
        ],
    )
    assert [r.host for r in rows] == ["web-1", "web-2", "web-3"]
    assert audit_count(ledger_engine) == before + 3
    with session_scope(ledger_engine) as session:
        got = {
            h.host: (h.status, h.step, h.bytes_sent)
            for h in session.scalars(
                select(releases.ReleaseHost).where(releases.ReleaseHost.release_id == release.id)
            )
        }
    assert got == {
        "web-1": (HostStatus.succeeded, "done", 10),  # the earlier row, updated
        "web-2": (HostStatus.failed, "stage", None),
        "web-3": (HostStatus.skipped, "not started", None),
    }
    with pytest.raises(InputError, match="unknown host status 'exploded'"):
        releases.record_host_outcomes(
            ledger_engine,
            release.id,
            [releases.HostOutcome("web-4", "succeeded"), releases.HostOutcome("web-5", "exploded")],
        )
    with session_scope(ledger_engine) as session:
        hosts = session.scalars(
            select(releases.ReleaseHost.host).where(releases.ReleaseHost.release_id == release.id)
        ).all()
    assert sorted(hosts) == ["web-1", "web-2", "web-3"]  # nothing of the refused call


def audit_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
