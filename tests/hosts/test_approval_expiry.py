"""The expiry sweep: an overdue approval request ends as Expired, and so does the release that
was waiting for it; answered or fresh requests are left alone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from quayside.auth.approvals import expire_overdue
from quayside.ledger import approvals
from quayside.ledger.models import ApprovalStatus, ReleaseKind, ReleaseStatus, utcnow
from quayside.ledger.release_queries import get_release
from quayside.ledger.releases import start_release


def _waiting(engine: Engine, hours: float) -> tuple[int, int]:
    release = start_release(
        engine, "shop", "prod", ReleaseKind.deploy, requested_by="dev",
        version="release-1", status=ReleaseStatus.awaiting_approval,
    )  # fmt: skip
    request = approvals.create_request(
        engine, "shop", "prod", summary="release-1", requested_by="dev",
        release_id=release.id, expires_in=timedelta(hours=hours),
    )  # fmt: skip
    return release.id, request.id


def test_overdue_request_and_its_release_expire(ledger_engine: Engine) -> None:
    overdue_release, overdue = _waiting(ledger_engine, 1)
    fresh_release, fresh = _waiting(ledger_engine, 48)
    assert expire_overdue(ledger_engine, now=utcnow() + timedelta(hours=2)) == [overdue]
    assert approvals.get_request(ledger_engine, overdue).status is ApprovalStatus.expired
    assert get_release(ledger_engine, overdue_release).status is ReleaseStatus.expired
    assert approvals.get_request(ledger_engine, fresh).status is ApprovalStatus.pending
    assert get_release(ledger_engine, fresh_release).status is ReleaseStatus.awaiting_approval
    # a second sweep finds nothing new
    assert expire_overdue(ledger_engine, now=utcnow() + timedelta(hours=2)) == []
