"""One more entry in a recorded release's ``details``, written after the release finished: a
promotion names the copy on the image release it started (``details["promote"]``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.ledger.db import unit_of_work
from quayside.ledger.models import Release


def add_release_detail(db: Engine | Session, release_id: int, key: str, value: Any) -> None:
    """Set ``details[key] = value`` on release ``release_id`` (the other keys kept).

    Raises:
        quayside.errors.NotFoundError: no such release.
    """
    from quayside.errors import NotFoundError

    with unit_of_work(db) as session:
        row = session.get(Release, release_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no release #{release_id} in the ledger")
        row.details = {**(row.details or {}), key: value}
