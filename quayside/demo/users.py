"""The demo's users: a MASTER (approves prod) and a DEVELOPER (deploys) in the demo app's
space, each with an API token. A user that exists is left alone (no new token, no role
change); the plaintext of a new token exists only in the return value - the ledger keeps
its hash."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from quayside.auth import service
from quayside.demo.inventory import DEMO_SPACE
from quayside.ledger.users import find_user

#: (user name, role in the demo space)
DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("demo-master", "MASTER"),
    ("demo-developer", "DEVELOPER"),
)


@dataclass(frozen=True)
class DemoUser:
    """A demo user; ``token`` is the plaintext of a token created now, None if the user was
    there already."""

    name: str
    role: str
    token: str | None

    def __repr__(self) -> str:  # never a token in a log or a traceback
        shown = "<created now>" if self.token else None
        return f"DemoUser(name={self.name!r}, role={self.role!r}, token={shown})"


def ensure_demo_users(session: Session, *, actor: str) -> list[DemoUser]:
    """Create the missing demo users, grant their roles and give each a token, in the
    caller's transaction ``session``.

    Returns:
        One entry per demo user, in :data:`DEMO_USERS` order.
    """
    out: list[DemoUser] = []
    for name, role in DEMO_USERS:
        if find_user(session, name) is not None:
            out.append(DemoUser(name, role, None))
            continue
        service.create_user(session, name, display_name=f"Demo {role.lower()}", actor=actor)
        service.grant_role(session, name, role, space=DEMO_SPACE, actor=actor)
        token = service.create_token(
            session, name, description="demo token, printed once by quayside", actor=actor
        )
        out.append(DemoUser(name, role, token))
    return out
