"""Who asks for a run started from the CLI: the authenticated principal, never a typed name.

- With a token (``--token-file`` or ``QUAYSIDE_TOKEN``): the token's ledger user. Their right
  is checked like the gateway's (:mod:`quayside.runs.submission`) and the submission recorded,
  so the run checks it again when it starts. ``--as NAME`` is for SUPER users only: ``NAME``
  becomes the run's ``requested_by`` parameter and tag, the submission's principal stays the
  SUPER user (who the ledger and the approval rules see), and the audit event names both.
- Without a token: the platform's operator, in a shell on the platform host (they hold the
  ledger and the Prefect API's auth string). ``requested_by`` is ``cli:<login>``; no
  submission is recorded (like a run started from the Prefect UI), and ``--as`` is refused.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quayside.cli.token_input import TOKEN_ENV, read_token_file
from quayside.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine

OPERATOR_PREFIX = "cli:"


class AsRefused(InputError):
    """``--as`` given by someone who may not use it."""


@dataclass(frozen=True)
class Requester:
    """Who a CLI run is for.

    Attributes:
        name: the run's ``requested_by`` parameter.
        principal: the authenticated ledger user, or None for the platform operator (no token).
        on_behalf_of: the ``--as`` name a SUPER user gave (equal to ``name``), else None.
    """

    name: str
    principal: str | None = None
    on_behalf_of: str | None = None

    @property
    def accountable(self) -> str:
        """Who the ledger and the approval rules hold responsible: the principal, else the
        operator's ``cli:<login>``."""
        return self.principal or self.name


def operator_name() -> str:
    """``cli:<login>``: the platform operator at a shell on the platform host."""
    try:
        return f"{OPERATOR_PREFIX}{getpass.getuser()}"
    except Exception:  # no login name (containers)
        return OPERATOR_PREFIX.rstrip(":")


def given_token(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The token from ``--token-file`` (refused when others can read it) or ``QUAYSIDE_TOKEN``;
    None when neither is given (the operator: nothing is prompted for).

    Raises:
        InputError: a bad token file.
    """
    if token_file is not None:
        return read_token_file(token_file)
    value = environ.get(TOKEN_ENV, "").strip()
    return value or None


def who_asks(engine: Engine | None, token: str | None, as_name: str | None) -> Requester:
    """The requester of a CLI run.

    Args:
        engine: the ledger (needed with a token).
        token: the user's token, or None for the platform operator.
        as_name: the ``--as`` option.

    Raises:
        AuthFailed: the token is not accepted.
        AsRefused: ``--as`` without a token, by a user who is not SUPER, or not a user name.
    """
    if token is None or engine is None:
        if as_name is not None:
            raise AsRefused(
                "--as needs a SUPER user's token: without one the CLI is the platform operator "
                f"and records the run as requested by {operator_name()}",
                hint=f"set {TOKEN_ENV} or pass --token-file PATH (a SUPER user's token)",
            )
        return Requester(operator_name())
    from quayside.auth.service import authenticate

    user = authenticate(engine, token)
    if as_name is None or as_name == user.name:
        return Requester(user.name, principal=user.name)
    if not user.is_super:
        raise AsRefused(
            f"--as is for SUPER users; {user.name} is not one (the run would be requested by "
            f"{user.name} anyway)",
            hint="leave out --as: your token says who you are",
        )
    from quayside.user_names import RULE, is_name

    if not is_name(as_name):
        raise AsRefused(f"--as: a user name has {RULE}")
    return Requester(as_name, principal=user.name, on_behalf_of=as_name)
