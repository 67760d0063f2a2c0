"""The gateway's FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from quayside.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway app. Routes are grouped by trigger in ``quayside.gateway.routes_*``."""
    settings = settings or load_settings()
    app = FastAPI(
        title="Quayside gateway",
        description="Start and approve releases: task API, git hooks, ChatOps.",
        version="0.1.0",
    )
    app.state.settings = settings

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
