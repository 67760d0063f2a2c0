"""A run created for a submission that was never recorded refuses to act
(quayside.auth.run_start.confirm_submitter): no server, a real SQLite ledger. Without the
submission tag the same run is an operator's (started from the Prefect UI) and goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.auth.run_start import RunNotAuthorized, confirm_submitter
from quayside.auth.submission_tag import SUBMISSION_TAG
from quayside.inventory.models import Inventory
from quayside.ledger.audit import list_events
from quayside.ledger.db import make_engine, migrate

INVENTORY = Inventory.model_validate({"hosts": {}})


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_a_run_tagged_for_a_missing_submission_is_refused_and_the_refusal_recorded(
    ledger: Engine,
) -> None:
    tags = ["quayside", "trigger:cli", SUBMISSION_TAG]
    with pytest.raises(RunNotAuthorized) as refused:
        confirm_submitter(ledger, INVENTORY, "run-lost", {"app": "alpha"}, tags)
    assert "never recorded" in refused.value.message
    assert "nothing was done" in refused.value.message
    events = [e for e in list_events(ledger) if e.action == "run.refused"]
    assert [(e.actor, e.subject_id) for e in events] == [("flow-run:run-lost", "run-lost")]
    assert "never recorded" in (events[0].details or {})["reason"]


def test_an_untagged_run_without_a_submission_is_the_operators(ledger: Engine) -> None:
    assert confirm_submitter(ledger, INVENTORY, "run-ui", {"app": "alpha"}, ["quayside"]) is None
    assert not [e for e in list_events(ledger) if e.action == "run.refused"]
