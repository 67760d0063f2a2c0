"""``quayside audit``: the ledger's audit log (operator commands on the platform host, reading
QUAYSIDE_DATABASE_URL, else the SQLite ledger in QUAYSIDE_HOME)."""

from __future__ import annotations

import typer

from quayside.cli.app import app, console
from quayside.settings import load_settings

audit_app = typer.Typer(help="The audit log in the ledger.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit log's hash chain: prints OK with the number of events and the head hash
    (keep it somewhere else to detect a later rewrite), or the first broken event and what is
    wrong with it (exit 1)."""
    from quayside.ledger.audit_verify import verify_chain
    from quayside.ledger.db import check_schema, make_engine

    engine = make_engine(load_settings().database_url)
    try:
        check_schema(engine)
        report = verify_chain(engine)
    finally:
        engine.dispose()
    if report.last_id is None:
        console.print("OK: the audit log is empty", highlight=False)
        return
    console.print(
        f"OK: {report.count} audit events verified, last event {report.last_id}, "
        f"head hash {report.head}",
        highlight=False,
    )
