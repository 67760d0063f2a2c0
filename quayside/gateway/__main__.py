"""``python -m quayside.gateway``: serve the gateway on QUAYSIDE_GATEWAY_HOST:PORT."""

from __future__ import annotations

import uvicorn

from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.gateway.server import uvicorn_config
from quayside.settings import load_settings


def main() -> None:
    settings = load_settings()
    config = GatewayConfig.from_env()
    uvicorn.Server(uvicorn_config(create_app(settings, config), settings, config)).run()


if __name__ == "__main__":
    main()
