"""Which Prefect API the CLI talks to: the platform ``quayside up`` runs for the same settings,
fixed in the environment before anything imports Prefect.

Prefect reads its settings once, when it is imported; a client without ``PREFECT_API_URL``
starts a throwaway *ephemeral* server (a new database under ``PREFECT_HOME``) and then finds
no deployment and no run of the platform. So the CLI, first thing:

- turns ephemeral mode off (``PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false``): a command that
  cannot reach the platform fails with one line naming the URL, it never starts a server;
- sets ``PREFECT_API_URL`` to the platform's API (``QUAYSIDE_PREFECT_HOST`` /
  ``QUAYSIDE_PREFECT_PORT``, as for ``quayside up``) unless the user set it. A URL in a Prefect
  profile is not used: it would silently beat ``QUAYSIDE_PREFECT_PORT``.

Commands that need the platform call :func:`require_platform` before importing Prefect
(seconds of imports on a busy machine): a platform that is not running is reported at once.

Standard library only (the CLI's start-up time matters).
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from urllib.parse import urlsplit

from quayside.errors import QuaysideError
from quayside.settings import load_settings

API_URL = "PREFECT_API_URL"
EPHEMERAL = "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"
CONNECT_TIMEOUT_S = 3.0


class PlatformUnreachable(QuaysideError):
    """Nothing answers at the platform's Prefect API address."""

    hint = (
        "start the platform: `make up` (or `quayside up`) with the same QUAYSIDE_HOME and "
        "QUAYSIDE_PREFECT_PORT; or set PREFECT_API_URL to the running platform's API"
    )


def point_at_platform(environ: MutableMapping[str, str]) -> str:
    """Make ``environ`` (the CLI's ``os.environ``) send Prefect to the platform; returns the
    API URL the CLI will use.

    ``PREFECT_API_URL`` when set (another platform, a remote one), else the one ``quayside
    up`` serves for the same ``QUAYSIDE_*`` settings (read from ``os.environ``).
    """
    environ[EPHEMERAL] = "false"
    url = environ.get(API_URL, "").strip()
    if not url:
        url = load_settings().prefect_api_url
    environ[API_URL] = url
    return url


def require_platform(url: str | None = None, timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    """Check that something accepts connections at the Prefect API ``url`` (default
    ``PREFECT_API_URL``, as :func:`point_at_platform` set it); returns the URL.

    Only a TCP connection: the API's answers (auth, versions) are checked by the requests
    themselves.

    Raises:
        PlatformUnreachable: refused, timed out or the name does not resolve; one line naming
            the URL, with how to start the platform.
    """
    target = url or os.environ.get(API_URL) or load_settings().prefect_api_url
    parts = urlsplit(target)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PlatformUnreachable(f"PREFECT_API_URL {target!r} has no valid port") from None
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise PlatformUnreachable(f"the Prefect API at {target} is not reachable ({why})") from e
    return target
