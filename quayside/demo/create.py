"""Writing the demo: the sample repository, the demo users with their tokens, and the
inventory - where ``QUAYSIDE_INVENTORY`` (default ``./quayside.yaml``) points, and only when
nothing is there. ``quayside up`` does it on a first start without an inventory;
``quayside demo`` does it on request.

Idempotent: an existing repository and existing demo users are kept (no new tokens, nothing
printed twice); an existing inventory is never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quayside.demo.inventory import (
    DEMO_APP,
    PROD_HOSTS,
    TEST_HOSTS,
    demo_inventory,
    hosts_dir,
    repo_path,
    write_new_file,
)
from quayside.demo.site_repo import VERSION_TAGS, create_site_repo
from quayside.demo.users import DemoUser, ensure_demo_users
from quayside.errors import QuaysideError
from quayside.inventory import parse_inventory
from quayside.settings import Settings

Say = Callable[[str], None]

#: what ``quayside up`` says after "Quayside is up" when it wrote the demo
NEXT_STEP = (
    "next            in the UI: Deployments → git-deploy → Run → Custom run: app demo, env "
    "test, ref v1 (README.md walks through the demo)"
)


@dataclass(frozen=True)
class DemoReport:
    """What :func:`write_demo` did."""

    inventory: Path
    home: Path
    repo: Path
    repo_created: bool
    users: tuple[DemoUser, ...]


def inventory_target(settings: Settings) -> Path:
    """The absolute path the inventory is read from (symlinks not followed)."""
    return settings.inventory_path.absolute()


def write_demo(settings: Settings, *, actor: str) -> DemoReport:
    """Write the demo for ``settings`` (the ledger must be migrated).

    The users and their tokens are created in the same ledger transaction that ends with the
    inventory written: if the inventory cannot be written, no user is created either.

    Raises:
        QuaysideError: an inventory exists at the path, its directory cannot be written, or
            git failed.
    """
    from quayside.ledger.db import make_engine, session_scope

    target = inventory_target(settings)
    if os.path.lexists(target):
        raise QuaysideError(
            f"{target} exists: the demo never overwrites an inventory",
            hint="move it away, or point QUAYSIDE_INVENTORY at another path, and run "
            "`quayside demo` again",
        )
    if not target.parent.is_dir():
        raise QuaysideError(
            f"cannot write the demo inventory {target}: {target.parent} is not a directory",
            hint="create the directory, or point QUAYSIDE_INVENTORY at another path",
        )
    home = settings.home
    text = demo_inventory(home)
    parse_inventory(text, str(target))  # a data directory path YAML cannot hold fails here
    created = create_site_repo(repo_path(home))
    hosts_dir(home).mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            users = ensure_demo_users(session, actor=actor)
            write_new_file(target, text)
    finally:
        engine.dispose()
    return DemoReport(target, home, repo_path(home), created, tuple(users))


def describe_demo(report: DemoReport) -> list[str]:
    """The console lines about a demo just written: where, what, and the new tokens (once)."""
    tags = ", ".join(tag for _, names in VERSION_TAGS for tag in names)
    lines = [
        f"demo            no inventory was at {report.inventory}: wrote the demo there",
        f"                app {DEMO_APP}: test on {', '.join(TEST_HOSTS)}, prod on "
        f"{', '.join(PROD_HOSTS)} (approved by a MASTER)",
        f"                git repository {report.repo} (tags {tags})",
        f"                hosts are directories: {hosts_dir(report.home)}/<host>/site/current",
    ]
    new = [u for u in report.users if u.token is not None]
    old = [u for u in report.users if u.token is None]
    if new:
        lines.append(
            "demo tokens     shown this once (the ledger keeps only hashes): keep them now"
        )
        width = max(len(u.name) for u in new)
        for user in new:
            what = "approves prod" if user.role == "MASTER" else "deploys"
            name = f"{user.name:<{width}}"
            lines.append(f"                {name}  {user.token}  ({user.role}, {what})")
    if old:
        names = ", ".join(u.name for u in old)
        lines.append(
            f"demo users      {names}: there already, their tokens were shown when they were "
            f"created; a new one: quayside tokens create {old[0].name}"
        )
    return lines


def first_run_demo(settings: Settings, say: Say, *, actor: str) -> bool:
    """``quayside up``'s first-run step: write the demo if there is no inventory, and say so.

    Returns:
        True if the demo was written now.
    """
    if os.path.lexists(inventory_target(settings)):
        return False
    for line in describe_demo(write_demo(settings, actor=actor)):
        say(line)
    return True
