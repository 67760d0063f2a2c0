"""The Prefect API's auth string: Prefect's own basic authentication, on by default.

Prefect 3.8 checks every API request against ``PREFECT_SERVER_API_AUTH_STRING`` (the server
setting: ``Authorization: Basic base64(<string>)`` must decode to exactly that string; only
``GET /api/health`` and ``/api/ready`` pass without it), its clients send
``PREFECT_API_AUTH_STRING``, and its UI asks for the string on a login page.

``quayside up`` generates the string on first start into ``<QUAYSIDE_HOME>/api-auth`` (0600,
``admin:<random>``; an operator's own ``PREFECT_SERVER_API_AUTH_STRING`` is copied there
instead) and gives it to every process it starts. A Quayside client (CLI, gateway) sends
``PREFECT_API_AUTH_STRING`` when set, else the file's string -- but the file's only to the
platform's own API (``QUAYSIDE_PREFECT_HOST``/``PORT``): a ``PREFECT_API_URL`` pointing
elsewhere never receives this platform's secret.

An operator can also keep the string in a file of their own, named by
``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` (or ``quayside up --auth-string-file``): a compose
secret, a file only they can read. ``up`` serves it, and a client sends it to whatever API it
talks to (whoever set the variable chose that API). The string itself never goes into an
argv, a log line or an error message: only the file's path does.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from quayside.errors import InputError, QuaysideError
from quayside.settings import Settings

CLIENT_SETTING = "PREFECT_API_AUTH_STRING"
SERVER_SETTING = "PREFECT_SERVER_API_AUTH_STRING"
#: a file holding the string (a compose secret), for ``quayside up`` and every client
FILE_SETTING = "QUAYSIDE_PREFECT_AUTH_STRING_FILE"
#: the user part of a generated string (the Prefect UI's login field shows ``admin:pass``)
USER = "admin"


class APIAuthError(QuaysideError):
    """The API auth string cannot be read, written or used."""


def new_auth_string() -> str:
    """A fresh ``admin:<secret>`` (256 random bits, URL-safe: fine in a header and a form)."""
    return f"{USER}:{secrets.token_urlsafe(32)}"


def write_auth_file(path: Path, value: str) -> None:
    """Replace ``path`` atomically with ``value``, readable by its owner only (0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover file
        os.write(fd, f"{value}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_auth_file(path: Path) -> str | None:
    """The string in ``path``, or None when there is no such file.

    Raises:
        APIAuthError: the file exists but cannot be read, or is empty.
    """
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise APIAuthError(
            f"cannot read the Prefect API auth string in {path} ({e.strerror})",
            hint=f"run as the platform's user, or set {CLIENT_SETTING} to the string "
            "(the platform's operator has it)",
        ) from e
    if not value:
        raise APIAuthError(
            f"{path} is empty",
            hint="`quayside api-auth rotate` writes a new string (then restart `quayside up`)",
        )
    return value


def read_auth_string_file(path: Path) -> str:
    """The string in an operator's own file (``QUAYSIDE_PREFECT_AUTH_STRING_FILE``,
    ``--auth-string-file``): its content without surrounding whitespace.

    Raises:
        APIAuthError: there is no such file, it cannot be read, or it is empty (named by its
            path only, never by its content).
    """
    try:
        value = path.expanduser().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise APIAuthError(
            f"{FILE_SETTING}: no file {path}",
            hint="point it (or --auth-string-file) at the file holding the user:password string",
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise APIAuthError(
            f"{FILE_SETTING}: cannot read {path} ({why})",
            hint="make it readable by the user running Quayside (and nobody else)",
        ) from None
    if not value:
        raise APIAuthError(
            f"{FILE_SETTING}: {path} is empty",
            hint="write the user:password string into it (Prefect would refuse every request)",
        )
    return value


def operator_auth_string(environ: Mapping[str, str], file: Path | None = None) -> str | None:
    """The operator's own string, if they gave one: from ``file`` (``--auth-string-file``), else
    the file ``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` names, else ``PREFECT_SERVER_API_AUTH_STRING``.
    None: the data directory's string is used (generated on first start).

    Raises:
        InputError: ``PREFECT_SERVER_API_AUTH_STRING`` is set but blank, or differs from the
            file's string (which one would the server require?).
        APIAuthError: the file cannot be read or is empty.
    """
    from_env: str | None = None
    if SERVER_SETTING in environ:
        from_env = environ[SERVER_SETTING].strip()
        if not from_env:
            raise InputError(
                f"{SERVER_SETTING} is set but empty: Prefect would refuse every request",
                hint="unset it (`quayside up` then generates a string into the data directory) "
                "or set it to a user:password string",
            )
    path = file or (Path(environ[FILE_SETTING]) if environ.get(FILE_SETTING) else None)
    if path is None:
        return from_env
    from_file = read_auth_string_file(path)
    if from_env is not None and from_env != from_file:
        raise InputError(
            f"{SERVER_SETTING} and the auth string file {path} differ",
            hint=f"give the server one string: unset {SERVER_SETTING} or the file setting",
        )
    return from_file


def server_auth_string(settings: Settings, operator: str | None) -> str:
    """The string ``quayside up`` gives its server: the data directory's file, generated on
    first start; or ``operator`` (:func:`operator_auth_string`), which is then copied to the
    file, so that the CLI on the platform host finds the running server's string. Call it
    holding the data directory's lock.

    Raises:
        APIAuthError: the file cannot be read or written.
    """
    existing = read_auth_file(settings.api_auth_path)
    value = operator or existing or new_auth_string()
    if value != existing:
        write_auth_file(settings.api_auth_path, value)
    return value


def auth_env(value: str) -> dict[str, str]:
    """Environment that makes Prefect's server require ``value`` and its clients send it."""
    return {SERVER_SETTING: value, CLIENT_SETTING: value}


def _same_api(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def client_auth_string(
    api_url: str, settings: Settings, environ: Mapping[str, str], configured: str | None = None
) -> str | None:
    """What a Quayside client sends to the Prefect API at ``api_url``.

    ``PREFECT_API_AUTH_STRING`` from ``environ`` first, then the file
    ``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` names, then ``configured`` (Prefect's own setting,
    from its profile), then -- for the platform's own API only -- the data directory's file.
    None: send nothing (an API without auth, or Prefect Cloud with an API key).

    Raises:
        APIAuthError: the operator's file or the platform's file cannot be read.
    """
    if environ.get(CLIENT_SETTING):
        return environ[CLIENT_SETTING]
    if environ.get(FILE_SETTING):
        return read_auth_string_file(Path(environ[FILE_SETTING]))
    if configured:
        return configured
    if _same_api(api_url, settings.prefect_api_url):
        return read_auth_file(settings.api_auth_path)
    return None


def export_client_auth(environ: MutableMapping[str, str]) -> None:
    """Put the string of ``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` into ``PREFECT_API_AUTH_STRING``
    of ``environ`` (unless that is set), for a process about to become Prefect's own client (a
    worker on another machine, given the file as a secret): Prefect reads only the variable.

    Raises:
        APIAuthError: the file cannot be read or is empty.
    """
    if environ.get(FILE_SETTING) and not environ.get(CLIENT_SETTING):
        environ[CLIENT_SETTING] = read_auth_string_file(Path(environ[FILE_SETTING]))


def refused_hint(api_url: str, settings: Settings, environ: Mapping[str, str]) -> str:
    """What to do when the Prefect API at ``api_url`` answered 401 (``environ``: where the
    string came from)."""
    if environ.get(CLIENT_SETTING):
        return (
            f"the {CLIENT_SETTING} set here is not that server's string: set it to the string "
            "the platform's operator gave you"
        )
    if environ.get(FILE_SETTING):
        return (
            f"the string in {environ[FILE_SETTING]} ({FILE_SETTING}) is not that server's: "
            "put the platform's current string there"
        )
    if _same_api(api_url, settings.prefect_api_url):
        return (
            f"on the platform host the CLI reads {settings.api_auth_path} (is QUAYSIDE_HOME the "
            f"platform's, and was `quayside up` restarted after a rotate?); elsewhere set "
            f"{CLIENT_SETTING} (or {FILE_SETTING}, a file holding it) to the platform's string"
        )
    return (
        f"{api_url} is not this platform's API ({settings.prefect_api_url}), so the string in "
        f"{settings.api_auth_path} is not sent there: set {CLIENT_SETTING} (or {FILE_SETTING}, "
        "a file holding it) to that server's auth string"
    )
