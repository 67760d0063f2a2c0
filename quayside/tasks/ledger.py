"""Ledger access for flows: the engine for the configured database, and the run's own id."""

from __future__ import annotations

from functools import lru_cache

from prefect.runtime import flow_run
from sqlalchemy import Engine

from quayside.ledger.db import make_engine
from quayside.settings import load_settings


@lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    return make_engine(url)


def ledger_engine() -> Engine:
    """The ledger engine for QUAYSIDE_DATABASE_URL (cached per process)."""
    return _engine(load_settings().database_url)


def current_flow_run_id() -> str | None:
    """The id of the flow run this code runs in, if any."""
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
