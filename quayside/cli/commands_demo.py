"""``quayside demo``: write the demo (what ``quayside up`` does on a first start without an
inventory) on request."""

from __future__ import annotations

import getpass
import os

from quayside.cli.app import app, console
from quayside.settings import load_settings


@app.command()
def demo() -> None:
    """Write the demo: a sample git repository with tags, four hosts on this machine, app
    `demo` (test, and prod approved by a MASTER), and users demo-master and demo-developer
    whose tokens are printed once.

    The inventory goes where QUAYSIDE_INVENTORY points (default ./quayside.yaml) and is never
    overwritten; the rest goes into QUAYSIDE_HOME. `quayside up` does this by itself when it
    starts without an inventory.
    """
    from quayside.demo import describe_demo, write_demo
    from quayside.ledger.db import migrate
    from quayside.stack.data_dir import PRIVATE_UMASK, prepare_data_dir

    settings = load_settings()
    old_umask = os.umask(PRIVATE_UMASK)  # the data directory's files stay private
    try:
        prepare_data_dir(settings.home)
        migrate(settings.database_url)
        report = write_demo(settings, actor=f"cli:{_login()}")
    finally:
        os.umask(old_umask)
    for line in describe_demo(report):
        console.print(line, highlight=False)
    console.print(
        "next            `quayside up` (or `make up`), then follow README.md's first run",
        highlight=False,
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers)
        return "unknown"
