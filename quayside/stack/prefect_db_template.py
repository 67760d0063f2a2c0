"""A new data directory's Prefect database starts as a copy of a prepared one.

On an empty SQLite file Prefect's API server runs every one of its migrations before it
answers (measured here: 13.4 s to a healthy server on a new file, 4.4 s on a migrated one).
So this machine prepares that database once per Prefect version - with Prefect's own
migrations and block registration (:mod:`quayside.stack.prefect_database`, the same step the
compose stack runs) - in a cache directory, beside its first start, and every later new data
directory's ``prefect.db`` starts as a copy of it. Prefect still runs its migrations at
start; on the copy they find nothing to do. A database that exists is never touched, and a
database that is not a SQLite file (PostgreSQL) is not Quayside's to prepare.

The cache is ``$QUAYSIDE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/quayside``, else
``~/.cache/quayside``); ``QUAYSIDE_PREFECT_DB_TEMPLATE=0`` turns the copy off. The template
holds no data of anyone's: the schema and Prefect's own block types.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from quayside.executors import local_processes

SWITCH = "QUAYSIDE_PREFECT_DB_TEMPLATE"
CACHE_SETTING = "QUAYSIDE_CACHE_DIR"
#: what prepares a database at the URL in PREFECT_API_DATABASE_CONNECTION_URL
PREPARE = (sys.executable, "-m", "quayside.stack.prefect_database")
PREPARE_TIMEOUT_S = 300


def cache_dir(env: Mapping[str, str]) -> Path:
    """Where templates are kept (created private)."""
    if env.get(CACHE_SETTING):
        return Path(env[CACHE_SETTING]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "quayside"


def template_name() -> str:
    """The template's file name: this Prefect's version and its SQLite migrations (a Prefect
    upgrade, or a patched one, prepares a new template)."""
    import prefect
    import prefect.server.database

    versions = Path(prefect.server.database.__file__).parent / "_migrations" / "versions" / "sqlite"
    names = sorted(p.name for p in versions.glob("*.py"))
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return f"prefect-{prefect.__version__}-{digest}.db"


#: the settings that name Prefect's database (the preparing process gets its own)
DATABASE_URL_SETTINGS = (
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)
#: SQLite's files beside a database: one of these without its database is another's journal
SIDE_FILES = ("-wal", "-shm", "-journal")


def seed(
    database: Path,
    env: Mapping[str, str],
    *,
    prepare: Sequence[str] = PREPARE,
) -> str:
    """Start ``database`` (a SQLite file that does not exist yet) as a copy of the template.

    Without a template on this machine (its first start), Prefect migrates ``database`` itself
    as usual and the template is prepared beside it, in a thread of this process (its
    preparing process niced and ending with this one), for the next new data directory: the
    first start waits for nothing more.

    Args:
        database: the Prefect database file the server is about to open.
        env: the server's environment (settings; passed to the preparing process).
        prepare: the command that prepares a database (tests give another).

    Returns:
        What was done, for the server's log: ``copied``, ``exists``, ``off``, ``no template
        yet: preparing ...`` or why it was not copied (then Prefect migrates the new file
        itself, as without a template).
    """
    if env.get(SWITCH, "1").strip() == "0":
        return "off"
    try:  # never a reason for the server not to start
        return _seed(database, env, prepare)
    except OSError as e:
        return f"not copied ({e})"


def _seed(database: Path, env: Mapping[str, str], prepare: Sequence[str]) -> str:
    if database.exists():
        return "exists"
    left = [database.name + side for side in SIDE_FILES if Path(f"{database}{side}").exists()]
    if left:  # SQLite would replay an old journal onto the copy
        return f"not copied: {', '.join(left)} is there without its database"
    template = cache_dir(env) / template_name()
    if not template.exists():
        threading.Thread(
            target=_prepare_quietly, args=(template, env, prepare), daemon=True
        ).start()
        return f"no template yet: preparing {template} for the next new data directory"
    why = distrusted(template)
    if why is not None:
        return f"not copied: {why}"
    partial = database.with_name(f".{database.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(template, partial)
        with open(partial, "rb") as copied:
            os.fsync(copied.fileno())
        os.link(partial, database)  # never over a database created meanwhile
    except FileExistsError:
        return "exists"
    except OSError as e:
        return f"not copied ({e})"
    finally:
        partial.unlink(missing_ok=True)
    return "copied"


def distrusted(template: Path) -> str | None:
    """Why ``template`` may not seed a database (None when it may): it and its directory
    must be this user's and writable by nobody else (a planted template would seed every new
    data directory), and it must be a readable migrated database."""
    for path in (template.parent, template):
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} is not private to this user"
    try:
        connection = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
        try:
            found = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as e:
        return f"{template} is not a prepared database ({e})"
    return None if found else f"{template} has no migration version"


def _prepare_quietly(template: Path, env: Mapping[str, str], prepare: Sequence[str]) -> None:
    try:
        prepare_template(template, env, prepare)
    except TemplateError as e:
        print(f"quayside: {e}", file=sys.stderr, flush=True)


class TemplateError(Exception):
    """The template could not be prepared (the server migrates new databases itself)."""


def prepare_template(
    template: Path, env: Mapping[str, str], prepare: Sequence[str] = PREPARE
) -> Path:
    """Prepare ``template`` with ``prepare`` (niced) unless it exists: a single SQLite file,
    put in place at once (another start may prepare one at the same moment).

    Raises:
        TemplateError: the command failed or wrote nothing; nothing is left behind.
    """
    if template.exists():
        return template
    template.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _forget_stale_parts(template.parent)
    partial = template.with_name(f".{template.name}.{os.getpid()}.{threading.get_ident()}.part")
    url = f"sqlite+aiosqlite:///{partial}"
    child_env = {k: v for k, v in env.items() if "DATABASE" not in k or not k.startswith("PREFECT")}
    child_env.update(dict.fromkeys(DATABASE_URL_SETTINGS, url))
    try:
        done = local_processes.run(
            ["nice", "-n", "10", *prepare],
            env=child_env,
            timeout=PREPARE_TIMEOUT_S,
            death_signal=signal.SIGTERM,  # ends with the server, however the server ends
        )
        if done.returncode != 0 or not partial.exists():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TemplateError(
                f"preparing the Prefect database template exited {done.returncode}: {last[0]}"
            )
        connection = sqlite3.connect(partial)
        try:  # one self-contained file: the write-ahead log folded in
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA journal_mode=DELETE")
        finally:
            connection.close()
        os.replace(partial, template)
    except (OSError, subprocess.SubprocessError, sqlite3.Error) as e:
        raise TemplateError(f"preparing the Prefect database template failed: {e}") from e
    finally:
        for leftover in template.parent.glob(f"{partial.name}*"):
            leftover.unlink(missing_ok=True)
    return template


#: a preparation's partial file older than this was left by a process that was killed
STALE_PART_S = 3600


def _forget_stale_parts(directory: Path) -> None:
    now = time.time()
    for part in directory.glob(".prefect-*.part*"):
        with contextlib.suppress(OSError):
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
