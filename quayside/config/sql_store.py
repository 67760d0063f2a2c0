"""The ledger backend of the config center (SQLite and PostgreSQL), the default.

Each append is one transaction: read the latest version (the item row locked with ``SELECT …
FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), refuse a
stale base, insert the next version and an audit event. Two saves racing from the same base
that both pass the check still collide on the unique (item, version) constraint; the loser is
answered with the same stale-save error. Variable values arrive here already encrypted when
secret; the audit event of a variable never carries its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.errors import VersionNotFound
from quayside.config.records import ItemVersion, PublishedMarker, VariableKind, VariableVersion
from quayside.config.stale import stale_item, stale_variable
from quayside.errors import LedgerError
from quayside.ledger import audit
from quayside.ledger.config_models import (
    ConfigItem,
    ConfigVariable,
    ConfigVariableVersion,
    ConfigVersion,
)
from quayside.ledger.db import read_scope, session_scope


def _item_record(address: ItemAddress, row: ConfigVersion) -> ItemVersion:
    return ItemVersion(
        address=address,
        version=row.version,
        content=row.content,
        content_hash=row.content_hash,
        author=row.author,
        message=row.message,
        created_at=row.created_at,
        template=row.template,
        restored_from=row.restored_from,
    )


def _variable_record(env: EnvAddress, name: str, row: ConfigVariableVersion) -> VariableVersion:
    kind: VariableKind = "vault-ref" if row.kind == "vault-ref" else "value"
    return VariableVersion(
        env=env,
        name=name,
        version=row.version,
        stored=row.value,
        secret=row.secret,
        kind=kind,
        author=row.author,
        message=row.message,
        created_at=row.created_at,
    )


class SqlConfigStore:
    """Config items and variables in the ledger database."""

    encrypts_secrets = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # items ---------------------------------------------------------------------------------

    def _item_row(self, session: Session, address: ItemAddress, *, lock: bool) -> ConfigItem | None:
        query = select(ConfigItem).where(
            ConfigItem.project == address.project,
            ConfigItem.environment == address.environment,
            ConfigItem.service == address.service,
            ConfigItem.filename == address.filename,
        )
        if lock:
            query = query.with_for_update()
        return session.scalars(query).one_or_none()

    def _latest_row(self, session: Session, item_id: int) -> ConfigVersion | None:
        return session.scalars(
            select(ConfigVersion)
            .where(ConfigVersion.item_id == item_id)
            .order_by(ConfigVersion.version.desc())
            .limit(1)
        ).one_or_none()

    def append_item_version(
        self,
        address: ItemAddress,
        *,
        base_version: int,
        content: str,
        content_hash: str,
        author: str,
        message: str,
        template: bool,
        restored_from: int | None,
        at: datetime,
    ) -> ItemVersion:
        try:
            with session_scope(self.engine) as session:
                item = self._item_row(session, address, lock=True)
                if item is None:
                    item = ConfigItem(
                        project=address.project,
                        environment=address.environment,
                        service=address.service,
                        filename=address.filename,
                        created_at=at,
                    )
                    session.add(item)
                    session.flush()
                latest = self._latest_row(session, item.id)
                if (latest.version if latest is not None else 0) != base_version:
                    assert latest is not None  # base 0 with no version never gets here
                    raise stale_item(
                        _item_record(address, latest), base_version=base_version, attempted=content
                    )
                row = ConfigVersion(
                    item_id=item.id,
                    version=base_version + 1,
                    content=content,
                    content_hash=content_hash,
                    template=template,
                    author=author,
                    message=message,
                    created_at=at,
                    restored_from=restored_from,
                )
                session.add(row)
                session.flush()
                audit.record(
                    session,
                    author,
                    "config.saved",
                    "config_item",
                    str(address),
                    {
                        "version": row.version,
                        "content_hash": content_hash,
                        "restored_from": restored_from,
                    },
                )
                return _item_record(address, row)
        except LedgerError as e:
            if not isinstance(e.__cause__, IntegrityError):
                raise
        # lost a race from the same base: the winner's version is the latest now
        raise stale_item(self.item_version(address), base_version=base_version, attempted=content)

    def item_versions(self, address: ItemAddress) -> list[ItemVersion]:
        with read_scope(self.engine) as session:
            item = self._item_row(session, address, lock=False)
            if item is None:
                return []
            rows = session.scalars(
                select(ConfigVersion)
                .where(ConfigVersion.item_id == item.id)
                .order_by(ConfigVersion.version)
            ).all()
            return [_item_record(address, r) for r in rows]

    def item_version(self, address: ItemAddress, version: int | None = None) -> ItemVersion:
        with read_scope(self.engine) as session:
            item = self._item_row(session, address, lock=False)
            if item is None:
                raise VersionNotFound(
                    f"config item {address} does not exist",
                    hint="create it with `quayside config set`",
                )
            if version is None:
                row = self._latest_row(session, item.id)
            else:
                row = session.scalars(
                    select(ConfigVersion).where(
                        ConfigVersion.item_id == item.id, ConfigVersion.version == version
                    )
                ).one_or_none()
            if row is None:
                raise VersionNotFound(
                    f"config item {address} has no version {version}",
                    hint=f"see its versions with `quayside config history {address}`",
                )
            return _item_record(address, row)

    def list_items(self, project: str, environment: str | None = None) -> list[ItemAddress]:
        with read_scope(self.engine) as session:
            query = select(ConfigItem).where(ConfigItem.project == project)
            if environment is not None:
                query = query.where(ConfigItem.environment == environment)
            rows = session.scalars(query).all()
            found = [ItemAddress(r.project, r.environment, r.service, r.filename) for r in rows]
        return sorted(found, key=str)

    def published_marker(self, address: ItemAddress) -> PublishedMarker | None:
        with read_scope(self.engine) as session:
            item = self._item_row(session, address, lock=False)
            if item is None or item.published_version is None:
                return None
            assert item.published_at is not None and item.published_by is not None
            recorded = item.published_variables
            return PublishedMarker(
                item.published_version,
                item.published_at,
                item.published_by,
                None if recorded is None else {str(k): int(v) for k, v in recorded.items()},
            )

    def set_published(
        self,
        address: ItemAddress,
        version: int,
        *,
        by: str,
        at: datetime,
        variables: Mapping[str, int] | None = None,
    ) -> None:
        self.item_version(address, version)  # names a missing item or version
        recorded = None if variables is None else dict(sorted(variables.items()))
        with session_scope(self.engine) as session:
            item = self._item_row(session, address, lock=True)
            assert item is not None
            previous = item.published_version
            item.published_version = version
            item.published_at = at
            item.published_by = by
            item.published_variables = recorded
            audit.record(
                session,
                by,
                "config.published",
                "config_item",
                str(address),
                {"version": version, "previous": previous, "variables": recorded},
            )

    # variables -----------------------------------------------------------------------------

    def _variable_row(
        self, session: Session, env: EnvAddress, name: str, *, lock: bool
    ) -> ConfigVariable | None:
        query = select(ConfigVariable).where(
            ConfigVariable.project == env.project,
            ConfigVariable.environment == env.environment,
            ConfigVariable.name == name,
        )
        if lock:
            query = query.with_for_update()
        return session.scalars(query).one_or_none()

    def _latest_variable_row(
        self, session: Session, variable_id: int
    ) -> ConfigVariableVersion | None:
        return session.scalars(
            select(ConfigVariableVersion)
            .where(ConfigVariableVersion.variable_id == variable_id)
            .order_by(ConfigVariableVersion.version.desc())
            .limit(1)
        ).one_or_none()

    def append_variable_version(
        self,
        env: EnvAddress,
        name: str,
        *,
        base_version: int,
        stored: str,
        secret: bool,
        kind: VariableKind,
        author: str,
        message: str,
        at: datetime,
    ) -> VariableVersion:
        try:
            with session_scope(self.engine) as session:
                variable = self._variable_row(session, env, name, lock=True)
                if variable is None:
                    variable = ConfigVariable(
                        project=env.project, environment=env.environment, name=name, created_at=at
                    )
                    session.add(variable)
                    session.flush()
                latest = self._latest_variable_row(session, variable.id)
                if (latest.version if latest is not None else 0) != base_version:
                    assert latest is not None
                    raise stale_variable(
                        _variable_record(env, name, latest),
                        base_version=base_version,
                        attempted=stored,
                        secret=secret,
                    )
                row = ConfigVariableVersion(
                    variable_id=variable.id,
                    version=base_version + 1,
                    value=stored,
                    secret=secret,
                    kind=kind,
                    author=author,
                    message=message,
                    created_at=at,
                )
                session.add(row)
                session.flush()
                audit.record(
                    session,
                    author,
                    "config.variable_saved",
                    "config_variable",
                    f"{env}/{name}",
                    {"version": row.version, "secret": secret, "kind": kind},
                )
                return _variable_record(env, name, row)
        except LedgerError as e:
            if not isinstance(e.__cause__, IntegrityError):
                raise
        versions = self.variable_versions(env, name)
        raise stale_variable(
            versions[-1], base_version=base_version, attempted=stored, secret=secret
        )

    def variable_versions(self, env: EnvAddress, name: str) -> list[VariableVersion]:
        with read_scope(self.engine) as session:
            variable = self._variable_row(session, env, name, lock=False)
            if variable is None:
                return []
            rows = session.scalars(
                select(ConfigVariableVersion)
                .where(ConfigVariableVersion.variable_id == variable.id)
                .order_by(ConfigVariableVersion.version)
            ).all()
            return [_variable_record(env, name, r) for r in rows]

    def latest_variables(self, env: EnvAddress) -> list[VariableVersion]:
        with read_scope(self.engine) as session:
            variables = session.scalars(
                select(ConfigVariable)
                .where(
                    ConfigVariable.project == env.project,
                    ConfigVariable.environment == env.environment,
                )
                .order_by(ConfigVariable.name)
            ).all()
            out = []
            for variable in variables:
                latest = self._latest_variable_row(session, variable.id)
                if latest is not None:
                    out.append(_variable_record(env, variable.name, latest))
            return out
