"""Each app's image versions, kept in the ledger as its ``image-build`` releases: a succeeded
one is a version built and pushed (``version``, ``commit_sha``, ``image_digest``; the
artifact's checksum and the image name in ``details``). Kept per app, across environments,
so a version names one build whichever environment built it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.ledger.db import unit_of_work
from quayside.ledger.models import App, Environment, Release, ReleaseKind, ReleaseStatus


@dataclass(frozen=True)
class BuiltImage:
    """One version of an app's image, as its build recorded it."""

    release_id: int
    env: str
    version: str
    commit_sha: str | None
    digest: str | None
    details: dict[str, Any]


def built_images(db: Engine | Session, app: str) -> list[BuiltImage]:
    """The app's built versions (succeeded ``image-build`` releases), newest first."""
    query = (
        select(Release)
        .join(Environment, Release.environment_id == Environment.id)
        .join(App, Environment.app_id == App.id)
        .where(
            App.name == app,
            Release.kind == ReleaseKind.image_build,
            Release.status == ReleaseStatus.succeeded,
            Release.version.is_not(None),
        )
        .order_by(Release.id.desc())
    )
    with unit_of_work(db, read_only=True) as session:
        rows = session.scalars(query).unique().all()
        return [
            BuiltImage(
                int(r.id),
                r.env_name,
                str(r.version),
                r.commit_sha,
                r.image_digest,
                dict(r.details or {}),
            )
            for r in rows
        ]
