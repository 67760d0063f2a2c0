"""Where Quayside keeps its state, read from the environment once per call.

Environment variables:
    QUAYSIDE_HOME            data directory (default ``~/.quayside``)
    QUAYSIDE_DATABASE_URL    ledger database (default SQLite in the data directory)
    QUAYSIDE_INVENTORY       path of quayside.yaml (default ``./quayside.yaml``)
    QUAYSIDE_GATEWAY_HOST / QUAYSIDE_GATEWAY_PORT   gateway bind (127.0.0.1:8400)
    QUAYSIDE_PREFECT_HOST    where clients reach the Prefect API (127.0.0.1)
    QUAYSIDE_PREFECT_PORT    Prefect server port for ``quayside up`` (4200)
    QUAYSIDE_PREFECT_LISTEN  the address ``quayside up`` serves the UI and API on (``--listen``;
                             default QUAYSIDE_PREFECT_HOST). Off loopback it needs an auth
                             string the operator chose (:mod:`quayside.stack.listen`)
    QUAYSIDE_PREFECT_AUTH_STRING_FILE   a file holding the Prefect API's auth string
                             (:mod:`quayside.api_auth`)

The data directory is private (0700; ``quayside up`` refuses one other users can reach): it
holds Prefect's database with its Secret-block key, the ledger and the API auth string.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    inventory_path: Path
    gateway_host: str
    gateway_port: int
    prefect_host: str
    prefect_port: int
    #: the address the Prefect server binds (``quayside up --listen``); "" means prefect_host
    prefect_listen: str = ""

    @property
    def prefect_bind(self) -> str:
        """The address ``quayside up`` serves the Prefect UI and API on."""
        return self.prefect_listen or self.prefect_host

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.prefect_host}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.prefect_host}:{self.prefect_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def payloads_dir(self) -> Path:
        """Per app/environment, the last stored payload (the next one's delta base)."""
        return self.home / "payloads"

    @property
    def host_facts_dir(self) -> Path:
        """Per app/environment, each host's facts after the last deploy."""
        return self.home / "host-facts"

    @property
    def mirrors_dir(self) -> Path:
        return self.home / "mirrors"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def api_auth_path(self) -> Path:
        """The Prefect API's auth string (``quayside.api_auth``), 0600."""
        return self.home / "api-auth"


def load_settings() -> Settings:
    home = Path(os.environ.get("QUAYSIDE_HOME", "~/.quayside")).expanduser().resolve()
    db = os.environ.get("QUAYSIDE_DATABASE_URL") or f"sqlite:///{home / 'ledger.db'}"
    inventory = Path(os.environ.get("QUAYSIDE_INVENTORY", "quayside.yaml")).expanduser()
    listen = os.environ.get("QUAYSIDE_PREFECT_LISTEN", "").strip()
    return Settings(
        home=home,
        database_url=db,
        inventory_path=inventory,
        gateway_host=os.environ.get("QUAYSIDE_GATEWAY_HOST", "127.0.0.1"),
        gateway_port=int(os.environ.get("QUAYSIDE_GATEWAY_PORT", "8400")),
        prefect_host=os.environ.get("QUAYSIDE_PREFECT_HOST") or _client_host(listen),
        prefect_port=int(os.environ.get("QUAYSIDE_PREFECT_PORT", "4200")),
        prefect_listen=listen,
    )


def _client_host(listen: str) -> str:
    """Where clients reach a Prefect server bound to ``listen`` (QUAYSIDE_PREFECT_LISTEN, as
    ``quayside up --listen`` is given it): every address and loopback are reached on
    127.0.0.1, one address on that address. So ``quayside deploy`` in a shell with the same
    settings as ``up`` finds the server (quayside.stack.listen.connect_host, for ``up``)."""
    return "127.0.0.1" if listen in ("", "0.0.0.0", "localhost") else listen
