"""Prefect's own async client, for the few readers that want its schemas (heartbeats, run
liveness, a deployment's parameter schema) and for tests. Importing this imports Prefect
(seconds of CPU): the CLI's release path uses :mod:`quayside.runs.prefect_http` instead."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prefect.client.orchestration import PrefectClient
from prefect.exceptions import PrefectHTTPStatusError

from quayside.api_auth import APIAuthError, client_auth_string, refused_hint
from quayside.errors import QuaysideError
from quayside.runs.prefect_http import PrefectUnavailable, api_url, parameter_error
from quayside.settings import load_settings

T = TypeVar("T")


def prefect_client(url: str | None = None) -> PrefectClient:
    """A Prefect client for ``url`` (default :func:`api_url`) that authenticates as
    :func:`quayside.api_auth.client_auth_string` says (or with PREFECT_API_KEY).

    Raises:
        APIAuthError: the platform's auth string file exists but cannot be read.
    """
    from prefect.settings import get_current_settings

    target = url or api_url()
    configured = get_current_settings().api
    auth = client_auth_string(
        target,
        load_settings(),
        os.environ,
        configured.auth_string.get_secret_value() if configured.auth_string else None,
    )
    key = os.environ.get("PREFECT_API_KEY") or (
        configured.key.get_secret_value() if configured.key else None
    )
    return PrefectClient(api=target, auth_string=auth, api_key=key)


def _client() -> PrefectClient:
    return prefect_client()


def _in_fresh_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion; from a thread that already runs an event loop (an async
    web handler, Playwright's sync API), in a helper thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quayside-runs") as pool:
        return pool.submit(asyncio.run, coro).result()


def _run(
    coro: Coroutine[Any, Any, T], runner: Callable[[Coroutine[Any, Any, T]], T] = _in_fresh_loop
) -> T:
    """Run ``coro`` (with ``runner``: default, in an event loop of its own) and turn Prefect's
    and the network's errors into Quayside's."""
    try:
        return runner(coro)
    except PrefectHTTPStatusError as e:
        if e.response is not None and e.response.status_code == 401:
            url = api_url()
            raise APIAuthError(
                f"the Prefect API at {url} refused Quayside's credentials (401 Unauthorized)",
                hint=refused_hint(url, load_settings(), os.environ),
            ) from e
        refused = parameter_error(e.response.text) if e.response is not None else None
        if refused is not None:
            raise refused from e
        detail = e.response.text[:300] if e.response is not None else str(e)
        raise QuaysideError(f"Prefect API refused the request: {detail}") from e
    except OSError as e:
        raise PrefectUnavailable(
            f"the Prefect API at {api_url()} is not reachable ({e.strerror or e})"
        ) from e
    except Exception as e:
        if type(e).__name__ in {"ConnectError", "ConnectTimeout", "ReadTimeout"}:
            raise PrefectUnavailable(f"the Prefect API at {api_url()} is not reachable") from e
        raise
