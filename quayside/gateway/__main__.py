"""``python -m quayside.gateway``: serve the gateway on QUAYSIDE_GATEWAY_HOST:PORT."""

from __future__ import annotations

import uvicorn

from quayside.gateway.app import create_app
from quayside.settings import load_settings


def main() -> None:
    settings = load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="info",
        access_log=True,
    )


if __name__ == "__main__":
    main()
