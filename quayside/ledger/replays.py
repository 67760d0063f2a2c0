"""Requests accepted once: values (a signature, a message id) a trigger has already accepted,
kept in the ledger until they expire, so that every gateway process sharing the ledger, and a
restarted one, refuse them a second time.

Only the SHA-256 of each value is stored, unique per kind; expired rows are deleted by every
:func:`claim_once` (no sweep needed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from quayside.ledger.db import session_scope
from quayside.ledger.models import SeenRequest


@dataclass(frozen=True)
class Nonce:
    """A value to accept once: its kind (``dingtalk.sign``), the value itself, and until when
    it must be refused."""

    kind: str
    value: str
    expires_at: datetime

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.value.encode("utf-8")).hexdigest()


class _Raced(Exception):
    def __init__(self, nonce: Nonce) -> None:
        super().__init__(nonce.kind)
        self.nonce = nonce


def claim_once(engine: Engine, nonces: Sequence[Nonce], *, now: datetime) -> Nonce | None:
    """Record the nonces; say whether one of them was recorded before (and has not expired).

    Every nonce not recorded yet is recorded, even when another one was seen: a value that
    came with a refused request is burned too. Two processes claiming the same nonce at once:
    the unique constraint lets one of them in, the other gets it back as seen.

    Args:
        engine: the ledger engine.
        nonces: the values to accept once.
        now: the current time (aware); rows expired before it are deleted first.

    Returns:
        ``None`` when all were new, else the first one already seen.

    Raises:
        LedgerError: the ledger is unreachable or not migrated.
    """
    if not nonces:
        return None
    try:
        with session_scope(engine) as session:
            session.execute(delete(SeenRequest).where(SeenRequest.expires_at < now))
            seen = [
                nonce
                for nonce in nonces
                if session.scalar(
                    select(SeenRequest.id).where(
                        SeenRequest.kind == nonce.kind, SeenRequest.digest == nonce.digest
                    )
                )
                is not None
            ]
            session.add_all(
                SeenRequest(
                    kind=nonce.kind, digest=nonce.digest, seen_at=now, expires_at=nonce.expires_at
                )
                for nonce in nonces
                if nonce not in seen
            )
            try:
                session.flush()
            except IntegrityError:  # another process recorded one of them just now
                raise _Raced(nonces[0]) from None
    except _Raced as raced:
        return raced.nonce
    return seen[0] if seen else None
