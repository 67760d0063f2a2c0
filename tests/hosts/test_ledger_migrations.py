"""Ledger schema: migrations up and down on SQLite and PostgreSQL, the schema matches the
models, the version check, engine settings and the default URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from quayside.errors import LedgerError
from quayside.ledger import release_interruptions, releases
from quayside.ledger.db import (
    check_schema,
    current_revision,
    default_url,
    downgrade,
    head_revision,
    make_engine,
    migrate,
)
from quayside.ledger.models import Base, ReleaseKind
from quayside.settings import load_settings

TABLES = {
    "apps",
    "environments",
    "hosts",
    "environment_hosts",
    "releases",
    "release_hosts",
    "approval_requests",
    "approval_decisions",
    "audit_events",
    "deploy_locks",
    "users",
    "api_tokens",
    "spaces",
    "role_grants",
    "run_submissions",
    "seen_requests",
    "approval_codes",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_ledger_url: str) -> None:
    assert _tables(empty_ledger_url) == set()
    migrate(empty_ledger_url)
    assert _tables(empty_ledger_url) >= TABLES  # later migrations may add their own
    engine = make_engine(empty_ledger_url)
    try:
        assert current_revision(engine) == head_revision()
        assert int(head_revision() or 0) >= 6  # 0006: interrupted releases
        # downgrade with data in every kind of table, including the append-only audit log
        releases.start_release(engine, "web", "prod", ReleaseKind.deploy, requested_by="ann")
    finally:
        engine.dispose()
    downgrade(empty_ledger_url)
    assert _tables(empty_ledger_url) == set()
    engine = make_engine(empty_ledger_url)
    try:
        assert current_revision(engine) is None
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                functions = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_proc WHERE proname IN "
                        "('audit_events_append_only', 'audit_events_chain')"
                    )
                ).scalar_one()
            assert functions == 0
    finally:
        engine.dispose()
    migrate(empty_ledger_url)
    assert _tables(empty_ledger_url) >= TABLES


def test_migrated_schema_matches_models(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_0006_downgrade_keeps_interrupted_releases_readable(empty_ledger_url: str) -> None:
    """Rows in the states 0006 added become the nearest old ones on the way down."""
    from quayside.ledger.models import HostStatus

    migrate(empty_ledger_url, "0006")
    engine = make_engine(empty_ledger_url)
    try:
        row = releases.start_release(engine, "web", "prod", ReleaseKind.deploy, requested_by="a")
        releases.mark_running(engine, row.id)
        serving = release_interruptions.HostServing("web-1", HostStatus.switched, "r2", "serves r2")
        release_interruptions.mark_interrupted(
            engine, row.id, [serving], actor="t", reason="crashed"
        )
    finally:
        engine.dispose()
    downgrade(empty_ledger_url, "0005")
    engine = make_engine(empty_ledger_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM releases")).scalar_one() == "failed"
            assert conn.execute(text("SELECT status FROM release_hosts")).scalar_one() == "failed"
            columns = {c["name"] for c in inspect(conn).get_columns("release_hosts")}
            assert "serves" not in columns
    finally:
        engine.dispose()
    migrate(empty_ledger_url)


def test_check_schema_asks_for_upgrade(empty_ledger_url: str) -> None:
    engine = make_engine(empty_ledger_url)
    try:
        with pytest.raises(LedgerError) as raised:
            check_schema(engine)
        assert raised.value.hint == "run `quayside db upgrade`"
        assert "has no schema" in str(raised.value)
        migrate(empty_ledger_url)
        check_schema(engine)
    finally:
        engine.dispose()


def test_unreachable_database_is_a_ledger_error() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(LedgerError) as raised:
            check_schema(engine)
        assert "QUAYSIDE_DATABASE_URL" in (raised.value.hint or "")
    finally:
        engine.dispose()


def test_default_url_is_sqlite_in_quayside_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("QUAYSIDE_HOME", str(home))
    monkeypatch.delenv("QUAYSIDE_DATABASE_URL", raising=False)
    assert default_url() == load_settings().database_url == f"sqlite:///{home / 'ledger.db'}"
    migrate()
    assert (home / "ledger.db").is_file()
    engine = make_engine()
    try:
        check_schema(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        engine.dispose()


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("QUAYSIDE_DATABASE_URL", url)
    assert default_url() == url


def test_bad_url_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError, match="invalid ledger database URL"):
        make_engine("not a url")


def test_the_space_level_grant_index_is_partial_in_the_models_too(ledger_url: str) -> None:
    """The PostgreSQL WHERE of the index is in the metadata once a PostgreSQL engine exists
    (it is added then, not at import), and matches the migrated database."""
    from quayside.ledger.models import SPACE_LEVEL

    engine = make_engine(ledger_url)
    try:
        index = next(
            i for i in Base.metadata.tables["role_grants"].indexes
            if i.name == "uq_role_grants_space_level"
        )  # fmt: skip
        dialect = engine.dialect.name
        assert str(index.dialect_kwargs[f"{dialect}_where"]) == SPACE_LEVEL
        found = {i["name"]: i for i in inspect(engine).get_indexes("role_grants")}
        assert found["uq_role_grants_space_level"]["unique"]
    finally:
        engine.dispose()


def test_0010_keeps_older_published_markers_without_variable_versions(
    empty_ledger_url: str,
) -> None:
    """A marker moved before 0010 reads back with no recorded variable versions (readers then
    take the versions of its time); after it, the versions round-trip; down again, the marker
    stays."""
    from quayside.config import items
    from quayside.config.address import ItemAddress
    from quayside.config.sql_store import SqlConfigStore

    address = ItemAddress("DNS", "release", "dnsmasq", "hosts")
    migrate(empty_ledger_url, "0009")
    engine = make_engine(empty_ledger_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO config_items (project, environment, service, filename, "
                    "created_at, published_version, published_at, published_by) VALUES "
                    "('DNS', 'release', 'dnsmasq', 'hosts', :t, 1, :t, 'flow-run:old')"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
            item_id = conn.execute(text("SELECT id FROM config_items")).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO config_versions (item_id, version, content, content_hash, "
                    "template, author, message, created_at) VALUES (:i, 1, 'x', :h, :f, 'ann', "
                    "'', :t)"
                ),
                {"i": item_id, "h": "0" * 64, "f": False, "t": "2026-01-01 00:00:00"},
            )
    finally:
        engine.dispose()
    migrate(empty_ledger_url)
    engine = make_engine(empty_ledger_url)
    try:
        store = SqlConfigStore(engine)
        marker = store.published_marker(address)
        assert marker is not None and marker.version == 1 and marker.variables is None
        items.mark_published(store, address, 1, actor="flow-run:new", variables={"ns": 2})
        marker = store.published_marker(address)
        assert marker is not None and marker.variables == {"ns": 2}
    finally:
        engine.dispose()
    downgrade(empty_ledger_url, "0009")
    engine = make_engine(empty_ledger_url)
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("config_items")}
            assert "published_variables" not in columns
            by = conn.execute(text("SELECT published_by FROM config_items")).scalar_one()
            assert by == "flow-run:new"
    finally:
        engine.dispose()
    migrate(empty_ledger_url)
