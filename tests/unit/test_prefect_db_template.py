"""A new data directory's Prefect database starts as a copy of the prepared template: copied
when the machine has one, prepared beside the first start when it has none (that start's own
database is left to Prefect), never over an existing database, and a preparation that fails
leaves nothing behind (SQLite files; a stand-in for Prefect's preparation, which the platform
tests run for real)."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from quayside.stack import prefect_db_template
from quayside.stack.prefect_db_template import TemplateError, prepare_template, seed

#: a stand-in for ``python -m quayside.stack.prefect_database``: a SQLite database, in WAL
#: mode as Prefect's, at the URL it is given
PREPARE = (
    sys.executable,
    "-c",
    "import os, sqlite3\n"
    "path = os.environ['PREFECT_API_DATABASE_CONNECTION_URL'].split(':///', 1)[1]\n"
    "c = sqlite3.connect(path)\n"
    "c.execute('PRAGMA journal_mode=WAL')\n"
    "c.execute('CREATE TABLE alembic_version (version_num TEXT)')\n"
    "c.execute(\"INSERT INTO alembic_version VALUES ('head')\")\n"
    "c.commit()\n",
)
FAIL = (sys.executable, "-c", "import sys; print('no database here', file=sys.stderr); sys.exit(3)")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QUAYSIDE_CACHE_DIR": str(tmp_path / "cache")}


def _version(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        connection.close()


def test_the_first_start_prepares_the_template_and_the_next_copies_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    first = tmp_path / "home-1" / "prefect.db"
    first.parent.mkdir()
    said = seed(first, env, prepare=PREPARE)
    assert said.startswith("no template yet: preparing")
    assert not first.exists()  # Prefect migrates the first start's database itself
    template = tmp_path / "cache" / prefect_db_template.template_name()
    deadline = time.monotonic() + 60
    while not template.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _version(template) == "head"
    # one self-contained file: no write-ahead log beside it, nothing partial left
    assert sorted(p.name for p in template.parent.iterdir()) == [template.name]

    second = tmp_path / "home-2" / "prefect.db"
    second.parent.mkdir()
    assert seed(second, env, prepare=FAIL) == "copied"  # nothing prepared again
    assert second.read_bytes() == template.read_bytes()
    assert [p.name for p in second.parent.iterdir()] == ["prefect.db"]


def test_an_existing_database_is_never_touched(tmp_path: Path, env: dict[str, str]) -> None:
    database = tmp_path / "prefect.db"
    database.write_bytes(b"the team's runs")
    prepare_template(tmp_path / "cache" / prefect_db_template.template_name(), env, PREPARE)
    assert seed(database, env, prepare=PREPARE) == "exists"
    assert database.read_bytes() == b"the team's runs"


def test_turned_off_it_does_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    database = tmp_path / "prefect.db"
    assert seed(database, env | {"QUAYSIDE_PREFECT_DB_TEMPLATE": "0"}, prepare=PREPARE) == "off"
    assert not database.exists()
    assert not (tmp_path / "cache").exists()


def test_a_failed_preparation_names_why_and_leaves_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    template = tmp_path / "cache" / "prefect-x.db"
    stale = tmp_path / "cache" / ".prefect-x.db.1.2.part"
    stale.parent.mkdir()
    stale.write_bytes(b"left by a killed start")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with pytest.raises(TemplateError, match="exited 3: no database here"):
        prepare_template(template, env, FAIL)
    assert list(template.parent.iterdir()) == []  # the stale part is gone too


def test_the_cache_follows_the_settings(tmp_path: Path) -> None:
    assert prefect_db_template.cache_dir({"QUAYSIDE_CACHE_DIR": "/srv/c"}) == Path("/srv/c")
    assert prefect_db_template.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/quayside")
    name = prefect_db_template.template_name()
    assert name.startswith("prefect-3.") and name.endswith(".db")


def test_the_preparation_never_touches_the_servers_own_database(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The operator's database setting (either of Prefect's names) is not passed on: the
    preparing process writes only the template."""
    real = tmp_path / "real.db"
    url = f"sqlite+aiosqlite:///{real}"
    env |= {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": url,
        "PREFECT_API_DATABASE_CONNECTION_URL": url,
    }
    reads_server_name = (
        sys.executable,
        "-c",
        "import os, sqlite3\n"
        "path = os.environ['PREFECT_SERVER_DATABASE_CONNECTION_URL'].split(':///', 1)[1]\n"
        "c = sqlite3.connect(path)\n"
        "c.execute('CREATE TABLE alembic_version (version_num TEXT)')\n"
        "c.execute(\"INSERT INTO alembic_version VALUES ('head')\")\n"
        "c.commit()\n",
    )
    template = prepare_template(tmp_path / "cache" / "prefect-t.db", env, reads_server_name)
    assert _version(template) == "head"
    assert not real.exists()


def test_a_template_anyone_could_have_written_is_not_copied(
    tmp_path: Path, env: dict[str, str]
) -> None:
    template = prepare_template(
        tmp_path / "cache" / prefect_db_template.template_name(), env, PREPARE
    )
    database = tmp_path / "prefect.db"
    template.chmod(0o666)
    assert (
        seed(database, env, prepare=FAIL) == f"not copied: {template} is not private to this user"
    )
    template.chmod(0o600)
    template.parent.chmod(0o777)
    assert "is not private to this user" in seed(database, env, prepare=FAIL)
    template.parent.chmod(0o700)
    template.write_bytes(b"not a database")
    assert "is not a prepared database" in seed(database, env, prepare=FAIL)
    assert not database.exists()


def test_a_journal_without_its_database_stops_the_copy(tmp_path: Path, env: dict[str, str]) -> None:
    prepare_template(tmp_path / "cache" / prefect_db_template.template_name(), env, PREPARE)
    database = tmp_path / "prefect.db"
    Path(f"{database}-wal").write_bytes(b"an old log")
    said = seed(database, env, prepare=FAIL)
    assert said == "not copied: prefect.db-wal is there without its database"
    assert not database.exists()
