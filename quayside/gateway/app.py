"""The gateway's FastAPI application factory.

Routes are grouped by trigger: ``routes_tasks`` (``POST /api/tasks``), ``routes_hooks``
(``POST /hooks/gitlab``, ``POST /hooks/git``), ``routes_chat`` (``POST /chatops/dingtalk``) and
``routes_approvals`` (``POST /api/approvals/{run_id}``). Every route creates or resumes runs
through :mod:`quayside.runs`; nothing runs a flow in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI

from quayside.gateway import (
    routes_approvals,
    routes_chat,
    routes_config_login,
    routes_config_pages,
    routes_config_pull,
    routes_containers,
    routes_hooks,
    routes_releases,
    routes_runs,
    routes_tasks,
)
from quayside.gateway.config import GatewayConfig
from quayside.gateway.context import GatewayContext
from quayside.gateway.errors import install_error_handlers
from quayside.gateway.middleware import GatewayMiddleware
from quayside.gateway.run_starts import RunStartSlots
from quayside.gateway.throttle import FailureThrottle
from quayside.settings import Settings, load_settings


def _configure_access_log() -> None:
    logger = logging.getLogger("quayside.gateway.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("quayside.gateway").setLevel(logging.INFO)


SWEEP_INTERVAL_S = 60.0
#: a sweep that could not reach Prefect tries again this soon
SWEEP_RETRY_S = 10.0

log = logging.getLogger("quayside.gateway")


async def _approval_sweep_forever(context: GatewayContext, interval_s: float) -> None:
    """Every ``interval_s``: record Expired on overdue approval requests (a timed-out
    suspended run is failed by the Prefect server without running any Quayside code, so
    somebody has to write it down), wake the runs still suspended although their request was
    decided (a wake lost to a Prefect restart), and close the requests whose run ended while
    it waited (:mod:`quayside.runs.approval_sweep`)."""
    from quayside.auth.approvals import expire_overdue
    from quayside.runs.approval_sweep import wake_and_close

    while True:
        try:
            expired = await asyncio.to_thread(expire_overdue, context.engine())
            if expired:
                log.info("approval requests expired: %s", ", ".join(map(str, expired)))
        except Exception as e:  # the sweep must never take the gateway down
            log.warning("approval expiry sweep failed: %s", e)
        next_s = interval_s
        try:
            for line in await asyncio.to_thread(wake_and_close, context.engine()):
                log.info("approval sweep: %s", line)
        except Exception as e:  # Prefect not up yet (the gateway starts beside it) or down
            log.warning("approval wake sweep failed (again in %.0fs): %s", SWEEP_RETRY_S, e)
            next_s = min(interval_s, SWEEP_RETRY_S)
        await asyncio.sleep(next_s)


def create_app(settings: Settings | None = None, config: GatewayConfig | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: platform settings (data directory, ledger URL, inventory path); default from
            the environment.
        config: gateway settings (body limit and deadline, failed-authentication limit,
            DingTalk); default from the environment.

    Returns:
        The FastAPI application, with OpenAPI at ``/docs``.
    """
    settings = settings or load_settings()
    config = config or GatewayConfig.from_env()
    _configure_access_log()
    gateway_context = GatewayContext(settings=settings, config=config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweep = asyncio.create_task(_approval_sweep_forever(gateway_context, SWEEP_INTERVAL_S))
        try:
            yield
        finally:
            sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep

    app = FastAPI(
        title="Quayside gateway",
        description="Start and approve releases: task API, git hooks, ChatOps.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.context = gateway_context
    app.state.run_starts = RunStartSlots(config.run_starts, config.run_start_wait_s)
    install_error_handlers(app)
    app.add_middleware(
        GatewayMiddleware,
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
        throttle=FailureThrottle(config.auth_failures, config.auth_window_s),
    )

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers (in its event loop: no thread of the pool needed)."""
        return {"status": "ok"}

    app.include_router(routes_tasks.router)
    app.include_router(routes_releases.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_hooks.router)
    app.include_router(routes_chat.router)
    app.include_router(routes_approvals.router)
    app.include_router(routes_config_pull.router)
    app.include_router(routes_config_login.router)
    app.include_router(routes_config_pages.router)
    app.include_router(routes_containers.router)
    return app


__all__ = ["create_app"]
