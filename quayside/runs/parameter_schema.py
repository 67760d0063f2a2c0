"""The parameters a registered deployment takes, as Prefect's OpenAPI schema (the gateway
checks a request's arguments against it before it creates a run)."""

from __future__ import annotations

from typing import Any

from quayside.errors import NotFoundError
from quayside.runs.prefect_sdk import _client, _run


def read_parameter_schema(full_name: str) -> dict[str, Any]:
    """The parameter schema of deployment ``full_name`` (``flow/deployment``).

    Raises:
        NotFoundError: the deployment is not registered with Prefect.
        quayside.runs.prefect_http.PrefectUnavailable: the Prefect API cannot be reached.
    """
    from prefect.exceptions import ObjectNotFound

    async def go() -> dict[str, Any]:
        async with _client() as client:
            try:
                deployment = await client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                raise NotFoundError(
                    f"deployment '{full_name}' is not registered with Prefect",
                    hint="`quayside up` registers the catalogue; is the platform running?",
                ) from None
            return dict(deployment.parameter_openapi_schema or {})

    return _run(go())
