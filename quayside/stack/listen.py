"""Where ``quayside up`` serves the Prefect UI and API (``--listen``), and when it may.

Prefect OSS has no users: whoever passes its API auth string can start, cancel and resume any
run and read every Secret block. On a loopback address (127.0.0.0/8) only this machine's users
can try, and the string ``up`` generates into the data directory keeps them out. Off loopback
(``0.0.0.0``, a LAN address) the console faces the network, so ``up`` starts only with a string
the operator chose and hands out themselves -- ``--auth-string-file`` /
``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` or ``PREFECT_SERVER_API_AUTH_STRING`` -- and refuses
otherwise, in one line naming the fix, before anything is created.

Clients started by ``up`` (worker, gateway, flow runs) still reach the API on loopback when
the server listens on every address (``0.0.0.0``), and on the listen address otherwise.
"""

from __future__ import annotations

import dataclasses
from ipaddress import AddressValueError, IPv4Address

from quayside.api_auth import FILE_SETTING, SERVER_SETTING
from quayside.errors import InputError
from quayside.settings import Settings

LOOPBACK = "127.0.0.1"


def listen_address(value: str) -> IPv4Address:
    """``value`` as the IPv4 address the server binds (``localhost`` is 127.0.0.1).

    Raises:
        InputError: not an IPv4 address (a host name would hide which interfaces it means).
    """
    text = value.strip()
    try:
        return IPv4Address(LOOPBACK if text == "localhost" else text)
    except AddressValueError:
        raise InputError(
            f"the Prefect server's listen address {value!r} (--listen, QUAYSIDE_PREFECT_LISTEN "
            "or QUAYSIDE_PREFECT_HOST) is not an IPv4 address",
            hint="give 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of this "
            "machine's addresses",
        ) from None


def exposed(address: IPv4Address) -> bool:
    """Whether other machines can reach a server bound to ``address``."""
    return not address.is_loopback


def connect_host(address: IPv4Address) -> str:
    """Where the platform's own clients reach a server bound to ``address``."""
    return LOOPBACK if address.is_unspecified else str(address)


def with_listen(settings: Settings, value: str) -> Settings:
    """``settings`` serving on ``value``, with the clients' host following it.

    Raises:
        InputError: ``value`` is not an IPv4 address.
    """
    address = listen_address(value)
    return dataclasses.replace(
        settings, prefect_listen=str(address), prefect_host=connect_host(address)
    )


def refuse_unprotected(settings: Settings, operator_auth: str | None) -> None:
    """Refuse to serve the console off loopback without an auth string the operator gave.

    Args:
        operator_auth: :func:`quayside.api_auth.operator_auth_string` (None: none given; the
            string ``up`` would generate is not one anybody else has, nor one to expose).

    Raises:
        InputError: the listen address is not an IPv4 address, or is reachable from other
            machines and ``operator_auth`` is None.
    """
    address = listen_address(settings.prefect_bind)
    if exposed(address) and operator_auth is None:
        raise InputError(
            f"refusing to serve the Prefect UI and API on {address} without an auth string you "
            f"chose: pass --auth-string-file FILE (or set {FILE_SETTING} or {SERVER_SETTING}) "
            "with a user:password string, or --listen 127.0.0.1"
        )
