"""One JSON POST to a webhook whose URL is a secret.

Robot webhook URLs carry their credential (DingTalk ``access_token``, WeCom ``key``, Slack path
tokens), so the URL must not reach a log line or an error message. ``httpx`` logs every request
URL at INFO level (logger ``httpx``) and puts the URL in ``HTTPStatusError`` messages, so this
module uses the standard library's ``urllib.request`` (no request logging; honours the usual
``*_proxy`` environment variables) and builds its own messages.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Final

from quayside.notify.errors import SendError

MAX_RESPONSE_BYTES: Final = 64 * 1024
"""Robot answers are tiny JSON objects; more than this is not read."""
USER_AGENT: Final = "Quayside-Notify/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a robot webhook never redirects, and following one would send the
    message (and our headers) somewhere not configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, payload: Any, *, service: str, timeout_s: float = 10.0) -> Any:
    """POST ``payload`` as JSON to ``url`` and return the decoded JSON answer.

    Args:
        url: the webhook URL (secret: it never appears in a message raised from here).
        payload: a JSON-serialisable body.
        service: the name used in error messages, e.g. ``"DingTalk"``.
        timeout_s: connect and read timeout in seconds.

    Returns:
        The decoded JSON response body, or the response text if it is not JSON.

    Raises:
        SendError: the URL is not http(s), the host could not be reached or timed out, or the
            answer was not HTTP 2xx. The message names ``service`` and the status or the kind
            of network error, never the URL. The original exception is not chained because
            its text may contain the URL.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise SendError(f"{service} webhook URL must start with http:// or https://")
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
    )
    failure: str | None = None
    status: int | None = None
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status = response.status
            body = response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as e:
        detail = e.read(200).decode("utf-8", errors="replace").strip() if e.fp else ""
        failure = f"{service} webhook answered HTTP {e.code}" + (f": {detail}" if detail else "")
        e.close()
        raise SendError(failure) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            failure = f"{service} webhook timed out after {timeout_s:g} s"
        elif isinstance(reason, OSError):
            why = reason.strerror or type(reason).__name__
            failure = f"could not reach the {service} webhook: {why}"
        else:
            failure = f"could not reach the {service} webhook: {type(reason).__name__}"
    except TimeoutError:
        failure = f"{service} webhook timed out after {timeout_s:g} s"
    except OSError as e:
        failure = f"could not reach the {service} webhook: {e.strerror or type(e).__name__}"
    if failure is not None:
        raise SendError(failure)
    text = body.decode("utf-8", errors="replace")
    if status is not None and not 200 <= status < 300:
        raise SendError(f"{service} webhook answered HTTP {status}")
    try:
        return json.loads(text)
    except ValueError:
        return text
