"""The Prefect REST API over plain HTTP, for the few calls Quayside's run helpers make.

Importing Prefect costs about 2.3 s of CPU on this machine (its settings, schemas and block
registry: hundreds of pydantic models), more than everything else ``quayside deploy`` does
before the run exists. The calls below (read a deployment, create a run, read its state and
logs, resume, cancel, delete) are Prefect's documented REST endpoints
(https://docs.prefect.io/v3/api-ref/rest-api/server/), sent with httpx as Prefect's own client
sends them: the same JSON bodies, ``Authorization: Basic`` from the auth string (or
``Bearer`` with an API key), and retries of 429/502/503 and dropped connections.

Standard library and httpx only: nothing here imports Prefect.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from quayside.api_auth import APIAuthError, client_auth_string, refused_hint
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.settings import load_settings

#: Prefect's client retries these answers (PREFECT_CLIENT_RETRY_EXTRA_CODES aside)
RETRY_STATUS = frozenset({429, 502, 503})
RETRIES = 4
RETRY_BACKOFF_S = 0.25
TIMEOUT_S = 30.0
#: the CA file of an https API (Prefect's own setting, which ``quayside up`` sets for its
#: self-signed API certificate)
CA_FILE_SETTING = "PREFECT_API_SSL_CERT_FILE"
INSECURE_SETTING = "PREFECT_API_TLS_INSECURE_SKIP_VERIFY"


class PrefectUnavailable(QuaysideError):
    """The Prefect API did not answer."""

    hint = (
        "start the platform: `make up` (or `quayside up`) with the same QUAYSIDE_HOME and "
        "QUAYSIDE_PREFECT_PORT; or set PREFECT_API_URL to the running platform's API"
    )


def _prefect_setting(name: str) -> str | None:
    """Prefect's own configured value (its profile), read only when Prefect is imported
    already: importing it for this would cost what this module exists to save."""
    if "prefect.settings" not in sys.modules:
        return None
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    value = getattr(api, name)
    if value is None:
        return None
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def api_url() -> str:
    """The Prefect API Quayside talks to: PREFECT_API_URL *now* (Prefect's own settings are
    read once at import; the CLI, the gateway and tests may point elsewhere later), else
    Prefect's configured one (its profile, when Prefect is loaded), else the platform's own
    (``quayside up``)."""
    return (
        os.environ.get("PREFECT_API_URL")
        or _prefect_setting("url")
        or load_settings().prefect_api_url
    )


def auth_headers(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Authorization header Prefect's client would send to ``url``: Basic with the auth
    string (:func:`quayside.api_auth.client_auth_string`), else Bearer with
    ``PREFECT_API_KEY``, else none.

    Raises:
        APIAuthError: the platform's auth string file exists but cannot be read.
    """
    env = os.environ if environ is None else environ
    auth = client_auth_string(url, load_settings(), env, _prefect_setting("auth_string"))
    if auth:
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    key = env.get("PREFECT_API_KEY") or _prefect_setting("key")
    return {"Authorization": f"Bearer {key}"} if key else {}


_PARAMETER_REFUSAL = re.compile(
    r"Validation failed(?: for field '(?P<field>[^']{1,100})')?\. "
    r"Failure reason: (?P<why>.{1,300})",
    re.S,
)


def parameter_error(body: str) -> InputError | None:
    """Prefect's refusal of a run's parameters (its schema check, HTTP 409 ``Error creating
    flow run: Validation failed for field 'x'. Failure reason: ...``) as an InputError naming
    the field; None for any other answer."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    found = _PARAMETER_REFUSAL.search(detail) if isinstance(detail, str) else None
    if found is None:
        return None
    field = found["field"] or "parameters"
    return InputError(
        f"{field}: {found['why'].strip()[:200]}",
        hint="check the value's type against the deployment's parameters (Prefect UI: the "
        "deployment's Parameters tab)",
    )


def tls_context() -> ssl.SSLContext:
    """The TLS context Prefect's client builds: unverified with
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY, else verifying against PREFECT_API_SSL_CERT_FILE
    (``quayside up`` sets it for its self-signed API certificate) or certifi's bundle."""
    if os.environ.get(INSECURE_SETTING, "").lower() in {"1", "true"}:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    import certifi

    return ssl.create_default_context(cafile=os.environ.get(CA_FILE_SETTING) or certifi.where())


class PrefectHTTP:
    """One connection pool to the Prefect API; a context manager.

    :meth:`call` answers the decoded JSON (None for 404 when ``missing_ok``) and turns every
    failure into a Quayside error: unreachable → :class:`PrefectUnavailable`, 401 →
    :class:`APIAuthError` with what to fix, a refused parameter → :class:`InputError` naming
    the field, anything else → :class:`QuaysideError` with the API's answer.
    """

    def __init__(self, url: str | None = None, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url = (url or api_url()).rstrip("/")
        # plain http needs no TLS context: building the verifying one (loading the CA bundle)
        # cost about 0.15 s of CPU per client, a tenth of the CLI's whole submit
        self._http = httpx.Client(
            base_url=self.url,
            headers=auth_headers(self.url),
            timeout=timeout_s,
            verify=tls_context() if self.url.startswith("https:") else False,
        )
        self.last_status = 0

    def __enter__(self) -> PrefectHTTP:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: Any) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            try:
                response = self._http.request(method, path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                raise PrefectUnavailable(
                    f"the Prefect API at {self.url} is not reachable ({e})"
                ) from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as e:
                # a request whose answer was lost is sent again: run creation carries an
                # idempotency key (quayside.runs.client.start_run), so it never doubles
                if attempt == RETRIES:
                    raise PrefectUnavailable(
                        f"the Prefect API at {self.url} stopped answering ({type(e).__name__})"
                    ) from None
            except httpx.HTTPError as e:  # a write that failed, a URL httpx cannot use, ...
                raise PrefectUnavailable(
                    f"the Prefect API at {self.url} cannot be used ({type(e).__name__}: {e})"
                ) from None
            else:
                if response.status_code not in RETRY_STATUS or attempt == RETRIES:
                    return response
            time.sleep(RETRY_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        response = self._send(method, path, body)
        self.last_status = response.status_code
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 401:
            raise APIAuthError(
                f"the Prefect API at {self.url} refused Quayside's credentials (401 Unauthorized)",
                hint=refused_hint(self.url, load_settings(), os.environ),
            )
        if response.status_code == 404:
            raise NotFoundError(f"the Prefect API has no {path.strip('/')}")
        if response.status_code >= 400:
            refused = parameter_error(response.text)
            if refused is not None:
                raise refused
            raise QuaysideError(f"Prefect API refused the request: {response.text[:300]}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise QuaysideError(
                f"the Prefect API at {self.url} answered {path} with something that is not "
                f"JSON: {response.text[:120]!r}",
                hint="is PREFECT_API_URL the API (ending in /api), not the UI?",
            ) from None
