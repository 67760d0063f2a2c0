"""A real PostgreSQL server for tests, and the ``ledger_url`` fixture (SQLite and PostgreSQL).

:class:`PostgresServer` works without pytest::

    server = PostgresServer(Path("/tmp/pg"))
    server.start()
    url = server.create_database("scratch")  # postgresql+psycopg://postgres@127.0.0.1:PORT/scratch
    server.stop()

The server runs as the ``postgres`` system user when we are root (PostgreSQL refuses root),
listens on 127.0.0.1 only, on a free port, with its unix socket in its own directory, fsync
off and trust authentication. Each pytest-xdist worker starts its own server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"


def find_pg_bin() -> Path | None:
    """The directory with initdb, pg_ctl and postgres (newest Debian version first), or None."""
    for candidate in PG_BIN_DIRS:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind port 0 and ask)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PostgresError(RuntimeError):
    """The test server could not be set up; the message has the command and its output."""


class PostgresServer:
    """A throwaway PostgreSQL cluster in ``base_dir`` (created if missing, removed by
    :meth:`stop` when ``cleanup`` is true).

    When running as root, ``base_dir`` and its parents must be reachable by the ``postgres``
    user; :func:`postgres_server` uses a fresh directory under the system temp dir for that.
    """

    def __init__(self, base_dir: Path, *, bin_dir: Path | None = None, cleanup: bool = True):
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_file = self.base_dir / "postgres.log"
        self.host = "127.0.0.1"
        self.port = 0
        self.cleanup = cleanup
        found = bin_dir or find_pg_bin()
        if found is None:
            raise PostgresError("initdb not found: install the Debian package postgresql")
        self.bin_dir = found
        self._running = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of database ``name`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{name}"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
        if runuser is None:
            raise PostgresError("runuser not found (util-linux); needed to run as postgres")
        return [runuser, "-u", SYSTEM_USER, "--", *argv]

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            self._as_postgres(argv), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = ""
            if self.log_file.exists():
                log = self.log_file.read_text(errors="replace")[-2000:]
            raise PostgresError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
                f"\n{log}"
            )

    def start(self) -> None:
        """initdb (once), configure, and start the server on a free port; waits until it
        accepts connections."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.base_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )  # fmt: skip
            (self.data_dir / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            )
        last_error: PostgresError | None = None
        for _attempt in range(3):  # another process may grab the free port before we bind it
            self.port = free_port(self.host)
            (self.data_dir / "postgresql.auto.conf").write_text(
                "\n".join(
                    [
                        f"listen_addresses = '{self.host}'",
                        f"port = {self.port}",
                        f"unix_socket_directories = '{self.socket_dir}'",
                        "fsync = off",
                        "synchronous_commit = off",
                        "full_page_writes = off",
                        "max_connections = 100",
                        "shared_buffers = 32MB",
                        "dynamic_shared_memory_type = posix",
                        "logging_collector = off",
                        "",
                    ]
                )
            )
            try:
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D", str(self.data_dir),
                        "-l", str(self.log_file),
                        "-w", "-t", "60",
                        "start",
                    ]
                )  # fmt: skip
            except PostgresError as e:
                last_error = e
                continue
            self._running = True
            return
        raise last_error or PostgresError("PostgreSQL did not start")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove ``base_dir`` if ``cleanup``."""
        if self._running:
            self._run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
            )
            self._running = False
        if self.cleanup:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str | None = None, *, template: str = "template0") -> str:
        """Create a database (a fresh unique name by default), empty or a copy of
        ``template`` (which nobody may be connected to).

        Returns:
            Its SQLAlchemy URL ``postgresql+psycopg://postgres@127.0.0.1:PORT/NAME``.
        """
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions first."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _require_postgres() -> Path:
    # imported here: plugins load in name order, and importing the require plugin at module
    # level would keep pytest from rewriting its asserts
    from testbed.require import missing, need_binary

    bin_dir = find_pg_bin()
    if bin_dir is None:
        need_binary("initdb", "postgresql")  # fails in CI, skips elsewhere, naming the package
        missing("initdb", "install the Debian package postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            missing(
                f"the {SYSTEM_USER} system user",
                "install the Debian package postgresql (PostgreSQL refuses to run as root)",
            )
        need_binary("runuser", "util-linux")
    assert bin_dir is not None
    return bin_dir


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server per test session (per xdist worker)."""
    bin_dir = _require_postgres()
    # pytest's basetemp is 0700 root-owned, which the postgres user cannot enter, so the
    # cluster lives in its own mkdtemp directory (unique per worker); its path is recorded
    # in tmp_path_factory's tree for debugging.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(tempfile.mkdtemp(prefix=f"quayside-pg-{worker}-"))
    (tmp_path_factory.mktemp("postgres") / "cluster-dir").write_text(f"{base}\n")
    server = PostgresServer(base, bin_dir=bin_dir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a fresh empty database on the session's server."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh empty (unmigrated) database, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


LEDGER_TEMPLATE = "ledger_template"


@pytest.fixture(scope="session")
def postgres_ledger_template(postgres_server: PostgresServer) -> str:
    """Name of a database migrated to the latest ledger schema, to copy per test (copying
    is faster than migrating every fresh database)."""
    from quayside.ledger.db import migrate

    migrate(postgres_server.create_database(LEDGER_TEMPLATE))  # migrate disposes its engine
    return LEDGER_TEMPLATE


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh database migrated to the latest ledger schema, once for SQLite and once
    for PostgreSQL."""
    if request.param == "sqlite":
        from quayside.ledger.db import migrate

        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        migrate(url)
        return url
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_ledger_template")
    return server.create_database(template=template)


@pytest.fixture
def ledger_engine(ledger_url: str) -> Iterator[Engine]:
    """An engine on a fresh migrated ledger database (SQLite and PostgreSQL)."""
    from quayside.ledger.db import make_engine

    engine = make_engine(ledger_url)
    try:
        yield engine
    finally:
        engine.dispose()
