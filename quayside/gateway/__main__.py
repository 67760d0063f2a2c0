"""``python -m quayside.gateway``: serve the gateway on QUAYSIDE_GATEWAY_HOST:PORT.

A gateway given the Prefect API's auth string as a file (``QUAYSIDE_PREFECT_AUTH_STRING_FILE``)
puts it in ``PREFECT_API_AUTH_STRING`` before Prefect is imported, so that Prefect's own
clients in this process send it too, not only :func:`quayside.runs.prefect_client`.
"""

from __future__ import annotations

import os

from quayside.api_auth import export_client_auth


def main() -> None:
    export_client_auth(os.environ)  # Prefect reads its settings when it is imported

    import uvicorn

    from quayside.gateway.app import create_app
    from quayside.gateway.config import GatewayConfig
    from quayside.gateway.server import uvicorn_config
    from quayside.settings import load_settings

    settings = load_settings()
    config = GatewayConfig.from_env()
    uvicorn.Server(uvicorn_config(create_app(settings, config), settings, config)).run()


if __name__ == "__main__":
    main()
