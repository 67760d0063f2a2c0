"""What only the ledger backend does: a secret variable is ciphertext in the database, and every
save and publish is an audit event (never carrying a variable's value)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.secret_box import SecretBox
from quayside.config.sql_store import SqlConfigStore
from quayside.ledger.audit import list_events
from quayside.ledger.config_models import ConfigVariableVersion
from quayside.ledger.db import read_scope

ENV = EnvAddress("DNS", "release")
CONF = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf")


def test_secrets_are_ciphertext_in_the_ledger(ledger_engine: Engine, tmp_path: Path) -> None:
    store = SqlConfigStore(ledger_engine)
    box = SecretBox.from_home(tmp_path)
    variables.set_value(store, box, ENV, "pw", "hunter2-secret", author="ann", secret=True)
    variables.set_value(store, box, ENV, "port", "53", author="ann")
    with read_scope(ledger_engine) as session:
        stored = {r.secret: r.value for r in session.scalars(select(ConfigVariableVersion))}
    assert stored[False] == "53"
    assert stored[True].startswith("fernet:") and "hunter2" not in stored[True]


def test_saves_and_publishes_are_audited(ledger_engine: Engine, tmp_path: Path) -> None:
    store = SqlConfigStore(ledger_engine)
    box = SecretBox.from_home(tmp_path)
    items.save(store, CONF, "port=53\n", author="ann", base_version=0)
    items.mark_published(store, CONF, 1, actor="flow-run:r1")
    items.mark_published(store, CONF, 1, actor="flow-run:r2", variables={"ns": 2})
    variables.set_value(store, box, ENV, "pw", "hunter2-secret", author="bob", secret=True)
    recorded = [(e.actor, e.action, e.subject_id, e.details) for e in list_events(ledger_engine)]
    assert ("ann", "config.saved", str(CONF)) in [r[:3] for r in recorded]
    published = {r[0]: r[3] for r in recorded if r[1] == "config.published"}
    assert published["flow-run:r1"] == {"version": 1, "previous": None, "variables": None}
    # the variable versions the publish rendered with (versions only, never values)
    assert published["flow-run:r2"] == {"version": 1, "previous": 1, "variables": {"ns": 2}}
    saved_variable = [r for r in recorded if r[1] == "config.variable_saved"][0]
    assert saved_variable[:3] == ("bob", "config.variable_saved", "DNS/release/pw")
    assert "hunter2" not in repr(recorded)
