"""One approval per promotion: the promote gate's approval covers the image release the
promotion runs. The release's lifecycle reads the covering request from the ledger (a real
SQLite ledger here) and takes it only when it belongs to this very flow run and app/env, is
approved and meets the release's policy - then nobody is asked again and the release records
which approval covered it; otherwise its own gate asks as before."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import quayside.tasks.release_approve as approve_module
import quayside.tasks.release_lifecycle as lifecycle_module
from quayside.auth.approvals import open_request
from quayside.inventory.models import App, ApprovalPolicy, Environment
from quayside.inventory.resolve import Target
from quayside.ledger.approvals import get_request, record_decision
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ApprovalRequest, ReleaseKind
from quayside.ledger.release_queries import get_release
from quayside.release.covering_approval import CoveringApproval, why_not_covering
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest

RUN = "0b5d0d6e-0000-4000-8000-000000000001"
ONE = ApprovalPolicy(required=1, role="MASTER")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


def _approved(
    engine: Engine,
    *,
    run: str = RUN,
    env: str = "prod",
    policy: ApprovalPolicy = ONE,
    approvers: tuple[str, ...] = ("lead",),
) -> ApprovalRequest:
    """A ``promote`` gate's request of ``run``, answered by ``approvers``."""
    request = open_request(
        engine, app="shop", env=env, space="default", summary="promote v1",
        requested_by="dev", policy=policy, flow_run_id=run, version="v1", gate="promote",
    )  # fmt: skip
    for user in approvers:
        record_decision(engine, request.id, user, "approve")
    return get_request(engine, request.id)


@pytest.mark.parametrize(
    ("given", "policy", "refusal"),
    [
        ({"run": "another-run"}, ONE, "belongs to another flow run"),
        ({"env": "staging"}, ONE, "is for shop/staging, not shop/prod"),
        ({"approvers": ()}, ONE, "is pending, not approved"),
        ({}, ApprovalPolicy(required=2), "has 1 approval(s); this release needs 2"),
        ({}, ApprovalPolicy(required=1, role="OWNER"), "was open to MASTER; this release needs"),
        (
            {"policy": ApprovalPolicy(required=1, allow_self_approval=True)},
            ONE,
            "allowed self-approval; this release does not",
        ),
    ],
)
def test_an_approval_that_cannot_cover_the_release_is_named(
    engine: Engine, given: dict[str, Any], policy: ApprovalPolicy, refusal: str
) -> None:
    request = _approved(engine, **given)
    why = why_not_covering(request, run_id=RUN, app="shop", env="prod", policy=policy)
    assert why is not None and why.startswith(f"approval request #{request.id} {refusal}")


def test_an_approved_request_of_this_run_covers_the_release(engine: Engine) -> None:
    request = _approved(engine, policy=ApprovalPolicy(required=2), approvers=("lead", "lead2"))
    for policy in (None, ONE, ApprovalPolicy(required=2)):
        assert why_not_covering(request, run_id=RUN, app="shop", env="prod", policy=policy) is None


@pytest.fixture
def in_run(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lifecycle as inside flow run ``RUN`` (its ledger, its id, its logger; a run with a
    submission, so the policy stays as written); returns the approval gates it opened."""
    opened: list[str] = []
    monkeypatch.setattr(lifecycle_module, "ledger_engine", lambda: engine)
    monkeypatch.setattr(lifecycle_module, "current_flow_run_id", lambda: RUN)
    monkeypatch.setattr(lifecycle_module, "get_run_logger", lambda: logging.getLogger("t"))
    monkeypatch.setattr(approve_module, "get_run_logger", lambda: logging.getLogger("t"))
    monkeypatch.setattr(approve_module, "submission_of_run", lambda *_: object())

    def gate(**kwargs: Any) -> str:
        opened.append(kwargs["gate"])
        return "asked-again"

    import quayside.tasks.approval as approval_module

    monkeypatch.setattr(approval_module, "approval_gate", gate)
    return opened


def _target(policy: ApprovalPolicy) -> Target:
    env = Environment(approval=policy)
    return Target("shop", "prod", App(environments={"prod": env}), env, ())


def _life(engine: Engine, policy: ApprovalPolicy = ONE) -> ReleaseLifecycle:
    request = ReleaseRequest("shop", "prod", ReleaseKind.image, "v1", requested_by="dev")
    return ReleaseLifecycle(request, _target(policy))


def test_the_release_takes_the_promote_gates_approval_and_records_it(
    engine: Engine, in_run: list[str]
) -> None:
    request = _approved(engine)
    with _life(engine) as life:
        approver = life.approve("plan", covered_by=CoveringApproval(request.id, "promote"))
        row = life.start()
        life.finish(lifecycle_module.ReleaseStatus.succeeded, event=None)
    assert approver == "lead" and in_run == []  # nobody asked again
    details = get_release(engine, row).details or {}
    assert details["approval"] == {
        "request": request.id, "gate": "promote", "approvers": ["lead"], "for_release": None,
    }  # fmt: skip


def test_another_runs_approval_does_not_cover_and_the_gate_asks(
    engine: Engine, in_run: list[str]
) -> None:
    request = _approved(engine, run="another-run")
    with _life(engine) as life:
        approver = life.approve("plan", covered_by=CoveringApproval(request.id, "promote"))
    assert approver == "asked-again" and in_run == ["release"]
    assert "approval" not in life.request.details


def test_an_approval_the_ledger_lacks_does_not_cover(engine: Engine, in_run: list[str]) -> None:
    with _life(engine) as life:
        assert life.approve("plan", covered_by=CoveringApproval(999, "promote")) == "asked-again"
    assert in_run == ["release"]
