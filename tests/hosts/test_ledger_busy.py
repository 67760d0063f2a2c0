"""The ledger held by another writer: a release's writes wait for it within their budget and
then land (host rows first), or fail naming the ledger and the holder; nothing half-written.
A real second process holds the database: ``BEGIN IMMEDIATE`` on SQLite, ``LOCK TABLE`` on
PostgreSQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, make_url

from quayside.auth.approvals import find_for_run, open_request
from quayside.errors import LedgerError, NotFoundError
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import locks, release_queries, releases, submissions
from quayside.ledger.approvals import resolve
from quayside.ledger.audit import list_events
from quayside.ledger.busy import with_budget
from quayside.ledger.db import make_engine
from quayside.ledger.models import (
    ApprovalStatus,
    HostStatus,
    ReleaseKind,
    ReleaseStatus,
    SubmissionStatus,
)

HOLDER = r"""
import sys
url, backend = sys.argv[1], sys.argv[2]
if backend == "sqlite":
    import sqlite3
    db = sqlite3.connect(url, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO hosts (name) VALUES ('held-by-another-writer')")
    print("held", flush=True)
else:
    import psycopg
    db = psycopg.connect(url, application_name="busy-holder")
    db.execute(
        "LOCK TABLE releases, release_hosts, deploy_locks, run_submissions, approval_requests, "
        "api_tokens IN EXCLUSIVE MODE"
    )
    print("held", db.execute("SELECT pg_backend_pid()").fetchone()[0], flush=True)
sys.stdin.readline()  # hold until told
print("releasing", flush=True)
db.execute("ROLLBACK") if backend == "sqlite" else db.rollback()
"""


@contextmanager
def held(url: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process holding the ledger's write lock until the block sends it a line (or
    ends); yields it and what identifies it (its pid, or its PostgreSQL backend pid)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        target, backend = str(parsed.database), "sqlite"
    else:
        target = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        backend = "postgresql"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, target, backend],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    first = process.stdout.readline().split()
    assert first[:1] == ["held"], first
    ident = first[1] if len(first) > 1 else str(process.pid)
    try:
        yield process, ident
    finally:
        if process.poll() is None:
            process.stdin.write("\n")
            process.stdin.flush()
        process.wait(timeout=30)


def let_go_after_first_busy(process: subprocess.Popen[str], engine: Engine) -> Engine:
    """An engine whose first busy attempt tells the holder to let go: the write found the
    ledger busy, and the retry has to be what gets it through."""
    from sqlalchemy import event

    def on_error(context: object) -> None:
        if process.poll() is None and process.stdin is not None and not process.stdin.closed:
            process.stdin.write("\n")
            process.stdin.flush()

    event.listen(engine, "handle_error", on_error)
    return engine


def test_busy_writes_wait_for_the_other_writer_then_land(ledger_url: str) -> None:
    engine = make_engine(ledger_url, busy_timeout_s=0.3)
    try:
        row = releases.start_release(engine, "web", "prod", ReleaseKind.deploy, requested_by="a")
        releases.mark_running(engine, row.id)
        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            # what the hosts did is written first, while another writer holds the ledger
            outcome = [releases.HostOutcome(f"web-{i}", HostStatus.succeeded) for i in (1, 2)]
            releases.record_host_outcomes(engine, row.id, outcome)
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "releasing"  # it got in after the holder
        releases.finish_release(engine, row.id, ReleaseStatus.succeeded)
        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            lock = locks.acquire(engine, "web", "prod", "bob", flow_run_id="run-2")
            assert lock.holder == "bob"
        done = release_queries.get_release(engine, row.id)
        assert done.status == ReleaseStatus.succeeded
        assert {h.host: h.status for h in done.hosts} == {
            "web-1": HostStatus.succeeded,
            "web-2": HostStatus.succeeded,
        }
    finally:
        engine.dispose()


def test_the_start_of_a_run_waits_for_the_other_writer_then_lands(ledger_url: str) -> None:
    """The release a run records as it starts (new and running, one transaction) waits out a
    ledger held past one attempt's timeout: one release, running, no half of it."""
    engine = make_engine(ledger_url, busy_timeout_s=0.3)
    try:
        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            row = releases.start_running_release(
                engine,
                "web",
                "prod",
                ReleaseKind.deploy,
                requested_by="ann",
                version="v1",
                flow_run_id="run-1",
                details={"step": "start"},
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "releasing"  # it got in after the holder
        started = release_queries.get_release(engine, row.id)
        assert started.status == ReleaseStatus.running
        assert started.started_at is not None
        assert (started.version, started.flow_run_id) == ("v1", "run-1")
        assert started.details == {"step": "start"}
        listed = release_queries.list_releases(engine, "web", "prod", with_hosts=False)
        assert [r.id for r in listed] == [row.id]  # the failed attempt left nothing behind
        events = list_events(engine, subject_type="release", subject_id=row.id)
        assert sorted(e.action for e in events) == ["release.running", "release.started"]
        assert {e.actor for e in events} == {"ann"}
    finally:
        engine.dispose()


def test_a_run_submission_and_its_approval_request_wait_for_the_other_writer(
    ledger_url: str,
) -> None:
    """What a run's trigger and start write besides the release (its submission, the
    submission marked started, the approval request it opens) waits out a busy ledger too;
    each lands once."""
    engine = make_engine(ledger_url, busy_timeout_s=0.3)
    try:
        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            submissions.record_submission(
                engine,
                flow_run_id="run-1",
                deployment="git-deploy",
                scope_kind="app-env",
                minimum_role="DEVELOPER",
                principal="ann",
                via="cli",
                app="web",
                env="prod",
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "releasing"
        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            submissions.mark_submission(
                engine, "run-1", SubmissionStatus.refused, actor="flow-run:run-1", reason="no"
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "releasing"
        found = submissions.submission_of_run(engine, "run-1")
        assert found is not None
        assert (found.status, found.reason) == (SubmissionStatus.refused, "no")
        events = list_events(engine, subject_type="flow_run", subject_id="run-1")
        assert sorted(e.action for e in events) == ["run.refused", "run.submitted"]

        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            request = open_request(
                engine,
                app="web",
                env="prod",
                space="default",
                summary="deploy v1",
                requested_by="ann",
                policy=ApprovalPolicy(required=1),
                flow_run_id="run-1",
                version="v1",
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "releasing"
        with held(ledger_url) as (holder, _):
            let_go_after_first_busy(holder, engine)
            # what the run's approval gate asks on every poll
            assert resolve(engine, request.id).status == ApprovalStatus.pending
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "releasing"
        opened = find_for_run(engine, "run-1")
        assert opened is not None and opened.id == request.id
        assert (opened.version, opened.required_approvals) == ("v1", 1)
        requested = list_events(engine, action="approval.requested")
        assert [e.subject_id for e in requested] == [str(request.id)]  # one request
    finally:
        engine.dispose()


def test_a_token_check_answers_while_another_writer_holds_the_ledger(ledger_url: str) -> None:
    """Checking a token only reads; its last-used bookkeeping is skipped while the ledger is
    busy instead of failing the request (the next check writes it)."""
    from quayside.auth import service
    from quayside.ledger.users import get_token

    engine = with_budget(make_engine(ledger_url, busy_timeout_s=0.3), 0.5)
    try:
        service.create_user(engine, "ann")
        token = service.create_token(engine, "ann")
        with held(ledger_url) as (holder, _):
            assert service.authenticate(engine, token).name == "ann"
            assert holder.poll() is None  # it did not wait for the holder to let go
        user = service.authenticate(engine, token)
        stored = get_token(engine, user.token_id)
        assert stored is not None and stored.last_used_at is not None  # written once free
    finally:
        engine.dispose()


def test_a_ledger_busy_past_the_budget_fails_naming_it_and_the_holder(ledger_url: str) -> None:
    engine = with_budget(make_engine(ledger_url, busy_timeout_s=0.3), 1.0)
    try:
        row = releases.start_release(engine, "web", "prod", ReleaseKind.deploy, requested_by="a")
        with held(ledger_url) as (_holder, ident):
            with pytest.raises(LedgerError) as raised:
                releases.record_host_outcome(engine, row.id, "web-1", HostStatus.succeeded)
        message = str(raised.value)
        assert "stayed busy: record_host_outcomes was tried" in message
        assert make_url(ledger_url).database in message  # the ledger is named
        assert f"pid {ident}" in message  # and who holds it
        assert raised.value.hint and "long transaction" in raised.value.hint
        # nothing half-written: no row and no audit event of the failed write
        assert release_queries.get_release(engine, row.id).hosts == []
        events = list_events(engine, subject_type="release", subject_id=row.id)
        assert [e.action for e in events] == ["release.started"]
    finally:
        engine.dispose()


def test_other_errors_fail_at_once(ledger_url: str) -> None:
    engine = make_engine(ledger_url, busy_timeout_s=0.3)
    try:
        with pytest.raises(NotFoundError, match="not in the ledger"):
            releases.mark_running(engine, 12345)
    finally:
        engine.dispose()


def test_listings_read_while_another_writer_holds_the_ledger(ledger_url: str) -> None:
    """`quayside releases` and the run outcome read without the write lock: they answer while
    the other writer still holds it (on SQLite they used to queue behind it, then fail)."""
    engine = with_budget(make_engine(ledger_url, busy_timeout_s=0.3), 0.5)
    try:
        row = releases.start_release(engine, "web", "prod", ReleaseKind.deploy, requested_by="a")
        releases.mark_running(engine, row.id)
        releases.finish_release(engine, row.id, ReleaseStatus.succeeded)
        with held(ledger_url) as (holder, _):
            listed = release_queries.list_releases(engine, "web", "prod", with_hosts=False)
            assert [r.id for r in listed] == [row.id]
            assert release_queries.current_release(engine, "web", "prod") is not None
            assert [r.id for r in release_queries.releases_of_run(engine, "none")] == []
            assert holder.poll() is None  # still holding: nothing waited for it
    finally:
        engine.dispose()
