"""A CLI run started through the gateway (``POST /api/runs``) for a user with a token.

The gateway checks the token, the ``--as`` rule and the user's role on what the run touches,
records the submission and creates the run, with the ledger and its ORM already loaded: the
command pays one HTTP request instead of importing SQLAlchemy's ORM (~0.4 s of CPU). When no
gateway answers at the settings' address (``quayside up`` not running one, or another
machine), :func:`start_via_gateway` returns None and the command does the same checks itself
against the ledger.

Imports only the standard library and httpx (the command's Prefect client imports it too).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from quayside.cli.requester import Requester
from quayside.errors import QuaysideError
from quayside.runs.client import RunHandle

CONNECT_TIMEOUT_S = 2.0
ANSWER_TIMEOUT_S = 60.0


#: times a start the gateway was too busy to take (503 with Retry-After) is sent again
BUSY_RETRIES = 3
#: the longest Retry-After the command waits for
BUSY_WAIT_MAX_S = 30.0


def busy_wait_s(answer: Any) -> float | None:
    """Seconds to wait before sending again a start the gateway answered 503 with
    ``Retry-After`` (its run starts took every turn; nothing was started or recorded), else
    None."""
    if answer.status_code != 503:
        return None
    text = str(answer.headers.get("Retry-After", "")).strip()
    if not text.isdigit():
        return None
    return min(float(text), BUSY_WAIT_MAX_S)


class GatewayRefused(QuaysideError):
    """The gateway refused the run (bad token or parameter, no role): its words."""


def start_via_gateway(
    gateway_url: str,
    token: str,
    deployment: str,
    parameters: dict[str, Any],
    as_name: str | None,
) -> tuple[RunHandle, Requester] | None:
    """Start ``deployment`` with ``parameters`` as the token's user (``as_name``: SUPER's
    ``--as``). A request that timed out is sent once more with the same idempotency key,
    which never starts a second run; one the gateway was too busy to take (503 with
    ``Retry-After``) is sent again after the wait it asks for, up to :data:`BUSY_RETRIES`
    times.

    Returns:
        The run and who it is for, or None when nothing listens at ``gateway_url``.

    Raises:
        GatewayRefused: a 4xx/5xx, with the gateway's message and hint.
    """
    import httpx

    body: dict[str, Any] = {"deployment": deployment, "parameters": parameters}
    if as_name is not None:
        body["on_behalf_of"] = as_name
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    timeout = httpx.Timeout(ANSWER_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    url = f"{gateway_url.rstrip('/')}/api/runs"
    answer = None
    # plain http (the platform's own gateway on this machine) needs no TLS context: building
    # the verifying one loads the CA bundle, 30-60 ms of the command's start; https verifies
    plain = url.startswith("http:")
    with httpx.Client(timeout=timeout, trust_env=False, verify=not plain) as client:
        for attempt in (1, 2):
            try:
                answer = client.post(url, json=body, headers=headers)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt == 1:
                    return None  # no gateway there: nothing was sent
                raise GatewayRefused(  # it may have started the run before it went away
                    f"the gateway at {gateway_url} stopped answering; the run may have started",
                    hint="look for it in the UI (Runs) before deploying again",
                ) from e
            except httpx.TimeoutException as e:
                if attempt == 2:
                    raise GatewayRefused(
                        f"the gateway at {gateway_url} did not answer in {ANSWER_TIMEOUT_S:.0f} s",
                        hint="is the platform overloaded? `quayside up`'s logs/gateway.log; "
                        "look for the run in the UI before deploying again",
                    ) from e
        for _ in range(BUSY_RETRIES):
            assert answer is not None
            wait_s = busy_wait_s(answer)
            if wait_s is None:
                break
            time.sleep(wait_s)  # the gateway started and recorded nothing: same key again
            answer = client.post(url, json=body, headers=headers)
    assert answer is not None
    if answer.status_code != 202:
        raise _refusal(answer, gateway_url)
    data = answer.json()
    handle = RunHandle(
        id=str(data["flow_run_id"]),
        name=str(data["name"]),
        deployment=str(data["deployment"]),
        ui_url=str(data["ui_url"]),
        scheduled_at=None,
        created=data.get("status") == "started",
    )
    requested_by, submitter = str(data["requested_by"]), str(data["submitter"])
    on_behalf_of = requested_by if requested_by != submitter else None
    return handle, Requester(requested_by, principal=submitter, on_behalf_of=on_behalf_of)


def _refusal(answer: Any, gateway_url: str) -> GatewayRefused:
    """The gateway's error body as one error (its message and hint; never the token)."""
    try:
        data = answer.json()
    except ValueError:
        data = {}
    message = data.get("error") if isinstance(data, dict) else None
    hint = data.get("hint") if isinstance(data, dict) else None
    if not isinstance(message, str):
        message = f"the gateway at {gateway_url} answered HTTP {answer.status_code}"
    return GatewayRefused(message[:2000], hint=hint[:500] if isinstance(hint, str) else None)
