"""How a release run ends, on a real SQLite ledger with the hosts' work faked in-process:
the lifecycle maps the hosts' reports to one outcome (no change / succeeded naming the failed
hosts / failed) and publishes the host table on every way out; an error after hosts switched
records what they serve (succeeded, the error a warning), never the opposite; only an
approver's answer (rejected, expired) ends a release "not approved" - a ledger or API failure
at the gate is recorded as failed with its message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import quayside.tasks.approval as approval_module
import quayside.tasks.release_apply as apply_module
import quayside.tasks.release_approve as approve_module
import quayside.tasks.release_lifecycle as lifecycle_module
import quayside.tasks.release_outcome as outcome_module
from quayside.errors import LedgerError
from quayside.fanout import GroupResult, HostOutcome
from quayside.inventory.models import App, ApprovalPolicy, Environment
from quayside.inventory.resolve import Target
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release
from quayside.release.host_report import HostReport
from quayside.tasks.approval import ApprovalRejected
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest

RUN = "0b5d0d6e-0000-4000-8000-000000000002"
HOSTS = ("web-1", "web-2", "web-3")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


@pytest.fixture
def tables(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """The lifecycle as inside flow run ``RUN`` (its ledger, its logger, a submission), the
    host work run in-process; returns the host tables published (key, hosts)."""
    published: list[tuple[str, list[str]]] = []
    logger = logging.getLogger("t")
    monkeypatch.setattr(lifecycle_module, "ledger_engine", lambda: engine)
    monkeypatch.setattr(lifecycle_module, "current_flow_run_id", lambda: RUN)
    for module in (lifecycle_module, approve_module, apply_module, outcome_module):
        monkeypatch.setattr(module, "get_run_logger", lambda: logger)
    monkeypatch.setattr(approve_module, "submission_of_run", lambda *_: object())

    def fan_out(
        action: str, run: Callable[[str], Any], hosts: Sequence[str], parallel: int
    ) -> GroupResult[Any]:
        outcomes = []
        for host in hosts:
            try:
                outcomes.append(HostOutcome(host, run(host), None, None))
            except Exception as e:  # noqa: BLE001 - a host's failure is its outcome
                outcomes.append(HostOutcome(host, None, e, None))
        return GroupResult(tuple(outcomes))

    monkeypatch.setattr(apply_module, "fan_out", fan_out)

    def publish(key: str, description: str, reports: Any, skipped: Any = ()) -> None:
        published.append((key, [r.host for r in reports] + list(skipped)))

    monkeypatch.setattr(outcome_module, "publish_host_table", publish)
    return published


def _life(policy: ApprovalPolicy | None = None) -> ReleaseLifecycle:
    env = Environment(approval=policy)
    target = Target("shop", "prod", App(environments={"prod": env}), env, ())
    request = ReleaseRequest(
        "shop", "prod", ReleaseKind.hello, "v2", requested_by="dev", announce=False
    )
    return ReleaseLifecycle(request, target)


def _work(statuses: dict[str, str]) -> Callable[[str], HostReport]:
    def work(host: str) -> HostReport:
        if statuses[host] == "failed":
            raise RuntimeError(f"{host} broke")
        return HostReport(host, statuses[host], "write", switched=statuses[host] == "succeeded")  # type: ignore[arg-type]

    return work


@pytest.mark.parametrize(
    ("statuses", "outcome", "status"),
    [
        ({"web-1": "no_change", "web-2": "no_change", "web-3": "no_change"}, "no change",
         ReleaseStatus.cancelled),
        ({"web-1": "succeeded", "web-2": "failed", "web-3": "no_change"}, "succeeded",
         ReleaseStatus.succeeded),
        ({"web-1": "failed", "web-2": "failed", "web-3": "failed"}, "failed",
         ReleaseStatus.failed),
    ],
)  # fmt: skip
def test_the_outcome_is_mapped_from_the_hosts_and_the_table_published(
    engine: Engine,
    tables: list[tuple[str, list[str]]],
    statuses: dict[str, str],
    outcome: str,
    status: ReleaseStatus,
) -> None:
    with _life() as life:
        life.lock()
        life.start()
        life.show_hosts("stamp-shop-prod", "stamp v2")
        applied = life.apply(HOSTS, _work(statuses), action="stamp")
        assert life.finish_applied(applied, "stamped v2") == outcome
    row = get_release(engine, life.row or 0)
    assert row.status == status
    failed = [h for h, s in statuses.items() if s == "failed"]
    assert (row.details or {})["failed_hosts"] == failed
    assert (row.summary or {})["failed"] == len(failed)
    if outcome == "no change":
        assert (row.summary or {})["result"] == "no change"
    assert tables == [("stamp-shop-prod", list(HOSTS))]


def test_any_failure_fails_where_the_flow_says_so(
    engine: Engine, tables: list[tuple[str, list[str]]]
) -> None:
    with _life() as life:
        life.start()
        applied = life.apply(HOSTS, _work({"web-1": "succeeded", "web-2": "failed",
                                           "web-3": "succeeded"}), action="rollback")  # fmt: skip
        assert life.finish_applied(applied, "rolled back", any_failure_fails=True) == "failed"
    assert get_release(engine, life.row or 0).status == ReleaseStatus.failed
    assert tables == []  # no table was asked for


def test_an_error_after_hosts_switched_records_what_they_serve(
    engine: Engine, tables: list[tuple[str, list[str]]]
) -> None:
    with pytest.raises(OSError, match="disk full"), _life() as life:
        life.lock()
        life.start()
        life.show_hosts("stamp-shop-prod", "stamp v2")
        life.apply(HOSTS, _work(dict.fromkeys(HOSTS, "succeeded")), action="stamp")
        raise OSError("disk full")  # e.g. saving the hosts' facts for the next deploy
    row = get_release(engine, life.row or 0)
    assert row.status == ReleaseStatus.succeeded  # the hosts serve it: never "failed"
    (warning,) = (row.summary or {})["warnings"]
    assert "after 3 host(s) switched" in warning and "disk full" in warning
    assert "disk full" in (row.details or {})["error"]
    assert {h.status for h in row.hosts} == {HostStatus.succeeded}
    assert tables == [("stamp-shop-prod", list(HOSTS))]  # published on the way out too


def test_an_error_before_any_host_switched_fails_the_release_with_its_table(
    engine: Engine, tables: list[tuple[str, list[str]]]
) -> None:
    with pytest.raises(OSError, match="disk full"), _life() as life:
        life.lock()
        life.start()
        life.show_hosts("stamp-shop-prod", "stamp v2")
        life.apply(HOSTS, _work(dict.fromkeys(HOSTS, "failed")), action="stamp")
        raise OSError("disk full")
    row = get_release(engine, life.row or 0)
    assert row.status == ReleaseStatus.failed
    assert "disk full" in (row.details or {})["error"]
    assert tables == [("stamp-shop-prod", list(HOSTS))]


ONE = ApprovalPolicy(required=1, role="MASTER")


def test_a_rejection_ends_the_release_not_approved(
    engine: Engine, tables: list[tuple[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rejected(**_: Any) -> str:
        raise ApprovalRejected("rejected by lead: not today")

    monkeypatch.setattr(approval_module, "approval_gate", rejected)
    with pytest.raises(ApprovalRejected), _life(ONE) as life:
        life.approve("plan")
    row = get_release(engine, life.row or 0)
    assert row.status == ReleaseStatus.cancelled
    assert (row.details or {})["error"] == "not approved"


@pytest.mark.parametrize(
    "error", [LedgerError("database is locked"), ConnectionError("Prefect API unreachable")]
)
def test_a_gate_that_fails_is_recorded_as_failed_with_its_message(
    engine: Engine,
    tables: list[tuple[str, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    def broken(**_: Any) -> str:
        raise error

    monkeypatch.setattr(approval_module, "approval_gate", broken)
    with pytest.raises(type(error)), _life(ONE) as life:
        life.approve("plan")
    row = get_release(engine, life.row or 0)
    assert row.status == ReleaseStatus.failed  # not "cancelled: not approved"
    assert (row.details or {})["error"] == f"approval: {error}"
