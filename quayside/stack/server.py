"""``python -m quayside.stack.server ARGS``: ``prefect server start ARGS`` with its API app
wrapped in :class:`quayside.stack.busy_retry.BusyRetry` (a request SQLite refused as busy is
retried in the server within a few tenths of a second, instead of by the client after 2 s) and
:class:`quayside.stack.secure_delete.ForgetDeletedInputs` (a deleted flow-run input - an
approval form's answer - leaves no bytes in ``prefect.db`` or its write-ahead log).

Everything else is Prefect's own command: settings, services, UI, port checks. The wrap is
applied where that command builds its app (``prefect.server.api.server.create_app``), in this
process only; a server started with ``--workers`` > 1 builds its apps elsewhere and runs
unwrapped.
"""

from __future__ import annotations

import sys
from typing import Any


def install() -> None:
    """Make ``prefect.server.api.server.create_app`` return its app wrapped in BusyRetry and
    ForgetDeletedInputs, and turn on SQLite's ``secure_delete`` for the server's database."""
    import prefect.server.api.server as prefect_server
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    from quayside.stack import secure_delete
    from quayside.stack.busy_retry import BusyRetry

    original = prefect_server.create_app
    if getattr(original, "quayside_busy_retry", False):
        return
    secure_delete.install()
    database = secure_delete.database_file(str(PREFECT_API_DATABASE_CONNECTION_URL.value()))

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = secure_delete.ForgetDeletedInputs(original(*args, **kwargs), database)
        return BusyRetry(app)

    create_app.quayside_busy_retry = True  # type: ignore[attr-defined]
    prefect_server.create_app = create_app  # type: ignore[assignment]


def seed_database() -> None:
    """A new SQLite database starts as a copy of the prepared one
    (:mod:`quayside.stack.prefect_db_template`); says what was done in the server's log."""
    import os

    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    from quayside.stack.prefect_db_template import seed
    from quayside.stack.secure_delete import database_file

    database = database_file(str(PREFECT_API_DATABASE_CONNECTION_URL.value()))
    if database is not None:
        print(f"quayside: Prefect database {database}: {seed(database, os.environ)}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    install()
    seed_database()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "server", "start", *args]
    app()


if __name__ == "__main__":
    main()
