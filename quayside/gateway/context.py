"""What every request handler shares: settings, the ledger engine, the inventory (re-read when
the file changes), the DingTalk replay guard (backed by the ledger) and a cache of deployment
parameter names."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from quayside.errors import ConfigError
from quayside.gateway.config import GatewayConfig
from quayside.gateway.recent_runs import RecentRuns
from quayside.inventory import Inventory, load_inventory
from quayside.settings import Settings
from quayside.triggers.replay import ReplayGuard

if TYPE_CHECKING:
    from sqlalchemy import Engine

PARAMETER_CACHE_S = 30.0


@dataclass
class GatewayContext:
    """Shared state of one gateway app; thread-safe (sync handlers run in a thread pool)."""

    settings: Settings
    config: GatewayConfig
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    recent_runs: RecentRuns = field(default_factory=RecentRuns)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _engine: Engine | None = None
    _inventory: tuple[float, Inventory] | None = None
    _parameters: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    replay_guard: ReplayGuard = field(init=False)
    """Accepts each signed DingTalk callback once, for every gateway sharing this ledger."""

    def __post_init__(self) -> None:
        self.replay_guard = ReplayGuard(self.engine)

    def engine(self) -> Engine:
        """The ledger engine, created on first use."""
        with self._lock:
            if self._engine is None:
                from quayside.ledger.db import make_engine

                self._engine = make_engine(self.settings.database_url)
            return self._engine

    def inventory(self) -> Inventory:
        """The inventory, re-read when the file's modification time changes.

        A missing file is an empty inventory (the task API still works with deployment names).

        Raises:
            ConfigError: the file exists but is invalid.
        """
        path = self.settings.inventory_path
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return Inventory()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
        with self._lock:
            if self._inventory is not None and self._inventory[0] == mtime:
                return self._inventory[1]
        inventory = load_inventory(path)
        with self._lock:
            self._inventory = (mtime, inventory)
        return inventory

    def deployment_parameters(self, full_name: str) -> frozenset[str]:
        """Names of the parameters Prefect's deployment ``full_name`` accepts (cached briefly).

        Raises:
            NotFoundError: the deployment is not registered.
        """
        return self._schema(full_name)[0]

    def required_parameters(self, full_name: str) -> frozenset[str]:
        """Names of the parameters the deployment needs (no default)."""
        return self._schema(full_name)[1]

    def parameter_schema(self, full_name: str) -> dict[str, Any]:
        """The deployment's parameter JSON schema, as Prefect validates a new run against it."""
        return self._read_schema(full_name)

    def _schema(self, full_name: str) -> tuple[frozenset[str], frozenset[str]]:
        schema = self._read_schema(full_name)
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        return frozenset(str(k) for k in properties), frozenset(str(k) for k in required)

    def _read_schema(self, full_name: str) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._parameters.get(full_name)
            if cached is not None and now - cached[0] < PARAMETER_CACHE_S:
                return cached[1]
        from quayside.runs.parameter_schema import read_parameter_schema

        schema = read_parameter_schema(full_name)
        with self._lock:
            self._parameters[full_name] = (now, schema)
        return schema

    def dispose(self) -> None:
        """Close the ledger engine's connections."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def context(request: Request) -> GatewayContext:
    """FastAPI dependency: the app's :class:`GatewayContext`."""
    ctx: GatewayContext = request.app.state.context
    return ctx
